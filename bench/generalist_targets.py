"""A pretrained model against issue 12's targets, every row measured side by side in one run.

On scans of object kinds the model never saw (1,000 patterns, 64×64, positions on whole pixels
as in ``bench/compare_iterative.py``, so ptychi's forward model and ours are the same operator):

1. the network alone (no fine-tuning, no refinement), a probe family it trained on (disc),
   10⁶ photons per pattern: phase SSIM (target ≥ 0.85), beside its controls — the physics
   estimate it reads, stitched alone, and a flat object;
2. the same at 10³ photons beside ptychi LSQML with the known probe, the better of its Gaussian
   and Poisson noise models (target: the network ahead);
3. a probe it never saw (a zone plate lighting a siemens star, 10⁶): self-supervised fine-tuning
   on the scan itself (``train(scan, init=MODEL)``, bf16-mixed), the network alone after each
   epoch; the best within 60 s of training (target ≥ 0.80), beside a fresh network of the same
   architecture trained the same way;
4. inference, network + stitching (``infer(..., refine_epochs=0)``), patterns/s at N = 64 in
   fp32 and bf16-mixed, interleaved, median of three (target ≥ 1,000).

Usage: ``python bench/generalist_targets.py [--model pretrained:generalist-n64] [--threads 2]``
(about 6 minutes on 2 cores; ``--quick`` is a smoke run of seconds; ``--skip-iterative`` leaves
out ptychi).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

# This checkout's ptycho_nb and the sibling benchmarks, whatever the installation points at.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import ptycho_nb  # noqa: E402  (before lightning)
import torch  # noqa: E402
from compare_iterative import score, snap_to_pixels  # noqa: E402
from finetune_speed import run as fine_tune  # noqa: E402
from ptycho_nb.iterative import INSTALL_HINT, ptychi_available, run_ptychi  # noqa: E402
from ptycho_nb.pretrained.scoring import estimate_object  # noqa: E402

FINE_TUNE_BUDGET_S = 60.0


def scan(kind: str, probe: str, dose: float, n: int, seed: int, shape: Any = None) -> Any:
    s = ptycho_nb.simulate(seed=seed, N=64, n_positions=n, object_kind=kind, probe_kind=probe,
                           photons_per_pattern=dose, overlap=0.73,
                           **({"object_shape": shape} if shape else {}))
    return snap_to_pixels(s, seed=100 + seed)


def network_alone(model: Any, s: Any) -> dict[str, float]:
    """The network's phase SSIM on a scan, with the estimate it reads and a flat object."""
    module = ptycho_nb.load_model(model) if isinstance(model, str) else model
    t0 = time.perf_counter()
    rec = ptycho_nb.infer(module, s, refine_epochs=0, enable_progress_bar=False)
    seconds = time.perf_counter() - t0
    row = {"phase_ssim": score(rec.object, rec.offset, s)["phase_ssim"], "seconds": seconds}
    if module.net.physics_steps:
        est = estimate_object(module, s)
        row["estimate"] = score(est.object, est.offset, s)["phase_ssim"]
    # a faint seeded texture keeps SSIM defined (a constant image has no variance)
    flat = np.exp(1e-3j * np.random.default_rng(0).standard_normal(rec.object.shape)).astype(np.complex64)
    row["flat"] = score(flat, rec.offset, s)["phase_ssim"]
    return row


def lsqml(s: Any, epochs: int) -> dict[str, Any]:
    """The better of LSQML's two noise models with the known probe."""
    best: dict[str, Any] = {}
    for noise in ("gaussian", "poisson"):
        out = run_ptychi(s, algorithm="LSQML", epochs=epochs, noise_model=noise, timeout=None)
        q = score(out["object"], out["offset"], s)["phase_ssim"]
        print(f"  ptychi LSQML {noise}, known probe, {epochs} epochs: {out['seconds']:.1f} s, "
              f"phase SSIM {q:.3f}", flush=True)
        if not best or q > best["phase_ssim"]:
            best = {"phase_ssim": q, "noise": noise, "seconds": out["seconds"]}
    return best


def fresh_copy(model: str, path: pathlib.Path) -> pathlib.Path:
    """An untrained network of the model's architecture (every layer re-initialised), saved."""
    module = ptycho_nb.load_model(model)
    torch.manual_seed(0)
    for layer in module.net.modules():
        if layer is not module.net and hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    return ptycho_nb.save_model(module, path)


def inference_rate(model: str, s: Any, repeats: int) -> dict[str, float]:
    module = ptycho_nb.load_model(model)
    rates: dict[str, list[float]] = {"32-true": [], "bf16-mixed": []}
    for rep in range(repeats + 1):
        for precision in rates:
            rec = ptycho_nb.infer(module, s, refine_epochs=0, enable_progress_bar=False,
                                  precision=precision, inference_batch_size=64)
            if rep:  # the first round warms up
                rates[precision].append(rec.timings.network_patterns_per_s)
    return {k: statistics.median(v) for k, v in rates.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="pretrained:generalist-n64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=11, help="scan seed (the model card scores seed 7)")
    p.add_argument("--skip-iterative", action="store_true", help="leave out ptychi (row 2's reference)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, shape = (40, (128, 128)) if args.quick else (1000, None)
    lsqml_epochs, ft_epochs, repeats = (2, 1, 1) if args.quick else (100, 9, 3)
    with_iterative = not args.skip_iterative
    if with_iterative and not ptychi_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    print(f"model {args.model}; {n}-pattern scans, seed {args.seed}; {args.threads} threads", flush=True)

    hi = scan("lines", "disc", 1e6, n, args.seed, shape)
    lo = scan("lines", "disc", 1e3, n, args.seed, shape)
    alone_hi = network_alone(args.model, hi)
    alone_lo = network_alone(args.model, lo)
    print(f"  network alone, lines, disc: 1e6 {alone_hi['phase_ssim']:.3f}, 1e3 {alone_lo['phase_ssim']:.3f}",
          flush=True)
    ref_lo = lsqml(lo, lsqml_epochs) if with_iterative else None

    unseen = scan("siemens", "zone_plate", 1e6, n, 2, shape)
    tuned: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ptycho_nb_targets_") as tmp:
        starts = {"pretrained": args.model,
                  "fresh, same architecture": str(fresh_copy(args.model, pathlib.Path(tmp) / "fresh.wts.h5.zip"))}
        for name, init in starts.items():
            tuned[name] = fine_tune(unseen, "bf16-mixed", ft_epochs, init, pathlib.Path(tmp) / name)
            print(f"  fine-tuned from {name}: " + ", ".join(
                f"{r['seconds']:.0f} s {r['phase_ssim']:.3f}" for r in tuned[name]), flush=True)
    as_is = network_alone(args.model, unseen)
    rate = inference_rate(args.model, hi, repeats)

    def best_within(rows: list[dict[str, float]]) -> tuple[float, float]:
        within = [r for r in rows if r["seconds"] <= FINE_TUNE_BUDGET_S] or rows[:1]
        r = max(within, key=lambda r: r["phase_ssim"])
        return r["phase_ssim"], r["seconds"]

    q_ft, s_ft = best_within(tuned["pretrained"])
    q_fresh, s_fresh = best_within(tuned["fresh, same architecture"])
    mark = lambda ok: "**met**" if ok else "missed"  # noqa: E731
    lines = ["| target | measured | controls | |", "|---|---|---|---|"]
    lines.append(f"| network alone, lines + disc, 1e6: phase SSIM ≥ 0.85 | {alone_hi['phase_ssim']:.3f} | "
                 f"estimate alone {alone_hi.get('estimate', float('nan')):.3f}, flat {alone_hi['flat']:.3f} | "
                 f"{mark(alone_hi['phase_ssim'] >= 0.85)} |")
    if ref_lo is not None:
        lines.append(f"| network alone, lines + disc, 1e3: ahead of LSQML (known probe) | "
                     f"{alone_lo['phase_ssim']:.3f} | LSQML {ref_lo['noise']} {ref_lo['phase_ssim']:.3f} "
                     f"({ref_lo['seconds']:.0f} s); estimate alone {alone_lo.get('estimate', float('nan')):.3f}, "
                     f"flat {alone_lo['flat']:.3f} | {mark(alone_lo['phase_ssim'] > ref_lo['phase_ssim'])} |")
    lines.append(f"| never-seen probe (siemens + zone plate, 1e6), fine-tuned ≤ 60 s: ≥ 0.80 | "
                 f"{q_ft:.3f} ({s_ft:.0f} s; as-is {as_is['phase_ssim']:.3f}) | fresh network of its "
                 f"architecture {q_fresh:.3f} ({s_fresh:.0f} s) | {mark(q_ft >= 0.80)} |")
    lines.append(f"| inference, network + stitching, N = 64: ≥ 1,000 patterns/s | "
                 f"fp32 {rate['32-true']:.0f}, bf16 {rate['bf16-mixed']:.0f} | – | "
                 f"{mark(max(rate.values()) >= 1000)} |")
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
