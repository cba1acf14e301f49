"""Data residuals of a reconstruction: how well its object and probe predict the measured counts.

For each of the reconstruction's patterns the predicted counts ``λ = s·Σ_k |F{P_k·O_j}|²``
(incoherent probe modes summed; :func:`ptycho_nb.physics.forward.forward_amplitude`, DC at the
centre as the data) are compared with the measured ``k = diffraction²``:

- normalised residuals per pixel (:func:`normalised_residuals`): Pearson ``(k − λ)/√λ`` or the
  signed deviance residual ``sign(k − λ)·√(2d)``; both ≈ N(0, 1) for a right model at high counts;
- the deviance per pixel of every pattern, ``d = λ − k + k·log(k/λ)`` (the package's half
  deviance, :func:`ptycho_nb.refine.poisson_deviance`), and its noise floor
  (:func:`~ptycho_nb.diagnostics.noise_floor.expected_deviance` of λ): their ratio ≈ 1 when the
  model explains the data to the noise, > 1 when it leaves signal unexplained;
- per detector pixel, the photons measured over those predicted, summed over the patterns, as
  a relative excess and as a z-score: a dead, hot or wrongly-gained pixel, a beamstop or a
  misplaced DC centre is a structure there, not noise.

Everything is accumulated pattern chunk by pattern chunk: a scan of any size costs a few
chunk-sized buffers, not copies of the data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator, Literal

import numpy as np
import torch

from ..data.container import PtychoData
from ..physics.forward import check_positions, extract_patches, forward_amplitude
from .noise_floor import expected_deviance

__all__ = ["Residuals", "residuals", "predicted_counts", "normalised_residuals", "match_patterns",
           "EPS"]

#: Smallest predicted count (photons); keeps log λ and 1/√λ finite, as the refinement clamps.
EPS = 1e-6
#: Patterns per step of the passes over a scan.
_CHUNK = 256
#: Positions closer than this (pixels) name the same scan point.
_POSITION_TOL = 1e-6

Source = Literal["auto", "object", "patches"]


def _check_reconstruction(recon: Any) -> int:
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
    n = _check_reconstruction(recon)
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


def _check_mask(mask: Any, m: int, n: int) -> np.ndarray | None:
    """``mask`` as (N, N) or (M, N, N) bool (True = not measured), or None."""
    if mask is None:
        return None
    a = np.asarray(mask)
    if a.dtype != bool:
        raise ValueError(f"mask: expected a bool array (True = pixel not measured), got dtype "
                         f"{a.dtype}")
    if a.shape not in ((n, n), (m, n, n)):
        raise ValueError(f"mask: expected shape ({n}, {n}) or ({m}, {n}, {n}) (the scan's "
                         f"patterns), got {a.shape}")
    return a


def _source(recon: Any, n: int, source: Source) -> str:
    """'object' or 'patches': where the exit waves' object patches come from."""
    if source not in ("auto", "object", "patches"):
        raise ValueError(f"source: expected 'auto', 'object' or 'patches', got {source!r}")
    if source == "patches":
        return source
    x = np.asarray(recon.xcoords, np.float64) - recon.offset[1]
    y = np.asarray(recon.ycoords, np.float64) - recon.offset[0]
    try:
        check_positions(torch.from_numpy(x), torch.from_numpy(y), n, np.shape(recon.object))
    except ValueError as exc:
        if source == "object":
            raise ValueError(f"source='object': the reconstruction's frame does not hold every "
                             f"full patch ({exc}); reconstruct with pad_eval=True, or use "
                             "source='patches'") from None
        return "patches"  # a cropped frame (pad_eval=False): the patches cut before the crop
    return "object"


def _check_scale(scale: Any) -> float:
    """``scale`` as a positive finite float (a 0-d tensor, e.g. a model's intensity scale, too)."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return value


def _unscaled(recon: Any, idx: np.ndarray, source: str) -> np.ndarray:
    """``Σ_k |F{P_k·O_j}|²`` of the reconstruction's patterns ``idx``, (B, N, N) float64."""
    probe = torch.from_numpy(np.asarray(recon.probe)).to(torch.complex128)
    n = int(probe.shape[-1])
    if source == "object":
        # the frame's pixel (r, c) is scan pixel (r + row0, c + col0): positions move by -offset
        x = torch.from_numpy(np.asarray(recon.xcoords, np.float64)[idx] - recon.offset[1])
        y = torch.from_numpy(np.asarray(recon.ycoords, np.float64)[idx] - recon.offset[0])
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
        patch (``pad_eval=True``). 'patches': ``recon.patches``, for a refined reconstruction the
        refined object's own patches cut before the frame's crop (the same numbers), for the
        network's single pass the network's per-pattern prediction. 'auto': 'object' when the
        frame holds every patch, else 'patches'.

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
    n = _check_reconstruction(recon)
    scale = _check_scale(scale)
    m = len(recon.xcoords)
    idx = np.arange(m) if patterns is None else np.asarray(patterns, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -m or idx.max() >= m):
        raise ValueError(f"patterns: expected indices within [0, {m}), got {idx.min()}..{idx.max()}")
    return np.maximum(scale * _unscaled(recon, idx % max(m, 1), _source(recon, n, source)), EPS)


def _deviance(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
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
        return np.sign(k - lam) * np.sqrt(2.0 * _deviance(k, lam))
    raise ValueError(f"kind: expected 'pearson' or 'deviance', got {kind!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Residuals:
    """How well a reconstruction explains its scan, per pattern and per detector pixel.

    Attributes
    ----------
    indices : (M,) int64
        The scan pattern of each of the reconstruction's M patterns (its order).
    xcoords, ycoords : (M,) float64
        Their positions (column, row; scan pixels).
    scale : float
        Photons per unit of ``|F{P·O}|²`` the predictions used (given, or fitted: the one
        factor that makes the predicted total the measured total, the Poisson maximum
        likelihood; ≈ 1 for a probe in counts units).
    source : str
        Where the object patches came from ('object' or 'patches'; :func:`predicted_counts`).
    deviance : (M,) float64
        Each pattern's mean deviance per measured pixel (the package's half deviance).
    floor : (M,) float64
        Its noise floor: the mean expected deviance per measured pixel under the predicted
        counts (:func:`~ptycho_nb.diagnostics.noise_floor.expected_deviance`).
    pixels : (M,) int64
        Measured (unmasked) pixels of each pattern.
    counts, predicted : (M,) float64
        Measured and predicted photons of each pattern (measured pixels only).
    residual_map : (N, N) float64
        Each detector pixel's relative excess of photons, ``Σ_j k / Σ_j λ − 1`` over the
        patterns that measured it (NaN where none did), DC at (N//2, N//2): 0 for a right
        model, −1 for a dead pixel, +0.2 for a pixel that counts 20 % too many.
    residual_z : (N, N) float64
        The same as a z-score: the pixel's summed counts ``K = Σ_j k`` are Poisson with mean
        ``Λ = Σ_j λ`` when the model is right, and ``sign(K − Λ)·√(2·d(K; Λ))`` (their signed
        deviance residual) is ≈ N(0, 1) even where Λ is a few photons, where ``(K − Λ)/√Λ``
        would have a long tail; |z| ≫ 5 (N² pixels: |z| ≈ 3.5 is the largest noise gives)
        marks a defect.
    ratio_map : (N, N) float64
        Summed deviance over summed floor per detector pixel (NaN where never measured).
    """

    indices: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    scale: float
    source: str
    deviance: np.ndarray
    floor: np.ndarray
    pixels: np.ndarray
    counts: np.ndarray
    predicted: np.ndarray
    residual_map: np.ndarray
    residual_z: np.ndarray
    ratio_map: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """(M,) deviance / noise floor per pattern: ≈ 1 explained to the noise, ≫ 1 not."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.deviance / self.floor

    @property
    def overall(self) -> float:
        """Summed deviance over summed floor of the whole scan (pixel-weighted)."""
        # a pattern with every pixel masked has NaN means and 0 pixels: it adds nothing
        return float(np.nansum(self.deviance * self.pixels) / np.nansum(self.floor * self.pixels))


def residuals(recon: Any, scan: PtychoData, *, mask: Any = None, scale: float | None = None,
              source: Source = "auto", chunk: int = _CHUNK) -> Residuals:
    """The data residuals of a reconstruction against its scan, and the noise floor.

    Parameters
    ----------
    recon : Reconstruction
        From :func:`ptycho_nb.reconstruct` or :func:`ptycho_nb.infer`.
    scan : PtychoData
        The scan it was made from (or one holding all its positions; patterns are matched by
        position, :func:`match_patterns`).
    mask : bool array, (N, N) or (M_scan, N, N), optional
        Detector pixels to leave out (True = not measured: gaps, dead or hot pixels, a
        beamstop), for every pattern or per scan pattern.
    scale : float, optional
        Photons per unit of ``|F{P·O}|²``; default: fitted (the reconstruction does not record
        the scale a model's probe was refined under; one factor for all M·N² pixels).
    source : {'auto', 'object', 'patches'}
        See :func:`predicted_counts`.
    chunk : int
        Patterns per step (bounds the memory: a few (chunk, N, N) float64 buffers).

    Returns
    -------
    Residuals

    Example
    -------
    >>> import ptycho_nb
    >>> from ptycho_nb.diagnostics import residuals
    >>> scan = ptycho_nb.simulate(N=32, object_shape=(96, 96), step=4, n_positions=200)
    >>> rec = ptycho_nb.reconstruct(scan, pad_eval=True)
    >>> round(residuals(rec, scan).overall, 1)   # deviance / noise floor (0.96)
    1.0
    """
    n = _check_reconstruction(recon)
    indices = match_patterns(recon, scan)
    bad = _check_mask(mask, scan.n_patterns, n)
    if not (isinstance(chunk, (int, np.integer)) and chunk > 0):
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    if bad is not None and bad.all():
        raise ValueError("mask: excludes every pixel of every pattern; nothing to compare")
    passes = _Passes(recon, scan, indices, bad, _source(recon, n, source), int(chunk))
    scale = passes.fitted_scale() if scale is None else _check_scale(scale)
    return passes.residuals(scale)


@dataclasses.dataclass(frozen=True)
class _Passes:
    """Chunked passes over a reconstruction's patterns and their measured counts."""

    recon: Any
    scan: PtychoData
    indices: np.ndarray  # (M,) scan pattern of each of the reconstruction's patterns
    excluded: np.ndarray | None  # (N, N) or (M_scan, N, N), True = not measured
    source: str
    chunk: int

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(idx, measured (B, N, N) bool, counts k, unscaled predictions) chunk by chunk."""
        n = self.scan.N
        for i in range(0, len(self.indices), self.chunk):
            idx = np.arange(i, min(i + self.chunk, len(self.indices)))
            rows = self.indices[idx]
            if self.excluded is None:
                use = np.ones((len(idx), n, n), dtype=bool)
            else:
                ex = self.excluded if self.excluded.ndim == 2 else self.excluded[rows]
                use = ~np.broadcast_to(ex, (len(idx), n, n))
            k = np.square(self.scan.diffraction[rows].astype(np.float64))
            yield idx, use, k, _unscaled(self.recon, idx, self.source)

    def fitted_scale(self) -> float:
        """The Poisson maximum likelihood of one factor: predicted total = measured total."""
        tot_k = tot_l = 0.0
        for _, use, k, lam0 in self:
            tot_k += float(k[use].sum())
            tot_l += float(lam0[use].sum())
        if not (tot_k > 0 and tot_l > 0):
            raise ValueError("scan: the measured pixels hold no counts (or the reconstruction "
                             "predicts none); there is no scale to fit")
        return tot_k / tot_l

    def residuals(self, scale: float) -> Residuals:
        m, n = len(self.indices), self.scan.N
        dev, flo, tot_k, tot_l = (np.zeros(m) for _ in range(4))
        pix = np.zeros(m, dtype=np.int64)
        # per detector pixel: counts, predictions, deviance, floor, patterns that measured it
        sum_k, sum_l, sum_d, sum_f = (np.zeros((n, n)) for _ in range(4))
        seen = np.zeros((n, n), dtype=np.int64)
        for idx, use, k, lam0 in self:
            lam = np.maximum(scale * lam0, EPS)
            k, lam = np.where(use, k, 0.0), np.where(use, lam, 0.0)
            d = np.where(use, _deviance(k, np.maximum(lam, EPS)), 0.0)
            f = np.where(use, expected_deviance(lam), 0.0)
            dev[idx], flo[idx] = d.sum(axis=(1, 2)), f.sum(axis=(1, 2))
            tot_k[idx], tot_l[idx] = k.sum(axis=(1, 2)), lam.sum(axis=(1, 2))
            pix[idx] = use.sum(axis=(1, 2))
            sum_k += k.sum(axis=0)
            sum_l += lam.sum(axis=0)
            sum_d += d.sum(axis=0)
            sum_f += f.sum(axis=0)
            seen += use.sum(axis=0)
        if not pix.any():
            raise ValueError("mask: excludes every pixel of the reconstruction's patterns; "
                             "nothing to compare")
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(pix > 0, pix, np.nan)  # a wholly masked pattern: NaN means
            lam_seen = np.where(seen > 0, sum_l, np.nan)  # a never-measured pixel: NaN maps
            z = normalised_residuals(sum_k, np.where(seen > 0, sum_l, EPS), "deviance")
            return Residuals(
                indices=self.indices, xcoords=np.asarray(self.recon.xcoords, np.float64).copy(),
                ycoords=np.asarray(self.recon.ycoords, np.float64).copy(), scale=float(scale),
                source=self.source, deviance=dev / per, floor=flo / per, pixels=pix, counts=tot_k,
                predicted=tot_l, residual_map=sum_k / lam_seen - 1.0,
                residual_z=np.where(seen > 0, z, np.nan),
                ratio_map=np.where(seen > 0, sum_d / np.where(sum_f > 0, sum_f, np.nan), np.nan))
