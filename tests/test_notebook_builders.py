"""Headless tests of the notebook config builders (real ipywidgets, DummyComm)."""

from __future__ import annotations

import html

import pytest

pytest.importorskip("ipywidgets")

import ipywidgets as w
import traitlets

from ptycho_nb import (InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig)
from ptycho_nb.config import FRONT_END_DEFAULTS, RECONSTRUCT_DEFAULTS, ConfigError, read_config_file
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
    assert "[pixels]" in m.labels["N"].value
    assert isinstance(b, w.Tab) and isinstance(m, w.VBox)  # the forms are widgets themselves
    assert list(b.titles) == ["trainer", "dataloader", "optimizer", "checkpoint/logging",
                              "inference", "ux"]


def test_front_end_defaults_are_initial_and_labelled():
    b = ExecutionConfigBuilder()
    assert b.value == PyTorchExecutionConfig(**FRONT_END_DEFAULTS)
    assert b.controls["accelerator"].value == "auto"
    assert b.controls["enable_progress_bar"].value is True
    assert "front-end default" in b.labels["accelerator"].value
    assert "front-end default" not in b.labels["precision"].value
    assert ExecutionConfigBuilder(front_end=None).value == PyTorchExecutionConfig()
    # a command's defaults lie over the front end's, labelled as its own
    rec = ExecutionConfigBuilder(command="reconstruct")
    assert rec.value == PyTorchExecutionConfig(**FRONT_END_DEFAULTS, **RECONSTRUCT_DEFAULTS)
    assert "reconstruct default" in rec.labels["pad_eval"].value
    assert "Reconstruct default: True" in rec.controls["pad_eval"].tooltip
    assert "default)" not in b.labels["pad_eval"].value


def test_negative_workers_marked_with_api_message():
    b = DataLoaderBuilder()
    b.controls["num_workers"].value = "-1"
    msg = _api_message(num_workers=-1)
    assert not b.valid and b.errors == {"num_workers": msg}
    assert _marked(b.controls["num_workers"])
    # shown beside the control, without the class name the form already names
    assert msg.startswith("PyTorchExecutionConfig.num_workers=")
    assert ">" + html.escape(msg.split(".", 1)[1]) + "<" in b.messages["num_workers"].value
    assert b.value.num_workers == 0  # value keeps the last valid config
    with pytest.raises(ConfigError, match="num_workers=-1") as info:
        b.config()
    assert str(info.value) == msg and info.value.fields == ("num_workers",)
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


def test_observe_value_called_with_valid_config_only():
    seen = []
    b = OptimizerBuilder()
    b.observe(lambda change: seen.append(change["new"]), names="value")
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
    with pytest.raises(ConfigError, match="middle_trim: too big"):
        b.config()
    assert b.value == PyTorchExecutionConfig(**FRONT_END_DEFAULTS)  # not held back
    b.set_external_errors({})
    assert b.valid


def test_errors_trait_and_value_notifications():
    b = DataLoaderBuilder()
    values, errors = [], []
    b.observe(lambda change: values.append(change["new"]), names="value")
    b.observe(lambda change: errors.append(change["new"]), names="errors")
    b.controls["num_workers"].value = "-1"  # invalid: errors change, value does not
    assert values == [] and errors == [{"num_workers": _api_message(num_workers=-1)}]
    b.controls["num_workers"].value = "abc"
    assert values == [] and len(errors) == 2
    errors_seen_by_value_observer = []
    b.observe(lambda _c: errors_seen_by_value_observer.append(b.errors), names="value")
    b.controls["num_workers"].value = "3"
    assert [v.num_workers for v in values] == [3] and errors[-1] == {}
    assert errors_seen_by_value_observer == [{}]  # value and errors change together
    b.controls["num_workers"].value = " +3"  # the same config: no notification
    assert len(values) == 1 and len(errors) == 3


def test_config_raises_one_short_error_naming_every_field():
    b = ExecutionConfigBuilder()
    b.controls["learning_rate"].value = "x"
    b.controls["persistent_workers"].value = True
    with pytest.raises(ConfigError) as info:
        b.config()
    assert set(info.value.fields) == {"learning_rate", "persistent_workers", "num_workers"}
    text = str(info.value)
    assert _api_message(learning_rate="x") in text
    assert text.count(_api_message(persistent_workers=True, num_workers=0)) == 1  # once
    with pytest.raises(ConfigError):
        b.to_json()


def test_assigning_value_shows_it_in_the_controls():
    b = OptimizerBuilder()
    b.controls["learning_rate"].value = "3e-4"
    assert b.value.learning_rate == 3e-4
    b.value = b.value.replace(scheduler="Cosine")
    assert b.controls["scheduler"].value == "Cosine"
    assert b.controls["learning_rate"].value == "3e-4"  # shows the same number: left as typed
    b.value = {"learning_rate": 0.01}  # a mapping goes through from_dict
    assert b.controls["learning_rate"].value == "0.01" and b.controls["scheduler"].value == "Default"
    assert b.valid and b.value == PyTorchExecutionConfig(learning_rate=0.01)
    with pytest.raises(traitlets.TraitError):
        b.value = ModelConfig()
    t = TrainingConfigBuilder()
    t.value = t.value.replace(seed=None, train_data_file="scan.npz")
    assert t.unset_controls["seed"].value is True and t.controls["seed"].disabled
    assert t.unset_controls["train_data_file"].value is False
    assert t.controls["train_data_file"].value == "scan.npz"


def test_load_also_replaces_entries_that_did_not_parse():
    b = OptimizerBuilder()
    b.controls["learning_rate"].value = "oops"
    b.value = b.value  # unchanged: no control is touched
    assert b.controls["learning_rate"].value == "oops" and not b.valid
    b.load(b.value)
    assert b.valid and b.controls["learning_rate"].value == repr(b.value.learning_rate)


def test_failed_load_leaves_the_form_consistent_and_responsive():
    b = TrainerBuilder()
    bad = PyTorchExecutionConfig(precision="64-true", devices=1)
    object.__setattr__(bad, "strategy", "telepathy")  # no such choice: the Dropdown refuses it
    seen = []
    b.observe(lambda change: seen.append(change["new"]), names="value")
    with pytest.raises(traitlets.TraitError):
        b.load(bad)
    # what was shown before the failure is validated; the value matches the controls
    assert b.valid and b.controls["devices"].value == "1" and b.value.devices == 1
    assert b.value.strategy == b.controls["strategy"].value != "telepathy"
    assert seen and seen[-1] == b.value
    b.controls["accum_steps"].value = "0"  # still listening
    assert "accum_steps" in b.errors and _marked(b.controls["accum_steps"])
    b.controls["accum_steps"].value = "2"
    assert b.valid and seen[-1].accum_steps == 2
    b.load(PyTorchExecutionConfig(precision="64-true"))
    assert b.controls["precision"].value == "64-true" and b.value.devices == "auto"


def test_execution_tabs_share_the_whole_config():
    b = ExecutionConfigBuilder()
    b.controls["learning_rate"].value = "0.02"
    b.controls["num_workers"].value = "2"
    assert all(tab.value == b.value for tab in b.builders.values())
    b.controls["accum_steps"].value = "0"  # left invalid in the trainer tab
    b.controls["scheduler"].value = "Cosine"
    assert b.controls["accum_steps"].value == "0" and set(b.errors) == {"accum_steps"}
    assert b.value.scheduler == "Cosine" and b.value.accum_steps == 1
    seen = []
    b.observe(lambda change: seen.append(change["new"]), names="value")
    cfg = PyTorchExecutionConfig(precision="64-true", num_workers=1, learning_rate=0.5, pad_eval=True)
    b.value = cfg
    assert seen == [cfg] and b.value == cfg  # one notification, no intermediate configs
    assert b.controls["precision"].value == "64-true" and b.controls["pad_eval"].value is True
    assert b.controls["accum_steps"].value == "0" and not b.valid  # unchanged field: entry kept
    b.load(cfg)
    assert b.valid and b.controls["accum_steps"].value == "1" and seen == [cfg]
    b.set_external_errors({"middle_trim": "too big", "N": "elsewhere"})
    assert b.errors == {"middle_trim": "too big"} and _marked(b.controls["middle_trim"])
    assert b.builders["inference"].errors == {"middle_trim": "too big"}


class _LearningRateForm(w.VBox):
    """A tab with nothing but the public interface: ``value``/``errors`` traits and the dicts."""

    TITLE = "lr"
    value = traitlets.Any()
    errors = traitlets.Dict()

    def __init__(self, initial=None, front_end=None):
        self.text = w.Text("0.001")
        self.controls = {"learning_rate": self.text}
        self.unset_controls, self.messages, self.labels = {}, {}, {}
        super().__init__([self.text])
        self.value = initial or PyTorchExecutionConfig()
        self.text.observe(self._typed, names="value")

    def _typed(self, change):
        try:
            self.value, self.errors = self.value.replace(learning_rate=float(change["new"])), {}
        except ValueError as exc:
            self.errors = {"learning_rate": str(exc)}

    def set_external_errors(self, errors):
        self.external = dict(errors)

    def load(self, config):
        self.value = config


def test_execution_builder_needs_only_the_tabs_public_traits():
    class TwoTabs(ExecutionConfigBuilder):
        BUILDERS = (_LearningRateForm, DataLoaderBuilder)

    b = TwoTabs()
    lr_tab, loader_tab = b.builders.values()
    lr_tab.text.value = "0.25"
    b.controls["num_workers"].value = "3"
    assert (b.value.learning_rate, b.value.num_workers) == (0.25, 3)
    assert lr_tab.value == loader_tab.value == b.value
    lr_tab.text.value = "-1"
    assert set(b.errors) == {"learning_rate"} and b.value.learning_rate == 0.25
    b.value = b.value.replace(pin_memory=True, learning_rate=0.5)
    assert lr_tab.value.learning_rate == 0.5 and b.controls["pin_memory"].value is True
    b.set_external_errors({"num_workers": "too many"})
    assert lr_tab.external == {"num_workers": "too many"} and "num_workers" in b.errors
