"""ptycho_nb.diagnostics: residuals, the noise floor and the split-half resolution, on real
simulated scans (N=32, the scan's own probe, one thread).

The numbers the thresholds rest on (measured when the tests were written; seed 1, 200 spiral
positions 4 px apart on a 96×96 'image' object, 1e6 photons/pattern): the converged flat-start
reconstruction's deviance / floor 0.958 (max |z| 3.3 over the 1024 detector pixels), the true
object and probe 1.003 (0.999–1.032 over seeds and doses 1e6–1e2), a flat object 425, a
Gaussian probe 238, the probe rolled by 2 px 80; a dead pixel z = −303 and a pixel counting 30 %
too many z = +17 (relative excess 0.25); split-half phase ½-bit 0.44 cycles/px at 1e4
photons, 0.15 at 1e2, past Nyquist at 1e6.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy.special import gammaln, xlogy

import ptycho_nb
from ptycho_nb import diagnostics as D
from ptycho_nb.physics.forward import extract_patches
from ptycho_nb.refine import poisson_deviance

pytestmark = pytest.mark.usefixtures("one_thread")

SCAN = dict(N=32, object_kind="image", object_shape=(96, 96), step=4, n_positions=200)
DEAD, HOT = (12, 20), (22, 9)


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=1, photons_per_pattern=1e6, **SCAN)


@pytest.fixture(scope="module")
def rec(scan):
    # pad_eval: the frame holds every full patch, so the object itself predicts the counts
    return ptycho_nb.reconstruct(scan, pad_eval=True)


@pytest.fixture(scope="module")
def res(rec, scan):
    return D.residuals(rec, scan)


def _with_object(rec, obj, probe=None, offset=None):
    """``rec`` with another object (and probe) over the frame at ``offset`` (default rec's),
    its patches cut from that object."""
    offset = rec.offset if offset is None else offset
    x, y = rec.xcoords - offset[1], rec.ycoords - offset[0]
    patches = extract_patches(torch.from_numpy(obj), torch.from_numpy(x), torch.from_numpy(y), 32)
    return dataclasses.replace(rec, object=obj, patches=patches.numpy(), offset=tuple(offset),
                               weight=np.ones(obj.shape, np.float32),
                               probe=rec.probe if probe is None else probe)


def _truth(rec, scan):
    # the whole true object: every full patch lies in it (a reconstruction's frame need not hold them)
    return _with_object(rec, scan.object.copy(), scan.probe, offset=(0, 0))


# --------------------------------------------------------------------------- the noise floor


def _exact_floor(lam: float) -> float:
    k = np.arange(int(lam + 50 * math.sqrt(lam) + 80))
    pmf = np.exp(xlogy(k, lam) - lam - gammaln(k + 1.0))
    return float(np.sum(pmf * xlogy(k, k)) - xlogy(lam, lam))


@pytest.mark.parametrize("lam", [1e-13, 1e-6, 0.01, 0.3, 1.0, 1.3, 7.0, 60.0, 199.0, 201.0, 5e3])
def test_the_noise_floor_is_the_exact_poisson_expectation(lam):
    assert D.expected_deviance(lam) == pytest.approx(_exact_floor(lam), abs=1e-5, rel=1e-5)


def test_the_noise_floor_is_the_package_half_deviance_not_the_large_count_limit():
    f = D.expected_deviance([0.0, 1.0, 1e6])
    assert f[0] == 0.0 and f[1] == pytest.approx(0.5734, abs=1e-4) and f[2] == pytest.approx(0.5)
    # the package's deviance has no factor 2: a Monte Carlo mean of it is the floor
    rng = np.random.default_rng(0)
    lam = np.exp(rng.uniform(np.log(0.01), np.log(1e3), 200_000))
    k = rng.poisson(lam).astype(np.float64)
    d = float(poisson_deviance(torch.from_numpy(lam), torch.from_numpy(k)))
    assert d / D.expected_deviance(lam).sum() == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="lam"):
        D.expected_deviance([-1.0])


# --------------------------------------------------------------------------- deviance / floor


@pytest.mark.parametrize("photons", [1e6, 1e2])
def test_the_true_object_and_probe_explain_the_data_to_the_noise(rec, photons):
    scan = ptycho_nb.simulate(seed=1, photons_per_pattern=photons, **SCAN)
    out = D.residuals(_truth(rec, scan), scan, scale=1.0)
    assert out.overall == pytest.approx(1.0, abs=0.05)
    assert np.nanmax(np.abs(out.residual_z)) < 4.5  # 1024 pixels of N(0, 1): about 3.3


def test_incoherent_probe_modes_add_in_intensity(rec):
    scan1 = ptycho_nb.simulate(seed=1, **SCAN)
    second = np.roll(scan1.probe, 3, axis=0) * 0.6  # a weaker, displaced second mode
    scan2 = ptycho_nb.simulate(seed=1, probe=np.stack([scan1.probe, second]), **SCAN)
    both = _truth(rec, scan2)
    assert both.probe.shape == (2, 32, 32)
    assert D.residuals(both, scan2, scale=1.0).overall == pytest.approx(1.0, abs=0.05)
    first = dataclasses.replace(both, probe=both.probe[0])
    assert D.residuals(first, scan2).overall > 5  # one mode alone misses the other's power


def test_a_converged_reconstruction_sits_at_the_noise_floor(res, rec):
    assert rec.run.refinement.stopped == "plateau"
    assert 0.8 < res.overall < 1.3
    assert 0.8 < np.median(res.ratio) < 1.3
    assert res.scale == pytest.approx(1.0, abs=1e-3)  # the scan's own probe is in counts
    # the lit frame need not hold every full patch: the reconstruction's own patches are read
    assert res.source in ("object", "patches")
    assert np.nanmax(np.abs(res.residual_z)) < 4.5
    assert np.all(res.pixels == 32 * 32)
    assert res.predicted.sum() == pytest.approx(res.counts.sum(), rel=1e-9)  # the fitted scale


def test_a_wrong_object_or_probe_is_far_above_the_floor(rec, scan, res):
    lit = rec.weight > 0.1 * rec.weight.max()
    flat = np.full_like(scan.object, np.abs(rec.object[lit]).mean())
    assert D.residuals(_with_object(rec, flat, offset=(0, 0)), scan).overall > 50
    gaussian = ptycho_nb.simulate(seed=1, probe_kind="gaussian", **SCAN).probe
    assert D.residuals(dataclasses.replace(rec, probe=gaussian), scan).overall > 20
    rolled = np.roll(rec.probe, 2, axis=-1)
    assert D.residuals(dataclasses.replace(rec, probe=rolled), scan).overall > 10
    # a given scale that is wrong is a misfit too; the fitted one recovers it
    assert D.residuals(rec, scan, scale=2.0).overall > 50


def test_a_probe_in_other_units_gets_its_scale_fitted(rec, scan, res):
    # a model's probe is in its own units (the reconstruction does not record the scale)
    out = D.residuals(dataclasses.replace(rec, probe=3.0 * rec.probe), scan)
    assert out.scale == pytest.approx(res.scale / 9.0, rel=1e-6)
    assert out.overall == pytest.approx(res.overall, rel=1e-6)


def test_the_deviance_is_the_refinements(rec, scan, res):
    lam = D.predicted_counts(rec, scale=res.scale)
    k = np.square(scan.diffraction.astype(np.float64))
    total = float(poisson_deviance(torch.from_numpy(lam), torch.from_numpy(k)))
    assert np.sum(res.deviance * res.pixels) == pytest.approx(total, rel=1e-9)
    # per pixel, the residuals square to twice the deviance (the signed deviance residual)
    r = D.normalised_residuals(k[:3], lam[:3], "deviance")
    assert np.sum(r ** 2) / 2 == pytest.approx(np.sum(res.deviance[:3] * 1024), rel=1e-9)
    pearson = D.normalised_residuals(k[:3], lam[:3])
    assert np.allclose(pearson, (k[:3] - lam[:3]) / np.sqrt(lam[:3]))


def test_the_object_and_its_patches_predict_the_same_counts(rec, scan, res):
    assert D.residuals(rec, scan, source="patches").overall == pytest.approx(res.overall, rel=1e-6)
    truth = _truth(rec, scan)  # a frame that holds every full patch
    lam_o = D.predicted_counts(truth, [0, 5], source="object")
    lam_p = D.predicted_counts(truth, [0, 5], source="patches")
    assert lam_o.shape == (2, 32, 32) and np.allclose(lam_o, lam_p, rtol=1e-4, atol=1e-3)
    # the frame of the positions' bounding box does not hold the edge patches: their patches do
    cropped = ptycho_nb.reconstruct(scan, pad_eval=False)
    out = D.residuals(cropped, scan)
    assert out.source == "patches" and out.overall == pytest.approx(res.overall, rel=1e-6)
    with pytest.raises(ValueError, match="source='object'.*pad_eval=True"):
        D.residuals(cropped, scan, source="object")
    # a network's patches are not the refined object's: a cropped frame cannot be judged
    assert D.patches_are_the_objects(cropped)
    rng = np.random.default_rng(0)
    network = dataclasses.replace(cropped, patches=cropped.patches * np.exp(
        0.1j * rng.standard_normal(cropped.patches.shape)).astype(np.complex64))
    assert not D.patches_are_the_objects(network)
    with pytest.raises(ValueError, match="source='auto'.*not its object's.*pad_eval=True"):
        D.residuals(network, scan)
    assert D.residuals(network, scan, source="patches").overall > 1.3  # judged as they are


def test_a_models_reconstruction_is_judged_by_its_refined_object(scan, tmp_path):
    trained = ptycho_nb.train(scan, output_dir=tmp_path, nepochs=1, batch_size=8,
                              n_filters_scale=1, enable_progress_bar=False)
    rec = ptycho_nb.infer(trained, scan, pad_eval=True)
    assert rec.run.refinement.probe_source == "model"  # lit by the model's probe, in its units
    out = D.residuals(rec, scan)
    assert 0.8 < out.overall < 1.3  # measured 0.967
    # the fitted scale is the model's intensity scale, which the Reconstruction does not keep
    assert out.scale == pytest.approx(float(trained.module.intensity_scale.detach()), rel=1e-3)
    # its patches are the refined object's (not the network's), so any frame can be judged
    box = D.residuals(ptycho_nb.infer(trained, scan), scan)
    assert box.source == "patches" and box.overall == pytest.approx(out.overall, rel=1e-3)
    # the network alone: its own patches, and a poor fit
    alone = ptycho_nb.infer(trained, scan, refine_epochs=0)
    assert D.residuals(alone, scan, source="patches").overall > 10


# --------------------------------------------------------------------------- detector defects


@pytest.fixture(scope="module")
def defective(scan):
    amp = scan.diffraction.copy()
    amp[:, DEAD[0], DEAD[1]] = 0.0  # a dead pixel
    amp[:, HOT[0], HOT[1]] *= math.sqrt(1.3)  # a pixel that counts 30 % too many
    bad = dataclasses.replace(scan, diffraction=amp)
    return bad, ptycho_nb.reconstruct(bad, pad_eval=True)


def test_a_corrupted_detector_pixel_shows_in_the_residual_map(defective):
    bad, rec = defective
    out = D.residuals(rec, bad)
    z = np.nan_to_num(out.residual_z)
    assert np.unravel_index(np.argmax(np.abs(z)), z.shape) == DEAD
    assert out.residual_z[DEAD] < -50 and out.residual_map[DEAD] == pytest.approx(-1.0)
    assert out.residual_z[HOT] > 8 and 0.1 < out.residual_map[HOT] < 0.4
    assert out.overall > 1.3  # the defects cost the whole scan its fit
    rep = D.report(out)
    assert rep.worst_pixel == DEAD and rep.worst_pixel_z < -50


def test_masked_pixels_are_left_out(defective):
    bad, rec = defective
    mask = np.zeros((32, 32), dtype=bool)
    mask[DEAD] = mask[HOT] = True
    out = D.residuals(rec, bad, mask=mask)
    assert np.isnan(out.residual_z[DEAD]) and np.isnan(out.residual_map[HOT])
    assert np.all(out.pixels == 32 * 32 - 2)
    assert 0.8 < out.overall < 1.3
    # per pattern: masking one pattern's every pixel leaves that pattern out
    per = np.zeros((bad.n_patterns, 32, 32), dtype=bool)
    per[:, DEAD[0], DEAD[1]] = per[:, HOT[0], HOT[1]] = True
    per[7] = True
    out7 = D.residuals(rec, bad, mask=per)
    assert out7.pixels[7] == 0 and np.isnan(out7.ratio[7])
    assert out7.overall == pytest.approx(out.overall, abs=0.01)
    assert D.report(out7).n_patterns == bad.n_patterns


# --------------------------------------------------------------------------- split-half


@pytest.fixture(scope="module")
def halves():
    out = {}
    for photons in (1e4, 1e2):
        scan = ptycho_nb.simulate(seed=1, photons_per_pattern=photons, **SCAN)
        scan.metadata["pixel_size_m"] = 10e-9
        out[photons] = (scan, D.split_half(scan))
    return out


def test_the_split_half_resolution_is_finer_at_high_dose(halves):
    hi, lo = halves[1e4][1], halves[1e2][1]
    f_hi = 0.5 if math.isnan(hi.phase_half_bit) else hi.phase_half_bit
    assert f_hi > lo.phase_half_bit + 0.1 and 0.05 < lo.phase_half_bit < 0.35
    assert lo.phase_one_seventh >= lo.phase_half_bit - 0.05  # 1/7 lies near ½-bit at high frequencies
    assert lo.resolution_m() == pytest.approx(10e-9 / (2 * lo.phase_half_bit))
    assert lo.resolution_m(0.5) == pytest.approx(10e-9)  # Nyquist: one pixel
    assert 0.45 < lo.frequencies[-1] <= 0.5  # rings 1/min(h, w) wide, up to Nyquist
    assert lo.phase_frc.shape == lo.amplitude_frc.shape == lo.half_bit.shape == lo.frequencies.shape
    # the halves are the even and the odd patterns, each on its own frame in scan coordinates
    scan = halves[1e2][0]
    a, b = lo.halves
    assert np.array_equal(a.xcoords, scan.xcoords[0::2]) and np.array_equal(b.xcoords, scan.xcoords[1::2])
    assert lo.lit.sum() > 1000


def test_a_half_is_diagnosed_against_the_whole_scan(halves):
    scan, split = halves[1e2]
    out = D.residuals(split.halves[1], scan)
    assert np.array_equal(out.indices, np.arange(1, scan.n_patterns, 2))
    rep = D.report(out, split)
    assert rep.phase_half_bit == split.phase_half_bit
    assert rep.resolution_m == pytest.approx(split.resolution_m())


def test_the_pixel_size_comes_from_the_metadata(scan):
    def with_meta(**meta):
        return dataclasses.replace(scan, metadata=meta)

    assert D.pixel_size_of(with_meta(pixel_size_m=5e-9)) == 5e-9
    assert D.pixel_size_of(with_meta(pixel_width_m=4e-9, pixel_height_m=4e-9)) == 4e-9
    assert D.pixel_size_of(with_meta(pixel_width_m=4e-9, pixel_height_m=5e-9)) is None  # not square
    assert D.pixel_size_of(with_meta()) is None and D.pixel_size_of(with_meta(pixel_size_m="?")) is None


def test_compare_halves_of_one_reconstruction_agree_to_nyquist(rec):
    same = D.compare_halves(rec, rec)
    assert np.allclose(same.phase_frc[1:], 1.0) and math.isnan(same.phase_half_bit)
    assert same.resolution_m() is None  # no pixel size given


# --------------------------------------------------------------------------- report, figure, method


def test_the_report_is_a_frozen_record_of_the_numbers(res, rec, scan, halves):
    rep = D.report(res)
    assert isinstance(rep, D.DiagnosticsReport) and rep.ratio == res.overall
    assert rep.phase_half_bit is None and rep.resolution_m is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.ratio = 1.0
    assert len(rep.worst_patterns) == 5 and rep.worst_patterns[0] == int(np.nanargmax(res.ratio))
    json.dumps(rep.as_dict())
    assert "deviance / noise floor" in str(rep)
    split = halves[1e2][1]
    text = str(D.report(res, split))
    assert "split-half phase FRC" in text and "nm half-period" in text
    # the Reconstruction's method delegates
    assert rec.diagnose(scan) == rep


def test_the_figure_shows_residuals_ratio_and_frc(res, halves, tmp_path):
    fig = D.plot_diagnostics(res, show=False)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and "residual" in titles[0] and "noise floor" in titles[1]
    path = tmp_path / "diagnostics.png"
    fig = D.plot_diagnostics(res, halves[1e2][1], path, show=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[-1] == "split-half FRC" and path.stat().st_size > 1000
    frc_ax = next(ax for ax in fig.axes if ax.get_title() == "split-half FRC")
    assert {"½-bit threshold", "1/7"} <= {t.get_text() for t in frc_ax.get_legend().get_texts()}


# --------------------------------------------------------------------------- errors


def test_mismatched_scan_and_reconstruction_are_clear_errors(rec, scan, res):
    other_n = ptycho_nb.simulate(seed=1, N=16, object_shape=(48, 48), n_positions=10)
    with pytest.raises(ValueError, match=r"scan: its patterns are 16x16 .* 32x32"):
        D.residuals(rec, other_n)
    with pytest.raises(ValueError, match=r"scan: the reconstruction's pattern 1 .* not a position"):
        D.residuals(rec, scan.subset(np.arange(0, scan.n_patterns, 2)))
    with pytest.raises(ValueError, match="scan: expected a PtychoData"):
        D.residuals(rec, scan.diffraction)
    with pytest.raises(ValueError, match="recon: expected a Reconstruction"):
        D.residuals(scan, scan)
    with pytest.raises(ValueError, match=r"mask: expected shape \(32, 32\) or \(200, 32, 32\)"):
        D.residuals(rec, scan, mask=np.zeros((31, 32), dtype=bool))
    with pytest.raises(ValueError, match="mask: expected a bool array"):
        D.residuals(rec, scan, mask=np.zeros((32, 32)))
    with pytest.raises(ValueError, match="mask: excludes every pixel"):
        D.residuals(rec, scan, mask=np.ones((32, 32), dtype=bool), scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        D.residuals(rec, scan, scale=-1.0)
    with pytest.raises(ValueError, match="source"):
        D.residuals(rec, scan, source="network")
    with pytest.raises(ValueError, match="patterns"):
        D.predicted_counts(rec, [200])
    with pytest.raises(ValueError, match="kind"):
        D.normalised_residuals([1.0], [1.0], "gaussian")
    with pytest.raises(ValueError, match="residuals: expected a Residuals"):
        D.report(rec)
    with pytest.raises(ValueError, match="split: expected a SplitHalf"):
        D.plot_diagnostics(res, rec, show=False)
    with pytest.raises(ValueError, match="scan: 3 patterns"):
        D.split_half(scan.subset(np.arange(3)))
    far = dataclasses.replace(rec, offset=(rec.offset[0] + 500, rec.offset[1]))
    with pytest.raises(ValueError, match="a/b: their frames"):
        D.compare_halves(rec, far)
    with pytest.raises(ValueError, match="b: expected a Reconstruction"):
        D.compare_halves(rec, scan)
