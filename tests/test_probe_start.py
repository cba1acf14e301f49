"""Probe starts read from the scan's mean diffraction pattern (physics.probes.probe_from_patterns,
refine.probe_start) and the reconstruct option that uses them: real forward model, real data."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.refine import PreparedScan, RefineSettings
from ptycho_nb.refine.probe_start import choose_probe_start, probe_candidates, refine_from_probe_start
from ptycho_nb.physics.probes import gaussian_guess, gaussian_probe, probe_diameter, probe_from_patterns

catalog = importlib.import_module("ptycho_nb.model.catalog")  # the packaged default
pytestmark = pytest.mark.usefixtures("one_thread")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.vdot(a, b)) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def zp_scan():
    """A zone-plate beam (annular pupil, defocused): a Gaussian guess shares almost nothing with it."""
    return ptycho_nb.simulate(N=32, object_kind="siemens", object_shape=(120, 120), n_positions=150,
                              probe_kind="zone_plate", photons_per_pattern=1e6, overlap=0.73, seed=4)


def _prepared(scan) -> PreparedScan:
    return PreparedScan.build(scan.diffraction, scan.xcoords, scan.ycoords, scan.N, scan.object.shape)


def test_one_mean_pattern_start_is_the_beam_and_the_gaussian_guess_is_not(zp_scan):
    guess = gaussian_guess(zp_scan.probe)
    plus, minus = probe_from_patterns(zp_scan.diffraction, guess)
    # (At N = 32 the beam fills its window and wraps, so neither start matches it closely.)
    best = max(_corr(zp_scan.probe, plus), _corr(zp_scan.probe, minus))
    assert _corr(zp_scan.probe, guess) < 0.05 and best > 0.3
    for p in (plus, minus):  # the guess's power and (about) its size
        assert np.sum(np.abs(p) ** 2) == pytest.approx(np.sum(np.abs(guess) ** 2), rel=1e-4)
        assert probe_diameter(p) == pytest.approx(probe_diameter(guess), rel=0.1)


def test_the_data_choose_the_start_and_the_choice_fits_and_scores_better(zp_scan):
    guess = gaussian_guess(zp_scan.probe)
    scan = _prepared(zp_scan)
    cands = probe_candidates("auto", guess, scan)
    assert set(cands) == {"given", "patterns+", "patterns-"}
    flat = np.ones_like(zp_scan.object)
    start = choose_probe_start(scan, flat, cands, 1.0, RefineSettings.of(batch_size=16, refine_probe=True),
                               trial_epochs=6)
    assert start.name != "given"
    assert start.deviance[start.name] == min(start.deviance.values())
    assert start.deviance[start.name] < 0.85 * start.deviance["given"]
    # The whole run: the chosen trial's epochs, then the continuation's, as one result.
    kw = dict(max_epochs=20, batch_size=16, tol=0.0, refine_probe=True)
    res, chosen = refine_from_probe_start(scan, flat, guess, 1.0, RefineSettings.of(probe_init="auto", **kw),
                                          trial_epochs=6)
    assert chosen is not None and chosen.name == start.name
    assert len(res.deviance) == res.epochs_run + 1 and res.epochs_run > 6
    assert _corr(zp_scan.probe, res.probe.numpy()) > 0.9
    given, none = refine_from_probe_start(scan, flat, guess, 1.0, RefineSettings.of(probe_init="given", **kw))
    assert none is None and given.deviance[-1] > 2 * res.deviance[-1]


def test_reconstruct_reports_the_start_and_beats_the_given_guess(zp_scan, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    rough = dataclasses.replace(zp_scan, probe=gaussian_guess(zp_scan.probe))
    kw = dict(refine_probe=True, refine_epochs=30, refine_batch_size=16)
    auto = ptycho_nb.reconstruct(rough, **kw)
    given = ptycho_nb.reconstruct(rough, refine_probe_init="given", **kw)
    assert auto.run.refinement.probe_init in ("patterns+", "patterns-")
    assert given.run.refinement.probe_init == "given"
    assert auto.run.refinement.loss[-1] < 0.5 * given.run.refinement.loss[-1]
    ssim = lambda r: r.compare(remove_ramp=True)["phase_ssim"]  # noqa: E731 (a ramp is a blind-ptychography ambiguity)
    assert ssim(auto) > ssim(given) + 0.2
    plain = ptycho_nb.reconstruct(rough, refine_epochs=2, refine_probe=False)
    assert plain.run.refinement.probe_init == ""


def test_clear_errors():
    p = gaussian_probe(16, sigma=3.0)
    with pytest.raises(ValueError, match="diffraction"):
        probe_from_patterns(np.ones((16, 16)), p)
    with pytest.raises(ValueError, match="like"):
        probe_from_patterns(np.ones((4, 8, 8)), p)
    with pytest.raises(ValueError, match="diffraction.*mean pattern"):
        probe_from_patterns(np.full((4, 16, 16), np.nan), p)
    ones = PreparedScan.build(np.ones((4, 16, 16)), np.full(4, 8.0), np.full(4, 8.0), 16, (16, 16))
    with pytest.raises(ValueError, match="refine_probe_init"):
        probe_candidates("mean", p, ones)
    with pytest.raises(ValueError, match="refine_probe_init"):
        ptycho_nb.config.InferenceConfig(refine_probe_init="mean")
    # incoherent modes: no mean-pattern start, the given modes only
    modes = np.stack([p, p * 0.5])
    assert list(probe_candidates("auto", modes, ones)) == ["given"]


def test_the_trials_report_progress_and_a_stop_during_them_ends_the_run(zp_scan):
    """The callback sees every trial epoch under its stage name, then the run's epochs counted on
    from the chosen trial's; asking to stop during a trial ends the trials and the run there."""
    guess = gaussian_guess(zp_scan.probe)
    flat = np.ones_like(zp_scan.object)
    args = (_prepared(zp_scan), flat, guess, 1.0, RefineSettings.of(max_epochs=12, batch_size=16, tol=0.0,
                                                                        refine_probe=True))
    seen = []
    res, start = refine_from_probe_start(*args, trial_epochs=3,
                                         callback=lambda p: seen.append((p.stage, p.epoch, p.max_epochs)))
    stages = [s for s, _, _ in seen if s]
    assert stages == [f"probe start {k}/3 ({n})" for k, n in
                      enumerate(("given", "patterns+", "patterns-"), 1) for _ in range(3)]
    assert [(e, m) for s, e, m in seen if s][:3] == [(1, 3), (2, 3), (3, 3)]
    run = [(e, m) for s, e, m in seen if not s]
    assert run == [(e, 12) for e in range(4, 13)] and res.epochs_run == 12
    # Stop at the second trial's second epoch: no third trial, no continuation.
    calls = []

    def stop_soon(p):
        calls.append(p.stage)
        return p.stage.startswith("probe start 2/") and p.epoch == 2

    res2, start2 = refine_from_probe_start(*args, trial_epochs=3, callback=stop_soon)
    assert start2.stopped and res2.stopped == "callback"
    assert list(start2.deviance) == ["given", "patterns+"] and len(calls) == 5
    assert res2.epochs_run <= 3


def test_gaussian_guess_has_the_probes_power_and_about_its_size(zp_scan):
    g = gaussian_guess(zp_scan.probe)
    assert g.dtype == np.complex64 and g.shape == zp_scan.probe.shape
    assert np.sum(np.abs(g) ** 2) == pytest.approx(np.sum(np.abs(zp_scan.probe) ** 2), rel=1e-5)
    assert probe_diameter(g) == pytest.approx(probe_diameter(zp_scan.probe) / np.sqrt(2), rel=0.05)
    assert np.allclose(np.angle(g[np.abs(g) > 1e-3 * np.abs(g).max()]), 0)  # flat phase
    with pytest.raises(ValueError, match="probe: expected a square"):
        gaussian_guess(np.ones((2, 16, 16), np.complex64))


def test_a_log_shows_each_probe_start_trial_then_the_runs_epochs(zp_scan, monkeypatch, capsys):
    """reconstruct with refine_probe writing to a log (not a terminal): one line per trial, then
    the run's lines with epochs counted from the chosen trial's; the RefineView too."""
    from ptycho_nb.notebook import RefineView

    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    rough = dataclasses.replace(zp_scan, probe=gaussian_guess(zp_scan.probe))
    view = RefineView(every=100)
    rec = ptycho_nb.reconstruct(rough, refine_probe=True, refine_epochs=20, refine_tolerance=0.0,
                                refine_batch_size=16, enable_progress_bar=True, refine_callback=view)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("refinement")]
    assert [ln.split(":")[0] for ln in lines[:3]] == [
        "refinement, probe start 1/3 (given)", "refinement, probe start 2/3 (patterns+)",
        "refinement, probe start 3/3 (patterns-)"]
    assert all("after 8 epochs" in ln for ln in lines[:3])
    # then the run's (the cap leaves no epoch for a trial of more probe modes)
    assert [ln.split(":")[0] for ln in lines[3:]] == ["refinement epoch 10/20", "refinement epoch 20/20"]
    assert rec.run.refinement.epochs_run == 20 and view.epochs == list(range(9, 21))
    assert view.image.value[:4] == b"\x89PNG"  # drawn at the end of each trial and the run's first epoch
