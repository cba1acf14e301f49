"""simulate(): container validity, photon scaling, Poisson statistics, reproducibility, plotting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ptycho_nb import PtychoData
from ptycho_nb.physics import forward_from_object, simulate
from ptycho_nb.plots import plot_dataset

SMALL = dict(N=32, n_positions=40, step=6.0)


def test_returns_valid_ptychodata_with_metadata():
    d = simulate(**SMALL)
    assert isinstance(d, PtychoData)
    assert d.diffraction.shape == (40, 32, 32) and d.diffraction.dtype == np.float32
    assert d.probe.shape == (32, 32) and d.object is not None
    md = d.metadata
    json.dumps(md)
    assert md["fft_norm"] == "ortho" and md["dc_pixel"] == [16, 16]
    assert md["diffraction"] == "amplitude" and md["noise"] == "poisson"
    assert md["photons_per_pattern"] == 1e6 and md["intensity_scale"] > 0
    assert md["overlap"] == pytest.approx(1 - 6.0 / md["probe_diameter"])
    # stored probe carries the photon scale
    assert np.sum(np.abs(d.probe) ** 2) == pytest.approx(md["intensity_scale"], rel=1e-4)


def test_noise_free_reproduces_forward_model():
    d = simulate(noise=None, photons_per_pattern=1e4, object_kind="grf", **SMALL)
    pred = forward_from_object(torch.from_numpy(d.probe), torch.from_numpy(d.object),
                               torch.from_numpy(d.xcoords), torch.from_numpy(d.ycoords)).numpy()
    np.testing.assert_allclose(pred, d.diffraction, rtol=2e-5, atol=1e-4 * d.diffraction.max())
    # mean total counts per pattern is exactly the requested photons
    assert d.intensities.sum(axis=(1, 2)).mean() == pytest.approx(1e4, rel=1e-5)


def test_poisson_statistics():
    kw = dict(object_kind="lines", seed=3, photons_per_pattern=2e3, **SMALL)
    noisy, clean = simulate(**kw), simulate(noise=None, **kw)
    counts = noisy.intensities.astype(np.float64)
    assert np.allclose(counts, np.round(counts), atol=1e-3)  # integer counts
    lam = clean.intensities.astype(np.float64)
    # mean total counts ≈ photons (sd of the mean over 40 patterns of ~2e3 counts ≈ 7)
    assert counts.sum(axis=(1, 2)).mean() == pytest.approx(2e3, abs=40)
    # variance ≈ mean: standardised residuals have unit variance where lam is large enough
    m = lam > 20
    z = (counts[m] - lam[m]) / np.sqrt(lam[m])
    assert abs(z.mean()) < 0.1 and 0.85 < z.var() < 1.15


def test_seed_reproducibility():
    a, b, c = simulate(seed=5, **SMALL), simulate(seed=5, **SMALL), simulate(seed=6, **SMALL)
    assert np.array_equal(a.diffraction, b.diffraction) and np.array_equal(a.xcoords, b.xcoords)
    assert not np.array_equal(a.diffraction, c.diffraction)


def test_scan_options_and_auto_shape():
    d = simulate(N=32, grid=(4, 5), step=7.0, probe_kind="gaussian", object_kind="siemens")
    assert d.n_patterns == 20 and d.metadata["scan"] == "raster"
    d = simulate(N=32, overlap=0.6, n_positions=12, scan="random", object_shape=(80, 90))
    assert d.object.shape == (80, 90) and d.n_patterns == 12
    assert d.metadata["overlap"] == pytest.approx(0.6)


@pytest.mark.parametrize("kw,match", [({"photons_per_pattern": -1.0}, "photons_per_pattern"),
                                      ({"N": 31}, "N"), ({"noise": "gaussian"}, "noise"),
                                      ({"object_kind": "moon"}, "kind"), ({"probe_kind": "moon"}, "kind"),
                                      ({"scan": "zigzag"}, "scan"),
                                      ({"step": 5.0, "overlap": 0.5}, "step/overlap")])
def test_bad_args(kw, match):
    base = dict(N=32, n_positions=10)
    with pytest.raises(ValueError, match=match):
        simulate(**{**base, **kw})


def test_plot_dataset_writes_png(tmp_path):
    d = simulate(**SMALL)
    path = tmp_path / "ds.png"
    fig = plot_dataset(d, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) >= 5
    d.object = None
    fig = plot_dataset(d)  # no ground truth: probe + pattern only
    assert len(fig.axes) >= 3
