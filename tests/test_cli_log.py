"""What the CLI writes when stdout is a file (CI logs, ``> log.txt``, a pipe): plain lines.

One short line per epoch (``epoch k/M: losses (s)``) and per phase, never tqdm's carriage-return
frames (the demo's log used to be one 212,939-character line); ``--quiet`` prints none of them.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

import ptycho_nb

NEPOCHS = 2


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "scan.npz"
    ptycho_nb.save(ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=30, step=5.0, seed=1),
                   path)
    return path


def _train(scan_file, out_dir, *extra):
    log = out_dir.parent / f"{out_dir.name}.log"
    cmd = [sys.executable, "-m", "ptycho_nb.cli", "train", "--train-data", str(scan_file),
           "--output-dir", str(out_dir), "--nepochs", str(NEPOCHS), "--batch-size", "8",
           "--n-filters-scale", "1", "--accelerator", "cpu", *extra]
    with open(log, "w") as fh:  # stdout is a file, as in `ptycho-nb train ... > log`
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return log.read_text()


def test_train_log_to_a_file_is_a_few_plain_lines_per_epoch(scan_file, tmp_path):
    text = _train(scan_file, tmp_path / "run")
    lines = text.splitlines()
    assert "\r" not in text and "\x1b[" not in text
    assert max(map(len, lines)) <= 500, max(lines, key=len)
    epochs = [ln for ln in lines if re.match(r"epoch \d+/\d+: ", ln)]
    assert [ln.split(":")[0] for ln in epochs] == [f"epoch {k}/{NEPOCHS}" for k in range(1, NEPOCHS + 1)]
    assert all("train_loss" in ln and re.search(r"\(\d+\.\d s\)$", ln) for ln in epochs), epochs
    assert any(ln.startswith(f"training: {NEPOCHS} epochs") for ln in lines)
    assert any(ln.startswith(f"training: done after {NEPOCHS} epoch(s)") for ln in lines)
    assert len(lines) <= 4 * NEPOCHS + 10, text  # the history table and summary included
    # the history table numbers its rows as the log lines do: 1 … M
    header = next(i for i, ln in enumerate(lines) if ln.startswith("epoch  "))
    rows = [ln.split()[0] for ln in lines[header + 1:header + 1 + NEPOCHS]]
    assert rows == [str(k) for k in range(1, NEPOCHS + 1)], text


def test_train_quiet_prints_no_progress_lines(scan_file, tmp_path):
    text = _train(scan_file, tmp_path / "quiet", "--quiet")
    assert not re.search(r"^(epoch \d+/|training: )", text, re.M), text
    assert "model archive:" in text  # the summary stays


def test_simulate_flags_match_the_api(tmp_path):
    """--object-kind / --object-shape / --probe-kind choose what simulate() can."""
    from ptycho_nb.cli import main

    out = tmp_path / "s.npz"
    assert main(["simulate", "--output", str(out), "--N", "32", "--n-positions", "10",
                 "--object-kind", "lines", "--object-shape", "64,72", "--probe-kind", "gaussian"]) == 0
    data = ptycho_nb.load(out)
    expected = ptycho_nb.simulate(N=32, n_positions=10, object_kind="lines", object_shape=(64, 72),
                                  probe_kind="gaussian", seed=0)
    assert data.object.shape == (64, 72)
    assert (data.diffraction == expected.diffraction).all()
    assert main(["simulate", "--output", str(out), "--object-shape", "64"]) == 2
