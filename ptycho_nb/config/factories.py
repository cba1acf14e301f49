"""Factories that merge configs with a documented precedence and return a payload with an audit.

Precedence, highest first (design.md §4):

1. explicit overrides (keyword arguments, CLI flags the user typed),
2. the config objects passed in (``execution=``, ``model=``, ``training=``, ``inference=``),
3. front-end defaults (``front_end='cli'`` or ``'widget'``: accelerator 'auto', progress bar on),
4. the dataclass defaults.

The legacy bridge (:func:`~ptycho_nb.config.legacy.update_legacy_dict`) runs before any data is
loaded (CONFIG-001). Every applied override is logged at INFO, one line per field with its value
and source, and returned in the payload's audit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any, Mapping, MutableMapping, NamedTuple

from . import legacy
from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .execution import FRONT_END_DEFAULTS, PyTorchExecutionConfig
from .fields import ConfigError, unknown_key_error

__all__ = [
    "AuditEntry",
    "TrainingPayload",
    "InferencePayload",
    "FRONT_ENDS",
    "create_training_payload",
    "create_inference_payload",
    "merge_config",
    "load_data",
    "check_compatible",
]

log = logging.getLogger(__name__)

FRONT_ENDS = (None, "cli", "widget")


class AuditEntry(NamedTuple):
    """One field's final value and where it came from.

    ``source`` is one of ``'override'``, ``'argument'`` (a positional path), ``'<section>_config'``
    (the config object passed in), ``'front_end:cli'`` / ``'front_end:widget'``, ``'data'`` (N taken
    from the training patterns when nobody set it) or ``'default'``.
    """

    field: str
    value: Any
    source: str


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


def load_data(path: str | os.PathLike) -> Any:
    """Load a scan with ``ptycho_nb.data.load`` (looked up at call time, so tests can record it)."""
    from .. import data as data_mod

    return data_mod.load(path)


def _check_front_end(front_end: str | None) -> None:
    if front_end not in FRONT_ENDS:
        raise ValueError(f"front_end={front_end!r} is invalid: rule is one of {FRONT_ENDS}")


def merge_config(
    cls: type,
    obj: Any | None,
    overrides: Mapping[str, Any],
    *,
    section: str,
    front_end: str | None = None,
    front_end_defaults: Mapping[str, Any] | None = None,
) -> tuple[Any, list[AuditEntry]]:
    """Merge one config with the precedence overrides > obj > front-end defaults > defaults.

    Returns
    -------
    config, audit
        The validated config and one :class:`AuditEntry` per field (``field`` is
        ``'<section>.<name>'``).
    """
    defaults = cls()
    sources: dict[str, str] = {f.name: "default" for f in dataclasses.fields(cls)}
    if obj is not None:
        if not isinstance(obj, cls):
            raise TypeError(f"{section}: expected {cls.__name__}, got {type(obj).__name__}")
        base = obj
        for name in sources:
            sources[name] = f"{section}_config"
    else:
        fe = dict(front_end_defaults or {}) if front_end else {}
        base = dataclasses.replace(defaults, **fe) if fe else defaults
        for name in fe:
            sources[name] = f"front_end:{front_end}"
    merged = dataclasses.replace(base, **dict(overrides)) if overrides else base
    for name in overrides:
        sources[name] = "override"
    audit = []
    for f in dataclasses.fields(cls):
        value = getattr(merged, f.name)
        audit.append(AuditEntry(f"{section}.{f.name}", value, sources[f.name]))
    return merged, audit


def _log_audit(audit: list[AuditEntry], defaults: Mapping[str, Any]) -> None:
    """INFO line per applied override: every non-default source whose value matters."""
    for entry in audit:
        if entry.source == "default":
            continue
        if entry.source.endswith("_config") and defaults.get(entry.field) == entry.value:
            continue  # a config object's untouched default is not an override
        log.info("config %s = %r (source: %s)", entry.field, entry.value, entry.source)


def _split_overrides(
    overrides: Mapping[str, Any] | None, classes: Mapping[str, type]
) -> dict[str, dict[str, Any]]:
    parts: dict[str, dict[str, Any]] = {section: {} for section in classes}
    owner: dict[str, str] = {}
    for section, cls in classes.items():
        for f in dataclasses.fields(cls):
            owner.setdefault(f.name, section)
    for key, value in (overrides or {}).items():
        if "." in key:  # 'execution.accelerator' style
            section, _, name = key.partition(".")
            if section not in classes:
                raise unknown_key_error("overrides", key, [f"{s}.{n}" for n, s in owner.items()])
            if name not in {f.name for f in dataclasses.fields(classes[section])}:
                raise unknown_key_error(f"overrides ({section})", name,
                                        [f.name for f in dataclasses.fields(classes[section])])
            parts[section][name] = value
        elif key in owner:
            parts[owner[key]][key] = value
        else:
            raise unknown_key_error("overrides", key, owner)
    return parts


def _defaults_index(classes: Mapping[str, type]) -> dict[str, Any]:
    out = {}
    for section, cls in classes.items():
        d = cls()
        for f in dataclasses.fields(cls):
            out[f"{section}.{f.name}"] = getattr(d, f.name)
    return out


def check_compatible(
    execution: PyTorchExecutionConfig,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
) -> None:
    """Cross-config rules; ``ConfigError`` names the fields of both configs."""
    if model is not None and execution.middle_trim >= model.N // 2:
        raise ConfigError(
            f"PyTorchExecutionConfig.middle_trim={execution.middle_trim!r} is invalid with "
            f"ModelConfig.N={model.N!r}: rule is middle_trim < N/2",
            fields=("middle_trim", "N"), value=execution.middle_trim,
        )
    if model is not None and training is not None and training.neighbor_count < model.gridsize**2:
        raise ConfigError(
            f"TrainingConfig.neighbor_count={training.neighbor_count!r} is invalid with "
            f"ModelConfig.gridsize={model.gridsize!r}: rule is neighbor_count ≥ gridsize²",
            fields=("neighbor_count", "gridsize"), value=training.neighbor_count,
        )


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _require_file(path: pathlib.Path | None, what: str) -> None:
    if path is not None and not pathlib.Path(path).exists():
        raise FileNotFoundError(f"{what} not found: {path}")


def create_training_payload(
    train_data: Any = None,
    *,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
    execution: PyTorchExecutionConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    front_end: str | None = None,
    test_data: Any = None,
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
    _check_front_end(front_end)
    classes = {"model": ModelConfig, "training": TrainingConfig, "execution": PyTorchExecutionConfig}
    parts = _split_overrides(overrides, classes)
    arg_sources: dict[str, Any] = {}
    data_obj = None
    if train_data is not None:
        if _is_path(train_data):
            arg_sources["train_data_file"] = train_data
        else:
            data_obj = train_data
    test_obj = None
    if test_data is not None:
        if _is_path(test_data):
            arg_sources["test_data_file"] = test_data
        else:
            test_obj = test_data
    train_over = {**arg_sources, **parts["training"]}

    model_cfg, a_model = merge_config(ModelConfig, model, parts["model"], section="model")
    training_cfg, a_train = merge_config(TrainingConfig, training, train_over, section="training")
    for i, e in enumerate(a_train):
        name = e.field.split(".", 1)[1]
        if name in arg_sources and name not in parts["training"]:
            a_train[i] = e._replace(source="argument")
    exec_cfg, a_exec = merge_config(
        PyTorchExecutionConfig, execution, parts["execution"], section="execution",
        front_end=front_end, front_end_defaults=FRONT_END_DEFAULTS,
    )
    check_compatible(exec_cfg, model_cfg, training_cfg)

    if data_obj is None:
        if training_cfg.train_data_file is None:
            raise ValueError(
                "TrainingConfig.train_data_file=None is invalid without in-memory data: "
                "pass a data file path or a PtychoData"
            )
        _require_file(training_cfg.train_data_file, "training data file")
    if test_obj is None:
        _require_file(training_cfg.test_data_file, "test data file")

    audit = a_model + a_train + a_exec
    _log_audit(audit, _defaults_index(classes))

    # CONFIG-001: the bridge runs before any data loading or model construction.
    if legacy_cfg is None:
        from .. import params as params_mod

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
    if data_n is not None and data_n != model_cfg.N and audit[n_entry].source in ("default",):
        model_cfg = dataclasses.replace(model_cfg, N=int(data_n))
        check_compatible(exec_cfg, model_cfg, training_cfg)
        audit[n_entry] = AuditEntry("model.N", int(data_n), "data")
        log.info("model.N = %r (source: data)", int(data_n))
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
    legacy_cfg: MutableMapping[str, Any] | None = None,
    load: bool = True,
) -> InferencePayload:
    """Merge and validate everything an inference run needs.

    Parameters
    ----------
    model : path or model object, optional
        A ``wts.h5.zip`` archive or training output folder (sets ``InferenceConfig.model_path``),
        or an in-memory trained model.
    test_data : path or PtychoData, optional
        Scan to reconstruct (a path sets ``InferenceConfig.test_data_file``).
    inference, execution, overrides, front_end, legacy_cfg, load
        As in :func:`create_training_payload`.

    Raises
    ------
    ValueError
        Invalid values or unknown override keys.
    FileNotFoundError
        A model or data path that does not exist, naming the path.

    Notes
    -----
    ``middle_trim < N/2`` is checked by the engine once the archive's ``ModelConfig`` is known
    (use :func:`check_compatible`).
    """
    _check_front_end(front_end)
    classes = {"inference": InferenceConfig, "execution": PyTorchExecutionConfig}
    parts = _split_overrides(overrides, classes)
    arg_sources: dict[str, Any] = {}
    model_obj = None
    if model is not None:
        if _is_path(model):
            arg_sources["model_path"] = model
        else:
            model_obj = model
    data_obj = None
    if test_data is not None:
        if _is_path(test_data):
            arg_sources["test_data_file"] = test_data
        else:
            data_obj = test_data
    inf_cfg, a_inf = merge_config(
        InferenceConfig, inference, {**arg_sources, **parts["inference"]}, section="inference"
    )
    for i, e in enumerate(a_inf):
        name = e.field.split(".", 1)[1]
        if name in arg_sources and name not in parts["inference"]:
            a_inf[i] = e._replace(source="argument")
    exec_cfg, a_exec = merge_config(
        PyTorchExecutionConfig, execution, parts["execution"], section="execution",
        front_end=front_end, front_end_defaults=FRONT_END_DEFAULTS,
    )
    if model_obj is None:
        if inf_cfg.model_path is None:
            raise ValueError(
                "InferenceConfig.model_path=None is invalid without an in-memory model: pass an "
                "archive path, a training output folder or a model"
            )
        _require_file(inf_cfg.model_path, "model path")
    if data_obj is None:
        if inf_cfg.test_data_file is None:
            raise ValueError(
                "InferenceConfig.test_data_file=None is invalid without in-memory data: pass a "
                "data file path or a PtychoData"
            )
        _require_file(inf_cfg.test_data_file, "test data file")

    audit = a_inf + a_exec
    _log_audit(audit, _defaults_index(classes))

    if legacy_cfg is None:
        from .. import params as params_mod

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
