"""PyTorchExecutionConfig: defaults, every rule, immutability, metadata and the mapping functions."""

import dataclasses
import json

import pytest

from ptycho_nb.config import (CATEGORIES, EXECUTION_CATEGORIES, ConfigError, PyTorchExecutionConfig,
                              fields_by_category)
from ptycho_nb.config.execution import resolve_monitor
from ptycho_nb.engine.datamodule import dataloader_kwargs
from ptycho_nb.engine.trainer import default_callbacks as callbacks
from ptycho_nb.engine.trainer import trainer_kwargs
from ptycho_nb.model.optim import configure_optimizers
from ptycho_nb.config.fields import config_fields

C = PyTorchExecutionConfig

DEFAULTS = {
    "accelerator": "cpu", "devices": "auto", "strategy": "auto", "precision": "32-true",
    "deterministic": True, "gradient_clip_val": None, "accum_steps": 1, "num_workers": 0,
    "pin_memory": False, "persistent_workers": False, "prefetch_factor": None,
    "learning_rate": 1e-3, "scheduler": "Default", "enable_progress_bar": False,
    "plot_every_n_epochs": None,
    "enable_checkpointing": True, "checkpoint_save_top_k": 1, "checkpoint_monitor_metric": "val_loss",
    "checkpoint_mode": "min", "early_stop_patience": 100, "logger_backend": None,
    "inference_batch_size": None, "middle_trim": 0, "pad_eval": False,
}


def test_defaults_match_design_table():
    assert C().to_dict() == DEFAULTS


BAD = [
    ("accelerator", "cpux"), ("accelerator", "CUDA"), ("accelerator", 1),
    ("devices", 0), ("devices", -2), ("devices", "two"), ("devices", 1.5),
    ("strategy", "ddp2"), ("precision", "32"), ("precision", 32),
    ("deterministic", "yes"), ("deterministic", 1),
    ("gradient_clip_val", -0.1), ("gradient_clip_val", "x"),
    ("accum_steps", 0), ("accum_steps", -1), ("accum_steps", 1.5),
    ("num_workers", -1), ("num_workers", True),
    ("pin_memory", None), ("persistent_workers", 1),
    ("prefetch_factor", 0),
    ("learning_rate", 0.0), ("learning_rate", -1e-3), ("learning_rate", float("nan")),
    ("scheduler", "StepLR"), ("scheduler", "default"),
    ("enable_progress_bar", "False"), ("plot_every_n_epochs", -1), ("plot_every_n_epochs", 1.5),
    ("enable_checkpointing", 0),
    ("checkpoint_save_top_k", -2), ("checkpoint_monitor_metric", "val_accuracy"),
    ("checkpoint_mode", "minimum"), ("early_stop_patience", 0),
    ("logger_backend", "wandb"), ("inference_batch_size", 0), ("inference_batch_size", -4),
    ("middle_trim", -1), ("pad_eval", "no"),
]


@pytest.mark.parametrize("name,value", BAD)
def test_bad_value_names_field_value_and_rule(name, value):
    with pytest.raises(ValueError) as info:
        C(**{name: value})
    msg = str(info.value)
    assert name in msg and "invalid" in msg
    assert repr(value) in msg or str(value) in msg
    assert isinstance(info.value, ConfigError) and name in info.value.fields


def test_every_field_has_a_bad_value_test():
    names = {f.name for f in dataclasses.fields(C)}
    tested = {n for n, _ in BAD}
    assert names - tested == set(), "untested rules"


@pytest.mark.parametrize("kw,fields", [
    ({"persistent_workers": True}, ("persistent_workers", "num_workers")),
    ({"prefetch_factor": 2}, ("prefetch_factor", "num_workers")),
])
def test_cross_field_rules_name_both_fields(kw, fields):
    with pytest.raises(ConfigError) as info:
        C(**kw)
    assert info.value.fields == fields
    for f in fields:
        assert f in str(info.value)


def test_workers_make_cross_field_values_valid():
    c = C(num_workers=2, persistent_workers=True, prefetch_factor=4)
    assert c.prefetch_factor == 4


def test_optional_logger_dependency_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard installed")
    with pytest.raises(ValueError, match=r"logger_backend.*tensorboard.*pip install"):
        C(logger_backend="tensorboard")


def test_logger_none_string_normalised():
    assert C(logger_backend="none").logger_backend is None
    assert C(logger_backend="csv").logger_backend == "csv"


def test_numbers_are_normalised():
    c = C(learning_rate=1, gradient_clip_val=2)
    assert isinstance(c.learning_rate, float) and isinstance(c.gradient_clip_val, float)


def test_frozen_and_replace_revalidates():
    c = C()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.num_workers = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="num_workers"):
        dataclasses.replace(c, num_workers=-1)
    with pytest.raises(ValueError, match="num_workerz.*num_workers"):
        c.replace(num_workerz=1)
    assert c.replace(num_workers=3).num_workers == 3


def test_json_round_trip_and_unknown_key():
    c = C(accelerator="auto", num_workers=2, persistent_workers=True, gradient_clip_val=1.0)
    assert C.from_json(c.to_json()) == c
    assert C.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="'learning_rat'.*'learning_rate'"):
        C.from_dict({"learning_rat": 1e-2})


def test_metadata_complete_and_categories():
    for f in config_fields(C):
        m = f.metadata
        assert m["category"] in EXECUTION_CATEGORIES
        assert m["help"] and m["lands"], f.name
        assert m["flags"], f.name
    names = [f.name for cat in EXECUTION_CATEGORIES for f in fields_by_category(C, cat)]
    assert sorted(names) == sorted(DEFAULTS)
    assert [f.name for f in fields_by_category(C, "inference")] == [
        "inference_batch_size", "middle_trim", "pad_eval"]
    with pytest.raises(ValueError, match="'trainer'"):
        fields_by_category(C, "trainr")
    assert set(EXECUTION_CATEGORIES) <= set(CATEGORIES)


# ---------------------------------------------------------------- mapping functions


def test_trainer_kwargs_map_every_trainer_field(tmp_path):
    c = C(accelerator="cpu", devices=1, strategy="auto", precision="64-true", deterministic=False,
          gradient_clip_val=0.5, accum_steps=3, enable_progress_bar=True, enable_checkpointing=False,
          early_stop_patience=7, checkpoint_mode="min", checkpoint_monitor_metric="val_mae")
    kw = trainer_kwargs(c, max_epochs=2, default_root_dir=tmp_path, has_validation=False)
    assert kw["accelerator"] == "cpu" and kw["devices"] == 1 and kw["precision"] == "64-true"
    assert kw["deterministic"] is False and kw["gradient_clip_val"] == 0.5
    assert kw["accumulate_grad_batches"] == 3 and kw["max_epochs"] == 2
    assert kw["enable_progress_bar"] is True and kw["enable_checkpointing"] is False
    assert kw["logger"] is False
    names = [type(cb).__name__ for cb in kw["callbacks"]]
    assert names == ["PtychoProgressBar", "EarlyStopping"]
    es = kw["callbacks"][-1]
    assert es.patience == 7 and es.monitor == "train_mae" and es.mode == "min"

    import lightning

    trainer = lightning.Trainer(**kw)
    assert trainer.max_epochs == 2 and trainer.accumulate_grad_batches == 3
    assert trainer.gradient_clip_val == 0.5


def test_trainer_kwargs_defaults_and_checkpoint_callback(tmp_path):
    import lightning
    from lightning.pytorch.callbacks import ModelCheckpoint

    c = C(checkpoint_save_top_k=-1, logger_backend="csv")
    kw = trainer_kwargs(c, max_epochs=1, default_root_dir=tmp_path)
    assert kw["accelerator"] == "cpu" and kw["enable_progress_bar"] is False
    ck = [cb for cb in kw["callbacks"] if isinstance(cb, ModelCheckpoint)]
    assert len(ck) == 1 and ck[0].save_top_k == -1 and ck[0].monitor == "val_loss"
    assert not any(type(cb).__name__.endswith("ProgressBar") for cb in kw["callbacks"])
    trainer = lightning.Trainer(**kw)
    assert type(trainer.logger).__name__ == "CSVLogger"
    assert trainer.checkpoint_callback is ck[0]


def test_trainer_kwargs_for_a_streamed_fit(tmp_path):
    """A stream has no length: its epochs end after limit_train_batches, the fit after max_minutes;
    neither is set unless asked for. The newest-epoch checkpoint sits beside the best one."""
    import lightning
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer

    from ptycho_nb.engine.callbacks import latest_checkpoint

    assert not {"limit_train_batches", "max_time"} & set(trainer_kwargs(C(), default_root_dir=tmp_path))
    latest = latest_checkpoint(tmp_path / "ck")
    kw = trainer_kwargs(C(logger_backend="csv"), max_epochs=3, default_root_dir=tmp_path,
                        limit_train_batches=4, max_minutes=1.5, extra_callbacks=[latest])
    assert kw["limit_train_batches"] == 4 and kw["max_time"] == {"minutes": 1.5}
    trainer = lightning.Trainer(**kw)
    assert trainer.limit_train_batches == 4 and any(isinstance(cb, Timer) for cb in trainer.callbacks)
    assert type(trainer.logger).__name__ == "CSVLogger"
    checkpoints = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    assert trainer.checkpoint_callback is checkpoints[0] is not latest  # the best one stays first
    assert latest in checkpoints and type(latest) is ModelCheckpoint and latest.monitor is None
    assert latest.filename == "latest" and latest.save_top_k == 1


def test_auto_accelerator_resolved_and_reported(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="ptycho_nb.engine.trainer"):
        kw = trainer_kwargs(C(accelerator="auto"))
    assert kw["accelerator"] in ("cpu", "cuda", "mps")
    assert "resolved to" in caplog.text


def test_resolve_monitor_fallback():
    assert resolve_monitor(C(), has_validation=False) == "train_loss"
    assert resolve_monitor(C(), has_validation=True) == "val_loss"
    assert resolve_monitor(C(checkpoint_monitor_metric="train_nll"), has_validation=True) == "train_nll"


def test_dataloader_kwargs_real_dataloader():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.arange(10.0))
    kw = dataloader_kwargs(C(pin_memory=False), batch_size=4)
    assert kw == {"batch_size": 4, "shuffle": True, "num_workers": 0, "pin_memory": False}
    assert len(list(DataLoader(ds, **kw))) == 3

    c = C(num_workers=1, persistent_workers=True, prefetch_factor=3, inference_batch_size=5)
    kw = dataloader_kwargs(c, batch_size=4, mode="infer")
    assert kw["batch_size"] == 5 and kw["shuffle"] is False
    assert kw["persistent_workers"] is True and kw["prefetch_factor"] == 3
    dl = DataLoader(ds, **kw)  # accepted (not iterated: no worker processes in unit tests)
    assert dl.num_workers == 1 and dl.prefetch_factor == 3 and dl.persistent_workers
    assert dataloader_kwargs(C(), batch_size=4, mode="infer")["batch_size"] == 4
    with pytest.raises(ValueError, match="mode"):
        dataloader_kwargs(C(), batch_size=4, mode="eval")


@pytest.mark.parametrize("name,cls", [("Default", None), ("Exponential", "ExponentialLR"),
                                      ("Cosine", "CosineAnnealingLR"), ("Plateau", "ReduceLROnPlateau")])
def test_configure_optimizers_applies_lr_and_scheduler(name, cls):
    import torch

    p = [torch.nn.Parameter(torch.zeros(2))]
    out = configure_optimizers(C(learning_rate=0.01, scheduler=name), p, max_epochs=5, has_validation=False)
    assert out["optimizer"].param_groups[0]["lr"] == 0.01
    if cls is None:
        assert "lr_scheduler" not in out
    else:
        assert type(out["lr_scheduler"]["scheduler"]).__name__ == cls
    if name == "Plateau":
        assert out["lr_scheduler"]["monitor"] == "train_loss"


def test_inference_trainer_from_the_same_mapping():
    import lightning

    kw = trainer_kwargs(C(accelerator="cpu", precision="bf16-mixed", enable_progress_bar=True,
                          enable_checkpointing=True, logger_backend="csv"), mode="infer")
    assert kw["accelerator"] == "cpu" and kw["precision"] == "bf16-mixed" and kw["devices"] == 1
    assert kw["logger"] is False and kw["enable_checkpointing"] is False and kw["inference_mode"]
    assert [type(cb).__name__ for cb in kw["callbacks"]] == ["PtychoProgressBar"]
    assert lightning.Trainer(**kw).precision == "bf16-mixed"
    with pytest.raises(ValueError, match="mode"):
        trainer_kwargs(C(), mode="eval")


def test_callbacks_checkpoint_dir(tmp_path):
    cbs = callbacks(C(), has_validation=True, checkpoint_dir=tmp_path)
    assert str(tmp_path) in str(cbs[0].dirpath)


def test_importable_from_package_top_level():
    import ptycho_nb

    if not hasattr(ptycho_nb, "PyTorchExecutionConfig"):
        pytest.skip("ptycho_nb/__init__.py re-export not added yet (lead's file)")
    with pytest.raises(ValueError, match="num_workers"):
        ptycho_nb.PyTorchExecutionConfig(num_workers=-1)
