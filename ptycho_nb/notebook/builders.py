"""Widget forms for the configs, generated from the field metadata (README "In a notebook").

Every form is an ipywidgets widget (a ``VBox``, or a ``Tab`` for :class:`ExecutionConfigBuilder`)
and, like ipywidgets' own controls, keeps its state in traits:

``value``
    The config the controls last formed that the dataclass accepted; never None. A change that
    yields a new valid config assigns it, so ``form.observe(callback, names="value")`` sees valid
    configs only. Typing something invalid leaves ``value`` as it was (as a numeric ipywidget keeps
    its last number) and fills ``errors``. Assigning ``value`` (a config or a mapping) shows it:
    the controls of the fields that change are set.
``errors``
    Field name → message of everything invalid now: the dataclass's own errors and the external
    ones (:meth:`~ConfigBuilder.set_external_errors`); :data:`GENERAL` for an error naming no
    field. ``valid`` is ``not errors``; :meth:`~ConfigBuilder.config` returns ``value`` or raises
    one ``ConfigError`` naming every field and message.

Each field is rendered from its :func:`~ptycho_nb.config.fields.config_field` metadata — a
Dropdown for choices, a Checkbox for bools, a plain ``Text`` for numbers and paths (parsed here,
never clamped: the dataclass checks the range), an "unset (None)" Checkbox beside Optional fields,
the help as tooltip and the units in the label. Validation constructs the dataclass itself, so the
messages are exactly those of the Python API and the CLI; the offending control is marked (CSS
class ``ptycho-nb-invalid`` and a red border) with its message beside it, and a cross-field error
marks every field it names.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import traitlets

from ..config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ..config.execution import PyTorchExecutionConfig
from ..config.precedence import layer_defaults
from ..config.fields import ConfigError, config_fields
from .rows import INVALID_CLASS, FieldRow

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

#: Key of :attr:`ConfigBuilder.errors` for an error that names no field.
GENERAL = "__config__"


def _construct(cls: type, values: dict[str, Any], fallback: Any) -> tuple[Any, dict[str, str]]:
    """``(config, {})`` when ``cls(**values)`` is valid, else ``(None, errors)`` with every error
    found: the fields an error names are put back to ``fallback``'s values to look for more."""
    values = dict(values)
    errors: dict[str, str] = {}
    for _ in range(len(values) + 1):
        try:
            config = cls(**values)
        except (ValueError, TypeError) as exc:
            names = [n for n in getattr(exc, "fields", ()) if n in values]
            if not names:
                errors.setdefault(GENERAL, str(exc))
                return None, errors
            for n in names:
                errors.setdefault(n, str(exc))
            reverted = [n for n in names if values[n] != getattr(fallback, n)]
            if not reverted:
                return None, errors
            values.update({n: getattr(fallback, n) for n in reverted})
        else:
            return (config, {}) if not errors else (None, errors)
    return None, errors


def _summary(errors: Mapping[str, str]) -> str:
    """One short message: each distinct message once, prefixed by the fields it does not name."""
    by_message: dict[str, list[str]] = {}
    for name, message in errors.items():
        by_message.setdefault(message, []).append(name)
    parts = []
    for message, names in by_message.items():
        unnamed = [n for n in names
                   if n != GENERAL and not re.search(rf"\b{re.escape(n)}\b", message)]
        parts.append(f"{', '.join(unnamed)}: {message}" if unnamed else message)
    return "; ".join(parts)


class _Form(traitlets.HasTraits):
    """The traits and methods every form shares (subclasses set ``cls`` and ``controls``)."""

    value = traitlets.Any(help="The last config the controls formed that the dataclass accepted.")
    errors = traitlets.Dict(help="Field → message of everything invalid now (GENERAL: no field).")
    external_errors = traitlets.Dict(
        help="Field → message of rules checked outside the dataclass; only rendered fields kept.")

    cls: type
    controls: dict[str, widgets.Widget]

    def _coerce(self, config: Any) -> Any:
        if isinstance(config, Mapping):
            config = self.cls.from_dict(config)
        if not isinstance(config, self.cls):
            raise traitlets.TraitError(f"{type(self).__name__}: expected a {self.cls.__name__} or a "
                                       f"mapping, got {type(config).__name__}")
        return config

    @traitlets.validate("value")
    def _coerce_value(self, proposal: Mapping[str, Any]) -> Any:
        return self._coerce(proposal["value"])

    @traitlets.validate("external_errors")
    def _own_external_errors(self, proposal: Mapping[str, Any]) -> dict[str, str]:
        return {n: str(m) for n, m in proposal["value"].items() if n in self.controls}

    @property
    def valid(self) -> bool:
        """Whether nothing is invalid (the dataclass's rules and the external ones)."""
        return not self.errors

    def config(self) -> Any:
        """The validated config (``value``).

        Raises
        ------
        ConfigError
            While anything is invalid: one short message with every field and message.
        """
        if self.errors:
            raise ConfigError(_summary(self.errors),
                              fields=tuple(n for n in self.errors if n != GENERAL))
        return self.value

    def set_external_errors(self, errors: Mapping[str, str]) -> None:
        """Marks from rules checked outside the dataclass (e.g. middle_trim < N/2 by the panel);
        fields not rendered here are ignored. Replaces the previous external errors. They do not
        hold ``value`` back: whoever sets them re-checks when ``value`` changes."""
        self.external_errors = dict(errors)

    def load(self, config: Any) -> None:  # pragma: no cover - every form defines it
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike | None = None, *, overwrite: bool = False) -> str:
        """JSON of the validated config (what the CLI's ``--config`` reads); raises when invalid.
        Written to ``path`` when given (an existing file only with ``overwrite=True``)."""
        return self.config().to_json(path, overwrite=overwrite)

    def from_json(self, text_or_path: str | os.PathLike) -> Any:
        """Load a config from JSON text or a file (flat or sectioned); returns it."""
        config = self.cls.from_json(text_or_path)
        self.load(config)
        return config

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"invalid: {sorted(self.errors)}"
        return f"<{type(self).__name__} of {self.cls.__name__} ({len(self.controls)} fields, {state})>"


class ConfigBuilder(_Form, widgets.VBox):
    """A form over a config dataclass, generated from its field metadata; an ipywidgets ``VBox``.

    Parameters
    ----------
    cls : type
        The config dataclass (``PyTorchExecutionConfig``, ``ModelConfig``, ...).
    fields : sequence of str, optional
        The fields to render (default all). The others keep the values of ``value``, so
        validating the form validates the whole config.
    initial : config instance or mapping, optional
        Starting values (default: the dataclass defaults, plus the front-end defaults for
        ``PyTorchExecutionConfig`` when ``front_end`` is set, and the command's).
    front_end : {'widget', None}
        Whether :data:`~ptycho_nb.config.execution.FRONT_END_DEFAULTS` apply to the initial values
        (they are labelled as such).
    command : {None, 'reconstruct'}
        The command the form's values run: its own defaults apply over the front end's, labelled
        (:data:`~ptycho_nb.config.execution.RECONSTRUCT_DEFAULTS`: the panel's Reconstruct).
    title : str, optional
        A heading above the fields.

    Attributes
    ----------
    value : config instance (trait)
        The last config the controls formed that the dataclass accepted (see the module doc).
    errors : dict of str → str (trait)
        What is invalid now; :data:`GENERAL` for an error that names no field.
    external_errors : dict of str → str (trait)
        Rules checked outside the dataclass (:meth:`set_external_errors`).
    controls, unset_controls, messages, labels : dict of str → widget
        Per rendered field: the input control, the "unset (None)" Checkbox (Optional fields
        only), the message beside it and its label.
    """

    #: The controls' entries by field (parsed, None when unset): the state validation starts from.
    _entries = traitlets.Dict()

    def __init__(self, cls: type, fields: Sequence[str] | None = None, initial: Any = None,
                 front_end: str | None = "widget", *, title: str | None = None,
                 command: str | None = None) -> None:
        all_fields = config_fields(cls)
        names = [f.name for f in all_fields]
        if fields is None:
            fields = names
        for name in fields:
            if name not in names:
                from ..config.fields import unknown_key_error
                raise unknown_key_error(cls.__name__, name, names)
        given = (layer_defaults("execution", "widget" if front_end else None, command)
                 if cls is PyTorchExecutionConfig else {})
        fe = {n: value for n, (value, _source) in given.items()}
        if initial is None:
            base = cls(**fe) if fe else cls()
        elif isinstance(initial, cls):
            base = initial
        elif isinstance(initial, Mapping):
            base = cls.from_dict({**fe, **dict(initial)})
        else:
            raise TypeError(f"{type(self).__name__}: initial must be a {cls.__name__} or a mapping, "
                            f"got {type(initial).__name__}")
        self.cls = cls
        self.front_end = front_end
        by_name = {f.name: f for f in all_fields}
        self._rows: dict[str, FieldRow] = {
            n: FieldRow(by_name[n], getattr(base, n), given.get(n), self._controls_changed) for n in fields}
        self.controls: dict[str, widgets.Widget] = {n: r.control for n, r in self._rows.items()}
        self.unset_controls: dict[str, widgets.Checkbox] = {
            n: r.unset for n, r in self._rows.items() if r.unset is not None}
        self.messages: dict[str, widgets.HTML] = {n: r.message for n, r in self._rows.items()}
        self.labels: dict[str, widgets.Label] = {n: r.label for n, r in self._rows.items()}
        self.general_message = widgets.HTML("")
        children: list[widgets.Widget] = []
        if title:
            children.append(widgets.HTML(f"<b>{html.escape(title)}</b>"))
        children += [r.box for r in self._rows.values()] + [self.general_message]
        super().__init__(children=children)
        self.add_class("ptycho-nb-builder")
        self.value = base

    # ------------------------------------------------------------------ controls → value
    def _read(self) -> dict[str, Any]:
        return {n: r.get() for n, r in self._rows.items()}

    def _controls_changed(self) -> None:
        self._entries = self._read()

    @traitlets.observe("_entries", "external_errors")
    def _revalidate(self, _change: Mapping[str, Any]) -> None:
        self.validate()

    def validate(self) -> bool:
        """Validate the entries through the dataclass (the fields not rendered taken from
        ``value``); assign ``value`` when valid and ``errors`` always. Returns ``valid``."""
        if self.value is None:  # still constructing
            return False
        base = self.value
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(self.cls)}
        values.update(self._entries)
        config, errors = _construct(self.cls, values, base)
        for n, msg in self.external_errors.items():
            errors.setdefault(n, msg)
        with self.hold_trait_notifications():  # observers see value and errors of the same state
            if config is not None:
                self.value = config
            self.errors = errors
        return self.valid

    @traitlets.observe("errors")
    def _mark(self, change: Mapping[str, Any]) -> None:
        errors = change["new"]
        for n, row in self._rows.items():
            row.mark(errors.get(n))
        other = {n: m for n, m in errors.items() if n not in self._rows}
        self.general_message.value = "".join(
            f"<div style='color:#d62728'>{html.escape(m)}</div>" for m in dict.fromkeys(other.values()))

    # ------------------------------------------------------------------ value → controls
    @traitlets.observe("value")
    def _value_changed(self, change: Mapping[str, Any]) -> None:
        old, new = change["old"], change["new"]
        changed = [n for n in self._rows if old is None or getattr(old, n) != getattr(new, n)]
        self._show(new, changed)

    def _show(self, config: Any, names: Iterable[str]) -> None:
        """Set the controls of ``names`` that do not show ``config`` yet, then re-validate once."""
        try:
            with self.hold_trait_notifications():  # one validation, when every control is set
                for n in names:
                    if not self._rows[n].shows(getattr(config, n)):
                        self._rows[n].set(getattr(config, n))
        finally:
            # also after a control refused a value: the form stays in step with what it shows
            self._entries = self._read()
            self.validate()

    def load(self, config: Any) -> None:
        """Show ``config`` (an instance of ``cls`` or a mapping) in every control, replacing
        entries that did not parse too (assigning ``value`` sets only the fields that change).

        A control that refuses its value raises; the form then shows and validates what the
        controls hold, and keeps responding."""
        config = self._coerce(config)
        self.value = config
        self._show(config, self._rows)


def _category_fields(categories: Iterable[str]) -> list[str]:
    cats = tuple(categories)
    return [f.name for f in config_fields(PyTorchExecutionConfig) if f.metadata["category"] in cats]


class _ExecutionCategoryBuilder(ConfigBuilder):
    CATEGORIES: tuple[str, ...] = ()
    TITLE = ""

    def __init__(self, initial: Any = None, front_end: str | None = "widget",
                 command: str | None = None) -> None:
        super().__init__(PyTorchExecutionConfig, fields=_category_fields(self.CATEGORIES),
                         initial=initial, front_end=front_end, command=command)


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


class ExecutionConfigBuilder(_Form, widgets.Tab):
    """All execution categories in a ``Tab``, one category form each, yielding one
    :class:`PyTorchExecutionConfig`. Same traits and methods as :class:`ConfigBuilder`.

    It talks to its tabs through their ``value`` and ``errors`` traits (and
    :meth:`~ConfigBuilder.set_external_errors`) only: a tab's new ``value`` is merged into this
    form's ``value``, which is then assigned to every tab so that each holds the whole config;
    ``errors`` is the union of the tabs' errors.

    Attributes
    ----------
    builders : dict of str → ConfigBuilder
        The category forms by tab title.
    controls, unset_controls, messages, labels : dict of str → widget
        Those of every tab.
    """

    BUILDERS = (TrainerBuilder, DataLoaderBuilder, OptimizerBuilder, CheckpointLoggingBuilder,
                InferenceExecutionBuilder, UXBuilder)
    cls = PyTorchExecutionConfig

    def __init__(self, initial: Any = None, front_end: str | None = "widget",
                 command: str | None = None) -> None:
        # a tab need not know commands (any form with the public interface will do)
        extra = {} if command is None else {"command": command}
        self.builders: dict[str, ConfigBuilder] = {
            b.TITLE: b(initial=initial, front_end=front_end, **extra) for b in self.BUILDERS}
        self.controls: dict[str, widgets.Widget] = {}
        self.unset_controls: dict[str, widgets.Checkbox] = {}
        self.messages: dict[str, widgets.HTML] = {}
        self.labels: dict[str, widgets.Label] = {}
        for b in self.builders.values():
            self.controls.update(b.controls)
            self.unset_controls.update(b.unset_controls)
            self.messages.update(b.messages)
            self.labels.update(b.labels)
        # errors of the merged config that no tab reports (a rule across categories)
        self._merge_errors: dict[str, str] = {}
        super().__init__(children=list(self.builders.values()), titles=list(self.builders))
        self.add_class("ptycho-nb-execution")
        self.value = next(iter(self.builders.values())).value
        for b in self.builders.values():
            b.observe(self._tab_value_changed, names="value")
            b.observe(lambda _c: self._collect_errors(), names="errors")
        self._collect_errors()

    @traitlets.observe("value")
    def _value_changed(self, change: Mapping[str, Any]) -> None:
        try:
            for b in self.builders.values():
                b.value = change["new"]  # each tab sets the controls of its fields that change
        finally:
            self._merge()  # after a tab refused a value: what the tabs hold

    def _tab_value_changed(self, change: Mapping[str, Any]) -> None:
        tab, new = change["owner"], change["new"]
        # a tab taking this form's value (assigned above) brings nothing new
        if any(getattr(new, n) != getattr(self.value, n) for n in tab.controls):
            self._merge()

    def _merge(self) -> None:
        if self.value is None:  # still constructing
            return
        values = {f.name: getattr(self.value, f.name) for f in dataclasses.fields(self.cls)}
        for b in self.builders.values():
            values.update({n: getattr(b.value, n) for n in b.controls})
        try:
            config, problems = self.cls(**values), {}
        except (ValueError, TypeError) as exc:
            names = [n for n in getattr(exc, "fields", ()) if n in self.controls] or [GENERAL]
            config, problems = None, {n: str(exc) for n in names}
        with self.hold_trait_notifications():
            if config is not None:
                self.value = config
            if problems != self._merge_errors:
                self._merge_errors = problems
                self._share_external_errors()
            self._collect_errors()

    def _collect_errors(self) -> None:
        errors: dict[str, str] = {}
        for b in self.builders.values():
            errors.update(b.errors)
        for n, msg in self._merge_errors.items():
            errors.setdefault(n, msg)
        self.errors = errors

    @traitlets.observe("external_errors")
    def _share_external_errors(self, _change: Any = None) -> None:
        shared = {**self._merge_errors, **self.external_errors}
        for b in self.builders.values():
            b.set_external_errors(shared)

    def load(self, config: Any) -> None:
        """Show ``config`` (a :class:`PyTorchExecutionConfig` or a mapping) in every tab,
        replacing entries that did not parse too."""
        config = self._coerce(config)
        self.value = config
        for b in self.builders.values():
            b.load(config)


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
