"""Where the time goes: torch.profiler over training steps and over inference + stitching.

Profiles (CPU activities, shapes not recorded):

- training steps of :class:`~ptycho_nb.model.lightning_module.PINNModule` (a bare loop over the
  module's own ``compute_loss``, its DataLoader and Adam) on a simulated scan, for the demo's
  settings (gridsize 2, ``probe_big=False``) and the other gridsize/probe_big combinations;
- ``ptycho_nb.infer(model, scan, refine_epochs=0)`` (network forward + stitching) and with the
  physics refinement.

Stages are labelled with ``torch.profiler.record_function`` by wrapping the package's functions
*in this process only* (network forward, overlap merge, forward model, FFT, Poisson loss,
backward, optimizer, stitching, refinement), so the package code stays free of profiler calls.
For each workload it prints the stages' inclusive share of the profiled wall time, then the top
operators (and Python-level labels) by self CPU time with their share of all self CPU time.

Usage: ``python bench/profile_step.py [--patterns 256] [--steps 12] [--threads 2] [--top 12]
[--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator

import ptycho_nb  # before lightning: applies the torchvision shim (see ptycho_nb/_torchvision_compat.py)
import torch
from torch.profiler import ProfilerActivity, profile, record_function

import ptycho_nb.model.lightning_module as lm_mod
import ptycho_nb.physics.forward as fwd_mod
import ptycho_nb.workflows.inference as inf_mod
from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.engine.datamodule import PtychoDataModule
from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics

#: Stage labels, in pipeline order (a ``record_function`` range each).
TRAIN_STAGES = ("step", "network forward", "overlap merge", "forward model", "FFT", "Poisson loss",
                "backward", "optimizer")
INFER_STAGES = ("infer", "network forward", "overlap merge", "stitching", "refinement", "FFT")


def _labelled(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` inside a ``record_function(label)`` range."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)
    wrapper.__wrapped_label__ = label  # type: ignore[attr-defined]
    return wrapper


@contextlib.contextmanager
def stage_labels() -> Iterator[None]:
    """Wrap the package's stage functions with profiler labels for the duration of the block.

    Each name is patched where it is *looked up* (the calling module's namespace), so the real
    code paths run unchanged apart from the label. Names a package version lacks are skipped.
    """
    targets = [
        (lm_mod, "merge_group_patches", "overlap merge"),
        (lm_mod, "forward_amplitude", "forward model"),
        (lm_mod, "poisson_nll", "Poisson loss"),
        (fwd_mod, "far_field", "FFT"),
        (inf_mod, "stitch_patches", "stitching"),
        (inf_mod, "run_refinement", "refinement"),
    ]
    saved = []
    for mod, name, label in targets:
        if hasattr(mod, name):
            saved.append((mod, name, getattr(mod, name)))
            setattr(mod, name, _labelled(label, getattr(mod, name)))
    # The network is a module attribute of PINNModule, labelled through a wrapped forward.
    orig_net_forward = lm_mod.PtychoNet.forward
    lm_mod.PtychoNet.forward = _labelled("network forward", orig_net_forward)
    try:
        yield
    finally:
        lm_mod.PtychoNet.forward = orig_net_forward
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def _module(data: Any, gridsize: int, probe_big: bool, batch_size: int) -> tuple[PINNModule, Any]:
    mcfg = ModelConfig(N=data.N, gridsize=gridsize, probe_big=probe_big)
    tcfg = TrainingConfig(batch_size=batch_size, validation_fraction=0.0, nepochs=1)
    ecfg = PyTorchExecutionConfig()
    dm = PtychoDataModule(data, model=mcfg, training=tcfg, execution=ecfg)
    torch.manual_seed(0)
    module = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=data.probe,
                        scaling=scaling_statistics(data))
    return module, dm.train_dataloader()


def _train_steps(module: PINNModule, batches: list[dict[str, torch.Tensor]],
                 opt: torch.optim.Optimizer) -> None:
    module.train()
    for batch in batches:
        with record_function("step"):
            loss = module.compute_loss(batch)["loss"]
            with record_function("backward"):
                opt.zero_grad(set_to_none=True)
                loss.backward()
            with record_function("optimizer"):
                opt.step()


def _report(prof: Any, wall: float, stages: tuple[str, ...], top: int, title: str) -> None:
    """Stage shares (inclusive CPU time / wall) and the top self-CPU-time entries."""
    avgs = prof.key_averages()
    by_key = {e.key: e for e in avgs}
    total_self = sum(e.self_cpu_time_total for e in avgs) or 1.0
    print(f"\n### {title}: {wall:.3f} s profiled wall time")
    print("| stage | calls | inclusive CPU (ms) | share of wall |")
    print("|---|---|---|---|")
    for s in stages:
        e = by_key.get(s)
        if e is not None:
            print(f"| {s} | {e.count} | {e.cpu_time_total / 1e3:.1f} | {e.cpu_time_total / 1e6 / wall:.1%} |")
    print(f"\n| top {top} by self CPU time | calls | self CPU (ms) | share of self CPU |")
    print("|---|---|---|---|")
    for e in sorted(avgs, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        print(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1e3:.1f} | "
              f"{e.self_cpu_time_total / total_self:.1%} |")


def profile_training(data: Any, gridsize: int, probe_big: bool, steps: int, batch_size: int,
                     top: int) -> None:
    module, loader = _module(data, gridsize, probe_big, batch_size)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    it = iter(loader)
    batches = [next(it) for _ in range(min(steps + 2, len(loader)))]
    _train_steps(module, batches[:2], opt)  # warm-up: allocator, first-call costs
    with stage_labels(), profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        t = time.perf_counter()
        _train_steps(module, batches[2:], opt)
        wall = time.perf_counter() - t
    n = len(batches) - 2
    _report(prof, wall, TRAIN_STAGES, top,
            f"training, gridsize {gridsize}, probe_big {probe_big}: {n} steps of batch {batch_size}, "
            f"{wall / n * 1e3:.1f} ms/step")


def profile_inference(data: Any, gridsize: int, probe_big: bool, refine_epochs: int, top: int) -> None:
    module, _ = _module(data, gridsize, probe_big, 16)
    module.eval()
    ptycho_nb.infer(module, data, refine_epochs=min(refine_epochs, 1))  # warm-up
    with stage_labels(), profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        t = time.perf_counter()
        with record_function("infer"):
            rec = ptycho_nb.infer(module, data, refine_epochs=refine_epochs)
        wall = time.perf_counter() - t
    tm = rec.timings
    _report(prof, wall, INFER_STAGES, top,
            f"inference, gridsize {gridsize}, probe_big {probe_big}, refine_epochs {refine_epochs}: "
            f"{data.n_patterns} patterns (forward {tm['forward_s']:.2f} s, stitch {tm['stitch_s']:.2f} s, "
            f"refine {tm['refine_s']:.2f} s)")


def main() -> None:
    logging.getLogger("lightning").setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*treespec.*")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", type=int, default=256, help="simulated scan positions")
    ap.add_argument("--steps", type=int, default=12, help="profiled training steps per setting")
    ap.add_argument("--refine-epochs", type=int, default=2, help="refinement epochs profiled")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--top", type=int, default=12, help="rows of the operator table")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.patterns, args.steps, args.refine_epochs, args.top = 48, 2, 1, 5
    torch.set_num_threads(args.threads)
    print(f"# profile — {args.threads} threads, torch {torch.__version__}, ptycho_nb from "
          f"{os.path.dirname(ptycho_nb.__file__)}")
    # The demo's scan (N=64 'image' object, disc probe lighting the central half of the window).
    data = ptycho_nb.simulate(N=64, object_kind="image", n_positions=args.patterns, seed=1)
    print("\n## training steps")
    for gridsize, probe_big in ((2, False), (1, False), (2, True), (1, True)):
        profile_training(data, gridsize, probe_big, args.steps, 16, args.top)
    print("\n## inference + stitching (ptycho_nb.infer)")
    for gridsize, refine in ((2, 0), (1, 0), (2, args.refine_epochs)):
        profile_inference(data, gridsize, False, refine, args.top)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)  # Lightning may write lightning_logs/ into the working directory
        main()
