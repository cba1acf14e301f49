"""Training on the scan itself: network-alone quality against training seconds, fp32 vs bf16.

Issue 12's fine-tuning target (network alone >= 0.80 phase SSIM after <= 60 s of training on a
1,000-pattern scan at 10^6 photons, with a probe the model never saw) measured side by side in
one run: the same scan, model and seed trained once per precision ('32-true', then
'bf16-mixed'), the network's weights kept at the end of every epoch, each scored afterwards (the
network alone, no refinement; scoring is not on the training clock). The scan is a siemens star
lit by a zone plate: an object kind and a probe family the generalist's recipe never draws.

The start is a fresh network (``--init`` an archive or ``pretrained:NAME`` to fine-tune one);
the settings are the demo's (gridsize 2 with the overlap constraint, ``probe_big=False``,
batch 16, Adam 1e-3), except the precision.

Usage: ``PYTHONPATH=. python bench/finetune_speed.py [--epochs 9] [--threads 2] [--init PATH]``
(about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys
import tempfile
import time
from typing import Any

# This checkout's ptycho_nb, whatever the installation points at.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import ptycho_nb  # noqa: E402  (before lightning)
import lightning as L  # noqa: E402
import torch  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed")


class _Snapshots(L.Callback):
    """The network's weights and the fit's wall seconds at the end of every training epoch."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self.rows: list[tuple[int, float, dict[str, torch.Tensor]]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        self.rows.append((trainer.current_epoch + 1, time.perf_counter() - self.t0, state))


def run(scan: Any, precision: str, epochs: int, init: str | None, out: pathlib.Path) -> list[dict[str, float]]:
    snaps = _Snapshots()
    kw: dict[str, Any] = dict(gridsize=2, probe_big=False, batch_size=16, learning_rate=1e-3,
                              precision=precision, enable_progress_bar=False, seed=0)
    if init:
        kw["init"] = init
    res = ptycho_nb.train(scan, nepochs=epochs, output_dir=out / precision, callbacks=[snaps], **kw)
    module = res.module
    rows = []
    for epoch, seconds, state in snaps.rows:
        module.load_state_dict(state)
        rec = ptycho_nb.infer(copy.deepcopy(module), scan, refine_epochs=0, enable_progress_bar=False)
        m = rec.compare(remove_ramp=True)
        rows.append({"epoch": epoch, "seconds": seconds, "phase_ssim": float(m["phase_ssim"]),
                     "amplitude_ssim": float(m["amplitude_ssim"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--patterns", type=int, default=1000)
    p.add_argument("--budget", type=float, default=60.0, help="Training seconds of the target (default 60).")
    p.add_argument("--init", default=None, help="Start from this model (archive or pretrained:NAME).")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scan = ptycho_nb.simulate(seed=2, N=64, n_positions=args.patterns, object_kind="siemens",
                              probe_kind="zone_plate", photons_per_pattern=1e6, overlap=0.73)
    print(f"siemens star, zone plate, {args.patterns} patterns at 1e6 photons; {args.threads} threads; "
          f"start: {args.init or 'a fresh network'}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in PRECISIONS:
            results[precision] = run(scan, precision, args.epochs, args.init, pathlib.Path(tmp))
    print("\n| epoch | " + " | ".join(f"{pr} s | {pr} phase SSIM" for pr in PRECISIONS) + " |")
    print("|---|" + "---|---|" * len(PRECISIONS))
    for i in range(args.epochs):
        cells = []
        for pr in PRECISIONS:
            r = results[pr][i] if i < len(results[pr]) else None
            cells += [f"{r['seconds']:.1f}", f"{r['phase_ssim']:.3f}"] if r else ["", ""]
        print(f"| {i + 1} | " + " | ".join(cells) + " |")
    per_epoch = {pr: results[pr][-1]["seconds"] / len(results[pr]) for pr in PRECISIONS}
    print(f"\nseconds per epoch: " + ", ".join(f"{pr} {v:.2f}" for pr, v in per_epoch.items())
          + f"; fp32 / bf16 = {per_epoch['32-true'] / per_epoch['bf16-mixed']:.2f}x")
    for pr in PRECISIONS:
        within = [r for r in results[pr] if r["seconds"] <= args.budget]
        best = max((r["phase_ssim"] for r in within), default=float("nan"))
        print(f"{pr}: best network-alone phase SSIM within {args.budget:.0f} s of training: {best:.3f} "
              f"(target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
