"""The numbers of a reconstruction's diagnostics, as one typed record."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .fit import Residuals
from .halves import SplitHalf

__all__ = ["DiagnosticsReport", "report", "check_results"]


@dataclasses.dataclass(frozen=True)
class DiagnosticsReport:
    """What the data say about a reconstruction (no ground truth used).

    Attributes
    ----------
    n_patterns : int
        Patterns compared.
    scale : float
        Photons per unit of ``|F{P·O}|²`` the predictions used (:attr:`Residuals.scale`).
    deviance, floor : float
        Mean deviance per measured pixel (the package's half deviance, no factor 2) and its
        noise floor.
    ratio : float
        ``deviance / floor`` over the whole scan: ≈ 1 explains the data to the photon noise,
        ≫ 1 leaves signal unexplained (a wrong object, probe, positions, a defect), < 1 fits
        noise (more free parameters than the patterns constrain).
    ratio_median, ratio_max : float
        Of the per-pattern ratios.
    worst_patterns : tuple of int
        Scan indices of the patterns with the highest ratio, worst first (``report(worst=5)``).
    worst_pixel : (int, int)
        Detector pixel (row, col; DC at (N//2, N//2)) with the largest ``|residual_z|``.
    worst_pixel_z : float
        Its z-score (signed: − fewer photons than predicted, e.g. a dead pixel).
    phase_half_bit, phase_one_seventh, amplitude_half_bit, amplitude_one_seventh : float or None
        Split-half FRC resolution, cycles/px (NaN: agrees up to Nyquist; None: no split-half).
    resolution_m : float or None
        Half-period resolution at the phase's ½-bit crossing, metres (None without a pixel
        size or a split-half).
    """

    n_patterns: int
    scale: float
    deviance: float
    floor: float
    ratio: float
    ratio_median: float
    ratio_max: float
    worst_patterns: tuple[int, ...]
    worst_pixel: tuple[int, int]
    worst_pixel_z: float
    phase_half_bit: float | None = None
    phase_one_seventh: float | None = None
    amplitude_half_bit: float | None = None
    amplitude_one_seventh: float | None = None
    resolution_m: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Field name → value (JSON-ready: tuples are written as lists)."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        lines = [
            (f"deviance / noise floor: {self.ratio:.3f} overall (median {self.ratio_median:.3f}, "
             f"max {self.ratio_max:.3f}) over {self.n_patterns} patterns; "
             f"{self.deviance:.4g} vs {self.floor:.4g} per pixel"),
            f"worst patterns: {', '.join(str(i) for i in self.worst_patterns)}",
            f"worst detector pixel: {self.worst_pixel} with z = {self.worst_pixel_z:+.1f}",
        ]
        if self.phase_half_bit is not None:
            res = ("" if self.resolution_m is None or math.isnan(self.resolution_m)
                   else f" ({self.resolution_m * 1e9:.3g} nm half-period)")
            lines.append(f"split-half phase FRC: {_freq(self.phase_half_bit)} at ½-bit{res}, "
                         f"{_freq(self.phase_one_seventh)} at 1/7; amplitude "
                         f"{_freq(self.amplitude_half_bit)} / {_freq(self.amplitude_one_seventh)}")
        return "\n".join(lines)


def _freq(f: float | None) -> str:
    if f is None:
        return "-"
    return "Nyquist" if math.isnan(f) else f"{f:.3f} cycles/px"


def check_results(residuals: Any, split: Any = None) -> None:
    """Refuse what is not a :class:`Residuals` (and a :class:`SplitHalf` or None), naming the
    argument: the report and the figure read only these."""
    if not isinstance(residuals, Residuals):
        raise ValueError(f"residuals: expected a Residuals (ptycho_nb.diagnostics.residuals), got "
                         f"{type(residuals).__name__}")
    if split is not None and not isinstance(split, SplitHalf):
        raise ValueError(f"split: expected a SplitHalf (ptycho_nb.diagnostics.split_half), got "
                         f"{type(split).__name__}")


def report(residuals: Residuals, split: SplitHalf | None = None, *, worst: int = 5) -> DiagnosticsReport:
    """The numbers of :func:`~ptycho_nb.diagnostics.residuals` (and a split-half), as a record.

    Parameters
    ----------
    residuals : Residuals
    split : SplitHalf, optional
        From :func:`~ptycho_nb.diagnostics.split_half`.
    worst : int
        How many of the worst-fitting patterns to name.

    Returns
    -------
    DiagnosticsReport

    Example
    -------
    With ``rec`` and ``scan`` of :func:`~ptycho_nb.diagnostics.residuals`' example:

    >>> from ptycho_nb.diagnostics import report, residuals
    >>> print(report(residuals(rec, scan)))
    deviance / noise floor: 0.959 overall (median 0.964, max 1.160) over 200 patterns; ...
    """
    check_results(residuals, split)
    if not (isinstance(worst, (int, np.integer)) and worst >= 0):
        raise ValueError(f"worst: expected a non-negative int, got {worst!r}")
    ratio = residuals.ratio
    finite = np.isfinite(ratio)
    order = np.argsort(np.where(finite, -ratio, np.inf), kind="stable")[:min(int(worst), int(finite.sum()))]
    z = np.nan_to_num(np.abs(residuals.residual_z), nan=-1.0)
    r, c = np.unravel_index(int(np.argmax(z)), z.shape)
    split_fields: dict[str, Any] = {}
    if split is not None:
        split_fields = dict(
            phase_half_bit=split.phase_half_bit, phase_one_seventh=split.phase_one_seventh,
            amplitude_half_bit=split.amplitude_half_bit,
            amplitude_one_seventh=split.amplitude_one_seventh, resolution_m=split.resolution_m())
    pix = residuals.pixels
    return DiagnosticsReport(
        n_patterns=int(len(ratio)), scale=residuals.scale,
        deviance=float(np.nansum(residuals.deviance * pix) / np.sum(pix)),
        floor=float(np.nansum(residuals.floor * pix) / np.sum(pix)), ratio=residuals.overall,
        ratio_median=float(np.median(ratio[finite])), ratio_max=float(np.max(ratio[finite])),
        worst_patterns=tuple(int(residuals.indices[i]) for i in order),
        worst_pixel=(int(r), int(c)), worst_pixel_z=float(residuals.residual_z[r, c]),
        **split_fields)
