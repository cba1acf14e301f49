"""Training and inference throughput, and Lightning's overhead over a bare PyTorch loop.

Prints ratios measured side by side in one run (these machines are noisy; absolute times are
for context only):

- training patterns/s with Lightning (the package's own ``Trainer`` settings, no checkpointing,
  logging or progress bar) and with a bare loop over the very same module, DataLoader and
  optimizer, epochs interleaved; the ratio of their median epoch times (target ≤ 1.15);
- inference patterns/s (forward pass + stitching through ``ptycho_nb.infer``) vs batch size.

Usage: ``python bench/throughput.py [--patterns 512] [--epochs 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch

import ptycho_nb
from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.data.datamodule import PtychoDataModule
from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics


class _EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._t)


def _lightning_epoch(module: PINNModule, dm: PtychoDataModule) -> float:
    timer = _EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, datamodule=dm)
    return timer.times[0]


def _bare_epoch(module: PINNModule, loader, opt: torch.optim.Optimizer) -> float:
    module.train()
    t = time.perf_counter()
    for batch in loader:
        loss = module.compute_loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def main() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)  # device summaries and tips
    warnings.filterwarnings("ignore", message=r".*treespec.*")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="interleaved epochs of each kind")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# throughput — {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}, lightning {L.__version__}, ptycho_nb {ptycho_nb.__version__}")

    data = ptycho_nb.simulate(n_positions=args.patterns, seed=0)
    mcfg = ModelConfig(N=data.N)
    tcfg = TrainingConfig(batch_size=args.batch_size, validation_fraction=0.0, nepochs=1)
    ecfg = PyTorchExecutionConfig()
    dm = PtychoDataModule(data, model=mcfg, training=tcfg, execution=ecfg)
    stats = scaling_statistics(data)

    torch.manual_seed(0)
    lit = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=data.probe, scaling=stats)
    torch.manual_seed(0)
    bare = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=data.probe, scaling=stats)
    opt = torch.optim.Adam([p for p in bare.parameters() if p.requires_grad], lr=ecfg.learning_rate)
    loader = dm.train_dataloader()

    _bare_epoch(bare, loader, opt)  # warm-up of both paths (allocator, first-call costs)
    _lightning_epoch(lit, dm)
    t_lit, t_bare = [], []
    for _ in range(args.epochs):
        t_bare.append(_bare_epoch(bare, loader, opt))
        t_lit.append(_lightning_epoch(lit, dm))
    n = len(dm.train_set)
    ml, mb = statistics.median(t_lit), statistics.median(t_bare)
    print("\n## training (gridsize 1, N=64, batch %d, %d patterns/epoch)" % (args.batch_size, n))
    print("| loop | median epoch (s) | patterns/s |")
    print("|---|---|---|")
    print(f"| bare PyTorch | {mb:.2f} | {n / mb:.1f} |")
    print(f"| Lightning | {ml:.2f} | {n / ml:.1f} |")
    print(f"\nLightning / bare epoch time: {ml / mb:.3f} (target ≤ 1.15)")

    print("\n## inference (network forward + stitching, ptycho_nb.infer with refine_epochs=0)")
    print("| batch size | patterns/s | ratio to batch 16 |")
    print("|---|---|---|")
    lit.eval()
    rates = {}
    for bs in (16, 64, 256):
        best = 0.0
        for _ in range(2):
            rec = ptycho_nb.infer(lit, data, inference_batch_size=bs, refine_epochs=0)
            best = max(best, rec.timings["patterns_per_s"])
        rates[bs] = best
    for bs, r in rates.items():
        print(f"| {bs} | {r:.0f} | {r / rates[16]:.2f} |")
    rec = ptycho_nb.infer(lit, data, inference_batch_size=64)
    print(f"\nphysics refinement ({rec.settings['refine_epochs']} epochs, the default): "
          f"{rec.timings['refine_s']:.2f} s for {rec.patches.shape[0]} patterns, "
          f"{rec.timings['refine_s'] / max(rec.timings['total_s'] - rec.timings['refine_s'], 1e-9):.1f}× "
          "the network's forward + stitching")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        import os

        os.chdir(d)  # Lightning may write lightning_logs/ into the working directory
        main()
