"""How much a scan's object scatters: the patterns' departure from the probe's own far field.

A weakly scattering object (a small phase span, smooth features, a faint amplitude contrast)
leaves every diffraction pattern close to ``|F{P}|²``, the pattern of the probe through empty
space. Such scans teach a network little: a constant output fits them almost as well as the
truth, so a self-supervised loss built mostly of them sits at "predict the mean" (README,
"Models that generalise"). :func:`scattering_strength` puts a number on it, per pattern.
"""

from __future__ import annotations

import numpy as np
import torch

from .forward import far_field

__all__ = ["scattering_strength"]


def scattering_strength(diffraction: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Relative squared departure of each pattern from the probe's far field, photon noise removed.

    With ``k`` a pattern's counts (the squared amplitudes) and ``λ0`` the probe's far-field
    intensity ``|F{P}|²`` (summed over modes) scaled to the same total counts,

        s = (Σ (k − λ0)² − Σ k) / (Σ k² − Σ k),

    which for Poisson counts of mean ``λ`` estimates ``Σ (λ − λ0)² / Σ λ²`` without the noise's
    share (``E[(k − λ)²] = λ``, ``E[k²] = λ² + λ``): 0 for an empty or uniform object at any dose
    (a noise draw may give a small negative value), about 0.2 for ``simulate``'s default objects,
    up to about 1 for strong, fine-featured ones. Position noise or a probe that is not the
    scan's also count as departure.

    Parameters
    ----------
    diffraction : (M, N, N) float array
        Diffraction amplitudes, sqrt(counts), DC at (N//2, N//2) (the package's convention).
    probe : (N, N) or (K, N, N) complex array
        The scan's probe (modes).

    Returns
    -------
    (M,) float64 array
        One value per pattern; its median summarises a scan.
    """
    d = np.asarray(diffraction)
    p = np.asarray(probe)
    if d.ndim != 3 or d.shape[-1] != d.shape[-2]:
        raise ValueError(f"diffraction: expected an (M, N, N) array, got shape {d.shape}")
    if p.ndim not in (2, 3) or p.shape[-2:] != d.shape[-2:]:
        raise ValueError(f"probe: expected (N, N) or (K, N, N) with N = {d.shape[-1]}, got shape {p.shape}")
    k = d.astype(np.float64) ** 2
    if not np.all(np.isfinite(k)):
        raise ValueError("diffraction: expected finite values")
    modes = (p if p.ndim == 3 else p[None]).astype(np.complex128)
    lam0 = (far_field(torch.from_numpy(modes)).abs() ** 2).sum(dim=0).numpy()
    if not (np.isfinite(lam0).all() and lam0.sum() > 0):
        raise ValueError("probe: expected a finite, non-zero array")
    total = k.sum(axis=(1, 2))
    lam0 = lam0[None] * (total / lam0.sum())[:, None, None]
    num = np.sum((k - lam0) ** 2, axis=(1, 2)) - total
    den = np.sum(k * k, axis=(1, 2)) - total
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
