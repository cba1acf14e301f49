"""Headless tests of the notebook panel and background training (tiny runs)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("ipywidgets")

import ptycho_nb
from ptycho_nb import ModelConfig, PyTorchExecutionConfig
from ptycho_nb.notebook import INVALID_CLASS, Panel, ReconstructionHandle, start_training

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
    # nothing trained yet: Reconstruct still works (refinement from a flat start)
    assert not p.train_button.disabled and not p.reconstruct_button.disabled
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
    assert not p.reconstruct_button.disabled and p.stop_button.disabled
    assert "TrainingHandle: stopped after" in handle._label_text()
    # the archive exists now: Train waits for the panel's own "overwrite" box, before any click
    assert p.train_button.disabled and "tick 'overwrite existing output'" in p.status.value
    assert p.forms.titles[1] == "training"  # not an invalid field: no section is flagged
    p.overwrite.value = True
    assert not p.train_button.disabled
    p.reconstruct_button.click()
    assert p.join(timeout=120) is p.reconstruction is not None, p.last_error
    shown = [o["data"] for o in p.output.outputs if o["output_type"] == "display_data"]
    assert len(shown) == 1 and isinstance(shown[0]["image/png"], str)  # base64 text, not bytes
    import base64
    assert base64.b64decode(shown[0]["image/png"]).startswith(b"\x89PNG")


def test_panel_shows_progress_and_live_view_in_its_own_area(scan, tmp_path):
    """Headless: the bars and the live figure go into the panel's TrainingView widgets."""
    p = Panel(data=scan, model=dict(N=32, n_filters_scale=1),
              training=dict(nepochs=2, batch_size=8, output_dir=str(tmp_path / "o")))
    assert p.configs()["execution"].enable_progress_bar  # the widget front end's default
    p.train()
    p.join(timeout=120)
    assert p.result is not None, p.last_error
    bars = p.view.bars.children
    assert len(bars) == 1  # the training bar (validation bars are removed when they close)
    ltext, pbar, _ = bars[0].children
    assert pbar.max == p.result.run.train_samples // 8 + (p.result.run.train_samples % 8 > 0)
    assert pbar.layout.width is None and ltext.value.replace("\u2007", " ").startswith("Epoch 2/2")
    assert p.view.image.layout.display is None and bytes(p.view.image.value).startswith(b"\x89PNG")


def test_panel_reconstruct_runs_in_the_background_with_its_progress_and_stops(scan):
    """Reconstruct: the refinement's epoch, deviance and phase show in the panel's own view while
    it runs; Stop ends it after the current epoch and keeps the reconstruction so far."""
    p = Panel(data=scan, model=dict(N=32, n_filters_scale=1),
              inference=dict(refine_epochs=200, refine_tolerance=0.0, refine_batch_size=8))
    p.reconstruct_button.click()
    handle = p.handle
    assert isinstance(handle, ReconstructionHandle)
    view = p.refine_view
    assert view is not None and p.refine_box.children == (view,)
    assert p.view.widget.layout.display == "none"  # the training's view makes room
    deadline = time.monotonic() + 60
    while view.epoch < 3 and not handle.done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not handle.done and p.train_button.disabled and not p.stop_button.disabled
    assert p.status.value.startswith("reconstructing")
    p.stop_button.click()
    rec = p.join(timeout=60)
    assert rec is p.reconstruction is not None, p.last_error
    assert rec.run.refinement.stopped == "callback" and 3 <= rec.run.refinement.epochs_run < 200
    assert view.label.value.startswith(f"refinement epoch {rec.run.refinement.epochs_run}/200: deviance")
    assert view.label.value.endswith(", callback")
    assert bytes(view.image.value).startswith(b"\x89PNG") and view.epochs[0] == 1
    assert "ReconstructionHandle: stopped after" in handle._label_text()
    assert not p.reconstruct_button.disabled and p.stop_button.disabled
    assert p.refine_view.label.layout.display is None
    # no progress bar asked for: the picture without the progress line, in a new view
    p.execution_builder.controls["enable_progress_bar"].value = False
    p.inference_builder.controls["refine_epochs"].value = "2"
    p.reconstruct()
    assert p.join(timeout=60).run.refinement.epochs_run == 2 and p.refine_view is not view
    assert p.refine_view.label.layout.display == "none" and p.refine_box.children == (p.refine_view,)


def test_panel_reconstructs_the_lit_field_unless_pad_eval_is_unticked(scan):
    """The execution form starts from Reconstruct's defaults (labelled); what it shows runs."""
    p = Panel(data=scan, model=dict(N=32, n_filters_scale=1), inference=dict(refine_epochs=2))
    assert p.execution_builder.value.pad_eval is True
    assert "reconstruct default" in p.execution_builder.labels["pad_eval"].value
    assert "front-end default" in p.execution_builder.labels["accelerator"].value
    p.reconstruct()
    lit = p.join(timeout=60)
    assert lit is not None, p.last_error
    box = lit.crop("scan")
    assert lit.run.pad_eval and lit.object.size > box.object.size
    p.execution_builder.controls["pad_eval"].value = False
    p.reconstruct()
    rec = p.join(timeout=60)
    assert rec is not None, p.last_error
    assert not rec.run.pad_eval and rec.frame == box.frame
    # a config given to the panel is its own: the dataclass default (the box) stays
    assert Panel(data=scan, execution=PyTorchExecutionConfig()).execution_builder.value.pad_eval is False


def test_panel_starts_from_an_interactive_preset_and_flags_sections(monkeypatch):
    monkeypatch.setenv("PTYCHO_NB_QUICK", "1")
    p = Panel()
    assert p.configs()["training"].nepochs == 2 and p.simulate_kwargs["n_positions"] == 60
    monkeypatch.setenv("PTYCHO_NB_QUICK", "0")
    assert Panel().configs()["training"].nepochs == 30  # the demo's recipe, not 50
    assert "tensorflow" not in [v for _, v in p.training_builder.controls["backend"].options]
    p.execution_builder.controls["num_workers"].value = "-1"
    assert p.forms.titles[2] == "execution — 1 invalid field"
    shown = p.execution_builder.messages["num_workers"].value
    assert ">num_workers=-1 is invalid" in shown  # the message starts with the field, not the class
    with pytest.raises(ptycho_nb.config.ConfigError) as info:
        p.configs()
    assert str(info.value).startswith("execution.num_workers: ")
    p.execution_builder.controls["num_workers"].value = "0"
    assert p.forms.titles[2] == "execution"


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
