"""Training and inference throughput, Lightning's overhead, DataLoader workers, bf16, demo memory.

Prints ratios measured side by side in one run (these machines are noisy; absolute times are
for context only; every pair is interleaved epoch by epoch and compared by medians):

- training patterns/s with Lightning (the package's own ``Trainer`` settings, no checkpointing,
  logging or progress bar) and with a bare loop over the very same module, DataLoader and
  optimizer; the ratio of their median epoch times (target ≤ 1.15);
- DataLoader ``num_workers`` 0 vs 2 (``PyTorchExecutionConfig.num_workers``; bare loop, same
  module and optimizer; workers start each epoch, as with the default
  ``persistent_workers=False``);
- float32 vs ``precision='bf16-mixed'`` (Lightning epochs) where the CPU has native bf16
  (AVX512-BF16/AMX, detected); "unsupported" otherwise;
- inference patterns/s (forward pass + stitching through ``ptycho_nb.infer``) vs batch size, and
  the physics refinement's cost relative to it;
- with ``--demo-rss`` (off by default: the demo takes minutes): the peak resident memory of the
  real ``ptycho-nb demo`` CLI run in a subprocess writing into a temporary folder.

A summary table of the ratios ends the output.

Usage: ``python bench/throughput.py [--patterns 512] [--epochs 3] [--threads 2] [--quick]
[--demo-rss]`` (``--quick``: a seconds-long smoke run; with ``--demo-rss`` it runs the demo's quick
mode).
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import ptycho_nb  # before lightning: applies the torchvision shim (see ptycho_nb/_torchvision_compat.py)
import lightning as L
import torch

from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.engine.datamodule import PtychoDataModule
from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics

#: Rows of the final summary: (measure, ratio, note).
Summary = list[tuple[str, str, str]]


class _EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._t)


def _lightning_epoch(module: PINNModule, dm: PtychoDataModule, precision: str = "32-true") -> float:
    """Seconds of one Lightning training epoch (Trainer built fresh, as ``train()`` does)."""
    timer = _EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, precision=precision,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, datamodule=dm)
    return timer.times[0]


def _bare_epoch(module: PINNModule, loader: Any, opt: torch.optim.Optimizer) -> float:
    """Seconds of one epoch of a plain PyTorch loop (loader iteration included)."""
    module.train()
    t = time.perf_counter()
    for batch in loader:
        loss = module.compute_loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def _interleaved(a: Callable[[], float], b: Callable[[], float], epochs: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b`` after one warm-up each, alternating which goes first."""
    a(), b()  # warm-up of both paths (allocator, first-call costs, worker start-up code paths)
    ta, tb = [], []
    for k in range(epochs):
        if k % 2:
            tb.append(b()), ta.append(a())
        else:
            ta.append(a()), tb.append(b())
    return statistics.median(ta), statistics.median(tb)


def _fresh(data: Any, mcfg: ModelConfig, tcfg: TrainingConfig,
           ecfg: PyTorchExecutionConfig) -> tuple[PINNModule, torch.optim.Optimizer]:
    torch.manual_seed(0)  # every compared module starts from the same weights
    module = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=data.probe,
                        scaling=scaling_statistics(data))
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=ecfg.learning_rate)
    return module, opt


def bench_lightning_overhead(data: Any, mcfg: ModelConfig, tcfg: TrainingConfig, epochs: int,
                             summary: Summary) -> PINNModule:
    """Lightning vs bare loop; returns the Lightning-trained module (for the inference part)."""
    ecfg = PyTorchExecutionConfig()
    dm = PtychoDataModule(data, model=mcfg, training=tcfg, execution=ecfg)
    lit, _ = _fresh(data, mcfg, tcfg, ecfg)
    bare, opt = _fresh(data, mcfg, tcfg, ecfg)
    loader = dm.train_dataloader()
    ml, mb = _interleaved(lambda: _lightning_epoch(lit, dm), lambda: _bare_epoch(bare, loader, opt), epochs)
    n = len(dm.train_set)
    print(f"\n## training (gridsize {mcfg.gridsize}, N={mcfg.N}, batch {tcfg.batch_size}, {n} patterns/epoch)")
    print("| loop | median epoch (s) | patterns/s |")
    print("|---|---|---|")
    print(f"| bare PyTorch | {mb:.2f} | {n / mb:.1f} |")
    print(f"| Lightning | {ml:.2f} | {n / ml:.1f} |")
    print(f"\nLightning / bare epoch time: {ml / mb:.3f} (target ≤ 1.15)")
    summary.append(("Lightning / bare loop, epoch time", f"{ml / mb:.3f}", "target ≤ 1.15"))
    return lit


def bench_num_workers(data: Any, mcfg: ModelConfig, tcfg: TrainingConfig, epochs: int,
                      summary: Summary) -> None:
    """DataLoader num_workers 0 vs 2 through the execution config, same module and optimizer."""
    loaders = {w: PtychoDataModule(data, model=mcfg, training=tcfg,
                                   execution=PyTorchExecutionConfig(num_workers=w)).train_dataloader()
               for w in (0, 2)}
    module, opt = _fresh(data, mcfg, tcfg, PyTorchExecutionConfig())
    t0, t2 = _interleaved(lambda: _bare_epoch(module, loaders[0], opt),
                          lambda: _bare_epoch(module, loaders[2], opt), epochs)
    print("\n## DataLoader workers (bare loop, workers started every epoch)")
    print("| num_workers | median epoch (s) |")
    print("|---|---|")
    print(f"| 0 | {t0:.2f} |")
    print(f"| 2 | {t2:.2f} |")
    summary.append(("num_workers 2 / 0, epoch time", f"{t2 / t0:.3f}", "< 1: workers help"))


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bench_precision(data: Any, mcfg: ModelConfig, tcfg: TrainingConfig, epochs: int,
                    summary: Summary) -> None:
    """float32 vs bf16-mixed Lightning epochs (same initial weights)."""
    print("\n## precision (Lightning epochs)")
    if not bf16_supported():
        print("bf16-mixed: unsupported on this CPU (no native bf16)")
        summary.append(("bf16-mixed / float32, epoch time", "unsupported", "no native bf16 on this CPU"))
        return
    dms, mods = {}, {}
    for prec in ("32-true", "bf16-mixed"):
        ecfg = PyTorchExecutionConfig(precision=prec)
        dms[prec] = PtychoDataModule(data, model=mcfg, training=tcfg, execution=ecfg)
        mods[prec], _ = _fresh(data, mcfg, tcfg, ecfg)
    t32, t16 = _interleaved(lambda: _lightning_epoch(mods["32-true"], dms["32-true"], "32-true"),
                            lambda: _lightning_epoch(mods["bf16-mixed"], dms["bf16-mixed"], "bf16-mixed"),
                            epochs)
    print("| precision | median epoch (s) |")
    print("|---|---|")
    print(f"| 32-true | {t32:.2f} |")
    print(f"| bf16-mixed | {t16:.2f} |")
    summary.append(("bf16-mixed / float32, epoch time", f"{t16 / t32:.3f}", "< 1: bf16 faster"))


def bench_inference(module: PINNModule, data: Any, batch_sizes: tuple[int, ...], refine_epochs: int | None,
                    summary: Summary, repeats: int = 2) -> None:
    """infer() patterns/s vs batch size, and the refinement's cost relative to the network pass."""
    print("\n## inference (network forward + stitching, ptycho_nb.infer with refine_epochs=0)")
    print(f"| batch size | patterns/s | ratio to batch {batch_sizes[0]} |")
    print("|---|---|---|")
    module.eval()
    rates = {}
    for bs in batch_sizes:
        rates[bs] = max(ptycho_nb.infer(module, data, inference_batch_size=bs, refine_epochs=0)
                        .timings.patterns_per_s for _ in range(repeats))
    for bs, r in rates.items():
        print(f"| {bs} | {r:.0f} | {r / rates[batch_sizes[0]]:.2f} |")
    big = batch_sizes[-1]
    summary.append((f"inference batch {big} / batch {batch_sizes[0]}, patterns/s",
                    f"{rates[big] / rates[batch_sizes[0]]:.2f}", f"{rates[batch_sizes[0]]:.0f} patterns/s at batch {batch_sizes[0]}"))
    kw = {} if refine_epochs is None else {"refine_epochs": refine_epochs}
    rec = ptycho_nb.infer(module, data, inference_batch_size=batch_sizes[1], **kw)
    t = rec.timings
    ratio = t.refine_s / max(t.total_s - t.refine_s, 1e-9)
    print(f"\nphysics refinement ({rec.run.refinement.max_epochs} epochs"
          f"{', the default' if refine_epochs is None else ''}): {t.refine_s:.2f} s for "
          f"{rec.patches.shape[0]} patterns, {ratio:.1f}× the network's forward + stitching")
    summary.append((f"refinement ({rec.run.refinement.max_epochs} epochs) / network pass, time",
                    f"{ratio:.1f}", ""))


def demo_peak_rss(quick: bool, workdir: pathlib.Path) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time (s) of ``ptycho-nb demo`` in a subprocess writing into ``workdir``.

    A small launcher process runs the CLI and reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``:
    its only children are the demo (and whatever the demo starts), so this process's own
    DataLoader workers cannot contaminate the number.
    """
    demo = [sys.executable, "-m", "ptycho_nb.cli", "demo", "--quiet", "--output-dir", str(workdir / "demo")]
    if quick:
        demo.append("--quick")
    launcher = ("import resource, subprocess, sys; "
                f"rc = subprocess.run({demo!r}, stdout=subprocess.DEVNULL).returncode; "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    # The demo must import this very ptycho_nb, whatever the install says.
    root = str(pathlib.Path(ptycho_nb.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", launcher], env=env, cwd=workdir,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"ptycho-nb demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return int(proc.stdout.split()[-1]) / 1024, wall  # Linux reports ru_maxrss in KiB


def main() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)  # device summaries and tips
    warnings.filterwarnings("ignore", message=r".*treespec.*")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="interleaved epochs of each kind")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own; 1 with --quick, where a busy machine "
                         "would otherwise make every multi-threaded operator wait for a descheduled thread)")
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run (tiny sizes)")
    ap.add_argument("--demo-rss", action="store_true",
                    help="also measure the peak RSS of `ptycho-nb demo` (minutes; its quick mode with --quick)")
    args = ap.parse_args()
    if args.quick:  # tiny everything: this only keeps the script from rotting (tests/test_bench_smoke.py)
        args.patterns, args.epochs, args.batch_size = 32, 1, 8
        args.threads = args.threads or 1
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    print(f"# throughput — {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}, lightning {L.__version__}, ptycho_nb {ptycho_nb.__version__}"
          f"{' (quick)' if args.quick else ''}")

    data = ptycho_nb.simulate(N=32 if args.quick else 64, n_positions=args.patterns, seed=0)
    mcfg = ModelConfig(N=data.N, n_filters_scale=1 if args.quick else 2)
    tcfg = TrainingConfig(batch_size=args.batch_size, validation_fraction=0.0, nepochs=1)
    summary: Summary = []
    lit = bench_lightning_overhead(data, mcfg, tcfg, args.epochs, summary)
    bench_num_workers(data, mcfg, tcfg, args.epochs, summary)
    bench_precision(data, mcfg, tcfg, args.epochs, summary)
    bench_inference(lit, data, (8, 32) if args.quick else (16, 64, 256),
                    1 if args.quick else None, summary, repeats=1 if args.quick else 2)
    if args.demo_rss:
        rss, wall = demo_peak_rss(args.quick, pathlib.Path.cwd())
        print(f"\n## ptycho-nb demo{' --quick' if args.quick else ''}: peak RSS {rss:.0f} MiB, {wall:.0f} s")
        summary.append((f"ptycho-nb demo{' --quick' if args.quick else ''} peak RSS (MiB)", f"{rss:.0f}",
                        "Binder gives about 2 GB"))

    print("\n## summary")
    print("| measure | ratio | note |")
    print("|---|---|---|")
    for row in summary:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # Lightning may write lightning_logs/ (and the demo its outputs) in here
        main()
