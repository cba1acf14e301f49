"""Simulate a ptychography scan: object + probe + scan → photon-counted diffraction amplitudes.

Photon scaling (consistent units): with the unit probe (sum|P|² = 1) the noise-free intensities
``I_j = |F{P·O_j}|²`` (ortho FFT) are scaled by ``s = photons_per_pattern / mean_j sum I_j``;
counts ``~ Poisson(s·I_j)``; ``diffraction = sqrt(counts)``. The stored probe is ``sqrt(s)·P``, so
``forward_amplitude(stored_probe, true_patches)²`` equals the expected counts.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from ..data.container import PtychoData
from .forward import FFT_NORM, forward_from_object
from .objects import make_object
from .probes import canonical_probe_kind, make_probe, probe_diameter
from .scan import SCAN_KINDS, make_scan, overlap_from_step

__all__ = ["simulate", "measure", "DEFAULTS"]

DEFAULTS: dict[str, Any] = {
    "N": 64,
    "object_kind": "image",
    "probe_kind": "disc",
    "scan": "spiral",
    "step": 8.0,
    "n_positions": 1000,
    "photons_per_pattern": 1e6,
    "amplitude_range": (0.5, 1.0),
    "phase_range": (-1.2, 1.2),
}


def _auto_object_shape(scan: str, N: int, step: float, n_positions: int | None,
                       grid: tuple[int, int] | None) -> tuple[int, int]:
    """Smallest object (px) whose valid range holds the requested scan (+2 px margin)."""
    if grid is not None:
        ny, nx = grid
        return (int(math.ceil((ny - 1) * step)) + N + 2, int(math.ceil((nx - 1) * step)) + N + 2)
    n = n_positions if n_positions is not None else DEFAULTS["n_positions"]
    if scan == "spiral":
        # Fermat spiral radius after n points is step·sqrt(n/π); the square must contain the disc.
        side = 2 * int(math.ceil(step * math.sqrt(n / math.pi))) + 2
    else:
        side = int(math.ceil(step * math.sqrt(n))) + 2
    return (side + N, side + N)


def measure(probe: np.ndarray, obj: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray,
            photons_per_pattern: float, *, noise_rng: np.random.Generator | None = None,
            batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, float]:
    """Diffraction amplitudes of a scan at a mean dose, through the one forward model.

    Parameters
    ----------
    probe : (N, N) or (K, N, N) complex
        Probe with unit total intensity.
    obj : (H, W) complex
        Object transmission.
    xcoords, ycoords : (M,) float
        Patch centres (column, row), object pixels.
    photons_per_pattern : float
        Mean total counts per pattern; sets the scale ``s``.
    noise_rng : numpy Generator, optional
        Poisson noise drawn from it; None gives noise-free amplitudes.
    batch_size : int
        Patterns per forward chunk (memory ∝ batch_size·N²).

    Returns
    -------
    diffraction : (M, N, N) float32
        sqrt(counts).
    stored_probe : complex64
        ``sqrt(s)·probe``: in sqrt(counts) units, so ``|F{stored_probe·O}|²`` is the expected count.
    s : float
        Photons per unit of ``|F{probe·O}|²``.
    """
    p_t = torch.from_numpy(np.asarray(probe))
    o_t = torch.from_numpy(np.asarray(obj))
    m, n = xcoords.size, probe.shape[-1]
    inten = np.empty((m, n, n), dtype=np.float64)
    with torch.no_grad():
        for a in range(0, m, batch_size):
            b = min(m, a + batch_size)
            amp = forward_from_object(p_t, o_t, torch.from_numpy(xcoords[a:b]), torch.from_numpy(ycoords[a:b]))
            inten[a:b] = amp.double().numpy() ** 2
    s = photons_per_pattern / float(inten.sum(axis=(1, 2)).mean())
    expected = s * inten
    if noise_rng is not None:
        diffraction = np.sqrt(noise_rng.poisson(expected)).astype(np.float32)
    else:
        diffraction = np.sqrt(expected).astype(np.float32)
    return diffraction, (np.asarray(probe) * np.sqrt(s)).astype(np.complex64), s


def simulate(*, N: int = 64, object_kind: str = "image", object_shape: tuple[int, int] | None = None,
             probe_kind: str = "disc", probe: np.ndarray | None = None, scan: str = "spiral",
             step: float | None = None, overlap: float | None = None,
             n_positions: int | None = None, grid: tuple[int, int] | None = None,
             jitter: float = 0.0, photons_per_pattern: float = 1e6, noise: str | None = "poisson",
             seed: int = 0, amplitude_range: tuple[float, float] = (0.5, 1.0),
             phase_range: tuple[float, float] = (-1.2, 1.2), object_kwargs: dict | None = None,
             probe_kwargs: dict | None = None, batch_size: int = 256) -> PtychoData:
    """Simulate a noisy (or noise-free) ptychography scan with ground truth.

    Parameters
    ----------
    N : int
        Pattern/probe size (px, even).
    object_kind, object_kwargs : see :func:`ptycho_nb.physics.make_object`.
    object_shape : (H, W), optional
        Object size (px); default: just large enough for the scan.
    probe_kind, probe_kwargs : see :func:`ptycho_nb.physics.make_probe`; or ``probe`` (N, N) /
        (K, N, N) complex array (rescaled to unit total intensity).
    scan : 'spiral' (default), 'raster' or 'random'.
    step : float, optional
        Scan spacing (px); default 8 px. Exclusive with ``overlap`` (``1 − step/probe diameter``,
        the diameter estimated from the probe by :func:`probe_diameter`).
    n_positions : int, optional
        Number of patterns (default 1000 when the object shape is automatic).
    grid : (ny, nx), optional
        Raster grid size (implies ``scan='raster'``); exclusive with ``n_positions``.
    jitter : float
        Gaussian position noise std (px).
    photons_per_pattern : float
        Mean total counts per pattern (> 0).
    noise : 'poisson' or None
    seed : int
        Seeds object, scan and noise (numpy Generators).
    amplitude_range, phase_range : object transmission ranges (phase in rad).
    batch_size : int
        Patterns per forward chunk (bounds memory).

    Returns
    -------
    PtychoData
        ``diffraction`` sqrt(counts) float32, probe ``sqrt(s)·P``, ground-truth object, metadata.
    """
    t0 = time.perf_counter()
    if not isinstance(N, (int, np.integer)) or N < 4 or N % 2:
        raise ValueError(f"N: expected an even int >= 4, got {N!r}")
    if not (isinstance(photons_per_pattern, (int, float)) and np.isfinite(photons_per_pattern)
            and photons_per_pattern > 0):
        raise ValueError(f"photons_per_pattern: expected a positive finite number, got {photons_per_pattern!r}")
    if noise not in ("poisson", None, "none"):
        raise ValueError(f"noise: expected 'poisson' or None, got {noise!r}")
    noise = None if noise == "none" else noise
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    scan = str(scan).lower()
    if scan not in SCAN_KINDS:
        raise ValueError(f"scan: unknown scan kind {scan!r}; expected one of {list(SCAN_KINDS)}")
    if grid is not None:
        if n_positions is not None:
            raise ValueError("grid/n_positions: give one of them, not both")
        if len(grid) != 2 or min(int(g) for g in grid) < 1:
            raise ValueError(f"grid: expected (ny, nx) positive ints, got {grid!r}")
        grid = (int(grid[0]), int(grid[1]))
        scan = "raster"
    if step is not None and overlap is not None:
        raise ValueError("step/overlap: give one of them, not both")

    # Probe (unit total intensity).
    if probe is None:
        probe_kind = canonical_probe_kind(probe_kind)  # recorded by its vocabulary name, not an alias
        p = make_probe(probe_kind, N, **(probe_kwargs or {}))
    else:
        p = np.asarray(probe)
        if p.ndim not in (2, 3) or p.shape[-2:] != (N, N):
            raise ValueError(f"probe: expected (N, N) or (K, N, N) with N={N}, got {p.shape}")
        tot = float(np.sum(np.abs(p) ** 2))
        if not np.isfinite(tot) or tot <= 0:
            raise ValueError("probe: expected a finite, non-zero array")
        p = (p / np.sqrt(tot)).astype(np.complex64)
        probe_kind = "user"
    diam = probe_diameter(p)
    if overlap is not None:
        if not (0 <= overlap < 1):
            raise ValueError(f"overlap: expected 0 <= overlap < 1, got {overlap!r}")
        step = (1.0 - overlap) * diam
    step = DEFAULTS["step"] if step is None else float(step)
    if not (step > 0):
        raise ValueError(f"step: expected a positive number of pixels, got {step!r}")

    # Object.
    auto_shape = object_shape is None
    if auto_shape:
        object_shape = _auto_object_shape(scan, N, step, n_positions, grid)
        if n_positions is None and grid is None:
            n_positions = DEFAULTS["n_positions"]
    obj = make_object(object_kind, object_shape, amplitude_range=amplitude_range,
                      phase_range=phase_range, seed=seed, **(object_kwargs or {}))

    # Scan (separate, seed-derived streams so changing one part does not reshuffle the others).
    scan_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    if grid is not None:
        x, y = make_scan("raster", object_shape, N, step=step, jitter=jitter, seed=scan_seed)
        # Auto shapes fit the grid exactly; with a given shape keep the first ny·nx.
        if x.size < grid[0] * grid[1]:
            raise ValueError(f"grid: {grid} does not fit object_shape {object_shape} with step {step}")
        x, y = x[:grid[0] * grid[1]], y[:grid[0] * grid[1]]
    else:
        x, y = make_scan(scan, object_shape, N, step=step, jitter=jitter, seed=scan_seed,
                         n_positions=n_positions)

    noise_rng = np.random.default_rng(np.random.SeedSequence([seed, 2])) if noise == "poisson" else None
    diffraction, stored_probe, s = measure(p, obj, x, y, photons_per_pattern, noise_rng=noise_rng,
                                           batch_size=batch_size)
    m = x.size

    metadata: dict[str, Any] = {
        "source": "ptycho_nb.physics.simulate",
        "photons_per_pattern": float(photons_per_pattern),
        "intensity_scale": float(s),
        "fft_norm": FFT_NORM,
        "dc_pixel": [N // 2, N // 2],
        "diffraction": "amplitude",
        "noise": noise,
        "seed": int(seed),
        "object_kind": str(object_kind),
        "object_shape": [int(object_shape[0]), int(object_shape[1])],
        "object_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in (object_kwargs or {}).items()},
        "amplitude_range": [float(v) for v in amplitude_range],
        "phase_range": [float(v) for v in phase_range],
        "probe_kind": str(probe_kind),
        "probe_kwargs": dict(probe_kwargs or {}),
        "probe_diameter": float(diam),
        "scan": scan,
        "step": float(step),
        "overlap": float(overlap_from_step(step, diam)),
        "jitter": float(jitter),
        "n_positions": int(m),
        "grid": None if grid is None else list(grid),
        "simulate_seconds": round(time.perf_counter() - t0, 3),
    }
    return PtychoData(diffraction=diffraction, xcoords=x, ycoords=y, probe=stored_probe, object=obj,
                      scan_index=np.zeros(m, dtype=np.int64), metadata=metadata)
