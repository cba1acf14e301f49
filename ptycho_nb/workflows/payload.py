"""Payload preparation: resolve a run's settings once, bridge to the legacy dict, load the data.

Every front end (the Python API, the CLI, the notebook panel) prepares a run here. Settings are
resolved in one pass of :func:`ptycho_nb.config.precedence.resolve` over named layers, highest
precedence last (spec §4.4):

1. the dataclass defaults,
2. front-end defaults (``front_end='cli'`` or ``'widget'``: accelerator 'auto', progress bar on),
3. the command's defaults (``command='reconstruct'``: the whole lit field, ``pad_eval=True``),
4. the config objects passed in (``execution=``, ``model=``, ``training=``, ``inference=``),
5. ``layers`` the front end read for this run (CLI: the ``--config`` file, then typed flags),
6. positional paths and keyword overrides.

The legacy bridge (:func:`~ptycho_nb.config.legacy.update_legacy_dict`) runs before any data is
loaded (CONFIG-001). Every value that did not come from a dataclass default is logged once at INFO
with its source, and returned in the payload's audit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any, Mapping, MutableMapping, Sequence

from .. import params as params_mod
from ..config import legacy
from ..config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ..config.compat import check_compatible
from ..config.execution import PyTorchExecutionConfig
from ..config.precedence import (AuditEntry, Layer, config_layer, default_layers, log_audit, resolve,
                                 split_overrides)
from ..data.container import PtychoData
from ..data.io import load as load_data
from ..model.lightning_module import PINNModule
from ..model.catalog import is_pretrained, resolve_archive_path

__all__ = [
    "TrainingPayload",
    "InferencePayload",
    "create_training_payload",
    "create_inference_payload",
]

log = logging.getLogger(__name__)

TRAIN_CLASSES: dict[str, type] = {"model": ModelConfig, "training": TrainingConfig,
                                  "execution": PyTorchExecutionConfig}
INFER_CLASSES: dict[str, type] = {"inference": InferenceConfig, "execution": PyTorchExecutionConfig}


@dataclasses.dataclass(frozen=True)
class TrainingPayload:
    """Everything a training run needs: validated configs, data, legacy params and the audit."""

    model: ModelConfig
    training: TrainingConfig
    execution: PyTorchExecutionConfig
    train_data: Any
    test_data: Any | None
    params: dict[str, Any]
    audit: tuple[AuditEntry, ...]


@dataclasses.dataclass(frozen=True)
class InferencePayload:
    """Everything an inference run needs (the model config comes from the archive)."""

    inference: InferenceConfig
    execution: PyTorchExecutionConfig
    model: Any  # a path to the archive/folder, or an in-memory model object
    test_data: Any
    params: dict[str, Any]
    audit: tuple[AuditEntry, ...]


def _layers(classes: Mapping[str, type], *, front_end: str | None, objects: Mapping[str, Any],
            layers: Sequence[Layer], arguments: Mapping[str, Mapping[str, Any]],
            overrides: Mapping[str, Any] | None, command: str | None = None) -> list[Layer]:
    """The run's layers, lowest precedence first (see the module docstring)."""
    out: list[Layer] = default_layers(front_end, command)
    for section, obj in objects.items():
        if obj is not None:
            out.append(config_layer(section, obj, classes[section]))
    out.extend(layers)
    out.append(Layer("argument", arguments))
    out.append(Layer("override", split_overrides(overrides, classes, where="overrides"), where="overrides"))
    return out


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _take_input(value: Any, field: str, arguments: dict[str, Any], what: str) -> Any:
    """An input given as a path becomes the ``field`` of the arguments layer (None is returned);
    anything else is the in-memory object itself, checked here so a wrong type is named before
    it fails deep inside (``what``: 'data' or 'model')."""
    if value is not None and _is_path(value):
        arguments[field] = value
        return None
    if value is None:
        return None
    if what == "data" and not isinstance(value, PtychoData):
        raise TypeError(f"{field.removesuffix('_file')}: expected a PtychoData or the path of a data "
                        f"file (str or os.PathLike), got {type(value).__name__}")
    if what == "model" and not isinstance(getattr(value, "module", value), PINNModule):
        raise TypeError("model: expected a trained model (a TrainResult or a PINNModule), a model "
                        "archive path, a training output folder or 'pretrained:NAME', got "
                        f"{type(value).__name__}")
    return value


def _require_file(path: pathlib.Path | None, what: str) -> None:
    if path is not None and not pathlib.Path(path).exists():
        raise FileNotFoundError(f"{what} not found: {path}")


def _require_model(path: pathlib.Path | None, what: str) -> None:
    """Like :func:`_require_file`, but ``pretrained:NAME`` must name a packaged model (the error
    lists the available ones); the reference itself is kept, and resolved when loaded."""
    if path is not None and is_pretrained(path):
        try:
            resolve_archive_path(path)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None
        return
    _require_file(path, what)


def create_training_payload(
    train_data: Any = None,
    *,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
    execution: PyTorchExecutionConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    front_end: str | None = None,
    test_data: Any = None,
    layers: Sequence[Layer] = (),
    legacy_cfg: MutableMapping[str, Any] | None = None,
    load: bool = True,
) -> TrainingPayload:
    """Merge and validate everything a training run needs.

    Parameters
    ----------
    train_data : path or PtychoData, optional
        Training scan, as a file path (sets ``TrainingConfig.train_data_file``) or in memory.
        When omitted, ``training.train_data_file`` (or an override) must name the file.
    model, training, execution : config objects, optional
    overrides : mapping, optional
        Field name (or ``'section.field'``) → value; highest precedence. Unknown keys raise
        ``ValueError`` naming the nearest valid name.
    front_end : {None, 'cli', 'widget'}
        Selects the front-end defaults (accelerator 'auto', progress bar on).
    test_data : path or PtychoData, optional
        Held-out scan (a path sets ``TrainingConfig.test_data_file``).
    layers : sequence of Layer
        Settings a front end read for this run (the CLI: ``--config`` file, typed flags), above
        the config objects and below positional paths and keyword overrides.
    legacy_cfg : dict, optional
        The legacy dict to fill; defaults to ``ptycho_nb.params.cfg``.
    load : bool
        Load data files (after the legacy bridge); False leaves ``train_data`` as the path.

    Raises
    ------
    ValueError
        Invalid values (:class:`ConfigError`) or unknown override keys.
    FileNotFoundError
        A data file that does not exist, naming the path.
    """
    arguments: dict[str, Any] = {}
    data_obj = _take_input(train_data, "train_data_file", arguments, "data")
    test_obj = _take_input(test_data, "test_data_file", arguments, "data")
    configs, audit = resolve(TRAIN_CLASSES, _layers(
        TRAIN_CLASSES, front_end=front_end,
        objects={"model": model, "training": training, "execution": execution},
        layers=layers, arguments={"training": arguments}, overrides=overrides))
    model_cfg, training_cfg, exec_cfg = configs["model"], configs["training"], configs["execution"]
    log_audit(audit, TRAIN_CLASSES)
    check_compatible(exec_cfg, model_cfg, training_cfg)

    if data_obj is None:
        if training_cfg.train_data_file is None:
            raise ValueError(
                "TrainingConfig.train_data_file=None is invalid without in-memory data: "
                "pass a data file path or a PtychoData"
            )
        _require_file(training_cfg.train_data_file, "training data file")
    elif training_cfg.train_data_file is not None:
        # The file would be recorded as the model's training data while the in-memory scan is
        # what trains it: refuse the pair rather than archive a false record.
        raise ValueError(f"TrainingConfig.train_data_file={str(training_cfg.train_data_file)!r} is "
                         "invalid together with in-memory training data: pass one or the other")
    if test_obj is None:
        _require_file(training_cfg.test_data_file, "test data file")
    elif training_cfg.test_data_file is not None:
        raise ValueError(f"TrainingConfig.test_data_file={str(training_cfg.test_data_file)!r} is "
                         "invalid together with in-memory test data: pass one or the other")
    _require_model(training_cfg.init_model, "TrainingConfig.init_model")

    # CONFIG-001: the bridge runs before any data loading or model construction.
    if legacy_cfg is None:
        legacy_cfg = params_mod.cfg
    legacy.update_legacy_dict(legacy_cfg, model_cfg)
    legacy.update_legacy_dict(legacy_cfg, training_cfg)
    params = dict(legacy_cfg)

    if data_obj is None:
        data_obj = load_data(training_cfg.train_data_file) if load else training_cfg.train_data_file
    if test_obj is None and training_cfg.test_data_file is not None:
        test_obj = load_data(training_cfg.test_data_file) if load else training_cfg.test_data_file

    # N follows the data unless someone set it: a 128×128 scan should not need `N=128` typed.
    data_n = getattr(getattr(data_obj, "diffraction", None), "shape", (None,))[-1]
    n_entry = next(i for i, e in enumerate(audit) if e.field == "model.N")
    if data_n is not None and data_n != model_cfg.N and audit[n_entry].source == "default":
        model_cfg = dataclasses.replace(model_cfg, N=int(data_n))
        check_compatible(exec_cfg, model_cfg, training_cfg)
        audit[n_entry] = AuditEntry("model.N", int(data_n), "data")
        log_audit(audit[n_entry:n_entry + 1], TRAIN_CLASSES)
        legacy.update_legacy_dict(legacy_cfg, model_cfg)
        params = dict(legacy_cfg)

    return TrainingPayload(
        model=model_cfg, training=training_cfg, execution=exec_cfg, train_data=data_obj,
        test_data=test_obj, params=params, audit=tuple(audit),
    )


def create_inference_payload(
    model: Any = None,
    test_data: Any = None,
    *,
    inference: InferenceConfig | None = None,
    execution: PyTorchExecutionConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    front_end: str | None = None,
    layers: Sequence[Layer] = (),
    legacy_cfg: MutableMapping[str, Any] | None = None,
    load: bool = True,
    require_model: bool = True,
    command: str | None = None,
) -> InferencePayload:
    """Merge and validate everything an inference run needs.

    Parameters
    ----------
    model : path or model object, optional
        A ``wts.h5.zip`` archive or training output folder (sets ``InferenceConfig.model_path``),
        or an in-memory trained model.
    test_data : path or PtychoData, optional
        Scan to reconstruct (a path sets ``InferenceConfig.test_data_file``).
    inference, execution, overrides, front_end, layers, legacy_cfg, load
        As in :func:`create_training_payload`.
    require_model : bool
        Refuse a payload without a model (``infer``); ``reconstruct`` can run without one.
    command : {None, 'reconstruct'}
        The command's own defaults (:data:`~ptycho_nb.config.execution.RECONSTRUCT_DEFAULTS`:
        the whole lit field), above the front end's and below the configs passed in; their audit
        source is the command's name. None (``infer``): the dataclass defaults.

    Raises
    ------
    ValueError
        Invalid values or unknown override keys.
    FileNotFoundError
        A model or data path that does not exist, naming the path.

    Notes
    -----
    ``middle_trim < N/2`` is checked by the engine once the archive's ``ModelConfig`` is known
    (:func:`~ptycho_nb.config.compat.check_compatible`).
    """
    arguments: dict[str, Any] = {}
    model_obj = _take_input(model, "model_path", arguments, "model")
    data_obj = _take_input(test_data, "test_data_file", arguments, "data")
    configs, audit = resolve(INFER_CLASSES, _layers(
        INFER_CLASSES, front_end=front_end, objects={"inference": inference, "execution": execution},
        layers=layers, arguments={"inference": arguments}, overrides=overrides, command=command))
    inf_cfg, exec_cfg = configs["inference"], configs["execution"]
    log_audit(audit, INFER_CLASSES)
    if model_obj is None and (require_model or inf_cfg.model_path is not None):
        if inf_cfg.model_path is None:
            raise ValueError(
                "InferenceConfig.model_path=None is invalid without an in-memory model: pass an "
                "archive path, a training output folder or a model"
            )
        _require_model(inf_cfg.model_path, "model path")
    if data_obj is None:
        if inf_cfg.test_data_file is None:
            raise ValueError(
                "InferenceConfig.test_data_file=None is invalid without in-memory data: pass a "
                "data file path or a PtychoData"
            )
        _require_file(inf_cfg.test_data_file, "test data file")

    if legacy_cfg is None:
        legacy_cfg = params_mod.cfg
    legacy.update_legacy_dict(legacy_cfg, inf_cfg)
    params = dict(legacy_cfg)

    if data_obj is None:
        data_obj = load_data(inf_cfg.test_data_file) if load else inf_cfg.test_data_file
    return InferencePayload(
        inference=inf_cfg, execution=exec_cfg,
        model=model_obj if model_obj is not None else inf_cfg.model_path,
        test_data=data_obj, params=params, audit=tuple(audit),
    )
