"""One config field as a row of widgets: label, control, "unset" toggle, message.

The control is chosen from the field's metadata (:func:`~ptycho_nb.config.fields.config_field`):
a Dropdown for choices, a Checkbox for bools, a plain ``Text`` for numbers and paths — parsed here
and never clamped, so the dataclass checks the range and says what is wrong (ipywidgets' Bounded*
widgets would clamp silently). The forms in :mod:`ptycho_nb.notebook.builders` own the rows.
"""

from __future__ import annotations

import dataclasses
import html
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from ..config.fields import describe_rule, format_value

__all__ = ["INVALID_CLASS", "HIDDEN_CHOICES", "FieldRow", "parse_entry"]

#: CSS class added to a control whose value is invalid.
INVALID_CLASS = "ptycho-nb-invalid"
_INVALID_BORDER = "2px solid #d62728"
_INT_RE = re.compile(r"^[+-]?\d+$")
#: Choices the forms do not offer because the dataclass always refuses them (field → values);
#: a config that holds one anyway still shows it, marked invalid.
HIDDEN_CHOICES: dict[str, tuple[Any, ...]] = {"backend": ("tensorflow",)}
#: "ClassName." at the start of a dataclass message: the form already says which config it is.
_CLASS_PREFIX = re.compile(r"^[A-Z]\w*(Config|Options)\.")


def parse_entry(kind: str, text: str, optional: bool) -> Any:
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



class FieldRow:
    """One field: label, control, optional "unset" toggle and message.

    ``default`` is ``(value, source)`` when the form starts from a default other than the
    dataclass's (a front end's or a command's layer,
    :func:`~ptycho_nb.config.precedence.layer_defaults`): the label and tooltip say whose."""

    def __init__(self, f: dataclasses.Field, value: Any, default: tuple[Any, str] | None,
                 on_change: Callable[[], None]) -> None:
        m = f.metadata
        self.name, self.kind, self.optional = f.name, m["kind"], bool(m["optional"])
        self.choices = m["choices"]
        rule = describe_rule(f)
        tip = f"{m['help']} Rule: {rule}." if rule else m["help"]
        label = f.name + (f" [{m['units']}]" if m["units"] else "")
        if default is not None:
            whose = "front-end" if default[1].startswith("front_end") else default[1]
            tip += f" {whose.capitalize()} default: {format_value(default[0])}."
            label += f" ({whose} default)"
        self.label = widgets.Label(label, tooltip=tip, layout=widgets.Layout(width="260px"))
        hints = dict(m["widget"])
        if self.kind == "bool":
            self.control: widgets.Widget = widgets.Checkbox(value=bool(value), indent=False,
                                                            tooltip=tip, description="")
        elif self.choices is not None:
            hidden = HIDDEN_CHOICES.get(f.name, ())
            opts = [(str(c), c) for c in self.choices if c not in hidden or c == value]
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
        # centred, not stretched: a message that wraps must not make the red frame grow
        self.box = widgets.VBox([widgets.HBox(parts, layout=widgets.Layout(align_items="center")),
                                 self.help])
        self._on_change = on_change
        self.control.observe(lambda _c: on_change(), names="value")

    def _unset_changed(self, change: Mapping[str, Any]) -> None:
        self.control.disabled = bool(change["new"])
        self._on_change()

    def get(self) -> Any:
        """The entry: the control's value, parsed (None when unset)."""
        if self.unset is not None and self.unset.value:
            return None
        if self.kind == "bool" or self.choices is not None:
            return self.control.value
        return parse_entry(self.kind, self.control.value, self.optional)

    def shows(self, value: Any) -> bool:
        """Whether the entry already stands for ``value`` (then what was typed, e.g. '3e-4' for
        0.0003, is left as it is)."""
        entry = self.get()
        if entry is None or value is None:
            return entry is None and value is None
        if self.kind == "path" and isinstance(entry, str):
            if not entry.strip():
                return False
            entry = pathlib.Path(entry)
        return entry == value and isinstance(entry, bool) == isinstance(value, bool)

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
            short = _CLASS_PREFIX.sub("", message)
            self.message.value = (f"<span style='color:#d62728' title='{html.escape(message)}'>"
                                  f"{html.escape(short)}</span>")
        else:
            self.control.remove_class(INVALID_CLASS)
            self.control.layout.border = None
            self.message.value = ""
