"""The counts a reconstruction predicts for its patterns, and residuals in units of the noise.

For each of the reconstruction's patterns the predicted counts ``λ = s·Σ_k |F{P_k·O_j}|²``
(incoherent probe modes summed; :func:`ptycho_nb.physics.forward.forward_amplitude`, DC at the
centre as the data; the object patch cut at the pattern's position in the reconstruction's
frame, ``offset`` subtracted, as the refinement cuts it) against the measured
``k = diffraction²``: Pearson residuals ``(k − λ)/√λ`` or signed deviance residuals
``sign(k − λ)·√(2d)``, ``d = λ − k + k·log(k/λ)`` the package's half deviance
(:func:`ptycho_nb.refine.poisson_deviance`). The reconstruction's patterns are matched to the
scan's by position (:func:`match_patterns`), so a half of a split scan is read against the
whole scan.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from ..data.container import PtychoData
from ..physics.forward import check_positions, extract_patches, forward_amplitude

__all__ = ["predicted_counts", "normalised_residuals", "match_patterns", "patches_are_the_objects",
           "EPS", "Source"]

#: Smallest predicted count (photons); keeps log λ and 1/√λ finite, as the refinement clamps.
EPS = 1e-6
#: Positions closer than this (pixels) name the same scan point.
_POSITION_TOL = 1e-6

#: Where the object patches come from (:func:`predicted_counts`).
Source = Literal["auto", "object", "patches"]


def check_reconstruction(recon: Any) -> int:
    """The pattern side N of a Reconstruction, or a ValueError naming the argument."""
    needed = ("object", "offset", "probe", "patches", "xcoords", "ycoords")
    if not all(hasattr(recon, a) for a in needed):
        raise ValueError(f"recon: expected a Reconstruction (from ptycho_nb.reconstruct "
                         f"or ptycho_nb.infer), got {type(recon).__name__}")
    m = len(recon.xcoords)
    if np.shape(recon.patches)[0] != m or len(recon.ycoords) != m:
        raise ValueError(f"recon: its patches {np.shape(recon.patches)} and positions "
                         f"({m}, {len(recon.ycoords)}) do not describe the same patterns")
    return int(np.shape(recon.probe)[-1])


def match_patterns(recon: Any, scan: PtychoData) -> np.ndarray:
    """The scan pattern each of the reconstruction's patterns is, by position.

    Parameters
    ----------
    recon : Reconstruction
    scan : PtychoData
        The scan it was reconstructed from, or a larger one that holds its positions (a
        split-half reconstruction against the whole scan).

    Returns
    -------
    ndarray, int64, shape (M,)
        ``scan`` pattern index of each of the reconstruction's M patterns.

    Raises
    ------
    ValueError
        Naming ``scan`` when its patterns are another size or it lacks one of the positions.
    """
    n = check_reconstruction(recon)
    if not isinstance(scan, PtychoData):
        raise ValueError(f"scan: expected a PtychoData, got {type(scan).__name__}")
    if scan.N != n:
        raise ValueError(f"scan: its patterns are {scan.N}x{scan.N} but the reconstruction's probe "
                         f"is {n}x{n}; pass the scan it was reconstructed from")
    x, y = np.asarray(recon.xcoords, np.float64), np.asarray(recon.ycoords, np.float64)
    if (len(x) == scan.n_patterns and np.allclose(x, scan.xcoords, rtol=0, atol=_POSITION_TOL)
            and np.allclose(y, scan.ycoords, rtol=0, atol=_POSITION_TOL)):
        return np.arange(len(x), dtype=np.int64)
    # positions as integer keys on a 1e-6 px grid; the first pattern at a position wins
    def key(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
        return list(zip(np.rint(a / _POSITION_TOL).astype(np.int64).tolist(),
                        np.rint(b / _POSITION_TOL).astype(np.int64).tolist()))

    lookup: dict[tuple[int, int], int] = {}
    for i, k in enumerate(key(scan.xcoords, scan.ycoords)):
        lookup.setdefault(k, i)
    out = np.empty(len(x), dtype=np.int64)
    for j, k in enumerate(key(x, y)):
        if k not in lookup:
            raise ValueError(f"scan: the reconstruction's pattern {j} at (x={x[j]:.3f}, "
                             f"y={y[j]:.3f}) px is not a position of this scan; pass the scan it "
                             "was reconstructed from")
        out[j] = lookup[k]
    return out


#: Largest relative RMS difference at which a reconstruction's patches count as its object's own.
_SAME_PATCHES = 1e-3
#: Patterns sampled to check that (evenly spread over the scan).
_CHECKED_PATTERNS = 64


def _frame_positions(recon: Any) -> tuple[np.ndarray, np.ndarray]:
    """The patch centres in the reconstruction's frame: scan pixel (r + row0, c + col0) is the
    frame's pixel (r, c), so the positions move by −offset."""
    return (np.asarray(recon.xcoords, np.float64) - recon.offset[1],
            np.asarray(recon.ycoords, np.float64) - recon.offset[0])


def patches_are_the_objects(recon: Any) -> bool:
    """Whether ``recon.patches`` are its object's own, cut at the positions (any refinement's),
    rather than a network's predictions per pattern (``infer(..., refine_epochs=0)``'s):
    compared where the frame holds a patch's pixels, on up to 64 patterns."""
    n = int(np.shape(recon.probe)[-1])
    x, y = _frame_positions(recon)
    pick = np.unique(np.linspace(0, len(x) - 1, min(len(x), _CHECKED_PATTERNS)).round().astype(int))
    # A window may reach past a cropped frame: pad the object (and a map of where it is known)
    # so every window can be cut, and compare only pixels whose bilinear taps are all known.
    pad = n // 2 + 1
    obj = np.pad(np.asarray(recon.object, np.complex128), pad)
    known = np.pad(np.ones(np.shape(recon.object)), pad)
    xs, ys = torch.from_numpy(x[pick] + pad), torch.from_numpy(y[pick] + pad)
    with torch.no_grad():
        cut = extract_patches(torch.from_numpy(obj), xs, ys, n).numpy()
        inside = extract_patches(torch.from_numpy(known), xs, ys, n).numpy() > 1 - 1e-9
    given = np.asarray(recon.patches)[pick]
    if not inside.any():
        return False
    diff = np.linalg.norm((given - cut)[inside])
    return bool(diff <= _SAME_PATCHES * max(np.linalg.norm(cut[inside]), np.finfo(float).tiny))


def resolve_source(recon: Any, n: int, source: Source) -> str:
    """'object' or 'patches': where the exit waves' object patches come from (see
    :func:`predicted_counts`); a ValueError naming ``source`` when neither serves."""
    if source not in ("auto", "object", "patches"):
        raise ValueError(f"source: expected 'auto', 'object' or 'patches', got {source!r}")
    if source == "patches":
        return source
    x, y = _frame_positions(recon)
    try:
        check_positions(torch.from_numpy(x), torch.from_numpy(y), n, np.shape(recon.object))
    except ValueError as exc:
        if source == "object":
            raise ValueError(f"source='object': the reconstruction's frame does not hold every "
                             f"full patch ({exc}); reconstruct with pad_eval=True, or use "
                             "source='patches'") from None
        if patches_are_the_objects(recon):
            return "patches"  # a cropped frame (pad_eval=False): the patches cut before the crop
        raise ValueError(
            "source='auto': the reconstruction's frame does not hold every full patch "
            "(pad_eval=False) and its patches are not its object's (a network's predictions per "
            "pattern), so nothing predicts the edge patterns from the object; reconstruct with "
            "pad_eval=True, or pass source='patches' to judge the network's predictions") from None
    return "object"


def check_scale(scale: Any) -> float:
    """``scale`` as a positive finite float (a 0-d tensor, e.g. a model's intensity scale, too)."""
    if hasattr(scale, "detach"):  # a trainable tensor: its value, without an autograd warning
        scale = scale.detach()
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return value


def unscaled_counts(recon: Any, idx: np.ndarray, source: str) -> np.ndarray:
    """``Σ_k |F{P_k·O_j}|²`` of the reconstruction's patterns ``idx``, (B, N, N) float64."""
    probe = torch.from_numpy(np.asarray(recon.probe)).to(torch.complex128)
    n = int(probe.shape[-1])
    if source == "object":
        x, y = (torch.from_numpy(c[idx]) for c in _frame_positions(recon))
        obj = torch.from_numpy(np.asarray(recon.object)).to(torch.complex128)
        patches = extract_patches(obj, x, y, n)
    else:
        patches = torch.from_numpy(np.asarray(recon.patches)[idx]).to(torch.complex128)
    with torch.no_grad():
        return forward_amplitude(probe, patches).square().numpy()


def predicted_counts(recon: Any, patterns: Any = None, *, scale: float = 1.0,
                     source: Source = "auto") -> np.ndarray:
    """The counts a reconstruction predicts for its patterns.

    Parameters
    ----------
    recon : Reconstruction
    patterns : array_like of int, optional
        Which of the reconstruction's patterns (default: all M).
    scale : float
        Photons per unit of ``|F{P·O}|²``: 1 when the probe is in counts units (a
        reconstruction with the scan's own probe); :attr:`Residuals.scale` is the fitted one.
    source : {'auto', 'object', 'patches'}
        'object': cut each patch from ``recon.object`` at its position (the frame's
        ``offset`` subtracted), as the refinement does; needs a frame that holds every full
        patch. 'patches': ``recon.patches`` — after a refinement the refined object's own
        patches, cut before the frame's crop (the same numbers); for the network alone
        (``refine_epochs=0``) its predictions per pattern. 'auto': 'object' when the frame holds every patch, else
        'patches' when they are the object's own (:func:`patches_are_the_objects`), else a
        ``ValueError`` that says to reconstruct with ``pad_eval=True``.

    Returns
    -------
    ndarray, float64, shape (B, N, N)
        Expected photons per detector pixel, DC at (N//2, N//2) like the data, at least
        :data:`EPS`.

    Example
    -------
    With ``rec`` and ``scan`` of :func:`residuals`' example, pattern 0's residuals:

    >>> lam = predicted_counts(rec, [0])        # (1, 32, 32) photons
    >>> r = normalised_residuals(scan.intensities[0], lam[0])
    """
    n = check_reconstruction(recon)
    scale = check_scale(scale)
    m = len(recon.xcoords)
    idx = np.arange(m) if patterns is None else np.asarray(patterns, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -m or idx.max() >= m):
        raise ValueError(f"patterns: expected indices within [0, {m}), got {idx.min()}..{idx.max()}")
    where = resolve_source(recon, n, source)
    return np.maximum(scale * unscaled_counts(recon, idx % max(m, 1), where), EPS)


def pixel_deviance(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``λ − k + k·log(k/λ)`` per pixel (0·log 0 = 0), as :func:`ptycho_nb.refine.poisson_deviance`."""
    klog = np.where(k > 0, k * np.log(np.where(k > 0, k, 1.0) / lam), 0.0)
    return np.maximum(lam - k + klog, 0.0)  # ≥ 0 in exact arithmetic; round-off can dip below


def normalised_residuals(counts: Any, predicted: Any,
                         kind: Literal["pearson", "deviance"] = "pearson") -> np.ndarray:
    """Residuals per pixel in units of the Poisson noise.

    Parameters
    ----------
    counts, predicted : array_like, one shape
        Measured and predicted photons per pixel (``scan.intensities[j]``,
        :func:`predicted_counts`).
    kind : {'pearson', 'deviance'}
        'pearson': ``(k − λ)/√λ``; 'deviance': ``sign(k − λ)·√(2·d)`` with ``d`` the deviance per
        pixel (closer to normal at low counts; its square is twice the package's deviance).

    Returns
    -------
    ndarray, float64, that shape
        ≈ N(0, 1) per pixel where the model is right (at low counts the Pearson residual is
        skewed); the sign says whether the data hold more (+) or fewer (−) photons.
    """
    k = np.asarray(counts, dtype=np.float64)
    lam = np.maximum(np.asarray(predicted, dtype=np.float64), EPS)
    if k.shape != lam.shape:
        raise ValueError(f"counts/predicted: expected one shape, got {k.shape} and {lam.shape}")
    if kind == "pearson":
        return (k - lam) / np.sqrt(lam)
    if kind == "deviance":
        return np.sign(k - lam) * np.sqrt(2.0 * pixel_deviance(k, lam))
    raise ValueError(f"kind: expected 'pearson' or 'deviance', got {kind!r}")
