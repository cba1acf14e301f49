"""Gallery of what :mod:`ptycho_nb.physics.varied` draws: objects (amplitude, phase) and probes.

For a seed, draws ``--examples`` objects of every object kind in the spec and probes of every
probe family, plus the diffraction patterns of a few whole scans, and writes one PNG. A visual
check that each kind looks like its name (dead leaves: overlapping opaque shapes; blobs: cells
with rims and nuclei; …)::

    python bench/varied_gallery.py --seed 0 --out /tmp/varied_gallery.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
# The object-oriented Figure needs no pyplot and no GUI backend: savefig renders PNG with Agg.
from matplotlib.figure import Figure

from ptycho_nb.physics.varied import VariedSpec, draw_object, draw_probe, draw_scan, scan_seed


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def gallery(spec: VariedSpec, seed: int, examples: int, size: int, n_scans: int) -> Figure:
    """Figure with one row per object kind (amplitude | phase per example), probes and scans."""
    kinds = [k for k, w in spec.object_kinds if w > 0]
    families = [f for f, w in spec.probe_families if w > 0]
    cols = 2 * examples
    rows = len(kinds) + len(families) + 1
    fig = Figure(figsize=(1.6 * cols, 1.7 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, kind in enumerate(kinds):
        for e in range(examples):
            t0 = time.perf_counter()
            obj, info = draw_object(spec, scan_seed(seed, e), shape=(size, size), kind=kind)
            dt = time.perf_counter() - t0
            a, p = axes[r, 2 * e], axes[r, 2 * e + 1]
            # Each panel on its drawn range (titles give it), so weak objects stay visible.
            a0, a1 = info["amplitude_range"]
            p0, p1 = info["phase_range"]
            a.imshow(np.abs(obj), cmap="gray", vmin=a0, vmax=max(a1, a0 + 1e-3))
            p.imshow(np.angle(obj), cmap="viridis", vmin=p0, vmax=p1)
            a.set_title(f"{info['amplitude_mode'][:5]} |O| {a0:.2f}–{a1:.2f}", fontsize=7)
            p.set_title(f"φ span {p1 - p0:.2f} rad, {dt * 1e3:.0f} ms", fontsize=7)
            if e == 0:
                a.set_ylabel(kind, fontsize=9)
    for i, fam in enumerate(families):
        r = len(kinds) + i
        for e in range(examples):
            pr, info = draw_probe(spec, scan_seed(seed, e), family=fam)
            a, p = axes[r, 2 * e], axes[r, 2 * e + 1]
            amp = np.abs(pr)
            a.imshow(amp, cmap="magma")
            # Phase only where there is light; elsewhere it is noise.
            p.imshow(np.where(amp > 0.05 * amp.max(), np.angle(pr), np.nan), cmap="twilight",
                     vmin=-np.pi, vmax=np.pi)
            a.set_title(f"|P| d={info['probe_diameter']:.0f}px", fontsize=7)
            p.set_title("phase", fontsize=7)
            if e == 0:
                a.set_ylabel(fam, fontsize=9)
    r = rows - 1
    for e in range(min(cols, 2 * n_scans)):
        if e % 2 == 0:
            d = draw_scan(spec, scan_seed(seed, e // 2))
            rec = d.record
            axes[r, e].imshow(np.log1p(d.diffraction[0] ** 2), cmap="viridis")
            axes[r, e].set_title(f"{rec.photons_per_pattern:.1e} ph", fontsize=7)
            if e == 0:
                axes[r, e].set_ylabel("log(1+counts)", fontsize=9)
        else:
            axes[r, e].imshow(np.abs(d.object), cmap="gray", vmin=0, vmax=1)
            axes[r, e].plot(d.xcoords, d.ycoords, ".", ms=1, color="tab:orange")
            axes[r, e].set_title(f"{rec.scan}, ov {rec.overlap:.2f}", fontsize=7)
    for ax in axes.ravel():
        _off(ax)
        if not ax.images:
            ax.set_axis_off()
    fig.suptitle(f"ptycho_nb.physics.varied gallery, seed {seed}, N={spec.N}, objects {size}²",
                 fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=3, help="examples per kind / family")
    ap.add_argument("--size", type=int, default=192, help="object side (px)")
    ap.add_argument("--scans", type=int, default=3, help="whole scans in the last row")
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("/tmp/varied_gallery.png"))
    args = ap.parse_args(argv)
    fig = gallery(VariedSpec(N=args.N), args.seed, args.examples, args.size, args.scans)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
