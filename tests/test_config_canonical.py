"""Canonical configs: defaults, rules, backend refusal, round trips."""

import dataclasses
import pathlib

import pytest

from ptycho_nb.config import (CANONICAL_CATEGORIES, ConfigError, InferenceConfig, ModelConfig,
                              TrainingConfig)
from ptycho_nb.config.fields import config_fields


def test_defaults():
    m, t, i = ModelConfig(), TrainingConfig(), InferenceConfig()
    assert (m.N, m.gridsize, m.n_filters_scale, m.amp_activation) == (64, 1, 2, "sigmoid")
    assert (m.object_big, m.probe_big, m.probe_mask) == (True, True, False)
    assert (t.batch_size, t.nepochs, t.neighbor_count) == (16, 50, 4)
    assert (t.mae_weight, t.nll_weight, t.probe_trainable, t.intensity_scale_trainable) == (0.0, 1.0, False, True)
    assert t.backend == i.backend == "pytorch"
    assert t.output_dir == pathlib.Path("training_outputs")


@pytest.mark.parametrize("cls,name,value", [
    (ModelConfig, "N", 63), (ModelConfig, "N", 8), (ModelConfig, "gridsize", 0),
    (ModelConfig, "n_filters_scale", 0), (ModelConfig, "amp_activation", "tanh"),
    (ModelConfig, "object_big", "yes"),
    (ModelConfig, "gaussian_smoothing_sigma", -1.0),
    (TrainingConfig, "batch_size", 0), (TrainingConfig, "nepochs", 0),
    (TrainingConfig, "n_groups", 0), (TrainingConfig, "neighbor_count", 0),
    (TrainingConfig, "validation_fraction", 1.0), (TrainingConfig, "mae_weight", -1.0),
    (TrainingConfig, "seed", -1), (TrainingConfig, "train_data_file", 3),
    (TrainingConfig, "output_dir", ""), (TrainingConfig, "backend", "jax"),
    (InferenceConfig, "n_groups", -1), (InferenceConfig, "backend", "torch"),
])
def test_bad_values_name_the_field(cls, name, value):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    assert name in str(info.value) and name in info.value.fields


@pytest.mark.parametrize("cls", [TrainingConfig, InferenceConfig])
def test_tensorflow_backend_is_a_clear_error(cls):
    with pytest.raises(ValueError, match="backend='tensorflow'.*PyTorch path only"):
        cls(backend="tensorflow")


def test_loss_weights_cross_rule_names_both():
    with pytest.raises(ConfigError) as info:
        TrainingConfig(mae_weight=0.0, nll_weight=0.0)
    assert info.value.fields == ("mae_weight", "nll_weight")


def test_paths_normalised_and_round_trip(tmp_path):
    t = TrainingConfig(train_data_file=str(tmp_path / "a.npz"), output_dir=tmp_path)
    assert isinstance(t.train_data_file, pathlib.Path)
    d = t.to_dict()
    assert d["train_data_file"] == str(tmp_path / "a.npz")
    assert TrainingConfig.from_dict(d) == t
    assert TrainingConfig.from_json(t.to_json(tmp_path / "t.json")) == t
    assert TrainingConfig.from_json(tmp_path / "t.json") == t
    with pytest.raises(FileNotFoundError, match="nope.json"):
        TrainingConfig.from_json(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="'nepoch'.*'nepochs'"):
        TrainingConfig.from_dict({"nepoch": 3})
    m = ModelConfig(N=128, gridsize=2)
    assert ModelConfig.from_json(m.to_json()) == m


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().N = 32  # type: ignore[misc]
    with pytest.raises(ValueError, match="N"):
        dataclasses.replace(ModelConfig(), N=31)


def test_metadata_categories():
    for cls in (ModelConfig, TrainingConfig, InferenceConfig):
        for f in config_fields(cls):
            assert f.metadata["category"] in CANONICAL_CATEGORIES and f.metadata["help"]
