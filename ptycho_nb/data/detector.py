"""What a detector did not measure: its flag values, refused or masked, and mask shapes.

A detector writes a marker, not a count, where a pixel measured nothing (a module gap, a dead or
hot pixel) or could not count any more (saturation). Read as counts these markers are wrong data
(a gap of −1 counts, a saturated pixel of 4·10⁹ photons), so every reader refuses them unless
asked to mask them; masked, they are set to 0 and marked True in ``PtychoData.mask``, the pixels
the likelihood leaves out (README "Units and conventions").

Flag values (the one definition, :func:`flag_values`):

- **NaN and ±inf**, in any float dtype: "no value" in a float image (converted gaps, failed
  corrections).
- **Negative values**: counts and amplitudes are >= 0; Pilatus-style int32 images mark module
  gaps with −1 and bad pixels with −2.
- **Saturation markers**, in photon *counts* only (a reader of counts, or ``kind='counts'``):

  - the largest value of the data's integer dtype: 2¹⁶−1 in a uint16 image, 2³²−1 in a uint32
    one (Eiger writes 2^bit-depth − 1 into gap, dead and saturated pixels; a count that reached
    its dtype's maximum is clipped at best);
  - any count >= 2³²−1 (:data:`SATURATION_MARKER`) in a wider dtype: a uint32 flag that went
    through an int64 or float conversion keeps its value, and no pixel counts 4·10⁹ photons in
    one exposure.

  2¹⁶−1 in a wider dtype is read as a count (a 32-bit counter passes 65535 at high dose), and
  amplitudes are not searched for saturation markers (detectors write counts; an amplitude file
  is processed data). A detector's own saturation level (a count-rate limit) is the caller's to
  give: ``mask_flagged(..., saturation=counts)``.

Masks are (N, N) when shared by every pattern, (M, N, N) per pattern, True = not measured.
"""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path
from typing import Literal, overload

import numpy as np

from .container import PtychoData

__all__ = ["SATURATION_MARKER", "flag_values", "mask_flagged", "compact_mask", "union_masks",
           "diffraction_from_file"]

#: Counts at and above this (2³²−1, the uint32 flag of Eiger-type detectors) are flags in any dtype.
SATURATION_MARKER = 2**32 - 1

Kind = Literal["counts", "amplitude"]


def _saturation_markers(values: np.ndarray) -> tuple[str, np.ndarray] | None:
    """The counts that are saturation markers (module docstring), named; None for no markers."""
    if values.dtype.kind in "iu" and np.iinfo(values.dtype).max <= SATURATION_MARKER:
        top = np.iinfo(values.dtype).max
        return f"saturation marker(s) (the {values.dtype} maximum {top})", values == top
    if values.dtype.kind in "iuf":
        return "saturation marker(s) (>= 2**32-1)", values >= SATURATION_MARKER
    return None


def _reasons(values: np.ndarray, kind: Kind, saturation: float | None) -> list[tuple[str, np.ndarray]]:
    """(name, bool array like ``values``) of each kind of flag value found (empty kinds left out)."""
    out: list[tuple[str, np.ndarray]] = []
    with np.errstate(invalid="ignore"):  # NaN compares False: it is counted once, as NaN/inf
        if values.dtype.kind == "f":
            out.append(("NaN/inf", ~np.isfinite(values)))
        if values.dtype.kind != "u":
            out.append(("negative", values < 0))
        markers = _saturation_markers(values) if kind == "counts" else None
        if markers is not None:
            out.append(markers)
        if saturation is not None:
            counts = np.square(values.astype(np.float64)) if kind == "amplitude" else values
            out.append((f"saturated (>= {saturation:g} counts)", counts >= saturation))
    return [(name, hit) for name, hit in out if hit.any()]


def _check_values(what: str, values: np.ndarray) -> None:
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{what}: expected real numbers (counts or amplitudes), got dtype {values.dtype}")


def flag_values(values: np.ndarray, *, kind: Kind = "counts", saturation: float | None = None) -> np.ndarray:
    """Where ``values`` hold detector flag values (module docstring), a bool array of their shape.

    Parameters
    ----------
    values : ndarray of real numbers, any shape (usually (M, N, N))
        Detector data as stored: photon counts, or amplitudes (sqrt counts).
    kind : {'counts', 'amplitude'}
        Saturation markers are searched in counts only.
    saturation : float, optional
        The detector's own saturation level, photon counts: pixels at or above it are flagged
        too (for amplitudes, ``amplitude² >= saturation``).
    """
    v = np.asarray(values)
    _check_values("values", v)
    if kind not in ("counts", "amplitude"):
        raise ValueError(f"kind: expected 'counts' or 'amplitude', got {kind!r}")
    _check_saturation(saturation)
    flagged = np.zeros(v.shape, dtype=bool)
    for _, hit in _reasons(v, kind, saturation):
        flagged |= hit
    return flagged


def _check_saturation(saturation: float | None) -> None:
    if saturation is not None and (isinstance(saturation, bool) or not isinstance(saturation, numbers.Real)
                                   or not np.isfinite(saturation) or saturation <= 0):
        raise ValueError(f"saturation: expected None or a positive number of counts, got {saturation!r}")


def compact_mask(mask: np.ndarray) -> np.ndarray | None:
    """An (M, N, N) mask as (N, N) when every pattern's is the same, None when nothing is masked."""
    if not mask.any():
        return None
    if mask.ndim == 3 and np.all(mask == mask[:1]):
        return mask[0].copy()
    return mask


def union_masks(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Pixels masked in either (N, N) / (M, N, N) mask; (N, N) only when both are shared."""
    if a is None or b is None:
        return b if a is None else a
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return a | b  # broadcasting gives (N, N) for two shared masks, (M, N, N) otherwise


def _summary(reasons: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, str]:
    flagged = np.zeros(reasons[0][1].shape, dtype=bool)
    for _, hit in reasons:
        flagged |= hit
    parts = ", ".join(f"{int(hit.sum())} {name}" for name, hit in reasons)
    where = f" in {int(flagged.any(axis=(1, 2)).sum())} of {flagged.shape[0]} patterns" if flagged.ndim == 3 else ""
    return flagged, f"{int(flagged.sum())} detector flag value(s){where}: {parts}"


def diffraction_from_file(path: Path, key: str, values: np.ndarray, *, kind: Kind,
                          mask_flagged: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A reader's diffraction: amplitudes, and the mask of the flag values it set to 0.

    Parameters
    ----------
    path, key : the file and the key/dataset ``values`` came from (named in every error).
    values : (M, N, N) real array, as stored
    kind : {'counts', 'amplitude'}
        What the file holds; counts are square-rooted.
    mask_flagged : bool
        False: flag values are refused (ValueError naming file, key, how many and of what kind).
        True: they are set to 0 and returned as the mask.

    Returns
    -------
    amplitudes : (M, N, N) float array (float64 for counts: the container checks the float32
        range and converts)
    flags : (N, N) or (M, N, N) bool mask of the flag values, or None when there were none
    """
    v = np.asarray(values)
    if np.iscomplexobj(v) or v.dtype.kind not in "iuf":
        raise ValueError(f"{path}: key '{key}' should hold real photon {kind}s, got dtype {v.dtype}")
    reasons = _reasons(v, kind, None)
    flags = None
    if reasons:
        flagged, text = _summary(reasons)
        if not mask_flagged:
            raise ValueError(f"{path}: key '{key}' holds {text} (markers of pixels that measured "
                             f"nothing, not {kind}). Pass mask_flagged=True (ptycho_nb.load or the "
                             "reader) to set them to 0 and mark them in PtychoData.mask")
        v = np.where(flagged, 0, v)
        flags = compact_mask(flagged)
    return (np.sqrt(v.astype(np.float64)) if kind == "counts" else v), flags


@overload
def mask_flagged(data: PtychoData, mask: None = None, *, kind: Kind | None = None,
                 saturation: float | None = None) -> PtychoData: ...
@overload
def mask_flagged(data: np.ndarray, mask: np.ndarray | None = None, *, kind: Kind | None = None,
                 saturation: float | None = None) -> tuple[np.ndarray, np.ndarray | None]: ...


def mask_flagged(data: PtychoData | np.ndarray, mask: np.ndarray | None = None, *,
                 kind: Kind | None = None, saturation: float | None = None
                 ) -> PtychoData | tuple[np.ndarray, np.ndarray | None]:
    """Set detector flag values to 0 and mask them (module docstring: which values are flags).

    Parameters
    ----------
    data : PtychoData or (M, N, N) real array
        A scan (its amplitudes hold no NaN or negative values: only ``saturation`` finds
        anything there), or detector data as stored.
    mask : (N, N) or (M, N, N) bool, optional
        An existing mask of the array (True = not measured), merged with the flags; a
        PtychoData brings its own.
    kind : {'counts', 'amplitude'}, optional
        What an array holds (default 'counts'); a PtychoData holds amplitudes.
    saturation : float, optional
        Photon counts at and above which the detector saturates: such pixels are masked too.

    Returns
    -------
    PtychoData
        For a PtychoData: a new one, flagged pixels 0 and in its ``mask``.
    (values, mask)
        For an array: a copy of the same dtype with the flag values set to 0, and the merged
        mask ((N, N) when the same pixels are masked in every pattern, else (M, N, N); None
        when nothing is masked).
    """
    _check_saturation(saturation)
    if isinstance(data, PtychoData):
        if mask is not None:
            raise ValueError("mask: a PtychoData brings its own mask (data.mask); pass None")
        if kind not in (None, "amplitude"):
            raise ValueError(f"kind: a PtychoData holds amplitudes, got kind={kind!r}")
        reasons = _reasons(data.diffraction, "amplitude", saturation)
        if not reasons:
            return dataclasses.replace(data)
        flagged, _ = _summary(reasons)
        return dataclasses.replace(data, diffraction=np.where(flagged, np.float32(0), data.diffraction),
                                   mask=union_masks(data.mask, compact_mask(flagged)))
    v = np.asarray(data)
    _check_values("data", v)
    if v.ndim != 3:
        raise ValueError(f"data: expected (M, N, N) patterns, got shape {v.shape}")
    kind = "counts" if kind is None else kind
    if kind not in ("counts", "amplitude"):
        raise ValueError(f"kind: expected 'counts' or 'amplitude', got {kind!r}")
    if mask is not None:
        mask = np.array(mask)  # a copy: the result never aliases the caller's mask
        if mask.shape not in (v.shape[1:], v.shape) or mask.dtype.kind != "b":
            raise ValueError(f"mask: expected a bool array of shape {v.shape[1:]} or {v.shape} "
                             f"(True = not measured), got {mask.dtype} {mask.shape}")
    reasons = _reasons(v, kind, saturation)
    if not reasons:
        return v.copy(), None if mask is None else compact_mask(mask)
    flagged, _ = _summary(reasons)
    merged = union_masks(mask, compact_mask(flagged))
    return np.where(flagged, np.zeros((), v.dtype), v), None if merged is None else compact_mask(merged)
