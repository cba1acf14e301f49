"""Simulate a ptychography scan: object + probe + scan → photon-counted diffraction amplitudes.

This module decides what a scan is made of from :func:`simulate`'s arguments; the measurement,
its photon scaling (see :mod:`ptycho_nb.physics.assemble`), the imperfections of a realistic scan
(:mod:`ptycho_nb.physics.imperfections`) and the scan's record are the shared scan assembly's.
``measure`` lives there too and is importable from here as before.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data.container import PtychoData
from .assemble import assemble_scan, fit_object_shape, measure
from .imperfections import Imperfections, gap_lines
from .objects import make_object
from .probes import canonical_probe_kind, make_probe, probe_diameter
from .scan import SCAN_KINDS, make_scan

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


def simulate(*, N: int = 64, object_kind: str = "image", object_shape: tuple[int, int] | None = None,
             probe_kind: str = "disc", probe: np.ndarray | None = None, scan: str = "spiral",
             step: float | None = None, overlap: float | None = None,
             n_positions: int | None = None, grid: tuple[int, int] | None = None,
             jitter: float = 0.0, photons_per_pattern: float = 1e6, noise: str | None = "poisson",
             seed: int = 0, amplitude_range: tuple[float, float] = (0.5, 1.0),
             phase_range: tuple[float, float] = (-1.2, 1.2), object_kwargs: dict | None = None,
             probe_kwargs: dict | None = None, batch_size: int = 256, probe_modes: int = 1,
             mode_powers: Sequence[float] | None = None, store_probe_modes: bool = False,
             position_error: float = 0.0, position_drift: float = 0.0,
             detector_gaps: int | Mapping[str, Sequence[int]] | None = None,
             dead_pixel_fraction: float = 0.0) -> PtychoData:
    """Simulate a noisy (or noise-free) ptychography scan with ground truth.

    By default the scan is ideal: one coherent probe, which is stored; exact positions; a
    perfect detector. The last seven options make it realistic (they are described in
    :mod:`ptycho_nb.physics.imperfections`); off, the scan is exactly the ideal one.

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
    probe_modes : int
        Incoherent probe modes K (partial coherence; 1 to 16). The patterns are the incoherent
        sum over Hermite–Gauss-like, orthogonalised variants of the probe.
    mode_powers : K floats, optional
        Power fraction of each mode, non-increasing, summing to 1; default (0.72, 0.19, 0.09)
        for K = 3 (``physics.imperfections.default_mode_powers``).
    store_probe_modes : bool
        With K > 1, store every mode as ``probe`` (exact) instead of the dominant one carrying
        the whole power (what users usually have; the default).
    position_error : float
        Std (px, per axis) of the Gaussian error of the stored positions; 0 to 64.
    position_drift : float
        Slow drift (px) of the true positions, reached at the last pattern; 0 to 256.
    detector_gaps : None, int or mapping
        Module gaps: an int w is a cross of w-pixel-wide gaps at row and column
        ``N//2 + N//8``; ``{'rows': [...], 'columns': [...]}`` names the pixel lines.
    dead_pixel_fraction : float
        Fraction of detector pixels that are dead (read 0); 0 to 0.5.

    Returns
    -------
    PtychoData
        ``diffraction`` sqrt(counts) float32, probe ``sqrt(s)·P``, ground-truth object, metadata.
        With imperfections also (see :func:`~ptycho_nb.physics.assemble.assemble_scan`): the
        nominal positions as ``xcoords/ycoords`` and the true ones as
        ``xcoords_truth/ycoords_truth``, the K modes as ``probe_truth``, the gap and dead
        pixels (0 in the diffraction) as ``mask``; the record says which
        (``record.probe_exact``, ``position_error``, ...). An automatically sized object grows
        by ``ceil(4·position_error + position_drift)`` px on each side so the true positions
        fit it.
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
    rows, columns = gap_lines(detector_gaps, int(N))
    imperfections = Imperfections(
        probe_modes=probe_modes, mode_powers=None if mode_powers is None else tuple(mode_powers),
        store_probe_modes=store_probe_modes, position_error=position_error,
        position_drift=position_drift, gap_rows=rows, gap_columns=columns,
        dead_pixel_fraction=dead_pixel_fraction)
    imperfections.check_size(int(N))
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

    # Object; an automatic one holds the scan and, beyond it, its true positions.
    margin = 0
    if object_shape is None:
        if n_positions is None and grid is None:
            n_positions = DEFAULTS["n_positions"]
        scan_shape = fit_object_shape(scan, N, step, n_positions, grid)
        margin = imperfections.position_margin
        object_shape = (scan_shape[0] + 2 * margin, scan_shape[1] + 2 * margin)
    else:
        scan_shape = object_shape
    obj = make_object(object_kind, object_shape, amplitude_range=amplitude_range,
                      phase_range=phase_range, seed=seed, **(object_kwargs or {}))

    # Scan (separate, seed-derived streams so changing one part does not reshuffle the others).
    scan_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    if grid is not None:
        x, y = make_scan("raster", scan_shape, N, step=step, jitter=jitter, seed=scan_seed)
        # Auto shapes fit the grid exactly; with a given shape keep the first ny·nx.
        if x.size < grid[0] * grid[1]:
            raise ValueError(f"grid: {grid} does not fit object_shape {object_shape} with step {step}")
        x, y = x[:grid[0] * grid[1]], y[:grid[0] * grid[1]]
    else:
        x, y = make_scan(scan, scan_shape, N, step=step, jitter=jitter, seed=scan_seed,
                         n_positions=n_positions)

    noise_rng = np.random.default_rng(np.random.SeedSequence([seed, 2])) if noise == "poisson" else None
    return assemble_scan(
        p, obj, x + margin, y + margin, photons_per_pattern=float(photons_per_pattern),
        noise_rng=noise_rng, step=step, started=t0, batch_size=batch_size,
        imperfections=imperfections, imperfection_seed=np.random.SeedSequence([seed, 3]),
        source="ptycho_nb.physics.simulate", seed=int(seed),
        object_kind=str(object_kind), object_kwargs=dict(object_kwargs or {}),
        amplitude_range=amplitude_range, phase_range=phase_range, probe_kind=str(probe_kind),
        probe_kwargs=dict(probe_kwargs or {}), scan=scan, jitter=float(jitter), grid=grid)
