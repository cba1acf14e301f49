"""How well a reconstruction explains its scan, pattern by pattern and detector pixel by pixel.

From the predicted counts (:mod:`~ptycho_nb.diagnostics.predict`):

- the deviance per pixel of every pattern (the package's half deviance,
  :func:`ptycho_nb.refine.poisson_deviance`) and its noise floor
  (:func:`~ptycho_nb.refine.noise_floor.expected_deviance` of λ): their ratio ≈ 1 when the
  model explains the data to the noise, > 1 when it leaves signal unexplained;
- per detector pixel, the photons measured over those predicted, summed over the patterns, as
  a relative excess and as a z-score: a dead, hot or wrongly-gained pixel, a beamstop or a
  misplaced DC centre is a structure there, not noise.

Everything is accumulated pattern chunk by pattern chunk: a scan of any size costs a few
chunk-sized buffers, not copies of the data.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np

from ..data.container import PtychoData
from ..refine.noise_floor import expected_deviance
from .predict import (EPS, Source, check_reconstruction, check_scale, match_patterns,
                      normalised_residuals, pixel_deviance, resolve_source, unscaled_counts)

__all__ = ["Residuals", "residuals"]

#: Patterns per step of the passes over a scan.
_CHUNK = 256


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
        counts (:func:`~ptycho_nb.refine.noise_floor.expected_deviance`).
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
    n = check_reconstruction(recon)
    indices = match_patterns(recon, scan)
    bad = _check_mask(mask, scan.n_patterns, n)
    if not (isinstance(chunk, (int, np.integer)) and chunk > 0):
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    if bad is not None and bad.all():
        raise ValueError("mask: excludes every pixel of every pattern; nothing to compare")
    passes = _Passes(recon, scan, indices, bad, resolve_source(recon, n, source), int(chunk))
    scale = passes.fitted_scale() if scale is None else check_scale(scale)
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
            yield idx, use, k, unscaled_counts(self.recon, idx, self.source)

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
            d = np.where(use, pixel_deviance(k, np.maximum(lam, EPS)), 0.0)
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
