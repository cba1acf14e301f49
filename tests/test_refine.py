"""The physics refinement (ptycho_nb.refine): real forward model, real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.metrics import compare
from ptycho_nb.refine import RefineProgress, poisson_deviance, refine
from ptycho_nb.physics.forward import forward_from_object
from ptycho_nb.physics.probes import gaussian_guess

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(N=32, object_kind="lines", object_shape=(96, 96), n_positions=60,
                              photons_per_pattern=1e6, seed=3)


def _phase_ssim(obj, scan) -> float:
    obj = obj.numpy() if torch.is_tensor(obj) else obj
    return compare(obj, scan.object, offset=(0, 0), xcoords=scan.xcoords, ycoords=scan.ycoords,
                   probe=scan.probe)["phase_ssim"]


def _deviance(obj, probe, scan) -> float:
    amp = forward_from_object(torch.as_tensor(probe), torch.as_tensor(obj),
                              torch.from_numpy(scan.xcoords), torch.from_numpy(scan.ycoords))
    return float(poisson_deviance(amp.double() ** 2, torch.from_numpy(scan.diffraction).double() ** 2))


def test_flat_start_converges_and_stops_on_a_plateau(scan):
    flat = np.ones_like(scan.object)
    seen: list[RefineProgress] = []
    res = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, 1.0,
                 max_epochs=300, batch_size=16, tol=1e-2,
                 callback=lambda pr: seen.append(pr) and False)
    assert res.stopped == "plateau" and res.epochs_run < 300
    assert len(res.deviance) == res.epochs_run + 1 and res.deviance[-1] < 0.1 * res.deviance[0]
    assert [pr.epoch for pr in seen] == list(range(1, res.epochs_run + 1))
    # the lit region rides along for live views: the scan's illuminated mask, some of the frame
    from ptycho_nb.metrics import illuminated_mask
    lit = illuminated_mask(flat.shape, scan.xcoords, scan.ycoords, scan.probe)
    assert seen[0].lit is seen[-1].lit and np.array_equal(seen[0].lit, lit)
    assert 0.2 < lit.mean() < 0.95
    assert res.batch_schedule[0] == (0, 16) and res.batch_schedule[-1][1] == 60  # grew to the scan
    q = _phase_ssim(res.object, scan)
    assert q > 0.9 and q > _phase_ssim(flat, scan) + 0.4, q
    assert res.object.dtype == torch.complex64 and res.object.shape == flat.shape


def test_momentum_and_batch_growth_beat_plain_updates_at_equal_epochs(scan):
    flat = np.ones_like(scan.object)
    kw = dict(max_epochs=12, tol=0.0, patience=100, batch_size=16)
    plain = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, momentum=0.0, **kw)
    fast = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, momentum=0.85, **kw)
    assert fast.deviance[-1] < plain.deviance[-1]
    assert _phase_ssim(fast.object, scan) > _phase_ssim(plain.object, scan)


def test_probe_refinement_from_a_rough_guess_fits_better(scan):
    guess = gaussian_guess(scan.probe)
    flat = np.ones_like(scan.object)
    kw = dict(max_epochs=40, batch_size=16)
    fixed = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, guess, **kw)
    moved = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, guess, refine_probe=True, **kw)
    assert not torch.equal(moved.probe, torch.from_numpy(guess))
    assert torch.equal(fixed.probe, torch.from_numpy(guess))
    assert _deviance(moved.object, moved.probe, scan) < 0.5 * _deviance(fixed.object, fixed.probe, scan)


def test_holdout_returns_its_best_epoch(scan):
    res = refine(np.ones_like(scan.object), scan.diffraction, scan.xcoords, scan.ycoords, scan.probe,
                 max_epochs=30, batch_size=16, holdout=0.2, patience=2)
    assert len(res.holdout_deviance) == res.epochs_run + 1
    assert res.holdout_deviance[res.best_epoch] == min(res.holdout_deviance)
    assert res.stopped in ("holdout", "plateau", "max_epochs")


def test_gaussian_and_adam_run_and_lower_the_deviance(scan):
    for kw in (dict(noise="gaussian"), dict(method="adam", step=0.05)):
        res = refine(np.ones_like(scan.object), scan.diffraction, scan.xcoords, scan.ycoords,
                     scan.probe, max_epochs=3, batch_size=16, **kw)
        assert res.deviance[-1] < res.deviance[0], kw


@pytest.mark.parametrize("kw,match", [
    (dict(method="lbfgs"), "method"), (dict(noise="gauss"), "noise"), (dict(step=0.0), "step"),
    (dict(step=float("inf")), "step"), (dict(momentum=1.0), "momentum"), (dict(holdout=0.5), "holdout"),
    (dict(batch_size=0), "batch_size"), (dict(max_epochs=-1), "max_epochs"), (dict(patience=0), "patience"),
    (dict(noise="gaussian", poisson_step="exact"), "poisson_step"),
])
def test_bad_options_name_the_option(scan, kw, match):
    with pytest.raises(ValueError, match=match):
        refine(np.ones_like(scan.object), scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, **kw)


def test_bad_inputs_name_the_input(scan):
    flat = np.ones_like(scan.object)
    args = (scan.diffraction, scan.xcoords, scan.ycoords, scan.probe)
    with pytest.raises(ValueError, match="obj"):
        refine(np.full_like(flat, np.nan), *args)
    with pytest.raises(ValueError, match="diffraction"):
        refine(flat, scan.diffraction[:, :16], *args[1:])
    with pytest.raises(ValueError, match="xcoords"):
        refine(flat, scan.diffraction, scan.xcoords[:-1], scan.ycoords, scan.probe)
    with pytest.raises(ValueError, match="intensity_scale"):
        refine(flat, *args, intensity_scale=float("nan"))
    with pytest.raises(ValueError, match="diffraction"):
        refine(flat, -scan.diffraction, *args[1:])


def test_joint_steps_recover_the_steps_that_made_the_change():
    # A wanted exit-wave change built from known steps along ΔO and ΔP is explained by them.
    from ptycho_nb.refine import MAX_JOINT_STEP, joint_steps

    g = torch.Generator().manual_seed(0)

    def c(*shape):
        return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))

    probe, patches, d_patches, d_probe = c(8, 8), c(5, 8, 8), c(5, 8, 8), c(8, 8)
    d_psi = 0.7 * probe * d_patches + 1.3 * d_probe * patches
    steps = lambda *a: tuple(float(s) for s in joint_steps(*a))  # noqa: E731 (0-d tensors on the device)
    a_o, a_p = steps(probe, patches, d_patches, d_probe, d_psi)
    assert a_o == pytest.approx(0.7, rel=1e-5) and a_p == pytest.approx(1.3, rel=1e-5)
    # bounded, and a degenerate system falls back to full steps
    a_o, a_p = steps(probe, patches, d_patches, d_probe, 50 * d_psi)
    assert (a_o, a_p) == (MAX_JOINT_STEP, MAX_JOINT_STEP)
    assert steps(probe, patches, torch.zeros_like(d_patches), d_probe, d_psi) == (1.0, 1.0)
    # incoherent modes (K, N, N): the same pair
    modes, d_modes = c(2, 8, 8), c(2, 8, 8)
    d_psi = 0.4 * modes[None] * d_patches[:, None] + 0.9 * d_modes[None] * patches[:, None]
    a_o, a_p = steps(modes, patches, d_patches, d_modes, d_psi)
    assert a_o == pytest.approx(0.4, rel=1e-5) and a_p == pytest.approx(0.9, rel=1e-5)


def test_momentum_defaults_by_mode_and_an_explicit_value_is_kept():
    from ptycho_nb.config import InferenceConfig, PyTorchExecutionConfig
    from ptycho_nb.refine import RefineSettings

    def momentum(**kw):  # a scan whose record says its probe is exact: the object alone by default
        return RefineSettings.from_configs(InferenceConfig(**kw), PyTorchExecutionConfig(),
                                           scan_probe_exact=True).momentum

    assert momentum() == 0.85
    assert momentum(refine_probe=True) == 0.0
    assert momentum(refine_probe=True, refine_momentum=0.5) == 0.5
    assert momentum(refine_momentum=0.0) == 0.0


def test_run_reports_the_momentum_it_ran_with(scan):
    rec = ptycho_nb.reconstruct(scan, refine_epochs=3, refine_probe=True, enable_progress_bar=False)
    assert rec.run.refinement.momentum == 0.0 and rec.run.refinement.probe
    rec = ptycho_nb.reconstruct(scan, refine_epochs=3, enable_progress_bar=False)
    assert rec.run.refinement.momentum == 0.85


@pytest.fixture(scope="module")
def dim_scan():
    """Few counts per pattern under a zone-plate probe: where the two Poisson steps part."""
    return ptycho_nb.simulate(N=32, object_kind="siemens", object_shape=(96, 96), n_positions=60,
                              probe_kind="zone_plate", photons_per_pattern=1e3, seed=4)


def test_fisher_scoring_reaches_the_maximum_likelihood_and_newton_stalls_short(dim_scan):
    """The Fisher-scoring step's fixed point is the maximum-likelihood object: it ends at (or
    below: it fits some noise) the true object's deviance; the per-pixel Newton factor's
    weights move its fixed point, so it stops well above it."""
    s = dim_scan
    flat = np.full_like(s.object, np.sqrt(np.mean(np.sum(s.diffraction.astype(np.float64) ** 2, axis=(1, 2)))
                                          / np.sum(np.abs(s.probe) ** 2)))
    truth = _deviance(s.object, s.probe, s)
    kw = dict(max_epochs=150, batch_size=16, momentum=0.85)
    fisher = refine(flat, s.diffraction, s.xcoords, s.ycoords, s.probe, poisson_step="fisher", **kw)
    newton = refine(flat, s.diffraction, s.xcoords, s.ycoords, s.probe, poisson_step="newton", **kw)
    assert fisher.step_rule == "fisher" and newton.step_rule == "newton"
    d_f = _deviance(fisher.object, s.probe, s)
    d_n = _deviance(newton.object, s.probe, s)
    assert d_f < truth < d_n and d_n > 1.2 * d_f, (d_f, truth, d_n)
    assert _phase_ssim(fisher.object, s) > _phase_ssim(newton.object, s)


def test_poisson_step_auto_is_fisher_alone_and_newton_with_the_probe(scan):
    from ptycho_nb.refine import poisson_step_for

    assert poisson_step_for("auto", False) == "fisher" and poisson_step_for("auto", True) == "newton"
    assert poisson_step_for("newton", False) == "newton"
    with pytest.raises(ValueError, match="poisson_step"):
        poisson_step_for("bogus", False)
    rec = ptycho_nb.reconstruct(scan, refine_epochs=2, enable_progress_bar=False)
    assert rec.run.refinement.step_rule == "fisher"
    rec = ptycho_nb.reconstruct(scan, refine_epochs=3, refine_probe=True, refine_noise_model="poisson",
                                enable_progress_bar=False)
    assert rec.run.refinement.step_rule == "newton"
    rec = ptycho_nb.reconstruct(scan, refine_epochs=2, refine_poisson_step="newton",
                                refine_noise_model="gaussian", enable_progress_bar=False)
    assert rec.run.refinement.step_rule == "gaussian"


def test_noise_model_auto_is_poisson_alone_and_gaussian_with_the_probe(scan):
    from ptycho_nb.refine import noise_model_for

    assert noise_model_for("auto", False) == "poisson" and noise_model_for("auto", True) == "gaussian"
    assert noise_model_for("poisson", True) == "poisson"
    with pytest.raises(ValueError, match="noise"):
        noise_model_for("laplace", True)
    rec = ptycho_nb.reconstruct(scan, refine_epochs=3, refine_probe=True, enable_progress_bar=False)
    assert rec.run.refinement.step_rule == "gaussian"
    rec = ptycho_nb.reconstruct(scan, refine_epochs=2, enable_progress_bar=False)
    assert rec.run.refinement.step_rule == "fisher"
