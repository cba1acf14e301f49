"""Scan patterns: patch-centre positions (xcoords = column, ycoords = row) in object pixels.

All positions lie in the valid range ``N/2 <= x <= W − N/2``, ``N/2 <= y <= H − N/2`` so every
N×N patch is inside the object. **Overlap** is defined linearly as ``overlap = 1 − step /
probe_diameter``: step = diameter → 0 overlap, step = diameter/2 → 0.5.
"""

from __future__ import annotations

import numpy as np

__all__ = ["raster_scan", "spiral_scan", "random_scan", "make_scan", "step_from_overlap",
           "overlap_from_step", "SCAN_KINDS"]

SCAN_KINDS = ("raster", "spiral", "random")
_GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def _valid_box(object_shape: tuple[int, int], N: int) -> tuple[float, float, float, float]:
    """(y_lo, y_hi, x_lo, x_hi) of valid patch centres."""
    if not isinstance(N, (int, np.integer)) or N <= 0 or N % 2:
        raise ValueError(f"N: expected a positive even int, got {N!r}")
    try:
        h, w = int(object_shape[0]), int(object_shape[1])
    except Exception:
        raise ValueError(f"object_shape: expected (H, W), got {object_shape!r}") from None
    if h < N or w < N:
        raise ValueError(f"object_shape: expected both sides >= N = {N}, got {object_shape!r}")
    return N / 2, h - N / 2, N / 2, w - N / 2


def _check_step(step: float) -> float:
    if step is None or not np.isfinite(step) or step <= 0:
        raise ValueError(f"step: expected a positive number of pixels, got {step!r}")
    return float(step)


def _jitter(x: np.ndarray, y: np.ndarray, jitter: float, rng: np.random.Generator,
            box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    if not (jitter >= 0):
        raise ValueError(f"jitter: expected >= 0 pixels (Gaussian std), got {jitter!r}")
    if jitter > 0:
        x = x + rng.normal(0, jitter, x.shape)
        y = y + rng.normal(0, jitter, y.shape)
    # Clip keeps jittered positions valid (patch inside the object).
    return np.clip(x, box[2], box[3]), np.clip(y, box[0], box[1])


def _check_n_positions(n_positions: int | None) -> int | None:
    if n_positions is not None and (not isinstance(n_positions, (int, np.integer)) or n_positions < 1):
        raise ValueError(f"n_positions: expected a positive int or None, got {n_positions!r}")
    return n_positions


def raster_scan(object_shape: tuple[int, int], N: int, step: float, jitter: float = 0.0,
                seed: int | None = 0, n_positions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rectangular grid with spacing ``step`` (px), centred in the valid range, row-major order.

    ``jitter`` is the std (px) of Gaussian noise added to each position (then clipped to the valid
    range); ``n_positions`` keeps only the first n. Returns (xcoords, ycoords), float64 (M,).
    """
    y0, y1, x0, x1 = _valid_box(object_shape, N)
    step = _check_step(step)
    _check_n_positions(n_positions)
    nx, ny = int(np.floor((x1 - x0) / step)) + 1, int(np.floor((y1 - y0) / step)) + 1
    xs = x0 + ((x1 - x0) - (nx - 1) * step) / 2 + step * np.arange(nx)
    ys = y0 + ((y1 - y0) - (ny - 1) * step) / 2 + step * np.arange(ny)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    x, y = xx.ravel(), yy.ravel()
    if n_positions is not None:
        if n_positions > x.size:
            raise ValueError(f"n_positions: {n_positions} requested but a raster with step {step} px "
                             f"fits only {x.size} in object_shape {tuple(object_shape)}")
        x, y = x[:n_positions], y[:n_positions]
    return _jitter(x, y, jitter, np.random.default_rng(seed), (y0, y1, x0, x1))


def spiral_scan(object_shape: tuple[int, int], N: int, step: float, jitter: float = 0.0,
                seed: int | None = 0, n_positions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fermat spiral ``r_k = c·√k``, ``θ_k = k·golden angle`` about the object centre.

    ``c = step/√π`` gives a point density of 1/step², i.e. a mean spacing ≈ ``step`` (px).
    Points outside the valid range are skipped; ``n_positions`` (default: all that fit) are kept
    in spiral order. Returns (xcoords, ycoords), float64 (M,).
    """
    y0, y1, x0, x1 = _valid_box(object_shape, N)
    step = _check_step(step)
    _check_n_positions(n_positions)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    c = step / np.sqrt(np.pi)
    rmax = np.hypot(y1 - cy, x1 - cx)
    kmax = int(np.ceil((rmax / c) ** 2)) + 1
    k = np.arange(kmax)
    r, th = c * np.sqrt(k), k * _GOLDEN_ANGLE
    x, y = cx + r * np.cos(th), cy + r * np.sin(th)
    ok = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    x, y = x[ok], y[ok]
    if n_positions is not None:
        if n_positions > x.size:
            raise ValueError(f"n_positions: {n_positions} requested but a spiral with step {step} px "
                             f"fits only {x.size} in object_shape {tuple(object_shape)}")
        x, y = x[:n_positions], y[:n_positions]
    return _jitter(x, y, jitter, np.random.default_rng(seed), (y0, y1, x0, x1))


def random_scan(object_shape: tuple[int, int], N: int, n_positions: int, seed: int | None = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """``n_positions`` positions uniformly distributed over the valid range (float64 (M,))."""
    y0, y1, x0, x1 = _valid_box(object_shape, N)
    if _check_n_positions(n_positions) is None:
        raise ValueError("n_positions: required for a random scan")
    rng = np.random.default_rng(seed)
    return rng.uniform(x0, x1, n_positions), rng.uniform(y0, y1, n_positions)


def step_from_overlap(overlap: float, probe_diameter: float) -> float:
    """Scan step (px) for ``overlap = 1 − step/probe_diameter``; overlap in [0, 1)."""
    if not (0 <= overlap < 1):
        raise ValueError(f"overlap: expected 0 <= overlap < 1, got {overlap!r}")
    if not (probe_diameter > 0):
        raise ValueError(f"probe_diameter: expected > 0 pixels, got {probe_diameter!r}")
    return (1.0 - overlap) * probe_diameter


def overlap_from_step(step: float, probe_diameter: float) -> float:
    """Overlap ``1 − step/probe_diameter`` (may be negative: gaps between probe footprints)."""
    if not (probe_diameter > 0):
        raise ValueError(f"probe_diameter: expected > 0 pixels, got {probe_diameter!r}")
    return 1.0 - _check_step(step) / probe_diameter


def make_scan(kind: str, object_shape: tuple[int, int], N: int, *, step: float | None = None,
              overlap: float | None = None, probe_diameter: float | None = None,
              jitter: float = 0.0, seed: int | None = 0, n_positions: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Scan positions by name: 'raster', 'spiral' or 'random'.

    Parameters
    ----------
    kind : str
    object_shape : (H, W) — object size (px)
    N : int — patch size (px, even)
    step : float, optional — spacing (px); exclusive with ``overlap``
    overlap : float, optional — ``1 − step/probe_diameter``; needs ``probe_diameter`` (default N/2)
    probe_diameter : float, optional — illuminated diameter (px) used with ``overlap``
    jitter : float — Gaussian position noise std (px), raster and spiral
    seed : int — seed of the numpy Generator
    n_positions : int, optional — number of positions (required for 'random' unless a step
        is given, in which case it defaults to the valid area / step²)

    Returns
    -------
    xcoords, ycoords : ndarray, (M,) float64 — columns and rows of patch centres (px)
    """
    key = str(kind).lower()
    if key not in SCAN_KINDS:
        raise ValueError(f"kind: unknown scan kind {kind!r}; expected one of {list(SCAN_KINDS)}")
    if step is not None and overlap is not None:
        raise ValueError("step/overlap: give one of them, not both")
    if overlap is not None:
        step = step_from_overlap(overlap, N / 2 if probe_diameter is None else probe_diameter)
    if key == "random":
        if n_positions is None:
            if step is None:
                raise ValueError("n_positions: required for a random scan (or give step/overlap)")
            y0, y1, x0, x1 = _valid_box(object_shape, N)
            n_positions = max(1, int(round((y1 - y0) * (x1 - x0) / _check_step(step) ** 2)))
        return random_scan(object_shape, N, n_positions, seed=seed)
    if step is None:
        raise ValueError(f"step: required for a {key} scan (or give overlap)")
    fn = raster_scan if key == "raster" else spiral_scan
    return fn(object_shape, N, step, jitter=jitter, seed=seed, n_positions=n_positions)
