"""The one scan assembly shared by :func:`~ptycho_nb.physics.simulate` and the varied-scan sampler
(:func:`~ptycho_nb.physics.varied.draw_scan`).

Each of them decides *what* to simulate (object, probe, positions, dose, seeds); what follows is
the same for both and lives here: the object shape that holds a scan (:func:`fit_object_shape`,
asked before the object and positions are made), the measurement (:func:`measure`: the one
forward model, photon scaling, Poisson counts → float32 amplitudes) and the scan's typed record
(:class:`~ptycho_nb.data.scan_record.SimulatedScan`) written into the returned
:class:`~ptycho_nb.data.container.PtychoData` (:func:`assemble_scan`), and with it what a real
scan has that an ideal one lacks (:mod:`ptycho_nb.physics.imperfections`: probe modes, position
errors, detector defects), applied to the measurement and recorded.

Photon scaling: with the unit probe (sum|P|² = 1) the noise-free intensities
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
from ..data.scan_record import SimulatedScan, probe_checksum
from .forward import FFT_NORM, forward_from_object
from .imperfections import Imperfections, coherent_modes, detector_mask, true_positions
from .probes import probe_diameter
from .scan import overlap_from_step

__all__ = ["fit_object_shape", "measure", "assemble_scan"]

#: Pixels added to each side's scan extent, so jittered or rounded positions keep their patch inside.
_MARGIN = 2


def fit_object_shape(scan: str, N: int, step: float, n_positions: int | None = None,
                     grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """Smallest object (H, W) in pixels whose valid range holds a scan, with a 2 px margin.

    Parameters
    ----------
    scan : 'raster', 'spiral' or 'random'
    N : int
        Patch (probe) size (px); the valid range of patch centres is the object less N.
    step : float
        Scan step (px, > 0).
    n_positions : int, optional
        Number of positions; required unless ``grid`` is given.
    grid : (ny, nx), optional
        A raster of ny rows and nx columns: fitted exactly, ``(ny − 1)·step`` by ``(nx − 1)·step``.

    Returns
    -------
    (H, W) ints
        With a grid, its extent. Otherwise a square: for a spiral the disc its first n points
        fill (a Fermat spiral's point k lies at ``step·sqrt(k/π)`` from the centre); for 'raster'
        and 'random' the area of n positions at density 1/step², side ``step·sqrt(n)``.
    """
    if grid is not None:
        ny, nx = grid
        return (math.ceil((ny - 1) * step) + N + _MARGIN, math.ceil((nx - 1) * step) + N + _MARGIN)
    if n_positions is None:
        raise ValueError("n_positions: required to fit an object to a scan without a grid")
    if scan == "spiral":
        side = 2 * math.ceil(step * math.sqrt(n_positions / math.pi)) + _MARGIN
    else:
        side = math.ceil(step * math.sqrt(n_positions)) + _MARGIN
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


def assemble_scan(probe: np.ndarray, obj: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray, *,
                  photons_per_pattern: float, noise_rng: np.random.Generator | None, step: float,
                  started: float, batch_size: int = 256, imperfections: Imperfections | None = None,
                  imperfection_seed: np.random.SeedSequence | None = None, **facts: Any) -> PtychoData:
    """Measure a scan and return it with its record: the common end of every simulation.

    Parameters
    ----------
    probe : (N, N) or (K, N, N) complex
        Probe with unit total intensity (sum|P|² = 1); (N, N) when ``imperfections`` asks for
        probe modes (the main probe they are made from).
    obj : (H, W) complex64
        Object transmission; holds every patch (the container checks it).
    xcoords, ycoords : (M,) float64
        Nominal patch centres (column, row), object pixels: where the scan meant to measure.
    photons_per_pattern : float
        Mean total counts per pattern (> 0).
    noise_rng : numpy Generator or None
        Source of the Poisson noise; None for noise-free amplitudes.
    step : float
        Scan step (px), recorded with the overlap it gives this probe.
    started : float
        ``time.perf_counter()`` when the simulation began (the record's ``simulate_seconds``).
    batch_size : int
        Patterns per forward chunk.
    imperfections : Imperfections, optional
        What departs from the ideal scan (None: nothing, the output is the ideal scan's).
    imperfection_seed : SeedSequence, optional
        The draws of the position errors and dead pixels; required when there are any.
    **facts
        The record's descriptive fields (:class:`~ptycho_nb.data.scan_record.SimulatedScan`):
        ``source``, ``seed``, ``object_kind``, ``amplitude_range``, ``phase_range``,
        ``probe_kind``, ``scan``, ``jitter`` and any optional ones. The rest are measured here:
        intensity scale, FFT convention, DC pixel, object shape, probe diameter, overlap,
        number of positions, noise, time.

    Returns
    -------
    PtychoData
        ``diffraction`` sqrt(counts) (M, N, N) float32, probe ``sqrt(s)·P`` complex64, the
        object as ground truth, ``scan_index`` zeros and ``metadata = record.as_dict()``.
        With imperfections: the patterns are the incoherent sum over the probe modes at the
        true positions; ``probe`` is ``sqrt(s)·P`` of the main probe (the whole power in the
        dominant mode) or every mode (``store_probe_modes``), ``probe_truth`` the K modes
        ``sqrt(s)·P_k`` when K > 1; ``xcoords/ycoords`` stay the nominal positions and
        ``xcoords_truth/ycoords_truth`` hold the true ones when they differ; gap and dead
        pixels read 0 and are True in ``mask`` ((N, N)). ``s`` is set by the mean counts over
        the whole detector, before its defects.

    Raises
    ------
    ValueError
        A fact breaks the record's rules (named), or the container refuses the arrays.
    """
    imp = Imperfections() if imperfections is None else imperfections
    n = probe.shape[-1]
    imp.check_size(n)
    if imperfection_seed is None and (imp.moves_positions or imp.dead_pixel_fraction > 0):
        raise ValueError("imperfection_seed: required to draw position errors or dead pixels")
    if imp.probe_modes > 1 and probe.ndim != 2:
        raise ValueError(f"probe: expected the (N, N) main probe to make {imp.probe_modes} modes "
                         f"from, got shape {probe.shape}")
    modes = coherent_modes(probe, imp.mode_powers) if imp.probe_modes > 1 else probe
    x_true, y_true = (true_positions(xcoords, ycoords, imp, imperfection_seed, obj.shape, n)
                      if imp.moves_positions else (xcoords, ycoords))
    diffraction, stored_probe, s = measure(modes, obj, x_true, y_true, photons_per_pattern,
                                           noise_rng=noise_rng, batch_size=batch_size)
    mask = detector_mask(n, imp, imperfection_seed)
    if mask is not None:
        diffraction[:, mask] = 0.0  # dead and gap pixels count nothing
    probe_truth = None
    if imp.probe_modes > 1:
        probe_truth = stored_probe
        if not imp.store_probe_modes:
            # the main probe itself, carrying the whole power: what a single-mode guess holds
            stored_probe = (np.asarray(probe) * np.sqrt(s)).astype(np.complex64)
    diam = probe_diameter(modes)  # of the whole illumination
    record = SimulatedScan(
        photons_per_pattern=photons_per_pattern, intensity_scale=s, fft_norm=FFT_NORM,
        dc_pixel=(n // 2, n // 2), noise="poisson" if noise_rng is not None else None,
        object_shape=obj.shape, probe_diameter=diam, step=step, overlap=overlap_from_step(step, diam),
        n_positions=xcoords.size, simulate_seconds=round(time.perf_counter() - started, 3),
        probe_checksum=probe_checksum(stored_probe), **imp.record_facts(), **facts)
    return PtychoData(diffraction=diffraction, xcoords=xcoords, ycoords=ycoords, probe=stored_probe,
                      object=obj, scan_index=np.zeros(xcoords.size, dtype=np.int64),
                      metadata=record.as_dict(), mask=mask, probe_truth=probe_truth,
                      xcoords_truth=x_true if imp.moves_positions else None,
                      ycoords_truth=y_true if imp.moves_positions else None)
