"""Probes, objects and scans: shapes, normalisation, ranges, validation."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_nb.physics import (OBJECT_KINDS, PROBE_KINDS, disc_probe, gaussian_probe, make_object,
                               make_probe, make_scan,
                               overlap_from_step, probe_diameter, random_scan, raster_scan,
                               spiral_scan, step_from_overlap)


@pytest.mark.parametrize("kind", sorted(PROBE_KINDS))
def test_probes_normalised_centred_and_decaying(kind):
    p = make_probe(kind, 64)
    assert p.shape == (64, 64) and p.dtype == np.complex64
    assert np.sum(np.abs(p) ** 2) == pytest.approx(1.0, rel=1e-5)
    a = np.abs(p)
    edge = max(a[0].max(), a[-1].max(), a[:, 0].max(), a[:, -1].max())
    assert edge < 1e-2 * a.max()  # ~0 at the window edge
    # fills roughly a third to half of the window
    assert 0.3 * 64 <= probe_diameter(p) <= 0.55 * 64
    # centred on (N//2, N//2): intensity centroid within a pixel
    yy, xx = np.mgrid[:64, :64]
    w = a ** 2
    assert abs((w * yy).sum() - 32) < 1 and abs((w * xx).sum() - 32) < 1


def test_disc_probe_has_structure():
    p = make_probe("disc", 64)
    # defocus curvature: phase is not flat across the illuminated region
    mask = np.abs(p) > 0.3 * np.abs(p).max()
    assert np.ptp(np.angle(p[mask] * np.conj(p[32, 32]))) > 0.5
    assert make_probe("disc", 32).shape == (32, 32)


def test_probe_diameter_of_flat_disc():
    yy, xx = np.mgrid[:64, :64] - 32
    disc = (np.hypot(yy, xx) <= 12).astype(complex)
    assert probe_diameter(disc) == pytest.approx(24, rel=0.05)


def _twin(o: np.ndarray) -> np.ndarray:
    """conj(O(−r)) about the centre pixel N//2."""
    return np.conj(np.roll(o[::-1, ::-1], 1, axis=(0, 1)))


def test_twin_distance_zero_exactly_when_a_pattern_cannot_tell_the_twin():
    """A flat centro-symmetric probe gives O and its twin conj(O(−r)) the same far-field
    amplitudes through the package's forward model; a curvature phase tells them apart, and
    twin_distance says which case a probe is."""
    import torch

    from ptycho_nb.physics import forward_amplitude, twin_distance

    obj = make_object("lines", (64, 64), seed=1, phase_range=(-1.0, 1.0))
    flat = disc_probe(64, radius=15, curvature=0.0, lam_z=0.0)
    curved = disc_probe(64, radius=15, curvature=2.0 / 15 ** 2, lam_z=0.0)  # 2 rad at the edge

    def amps(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pt = torch.as_tensor(p)
        a = forward_amplitude(pt, torch.as_tensor(obj[None].astype(np.complex64)))
        b = forward_amplitude(pt, torch.as_tensor(_twin(obj)[None].astype(np.complex64)))
        return a.numpy(), b.numpy()

    a, b = amps(flat)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * a.max())
    a, b = amps(curved)
    assert np.abs(a - b).max() > 0.05 * a.max()
    assert twin_distance(flat) < 1e-3
    assert twin_distance(gaussian_probe(64, sigma=8.0)) < 1e-3
    assert twin_distance(curved) > 0.5
    # blind to the global phase, and a probe's modes weigh by their power
    assert twin_distance(curved * np.exp(1j * 0.7)) == pytest.approx(twin_distance(curved), abs=1e-6)
    modes = np.stack([flat * np.sqrt(0.75), curved * np.sqrt(0.25)])
    assert twin_distance(modes) == pytest.approx(0.25 * twin_distance(curved), rel=1e-3)
    with pytest.raises(ValueError, match="probe: expected an .N, N. or .K, N, N. array"):
        twin_distance(np.ones((4, 6), np.complex64))
    with pytest.raises(ValueError, match="probe: expected a finite, non-zero"):
        twin_distance(np.zeros((8, 8), np.complex64))


@pytest.mark.parametrize("kw,match", [({"kind": "nope"}, "kind"), ({"N": 63}, "N"),
                                      ({"kind": "gaussian", "sigma": -1}, "sigma"),
                                      ({"kind": "disc", "radius": 40}, "radius"),
                                      ({"kind": "disc", "bogus": 1}, "bogus")])
def test_probe_bad_args(kw, match):
    kw = {"kind": "disc", "N": 64, **kw}
    with pytest.raises(ValueError, match=match):
        make_probe(kw.pop("kind"), kw.pop("N"), **kw)


@pytest.mark.parametrize("kind", sorted(OBJECT_KINDS))
def test_objects_in_range(kind):
    o = make_object(kind, (40, 56), amplitude_range=(0.3, 0.9), phase_range=(-1.0, 0.5), seed=3)
    assert o.shape == (40, 56) and o.dtype == np.complex64
    a, ph = np.abs(o), np.angle(o)
    tol = 1e-5
    assert a.min() >= 0.3 - tol and a.max() <= 0.9 + tol
    assert ph.min() >= -1.0 - tol and ph.max() <= 0.5 + tol
    # ranges are used (normalised maps span [0, 1])
    assert a.max() - a.min() > 0.5 and ph.max() - ph.min() > 1.0
    # amplitude and phase are not the same map
    assert abs(np.corrcoef(a.ravel(), ph.ravel())[0, 1]) < 0.95


def test_objects_seeded_and_images_bundled():
    assert np.array_equal(make_object("grf", (32, 32), seed=1), make_object("grf", (32, 32), seed=1))
    assert not np.array_equal(make_object("grf", (32, 32), seed=1), make_object("grf", (32, 32), seed=2))
    o = make_object("image", (30, 70), amplitude="terrain", phase="hopper")
    assert o.shape == (30, 70)


@pytest.mark.parametrize("kw,match", [({"kind": "nope"}, "kind"),
                                      ({"amplitude_range": (0.9, 0.1)}, "amplitude_range"),
                                      ({"phase_range": (1.0, -1.0)}, "phase_range"),
                                      ({"shape": (2, 40)}, "shape"),
                                      ({"kind": "grf", "correlation_length": 0}, "correlation_length"),
                                      ({"kind": "image", "amplitude": "moon"}, "name")])
def test_object_bad_args(kw, match):
    kw = {"kind": "grf", "shape": (20, 20), **kw}
    with pytest.raises(ValueError, match=match):
        make_object(kw.pop("kind"), kw.pop("shape"), **kw)


@pytest.mark.parametrize("kind", ["raster", "spiral", "random"])
def test_scans_inside_valid_range(kind):
    shape, n = (150, 200), 32
    x, y = make_scan(kind, shape, n, step=9.0, jitter=2.0, seed=4)
    assert x.dtype == np.float64 and x.shape == y.shape and x.size > 50
    assert x.min() >= n / 2 and x.max() <= shape[1] - n / 2
    assert y.min() >= n / 2 and y.max() <= shape[0] - n / 2


def test_scan_spacing_and_overlap_relation():
    x, y = raster_scan((100, 100), 20, step=10.0)
    assert np.allclose(np.diff(np.unique(x)), 10.0) and np.unique(y).size == 9
    # spiral: nearest-neighbour distance ≈ step
    xs, ys = spiral_scan((200, 200), 20, step=10.0)
    d = np.hypot(xs[:, None] - xs[None], ys[:, None] - ys[None]) + np.eye(xs.size) * 1e9
    assert 0.7 * 10 < np.median(d.min(1)) < 1.3 * 10
    assert step_from_overlap(0.75, 40.0) == pytest.approx(10.0)
    assert overlap_from_step(10.0, 40.0) == pytest.approx(0.75)
    a = make_scan("raster", (100, 100), 20, overlap=0.5, probe_diameter=20.0)
    b = raster_scan((100, 100), 20, step=10.0)
    assert np.array_equal(a[0], b[0])
    x, _ = make_scan("spiral", (200, 200), 20, step=10.0, n_positions=37)
    assert x.size == 37
    x, _ = random_scan((100, 100), 20, n_positions=11, seed=0)
    assert x.size == 11


@pytest.mark.parametrize("kw,match", [({"kind": "zigzag"}, "kind"), ({"step": -1.0}, "step"),
                                      ({"overlap": 1.2, "step": None}, "overlap"),
                                      ({"N": 15}, "N"), ({"object_shape": (10, 100)}, "object_shape"),
                                      ({"jitter": -1.0}, "jitter"),
                                      ({"n_positions": 10 ** 6}, "n_positions"),
                                      ({"overlap": 0.5}, "step/overlap")])
def test_scan_bad_args(kw, match):
    kw = {"kind": "raster", "object_shape": (100, 100), "N": 16, "step": 5.0, **kw}
    with pytest.raises(ValueError, match=match):
        make_scan(kw.pop("kind"), kw.pop("object_shape"), kw.pop("N"), **kw)


def test_scattering_strength_measures_the_object_not_the_noise():
    """An empty object scores ~0 at any dose (the photon noise is removed), a strong one well
    above, the same at 10³ and 10⁶ photons; a weak phase scores far below a strong one."""
    from ptycho_nb.physics import scattering_strength, simulate

    def median(**kw):
        s = simulate(N=32, object_shape=(96, 96), n_positions=40, seed=3, **kw)
        v = scattering_strength(s.diffraction, s.probe)
        assert v.shape == (40,) and np.all(np.isfinite(v))
        return float(np.median(v))

    empty = dict(object_kind="lines", phase_range=(0.0, 0.0), amplitude_range=(1.0, 1.0))
    assert abs(median(photons_per_pattern=1e3, **empty)) < 0.01
    assert abs(median(photons_per_pattern=1e6, **empty)) < 1e-3
    strong = dict(object_kind="siemens", probe_kind="zone_plate", phase_range=(-1.2, 1.2))
    hi, lo = median(photons_per_pattern=1e6, **strong), median(photons_per_pattern=1e3, **strong)
    assert hi > 0.2 and lo == pytest.approx(hi, rel=0.15)
    weak = median(photons_per_pattern=1e6, object_kind="siemens", probe_kind="zone_plate",
                  phase_range=(-0.05, 0.05), amplitude_range=(1.0, 1.0))
    assert 0 < weak < 0.05 * hi
    # a probe's modes count together: two modes that sum to the probe's far field
    s = simulate(N=32, object_shape=(96, 96), n_positions=8, seed=3, **empty)
    two = np.stack([s.probe * np.sqrt(0.5), s.probe * np.sqrt(0.5)])
    np.testing.assert_allclose(scattering_strength(s.diffraction, two),
                               scattering_strength(s.diffraction, s.probe), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="probe: expected .N, N. or .K, N, N. with N = 32"):
        scattering_strength(s.diffraction, np.ones((16, 16), np.complex64))
    with pytest.raises(ValueError, match="diffraction: expected an .M, N, N. array"):
        scattering_strength(s.diffraction[0], s.probe)


def test_varied_phase_span_sets_the_scattering_strength():
    """The generator's phase span sets how much its scans scatter (README, "Models that
    generalise"): the same draws with a larger span move the whole distribution up."""
    from ptycho_nb.physics import VariedSpec, iter_scans, scattering_strength

    def medians(spec):
        return np.array([np.median(scattering_strength(s.diffraction, s.probe))
                         for s in iter_scans(spec, np.random.SeedSequence([0, 5]), 12)])

    base = medians(VariedSpec(N=32, n_positions=(16, 24)))
    strong = medians(VariedSpec(N=32, n_positions=(16, 24), phase_span=(1.0, np.pi)))
    assert np.all(np.isfinite(base)) and np.median(strong) > 1.5 * np.median(base)


def test_pattern_estimate_fits_each_pattern_and_finds_part_of_the_object():
    """Per-pattern ePIE with the known probe: 0 steps is the flat start; more steps fit each
    pattern better and the estimate explains part of the true patch's variation (alone, with no
    overlap); modes and per-pattern probes are accepted; bad input names the argument."""
    import torch

    from ptycho_nb.model.lightning_module import scaling_statistics
    from ptycho_nb.physics import extract_patches, simulate
    from ptycho_nb.physics.forward import far_field
    from ptycho_nb.physics.single_pattern import inverse_far_field, pattern_estimate

    x = torch.randn(2, 16, 16, dtype=torch.complex64)
    torch.testing.assert_close(inverse_far_field(far_field(x)), x, atol=1e-5, rtol=1e-5)
    s = simulate(N=32, object_shape=(96, 96), n_positions=30, seed=3, object_kind="dead_leaves",
                 probe_kind="disc", photons_per_pattern=1e9)
    scale = scaling_statistics(s)["intensity_scale"]
    amp = torch.from_numpy(np.asarray(s.diffraction, np.float32))
    probe = torch.from_numpy(s.probe)
    truth = extract_patches(torch.from_numpy(s.object), torch.as_tensor(s.xcoords, dtype=torch.float32),
                            torch.as_tensor(s.ycoords, dtype=torch.float32), 32)
    w = torch.from_numpy(np.abs(s.probe) ** 2)
    w = w / w.max()

    def misfit(e):
        model = torch.sqrt(torch.as_tensor(scale)) * far_field(probe * e).abs()
        return float(((model - amp) ** 2).mean() / (amp ** 2).mean())

    def unexplained(e):  # after the best complex scale, as a fraction of the truth's variation
        pt = (w * e * truth.conj()).sum((-2, -1)).abs() ** 2 / (w * e.abs() ** 2).sum((-2, -1))
        tt = (w * truth.abs() ** 2).sum((-2, -1))
        var = tt - w.sum() * ((w * truth).sum((-2, -1)) / w.sum()).abs() ** 2
        return float(((tt - pt) / var).mean())

    flat = pattern_estimate(amp, probe, 0, scale=scale, start=0.5)
    assert flat.shape == (30, 32, 32) and flat.dtype == torch.complex64
    torch.testing.assert_close(flat, torch.full_like(flat, 0.5))
    e2, e20 = (pattern_estimate(amp, probe, k, scale=scale, start=0.5) for k in (2, 20))
    assert misfit(e20) < 0.5 * misfit(e2) < 0.5 * misfit(flat)
    assert unexplained(e20) < 0.8
    # two modes that add up to the probe, and one probe per pattern, give the same estimate
    two = torch.stack([probe, probe]) * np.sqrt(0.5)
    torch.testing.assert_close(pattern_estimate(amp, two, 20, scale=scale, start=0.5), e20,
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pattern_estimate(amp, probe.expand(30, 1, 32, 32), 20, scale=scale, start=0.5),
                               e20, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="steps: expected a non-negative int"):
        pattern_estimate(amp, probe, -1)
    with pytest.raises(ValueError, match="probe: expected"):
        pattern_estimate(amp, probe[:16, :16], 1)
    with pytest.raises(ValueError, match="amplitude: expected real"):
        pattern_estimate(amp[0], probe, 1)
