"""The legacy bridge (CONFIG-001): canonical configs → the flat upstream-style params dict."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, MutableMapping

from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .execution import PyTorchExecutionConfig

__all__ = ["KEY_MAPPINGS", "legacy_key", "to_legacy_dict", "update_legacy_dict"]

#: Canonical field name → upstream key name, where they differ (upstream ``KEY_MAPPINGS``).
KEY_MAPPINGS: dict[str, str] = {
    "object_big": "object.big",
    "probe_big": "probe.big",
    "probe_mask": "probe.mask",
    "probe_trainable": "probe.trainable",
    "intensity_scale_trainable": "intensity_scale.trainable",
    "output_dir": "output_prefix",
    "train_data_file": "train_data_file_path",
    "test_data_file": "test_data_file_path",
}

_CANONICAL = (ModelConfig, TrainingConfig, InferenceConfig)


def legacy_key(field_name: str) -> str:
    """Upstream key name of a canonical field."""
    return KEY_MAPPINGS.get(field_name, field_name)


def to_legacy_dict(config: ModelConfig | TrainingConfig | InferenceConfig) -> dict[str, Any]:
    """Flat dict with upstream key names for one canonical config (paths as strings).

    Raises
    ------
    TypeError
        For an execution config (runtime knobs never enter the legacy dict) or any non-canonical
        object.
    """
    if isinstance(config, PyTorchExecutionConfig):
        raise TypeError(
            "update_legacy_dict: PyTorchExecutionConfig never enters params.cfg (CONFIG-001: only "
            "ModelConfig, TrainingConfig and InferenceConfig are bridged)"
        )
    if not isinstance(config, _CANONICAL):
        raise TypeError(
            f"update_legacy_dict: expected ModelConfig, TrainingConfig or InferenceConfig, "
            f"got {type(config).__name__}"
        )
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[legacy_key(f.name)] = str(v) if isinstance(v, pathlib.PurePath) else v
    return out


def update_legacy_dict(
    cfg: MutableMapping[str, Any], config: ModelConfig | TrainingConfig | InferenceConfig
) -> MutableMapping[str, Any]:
    """Fill ``cfg`` (e.g. ``ptycho_nb.params.cfg``) from a canonical config; return ``cfg``.

    Call it before any data loading or model construction (CONFIG-001). ``None`` values do not
    overwrite keys already present (a TrainingConfig without a data file keeps the path set by an
    earlier config).
    """
    for key, value in to_legacy_dict(config).items():
        if value is None and key in cfg:
            continue
        cfg[key] = value
    return cfg
