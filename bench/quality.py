"""Reconstruction quality of the demo's setting on its unseen scan, with and without refinement.

Runs the same recipe as ``ptycho-nb demo`` (``ptycho_nb.workflows.demo``) in a temporary folder and
prints phase/amplitude SSIM, PSNR and FRC (after alignment, inside the illuminated region) for
the network's single pass and for the network + physics refinement, with the wall times.

Usage: ``python bench/quality.py [--quick] [--threads 2]``
"""

from __future__ import annotations

import argparse
import platform
import tempfile

import torch

import ptycho_nb
from ptycho_nb.workflows.demo import demo_recipe, run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the seconds-long quick recipe")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = demo_recipe(args.quick)
    print(f"# quality — {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}, ptycho_nb {ptycho_nb.__version__}")
    print(f"recipe: simulate {recipe.simulate}, seeds train {recipe.train_seed} / test "
          f"{recipe.test_seed}, {recipe.overrides}")
    with tempfile.TemporaryDirectory() as d:
        out = run_demo(d, quick=args.quick, front_end=None)
    t = out.timings
    n_ref = out.reconstruction.run.refinement.max_epochs
    rows = [("network only", out.metrics_network_only, t.network_reconstruct_s),
            (f"network + {n_ref} refinement epochs", out.metrics, t.network_reconstruct_s + t.refine_s)]
    print("\n| unseen scan | phase SSIM | phase PSNR (dB) | phase FRC 1/7 | amplitude SSIM | "
          "amplitude PSNR (dB) | amplitude FRC 1/7 | reconstruct (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m, secs in rows:
        print(f"| {name} | {m['phase_ssim']:.3f} | {m['phase_psnr']:.2f} | {m['phase_frc_1_7']:.3f} | "
              f"{m['amplitude_ssim']:.3f} | {m['amplitude_psnr']:.2f} | {m['amplitude_frc_1_7']:.3f} | "
              f"{secs:.2f} |")
    print(f"\ntraining {t['train_s']:.1f} s, simulation {t['simulate_s']:.1f} s, total {t['total_s']:.1f} s; "
          f"FRC crossings in cycles/pixel (NaN: never crosses, resolved to Nyquist)")


if __name__ == "__main__":
    main()
