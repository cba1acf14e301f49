"""One figure of a reconstruction's diagnostics: residual map, deviance / floor, split-half FRC."""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..plots import show_figure
from .fit import Residuals
from .halves import SplitHalf
from .summary import check_results

__all__ = ["plot_diagnostics"]

#: The residual map's colour range, in z (a pixel beyond it is saturated, not hidden).
Z_RANGE = 6.0


def _residual_panel(fig: Figure, ax, res: Residuals) -> None:
    z = res.residual_z
    im = ax.imshow(z, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -Z_RANGE, Z_RANGE))
    worst = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else math.nan
    ax.set_title(f"residual per detector pixel, all patterns (z; max |z| {worst:.1f})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)


def _ratio_panel(fig: Figure, ax, res: Residuals) -> None:
    ratio = res.ratio
    # where in the scan: a cluster of high ratios points at a region of the object or a drift
    sc = ax.scatter(res.xcoords, res.ycoords, c=ratio, s=12, cmap="magma",
                    vmin=min(0.8, float(np.nanmin(ratio))), vmax=max(1.5, float(np.nanmax(ratio))))
    ax.set_aspect("equal")
    ax.invert_yaxis()  # rows grow downwards, as in the object's image
    ax.set_xlabel("x (px)", fontsize=8)
    ax.set_ylabel("y (px)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"deviance / noise floor per pattern (overall {res.overall:.2f})", fontsize=9)
    fig.colorbar(sc, ax=ax, shrink=0.8)


def _frc_label(f: float, split: SplitHalf) -> str:
    if math.isnan(f):
        return "≥ Nyquist"
    metres = split.resolution_m(f)
    return f"{f:.3f}" + ("" if metres is None else f" ({metres * 1e9:.3g} nm)")


def _frc_panel(ax, split: SplitHalf) -> None:
    f = split.frequencies
    ax.plot(f, split.phase_frc, color="tab:blue",
            label=f"phase (½-bit {_frc_label(split.phase_half_bit, split)})")
    ax.plot(f, split.amplitude_frc, color="tab:orange",
            label=f"amplitude (½-bit {_frc_label(split.amplitude_half_bit, split)})")
    ax.plot(f, split.half_bit, color="0.3", ls="--", lw=1, label="½-bit threshold")
    ax.axhline(1 / 7, color="0.6", ls=":", lw=1, label="1/7")
    for x, colour in ((split.phase_half_bit, "tab:blue"), (split.amplitude_half_bit, "tab:orange")):
        if not math.isnan(x):
            ax.axvline(x, color=colour, lw=0.8, alpha=0.6)
    ax.set_xlim(0, 0.5)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (cycles/px)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("split-half FRC", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")


def plot_diagnostics(residuals: Residuals, split: SplitHalf | None = None,
                     path: str | os.PathLike | None = None, *, show: bool | None = None) -> Figure:
    """The diagnostics of a reconstruction in one figure.

    Panels: each detector pixel's residual over all patterns as a z-score
    (:attr:`Residuals.residual_z`: a defect or a misplaced DC centre is a structure, noise is
    speckle within about ±3.5); the deviance / noise floor of every
    pattern at its scan position; with ``split``, the split-half FRC of phase and amplitude with
    the ½-bit and 1/7 thresholds.

    Parameters
    ----------
    residuals : Residuals
        From :func:`ptycho_nb.diagnostics.residuals`.
    split : SplitHalf, optional
        From :func:`ptycho_nb.diagnostics.split_half`.
    path : str or PathLike, optional
        Where to save a PNG (100 dpi).
    show : bool or None
        In a notebook cell the figure is shown when the cell ends (None, default); False never
        shows it (see :func:`ptycho_nb.plots.show_figure`).

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    With ``rec`` and ``scan`` of :func:`ptycho_nb.diagnostics.residuals`' example:

    >>> from ptycho_nb import diagnostics
    >>> res, half = diagnostics.residuals(rec, scan), diagnostics.split_half(scan)
    >>> diagnostics.plot_diagnostics(res, half);   # shown when the cell ends
    """
    check_results(residuals, split)
    ncols = 2 if split is None else 3
    fig = Figure(figsize=(3.8 * ncols, 3.6), layout="constrained")
    FigureCanvasAgg(fig)  # an Agg canvas of its own: works whatever pyplot backend is set
    axes = np.atleast_1d(fig.subplots(1, ncols))
    _residual_panel(fig, axes[0], residuals)
    _ratio_panel(fig, axes[1], residuals)
    if split is not None:
        _frc_panel(axes[2], split)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
    show_figure(fig, "diagnostics", show)
    return fig
