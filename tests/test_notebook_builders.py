"""Headless tests of the notebook config builders (real ipywidgets, DummyComm)."""

from __future__ import annotations

import html

import pytest

pytest.importorskip("ipywidgets")

from ptycho_nb import (InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig)
from ptycho_nb.config import FRONT_END_DEFAULTS, ConfigError, read_config_file
from ptycho_nb.notebook import (INVALID_CLASS, CheckpointLoggingBuilder, ConfigBuilder,
                                DataLoaderBuilder, ExecutionConfigBuilder, InferenceConfigBuilder,
                                InferenceExecutionBuilder, ModelConfigBuilder, OptimizerBuilder,
                                TrainerBuilder, TrainingConfigBuilder, UXBuilder)


def _api_message(**kw):
    with pytest.raises(ConfigError) as info:
        PyTorchExecutionConfig(**kw)
    return str(info.value)


def _marked(w):
    return INVALID_CLASS in w._dom_classes and w.layout.border


def test_widgets_are_headless_dummy_comm():
    b = TrainerBuilder()
    assert type(b.controls["accelerator"].comm).__name__ == "DummyComm"


def test_widget_kinds_follow_metadata():
    import ipywidgets as w

    b = ExecutionConfigBuilder()
    assert isinstance(b.controls["accelerator"], w.Dropdown)
    assert isinstance(b.controls["deterministic"], w.Checkbox)
    for name in ("num_workers", "learning_rate", "devices", "gradient_clip_val"):
        c = b.controls[name]
        assert type(c) is w.Text, name  # never Bounded*/IntText that clamp or coerce
    assert "gradient_clip_val" in b.unset_controls and "num_workers" not in b.unset_controls
    assert b.controls["learning_rate"].tooltip.startswith("Adam learning rate")
    m = ModelConfigBuilder()
    assert "[pixels]" in m._rows["N"].label.value
    assert [t for t in b.widget.titles] == ["trainer", "dataloader", "optimizer",
                                            "checkpoint/logging", "inference", "ux"]


def test_front_end_defaults_are_initial_and_labelled():
    b = ExecutionConfigBuilder()
    assert b.value == PyTorchExecutionConfig(**FRONT_END_DEFAULTS)
    assert b.controls["accelerator"].value == "auto"
    assert b.controls["enable_progress_bar"].value is True
    assert "front-end default" in b.builders["trainer"]._rows["accelerator"].label.value
    assert "front-end default" not in b.builders["trainer"]._rows["precision"].label.value
    assert ExecutionConfigBuilder(front_end=None).value == PyTorchExecutionConfig()


def test_negative_workers_marked_with_api_message():
    b = DataLoaderBuilder()
    b.controls["num_workers"].value = "-1"
    msg = _api_message(num_workers=-1)
    assert not b.valid and b.errors == {"num_workers": msg}
    assert _marked(b.controls["num_workers"])
    assert html.escape(msg) in b.messages["num_workers"].value  # shown beside the control
    with pytest.raises(ValueError, match="num_workers=-1"):
        _ = b.value
    b.controls["num_workers"].value = "2"
    assert b.valid and b.errors == {} and b.value.num_workers == 2
    assert not _marked(b.controls["num_workers"]) and b.messages["num_workers"].value == ""


def test_cross_field_error_marks_both_fields():
    b = DataLoaderBuilder()
    b.controls["persistent_workers"].value = True
    msg = _api_message(persistent_workers=True, num_workers=0)
    assert b.errors == {"persistent_workers": msg, "num_workers": msg}
    assert _marked(b.controls["persistent_workers"]) and _marked(b.controls["num_workers"])
    b.controls["num_workers"].value = "2"
    assert b.valid and b.value.persistent_workers is True


def test_text_is_never_clamped_or_coerced():
    b = OptimizerBuilder()
    b.controls["learning_rate"].value = "abc"
    assert b.errors["learning_rate"] == _api_message(learning_rate="abc")
    assert b.controls["learning_rate"].value == "abc"  # left as typed
    b.controls["learning_rate"].value = "-0.1"
    assert b.errors["learning_rate"] == _api_message(learning_rate=-0.1)
    b.controls["learning_rate"].value = "3e-4"
    assert b.valid and b.value.learning_rate == 3e-4
    d = DataLoaderBuilder()
    d.controls["num_workers"].value = "1.5"
    assert d.errors["num_workers"] == _api_message(num_workers=1.5)


def test_several_independent_errors_all_shown():
    b = ExecutionConfigBuilder()
    b.controls["learning_rate"].value = "x"
    b.controls["num_workers"].value = "-3"
    b.controls["accum_steps"].value = "0"
    assert set(b.errors) == {"learning_rate", "num_workers", "accum_steps"}
    t = TrainerBuilder()
    t.controls["accum_steps"].value = "0"
    t.controls["devices"].value = "0"
    assert set(t.errors) == {"accum_steps", "devices"}


def test_optional_unset_toggle_gives_none():
    b = TrainerBuilder()
    clip, unset = b.controls["gradient_clip_val"], b.unset_controls["gradient_clip_val"]
    assert unset.value is True and clip.disabled and b.value.gradient_clip_val is None
    unset.value = False
    clip.value = "0.5"
    assert b.value.gradient_clip_val == 0.5
    unset.value = True
    assert b.valid and b.value.gradient_clip_val is None and clip.disabled
    d = DataLoaderBuilder()
    d.unset_controls["prefetch_factor"].value = False
    d.controls["prefetch_factor"].value = "2"
    assert set(d.errors) == {"prefetch_factor", "num_workers"}  # needs workers: marks both
    d.unset_controls["prefetch_factor"].value = True
    assert d.valid and d.value.prefetch_factor is None


def test_observe_called_with_valid_config_only():
    seen = []
    b = OptimizerBuilder()
    b.observe(seen.append)
    b.controls["learning_rate"].value = "bad"
    assert seen == []
    b.controls["scheduler"].value = "Cosine"
    assert seen == []  # still invalid
    b.controls["learning_rate"].value = "0.01"
    assert len(seen) == 1 and seen[0].learning_rate == 0.01 and seen[0].scheduler == "Cosine"


def test_category_builder_keeps_other_fields():
    cfg = PyTorchExecutionConfig(num_workers=2, learning_rate=0.05, middle_trim=3)
    b = OptimizerBuilder(initial=cfg)
    assert set(b.controls) == {"learning_rate", "scheduler"}
    b.controls["scheduler"].value = "Exponential"
    assert b.value == cfg.replace(scheduler="Exponential")
    assert set(CheckpointLoggingBuilder().controls) >= {"checkpoint_mode", "logger_backend"}
    assert set(InferenceExecutionBuilder().controls) == {"inference_batch_size", "middle_trim", "pad_eval"}
    assert "enable_progress_bar" in UXBuilder().controls


def test_execution_builder_merges_categories_and_loads():
    b = ExecutionConfigBuilder()
    b.controls["learning_rate"].value = "0.02"
    b.controls["num_workers"].value = "1"
    b.controls["middle_trim"].value = "4"
    v = b.value
    assert (v.learning_rate, v.num_workers, v.middle_trim, v.accelerator) == (0.02, 1, 4, "auto")
    cfg = PyTorchExecutionConfig(precision="64-true", logger_backend="csv", gradient_clip_val=1.0)
    b.load(cfg)
    assert b.value == cfg and b.controls["precision"].value == "64-true"
    assert b.unset_controls["gradient_clip_val"].value is False


@pytest.mark.parametrize("builder, cfg", [
    (ExecutionConfigBuilder, PyTorchExecutionConfig(num_workers=2, persistent_workers=True,
                                                    prefetch_factor=3, learning_rate=2e-4,
                                                    gradient_clip_val=0.5, logger_backend="csv")),
    (TrainerBuilder, PyTorchExecutionConfig(precision="64-true", devices=1)),
    (ModelConfigBuilder, ModelConfig(N=32, gridsize=2, gaussian_smoothing_sigma=0.5)),
    (TrainingConfigBuilder, TrainingConfig(nepochs=3, seed=None, train_data_file="a.npz")),
    (InferenceConfigBuilder, InferenceConfig(refine_epochs=0, model_path="m/wts.h5.zip")),
])
def test_json_round_trip_and_cli_readable(builder, cfg, tmp_path):
    b = builder()
    b.load(cfg)
    assert b.value == cfg
    path = tmp_path / "cfg.json"
    text = b.to_json(path)
    assert type(cfg).from_json(text) == cfg
    section = type(cfg).SECTION
    assert type(cfg).from_dict(read_config_file(path, default_section=section)[section]) == cfg
    other = builder()
    assert other.from_json(path) == cfg and other.value == cfg
    other2 = builder()
    other2.from_json(text)
    assert other2.value == cfg


def test_canonical_builder_errors_and_paths():
    m = ModelConfigBuilder()
    m.controls["N"].value = "8"
    with pytest.raises(ConfigError) as info:
        ModelConfig(N=8)
    assert m.errors == {"N": str(info.value)} and _marked(m.controls["N"])
    t = TrainingConfigBuilder()
    t.unset_controls["train_data_file"].value = False
    t.controls["train_data_file"].value = "scan.npz"
    assert str(t.value.train_data_file) == "scan.npz"
    t.controls["output_dir"].value = ""
    assert "output_dir" in t.errors


def test_generic_builder_field_subset_and_display():
    b = ConfigBuilder(ModelConfig, fields=["N", "gridsize"])
    assert set(b.controls) == {"N", "gridsize"}
    assert "application/vnd.jupyter.widget-view+json" in b._repr_mimebundle_()
    with pytest.raises(ConfigError, match="did you mean"):
        ConfigBuilder(ModelConfig, fields=["gridsise"])


def test_external_errors_mark_and_invalidate():
    b = InferenceExecutionBuilder()
    b.set_external_errors({"middle_trim": "too big", "N": "not here"})
    assert b.errors == {"middle_trim": "too big"} and not b.valid and _marked(b.controls["middle_trim"])
    with pytest.raises(ValueError):
        _ = b.value
    b.set_external_errors({})
    assert b.valid
