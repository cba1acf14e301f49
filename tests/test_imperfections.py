"""Realistic simulated scans: probe modes, position errors, detector defects, their truth and record.

Real physics throughout: the patterns are checked against the forward model at the true
positions with the true modes, never against a mock.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ptycho_nb import load, save
from ptycho_nb.data import SimulatedScan
from ptycho_nb.physics import forward_from_object, gaussian_probe, make_probe, simulate
from ptycho_nb.physics.imperfections import (Imperfections, coherent_modes, default_mode_powers,
                                             detector_mask, gap_lines)
from ptycho_nb.physics.varied import VariedSpec, draw_scan

SMALL = dict(N=32, n_positions=30, step=6.0, seed=4)


def forward(probe: np.ndarray, obj: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return forward_from_object(torch.from_numpy(probe), torch.from_numpy(obj), torch.from_numpy(x),
                               torch.from_numpy(y)).double().numpy()


def gram(modes: np.ndarray) -> np.ndarray:
    m = modes.astype(np.complex128).reshape(modes.shape[0], -1)
    return m.conj() @ m.T


# ------------------------------------------------------------------ the settings
@pytest.mark.parametrize("kw,match", [
    (dict(probe_modes=0), "probe_modes: expected an int from 1 to 16"),
    (dict(probe_modes=2.0), "probe_modes: expected an int"),
    (dict(probe_modes=3, mode_powers=(0.5, 0.5)), "mode_powers: expected 3 positive"),
    (dict(probe_modes=2, mode_powers=(0.3, 0.7)), "mode_powers: expected .*non-increasing"),
    (dict(probe_modes=2, mode_powers=(0.6, 0.6)), "mode_powers: expected .*summing to 1"),
    (dict(probe_modes=2, mode_powers=(1.0, 0.0)), "mode_powers: expected 2 positive"),
    (dict(probe_modes=2, mode_powers="ab"), "mode_powers: expected"),
    (dict(store_probe_modes=1), "store_probe_modes: expected True or False"),
    (dict(position_error=-1.0), r"position_error: expected a number in \[0, 64\]"),
    (dict(position_error=float("nan")), "position_error: expected a number"),
    (dict(position_drift=1e3), r"position_drift: expected a number in \[0, 256\]"),
    (dict(gap_rows=(3, 3)), "gap_rows: expected a sequence of distinct pixel indices"),
    (dict(gap_columns=(-1,)), "gap_columns: expected a sequence of distinct pixel indices"),
    (dict(dead_pixel_fraction=0.7), r"dead_pixel_fraction: expected a number in \[0, 0.5\]"),
])
def test_bad_settings_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        Imperfections(**kw)


def test_settings_defaults_and_round_trip():
    assert Imperfections(probe_modes=3).mode_powers == (0.72, 0.19, 0.09)
    assert default_mode_powers(1) == (1.0,)
    assert sum(default_mode_powers(2)) == pytest.approx(1) and default_mode_powers(2)[0] > 0.7
    imp = Imperfections(probe_modes=2, mode_powers=[0.8, 0.2], position_error=1.0, gap_rows=[9, 8])
    assert imp.gap_rows == (8, 9) and imp.mode_powers == (0.8, 0.2)
    assert Imperfections.from_dict(json.loads(json.dumps(imp.to_dict()))) == imp
    with pytest.raises(ValueError, match=r"Imperfections: .*unexpected keyword argument 'jitter'; the fields"):
        Imperfections.from_dict({"jitter": 1})
    assert not Imperfections().moves_positions and Imperfections().probe_exact
    assert not Imperfections(probe_modes=2).probe_exact
    assert Imperfections(probe_modes=2, store_probe_modes=True).probe_exact
    assert Imperfections(position_error=1.5, position_drift=2.0).position_margin == 8


def test_gap_lines():
    assert gap_lines(None, 64) == ((), ()) and gap_lines(0, 64) == ((), ())
    assert gap_lines(2, 64) == ((40, 41), (40, 41))
    assert gap_lines({"rows": [10, 11]}, 64) == ((10, 11), ())
    with pytest.raises(ValueError, match="detector_gaps: expected None, an int width from 0 to N/4 = 16"):
        gap_lines(17, 64)
    with pytest.raises(ValueError, match="detector_gaps: expected a mapping with keys 'rows'"):
        gap_lines({"row": [1]}, 64)
    with pytest.raises(ValueError, match="gap_rows: expected pixel indices below the pattern size N = 32"):
        simulate(**SMALL, detector_gaps={"rows": [32]})


# ------------------------------------------------------------------ partial coherence
@pytest.mark.parametrize("kind", ["disc", "defocused_pupil", "zone_plate", "gaussian"])
def test_modes_orthogonal_with_their_powers(kind):
    p = make_probe(kind, 32)
    powers = default_mode_powers(5)
    modes = coherent_modes(p, powers)
    g = gram(modes)
    np.testing.assert_allclose(np.diag(g).real, powers, rtol=1e-5)
    assert np.abs(g - np.diag(np.diag(g))).max() < 1e-6
    np.testing.assert_allclose(modes[0] / np.sqrt(powers[0]), p, atol=1e-6)  # mode 0 is the probe


def test_modes_of_a_gaussian_beam_are_hermite_gauss():
    p = gaussian_probe(64, sigma=6.0)
    modes = coherent_modes(p, (0.6, 0.3, 0.1))
    yy, xx = np.mgrid[:64, :64] - 32.0
    # HG_10 ∝ x·G, HG_01 ∝ y·G: the Gram–Schmidt step changes nothing but the scale
    for mode, coord in ((modes[1], xx), (modes[2], yy)):
        hg = coord * p
        hg = hg / np.linalg.norm(hg) * np.linalg.norm(mode)
        assert np.abs(np.vdot(hg, mode)) == pytest.approx(np.linalg.norm(mode) ** 2, rel=1e-4)


@pytest.fixture(scope="module")
def modal():
    kw = dict(SMALL, noise=None, photons_per_pattern=1e5)
    return simulate(**kw, probe_modes=3), simulate(**kw, probe_modes=3, store_probe_modes=True), simulate(**kw)


def test_partially_coherent_scan(modal):
    d, stored_all, ideal = modal
    truth = d.probe_truth
    assert truth.shape == (3, 32, 32) and d.probe.shape == (32, 32)
    power = np.sum(np.abs(truth.astype(np.complex128)) ** 2, axis=(1, 2))
    np.testing.assert_allclose(power / power.sum(), (0.72, 0.19, 0.09), rtol=1e-5)
    g = gram(truth)
    assert np.abs(g - np.diag(np.diag(g))).max() < 1e-6 * power.sum()
    # the stored probe is the main probe with the whole power: the ideal scan's probe, at this
    # scan's photon scale (the modes see the object's transmission a little differently)
    s, s_ideal = d.record.intensity_scale, ideal.record.intensity_scale
    want = ideal.probe * np.sqrt(s / s_ideal)
    np.testing.assert_allclose(d.probe, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert np.sum(np.abs(d.probe) ** 2) == pytest.approx(power.sum(), rel=1e-5)
    assert power.sum() == pytest.approx(s, rel=1e-5)
    np.testing.assert_allclose(truth[0] / np.sqrt(0.72), d.probe, atol=1e-5 * np.abs(d.probe).max())
    # the measured intensity is the incoherent sum over the modes, not the stored probe's
    pred = forward(truth, d.object, d.xcoords, d.ycoords)
    np.testing.assert_allclose(d.diffraction, pred, rtol=2e-5, atol=1e-4 * pred.max())
    single = forward(d.probe, d.object, d.xcoords, d.ycoords)
    assert np.abs(single - d.diffraction).max() > 0.01 * pred.max()
    rec = d.record
    assert rec.probe_modes == 3 and rec.mode_powers == (0.72, 0.19, 0.09) and rec.probe_exact is False
    assert stored_all.probe.shape == (3, 32, 32) and stored_all.record.probe_exact is True
    np.testing.assert_array_equal(stored_all.probe, stored_all.probe_truth)
    np.testing.assert_array_equal(stored_all.diffraction, d.diffraction)
    assert ideal.probe_truth is None and ideal.record.probe_exact is True


def test_modes_need_a_single_main_probe():
    with pytest.raises(ValueError, match=r"probe: expected the \(N, N\) main probe to make 2 modes"):
        simulate(**SMALL, probe=np.ones((2, 32, 32)), probe_modes=2)


# ------------------------------------------------------------------ position errors
def test_patterns_measured_at_the_true_positions_stored_at_the_nominal():
    kw = dict(N=32, n_positions=400, step=4.0, seed=1, noise=None)
    d, ideal = simulate(**kw, position_error=1.5), simulate(**kw)
    margin = 6  # ceil(4·1.5)
    assert d.object.shape == (ideal.object.shape[0] + 2 * margin, ideal.object.shape[1] + 2 * margin)
    np.testing.assert_array_equal(d.xcoords, ideal.xcoords + margin)  # the nominal scan, moved in
    np.testing.assert_array_equal(d.ycoords, ideal.ycoords + margin)
    dx, dy = d.xcoords - d.xcoords_truth, d.ycoords - d.ycoords_truth
    rms = np.sqrt(np.mean((dx ** 2 + dy ** 2) / 2))
    assert rms == pytest.approx(1.5, rel=0.08)  # 800 draws: the rms is within ~3 %
    assert abs(dx.mean()) < 0.25 and abs(dy.mean()) < 0.25
    at_truth = forward(d.probe, d.object, d.xcoords_truth, d.ycoords_truth)
    np.testing.assert_allclose(d.diffraction, at_truth, rtol=2e-5, atol=1e-4 * at_truth.max())
    at_nominal = forward(d.probe, d.object, d.xcoords, d.ycoords)
    assert np.abs(at_nominal - d.diffraction).max() > 0.05 * at_truth.max()
    assert d.record.position_error == 1.5 and d.record.probe_exact
    assert ideal.xcoords_truth is None and ideal.ycoords_truth is None


def test_slow_drift_grows_linearly_to_its_size():
    d = simulate(**SMALL, position_drift=5.0)
    shift = np.hypot(d.xcoords_truth - d.xcoords, d.ycoords_truth - d.ycoords)
    np.testing.assert_allclose(shift, 5.0 * np.arange(30) / 29, atol=1e-9)
    direction = np.arctan2(d.ycoords_truth - d.ycoords, d.xcoords_truth - d.xcoords)[1:]
    assert np.ptp(direction) < 1e-9  # one direction for the whole scan
    assert d.record.position_drift == 5.0


def test_given_object_shape_keeps_true_positions_inside():
    d = simulate(**SMALL, object_shape=(80, 80), position_error=3.0)
    assert d.object.shape == (80, 80)
    for c in (d.xcoords_truth, d.ycoords_truth):
        assert c.min() >= 16 and c.max() <= 80 - 16


# ------------------------------------------------------------------ detector defects
def test_gaps_and_dead_pixels_read_zero_and_are_masked():
    N = 64
    kw = dict(N=N, n_positions=20, step=8.0, seed=2)
    d, ideal = simulate(**kw, detector_gaps=2, dead_pixel_fraction=0.004), simulate(**kw)
    assert d.mask.shape == (N, N) and d.mask.dtype == bool
    assert d.mask[40:42, :].all() and d.mask[:, 40:42].all()
    dead = d.mask.copy()
    dead[40:42, :] = dead[:, 40:42] = False
    assert 0 < dead.sum() <= round(0.004 * N * N) == 16  # a dead pixel may fall in a gap
    assert np.all(d.diffraction[:, d.mask] == 0)
    # everything else is the ideal scan, photon for photon (same noise stream)
    np.testing.assert_array_equal(d.diffraction[:, ~d.mask], ideal.diffraction[:, ~d.mask])
    rec = d.record
    assert rec.gap_rows == (40, 41) and rec.gap_columns == (40, 41) and rec.dead_pixel_fraction == 0.004
    assert ideal.mask is None


def test_detector_mask_streams():
    imp = Imperfections(dead_pixel_fraction=0.01)
    a = detector_mask(32, imp, np.random.SeedSequence(5))
    b = detector_mask(32, imp, np.random.SeedSequence(5))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 10 and detector_mask(32, Imperfections(), np.random.SeedSequence(5)) is None


# ------------------------------------------------------------------ off means ideal, the record, files
def test_options_off_give_the_ideal_scan_exactly():
    a = simulate(**SMALL)
    b = simulate(**SMALL, probe_modes=1, position_error=0.0, position_drift=0.0, detector_gaps=None,
                 dead_pixel_fraction=0.0, store_probe_modes=True)
    for f in ("diffraction", "xcoords", "ycoords", "probe", "object"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    meta = lambda d: {k: v for k, v in d.metadata.items() if k != "simulate_seconds"}  # noqa: E731
    assert meta(a) == meta(b)
    assert not {"probe_modes", "probe_exact", "position_error", "gap_rows"} & set(a.metadata)


@pytest.fixture(scope="module")
def realistic():
    return simulate(**SMALL, probe_modes=2, position_error=0.7, position_drift=1.0,
                    detector_gaps={"rows": [3]}, dead_pixel_fraction=0.01)


def test_record_of_a_realistic_scan(realistic):
    rec = realistic.record
    assert (rec.probe_modes, rec.probe_exact, rec.position_error, rec.position_drift) == (2, False, 0.7, 1.0)
    assert rec.gap_rows == (3,) and rec.gap_columns == () and rec.dead_pixel_fraction == 0.01
    assert rec.mode_powers == pytest.approx(default_mode_powers(2))
    assert SimulatedScan.from_metadata(json.loads(json.dumps(rec.as_dict()))) == rec
    assert rec.as_dict() == realistic.metadata


@pytest.mark.parametrize("key,value,match", [
    ("mode_powers", [0.5, 0.5, 0.0], "mode_powers: expected a non-increasing list of positive"),
    ("mode_powers", [1.0], r"mode_powers: expected one fraction per probe mode \(probe_modes = 2\)"),
    ("probe_exact", 1, "probe_exact: expected True or False"),
    ("probe_modes", 0, "probe_modes: expected an int >= 1"),
    ("position_error", -0.5, "position_error: expected a finite number >= 0"),
    ("gap_rows", [-1], "gap_rows: expected a list of ints >= 0"),
    ("dead_pixel_fraction", "none", "dead_pixel_fraction: expected a finite number >= 0"),
])
def test_record_checks_the_new_fields(realistic, key, value, match):
    with pytest.raises(ValueError, match=rf"SimulatedScan\.{match}"):
        SimulatedScan.from_metadata({**realistic.metadata, key: value})


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_realistic_scan_survives_save_and_load(realistic, suffix, tmp_path):
    back = load(save(realistic, tmp_path / f"scan{suffix}"))
    assert back.record == realistic.record
    for f in ("diffraction", "mask", "probe", "probe_truth", "xcoords", "xcoords_truth", "ycoords_truth"):
        np.testing.assert_array_equal(getattr(back, f), getattr(realistic, f), err_msg=f)


# ------------------------------------------------------------------ the varied sampler
def test_varied_scans_with_imperfections():
    imp = Imperfections(probe_modes=3, position_error=1.0, gap_columns=(20,), dead_pixel_fraction=0.01)
    base = dict(N=32, n_positions=(20, 30))
    d, ideal = draw_scan(VariedSpec(**base, imperfections=imp), 3), draw_scan(VariedSpec(**base), 3)
    assert d.probe_truth.shape == (3, 32, 32) and d.mask[:, 20].all() and d.xcoords_truth is not None
    np.testing.assert_array_equal(d.xcoords, ideal.xcoords + imp.position_margin)
    rec = d.record
    assert rec.probe_modes == 3 and not rec.probe_exact and rec.gap_columns == (20,)
    spec = VariedSpec(**base, imperfections=imp.to_dict())
    assert spec.imperfections == imp
    assert VariedSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert "imperfections" not in VariedSpec(**base).to_dict()  # ideal specs' dicts unchanged
    with pytest.raises(ValueError, match="VariedSpec.imperfections: gap_columns: expected pixel indices below"):
        VariedSpec(N=16, imperfections={"gap_columns": [20]})
    with pytest.raises(ValueError, match=r"VariedSpec.imperfections: Imperfections: .*'modes'"):
        VariedSpec(imperfections={"modes": 2})
    with pytest.raises(ValueError, match="VariedSpec.imperfections: expected an Imperfections"):
        VariedSpec(imperfections=3)
