"""Reading a saved config file (``save_configs``' layout, or one flat config) into sections.

Kept apart from :mod:`.serialize` because sorting a flat file's fields into sections needs the
config classes, which themselves build on :class:`.serialize.ConfigBase`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .execution import PyTorchExecutionConfig
from .fields import ConfigError, unknown_key_error
from .serialize import SECTIONS, _read_file

__all__ = ["read_config_file"]


def read_config_file(path: str | os.PathLike, default_section: str = "execution") -> dict[str, dict]:
    """Read a saved config file into ``{section: field dict}``.

    A flat JSON object (one config's ``to_json``) is taken as ``default_section``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        If the JSON is not an object or has an unknown section.
    """
    p = pathlib.Path(path)
    try:
        data = json.loads(_read_file(p))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {p}: JSON nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a JSON object, got {type(data).__name__}")
    sectioned = [k for k, v in data.items() if k in SECTIONS and isinstance(v, dict)]
    if sectioned:
        loose = sorted(k for k in data if k not in sectioned)
        if loose:
            raise ConfigError(
                f"config file {p}: mixes sections {sorted(sectioned)} with top-level entries "
                f"{loose}; put every field inside its section "
                f"({', '.join(SECTIONS)})", fields=tuple(loose))
        return {k: dict(v) for k, v in data.items()}
    if data and all(isinstance(v, dict) for v in data.values()):
        key = next(iter(data))
        raise unknown_key_error(f"config file {p}", key, SECTIONS)
    return _split_flat(p, data, default_section)


def _split_flat(p: pathlib.Path, data: dict[str, Any], default_section: str) -> dict[str, dict]:
    """A flat file's fields sorted into sections: every field goes to each section that has it
    (``n_groups`` to training and inference), so a flat file of training fields works too."""
    classes = {"execution": PyTorchExecutionConfig, "model": ModelConfig,
               "training": TrainingConfig, "inference": InferenceConfig}
    names = {s: {f.name for f in dataclasses.fields(c)} for s, c in classes.items()}
    if default_section in names and set(data) <= names[default_section]:
        return {default_section: data}
    out: dict[str, dict] = {}
    for key, value in data.items():
        owners = [s for s in SECTIONS if key in names[s]]
        if not owners:
            raise unknown_key_error(f"config file {p}", key, set().union(*names.values()))
        for s in owners:
            out.setdefault(s, {})[key] = value
    return out
