"""Before/after timing of the performance pass: the same workload on two versions of ptycho_nb.

The "before" version is a git commit (``--before``, default: the commit the pass started from),
unpacked with ``git archive`` into a temporary folder; the "after" version is this working tree
(or ``--after COMMIT``). Each version runs in its own long-lived worker subprocess with
``PYTHONPATH`` pointing at its tree (the worker reports ``ptycho_nb.__file__`` and this script
checks it). Both load the same saved scan, compute the numbers to compare, warm up, and then run
the stages one at a time on request, stage by stage alternating which version goes first, so the
two see the same machine load. Per stage it prints the medians and the ratio before/after (> 1:
the pass made it faster), and how far the two versions' numbers differ (the physics must agree to
float32 round-off).

Stages (the demo's settings: N=64 'image' scan, disc probe, probe_big=False):

- ``train step g2`` / ``train step g1``: one optimisation step of ``PINNModule`` (``compute_loss``,
  backward, Adam) at gridsize 2 (overlap merge) and 1, batch 16 groups, median over steps;
- ``infer g2`` / ``infer g1``: ``ptycho_nb.infer(model, scan, refine_epochs=0)`` (network forward
  and stitching), wall time;
- ``stitching``: its ``stitch_s`` part;
- ``refinement``: ``refine_s`` of ``ptycho_nb.infer(..., refine_epochs=E)``.

Threads default to 1: on a shared 2-core machine a second busy process makes every multi-threaded
operator wait for a descheduled thread, which swamps the work being compared (measured: one
overlap merge went from ~45 ms on one thread to ~870 ms on two under load).

Usage: ``python bench/perf_before_after.py [--before COMMIT] [--after COMMIT] [--reps 5]
[--threads 1] [--patterns 256] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

#: HEAD when the performance pass started (issue 7): the default "before" version.
BEFORE_COMMIT = "597cb52562b7ff02a4b10d4f32ed049d16646e9c"
REPO = pathlib.Path(__file__).resolve().parent.parent
STAGES = ("train step g2", "train step g1", "infer g2", "infer g1", "stitching", "refinement")


# ------------------------------------------------------------------ workload (in a subprocess)
def _apply_shim(path: str | None) -> None:
    """Apply the torchvision shim from ``path`` (an older tree may predate it) before lightning."""
    if not path or not os.path.exists(path):
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("_ptycho_nb_tv_shim", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # keeps the shim's torch.library object (and its schemas) alive
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    mod.apply_torchvision_shim()


def _timing(rec: Any, name: str) -> float:
    """A timing of a Reconstruction: a typed record now, a dict in trees before it."""
    t = rec.timings
    return float(t[name] if isinstance(t, dict) else getattr(t, name))


def _batches(data: Any, gridsize: int, n: int, batch_size: int) -> tuple[Any, list[dict[str, Any]]]:
    """A module and ``n`` fixed batches (no shuffling: both versions see the same samples)."""
    import torch
    from torch.utils.data import default_collate

    from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
    try:
        from ptycho_nb.engine.datamodule import PtychoDataModule
    except ImportError:  # trees from before the engine package
        from ptycho_nb.data.datamodule import PtychoDataModule
    from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics

    mcfg = ModelConfig(N=data.N, gridsize=gridsize, probe_big=False)
    tcfg = TrainingConfig(batch_size=batch_size, validation_fraction=0.0, nepochs=1)
    ecfg = PyTorchExecutionConfig()
    ds = PtychoDataModule(data, model=mcfg, training=tcfg, execution=ecfg).train_set
    batches = [default_collate([ds[i] for i in range(k * batch_size, (k + 1) * batch_size)])
               for k in range(n)]
    torch.manual_seed(0)
    module = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=data.probe,
                        scaling=scaling_statistics(data))
    return module, batches


def _train(module: Any, batches: list[dict[str, Any]], opt: Any) -> tuple[list[float], list[float], Any]:
    """Seconds and loss of each step, and the first step's gradient (flat numpy)."""
    import torch

    module.train()
    times, losses, grad0 = [], [], None
    for batch in batches:
        t = time.perf_counter()
        loss = module.compute_loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad0 is None:
            grad0 = torch.cat([p.grad.reshape(-1) for p in module.parameters() if p.grad is not None])
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(float(loss.detach()))
    return times, losses, grad0.numpy()


class _Workload:
    """The timed stages of one version, set up once; the driver calls them one at a time."""

    def __init__(self, data: Any, steps: int, refine_epochs: int) -> None:
        import torch

        self.data, self.steps, self.refine_epochs = data, steps, refine_epochs
        self.train = {}
        for g in (2, 1):
            module, batches = _batches(data, g, steps, 16)
            opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-3)
            self.train[g] = (module, batches, opt)

    def arrays(self) -> dict[str, Any]:
        """Numbers to compare across versions, from fresh modules (before any timing)."""
        import numpy as np

        out: dict[str, Any] = {}
        for g, (module, batches, opt) in self.train.items():
            _, losses, grad0 = _train(module, batches, opt)
            out[f"losses_g{g}"], out[f"grad0_g{g}"] = np.asarray(losses), grad0
        for g in (2, 1):
            out[f"object_g{g}"] = self.infer(g, 0)[1].object
        rec = self.infer(2, self.refine_epochs)[1]
        out["object_refined"], out["weight_refined"] = rec.object, rec.weight
        return out

    def infer(self, gridsize: int, refine_epochs: int) -> tuple[float, Any]:
        import ptycho_nb

        module, _ = _batches(self.data, gridsize, 0, 16)  # fixed seed: the same weights every call
        module.eval()
        t = time.perf_counter()
        rec = ptycho_nb.infer(module, self.data, refine_epochs=refine_epochs)
        return time.perf_counter() - t, rec

    def run(self, stage: str) -> dict[str, float]:
        """Seconds of ``stage`` (one of STAGES; 'infer g2' also reports its stitching part)."""
        if stage.startswith("train step g"):
            module, batches, opt = self.train[int(stage[-1])]
            return {stage: statistics.median(_train(module, batches, opt)[0])}
        if stage.startswith("infer g"):
            wall, rec = self.infer(int(stage[-1]), 0)
            return {stage: wall, "stitching": _timing(rec, "stitch_s")}
        if stage == "refinement":
            return {stage: _timing(self.infer(2, self.refine_epochs)[1], "refine_s")}
        raise ValueError(f"unknown stage {stage!r}")


def worker(args: argparse.Namespace) -> None:
    """Serve stages of the tree on ``PYTHONPATH``: one JSON line per command read from stdin."""
    _apply_shim(args.shim)
    import numpy as np
    import torch

    import ptycho_nb

    torch.set_num_threads(args.threads)
    # The first worker simulates and saves the scan; the other loads it, so both versions see
    # bit-identical inputs (the simulation itself runs the forward model).
    scan = pathlib.Path(args.data)
    if scan.exists():
        data = ptycho_nb.load(scan)
    else:
        data = ptycho_nb.simulate(N=64, object_kind="image", n_positions=args.patterns, seed=1)
        ptycho_nb.save(data, scan)
    work = _Workload(data, args.steps, args.refine_epochs)
    np.savez(pathlib.Path(args.out) / "arrays.npz", **work.arrays())
    for stage in STAGES:  # warm-up: first-call costs, allocator
        if stage != "stitching":
            work.run(stage)
    print(json.dumps({"file": ptycho_nb.__file__}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(json.dumps(work.run(line.strip())), flush=True)


# ------------------------------------------------------------------ driver
def _unpack(commit: str, dest: pathlib.Path) -> pathlib.Path:
    """``ptycho_nb/`` of ``commit`` under ``dest`` (via git archive); returns dest."""
    dest.mkdir(parents=True)
    arc = subprocess.run(["git", "-C", str(REPO), "archive", commit, "ptycho_nb"],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arc, check=True)
    return dest


class _Worker:
    """A worker subprocess serving one version's stages (see :func:`worker`)."""

    def __init__(self, tree: pathlib.Path, out: pathlib.Path, args: argparse.Namespace) -> None:
        out.mkdir(parents=True)
        self.out = out
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", "--out", str(out),
               "--threads", str(args.threads), "--patterns", str(args.patterns), "--steps", str(args.steps),
               "--refine-epochs", str(args.refine_epochs), "--data", str(args.data),
               "--shim", str(REPO / "ptycho_nb" / "_torchvision_compat.py")]
        self._err = open(out / "stderr.txt", "w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=out, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True)
        self.file = self._read()["file"]
        expect = (tree / "ptycho_nb").resolve()
        if pathlib.Path(self.file).resolve().parent != expect:
            raise RuntimeError(f"the worker imported {self.file}, not the tree {expect}")

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            self._err.flush()
            raise RuntimeError(f"worker failed:\n{(self.out / 'stderr.txt').read_text()[-3000:]}")
        return json.loads(line)

    def run(self, stage: str) -> dict[str, float]:
        self.proc.stdin.write(stage + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=60)
        self._err.close()


def _rel_diff(a: Any, b: Any) -> float:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("nan")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE_COMMIT, help="commit of the 'before' version")
    ap.add_argument("--after", default=None, help="commit of the 'after' version (default: this working tree)")
    ap.add_argument("--reps", type=int, default=5, help="alternating rounds over the stages")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patterns", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per run")
    ap.add_argument("--refine-epochs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--shim", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.reps, args.patterns, args.steps, args.refine_epochs = 1, 48, 1, 1
    if args.worker:
        return worker(args)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ptycho_nb_perf_"))
    args.data = str(tmp / "scan.npz")
    try:
        trees = {"before": _unpack(args.before, tmp / "before" / "tree")}
        trees["after"] = _unpack(args.after, tmp / "after" / "tree") if args.after else REPO
        label = {"before": args.before[:12], "after": args.after[:12] if args.after else "working tree"}
        print(f"# perf before/after — before {label['before']}, after {label['after']}; "
              f"{args.threads} thread(s), {args.patterns} patterns, {args.reps} alternating rounds")
        workers: dict[str, _Worker] = {}
        try:
            for name in ("before", "after"):  # 'before' simulates the shared scan
                workers[name] = _Worker(trees[name], tmp / name / "out", args)
            print(f"\nptycho_nb imported from: before {workers['before'].file}, after {workers['after'].file}")
            # Stage by stage, alternating which version goes first: both see the same machine load.
            times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            for r in range(args.reps):
                for stage in STAGES:
                    if stage == "stitching":
                        continue  # reported by 'infer g2'
                    for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                        for key, sec in workers[name].run(stage).items():
                            times[name].setdefault(key, []).append(sec)
        finally:
            for w in workers.values():
                w.close()
        print("\n| stage | before (s) | after (s) | before/after |")
        print("|---|---|---|---|")
        for s in STAGES:
            b, a = statistics.median(times["before"][s]), statistics.median(times["after"][s])
            print(f"| {s} | {b:.4f} | {a:.4f} | {b / a:.2f}× |")
        import numpy as np

        nb, na = (np.load(tmp / name / "out" / "arrays.npz") for name in ("before", "after"))
        print("\nagreement, max |after − before| / max |before| (float32 round-off ≈ 1e-7 per operation):")
        for key in ("losses_g2", "losses_g1"):
            print(f"  {key}: first step {_rel_diff(nb[key][:1], na[key][:1]):.1e}, "
                  f"after {len(nb[key])} Adam steps {_rel_diff(nb[key], na[key]):.1e}")
        for key in ("grad0_g2", "grad0_g1", "object_g2", "object_g1", "object_refined"):
            print(f"  {key}: {_rel_diff(nb[key], na[key]):.1e}")
        # Adam's normalised steps turn round-off in near-zero gradients (pixels the probe's tail
        # barely lights) into full-size steps: judge the refinement where the data constrain it.
        lit = nb["weight_refined"] > 0.01 * nb["weight_refined"].max()
        print(f"  object_refined where the summed probe weight > 1% of its max: "
              f"{_rel_diff(nb['object_refined'][lit], na['object_refined'][lit]):.1e}; "
              f"median |Δ| everywhere {np.median(np.abs(nb['object_refined'] - na['object_refined'])):.1e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
