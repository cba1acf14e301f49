"""Which frame ``reconstruct`` returns: the box of the scan centres, the padded box, or the lit field.

Issue 27's measurement. For each scan (an object kind lit by a probe family, a spiral scan) one
``ptycho_nb.reconstruct`` call, then its object scored (``Reconstruction.compare``: the ground
truth aligned by ``offset``, pixels lit above 10 % scored) in three frames:

- *scan box*: the positions' bounding box (``pad_eval=False``; ``reconstruct``'s default
  before issue 27, ``infer``'s still; ``Reconstruction.crop('scan')``);
- *padded*: that box padded by N/2 (``pad_eval=True`` before issue 27: patch corners the probe
  never lit included);
- *lit*: the bounding box of the pixels whose summed stitching weight exceeds
  ``ptycho_nb.metrics.LIT_FRACTION`` of its maximum (``reconstruct``'s default now).

The padded frame's object is the refinement's last epoch over the full frame (seen through
``refine_callback``; checked to equal the returned object where they overlap). A second table
sweeps the fraction that defines "lit": the frame it gives and the phase SSIM there.

Usage: ``PYTHONPATH=. python bench/lit_field.py [--N 64] [--positions 100] [--dose 1e6]
[--threads 2]`` (about a minute on 2 cores); ``--quick``: seconds, toy sizes.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

# This checkout's ptycho_nb, whatever the installation points at.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import ptycho_nb  # noqa: E402  (before lightning)
import torch  # noqa: E402
from ptycho_nb.metrics import LIT_FRACTION, compare  # noqa: E402
from ptycho_nb.model.stitching import coverage  # noqa: E402
from ptycho_nb.refine.start import Frame, scan_frame  # noqa: E402
from ptycho_nb.workflows.frames import centre_frame, lit_frame, slices_in  # noqa: E402

SCANS = {
    "siemens / defocused pupil": {"object_kind": "siemens", "probe_kind": "defocused_pupil"},
    "dead leaves / zone plate": {"object_kind": "dead_leaves", "probe_kind": "zone_plate"},
    "lines / disc": {"object_kind": "lines", "probe_kind": "disc"},
}
FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


def _phase_ssim(obj: np.ndarray, frame: Frame, scan: Any, rec: Any) -> float:
    return float(compare(obj, scan.object, offset=frame.offset, xcoords=rec.xcoords,
                         ycoords=rec.ycoords, probe=rec.probe)["phase_ssim"])


def measure(scan: Any, refine_epochs: int | None) -> dict[str, Any]:
    """One reconstruction of ``scan`` scored in every frame."""
    last: dict[str, np.ndarray] = {}

    def keep(progress: Any) -> bool:
        if not progress.stage:  # the refinement itself, not a probe-start trial
            last["object"] = progress.object_array()
        return False

    kw = {} if refine_epochs is None else {"refine_epochs": refine_epochs}
    rec = ptycho_nb.reconstruct(scan, refine_callback=keep, enable_progress_bar=False, **kw)
    n = int(rec.probe.shape[-1])
    full = scan_frame(rec.xcoords, rec.ycoords, n)
    obj = last["object"]
    if obj.shape != full.shape or not np.allclose(obj[slices_in(rec.frame, full)], rec.object):
        raise RuntimeError("the refinement's last object is not the one reconstruct returned "
                           "(a holdout's best epoch?); run with refine_holdout=0")
    weight = coverage(rec.xcoords - full.col0, rec.ycoords - full.row0, rec.probe, full.shape,
                      middle_trim=rec.run.middle_trim)
    centres = centre_frame(rec.xcoords, rec.ycoords, n)
    frames = {"scan box": centres, "padded": full, "lit": rec.frame}
    sweep = {f: lit_frame(weight, full, centres, fraction=f) for f in FRACTIONS}
    score = {name: _phase_ssim(obj[slices_in(fr, full)], fr, scan, rec)
             for name, fr in {**frames, **{f"f={f:g}": fr for f, fr in sweep.items()}}.items()}
    return {"rec": rec, "frames": frames, "sweep": sweep, "score": score}


def _size(fr: Frame) -> str:
    return f"{fr.h}x{fr.w}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=64, help="pattern size (default: 64)")
    ap.add_argument("--positions", type=int, default=100, help="scan positions (default: 100)")
    ap.add_argument("--dose", type=float, default=1e6, help="photons per pattern (default: 1e6)")
    ap.add_argument("--seed", type=int, default=3, help="simulation seed (default: 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    ap.add_argument("--quick", action="store_true", help="toy sizes, 3 refinement epochs")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, m = (32, 20) if args.quick else (args.N, args.positions)
    results = {}
    for name, kind in SCANS.items():
        scan = ptycho_nb.simulate(N=n, n_positions=m, photons_per_pattern=args.dose, scan="spiral",
                                  seed=args.seed, **kind)
        results[name] = measure(scan, 3 if args.quick else None)
    print(f"## frames and phase SSIM (N={n}, {m} positions, {args.dose:g} photons/pattern, "
          f"lit = weight above {LIT_FRACTION:g} of its max)\n")
    print("| scan | start | scan box | padded | lit | phase SSIM scan box | padded | lit |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        fr, sc, ref = r["frames"], r["score"], r["rec"].run.refinement
        print(f"| {name} | {ref.start}, {ref.epochs_run} epochs | {_size(fr['scan box'])} | "
              f"{_size(fr['padded'])} | {_size(fr['lit'])} | {sc['scan box']:.3f} | "
              f"{sc['padded']:.3f} | {sc['lit']:.3f} |")
    print("\n## the fraction that defines lit: frame and phase SSIM\n")
    print("| fraction | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for f in FRACTIONS:
        cells = [f"{_size(r['sweep'][f])} {r['score'][f'f={f:g}']:.3f}" for r in results.values()]
        print(f"| {f:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
