"""One precedence resolver: named layers of settings → validated configs + an audit of sources.

A run's settings come in layers, lowest precedence first (spec §4.4):

1. the dataclass defaults (source ``'default'``);
2. front-end defaults (``'front_end:cli'``, ``'front_end:widget'``: accelerator 'auto', progress
   bar on) — only the fields they name;
3. the command's defaults (``'reconstruct'``: the whole lit field, ``pad_eval=True``) — only the
   fields they name, whichever front end runs the command;
4. configs: a config *object* passed to the API sets every field (``'<section>_config'``); a
   config *file* (``--config``) sets only the fields it holds (``'config file'``);
5. what the user typed for this run: keyword overrides (``'override'``), CLI flags
   (``'cli flag'``), positional paths (``'argument'``).

:func:`resolve` applies the layers once, validates each config through its dataclass and returns
one :class:`AuditEntry` per field naming the layer its value really came from. Every front end
(API, CLI, widgets) builds its layers and calls it once per run; :func:`log_audit` logs each value
once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from .execution import FRONT_END_DEFAULTS, RECONSTRUCT_DEFAULTS
from .fields import unknown_key_error

__all__ = ["AuditEntry", "Layer", "resolve", "split_overrides", "config_layer", "front_end_layer",
           "command_layer", "default_layers", "layer_defaults", "log_audit", "FRONT_ENDS", "COMMANDS"]

log = logging.getLogger(__name__)

#: Front ends whose defaults can form a layer (None: no front-end layer).
FRONT_ENDS = (None, "cli", "widget")
#: Commands with defaults of their own, by section (``None``: the plain ``train``/``infer``).
COMMAND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "reconstruct": {"execution": RECONSTRUCT_DEFAULTS}}
COMMANDS = (None, *COMMAND_DEFAULTS)


class AuditEntry(NamedTuple):
    """One field's final value and where it came from.

    ``field`` is ``'<section>.<name>'``; ``source`` is the name of the layer that set it last
    (see the module docstring), or ``'data'`` for N taken from the training patterns.
    """

    field: str
    value: Any
    source: str


@dataclasses.dataclass(frozen=True)
class Layer:
    """Settings from one source: ``{section: {field: value}}``.

    Attributes
    ----------
    source : str
        The audit's name for this layer (``'front_end:cli'``, ``'config file'``, ``'cli flag'``...).
    values : mapping
        Section name → field name → value; only the fields this layer sets.
    where : str
        What to name in an error about an unknown key (a file path, "keyword arguments", ...).
    """

    source: str
    values: Mapping[str, Mapping[str, Any]]
    where: str = ""


def front_end_layer(front_end: str | None) -> Layer | None:
    """The front end's defaults as a layer (None for the plain API, which has none)."""
    if front_end not in FRONT_ENDS:
        raise ValueError(f"front_end={front_end!r} is invalid: rule is one of {FRONT_ENDS}")
    if front_end is None:
        return None
    return Layer(f"front_end:{front_end}", {"execution": dict(FRONT_END_DEFAULTS)})


def command_layer(command: str | None) -> Layer | None:
    """The command's own defaults as a layer, source ``command`` (None for ``command=None``)."""
    if command not in COMMANDS:
        raise ValueError(f"command={command!r} is invalid: rule is one of {COMMANDS}")
    if command is None:
        return None
    return Layer(command, {s: dict(v) for s, v in COMMAND_DEFAULTS[command].items()})


def default_layers(front_end: str | None, command: str | None = None) -> list[Layer]:
    """The layers below every config the user gives, lowest first: the front end's defaults,
    then the command's (a command's choice is the more specific one)."""
    return [layer for layer in (front_end_layer(front_end), command_layer(command)) if layer is not None]


def layer_defaults(section: str, front_end: str | None,
                   command: str | None = None) -> dict[str, tuple[Any, str]]:
    """Field → (value, source) of what :func:`default_layers` set in ``section``: the starting
    values a front end shows (CLI help, widgets, the spec tables) and the layer each came from."""
    out: dict[str, tuple[Any, str]] = {}
    for layer in default_layers(front_end, command):
        for name, value in layer.values.get(section, {}).items():
            out[name] = (value, layer.source)
    return out


def config_layer(section: str, obj: Any, cls: type) -> Layer:
    """The layer of a config object passed to the API: it sets every field of its section."""
    if not isinstance(obj, cls):
        raise TypeError(f"{section}: expected {cls.__name__}, got {type(obj).__name__}")
    return Layer(f"{section}_config",
                 {section: {f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)}},
                 where=f"{section}=")


def split_overrides(overrides: Mapping[str, Any] | None, classes: Mapping[str, type], *,
                    where: str = "overrides") -> dict[str, dict[str, Any]]:
    """Route flat (``learning_rate``) or qualified (``'execution.learning_rate'``) keys to sections.

    A flat name goes to the first section in ``classes`` that has it. Unknown names raise
    ``ValueError`` naming the nearest valid one.
    """
    parts: dict[str, dict[str, Any]] = {section: {} for section in classes}
    owner: dict[str, str] = {}
    for section, cls in classes.items():
        for f in dataclasses.fields(cls):
            owner.setdefault(f.name, section)
    for key, value in (overrides or {}).items():
        if "." in key:
            section, _, name = key.partition(".")
            if section not in classes:
                raise unknown_key_error(where, key, [f"{s}.{n}" for n, s in owner.items()])
            names = [f.name for f in dataclasses.fields(classes[section])]
            if name not in names:
                raise unknown_key_error(f"{where} ({section})", name, names)
            parts[section][name] = value
        elif key in owner:
            parts[owner[key]][key] = value
        else:
            raise unknown_key_error(where, key, owner)
    return parts


def resolve(classes: Mapping[str, type], layers: Iterable[Layer]) -> tuple[dict[str, Any], list[AuditEntry]]:
    """Apply ``layers`` (lowest precedence first) over the dataclass defaults of ``classes``.

    Parameters
    ----------
    classes : mapping
        Section name → config dataclass (e.g. ``{'execution': PyTorchExecutionConfig}``).
    layers : iterable of Layer
        Sections a layer names that are not in ``classes`` are ignored (a config file may hold
        the inference section during training).

    Returns
    -------
    configs : dict
        Section name → validated config.
    audit : list of AuditEntry
        One entry per field of every section, in field order.

    Raises
    ------
    ValueError
        An unknown field (naming the layer's ``where`` and the nearest name) or a value that
        breaks a rule (the dataclass's :class:`~ptycho_nb.config.fields.ConfigError`).
    """
    values: dict[str, dict[str, Any]] = {s: {} for s in classes}
    sources: dict[str, dict[str, str]] = {
        s: {f.name: "default" for f in dataclasses.fields(cls)} for s, cls in classes.items()}
    for layer in layers:
        for section, given in layer.values.items():
            if section not in classes:
                continue
            names = sources[section]
            for name, value in given.items():
                if name not in names:
                    raise unknown_key_error(f"{layer.where or layer.source} ({section})", name, names)
                values[section][name] = value
                names[name] = layer.source
    configs: dict[str, Any] = {}
    audit: list[AuditEntry] = []
    for section, cls in classes.items():
        cfg = cls(**values[section])
        configs[section] = cfg
        for f in dataclasses.fields(cls):
            audit.append(AuditEntry(f"{section}.{f.name}", getattr(cfg, f.name), sources[section][f.name]))
    return configs, audit


def log_audit(audit: Sequence[AuditEntry], classes: Mapping[str, type]) -> None:
    """One INFO line per value that did not come from the dataclass default.

    A config object's untouched default is not an override and is not logged either.
    """
    defaults = {s: cls() for s, cls in classes.items()}
    for entry in audit:
        if entry.source == "default":
            continue
        section, _, name = entry.field.partition(".")
        if (entry.source.endswith("_config") and section in defaults
                and getattr(defaults[section], name) == entry.value):
            continue
        log.info("config %s = %r (source: %s)", entry.field, entry.value, entry.source)
