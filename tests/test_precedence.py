"""The one precedence resolver: layers applied once, lowest first; the audit names the real layer."""

import pytest

from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig
from ptycho_nb.config.precedence import (Layer, command_layer, config_layer, default_layers, front_end_layer,
                                         layer_defaults, resolve, split_overrides)

CLASSES = {"model": ModelConfig, "execution": PyTorchExecutionConfig}


def _sources(audit):
    return {e.field: (e.value, e.source) for e in audit}


def test_layers_apply_lowest_first_and_the_audit_names_the_last_setter():
    layers = [
        front_end_layer("cli"),
        Layer("config file", {"execution": {"learning_rate": 1e-3, "num_workers": 2}}),
        Layer("cli flag", {"execution": {"learning_rate": 2e-2}, "model": {"N": 32}}),
    ]
    configs, audit = resolve(CLASSES, layers)
    src = _sources(audit)
    assert configs["execution"].learning_rate == 2e-2 and configs["model"].N == 32
    assert src["execution.learning_rate"] == (2e-2, "cli flag")
    assert src["execution.num_workers"] == (2, "config file")
    # a partial file leaves the front end's defaults in place
    assert src["execution.accelerator"] == ("auto", "front_end:cli")
    assert src["execution.enable_progress_bar"] == (True, "front_end:cli")
    assert src["model.gridsize"] == (1, "default")
    assert len(audit) == len(configs["execution"].to_dict()) + len(configs["model"].to_dict())


def test_a_config_object_sets_every_field_of_its_section():
    obj = PyTorchExecutionConfig(learning_rate=5e-4)
    configs, audit = resolve(CLASSES, [front_end_layer("widget"), config_layer("execution", obj, PyTorchExecutionConfig)])
    assert configs["execution"] == obj  # the object beats the front-end defaults entirely
    assert _sources(audit)["execution.accelerator"] == ("cpu", "execution_config")
    with pytest.raises(TypeError, match="expected PyTorchExecutionConfig"):
        config_layer("execution", ModelConfig(), PyTorchExecutionConfig)


def test_unknown_key_names_the_layer_and_the_nearest_field():
    with pytest.raises(ValueError, match=r"config file f\.json \(execution\).*did you mean 'num_workers'"):
        resolve(CLASSES, [Layer("config file", {"execution": {"num_worker": 1}}, where="config file f.json")])


def test_rule_violations_come_from_the_dataclass():
    with pytest.raises(ValueError, match="learning_rate"):
        resolve(CLASSES, [Layer("override", {"execution": {"learning_rate": -1.0}})])


def test_sections_outside_the_run_are_ignored():
    configs, _ = resolve({"model": ModelConfig}, [Layer("config file", {"execution": {"num_workers": 3}})])
    assert set(configs) == {"model"}


def test_split_overrides_routes_flat_and_qualified_names():
    parts = split_overrides({"learning_rate": 0.1, "model.N": 16}, CLASSES)
    assert parts == {"model": {"N": 16}, "execution": {"learning_rate": 0.1}}
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        split_overrides({"learning_rat": 0.1}, CLASSES)
    with pytest.raises(ValueError, match="front_end"):
        front_end_layer("browser")
    assert front_end_layer(None) is None


def test_a_commands_defaults_lie_above_the_front_end_and_below_every_config():
    layers = default_layers("widget", "reconstruct")
    assert [layer.source for layer in layers] == ["front_end:widget", "reconstruct"]
    assert default_layers(None) == [] and command_layer(None) is None
    src = _sources(resolve(CLASSES, layers)[1])
    assert src["execution.pad_eval"] == (True, "reconstruct")
    assert src["execution.accelerator"] == ("auto", "front_end:widget")
    obj = config_layer("execution", PyTorchExecutionConfig(), PyTorchExecutionConfig)
    assert _sources(resolve(CLASSES, [*layers, obj])[1])["execution.pad_eval"] == (False, "execution_config")
    assert layer_defaults("execution", "cli", "reconstruct")["pad_eval"] == (True, "reconstruct")
    assert "pad_eval" not in layer_defaults("execution", "cli")
    with pytest.raises(ValueError, match="command='infer' is invalid"):
        command_layer("infer")
