"""Headless tests of the notebook panel and background training (tiny runs)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("ipywidgets")

import ptycho_nb
from ptycho_nb import ModelConfig, PyTorchExecutionConfig
from ptycho_nb.notebook import INVALID_CLASS, Panel, start_training

TINY = dict(N=32, object_shape=(80, 80), n_positions=30, step=5.0)


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=1, **TINY)


def test_background_training_stops_early_with_usable_result(scan, tmp_path):
    handle = start_training(data=scan, execution=PyTorchExecutionConfig(), nepochs=200, batch_size=8,
                            n_filters_scale=1, N=32, output_dir=tmp_path)
    deadline = time.monotonic() + 60
    while handle.callback.batches < 3 and not handle.done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not handle.done, handle.error
    assert handle.wait(timeout=0.01) is False  # still running
    t0 = time.monotonic()
    handle.stop()
    assert handle.wait(timeout=30) is True
    result = handle.join(timeout=30)
    assert handle.done and handle.error is None and result is handle.result
    assert time.monotonic() - t0 < 5
    assert result.run.epochs_run < 200
    rec = ptycho_nb.infer(result, scan)  # the model is usable
    assert rec.object.shape[0] > 0


def test_panel_buttons_follow_validity(tmp_path):
    p = Panel(data=tmp_path / "missing.npz")
    assert p.train_button.disabled and "not found" in p.status.value
    assert INVALID_CLASS in p.data_path._dom_classes
    p.data_choice.value = "simulated default"
    assert not p.train_button.disabled and p.reconstruct_button.disabled  # nothing trained yet
    assert p.stop_button.disabled
    lr = p.execution_builder.controls["learning_rate"]
    lr.value = "-1"
    assert p.train_button.disabled and "learning_rate" in p.status.value
    assert INVALID_CLASS in lr._dom_classes
    lr.value = "0.001"
    assert not p.train_button.disabled and p.valid


def test_panel_cross_config_rule_marks_both(tmp_path):
    p = Panel()
    p.model_builder.controls["N"].value = "32"
    p.execution_builder.controls["middle_trim"].value = "16"
    assert p.train_button.disabled and "middle_trim" in p.status.value
    assert INVALID_CLASS in p.execution_builder.controls["middle_trim"]._dom_classes
    assert INVALID_CLASS in p.model_builder.controls["N"]._dom_classes
    p.execution_builder.controls["middle_trim"].value = "4"
    assert p.valid and not p.train_button.disabled
    assert INVALID_CLASS not in p.model_builder.controls["N"]._dom_classes
    p.save(tmp_path / "all.json")
    q = Panel()
    q.load(tmp_path / "all.json")
    assert q.configs() == p.configs()


def test_panel_follows_the_forms_values_and_errors():
    p = Panel()
    assert p.valid
    p.model_builder.value = p.model_builder.value.replace(N=32)  # no control event needed
    assert p.model_builder.controls["N"].value == "32" and p.valid
    p.execution_builder.value = p.execution_builder.value.replace(middle_trim=16)
    assert p.train_button.disabled and "middle_trim" in p.status.value
    assert INVALID_CLASS in p.model_builder.controls["N"]._dom_classes
    p.model_builder.load(ModelConfig(N=64))
    assert p.valid and not p.train_button.disabled
    assert INVALID_CLASS not in p.execution_builder.controls["middle_trim"]._dom_classes
    p.training_builder.controls["nepochs"].value = "zero"  # an invalid entry: errors only
    assert p.train_button.disabled and "training.nepochs" in p.status.value
    p.execution_builder.controls["learning_rate"].value = "0.01"  # another form's change
    assert p.train_button.disabled and "training.nepochs" in p.status.value
    p.training_builder.controls["nepochs"].value = "3"
    assert p.valid and p.configs()["training"].nepochs == 3


def test_panel_train_stop_reconstruct(scan, tmp_path):
    p = Panel(data=scan)
    p.model_builder.controls["N"].value = "32"
    p.model_builder.controls["n_filters_scale"].value = "1"
    p.training_builder.controls["nepochs"].value = "100"
    p.training_builder.controls["batch_size"].value = "8"
    p.training_builder.controls["output_dir"].value = str(tmp_path / "out")
    p.execution_builder.controls["accelerator"].value = "cpu"
    p.execution_builder.controls["enable_progress_bar"].value = False
    assert not p.train_button.disabled, p.status.value
    p.train_button.click()
    handle = p.handle
    assert handle is not None and p.train_button.disabled and not p.stop_button.disabled
    deadline = time.monotonic() + 60
    while handle.callback.batches < 1 and not handle.done and time.monotonic() < deadline:
        time.sleep(0.02)
    p.stop_button.click()
    p.join(timeout=30)
    assert handle.done and handle.error is None
    assert p.result is not None and p.result.run.epochs_run < 100
    assert not p.train_button.disabled and not p.reconstruct_button.disabled and p.stop_button.disabled
    p.reconstruct_button.click()
    assert p.reconstruction is not None


def test_start_training_returns_a_stoppable_handle(tmp_path):
    import time

    import ptycho_nb

    data = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=30, step=5.0, seed=5)
    # train() always returns a TrainResult; background=True says where to go instead
    with pytest.raises(TypeError, match="start_training"):
        ptycho_nb.train(data, background=True, output_dir=tmp_path)
    handle = start_training(data, output_dir=tmp_path, nepochs=500, batch_size=4, n_filters_scale=1)
    t0 = time.perf_counter()
    while handle.running and handle.callback.batches < 3 and time.perf_counter() - t0 < 60:
        time.sleep(0.05)
    t_stop = time.perf_counter()
    handle.stop()
    result = handle.join(timeout=60)
    assert time.perf_counter() - t_stop < 10
    assert result is handle.result and result.run.epochs_run < 500
    assert result.archive_path.exists()
