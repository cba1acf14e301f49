"""Payload preparation: precedence matrix, audit and logging, errors, CONFIG-001 ordering."""

import logging

import pytest

from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.config import legacy
from ptycho_nb.config.precedence import Layer
from ptycho_nb.workflows import payload as payload_mod
from ptycho_nb.workflows.payload import create_inference_payload, create_training_payload


@pytest.fixture
def npz(tmp_path):
    p = tmp_path / "scan.npz"
    p.write_bytes(b"stub")
    return p


@pytest.fixture
def calls(monkeypatch):
    """Record the order of the bridge and the data loader (the loader is stubbed)."""
    order = []
    real_bridge = legacy.update_legacy_dict

    def bridge(cfg, config):
        order.append(("bridge", type(config).__name__))
        return real_bridge(cfg, config)

    def load(path):
        order.append(("load", str(path)))
        return {"loaded": str(path)}

    monkeypatch.setattr(legacy, "update_legacy_dict", bridge)
    monkeypatch.setattr(payload_mod, "load_data", load)
    return order


def _src(payload, field):
    return {e.field: (e.value, e.source) for e in payload.audit}[field]


def test_dataclass_defaults(npz, calls):
    p = create_training_payload(npz, legacy_cfg={})
    assert p.execution == PyTorchExecutionConfig()
    assert _src(p, "execution.accelerator") == ("cpu", "default")
    assert _src(p, "training.train_data_file")[1] == "argument"
    assert p.train_data == {"loaded": str(npz)}


@pytest.mark.parametrize("front_end", ["cli", "widget"])
def test_front_end_defaults(npz, calls, front_end):
    p = create_training_payload(npz, front_end=front_end, legacy_cfg={})
    assert p.execution.accelerator == "auto" and p.execution.enable_progress_bar is True
    assert _src(p, "execution.accelerator") == ("auto", f"front_end:{front_end}")


def test_execution_object_beats_front_end_defaults(npz, calls):
    ex = PyTorchExecutionConfig(accelerator="cpu", num_workers=0, learning_rate=5e-4)
    p = create_training_payload(npz, execution=ex, front_end="cli", legacy_cfg={})
    assert p.execution.accelerator == "cpu" and p.execution.enable_progress_bar is False
    assert _src(p, "execution.learning_rate") == (5e-4, "execution_config")


def test_overrides_beat_everything_and_are_logged(npz, calls, caplog):
    ex = PyTorchExecutionConfig(learning_rate=5e-4, accum_steps=2)
    with caplog.at_level(logging.INFO, logger="ptycho_nb.config.precedence"):
        p = create_training_payload(
            npz, execution=ex, front_end="cli", legacy_cfg={},
            model=ModelConfig(N=32), training=TrainingConfig(batch_size=8),
            overrides={"learning_rate": 1e-2, "accelerator": "auto", "nepochs": 2, "model.N": 128},
        )
    assert p.execution.learning_rate == 1e-2 and p.execution.accum_steps == 2
    assert p.execution.accelerator == "auto"
    assert p.model.N == 128 and p.training.nepochs == 2 and p.training.batch_size == 8
    assert _src(p, "execution.learning_rate") == (1e-2, "override")
    assert _src(p, "execution.accum_steps") == (2, "execution_config")
    assert _src(p, "training.batch_size") == (8, "training_config")
    lines = [r.getMessage() for r in caplog.records]
    assert "config execution.learning_rate = 0.01 (source: override)" in lines
    assert "config execution.accum_steps = 2 (source: execution_config)" in lines
    assert "config model.N = 128 (source: override)" in lines
    assert all(r.levelno == logging.INFO for r in caplog.records)
    # one line per field
    assert len([ln for ln in lines if "learning_rate" in ln]) == 1
    # untouched defaults of config objects are not logged
    assert not any("num_workers" in ln for ln in lines)


def test_override_validation_error_names_field(npz, calls):
    with pytest.raises(ValueError, match="num_workers=-1"):
        create_training_payload(npz, overrides={"num_workers": -1}, legacy_cfg={})


@pytest.mark.parametrize("key,near", [("learning_rat", "learning_rate"), ("acelerator", "accelerator"),
                                      ("batchsize", "batch_size"), ("execution.num_worker", "num_workers")])
def test_unknown_override_nearest_name(npz, calls, key, near):
    with pytest.raises(ValueError, match=f"did you mean '{near}'"):
        create_training_payload(npz, overrides={key: 1}, legacy_cfg={})
    assert calls == []


def test_missing_files(tmp_path, npz, calls):
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        create_training_payload(missing, legacy_cfg={})
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        create_training_payload(npz, test_data=missing, legacy_cfg={})
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        create_inference_payload(tmp_path / "missing.zip", npz, legacy_cfg={})
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        create_inference_payload(npz, missing, legacy_cfg={})
    with pytest.raises(ValueError, match="train_data_file"):
        create_training_payload(legacy_cfg={})
    assert calls == []  # nothing bridged or loaded when validation fails


def test_config001_bridge_runs_before_loading(npz, calls):
    legacy_cfg = {}
    p = create_training_payload(npz, test_data=npz, legacy_cfg=legacy_cfg)
    kinds = [c[0] for c in calls]
    assert kinds == ["bridge", "bridge", "load", "load"]
    assert legacy_cfg["N"] == 64 and p.params == legacy_cfg
    calls.clear()
    create_inference_payload(npz, npz, legacy_cfg={})
    assert [c[0] for c in calls] == ["bridge", "load"]


def test_default_bridge_target_is_params_cfg(npz, calls, monkeypatch):
    from ptycho_nb import params

    monkeypatch.setattr(params, "cfg", {})
    create_training_payload(npz, model=ModelConfig(N=32))
    assert params.cfg["N"] == 32
    assert "accelerator" not in params.cfg


def test_in_memory_data_not_loaded(calls):
    import ptycho_nb

    data = ptycho_nb.simulate(N=32, n_positions=8, seed=0)
    p = create_training_payload(data, legacy_cfg={})
    # the object itself, never loaded (the bridge runs again once N follows the data)
    assert p.train_data is data and "load" not in [c[0] for c in calls] and calls[0][0] == "bridge"
    assert p.model.N == 32


def test_in_memory_data_of_another_type_is_named(calls):
    with pytest.raises(TypeError, match=r"train_data: expected a PtychoData .* got object"):
        create_training_payload(object(), legacy_cfg={})


def test_cross_config_rules(npz, calls):
    with pytest.raises(ValueError) as info:
        create_training_payload(npz, model=ModelConfig(N=32), overrides={"middle_trim": 16}, legacy_cfg={})
    assert info.value.fields == ("middle_trim", "N")
    with pytest.raises(ValueError) as info:
        create_training_payload(npz, overrides={"gridsize": 3}, legacy_cfg={})
    assert info.value.fields == ("neighbor_count", "gridsize")


def test_inference_payload(tmp_path, npz, calls):
    model_dir = tmp_path / "train_out"
    model_dir.mkdir()
    p = create_inference_payload(model_dir, npz, front_end="widget",
                                 overrides={"inference_batch_size": 7, "n_groups": 3}, legacy_cfg={})
    assert p.model == model_dir and p.inference.n_groups == 3
    assert p.execution.inference_batch_size == 7 and p.execution.accelerator == "auto"
    assert p.params["test_data_file_path"] == str(npz)
    with pytest.raises(ValueError, match="nearest|did you mean 'inference_batch_size'"):
        create_inference_payload(model_dir, npz, overrides={"inference_batchsize": 2}, legacy_cfg={})
    with pytest.raises(ValueError, match="front_end"):
        create_inference_payload(model_dir, npz, front_end="gui", legacy_cfg={})


def test_reconstruct_defaults_lie_between_the_front_end_and_the_configs(tmp_path, npz, calls):
    """command='reconstruct' (what reconstruct(), the CLI's reconstruct and the panel pass):
    pad_eval=True unless a config object, a config file or an override says otherwise."""
    model_dir = tmp_path / "train_out"
    model_dir.mkdir()
    p = create_inference_payload(model_dir, npz, front_end="cli", command="reconstruct", legacy_cfg={})
    assert _src(p, "execution.pad_eval") == (True, "reconstruct")
    assert _src(p, "execution.accelerator") == ("auto", "front_end:cli")
    assert _src(create_inference_payload(model_dir, npz, legacy_cfg={}), "execution.pad_eval") == (
        False, "default")  # infer's
    p = create_inference_payload(model_dir, npz, command="reconstruct", legacy_cfg={},
                                 execution=PyTorchExecutionConfig())
    assert _src(p, "execution.pad_eval") == (False, "execution_config")
    p = create_inference_payload(model_dir, npz, command="reconstruct", legacy_cfg={},
                                 layers=[Layer("config file", {"execution": {"pad_eval": False}})])
    assert _src(p, "execution.pad_eval") == (False, "config file")
    p = create_inference_payload(model_dir, npz, command="reconstruct", legacy_cfg={},
                                 overrides={"pad_eval": False})
    assert _src(p, "execution.pad_eval") == (False, "override")
    with pytest.raises(ValueError, match="command='demo' is invalid"):
        create_inference_payload(model_dir, npz, command="demo", legacy_cfg={})
