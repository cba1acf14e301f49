"""Smoke test of the throughput benchmark: its quick mode runs end to end and prints the summary.

CI does not run the full benchmarks (minutes, and their numbers need a quiet machine); this only
keeps ``bench/throughput.py`` from rotting as the package changes.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_throughput_quick_prints_summary_table():
    # The script must import this checkout's ptycho_nb, whatever the installation points at.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--quick"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    summary = out[out.index("## summary"):]
    number = r"\d+(\.\d+)?"
    for measure, value in (("Lightning / bare loop, epoch time", number),
                           ("num_workers 2 / 0, epoch time", number),
                           ("bf16-mixed / float32, epoch time", rf"({number}|unsupported)"),
                           ("inference batch 32 / batch 8, patterns/s", number),
                           (r"refinement \(1 epochs\) / network pass, time", number)):
        assert re.search(rf"^\| {measure} \| {value} \|", summary, re.M), (measure, summary)
    assert "demo" not in summary  # the demo's memory is measured only with --demo-rss


def test_refine_policies_quick_prints_every_policy():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "refine_policies.py"), "--quick",
                           "--doses", "1e6", "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for policy in ("adam", "pie", "pie+momentum", "pie+momentum+growth"):
        assert re.search(rf"^\| 1e\+06 \| {re.escape(policy)} \| \d+ \(", proc.stdout, re.M), proc.stdout


def test_finetune_speed_prints_both_precisions_per_epoch():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "finetune_speed.py"), "--epochs", "2",
                           "--patterns", "60", "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    number = r"-?\d+\.\d+"
    for epoch in (1, 2):
        assert re.search(rf"^\| {epoch} \| {number} \| {number} \| {number} \| {number} \|$",
                         proc.stdout, re.M), proc.stdout
    assert re.search(rf"fp32 / bf16 = {number}x", proc.stdout), proc.stdout
    for precision in ("32-true", "bf16-mixed"):
        assert re.search(rf"^{precision}: best network-alone phase SSIM within 60 s of training: {number}",
                         proc.stdout, re.M), proc.stdout


def test_generalist_targets_prints_every_target_row():
    """Issue 12's targets bench runs end to end at tiny sizes and prints one row per target."""
    import ptycho_nb

    if not ptycho_nb.pretrained.available():
        import pytest

        pytest.skip("no pretrained model is shipped")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "generalist_targets.py"), "--quick",
                           "--threads", "1", "--skip-iterative"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    number = r"-?\d+(\.\d+)?"
    for target in (r"network alone, lines \+ disc, 1e6: phase SSIM ≥ 0\.85",
                   r"never-seen probe \(siemens \+ zone plate, 1e6\), fine-tuned ≤ 60 s: ≥ 0\.80",
                   r"inference, network \+ stitching, N = 64: ≥ 1,000 patterns/s"):
        assert re.search(rf"^\| {target} \| [^|]*{number}[^|]* \| [^|]+ \| (\*\*met\*\*|missed) \|$",
                         proc.stdout, re.M), (target, proc.stdout)


def test_device_check_toy_writes_every_figure_and_the_weights(tmp_path):
    """bench/device_check.py at toy size on the CPU: the script a lent GPU machine runs, kept
    runnable here (refinement and inference timings per device, a short training with its
    batch probe, the scored archive)."""
    import json

    import ptycho_nb

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "device_check.py"), "--toy",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert "errors" not in report and report["machine"]["torch"]
    assert {(r["N"], r["patterns"]) for r in report["refine"]} == {(32, 40), (32, 80)}
    assert all(r["device"] == "cpu" and r["pattern_iterations_per_s"] > 0 for r in report["refine"])
    assert {r["precision"] for r in report["infer"]} == {"32-true", "bf16-mixed"}
    assert all(r["patterns_per_s"] > 0 for r in report["infer"])
    assert [p["batch_size"] for p in report["train_probe"]] == [4, 8]
    facts = report["train"][0]
    assert facts["steps"] > 0 and facts["batch_size"] in (4, 8) and facts["device"] == "cpu"
    scores = report["train_scores"][0]
    assert scores["rows"] and all("phase_ssim" in row for row in scores["rows"])
    model = ptycho_nb.load_model(tmp_path / scores["archive"])
    assert model.model_card["name"].endswith("-device")


def test_lit_field_quick_prints_every_scan_and_fraction():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "lit_field.py"), "--quick", "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ssim = r"-?\d\.\d{3}"
    for scan in ("siemens / defocused pupil", "dead leaves / zone plate", "lines / disc"):
        assert re.search(rf"^\| {scan} \| flat, 3 epochs \| \d+x\d+ \| \d+x\d+ \| \d+x\d+ \| {ssim} \| "
                         rf"{ssim} \| {ssim} \|$", proc.stdout, re.M), proc.stdout
    for fraction in ("0", "0.01", "0.05", "0.2"):
        assert re.search(rf"^\| {re.escape(fraction)} \| \d+x\d+ {ssim} \|", proc.stdout, re.M), proc.stdout
