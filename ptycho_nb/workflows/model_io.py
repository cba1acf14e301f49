"""Save and load trained models as ``wts.h5.zip`` archives (never pickles).

The archive (see :mod:`ptycho_nb.workflows.archive`) holds the canonical configs, the legacy
params dict, the scaling statistics and the module's state dict (network weights, the probe, the
intensity scale), so a model file is self-describing and loads without the training data.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.legacy import update_legacy_dict
from .archive import load_state_dict_strict, read_archive, write_archive

__all__ = ["save_model", "load_model", "ARCHIVE_NAME", "resolve_archive_path"]

#: File name of the archive inside a training output folder.
ARCHIVE_NAME = "wts.h5.zip"
MODEL_NAME = "PINNModule"


def _module_of(obj: Any) -> Any:
    from ..model.lightning_module import PINNModule

    module = getattr(obj, "module", obj)
    if not isinstance(module, PINNModule):
        raise TypeError(f"save_model: expected a TrainResult or a PINNModule, got {type(obj).__name__}")
    return module


def save_model(obj: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> pathlib.Path:
    """Write a trained model (a ``TrainResult`` or ``PINNModule``) to a ``wts.h5.zip`` archive.

    ``path`` may be a folder, which then receives ``wts.h5.zip``. Writes atomically and refuses to
    overwrite an existing file unless ``overwrite=True``.
    """
    module = _module_of(obj)
    target = pathlib.Path(path)
    if target.is_dir() or target.suffix == "":
        target = target / ARCHIVE_NAME
    params: dict[str, Any] = {}
    update_legacy_dict(params, module.model_config)
    update_legacy_dict(params, module.training_config)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return write_archive(
        target,
        state_dict=state,
        configs={"model": module.model_config.to_dict(), "training": module.training_config.to_dict()},
        params=params,
        scaling=dict(module.scaling),
        model_name=MODEL_NAME,
        extra={"network": dict(module.network_kwargs), "probe_shape": list(module.probe.shape)},
        overwrite=overwrite,
    )


def resolve_archive_path(path: str | os.PathLike[str]) -> pathlib.Path:
    """The archive file for ``path``: the file itself, or ``wts.h5.zip`` inside a folder."""
    p = pathlib.Path(path)
    if p.is_dir():
        p = p / ARCHIVE_NAME
    if not p.exists():
        raise FileNotFoundError(f"model archive not found: {p}")
    return p


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a ``PINNModule`` from a ``wts.h5.zip`` archive (or a folder holding one), in eval mode.

    Raises
    ------
    FileNotFoundError
        No archive at ``path``.
    ValueError
        A corrupt, tampered, foreign (e.g. TensorFlow) or incompatible archive, naming what was
        found.
    """
    from ..model.lightning_module import PINNModule

    archive = read_archive(resolve_archive_path(path))
    if archive.manifest.get("model_name") != MODEL_NAME:
        raise ValueError(f"{path}: archive holds model {archive.manifest.get('model_name')!r}, "
                         f"expected {MODEL_NAME!r}")
    for key in ("model", "training"):
        if key not in archive.configs:
            raise ValueError(f"{path}: configs.json lacks the {key!r} config")
    extra = archive.extra or {}
    module = PINNModule(
        model=ModelConfig.from_dict(archive.configs["model"]),
        training=TrainingConfig.from_dict(archive.configs["training"]),
        probe=None,
        probe_shape=extra.get("probe_shape") or list(archive.state_dict["probe"].shape),
        scaling=archive.scaling,
        network=extra.get("network") or {},
    )
    load_state_dict_strict(module, archive.state_dict)
    module.eval()
    return module
