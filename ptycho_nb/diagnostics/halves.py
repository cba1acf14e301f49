"""How far two reconstructions of one field agree: the split-half FRC and its resolution.

Two reconstructions from independent data (the even- and odd-indexed patterns of a scan:
:func:`ptycho_nb.diagnostics.split_half` makes them) are put on one grid (both frames are in
scan coordinates: their overlap, whole pixels), the second is aligned to the first (sub-pixel
shift, global phase, amplitude scale, optionally a phase ramp: :func:`ptycho_nb.metrics.align`),
and the Fourier ring correlation of their phases (and amplitudes) over the pixels both light
well says up to which spatial frequency the two agree — what the data determine, not the noise. The resolution is where the FRC falls below the ½-bit
threshold (:func:`ptycho_nb.metrics.half_bit_threshold`) or below 1/7.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..data.container import PtychoData
from ..metrics import align, frc, frc_crossing, half_bit_threshold

__all__ = ["SplitHalf", "compare_halves", "pixel_size_of", "LIT_THRESHOLD"]

#: A pixel is well lit when its stitching weight exceeds this fraction of the frame's maximum, in
#: both halves.
LIT_THRESHOLD = 0.1
_ONE_SEVENTH = 1.0 / 7.0


def pixel_size_of(scan: PtychoData) -> float | None:
    """The object pixel size (m) a scan's metadata records (``pixel_size_m``), else None.

    Square pixels only: a scan with different ``pixel_width_m`` and ``pixel_height_m`` has no
    one length per ring, so None.
    """
    meta = scan.metadata
    value = meta.get("pixel_size_m")
    if value is None and meta.get("pixel_width_m") == meta.get("pixel_height_m"):
        value = meta.get("pixel_width_m")
    try:
        value = float(value)
    except (TypeError, ValueError):  # absent (None) or not a number
        return None
    return value if math.isfinite(value) and value > 0 else None


@dataclasses.dataclass(frozen=True, eq=False)
class SplitHalf:
    """Two half reconstructions and how far they agree.

    Attributes
    ----------
    halves : (Reconstruction, Reconstruction)
        From the even- and the odd-indexed patterns.
    frequencies : (K,) float64
        FRC ring centres, cycles per object pixel (Nyquist 0.5).
    phase_frc, amplitude_frc : (K,) float64
        FRC of the aligned halves' phase and amplitude (NaN in an empty ring).
    half_bit : (K,) float64
        The ½-bit threshold of each ring.
    phase_half_bit, phase_one_seventh, amplitude_half_bit, amplitude_one_seventh : float
        Where each FRC first falls below the ½-bit threshold or below 1/7, cycles/px; NaN when
        it never does (the halves agree up to Nyquist).
    pixel_size_m : float or None
        The object pixel size (m) when the scan records one.
    lit : (H, W) bool
        The pixels compared (well lit in both halves), on the common grid.
    offset : (int, int)
        (row0, col0) of the common grid in scan coordinates.
    alignment : dict
        What :func:`ptycho_nb.metrics.align` removed from the second half (``shift`` px,
        ``phase_ramp``, ``phase_offset`` rad, ``amplitude_scale``).
    """

    halves: tuple[Any, Any]
    frequencies: np.ndarray
    phase_frc: np.ndarray
    amplitude_frc: np.ndarray
    half_bit: np.ndarray
    phase_half_bit: float
    phase_one_seventh: float
    amplitude_half_bit: float
    amplitude_one_seventh: float
    pixel_size_m: float | None
    lit: np.ndarray
    offset: tuple[int, int]
    alignment: dict[str, Any]

    def resolution_m(self, frequency: float | None = None) -> float | None:
        """Half-period resolution in metres, ``pixel_size / (2·f)``, at ``frequency`` cycles/px
        (default: the phase's ½-bit crossing). At Nyquist (0.5) it is one pixel. None without a
        pixel size; NaN when the FRC never crossed (resolved to Nyquist: at most one pixel)."""
        f = self.phase_half_bit if frequency is None else float(frequency)
        if self.pixel_size_m is None:
            return None
        return math.nan if not (f > 0) else self.pixel_size_m / (2.0 * f)


def _common_grid(a: Any, b: Any) -> tuple[tuple[int, int], tuple[slice, slice], tuple[slice, slice]]:
    """The overlap of two frames in scan coordinates: its origin and each frame's slices."""
    (ra, ca), (rb, cb) = a.offset, b.offset
    r0, c0 = max(ra, rb), max(ca, cb)
    r1 = min(ra + a.object.shape[0], rb + b.object.shape[0])
    c1 = min(ca + a.object.shape[1], cb + b.object.shape[1])
    if r1 - r0 < 4 or c1 - c0 < 4:
        raise ValueError(f"a/b: their frames (offsets {a.offset} and {b.offset}, shapes "
                         f"{a.object.shape} and {b.object.shape}) share less than 4x4 pixels; "
                         "they are not reconstructions of one scan")
    return ((r0, c0), (slice(r0 - ra, r1 - ra), slice(c0 - ca, c1 - ca)),
            (slice(r0 - rb, r1 - rb), slice(c0 - cb, c1 - cb)))


def compare_halves(a: Any, b: Any, *, pixel_size_m: float | None = None,
                   lit_threshold: float = LIT_THRESHOLD, remove_ramp: bool = False) -> SplitHalf:
    """The FRC resolution of two reconstructions of one field (two halves of a scan).

    Parameters
    ----------
    a, b : Reconstruction
        Reconstructions of one field from independent data (their ``offset`` places both in
        the scan's coordinates).
    pixel_size_m : float, optional
        Object pixel size (m), for :meth:`SplitHalf.resolution_m`.
    lit_threshold : float
        Fraction of each half's largest stitching weight a pixel must exceed, in both, to be
        compared (the FRC over barely lit pixels measures the start, not the data).
    remove_ramp : bool
        Also remove a relative linear phase ramp (halves refined with their probe may differ
        by one).

    Returns
    -------
    SplitHalf
    """
    for name, r in (("a", a), ("b", b)):
        if not all(hasattr(r, f) for f in ("object", "offset", "weight")):
            raise ValueError(f"{name}: expected a Reconstruction, got {type(r).__name__}")
    if not (0.0 <= float(lit_threshold) < 1.0):
        raise ValueError(f"lit_threshold: expected a fraction in [0, 1), got {lit_threshold!r}")
    origin, sa, sb = _common_grid(a, b)
    oa, ob = np.asarray(a.object)[sa], np.asarray(b.object)[sb]
    wa, wb = np.asarray(a.weight)[sa], np.asarray(b.weight)[sb]
    lit = (wa > lit_threshold * float(np.max(a.weight))) & (wb > lit_threshold * float(np.max(b.weight)))
    if lit.sum() < 16:
        raise ValueError(f"a/b: only {int(lit.sum())} pixels are lit above {lit_threshold} of "
                         "the maximum weight in both; too few for an FRC")
    aligned, removed = align(ob, oa, lit, subpixel_shift=True, remove_ramp=remove_ramp)
    za = oa.astype(np.complex128)
    # b's phase as a's plus the wrapped difference: a 2π wrap is not a disagreement
    phase_a = np.angle(za)
    phase_b = phase_a + np.angle(aligned * np.conj(za))
    ph = frc(phase_b, phase_a, lit)
    am = frc(np.abs(aligned), np.abs(za), lit)
    freqs, half = ph["frequencies"], half_bit_threshold(ph["n_pixels"])
    return SplitHalf(
        halves=(a, b), frequencies=freqs, phase_frc=ph["curve"], amplitude_frc=am["curve"],
        half_bit=half, phase_half_bit=frc_crossing(freqs, ph["curve"], half),
        phase_one_seventh=frc_crossing(freqs, ph["curve"], _ONE_SEVENTH),
        amplitude_half_bit=frc_crossing(freqs, am["curve"], half),
        amplitude_one_seventh=frc_crossing(freqs, am["curve"], _ONE_SEVENTH),
        pixel_size_m=pixel_size_m, lit=lit, offset=origin, alignment=removed)
