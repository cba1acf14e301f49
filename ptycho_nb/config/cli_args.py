"""argparse arguments generated from field metadata, and the layers a command line gives.

Every generated argument has ``default=argparse.SUPPRESS``: a flag absent from the namespace was
not typed, so the precedence typed flag > ``--config FILE.json`` > front-end default > dataclass
default is applied exactly, by :func:`ptycho_nb.config.precedence.resolve` (once per run, in the
payload preparation). This module only turns a parsed command line into its two layers
(:func:`cli_layers`). The help text shows the default the CLI really uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from typing import Any, Callable

from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .execution import PyTorchExecutionConfig
from .fields import ConfigError, config_fields, describe_rule, format_value
from .precedence import Layer, layer_defaults
from .files import read_config_file

__all__ = [
    "MODES",
    "MODE_CLASSES",
    "add_config_arguments",
    "add_execution_arguments",
    "add_common_arguments",
    "cli_layers",
    "cli_default",
    "typed_values",
    "DEPRECATED_DEVICE_FLAG",
]

MODES = ("train", "infer")
#: Config classes whose flags each command exposes (section name → class).
MODE_CLASSES: dict[str, dict[str, type]] = {
    "train": {"model": ModelConfig, "training": TrainingConfig, "execution": PyTorchExecutionConfig},
    "infer": {"inference": InferenceConfig, "execution": PyTorchExecutionConfig},
}
DEPRECATED_DEVICE_FLAG = "--device"
_NONE_WORDS = ("none", "None", "null")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid: rule is one of {MODES}")


def cli_default(cls: type, f: dataclasses.Field, command: str | None = None) -> Any:
    """The default the CLI uses for a field: the command's default (``command='reconstruct'``),
    else the front end's, else the dataclass's."""
    if cls is PyTorchExecutionConfig:
        given = layer_defaults("execution", "cli", command)
        if f.name in given:
            return given[f.name][0]
    return f.default


def _converter(name: str, kind: str, optional: bool) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if optional and text in _NONE_WORDS:
            return None
        try:
            if kind == "int":
                return int(text)
            if kind == "float":
                return float(text)
            if kind == "int_or_auto":
                return text if text == "auto" else int(text)
        except ValueError:
            expected = {"int": "an integer", "float": "a number", "int_or_auto": "'auto' or an integer"}[kind]
            raise argparse.ArgumentTypeError(
                f"{name}={text!r} is invalid: expected {expected}"
                + (" or 'none'" if optional else "")
            ) from None
        return text  # str, path: the dataclass validates

    convert.__name__ = name  # argparse names the converter in some messages
    return convert


def _help(cls: type, f: dataclasses.Field, *, negative: bool = False, command: str | None = None) -> str:
    m = f.metadata
    default = cli_default(cls, f, command)
    if negative:
        return f"Set {f.name}=False."
    text = m["help"].replace("%", "%%")
    rule = describe_rule(f).replace("%", "%%")
    if m["kind"] in ("bool", "bool_or_auto"):
        return f"{text} Sets {f.name}=True. (default: {format_value(default).replace('%', '%%')})"
    return f"{text} Rule: {rule}. (default: {format_value(default).replace('%', '%%')})"


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, mode: str,
    command: str | None = None,
) -> list[str]:
    """Add the flags of every ``cls`` field exposed in ``mode``; return the field names added.

    ``command`` ('reconstruct') only changes the defaults the help shows (:func:`cli_default`);
    the payload applies them (``create_inference_payload(command=...)``)."""
    added = []
    for f in config_fields(cls):
        m = f.metadata
        if mode not in m["modes"] or not m["flags"]:
            continue
        if m["kind"] in ("bool", "bool_or_auto"):  # 'auto' is the default: neither flag given
            parser.add_argument(*m["flags"], dest=f.name, action="store_const", const=True,
                                default=argparse.SUPPRESS, help=_help(cls, f, command=command))
            if m["neg_flags"]:
                parser.add_argument(*m["neg_flags"], dest=f.name, action="store_const", const=False,
                                    default=argparse.SUPPRESS, help=_help(cls, f, negative=True))
        else:
            metavar = None
            if m["choices"] is not None:
                metavar = "{" + ",".join(str(c) for c in m["choices"]) + "}"
            parser.add_argument(
                *m["flags"], dest=f.name, type=_converter(f.name, m["kind"], m["optional"]),
                default=argparse.SUPPRESS, metavar=metavar or f.name.upper(),
                help=_help(cls, f, command=command),
            )
        added.append(f.name)
    return added


def add_execution_arguments(parser: argparse.ArgumentParser, mode: str,
                            command: str | None = None) -> None:
    """Execution-config flags for ``mode`` plus the legacy aliases ``--device``/``--disable_mlflow``."""
    _check_mode(mode)
    group = parser.add_argument_group("execution (PyTorchExecutionConfig)")
    add_config_arguments(group, PyTorchExecutionConfig, mode, command)
    group.add_argument(
        DEPRECATED_DEVICE_FLAG, dest="_device", default=argparse.SUPPRESS, metavar="DEVICE",
        help="Deprecated alias of --accelerator (a DeprecationWarning is issued; it never forces "
             "cpu on its own). (default: not set)",
    )
    if mode == "train":
        group.add_argument(
            "--disable_mlflow", "--disable-mlflow", dest="_disable_mlflow", action="store_true",
            default=argparse.SUPPRESS,
            help="Legacy alias of --logger none. (default: not set)",
        )


def add_common_arguments(parser: argparse.ArgumentParser, mode: str, command: str | None = None) -> None:
    """All flags of a command: canonical configs, execution config and ``--config``
    (``command='reconstruct'``: the ``infer`` flags, their help showing reconstruct's defaults)."""
    _check_mode(mode)
    for section, cls in MODE_CLASSES[mode].items():
        if cls is PyTorchExecutionConfig:
            continue
        group = parser.add_argument_group(f"{section} ({cls.__name__})")
        add_config_arguments(group, cls, mode, command)
    add_execution_arguments(parser, mode, command)
    parser.add_argument(
        "--config", dest="_config", default=argparse.SUPPRESS, metavar="FILE.json",
        help="Saved config (one config's JSON or a sectioned file with execution/model/training/"
             "inference); flags typed on the command line win. (default: not set)",
    )


def typed_values(args: argparse.Namespace, cls: type, mode: str) -> dict[str, Any]:
    """The ``cls`` field values the user typed (fields absent from ``args`` were not typed)."""
    out = {}
    for f in config_fields(cls):
        if mode in f.metadata["modes"] and hasattr(args, f.name):
            out[f.name] = getattr(args, f.name)
    return out


def _typed_execution(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Typed execution flags, with the legacy aliases ``--device`` and ``--disable_mlflow`` mapped."""
    typed = typed_values(args, PyTorchExecutionConfig, mode)
    device = getattr(args, "_device", None)
    if device is not None:
        warnings.warn(
            f"{DEPRECATED_DEVICE_FLAG} is deprecated; use --accelerator "
            + ("(--accelerator was given and wins)" if "accelerator" in typed else
               f"(mapping {DEPRECATED_DEVICE_FLAG} {device} to --accelerator {device.split(':')[0]})"),
            DeprecationWarning, stacklevel=3,
        )
        if "accelerator" not in typed:
            typed["accelerator"] = device.split(":")[0]
    if getattr(args, "_disable_mlflow", False):
        if typed.get("logger_backend") not in (None, "none"):
            raise ConfigError(
                f"--disable_mlflow conflicts with --logger {typed['logger_backend']}: "
                "logger_backend cannot be both",
                fields=("logger_backend",), value=typed["logger_backend"],
            )
        typed["logger_backend"] = None
    return typed


def cli_layers(args: argparse.Namespace, mode: str) -> list[Layer]:
    """The layers a parsed command line gives, lowest precedence first.

    ``[config file, cli flag]``: the ``--config FILE.json`` sections (only the fields the file
    holds; absent when no file was given), then the flags the user typed. The front-end defaults
    and the dataclass defaults lie below them; :func:`ptycho_nb.config.precedence.resolve` applies
    all of them once. ``--device`` is a deprecated alias of ``--accelerator``
    (DeprecationWarning; ignored when ``--accelerator`` is typed); ``--disable_mlflow`` means
    ``--logger none``; ``--quiet`` sets ``enable_progress_bar=False``.

    Raises
    ------
    ValueError
        Conflicting legacy flags, a config file that is not a JSON object or has an unknown
        section.
    FileNotFoundError
        A ``--config`` file that does not exist.
    """
    _check_mode(mode)
    layers: list[Layer] = []
    path = getattr(args, "_config", None)
    if path is not None:
        sections = read_config_file(path)
        layers.append(Layer("config file", {s: v for s, v in sections.items() if s in MODE_CLASSES[mode]},
                            where=f"config file {path}"))
    typed: dict[str, dict[str, Any]] = {}
    for section, cls in MODE_CLASSES[mode].items():
        typed[section] = (_typed_execution(args, mode) if cls is PyTorchExecutionConfig
                          else typed_values(args, cls, mode))
    layers.append(Layer("cli flag", typed, where="command line"))
    return layers
