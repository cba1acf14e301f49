"""Field metadata: the one place each configuration knob is described.

Every configuration field is declared with :func:`config_field`, which stores its category, help
text, CLI flag(s), widget hints, validation rule and where the value lands (Trainer argument,
DataLoader argument, callback, optimizer, stitching, ...) in ``dataclasses.field(metadata=...)``.
Validation (:func:`validate_fields`), the CLI parsers (``cli_args``), the spec tables
(``ptycho_nb.spec``) and the notebook widget builders are all derived from this metadata.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import pathlib
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "EXECUTION_CATEGORIES",
    "CANONICAL_CATEGORIES",
    "CATEGORIES",
    "KINDS",
    "ConfigError",
    "config_field",
    "fields_by_category",
    "config_fields",
    "describe_rule",
    "format_value",
    "nearest_name",
    "unknown_key_error",
    "validate_fields",
]

#: Categories of :class:`~ptycho_nb.config.execution.PyTorchExecutionConfig` fields, in display order.
EXECUTION_CATEGORIES: tuple[str, ...] = (
    "trainer",
    "dataloader",
    "optimizer",
    "ux",
    "checkpoint",
    "logging",
    "inference",
)
#: Categories of the canonical (physics / data / training) configs.
CANONICAL_CATEGORIES: tuple[str, ...] = ("model", "data", "training", "loss", "refinement", "output")
CATEGORIES: tuple[str, ...] = EXECUTION_CATEGORIES + CANONICAL_CATEGORIES

#: Value kinds understood by validation, the CLI converters and the widget builders.
KINDS: tuple[str, ...] = ("bool", "int", "float", "str", "path", "int_or_auto", "bool_or_auto")


class ConfigError(ValueError):
    """A configuration value broke a rule.

    Attributes
    ----------
    fields : tuple of str
        The field name(s) involved; a cross-field rule names every field it relates.
    value : object
        The offending value (of the first field).
    """

    def __init__(self, message: str, fields: Sequence[str] = (), value: Any = None) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)
        self.value = value


def config_field(
    default: Any = dataclasses.MISSING,
    *,
    category: str,
    help: str,
    kind: str,
    flags: Sequence[str] = (),
    neg_flags: Sequence[str] = (),
    modes: Sequence[str] = (),
    lands: str = "",
    choices: Sequence[Any] | None = None,
    min: float | None = None,
    min_exclusive: bool = False,
    max: float | None = None,
    max_exclusive: bool = False,
    optional: bool = False,
    units: str | None = None,
    rule: str | None = None,
    widget: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a configuration field together with all of its metadata.

    Parameters
    ----------
    default : object
        The dataclass default (must satisfy the rules).
    category : str
        One of :data:`CATEGORIES`.
    help : str
        One-sentence description (CLI help, widget tooltip, spec table).
    kind : str
        One of :data:`KINDS`; drives type checks, CLI conversion and the widget type.
    flags, neg_flags : sequence of str
        CLI flag(s) that set the field (``neg_flags``: flags that set a bool field to False).
    modes : sequence of str
        CLI commands (``'train'``, ``'infer'``) that expose the flags.
    lands : str
        Where the value is applied, e.g. ``"Trainer(accelerator)"``.
    choices : sequence, optional
        Allowed values.
    min, max : float, optional
        Bounds; ``min_exclusive``/``max_exclusive`` make them strict.
    optional : bool
        Whether None is allowed.
    units : str, optional
        Units shown beside the widget and in the spec.
    rule : str, optional
        Extra human-readable rule text (cross-field rules), appended to the derived one.
    widget : mapping, optional
        Extra widget hints (e.g. ``{"step": 1e-4}``).

    Returns
    -------
    dataclasses.Field
    """
    if category not in CATEGORIES:
        raise ValueError(f"config_field: category {category!r} is not one of {CATEGORIES}")
    if kind not in KINDS:
        raise ValueError(f"config_field: kind {kind!r} is not one of {KINDS}")
    meta = {
        "category": category,
        "help": help,
        "kind": kind,
        "flags": tuple(flags),
        "neg_flags": tuple(neg_flags),
        "modes": tuple(modes),
        "lands": lands,
        "choices": tuple(choices) if choices is not None else None,
        "min": min,
        "min_exclusive": min_exclusive,
        "max": max,
        "max_exclusive": max_exclusive,
        "optional": optional,
        "units": units,
        "rule": rule,
        "widget": MappingProxyType(dict(widget or {})),
    }
    return dataclasses.field(default=default, metadata=MappingProxyType(meta))


def config_fields(cls_or_obj: Any) -> list[dataclasses.Field]:
    """All fields of a config class that were declared with :func:`config_field`."""
    return [f for f in dataclasses.fields(cls_or_obj) if "category" in f.metadata]


def fields_by_category(cls_or_obj: Any, category: str) -> list[dataclasses.Field]:
    """Fields of ``cls_or_obj`` in ``category``, in declaration order.

    Raises
    ------
    ValueError
        If ``category`` is not a known category.
    """
    if category not in CATEGORIES:
        raise ValueError(
            f"category {category!r} is not one of {CATEGORIES}"
            + _suggest(category, CATEGORIES)
        )
    return [f for f in config_fields(cls_or_obj) if f.metadata["category"] == category]


def nearest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (difflib), or None when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return match[0] if match else None


def _suggest(name: str, candidates: Iterable[str]) -> str:
    near = nearest_name(name, candidates)
    return f"; did you mean {near!r}?" if near else ""


def unknown_key_error(owner: str, key: str, candidates: Iterable[str]) -> ConfigError:
    """A :class:`ConfigError` for an unknown key, naming the nearest valid name."""
    candidates = list(candidates)
    return ConfigError(
        f"{owner}: unknown field {key!r}{_suggest(key, candidates)} "
        f"(valid names: {', '.join(sorted(candidates))})",
        fields=(key,),
        value=key,
    )


def format_value(value: Any) -> str:
    """Render a value the way the spec, the CLI help and error messages show it."""
    if isinstance(value, pathlib.PurePath):
        return repr(str(value))
    return repr(value)


def _fmt_bound(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe_rule(f: dataclasses.Field) -> str:
    """Human-readable rule of a field, derived from its metadata."""
    m = f.metadata
    parts: list[str] = []
    kind = m["kind"]
    if m["choices"] is not None:
        parts.append("one of " + ", ".join(format_value(c) for c in m["choices"]))
    elif kind == "int_or_auto":
        parts.append("'auto' or an integer")
    elif kind == "bool":
        parts.append("bool")
    elif kind == "path":
        parts.append("a file or folder path")
    bounds = []
    if m["min"] is not None:
        bounds.append(("> " if m["min_exclusive"] else "≥ ") + _fmt_bound(m["min"]))
    if m["max"] is not None:
        bounds.append(("< " if m["max_exclusive"] else "≤ ") + _fmt_bound(m["max"]))
    if bounds:
        word = {"int": "integer", "float": "finite number", "int_or_auto": "integer"}.get(kind, "value")
        parts.append(f"{word} " + " and ".join(bounds))
    elif kind in ("int", "float") and m["choices"] is None:
        parts.append({"int": "integer", "float": "finite number"}[kind])
    elif kind == "str" and m["choices"] is None:
        parts.append("text")
    text = "; ".join(parts)
    if m["optional"]:
        text = f"None, or {text}" if text else "None allowed"
    if m["rule"]:
        text = f"{text}; {m['rule']}" if text else m["rule"]
    return text


def _check_kind(owner: str, name: str, kind: str, value: Any) -> Any:
    """Check (and normalise) the type of one value; return the normalised value."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(
            f"{owner}.{name}={value!r} is invalid: expected {expected}", fields=(name,), value=value
        )

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("a bool (True or False)")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad("an integer")
        return int(value)
    if kind == "bool_or_auto":
        if value == "auto" or isinstance(value, bool):
            return value
        raise bad("True, False or 'auto'")
    if kind == "int_or_auto":
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("'auto' or an integer")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float range
            raise bad("a finite number") from None
        if not math.isfinite(value):
            # inf passes every one-sided bound and then breaks training (NaN weights)
            raise bad("a finite number (not NaN or inf)")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "path":
        if isinstance(value, (str, pathlib.PurePath)):
            if str(value) == "":
                raise bad("a non-empty path")
            return pathlib.Path(value)
        raise bad("a path (str or pathlib.Path)")
    raise AssertionError(kind)  # pragma: no cover


def validate_fields(obj: Any) -> None:
    """Check every metadata-declared field of a frozen config dataclass; normalise in place.

    Type, choices, bounds and optionality come from the metadata; cross-field rules are left to
    the class's own ``__post_init__``.

    Raises
    ------
    ConfigError
        Naming the field, the bad value and the rule.
    """
    owner = type(obj).__name__
    for f in config_fields(obj):
        m = f.metadata
        value = getattr(obj, f.name)
        if value is None:
            if m["optional"]:
                continue
            raise ConfigError(
                f"{owner}.{f.name}=None is invalid: rule is {describe_rule(f)}",
                fields=(f.name,), value=None,
            )
        value = _check_kind(owner, f.name, m["kind"], value)
        if m["choices"] is not None and value not in m["choices"]:
            raise ConfigError(
                f"{owner}.{f.name}={value!r} is invalid: rule is {describe_rule(f)}"
                + _suggest(str(value), [str(c) for c in m["choices"]]),
                fields=(f.name,), value=value,
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = m["min"], m["max"]
            bad = (
                (lo is not None and (value <= lo if m["min_exclusive"] else value < lo))
                or (hi is not None and (value >= hi if m["max_exclusive"] else value > hi))
            )
            if bad:
                raise ConfigError(
                    f"{owner}.{f.name}={value!r} is invalid: rule is {describe_rule(f)}",
                    fields=(f.name,), value=value,
                )
        object.__setattr__(obj, f.name, value)
