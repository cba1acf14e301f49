"""The noise floor: the Poisson deviance a perfect model would still have, per pixel.

The package's deviance (:func:`ptycho_nb.refine.poisson_deviance`) is the *half* deviance,
``d(k; λ) = λ − k + k·log(k/λ)`` per pixel, without the conventional factor 2. When the counts
really are Poisson with mean λ, its expectation is

``f(λ) = E[d(k; λ)] = E[k·log k] − λ·log λ``  (k ~ Poisson(λ); ``E[λ − k] = 0``),

which tends to ½ only for large counts (``f = ½ + 1/(12λ) + 1/(12λ²) + O(λ⁻³)``), rises to
0.573 near λ = 1 and falls to 0 as λ → 0 (``f ≈ −λ·log λ``). The far field of a ptychographic
pattern spans all of these (10⁵ counts at the centre, < 1 at the edge), so the floor is computed
per pixel from its own predicted counts, never as 0.5 per pixel.

How: below :data:`SERIES_FROM` counts the expectation is summed exactly over k on a grid of λ
(log-spaced, made once per process) and interpolated in log λ; above it the three-term series
is used (its error there is < 3·10⁻⁸). The total error is < 10⁻⁵ absolute per pixel (the tests
check it against the exact sum).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.special import gammaln, xlogy

__all__ = ["expected_deviance", "expected_deviance_torch", "SERIES_FROM"]

#: Counts above which the large-λ series replaces the tabulated exact sum.
SERIES_FROM = 200.0
#: Smallest tabulated λ; below it ``f ≈ −λ·log λ`` (the next term, λ²·log 2, is < 10⁻²⁴).
_TABLE_FROM = 1e-12
_TABLE_POINTS = 6000


def _exact(lam: np.ndarray) -> np.ndarray:
    """``E[k log k] − λ log λ`` by direct summation over k (λ ≤ :data:`SERIES_FROM`)."""
    top = float(lam.max())
    # the Poisson mass beyond λ + 40√λ + 60 is below 10⁻⁶⁰: nothing a float64 sum would see
    k = np.arange(int(top + 40.0 * np.sqrt(top) + 60.0) + 1, dtype=np.float64)[None, :]
    lam_col = lam[:, None]
    pmf = np.exp(xlogy(k, lam_col) - lam_col - gammaln(k + 1.0))
    return (pmf * xlogy(k, k)).sum(axis=1) - xlogy(lam, lam)


@functools.lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, np.ndarray]:
    """(log λ grid, f on it): the exact floor, made once (a few ms)."""
    log_lam = np.linspace(np.log(_TABLE_FROM), np.log(SERIES_FROM), _TABLE_POINTS)
    return log_lam, _exact(np.exp(log_lam))


def expected_deviance(lam: np.ndarray) -> np.ndarray:
    """The expected Poisson half-deviance per pixel of counts drawn with mean ``lam``.

    Parameters
    ----------
    lam : array_like, any shape
        Predicted counts (photons per pixel), ≥ 0.

    Returns
    -------
    ndarray, float64, the shape of ``lam``
        ``E[λ − k + k·log(k/λ)]`` for ``k ~ Poisson(λ)``: the deviance per pixel, in the
        package's convention (no factor 2), that a model which is exactly right still has.
        Summed over a pattern it is that pattern's noise floor.

    Example
    -------
    >>> from ptycho_nb.diagnostics import expected_deviance
    >>> expected_deviance([0.0, 1.0, 1e4]).round(4)
    array([0.    , 0.5734, 0.5   ])
    """
    lam = np.asarray(lam, dtype=np.float64)
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError("lam: expected finite, non-negative predicted counts")
    out = np.empty_like(lam)
    big = lam > SERIES_FROM
    inv = 1.0 / lam[big]
    out[big] = 0.5 + inv / 12.0 + inv * inv / 12.0
    tiny = lam < _TABLE_FROM
    out[tiny] = 0.0 - xlogy(lam[tiny], lam[tiny])  # 0.0 - : no -0.0 at λ = 0
    mid = ~big & ~tiny
    log_lam, f = _table()
    out[mid] = np.interp(np.log(lam[mid]), log_lam, f)
    return out


def expected_deviance_torch(lam: torch.Tensor) -> torch.Tensor:
    """:func:`expected_deviance` of a tensor, on its device (the refinement's): the same table,
    linearly interpolated in log λ, and the same series above :data:`SERIES_FROM`."""
    log_lam, f = _table()
    grid = torch.as_tensor(log_lam, dtype=lam.dtype, device=lam.device)
    vals = torch.as_tensor(f, dtype=lam.dtype, device=lam.device)
    lam = lam.clamp_min(0)
    big = lam > SERIES_FROM
    inv = 1.0 / lam.clamp_min(SERIES_FROM)
    series = 0.5 + inv / 12.0 + inv * inv / 12.0
    x = torch.log(lam.clamp(_TABLE_FROM, SERIES_FROM))
    i = torch.searchsorted(grid, x.contiguous()).clamp_(1, grid.numel() - 1)
    x0, x1 = grid[i - 1], grid[i]
    table = vals[i - 1] + (vals[i] - vals[i - 1]) * (x - x0) / (x1 - x0)
    tiny = -torch.special.xlogy(lam, lam)
    return torch.where(big, series, torch.where(lam < _TABLE_FROM, tiny, table))
