"""One prepared check of a device machine: the refinement, inference and the generalist's training.

On whatever machine it runs (a GPU when torch sees one, its CPU side by side), it writes every
figure into ``OUT/device_check.json`` as it goes (a cut-off run keeps what it measured):

(a) **refinement**: pattern-iterations/s of ``ptycho_nb.refine.refine`` (the default update, a
    flat start, the plateau rule off) for N = 64 and 128 with 1,000 and 10,000 patterns, on the
    GPU and on this machine's CPU, and the GPU's peak memory;
(b) **inference**: patterns/s of the packaged model's single pass (``infer(refine_epochs=0)``),
    fp32 and bf16-mixed, per device;
(c) **training**: the generalist recipe (recipes/generalist_n64.py) for ``--train-minutes``, in
    bf16-mixed on a GPU, with the largest batch of a few tried that the device sustains (the
    highest samples/s in a short probe, each size in its own short fit), the scan stream drawn by
    ``--workers`` DataLoader workers; the recipe checkpoints every epoch (``latest.ckpt``), and an
    epoch is kept short, so a cut-off run still leaves weights;
(d) the JSON of every figure, the trained archive with its model card (scored on the card suite
    here, on the device's CPU), and the run folder's ``trained.json``.

Usage::

    python bench/device_check.py --out "$OUT" [--train-minutes 6] [--skip ...] [--toy]

``--toy`` runs every part at toy size in about a minute on a CPU (the test suite does). Absolute
rates drift on shared machines; the figures that compare devices come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time
import traceback
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "recipes"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ptycho_nb  # noqa: E402  (before lightning: the torchvision shim)

PARTS = ("refine", "infer", "train")


class Report:
    """The JSON of every figure, rewritten (atomically) after each one."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.save()

    def add(self, part: str, row: dict[str, Any]) -> None:
        self.data.setdefault(part, []).append(row)
        print(json.dumps({part: row}), flush=True)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)


def machine() -> dict[str, Any]:
    """What ran the check."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "ptycho_nb": ptycho_nb.__version__, "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def devices() -> list[str]:
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def check_refine(report: Report, sizes: list[tuple[int, int]], epochs: int) -> None:
    """(a): pattern-iterations/s per (N, M, device), over the epochs after the first."""
    from ptycho_nb.refine import refine

    for n, m in sizes:
        scan = ptycho_nb.simulate(N=n, object_kind="lines", n_positions=m, step=n / 8, jitter=0.3,
                                  photons_per_pattern=1e6, seed=5)
        start = np.ones_like(scan.object)
        for device in devices():
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            res = refine(start, scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, max_epochs=epochs,
                         tol=0.0, patience=epochs + 1, grow_batch=False, momentum=0.85, device=device)
            _sync(device)
            ep = res.epoch_seconds
            row = {"N": n, "patterns": m, "device": res.device, "epochs": res.epochs_run,
                   "pattern_iterations_per_s": (len(ep) - 1) * m / max(ep[-1] - ep[0], 1e-9),
                   "seconds": time.perf_counter() - t0, "final_deviance": res.deviance[-1],
                   "object_shape": list(scan.object.shape)}
            if device == "cuda":
                row["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            report.add("refine", row)


def check_infer(report: Report, patterns: int, repeats: int) -> None:
    """(b): the packaged model's single pass, patterns/s, fp32 and bf16-mixed, per device."""
    from ptycho_nb.model.catalog import DEFAULT_PRETRAINED

    model = ptycho_nb.pretrained.load(DEFAULT_PRETRAINED)
    scan = ptycho_nb.simulate(N=model.model_config.N, object_kind="lines", n_positions=patterns,
                              photons_per_pattern=1e6, seed=11)
    for device in devices():
        for precision in ("32-true", "bf16-mixed"):
            rates = []
            for _ in range(repeats):
                rec = ptycho_nb.infer(model, scan, refine_epochs=0, accelerator=device, precision=precision,
                                      inference_batch_size=256 if device == "cuda" else 64)
                rates.append(rec.timings.network_patterns_per_s)
            report.add("infer", {"model": DEFAULT_PRETRAINED, "device": device, "precision": rec.run.precision,
                                 "patterns": patterns, "patterns_per_s": statistics.median(rates),
                                 "all": rates})


def _probe_batch(train: Callable[..., Any], out: pathlib.Path, sizes: list[int], precision: str,
                 workers: int, toy: bool, report: Report) -> int:
    """The batch with the highest samples/s in a short fit each (one that fails, e.g. out of
    memory, ends the search)."""
    best, best_rate = sizes[0], 0.0
    for b in sizes:
        try:
            t0 = time.perf_counter()
            _, facts = train(out / f"probe_b{b}", minutes=0.3 if not toy else 0.05, toy=toy, threads=None,
                             batch_size=b, precision=precision, num_workers=workers,
                             steps_per_epoch=20 if not toy else 2)
            rate = facts["samples_seen"] / max(time.perf_counter() - t0, 1e-9)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # type: ignore[attr-defined]
            report.add("train_probe", {"batch_size": b, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            break
        report.add("train_probe", {"batch_size": b, "samples_per_s": rate, "steps": facts["steps"]})
        if rate > best_rate:
            best, best_rate = b, rate
    return best


def check_train(report: Report, out: pathlib.Path, minutes: float, workers: int, toy: bool) -> None:
    """(c)+(d): the generalist trained for ``minutes`` at the best batch, scored, archived."""
    import generalist_n64 as recipe_mod

    from ptycho_nb.model.io import save_model
    from ptycho_nb.pretrained.scoring import evaluate, model_card

    gpu = torch.cuda.is_available()
    precision = "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"
    sizes = [4, 8] if toy else ([8, 32, 64, 128, 256] if gpu else [8])
    batch = _probe_batch(recipe_mod.train_generalist, out / "probes", sizes, precision, workers, toy, report)
    t0 = time.perf_counter()
    module, facts = recipe_mod.train_generalist(
        out / "run", minutes=minutes, toy=toy, threads=None, batch_size=batch, precision=precision,
        num_workers=workers, steps_per_epoch=None if toy else 400)
    facts["wall_seconds"] = time.perf_counter() - t0
    report.add("train", facts)
    r = recipe_mod.recipe(toy)
    scores = evaluate(module, n_positions=r.score_positions, doses=r.score_doses)
    name = recipe_mod.NAME + ("-toy" if toy else "") + "-device"
    card = model_card(r, facts, scores, name=name,
                      command=recipe_mod.command(minutes=minutes, seed=0, threads=None, toy=toy)
                      + f" (bench/device_check.py: batch {batch}, {precision}, {workers} workers)",
                      commit=recipe_mod._commit(), minutes=minutes, seed=0, threads=None)
    archive = save_model(module, out / f"{name}.wts.h5.zip", overwrite=True, card=card)
    report.add("train_scores", {"archive": archive.name, "collapsed": card["collapsed"], "rows": scores})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT", "device_check_out"), help="where everything goes")
    p.add_argument("--train-minutes", type=float, default=6.0)
    p.add_argument("--workers", type=int, default=None, help="scan-stream workers (default: cores / 2, at most 8)")
    p.add_argument("--epochs", type=int, default=4, help="refinement epochs per timing")
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    p.add_argument("--toy", action="store_true", help="every part at toy size (a minute on a CPU)")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "device_check.json")
    workers = args.workers if args.workers is not None else (0 if args.toy else min(8, (os.cpu_count() or 2) // 2))
    sizes = [(32, 40), (32, 80)] if args.toy else [(64, 1000), (64, 10000), (128, 1000), (128, 10000)]
    parts: dict[str, Callable[[], None]] = {
        "refine": lambda: check_refine(report, sizes, 2 if args.toy else args.epochs),
        "infer": lambda: check_infer(report, 60 if args.toy else 1000, 1 if args.toy else 3),
        "train": lambda: check_train(report, out, 0.1 if args.toy else args.train_minutes, workers, args.toy),
    }
    status = 0
    for name, run in parts.items():
        if name in args.skip:
            continue
        t0 = time.perf_counter()
        try:
            run()
        except Exception as exc:  # one part failing must not lose the others' figures
            status = 1
            report.add("errors", {"part": name, "error": f"{type(exc).__name__}: {exc}",
                                  "traceback": traceback.format_exc()[-4000:]})
        report.data.setdefault("part_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        report.save()
    report.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report.save()
    return status


if __name__ == "__main__":
    sys.exit(main())
