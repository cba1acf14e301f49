"""Widget forms for the configs, generated from the field metadata (design §7).

:class:`ConfigBuilder` renders each field of a config dataclass from its
:func:`~ptycho_nb.config.fields.config_field` metadata — a Dropdown for choices, a Checkbox for
bools, a plain ``Text`` for numbers and paths (parsed here, never clamped: the dataclass checks the
range), an "unset" Checkbox beside Optional fields, the help as tooltip and the units in the label.
Every change re-validates by constructing the dataclass itself, so the messages are exactly those
of the Python API and the CLI; the offending control is marked (CSS class ``ptycho-nb-invalid``
and a red border) and its message shown beside it. Cross-field errors mark every field they name.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ..config.execution import FRONT_END_DEFAULTS, PyTorchExecutionConfig
from ..config.fields import ConfigError, config_fields, describe_rule, format_value

__all__ = [
    "GENERAL",
    "INVALID_CLASS",
    "CheckpointLoggingBuilder",
    "ConfigBuilder",
    "DataLoaderBuilder",
    "ExecutionConfigBuilder",
    "InferenceConfigBuilder",
    "InferenceExecutionBuilder",
    "ModelConfigBuilder",
    "OptimizerBuilder",
    "TrainerBuilder",
    "TrainingConfigBuilder",
    "UXBuilder",
]

#: CSS class added to a control whose value is invalid.
INVALID_CLASS = "ptycho-nb-invalid"
#: Key of :attr:`ConfigBuilder.errors` for an error that names no field.
GENERAL = "__config__"
_INVALID_BORDER = "2px solid #d62728"
_INT_RE = re.compile(r"^[+-]?\d+$")


def _parse(kind: str, text: str, optional: bool) -> Any:
    """Text → value for numeric/path kinds. Unparseable text is returned as is, so that the
    dataclass rejects it with its own message (never clamped, never coerced silently)."""
    s = text.strip()
    if s == "" and optional:
        return None
    if kind == "int_or_auto" and s == "auto":
        return "auto"
    if kind in ("int", "int_or_auto"):
        if _INT_RE.match(s):
            return int(s)
        try:
            return float(s)  # 1.5 → the dataclass says "expected an integer"
        except ValueError:
            return text
    if kind == "float":
        try:
            return float(s)
        except ValueError:
            return text
    return text  # str / path: the dataclass converts and checks


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class _Row:
    """One field: label, control, optional "unset" toggle and message."""

    def __init__(self, f: dataclasses.Field, value: Any, front_end_default: bool, on_change: Callable):
        m = f.metadata
        self.name, self.kind, self.optional = f.name, m["kind"], bool(m["optional"])
        self.choices = m["choices"]
        rule = describe_rule(f)
        tip = f"{m['help']} Rule: {rule}." if rule else m["help"]
        if front_end_default:
            tip += f" Front-end default: {format_value(FRONT_END_DEFAULTS[f.name])}."
        label = f.name + (f" [{m['units']}]" if m["units"] else "")
        if front_end_default:
            label += " (front-end default)"
        self.label = widgets.Label(label, tooltip=tip, layout=widgets.Layout(width="260px"))
        hints = dict(m["widget"])
        if self.kind == "bool":
            self.control: widgets.Widget = widgets.Checkbox(value=bool(value), indent=False,
                                                            tooltip=tip, description="")
        elif self.choices is not None:
            opts = [(str(c), c) for c in self.choices]
            self.control = widgets.Dropdown(options=opts, tooltip=tip,
                                            value=value if value in self.choices else self.choices[0])
        else:
            placeholder = "None" if self.optional else ("'auto' or integer" if self.kind == "int_or_auto"
                                                        else "")
            self.control = widgets.Text(value=_to_text(value), tooltip=tip, placeholder=placeholder,
                                        continuous_update=True)
        if "width" in hints:
            self.control.layout.width = hints["width"]
        self.control.add_class("ptycho-nb-field")
        self.unset: widgets.Checkbox | None = None
        if self.optional:
            self.unset = widgets.Checkbox(value=value is None, description="unset (None)", indent=False,
                                          tooltip=f"Leave {f.name} unset (None)",
                                          layout=widgets.Layout(width="120px"))
            self.control.disabled = value is None
            self.unset.observe(self._unset_changed, names="value")
        self.message = widgets.HTML("", layout=widgets.Layout(min_width="120px"))
        self.help = widgets.HTML(f"<span style='color:#666;font-size:smaller'>{html.escape(m['help'])}</span>")
        parts = [self.label, self.control] + ([self.unset] if self.unset else []) + [self.message]
        self.box = widgets.VBox([widgets.HBox(parts), self.help])
        self._on_change = on_change
        self.control.observe(lambda _c: on_change(), names="value")

    def _unset_changed(self, change: Mapping[str, Any]) -> None:
        self.control.disabled = bool(change["new"])
        self._on_change()

    def get(self) -> Any:
        if self.unset is not None and self.unset.value:
            return None
        if self.kind == "bool" or self.choices is not None:
            return self.control.value
        return _parse(self.kind, self.control.value, self.optional)

    def set(self, value: Any) -> None:
        if self.unset is not None:
            self.unset.value = value is None
            self.control.disabled = value is None
            if value is None:
                return
        if self.kind == "bool":
            self.control.value = bool(value)
        elif self.choices is not None:
            self.control.value = value
        else:
            self.control.value = _to_text(value)

    def mark(self, message: str | None) -> None:
        if message:
            self.control.add_class(INVALID_CLASS)
            self.control.layout.border = _INVALID_BORDER
            self.message.value = f"<span style='color:#d62728'>{html.escape(message)}</span>"
        else:
            self.control.remove_class(INVALID_CLASS)
            self.control.layout.border = None
            self.message.value = ""


class _JsonDisplay:
    """JSON round trip and notebook display shared by every builder (needs ``cls``, ``value``,
    ``load`` and ``widget``)."""

    def to_json(self, path: str | os.PathLike | None = None, *, overwrite: bool = False) -> str:
        """JSON of the validated config (what the CLI's ``--config`` reads); raises when invalid.
        Written to ``path`` when given (an existing file only with ``overwrite=True``)."""
        return self.value.to_json(path, overwrite=overwrite)

    def from_json(self, text_or_path: str | os.PathLike) -> Any:
        """Load a config from JSON text or a file (flat or sectioned); returns it."""
        config = self.cls.from_json(text_or_path)
        self.load(config)
        return config

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class ConfigBuilder(_JsonDisplay):
    """A form over a config dataclass, generated from its field metadata.

    Parameters
    ----------
    cls : type
        The config dataclass (``PyTorchExecutionConfig``, ``ModelConfig``, ...).
    fields : sequence of str, optional
        The fields to render (default all). The others keep their current values, so validating
        the form validates the whole config.
    initial : config instance or mapping, optional
        Starting values (default: the dataclass defaults, plus the front-end defaults for
        ``PyTorchExecutionConfig`` when ``front_end`` is set).
    front_end : {'widget', None}
        Whether :data:`~ptycho_nb.config.execution.FRONT_END_DEFAULTS` apply to the initial values
        (they are labelled as such).

    Attributes
    ----------
    controls : dict of str → widget
    errors : dict of str → message (``GENERAL`` for an error that names no field)
    widget : ipywidgets.Widget
    """

    def __init__(self, cls: type, fields: Sequence[str] | None = None, initial: Any = None,
                 front_end: str | None = "widget", *, title: str | None = None) -> None:
        self.cls = cls
        all_fields = config_fields(cls)
        names = [f.name for f in all_fields]
        if fields is None:
            fields = names
        for name in fields:
            if name not in names:
                from ..config.fields import unknown_key_error
                raise unknown_key_error(cls.__name__, name, names)
        self.front_end = front_end
        fe = dict(FRONT_END_DEFAULTS) if (front_end and cls is PyTorchExecutionConfig) else {}
        if initial is None:
            base = cls(**fe) if fe else cls()
        elif isinstance(initial, cls):
            base = initial
        elif isinstance(initial, Mapping):
            base = cls.from_dict({**fe, **dict(initial)})
        else:
            raise TypeError(f"{type(self).__name__}: initial must be a {cls.__name__} or a mapping, "
                            f"got {type(initial).__name__}")
        self._base = base            # values of the fields not rendered here
        self._last_valid = base
        self._current: Any = base
        self._error: ValueError | None = None
        self.errors: dict[str, str] = {}
        self._external: dict[str, str] = {}
        self._callbacks: list[Callable[[Any], None]] = []
        self._suspend = False
        self._rows: dict[str, _Row] = {}
        by_name = {f.name: f for f in all_fields}
        for name in fields:
            self._rows[name] = _Row(by_name[name], getattr(base, name), name in fe, self._changed)
        self.controls: dict[str, widgets.Widget] = {n: r.control for n, r in self._rows.items()}
        self.unset_controls: dict[str, widgets.Checkbox] = {
            n: r.unset for n, r in self._rows.items() if r.unset is not None}
        self.messages: dict[str, widgets.HTML] = {n: r.message for n, r in self._rows.items()}
        self.general_message = widgets.HTML("")
        children: list[widgets.Widget] = []
        if title:
            children.append(widgets.HTML(f"<b>{html.escape(title)}</b>"))
        children += [r.box for r in self._rows.values()] + [self.general_message]
        self.widget = widgets.VBox(children)
        self.widget.add_class("ptycho-nb-builder")
        self.validate()

    # ------------------------------------------------------------------ values and validation
    def _raw_values(self) -> dict[str, Any]:
        values = {f.name: getattr(self._base, f.name) for f in dataclasses.fields(self.cls)}
        values.update({n: r.get() for n, r in self._rows.items()})
        return values

    def validate(self) -> bool:
        """Re-validate the current control values through the dataclass; update marks."""
        values = self._raw_values()
        errors: dict[str, str] = {}
        first: ValueError | None = None
        config = None
        fallback = self._last_valid
        for _ in range(len(values) + 1):
            try:
                config = self.cls(**values)
                break
            except (ValueError, TypeError) as exc:
                if first is None:
                    first = exc if isinstance(exc, ValueError) else ValueError(str(exc))
                names = [n for n in getattr(exc, "fields", ()) if n in values]
                if not names:
                    errors.setdefault(GENERAL, str(exc))
                    break
                for n in names:
                    errors.setdefault(n, str(exc))
                # put the offending fields back to their last valid values to find further errors
                changed = False
                for n in names:
                    if values[n] != getattr(fallback, n):
                        values[n] = getattr(fallback, n)
                        changed = True
                if not changed:
                    break
        if first is None:
            self._current = config
            self._last_valid = config
        else:
            self._current = None
        self._error = first
        for n, msg in self._external.items():
            errors.setdefault(n, msg)
        self.errors = errors
        for n, row in self._rows.items():
            row.mark(errors.get(n))
        other = {n: m for n, m in errors.items() if n not in self._rows}
        self.general_message.value = "".join(
            f"<div style='color:#d62728'>{html.escape(m)}</div>" for m in dict.fromkeys(other.values()))
        return not errors

    def _changed(self) -> None:
        if self._suspend:
            return
        self.validate()
        if self._error is None:
            for cb in list(self._callbacks):
                cb(self._current)

    @property
    def valid(self) -> bool:
        """Whether the current values form a valid config (and no external rule objects)."""
        return not self.errors

    @property
    def value(self) -> Any:
        """The validated config.

        Raises
        ------
        ValueError
            The dataclass's own error (a ``ConfigError``) for the current values.
        """
        if self._error is not None:
            raise self._error
        if self._external:
            n, msg = next(iter(self._external.items()))
            raise ConfigError(msg, fields=(n,))
        return self._current

    def observe(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``callback(config)`` whenever a change leaves the form valid. Returns it."""
        self._callbacks.append(callback)
        return callback

    on_change = observe

    def unobserve(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.remove(callback)

    def set_external_errors(self, errors: Mapping[str, str]) -> None:
        """Marks from rules checked outside the dataclass (e.g. middle_trim < N/2 by the panel);
        fields not rendered here are ignored. Replaces the previous external errors."""
        ext = {n: m for n, m in errors.items() if n in self._rows}
        if ext != self._external:
            self._external = ext
            self.validate()

    # ------------------------------------------------------------------ load / JSON
    def load(self, config: Any) -> None:
        """Show ``config`` (an instance of ``cls`` or a mapping) in the form."""
        if isinstance(config, Mapping):
            config = self.cls.from_dict(config)
        if not isinstance(config, self.cls):
            raise TypeError(f"{type(self).__name__}.load: expected {self.cls.__name__}, "
                            f"got {type(config).__name__}")
        self._suspend = True
        try:
            self._base = config
            for n, row in self._rows.items():
                row.set(getattr(config, n))
        finally:
            self._suspend = False
        self._changed()

    def set_context(self, config: Any) -> None:
        """Update the values of the fields not rendered here (controls untouched)."""
        self._base = config
        self.validate()

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"invalid: {sorted(self.errors)}"
        return f"<{type(self).__name__} of {self.cls.__name__} ({len(self._rows)} fields, {state})>"


def _category_fields(categories: Iterable[str]) -> list[str]:
    cats = tuple(categories)
    return [f.name for f in config_fields(PyTorchExecutionConfig) if f.metadata["category"] in cats]


class _ExecutionCategoryBuilder(ConfigBuilder):
    CATEGORIES: tuple[str, ...] = ()
    TITLE = ""

    def __init__(self, initial: Any = None, front_end: str | None = "widget") -> None:
        super().__init__(PyTorchExecutionConfig, fields=_category_fields(self.CATEGORIES),
                         initial=initial, front_end=front_end)


class TrainerBuilder(_ExecutionCategoryBuilder):
    """Trainer fields of :class:`PyTorchExecutionConfig` (accelerator, devices, precision, ...)."""
    CATEGORIES, TITLE = ("trainer",), "trainer"


class DataLoaderBuilder(_ExecutionCategoryBuilder):
    """DataLoader fields (workers, pinning, prefetch)."""
    CATEGORIES, TITLE = ("dataloader",), "dataloader"


class OptimizerBuilder(_ExecutionCategoryBuilder):
    """Optimizer fields (learning rate, scheduler)."""
    CATEGORIES, TITLE = ("optimizer",), "optimizer"


class CheckpointLoggingBuilder(_ExecutionCategoryBuilder):
    """Checkpointing, early stopping and logger fields."""
    CATEGORIES, TITLE = ("checkpoint", "logging"), "checkpoint/logging"


class InferenceExecutionBuilder(_ExecutionCategoryBuilder):
    """Inference-time execution fields (batch size, trimming, padding)."""
    CATEGORIES, TITLE = ("inference",), "inference"


class UXBuilder(_ExecutionCategoryBuilder):
    """User-experience fields (progress bar)."""
    CATEGORIES, TITLE = ("ux",), "ux"


class ExecutionConfigBuilder(_JsonDisplay):
    """All execution categories in a ``Tab`` (one builder each) yielding one
    :class:`PyTorchExecutionConfig`. Same interface as :class:`ConfigBuilder`."""

    BUILDERS = (TrainerBuilder, DataLoaderBuilder, OptimizerBuilder, CheckpointLoggingBuilder,
                InferenceExecutionBuilder, UXBuilder)
    cls = PyTorchExecutionConfig

    def __init__(self, initial: Any = None, front_end: str | None = "widget") -> None:
        self.builders: dict[str, ConfigBuilder] = {
            b.TITLE: b(initial=initial, front_end=front_end) for b in self.BUILDERS}
        self._callbacks: list[Callable[[Any], None]] = []
        self.controls: dict[str, widgets.Widget] = {}
        self.unset_controls: dict[str, widgets.Checkbox] = {}
        self.messages: dict[str, widgets.HTML] = {}
        for b in self.builders.values():
            self.controls.update(b.controls)
            self.unset_controls.update(b.unset_controls)
            self.messages.update(b.messages)
            b.observe(self._child_changed)
        self.widget = widgets.Tab(children=[b.widget for b in self.builders.values()],
                                  titles=list(self.builders))
        self.widget.add_class("ptycho-nb-execution")

    def _merged(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        first = next(iter(self.builders.values()))
        values.update({f.name: getattr(first._base, f.name) for f in dataclasses.fields(self.cls)})
        for b in self.builders.values():
            values.update({n: r.get() for n, r in b._rows.items()})
        return values

    def _child_changed(self, _config: Any) -> None:
        if not all(b.valid for b in self.builders.values()):
            return
        try:
            config = self.cls(**self._merged())
        except ValueError:
            return
        for b in self.builders.values():
            b._base = config
        for cb in list(self._callbacks):
            cb(config)

    @property
    def errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for b in self.builders.values():
            out.update(b.errors)
        return out

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def value(self) -> PyTorchExecutionConfig:
        for b in self.builders.values():
            b.value  # raises the first category's error  # noqa: B018
        return self.cls(**self._merged())

    def observe(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        self._callbacks.append(callback)
        return callback

    on_change = observe

    def set_external_errors(self, errors: Mapping[str, str]) -> None:
        for b in self.builders.values():
            b.set_external_errors(errors)

    def load(self, config: Any) -> None:
        if isinstance(config, Mapping):
            config = self.cls.from_dict(config)
        for b in self.builders.values():
            b._suspend = True
            b._base = config
            for n, row in b._rows.items():
                row.set(getattr(config, n))
            b._suspend = False
            b.validate()
        self._child_changed(config)


class _CanonicalBuilder(ConfigBuilder):
    CLS: type = object

    def __init__(self, initial: Any = None, front_end: str | None = "widget",
                 fields: Sequence[str] | None = None) -> None:
        super().__init__(self.CLS, fields=fields, initial=initial, front_end=front_end,
                         title=self.CLS.__name__)


class ModelConfigBuilder(_CanonicalBuilder):
    """Form over :class:`ModelConfig`."""
    CLS = ModelConfig


class TrainingConfigBuilder(_CanonicalBuilder):
    """Form over :class:`TrainingConfig`."""
    CLS = TrainingConfig


class InferenceConfigBuilder(_CanonicalBuilder):
    """Form over :class:`InferenceConfig`."""
    CLS = InferenceConfig
