"""Which object pixels a reconstruction returns: the box of the scan centres, or the lit field.

A frame is a :class:`~ptycho_nb.refine.start.Frame` in the scan's coordinates (object pixels;
rows from ``ycoords``, columns from ``xcoords``). Three frames matter:

- the *full* frame (:func:`~ptycho_nb.refine.start.scan_frame`): every full N×N patch, the
  positions' bounding box padded by N/2 — what the refinement works on;
- the *centre* frame (:func:`centre_frame`): the positions' bounding box alone, where every pixel
  is a scan centre's neighbour — ``infer``'s default (``pad_eval=False``);
- the *lit* frame (:func:`lit_frame`): the bounding box of every pixel the probe lit with a
  meaningful weight (:func:`ptycho_nb.metrics.lit_mask`), never less than the centre frame —
  ``reconstruct``'s default (``pad_eval=True``), the field an iterative engine returns.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..metrics import LIT_FRACTION, lit_mask
from ..refine.start import Frame, scan_frame

__all__ = ["centre_frame", "lit_frame", "frame_of_box", "union", "slices_in"]


def centre_frame(xcoords: np.ndarray, ycoords: np.ndarray, n: int) -> Frame:
    """The box of the scan centres: the full frame of N×N patches less N//2 on every side."""
    full = scan_frame(xcoords, ycoords, n)
    cut = n // 2
    return Frame(row0=full.row0 + cut, col0=full.col0 + cut, h=full.h - 2 * cut, w=full.w - 2 * cut)


def union(a: Frame, b: Frame) -> Frame:
    """The smallest frame holding both."""
    row0, col0 = min(a.row0, b.row0), min(a.col0, b.col0)
    return Frame(row0=row0, col0=col0, h=max(a.row0 + a.h, b.row0 + b.h) - row0,
                 w=max(a.col0 + a.w, b.col0 + b.w) - col0)


def _intersection(a: Frame, b: Frame) -> Frame:
    row0, col0 = max(a.row0, b.row0), max(a.col0, b.col0)
    return Frame(row0=row0, col0=col0, h=max(min(a.row0 + a.h, b.row0 + b.h) - row0, 0),
                 w=max(min(a.col0 + a.w, b.col0 + b.w) - col0, 0))


def lit_frame(weight: np.ndarray, where: Frame, centres: Frame, *,
              fraction: float = LIT_FRACTION) -> Frame:
    """The bounding box of the lit pixels of ``weight`` joined with the scan centres' box, inside
    ``where``.

    Parameters
    ----------
    weight : (H, W) float
        Summed stitching weights over ``where`` (Σ over patterns of |P|²/max|P|²).
    where : Frame
        Where ``weight`` lies in scan coordinates.
    centres : Frame
        The box of the scan centres (:func:`centre_frame`). It is joined in because "lit" is
        relative to the brightest pixel: a dense scan's border centres, lit by few patterns, may
        fall below the fraction, and padding must never return less than no padding.
    fraction : float
        Of the maximum weight (:func:`ptycho_nb.metrics.lit_mask`).

    Returns
    -------
    Frame
        Clipped to ``where``.
    """
    mask = lit_mask(weight, fraction)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = centres
    if rows.size:
        lit = Frame(row0=where.row0 + int(rows[0]), col0=where.col0 + int(cols[0]),
                    h=int(rows[-1] - rows[0]) + 1, w=int(cols[-1] - cols[0]) + 1)
        box = union(lit, centres)
    return _intersection(box, where)


def frame_of_box(box: Sequence[int], what: str = "box") -> Frame:
    """``(row0, row1, col0, col1)``, half-open in scan coordinates, as a :class:`Frame`."""
    try:
        row0, row1, col0, col1 = (int(v) for v in box)
        exact = all(int(v) == v for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{what}={box!r} is invalid: rule is (row0, row1, col0, col1), four "
                         "integers in scan coordinates (half-open)") from None
    if not exact or row1 <= row0 or col1 <= col0:
        raise ValueError(f"{what}={tuple(box)!r} is invalid: rule is four integers (row0, row1, "
                         "col0, col1) with row0 < row1 and col0 < col1 (half-open, scan coordinates)")
    return Frame(row0=row0, col0=col0, h=row1 - row0, w=col1 - col0)


def slices_in(inner: Frame, outer: Frame, what: str = "frame") -> tuple[slice, slice]:
    """The slices of an array over ``outer`` that give ``inner``; ValueError (naming ``what``)
    when ``inner`` does not lie inside ``outer``."""
    r, c = inner.row0 - outer.row0, inner.col0 - outer.col0
    if r < 0 or c < 0 or r + inner.h > outer.h or c + inner.w > outer.w or inner.h < 1 or inner.w < 1:
        raise ValueError(
            f"{what}: rows {inner.row0}..{inner.row0 + inner.h}, columns {inner.col0}.."
            f"{inner.col0 + inner.w} (scan coordinates) are not inside the frame's rows "
            f"{outer.row0}..{outer.row0 + outer.h}, columns {outer.col0}..{outer.col0 + outer.w}")
    return slice(r, r + inner.h), slice(c, c + inner.w)
