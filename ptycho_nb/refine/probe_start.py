"""The probe a joint object+probe refinement starts from, chosen by the scan's own data.

A rough probe guess (a Gaussian of about the right size) is enough when the real beam looks
like it, and fails outright when it does not: from a Gaussian guess neither our refinement nor
ptychi's LSQML recovers a defocused zone-plate beam (phase SSIM 0.02–0.13 on a 1,000-pattern
scan, README "How it compares"). The scan's mean diffraction pattern carries the beam's
far-field amplitude (:func:`ptycho_nb.physics.probes.probe_from_patterns`); only its phase
(a defocus of either sign) is unknown. :func:`refine_from_probe_start` runs a few joint epochs
from each candidate — the given probe and the two mean-pattern starts — keeps the one whose data
fit best (lowest Poisson deviance), and continues the refinement from where that trial ended.
Every trial and the continuation share one copy of the scan on the refinement's device.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import torch

from ..physics.probes import probe_from_patterns
from .loop import refine_scan
from .result import ModeChoice, RefineProgress, RefineResult
from .deviance import scan_noise_floor
from .scan import PreparedScan
from .state import RefineState
from .settings import PROBE_INITS, RefineSettings

__all__ = ["PROBE_INITS", "PROBE_TRIAL_EPOCHS", "MODE_TRIAL_EPOCHS", "MODE_GAIN", "MODES_NEEDED", "ProbeStart",
           "ModeChoice", "probe_candidates", "choose_probe_start", "refine_from_probe_start"]

#: Joint epochs each candidate runs before the choice. Measured on 1,000-pattern scans (siemens
#: star / zone plate at 10³, 10⁴, 10⁶ photons; lines / disc at 10³, 10⁴; dead leaves / Gaussian
#: at 10⁴): after 8 epochs the lowest deviance picked the start that also ended best, every time.
PROBE_TRIAL_EPOCHS = 8

Callback = Callable[[RefineProgress], "bool | None"]


@dataclasses.dataclass(frozen=True)
class ProbeStart:
    """What :func:`choose_probe_start` returns.

    Attributes
    ----------
    name : str
        The chosen start: 'given', 'patterns+' or 'patterns-' (the defocus sign).
    trial : RefineResult
        The chosen start's trial run (continue from its object and probe).
    deviance : dict of str to float
        Each candidate's mean deviance per pixel after its trial.
    seconds : float
        Wall time of all the trials.
    stopped : bool
        The callback asked to stop during a trial: the trials after it did not run (and the
        run should not continue).
    """

    name: str
    trial: RefineResult
    deviance: dict[str, float]
    seconds: float
    stopped: bool = False


def _check_joint(settings: RefineSettings) -> None:
    # The 'auto' rules resolve differently for a joint refinement: settings made for the object
    # alone would run the trials with the object's step.
    if not settings.refine_probe:
        raise ValueError("settings.refine_probe: a probe start is chosen for a probe refinement; "
                         "pass settings made with refine_probe=True")


def probe_candidates(init: str, probe: torch.Tensor | np.ndarray, scan: PreparedScan) -> dict[str, torch.Tensor]:
    """The probe starts ``init`` asks for, by name (:data:`PROBE_INITS`), on the scan's device.

    Incoherent modes (K, N, N) have no mean-pattern start: only 'given' is offered for them.
    """
    if init not in PROBE_INITS:
        raise ValueError(f"refine_probe_init: expected one of {PROBE_INITS}, got {init!r}")
    given = torch.as_tensor(probe).to(device=scan.device, dtype=torch.complex64)
    out: dict[str, torch.Tensor] = {}
    if init in ("auto", "given") or given.ndim == 3:
        out["given"] = given
    if init != "given" and given.ndim == 2:
        # the mean pattern, summed where the data are; its root stands in for the patterns
        plus, minus = probe_from_patterns(np.sqrt(scan.mean_pattern())[None], given.cpu().numpy())
        out["patterns+"] = torch.from_numpy(plus).to(scan.device)
        if not np.array_equal(plus, minus):  # no defocus: the two starts are one
            out["patterns-"] = torch.from_numpy(minus).to(scan.device)
    return out


def choose_probe_start(scan: PreparedScan, obj: Any, candidates: dict[str, torch.Tensor],
                       intensity_scale: Any, settings: RefineSettings, *,
                       trial_epochs: int = PROBE_TRIAL_EPOCHS,
                       callback: Callback | None = None) -> ProbeStart:
    """Run ``trial_epochs`` joint epochs from each probe candidate; keep the best data fit.

    Every candidate runs with the same ``settings`` (step, alpha, momentum, batch size, rule,
    ...), without a stopping rule (``tol=0``, patience beyond the trial); a ``holdout`` keeps the
    same patterns (same ``seed``) out of the trials as out of the run after them. ``callback``
    sees each trial epoch with ``stage='probe start k/n (NAME)'``; when it returns True the
    trials end there (the best of those run is returned, ``stopped=True``).
    """
    if not candidates:
        raise ValueError("candidates: expected at least one probe start")
    _check_joint(settings)
    trial = settings.replace(max_epochs=trial_epochs, tol=0.0, patience=trial_epochs + 1)
    t0 = time.perf_counter()
    trials: dict[str, RefineResult] = {}
    for k, (name, p) in enumerate(candidates.items(), start=1):
        stage = f"probe start {k}/{len(candidates)} ({name})"
        report = None if callback is None else (
            lambda progress, stage=stage: callback(dataclasses.replace(progress, stage=stage)))
        trials[name] = refine_scan(scan, obj, p, intensity_scale, trial, callback=report)
        if trials[name].stopped == "callback":
            break
    deviance = {name: float(r.deviance[-1]) for name, r in trials.items()}
    best = min(deviance, key=deviance.__getitem__)
    return ProbeStart(name=best, trial=trials[best], deviance=deviance,
                      seconds=time.perf_counter() - t0,
                      stopped=any(r.stopped == "callback" for r in trials.values()))


def _chain(first: RefineResult, rest: RefineResult, first_seconds: float) -> RefineResult:
    """One result of two runs in a row: ``rest`` continued from where ``first`` ended (its
    epochs follow ``first``'s, which took ``first_seconds`` with any trials)."""
    e0, s0 = first.epochs_run, first_seconds
    return dataclasses.replace(
        rest, deviance=first.deviance + rest.deviance[1:],
        holdout_deviance=first.holdout_deviance + rest.holdout_deviance[1:] if first.holdout_deviance
        else rest.holdout_deviance, epochs_run=e0 + rest.epochs_run,
        best_epoch=e0 + rest.best_epoch, seconds=s0 + rest.seconds,
        epoch_seconds=first.epoch_seconds[:-1] + (s0,) + tuple(s0 + t for t in rest.epoch_seconds)
        if first.epoch_seconds else tuple(s0 + t for t in rest.epoch_seconds),
        batch_schedule=first.batch_schedule + tuple((e0 + e, b) for e, b in rest.batch_schedule))


def _after(callback: Callback | None, epochs: int, seconds: float, max_epochs: int) -> Callback | None:
    """``callback`` seeing a later stage's epochs counted on from ``epochs`` done."""
    if callback is None:
        return None
    return lambda progress: callback(dataclasses.replace(
        progress, epoch=epochs + progress.epoch, max_epochs=max_epochs, seconds=seconds + progress.seconds))


#: Joint epochs the extra modes run before the choice (``RefineSettings.auto_modes``).
MODE_TRIAL_EPOCHS = 8
#: The relative drop in deviance the extra modes must bring to be kept: fitting noise with two
#: more modes lowers it by far less on a coherent beam (README "Partial coherence").
MODE_GAIN = 0.10
#: Deviance / noise floor of the converged single mode above which more modes are tried: below
#: it the one mode explains the data to the photon noise (nothing is left for more modes).
MODES_NEEDED = 1.3


def refine_from_probe_start(scan: PreparedScan, obj: Any, probe: torch.Tensor | np.ndarray,
                            intensity_scale: Any, settings: RefineSettings, *,
                            trial_epochs: int = PROBE_TRIAL_EPOCHS,
                            callback: Callback | None = None) -> tuple[RefineResult, ProbeStart | None]:
    """A joint object+probe refinement from the probe start the data choose
    (:func:`choose_probe_start` over :func:`probe_candidates` of ``settings.probe_init``), run to
    convergence; with ``settings.auto_modes``, then as many incoherent modes as the data ask for
    (:func:`_more_modes`: tried when the one mode leaves the data above the noise floor, kept
    when they explain them better).

    Returns the whole run as one :class:`~ptycho_nb.refine.result.RefineResult` (the chosen
    trials' epochs first, then the continuation's; ``seconds`` counts every trial) and the start
    choice (None when only the given probe is a candidate or ``max_epochs`` is 0). The modes'
    choice is the result's ``modes``.
    """
    _check_joint(settings)
    max_epochs = settings.max_epochs
    if max_epochs <= 0:
        return refine_scan(scan, obj, probe, intensity_scale, settings, callback=callback), None
    candidates = probe_candidates(settings.probe_init, probe, scan)
    done: RefineResult | None = None   # the stages run so far, as one result
    seconds, start = 0.0, None
    if list(candidates) != ["given"]:
        trial_epochs = min(trial_epochs, max_epochs)
        start = choose_probe_start(scan, obj, candidates, intensity_scale, settings.replace(auto_modes=0),
                                   trial_epochs=trial_epochs, callback=callback)
        done, seconds = start.trial, start.seconds
        if start.stopped:
            return dataclasses.replace(done, seconds=seconds, stopped="callback"), start
    # The refinement with the probe's modes as given, to convergence or the cap.
    if done is None:
        done = refine_scan(scan, obj, probe, intensity_scale, settings.replace(auto_modes=0),
                           callback=callback)
    elif done.epochs_run < max_epochs:
        done = _continue(scan, done, intensity_scale, settings, callback, max_epochs)
    # more modes are judged against a converged single mode only (one the cap stopped is not)
    if done.stopped not in ("plateau", "holdout") or settings.auto_modes < 2 or done.probe.ndim != 2:
        return done, start
    return _more_modes(scan, done, intensity_scale, settings, callback, max_epochs), start


def _continue(scan: PreparedScan, done: RefineResult, intensity_scale: Any, settings: RefineSettings,
              callback: Callback | None, max_epochs: int, **changes: Any) -> RefineResult:
    """``done`` continued for the rest of the cap (the probe already moves: from its first
    epoch), as one result."""
    e0 = done.epochs_run
    rest = refine_scan(scan, done.object, done.probe, intensity_scale,
                       settings.replace(max_epochs=max_epochs - e0, probe_start=0, auto_modes=0,
                                        position_start=max(settings.position_start - e0, 0), **changes),
                       callback=_after(callback, e0, done.seconds, max_epochs), positions=done.positions)
    return dataclasses.replace(_chain(done, rest, done.seconds), modes=done.modes)


def _more_modes(scan: PreparedScan, done: RefineResult, intensity_scale: Any, settings: RefineSettings,
                callback: Callback | None, max_epochs: int) -> RefineResult:
    """Whether the data ask for more incoherent modes than the single one that converged.

    When its deviance stands above the noise floor by :data:`MODES_NEEDED` (the single mode
    leaves signal unexplained), ``settings.auto_modes`` modes made from it run a trial of
    :data:`MODE_TRIAL_EPOCHS` epochs; kept when they lower the deviance by :data:`MODE_GAIN` or
    more, they go on to their own convergence (under a cap of ``max_epochs`` of their own). The
    single mode converges first, so a probe that refining fixes is not taken for partial
    coherence.
    """
    k, e0 = settings.auto_modes, done.epochs_run
    floor = _floor(scan, done, intensity_scale, settings)
    dev = {1: float(done.deviance[-1])}
    if dev[1] < MODES_NEEDED * floor:
        return dataclasses.replace(done, modes=ModeChoice(modes=1, deviance=dev, epochs=0, floor=floor))
    epochs = MODE_TRIAL_EPOCHS
    stage = f"probe modes {k}"
    report = None if callback is None else (
        lambda progress: callback(dataclasses.replace(progress, stage=stage)))
    trial = refine_scan(scan, done.object, done.probe, intensity_scale,
                        settings.replace(max_epochs=epochs, probe_start=0, auto_modes=0, probe_modes=k,
                                         tol=0.0, patience=epochs + 1,
                                         position_start=max(settings.position_start - e0, 0)),
                        callback=report, positions=done.positions)
    dev[k] = float(trial.deviance[-1])
    keep = trial.stopped != "callback" and dev[k] < (1 - MODE_GAIN) * dev[1]
    choice = ModeChoice(modes=k if keep else 1, deviance=dev, epochs=epochs, seconds=trial.seconds,
                        floor=floor)
    if not keep:
        return dataclasses.replace(done, seconds=done.seconds + trial.seconds, modes=choice,
                                   stopped="callback" if trial.stopped == "callback" else done.stopped)
    more = dataclasses.replace(_chain(done, trial, done.seconds), modes=choice)
    return _continue(scan, more, intensity_scale, settings, callback, more.epochs_run + max_epochs,
                     probe_modes=0)


def _floor(scan: PreparedScan, done: RefineResult, intensity_scale: Any, settings: RefineSettings) -> float:
    """The noise floor per measured pixel of every pattern under ``done``'s object and probe."""
    state = RefineState.build(done.object, done.probe, intensity_scale, scan.device)
    if done.positions is not None:
        state.x, state.y = done.positions[:, 0], done.positions[:, 1]
    idx = torch.arange(scan.m, device=scan.device)
    chunk = scan.chunk_size(state.modes, settings.chunk_patterns)
    return float(scan_noise_floor(state, scan, idx, chunk)) / float(scan.pixels.sum())
