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
from .result import RefineProgress, RefineResult
from .scan import PreparedScan
from .settings import PROBE_INITS, RefineSettings

__all__ = ["PROBE_INITS", "PROBE_TRIAL_EPOCHS", "ProbeStart", "probe_candidates",
           "choose_probe_start", "refine_from_probe_start"]

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


def refine_from_probe_start(scan: PreparedScan, obj: Any, probe: torch.Tensor | np.ndarray,
                            intensity_scale: Any, settings: RefineSettings, *,
                            trial_epochs: int = PROBE_TRIAL_EPOCHS,
                            callback: Callback | None = None) -> tuple[RefineResult, ProbeStart | None]:
    """A joint object+probe refinement from the probe start the data choose
    (:func:`choose_probe_start` over :func:`probe_candidates` of ``settings.probe_init``).

    Returns the whole run as one :class:`~ptycho_nb.refine.result.RefineResult` (the chosen
    trial's epochs first, then the continuation's; ``seconds`` counts every trial) and the
    choice (None when only the given probe is a candidate or ``max_epochs`` is 0: a plain
    refinement then).
    """
    _check_joint(settings)
    max_epochs = settings.max_epochs
    candidates = probe_candidates(settings.probe_init, probe, scan)
    if max_epochs <= 0 or list(candidates) == ["given"]:
        return refine_scan(scan, obj, probe, intensity_scale, settings, callback=callback), None
    trial_epochs = min(trial_epochs, max_epochs)
    start = choose_probe_start(scan, obj, candidates, intensity_scale, settings,
                               trial_epochs=trial_epochs, callback=callback)
    first = start.trial
    if start.stopped:
        return dataclasses.replace(first, seconds=start.seconds, stopped="callback"), start
    if max_epochs == trial_epochs:
        return dataclasses.replace(first, seconds=start.seconds), start
    e0, s0 = first.epochs_run, start.seconds
    # The continuation's epochs follow the chosen trial's in what the callback sees, as in the
    # merged result: epoch e0 + k of the whole cap.
    report = None if callback is None else (lambda progress: callback(dataclasses.replace(
        progress, epoch=e0 + progress.epoch, max_epochs=max_epochs, seconds=s0 + progress.seconds)))
    # The probe already moves: the continuation updates it from its first epoch.
    rest = refine_scan(scan, first.object, first.probe, intensity_scale,
                       settings.replace(max_epochs=max_epochs - trial_epochs, probe_start=0),
                       callback=report)
    merged = dataclasses.replace(
        rest, deviance=first.deviance + rest.deviance[1:],
        holdout_deviance=rest.holdout_deviance, epochs_run=e0 + rest.epochs_run,
        best_epoch=e0 + rest.best_epoch, seconds=s0 + rest.seconds,
        epoch_seconds=first.epoch_seconds[:-1] + (s0,) + tuple(s0 + s for s in rest.epoch_seconds),
        batch_schedule=first.batch_schedule + tuple((e0 + e, b) for e, b in rest.batch_schedule))
    return merged, start
