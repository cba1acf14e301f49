"""Inference patterns/s: the old grouped forward pass vs the single pass, side by side, one run.

Same model, same scan, same Lightning ``Trainer`` (``build_trainer(execution, mode='infer')``),
same inference batch size; every variant runs once per repeat, interleaved, and medians are
compared (absolute numbers are for context; the ratios are the result):

- *old*: each neighbour group (C = gridsize² patterns) through the model (network, then the
  overlap merge), member 0 kept — what ``run_inference`` did before (reproduced here);
- *new*: ``run_inference``'s single pass — each distinct pattern through the network once,
  then the groups' merge from those patches (``ptycho_nb.engine.predict.own_patches``);
- *new, other layout*: the single pass with the other memory format (channels-last on ↔ off),
  which is how ``CHANNELS_LAST_PRECISIONS`` was chosen;
- ``ptycho_nb.infer(..., refine_epochs=0)`` as a whole: ``timings.network_patterns_per_s``
  (network + merge + stitching).

For gridsize 1 and 2, precision '32-true' and 'bf16-mixed' (where the CPU runs bf16 natively),
at N=64 with the demo's model settings (``ModelConfig(gridsize=g, probe_big=False)``, default
width). The model is untrained, its output heads randomised: the cost of a forward pass does not
depend on the weights, and randomised heads make the old/new comparison of the patches
meaningful (trained or not, the network maps every pattern on its own).

Usage: ``PYTHONPATH=. python bench/inference_speed.py [--patterns 800] [--repeats 3]
[--batch-size 16] [--threads 1]`` (about 2 minutes with the defaults on one core).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# This checkout's ptycho_nb, whatever the installation points at.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import ptycho_nb  # before lightning: the torchvision shim
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.data.grouping import Groups
from ptycho_nb.engine.datamodule import GroupedDiffraction, dataloader_kwargs, group_scan
from ptycho_nb.engine.trainer import build_trainer, quiet_lightning
from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics
from ptycho_nb.engine import predict as infer_mod


class _OldGroupedPredictor(L.LightningModule):
    """The grouped path as it was: ``model(diffraction, offsets)[:, 0]`` per group."""

    def __init__(self, inner: PINNModule) -> None:
        super().__init__()
        self.inner = inner

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.inner(batch["diffraction"], batch["offset_x"], batch["offset_y"])[:, 0]


def old_grouped(module: PINNModule, data: Any, groups: Any, loader_kw: dict[str, Any],
                ecfg: PyTorchExecutionConfig) -> torch.Tensor:
    """(G, N, N) complex64: every group through the model, member 0 kept."""
    with quiet_lightning(False):
        trainer = build_trainer(ecfg, mode="infer")
        outs = trainer.predict(_OldGroupedPredictor(module),
                               dataloaders=DataLoader(GroupedDiffraction(data, groups), **loader_kw))
    return torch.cat([o.detach().cpu().to(torch.complex64) for o in outs], dim=0)


def new_single_pass(module: PINNModule, data: Any, groups: Any, loader_kw: dict[str, Any],
                    ecfg: PyTorchExecutionConfig, channels_last: bool) -> torch.Tensor:
    """(G, N, N) complex64 through run_inference's single pass, memory format forced."""
    saved = infer_mod.CHANNELS_LAST_PRECISIONS
    infer_mod.CHANNELS_LAST_PRECISIONS = (ecfg.precision,) if channels_last else ()
    try:
        return infer_mod.own_patches(module, data, groups, loader_kw, ecfg, verbose=False)[0]
    finally:
        infer_mod.CHANNELS_LAST_PRECISIONS = saved


def variants(m: PINNModule, data: Any, groups: Groups, n_groups: int | None,
             loader_kw: dict[str, Any], ecfg: PyTorchExecutionConfig,
             shipped: bool) -> dict[str, Callable[[], Any]]:
    """The compared runs, by name: old, new (as shipped), alt (other layout), infer."""
    return {
        "old": lambda: old_grouped(m, data, groups, loader_kw, ecfg),
        "new": lambda: new_single_pass(m, data, groups, loader_kw, ecfg, shipped),
        "alt": lambda: new_single_pass(m, data, groups, loader_kw, ecfg, not shipped),
        "infer": lambda: ptycho_nb.infer(m, data, execution=ecfg, refine_epochs=0, n_groups=n_groups),
    }


def make_module(data: Any, gridsize: int, precision: str, batch_size: int) -> PINNModule:
    torch.manual_seed(0)
    m = PINNModule(ModelConfig(N=data.N, gridsize=gridsize, probe_big=False),
                   TrainingConfig(batch_size=batch_size), PyTorchExecutionConfig(precision=precision),
                   probe=data.probe, scaling=scaling_statistics(data))
    with torch.no_grad():  # the decoders' last convolutions start at zero: a flat object
        for p in m.net.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return m.eval()


def _head(groups: Groups, k: int) -> Groups:
    """The first ``k`` groups."""
    return Groups(groups.indices[:k], groups.center_x[:k], groups.center_y[:k],
                  groups.offset_x[:k], groups.offset_y[:k])


def bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=TrainingConfig().batch_size,
                    help="inference batch size (groups per grouped batch = patterns per single-pass batch)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    # Another process (a training run) may hold the other core: one intra-op thread keeps the
    # two from stalling each other, and keeps the comparison about the code, not contention.
    torch.set_num_threads(args.threads)
    print(f"# inference speed: torch {torch.__version__}, {torch.get_num_threads()} thread(s) "
          f"(torch.set_num_threads({args.threads}): another process may be training on the other "
          f"core), {args.patterns} patterns, N=64, batch {args.batch_size}, median of "
          f"{args.repeats} interleaved repeats; CHANNELS_LAST_PRECISIONS = "
          f"{infer_mod.CHANNELS_LAST_PRECISIONS}")
    t0 = time.perf_counter()
    data = ptycho_nb.simulate(N=64, n_positions=args.patterns, seed=0)
    precisions = ["32-true"] + (["bf16-mixed"] if bf16_supported() else [])
    if len(precisions) == 1:
        print("# bf16-mixed: skipped (no native bf16 on this CPU)")
    rows = []
    for gridsize in (1, 2):
        for precision in precisions:
            m = make_module(data, gridsize, precision, args.batch_size)
            ecfg = PyTorchExecutionConfig(precision=precision, accelerator="cpu",
                                          enable_progress_bar=False)
            t = m.training_config
            groups = group_scan(data, gridsize, neighbor_count=t.neighbor_count, n_groups=None, seed=t.seed)
            loader_kw = dataloader_kwargs(ecfg, batch_size=t.batch_size, mode="infer")
            shipped = precision in infer_mod.CHANNELS_LAST_PRECISIONS

            # Warm-up on a few batches (first-call allocations, oneDNN kernel selection).
            k = min(groups.n_groups, 2 * args.batch_size)
            for fn in variants(m, data, _head(groups, k), k, loader_kw, ecfg, shipped).values():
                fn()
            times: dict[str, list[float]] = {k: [] for k in ("old", "new", "alt", "infer")}
            outs: dict[str, Any] = {}
            rates = []
            for _ in range(args.repeats):
                for k, fn in variants(m, data, groups, None, loader_kw, ecfg, shipped).items():
                    dt, outs[k] = timed(fn)
                    times[k].append(dt)
                    if k == "infer":
                        rates.append(outs[k].timings.network_patterns_per_s)
            g = groups.n_groups
            pps = {k: g / statistics.median(v) for k, v in times.items() if k != "infer"}
            old = outs["old"].numpy()
            scale = float(np.abs(old).max())
            diff = {k: float(np.abs(outs[k].numpy() - old).max()) / scale for k in ("new", "alt")}
            rows.append((gridsize, precision, shipped, pps, diff, statistics.median(rates)))
    print()
    print("| gridsize | precision | old grouped p/s | new single-pass p/s | new / old | "
          "max|new−old| / max|patch| | new, other layout p/s | channels-last / contiguous | "
          "infer() network p/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for gridsize, precision, shipped, pps, diff, infer_rate in rows:
        cl = pps["new"] / pps["alt"] if shipped else pps["alt"] / pps["new"]
        layout = "contiguous" if shipped else "channels-last"
        print(f"| {gridsize} | {precision}{' (channels-last)' if shipped else ''} | {pps['old']:.0f} | "
              f"{pps['new']:.0f} | {pps['new'] / pps['old']:.2f} | {diff['new']:.1e} | "
              f"{pps['alt']:.0f} ({layout}, Δ {diff['alt']:.1e}) | {cl:.2f} | {infer_rate:.0f} |")
    print(f"\n# {time.perf_counter() - t0:.0f} s in all. p/s = patterns (groups' own patterns) per "
          f"second; 'new' is run_inference as shipped; Δ = max|patch − old| / max|old patch|.")


if __name__ == "__main__":
    main()
