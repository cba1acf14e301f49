"""Refinement step policies side by side: quality against epochs and seconds, from a flat start.

Every policy refines the same simulated scans (a random-line object, 1,000 patterns of 64×64,
known probe) from the same flat object with :func:`ptycho_nb.refine.refine`, and the
script prints, per dose, the phase SSIM after a few checkpoints (epochs) with the wall seconds,
and where each run stopped. The policies:

* ``adam``: Adam on the Poisson NLL (lr 0.02, batch 100), the refinement ptycho_nb used before;
* ``pie``: the PIE-style Poisson update (batch 64), no momentum, fixed batch;
* ``pie+momentum``: the same with momentum 0.85;
* ``pie+momentum+growth``: also doubling the batch on every plateau (the default of
  ``ptycho_nb.reconstruct``).

Runs are sequential in one process on the same threads, so the seconds are comparable within a
run (these machines are noisy: compare ratios, not absolute times).

Usage::

    python bench/refine_policies.py                 # doses 1e3 1e4 1e6, 1,000 patterns
    python bench/refine_policies.py --quick         # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ptycho_nb  # before anything imports lightning (torchvision shim)
import torch
from ptycho_nb.metrics import compare
from ptycho_nb.refine import refine

POLICIES = {
    "adam": dict(method="adam", step=0.02, batch_size=100, grow_batch=False, tol=0.0),
    "pie": dict(momentum=0.0, grow_batch=False),
    "pie+momentum": dict(momentum=0.85, grow_batch=False),
    "pie+momentum+growth": dict(momentum=0.85, grow_batch=True),
}
CHECKPOINTS = (5, 10, 20, 30, 50, 80, 120)


def run(dose: float, n_positions: int, max_epochs: int, seed: int = 7) -> list[str]:
    scan = ptycho_nb.simulate(N=64, object_kind="lines", n_positions=n_positions,
                              photons_per_pattern=dose, seed=seed)

    def ssim(obj: torch.Tensor) -> float:
        return compare(obj.numpy(), scan.object, offset=(0, 0), xcoords=scan.xcoords,
                       ycoords=scan.ycoords, probe=scan.probe)["phase_ssim"]

    lines = []
    for name, kw in POLICIES.items():
        marks: list[str] = []
        scored = [0.0]  # seconds spent scoring, taken off the clock

        def cb(pr, marks=marks, scored=scored):
            if pr.epoch in CHECKPOINTS:
                t = time.perf_counter()
                marks.append(f"{pr.epoch}:{ssim(pr.object):.3f}@{pr.seconds - scored[0]:.1f}s")
                scored[0] += time.perf_counter() - t
            return False

        kw = {"patience": 3, "tol": 1e-3, **kw}
        if name == "adam":
            kw["patience"] = max_epochs + 1  # Adam has no plateau rule of its own here
        res = refine(np.ones_like(scan.object), scan.diffraction, scan.xcoords, scan.ycoords,
                     scan.probe, 1.0, max_epochs=max_epochs, seed=0, callback=cb, **kw)
        lines.append(f"| {dose:.0e} | {name} | {res.epochs_run} ({res.stopped}) | "
                     f"{ssim(res.object):.3f} | {res.seconds - scored[0]:.1f} | {' '.join(marks)} |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doses", type=float, nargs="+", default=[1e3, 1e4, 1e6])
    ap.add_argument("--quick", action="store_true", help="60 patterns, 6 epochs: a smoke run")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, cap = (60, 6) if args.quick else (1000, 120)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {n} patterns, cap {cap} epochs")
    print("| dose | policy | epochs (stopped) | final phase SSIM | seconds | epoch:SSIM@seconds |")
    print("|---|---|---|---|---|---|")
    for dose in args.doses:
        run(dose, n, cap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
