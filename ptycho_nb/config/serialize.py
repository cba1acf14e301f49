"""Dict/JSON round trips shared by every config, and multi-config JSON files.

The JSON written here is the JSON the CLI's ``--config FILE.json`` reads and the notebook widgets
write. A file holds either one config (a flat object of its fields) or several, keyed by section
name: ``{"execution": {...}, "model": {...}, "training": {...}, "inference": {...}}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Mapping, TypeVar

from ..atomic import write_text_atomic
from .fields import ConfigError, unknown_key_error

__all__ = ["ConfigBase", "SECTIONS", "save_configs"]

T = TypeVar("T", bound="ConfigBase")

#: Section names of a multi-config JSON file.
SECTIONS: tuple[str, ...] = ("execution", "model", "training", "inference")


class ConfigBase:
    """Mixin giving a frozen config dataclass dict/JSON round trips and ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of all fields (paths become strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, pathlib.PurePath) else v
        return out

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Build (and validate) a config from a dict; unknown keys raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__}.from_dict: expected a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in data:
            if key not in names:
                raise unknown_key_error(cls.__name__, key, names)
        return cls(**dict(data))

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int = 2,
                overwrite: bool = False) -> str:
        """JSON text of :meth:`to_dict`; also written atomically to ``path`` when given (an
        existing file is replaced only with ``overwrite=True``)."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=False) + "\n"
        if path is not None:
            write_text_atomic(path, text, overwrite=overwrite)
        return text

    @classmethod
    def from_json(cls: type[T], text_or_path: str | os.PathLike) -> T:
        """Build a config from JSON text or from a JSON file path (errors name the file)."""
        text, where = _read_text(text_or_path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}.from_json: {where} is not valid JSON ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{cls.__name__}.from_json: {where} is nested too deeply to be a "
                              "config") from None
        try:
            if isinstance(data, Mapping) and any(k in SECTIONS for k in data) and all(
                k in SECTIONS for k in data
            ):
                section = getattr(cls, "SECTION", None)
                if section not in data:
                    raise ConfigError(f"{cls.__name__}.from_json: no {section!r} section in the "
                                      f"JSON (sections found: {sorted(data)})")
                data = data[section]
            return cls.from_dict(data)
        except ConfigError as exc:
            if where == "the JSON text":
                raise
            raise ConfigError(f"{where}: {exc}", fields=exc.fields, value=exc.value) from None

    def replace(self: T, **changes: Any) -> T:
        """A validated copy with ``changes`` applied (``dataclasses.replace``)."""
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        for key in changes:
            if key not in names:
                raise unknown_key_error(type(self).__name__, key, names)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _read_text(text_or_path: str | os.PathLike) -> tuple[str, str]:
    """(JSON text, where it came from: ``config file PATH`` or ``the JSON text``)."""
    if not isinstance(text_or_path, (str, os.PathLike)):
        raise TypeError(f"from_json: expected JSON text or a file path, got "
                        f"{type(text_or_path).__name__}")
    if isinstance(text_or_path, os.PathLike) or not text_or_path.lstrip().startswith(("{", "[")):
        p = pathlib.Path(text_or_path)
        return _read_file(p), f"config file {p}"
    return str(text_or_path), "the JSON text"


def _read_file(p: pathlib.Path) -> str:
    """A config file's text; FileNotFoundError / ConfigError naming it."""
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config file {p}: is not a regular file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p}: is not UTF-8 text (byte {exc.start}: "
                          f"{exc.reason}); expected a JSON file") from None


def save_configs(path: str | os.PathLike, *, overwrite: bool = False, **configs: ConfigBase | None) -> None:
    """Save several configs as one sectioned JSON file (keys from :data:`SECTIONS`); an existing
    file is replaced only with ``overwrite=True``."""
    out: dict[str, Any] = {}
    for key, cfg in configs.items():
        if key not in SECTIONS:
            raise unknown_key_error("save_configs", key, SECTIONS)
        if cfg is not None:
            out[key] = cfg.to_dict()
    write_text_atomic(path, json.dumps(out, indent=2) + "\n", overwrite=overwrite)
