"""The legacy bridge: upstream key names, canonical configs only."""

import pytest

from ptycho_nb import params
from ptycho_nb.config import (InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig,
                              update_legacy_dict)
from ptycho_nb.config.legacy import KEY_MAPPINGS


def test_upstream_key_names():
    cfg: dict = {}
    update_legacy_dict(cfg, ModelConfig(N=128, gridsize=2, object_big=False, probe_mask=True))
    update_legacy_dict(cfg, TrainingConfig(nepochs=3, probe_trainable=True, output_dir="out/x",
                                           train_data_file="a.npz"))
    for key in ("N", "gridsize", "object.big", "probe.big", "probe.mask", "probe.trainable",
                "intensity_scale.trainable", "nepochs", "batch_size", "output_prefix",
                "mae_weight", "nll_weight", "n_filters_scale", "train_data_file_path"):
        assert key in cfg, key
    assert cfg["N"] == 128 and cfg["object.big"] is False and cfg["probe.mask"] is True
    assert cfg["probe.trainable"] is True and cfg["output_prefix"] == "out/x"
    assert cfg["train_data_file_path"] == "a.npz"
    assert "object_big" not in cfg and "output_dir" not in cfg


def test_execution_config_never_enters_cfg():
    cfg: dict = {}
    with pytest.raises(TypeError, match="PyTorchExecutionConfig never enters params.cfg"):
        update_legacy_dict(cfg, PyTorchExecutionConfig())
    assert cfg == {}
    with pytest.raises(TypeError):
        update_legacy_dict(cfg, {"N": 64})  # type: ignore[arg-type]
    update_legacy_dict(cfg, ModelConfig())
    update_legacy_dict(cfg, TrainingConfig())
    update_legacy_dict(cfg, InferenceConfig())
    exec_names = {f for f in PyTorchExecutionConfig().to_dict()}
    assert exec_names.isdisjoint(cfg), exec_names & set(cfg)


def test_none_does_not_erase():
    cfg = {"test_data_file_path": "b.npz"}
    update_legacy_dict(cfg, TrainingConfig())
    assert cfg["test_data_file_path"] == "b.npz"


def test_params_module():
    assert isinstance(params.cfg, dict)
    assert set(KEY_MAPPINGS.values()) >= {"object.big", "probe.trainable", "output_prefix"}
    with pytest.raises(KeyError, match="update_legacy_dict"):
        params.get("definitely-not-set")
