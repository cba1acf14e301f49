"""The shared scan assembly: the object-shape fit and assemble_scan (measure → record → PtychoData)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ptycho_nb.physics import make_object, make_probe, make_scan, probe_diameter
from ptycho_nb.physics.assemble import assemble_scan, fit_object_shape


@pytest.mark.parametrize("scan", ["raster", "spiral", "random"])
@pytest.mark.parametrize("step", [2.5, 6.0, 11.3])
@pytest.mark.parametrize("n", [1, 7, 50, 300])
def test_fitted_shape_holds_the_scan(scan, step, n):
    shape = fit_object_shape(scan, 32, step, n)
    x, y = make_scan(scan, shape, 32, step=step, n_positions=n)  # raises when n do not fit
    assert x.size == n and shape[0] == shape[1] >= 32


def test_fitted_grid_is_exact():
    shape = fit_object_shape("raster", 16, 5.0, grid=(3, 4))
    assert shape == (10 + 16 + 2, 15 + 16 + 2)
    x, y = make_scan("raster", shape, 16, step=5.0)
    assert x.size == 12
    with pytest.raises(ValueError, match="n_positions"):
        fit_object_shape("spiral", 16, 5.0)


def _parts(N=16, n=9, step=4.0):
    probe = make_probe("gaussian", N)
    shape = fit_object_shape("spiral", N, step, n)
    obj = make_object("grf", shape, seed=0)
    x, y = make_scan("spiral", shape, N, step=step, n_positions=n)
    facts = dict(source="ptycho_nb.physics.simulate", seed=0, object_kind="grf",
                 amplitude_range=(0.5, 1.0), phase_range=(-1.0, 1.0), probe_kind="gaussian",
                 scan="spiral", jitter=0.0)
    return probe, obj, x, y, facts


def test_assembly_measures_what_it_records():
    probe, obj, x, y, facts = _parts()
    d = assemble_scan(probe, obj, x, y, photons_per_pattern=1e4, noise_rng=None, step=4.0,
                      started=time.perf_counter(), **facts)
    rec = d.record
    assert rec.noise is None and rec.n_positions == 9 == d.n_patterns
    assert rec.object_shape == obj.shape and rec.dc_pixel == (8, 8)
    assert rec.probe_diameter == probe_diameter(probe)
    assert rec.overlap == pytest.approx(1 - 4.0 / rec.probe_diameter)
    assert d.intensities.sum(axis=(1, 2)).mean() == pytest.approx(1e4, rel=1e-5)
    assert np.sum(np.abs(d.probe) ** 2) == pytest.approx(rec.intensity_scale, rel=1e-5)
    noisy = assemble_scan(probe, obj, x, y, photons_per_pattern=1e4, noise_rng=np.random.default_rng(0),
                          step=4.0, started=time.perf_counter(), **facts)
    assert noisy.record.noise == "poisson"
    counts = noisy.intensities.astype(np.float64)
    assert np.allclose(counts, np.round(counts), atol=1e-2)


def test_a_bad_fact_is_named():
    probe, obj, x, y, facts = _parts()
    with pytest.raises(ValueError, match=r"SimulatedScan\.phase_range"):
        assemble_scan(probe, obj, x, y, photons_per_pattern=1e4, noise_rng=None, step=4.0,
                      started=time.perf_counter(), **{**facts, "phase_range": (0.0,)})
