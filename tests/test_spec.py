"""The spec's generated tables match the code; fields and flags are all documented."""

import argparse
import pathlib
import subprocess
import sys

import pytest

from ptycho_nb import cli, spec
from ptycho_nb.config import InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.config.fields import config_fields

SPEC = pathlib.Path(__file__).resolve().parents[1] / "specs" / "ptychodus_api_spec.md"


def test_check_passes_on_committed_spec():
    assert spec.main(["--check", "--path", str(SPEC)]) == 0


def test_check_cli_entry_point():
    r = subprocess.run([sys.executable, "-m", "ptycho_nb.spec", "--check"], capture_output=True, text=True,
                       timeout=120, cwd=SPEC.parents[1])
    assert r.returncode == 0, r.stderr


def _rows(text):
    return [ln for ln in text.splitlines() if ln.startswith("| ")]


def test_every_field_documented():
    text = SPEC.read_text()
    for cls in (PyTorchExecutionConfig, ModelConfig, TrainingConfig, InferenceConfig):
        for f in config_fields(cls):
            assert any(f"| `{f.name}` |" in row for row in _rows(text)), f"{cls.__name__}.{f.name}"


def test_every_flag_documented():
    text = SPEC.read_text()
    parser = cli.build_parser()
    sub = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    for mode in ("train", "infer"):
        block = text.split(f"BEGIN GENERATED: {mode}-flags")[1].split("END GENERATED")[0]
        for action in sub.choices[mode]._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help"):
                    continue
                assert f"`{flag}`" in block, (mode, flag)


def test_spec_states_both_accelerator_defaults():
    text = SPEC.read_text()
    row = [r for r in _rows(text) if "| `accelerator` |" in r][0]
    assert "| 'cpu' | 'auto' |" in row
    assert "accelerator='cpu'" in text and "accelerator='auto'" in text
    train = text.split("BEGIN GENERATED: train-flags")[1]
    assert "| `--accelerator` | 'auto' |" in train


def test_stale_spec_fails_check(tmp_path, capsys):
    stale = tmp_path / "spec.md"
    text = SPEC.read_text()
    # drop one field row from the generated table: the check must fail and name the difference
    row = [r for r in _rows(text) if "| `middle_trim` |" in r][0]
    stale.write_text(text.replace(row + "\n", ""))
    assert spec.main(["--check", "--path", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    # regeneration repairs it, atomically in place
    assert spec.main(["--path", str(stale)]) == 0
    assert stale.read_text() == text
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_block_fails(tmp_path):
    broken = tmp_path / "spec.md"
    text = SPEC.read_text()
    start = text.index("<!-- BEGIN GENERATED: infer-flags -->")
    end = text.index("<!-- END GENERATED: infer-flags -->") + len("<!-- END GENERATED: infer-flags -->")
    broken.write_text(text[:start] + text[end:])
    assert spec.main(["--check", "--path", str(broken)]) == 1
    with pytest.raises(ValueError, match="infer-flags"):
        spec.render(broken.read_text())


def test_new_field_would_fail(monkeypatch):
    """A field added to the code but not regenerated into the spec is caught by the check."""
    original = spec.BLOCKS["execution-fields"]
    monkeypatch.setitem(spec.BLOCKS, "execution-fields",
                        lambda: original() + "| inference | `new_knob` | int | 0 | 0 | x | y | z |\n")
    assert spec.main(["--check", "--path", str(SPEC)]) == 1
