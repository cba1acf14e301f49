"""Render the generated tables of ``specs/ptychodus_api_spec.md`` from the code.

``python -m ptycho_nb.spec`` rewrites the tables between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->`` markers (atomically); ``python -m ptycho_nb.spec --check`` exits 1
with a diff summary when the committed spec is stale. Blocks: ``execution-fields``,
``canonical-fields``, ``train-flags``, ``infer-flags``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import pathlib
import re
import sys
from typing import Callable, Sequence

from .config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from .config.cli_args import MODE_CLASSES, cli_default
from .config.execution import FRONT_END_DEFAULTS, RECONSTRUCT_DEFAULTS, PyTorchExecutionConfig
from .config.fields import EXECUTION_CATEGORIES, config_fields, describe_rule, format_value
from .atomic import write_text_atomic
from .config.legacy import legacy_key

__all__ = ["DEFAULT_SPEC", "BLOCKS", "render", "render_block", "main"]

DEFAULT_SPEC = pathlib.Path(__file__).resolve().parents[1] / "specs" / "ptychodus_api_spec.md"
_MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _type(f: dataclasses.Field) -> str:
    kind = f.metadata["kind"]
    t = {"int_or_auto": "int or 'auto'", "bool_or_auto": "bool or 'auto'"}.get(kind, kind)
    return f"{t} or None" if f.metadata["optional"] else t


def _flags(f: dataclasses.Field) -> str:
    m = f.metadata
    if not m["flags"]:
        return "—"
    out = ", ".join(f"`{x}`" for x in m["flags"] + m["neg_flags"])
    return f"{out} ({'/'.join(m['modes'])})"


def _execution_fields() -> str:
    rows = []
    by_cat = sorted(config_fields(PyTorchExecutionConfig),
                    key=lambda f: EXECUTION_CATEGORIES.index(f.metadata["category"]))
    for f in by_cat:
        fe = FRONT_END_DEFAULTS.get(f.name, f.default)
        rec = format_value(RECONSTRUCT_DEFAULTS[f.name]) if f.name in RECONSTRUCT_DEFAULTS else "—"
        rows.append([f.metadata["category"], f"`{f.name}`", _type(f), format_value(f.default),
                     format_value(fe), rec, describe_rule(f), f.metadata["lands"], _flags(f)])
    return _table(["category", "field", "type", "default", "CLI/widget default", "reconstruct default",
                   "rule (ValueError otherwise)", "lands in", "CLI flags"], rows)


def _canonical_fields() -> str:
    rows = []
    for cls in (ModelConfig, TrainingConfig, InferenceConfig):
        for f in config_fields(cls):
            rows.append([cls.__name__, f.metadata["category"], f"`{f.name}`", _type(f),
                         format_value(f.default), describe_rule(f), f"`{legacy_key(f.name)}`",
                         _flags(f)])
    return _table(["config", "category", "field", "type", "default", "rule (ValueError otherwise)",
                   "params.cfg key", "CLI flags"], rows)


def _subparser(name: str) -> argparse.ArgumentParser:
    from .cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no sub-commands")  # pragma: no cover


def _field_of(mode: str, dest: str) -> tuple[str, type, dataclasses.Field] | None:
    for section, cls in MODE_CLASSES[mode].items():
        for f in config_fields(cls):
            if f.name == dest:
                return section, cls, f
    return None


_SPECIAL = {
    "_device": ("`execution.accelerator` (deprecated alias, DeprecationWarning)", "not set",
                "Legacy device flag; never forces cpu on its own; --accelerator wins when both are typed."),
    "_disable_mlflow": ("`execution.logger_backend` = None", "not set", "Legacy alias of `--logger none`."),
    "_overwrite": ("—", "not set", "Replace existing output files (refused otherwise)."),
    "_config": ("all configs (sections execution/model/training/inference)", "not set",
                "Load a saved config JSON; flags typed on the command line win."),
}


def _flag_table(mode: str) -> str:
    rows = []
    for action in _subparser(mode)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flags = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.dest in _SPECIAL:
            maps, default, text = _SPECIAL[action.dest]
        else:
            found = _field_of(mode, action.dest)
            assert found is not None, action.dest
            section, cls, f = found
            if action.const is False:
                maps, default, text = f"`{section}.{f.name}` = False", "—", f"Sets {f.name}=False."
            else:
                maps = f"`{section}.{f.name}`" + (" = True" if action.const is True else "")
                default = format_value(cli_default(cls, f))
                if mode == "infer" and cli_default(cls, f, "reconstruct") != cli_default(cls, f):
                    default += f" (reconstruct: {format_value(cli_default(cls, f, 'reconstruct'))})"
                text = f.metadata["help"]
        rows.append([flags, default, maps, text])
    return _table(["flag", "default", "maps to", "help"], rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "execution-fields": _execution_fields,
    "canonical-fields": _canonical_fields,
    "train-flags": lambda: _flag_table("train"),
    "infer-flags": lambda: _flag_table("infer"),
}


def render_block(name: str) -> str:
    """The generated text of one block (``KeyError`` for an unknown name)."""
    return BLOCKS[name]()


def render(text: str) -> str:
    """``text`` with every generated block re-rendered.

    Raises
    ------
    ValueError
        If a marker names an unknown block or a known block has no markers.
    """
    seen = set()

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise ValueError(f"spec: unknown generated block {name!r}; known: {sorted(BLOCKS)}")
        seen.add(name)
        return m.group(1) + render_block(name) + m.group(4)

    out = _MARKER.sub(sub, text)
    missing = set(BLOCKS) - seen
    if missing:
        raise ValueError(f"spec: generated block(s) missing from the spec: {sorted(missing)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the spec tables (or ``--check`` them); return the exit status."""
    ap = argparse.ArgumentParser(prog="python -m ptycho_nb.spec", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the spec is stale (default: False)")
    ap.add_argument("--path", type=pathlib.Path, default=DEFAULT_SPEC, help=f"spec file (default: {DEFAULT_SPEC})")
    args = ap.parse_args(argv)
    if not args.path.is_file():
        print(f"spec file not found: {args.path}", file=sys.stderr)
        return 2
    old = args.path.read_text(encoding="utf-8")
    try:
        new = render(old)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        if new == old:
            print(f"{args.path}: generated tables are up to date")
            return 0
        diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "committed", "generated",
                                         lineterm="", n=0))
        changed = [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        print(f"{args.path}: generated tables are stale ({len(changed)} lines differ); "
              "run `python -m ptycho_nb.spec` to regenerate", file=sys.stderr)
        for ln in changed[:20]:
            print("  " + ln, file=sys.stderr)
        return 1
    if new != old:
        write_text_atomic(args.path, new, overwrite=True)  # regenerating is the point
        print(f"{args.path}: regenerated")
    else:
        print(f"{args.path}: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
