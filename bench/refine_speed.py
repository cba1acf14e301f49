"""Refinement speed and memory: pattern-iterations/s and peak RSS, per device, side by side.

For each case (pattern side N, number of patterns M) one simulated scan (a spiral scan of a
'lines' object, disc probe, 10⁶ photons per pattern, sub-pixel jitter) is written once to a
cache folder; then every (tree, device) pair refines it in a fresh process of its own, a few
epochs from a flat start with the package's default update (Fisher-scoring PIE, momentum 0.85,
batches of 64), the plateau rule off so every run does the same work. A process measures:

- ``pattern-iterations/s``: patterns updated per second over the epochs after the first (the
  first carries the set-up and the starting deviance);
- ``peak RSS`` of the process and the scan's diffraction size (``data``): the refinement may
  hold the data plus a few object-sized buffers, so ``(peak − before) / data`` should stay well
  below 1 on the CPU (before = RSS with the scan loaded, before the refinement starts);
- on a CUDA device, the peak device memory torch allocated.

``--tree DIR`` (repeatable) names source trees to compare, e.g. a ``git worktree`` of an older
commit: their processes alternate with this checkout's, so both see the same machine load, and
the table prints each tree's rate relative to the first. Absolute rates drift on shared
machines; the ratios from one run are the result.

Usage::

    python bench/refine_speed.py [--cases 64x1000 64x10000 128x1000 128x10000] [--epochs 3]
        [--devices cpu cuda] [--tree ../old-checkout] [--repeats 1] [--threads 2] [--json OUT]

About 10 minutes for the four default cases and one tree on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CASES = ("64x1000", "64x10000", "128x1000", "128x10000")


def _rss_mb() -> float:
    """The process's resident memory now (MiB), from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _scan_file(cache: pathlib.Path, n: int, m: int) -> pathlib.Path:
    """The cached scan of a case (simulated on first use)."""
    path = cache / f"scan_n{n}_m{m}.npz"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        import ptycho_nb

        scan = ptycho_nb.simulate(N=n, object_kind="lines", n_positions=m, step=n / 8, jitter=0.3,
                                  photons_per_pattern=1e6, seed=5)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        import numpy as np

        # the simulated object's frame holds every full patch: the refinement's frame
        with open(tmp, "wb") as fh:
            np.savez(fh, diffraction=scan.diffraction, x=scan.xcoords, y=scan.ycoords,
                     probe=scan.probe, shape=np.array(scan.object.shape))
        tmp.replace(path)
    return path


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    sys.path.insert(0, str(pathlib.Path(args.child_tree).resolve()))
    # an editable install's finder would serve modules that tree lacks from the installed checkout
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]
    import numpy as np
    import torch

    import ptycho_nb

    if not pathlib.Path(ptycho_nb.__file__).resolve().is_relative_to(pathlib.Path(args.child_tree).resolve()):
        raise RuntimeError(f"imported {ptycho_nb.__file__}, not the tree {args.child_tree}")
    torch.set_num_threads(args.threads)
    try:  # this tree's home of the refinement, else the older one
        from ptycho_nb.refine import refine
        device_kw: dict[str, Any] = {"device": args.device}
    except ImportError:
        from ptycho_nb.model.refine import refine
        device_kw = {}
        if args.device != "cpu":
            print(json.dumps({"error": "this tree's refinement runs on the CPU only"}))
            return
    with np.load(args.scan) as f:
        diffraction = f["diffraction"]
        x, y, probe, shape = f["x"], f["y"], f["probe"], tuple(int(v) for v in f["shape"])
    data_mb = diffraction.nbytes / 2**20
    before = _rss_mb()
    # the flat start's level, in chunks: a float64 copy of the whole scan would be this
    # process's peak, not the refinement's
    counts = sum(float(np.sum(np.square(diffraction[i:i + 512], dtype=np.float64)))
                 for i in range(0, len(diffraction), 512)) / len(diffraction)
    amp = float(np.sqrt(counts / float(np.sum(np.abs(probe) ** 2))))
    start = np.full(shape, amp, dtype=np.complex64)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = refine(start, diffraction, x, y, probe, 1.0, max_epochs=args.epochs, tol=0.0,
                 patience=args.epochs + 1, grow_batch=False, momentum=0.85, batch_size=64,
                 **device_kw)
    wall = time.perf_counter() - t0
    ep = res.epoch_seconds
    timed = (len(ep) - 1) * len(diffraction) / max(ep[-1] - ep[0], 1e-9)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out = {"pattern_iterations_per_s": timed, "seconds": wall, "epochs": res.epochs_run,
           "final_deviance": res.deviance[-1], "peak_rss_mb": peak, "rss_before_mb": before,
           "data_mb": data_mb, "object_shape": list(shape)}
    if args.device == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="NxM: pattern side x patterns")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when torch sees one")
    p.add_argument("--tree", action="append", default=[], help="another source tree to compare")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=str(pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / "ptycho_nb_refine_speed"))
    p.add_argument("--json", default=None, help="write every measurement here")
    p.add_argument("--child-tree", default=None, help=argparse.SUPPRESS)
    p.add_argument("--scan", default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_tree:
        child(args)
        return 0
    devices = args.devices
    if devices is None:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    trees = [str(HERE)] + [str(pathlib.Path(t).resolve()) for t in args.tree]
    names = ["this"] + [pathlib.Path(t).name for t in args.tree]
    rows: list[dict[str, Any]] = []
    for case in args.cases:
        n, m = (int(v) for v in case.lower().split("x"))
        scan = _scan_file(pathlib.Path(args.cache), n, m)
        for device in devices:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            for _ in range(args.repeats):
                for name, tree in zip(names, trees):  # interleaved: the same load for every tree
                    cmd = [sys.executable, __file__, "--child-tree", tree, "--scan", str(scan),
                           "--device", device, "--epochs", str(args.epochs), "--threads", str(args.threads)]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                    if out.returncode or not lines:
                        print(f"{case} {device} {name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                        continue
                    runs[name].append(json.loads(lines[-1]))
            base = None
            for name in names:
                ok = [r for r in runs[name] if "error" not in r]
                if not ok:
                    continue
                rate = statistics.median(r["pattern_iterations_per_s"] for r in ok)
                base = rate if base is None else base
                r0 = ok[-1]
                extra = (r0["peak_rss_mb"] - r0["rss_before_mb"]) / r0["data_mb"]
                rows.append({"case": case, "device": device, "tree": name, "rate": rate,
                             "ratio": rate / base, "peak_rss_mb": r0["peak_rss_mb"],
                             "data_mb": r0["data_mb"], "extra_over_data": extra,
                             "cuda_peak_mb": r0.get("cuda_peak_mb"), "runs": ok})
    print(f"{'case':>10} {'device':>6} {'tree':>14} {'pattern-it/s':>13} {'vs this':>8} "
          f"{'peak RSS MB':>12} {'data MB':>8} {'(peak-before)/data':>19}")
    for r in rows:
        print(f"{r['case']:>10} {r['device']:>6} {r['tree']:>14} {r['rate']:>13.0f} "
              f"{r['ratio']:>7.2f}x {r['peak_rss_mb']:>12.0f} {r['data_mb']:>8.0f} "
              f"{r['extra_over_data']:>19.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
