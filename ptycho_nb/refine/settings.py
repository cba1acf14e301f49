"""One settings object for a refinement: every 'auto' of the configs resolved once, here.

:class:`RefineSettings` holds concrete values only (no 'auto', no None): the update rule and its
far-field step, the momentum, where the probe's start comes from, which device runs it. Build it
from the configs with :meth:`RefineSettings.from_configs` (what ``infer``/``reconstruct`` do) or
from keywords with :meth:`RefineSettings.of` (what :func:`ptycho_nb.refine.refine` does); the loop,
the update rules, the probe start and the run record all read this one object.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..config.canonical import InferenceConfig
from ..config.execution import PyTorchExecutionConfig
from ..devices import refinement_device

__all__ = ["RefineSettings", "NOISE_MODELS", "POISSON_STEPS", "PROBE_INITS", "PROBE_SOURCES",
           "STARTS", "AUTO_MOMENTUM", "PROBE_MISMATCH_WARN", "noise_model_for", "poisson_step_for",
           "momentum_for", "far_field_rule", "probe_source_for"]

#: Likelihoods the 'pie' update steps along: 'auto' resolves with :func:`noise_model_for`.
NOISE_MODELS = ("auto", "poisson", "gaussian")
#: Steps of the Poisson likelihood (:mod:`ptycho_nb.refine.rules.pie`): 'auto' resolves with
#: :func:`poisson_step_for`.
POISSON_STEPS = ("auto", "fisher", "newton")
#: ``InferenceConfig.refine_probe_init``: 'given' (the probe as given), 'patterns' (the two
#: mean-pattern starts), 'auto' (all three; the data choose: :mod:`ptycho_nb.refine.probe_start`).
PROBE_INITS = ("auto", "given", "patterns")
#: Whose probe the refinement lights the object with (``refine_probe_source`` resolved).
PROBE_SOURCES = ("model", "scan")
#: The refinement's starting object.
STARTS = ("network", "flat")
#: :func:`ptycho_nb.refine.start.probe_mismatch` above which a scan's probe counts as another than
#: the model's (``refine_probe_source='auto'`` then lights the object with the scan's).
PROBE_MISMATCH_WARN = 0.05
#: probe_mismatch up to which a model's probe counts as the scan's own (the same beam up to scale
#: and a global phase, to float rounding).
EXACT_MISMATCH = 1e-4
#: The mode count ``refine_probe_modes='auto'`` tries against one (:func:`~ptycho_nb.refine.probe_start.choose_modes`).
AUTO_MODES = 3
#: ``InferenceConfig.refine_momentum=None``: the object-only momentum, and the one with
#: ``refine_probe`` (joint least-squares steps; momentum on the coupled pair measured worse in
#: phase SSIM on 1,000-pattern scans at 10³–10⁶ photons, README "How it compares").
AUTO_MOMENTUM = {False: 0.85, True: 0.0}


def noise_model_for(noise: str, refine_probe: bool) -> str:
    """The likelihood that runs: ``noise``, or for 'auto' the Poisson one for the object alone
    and the Gaussian amplitude one with ``refine_probe``.

    Measured with the probe refined from a rough guess (flat start, 1,000-pattern scans, 10
    scans: lines, blobs, dead leaves, smooth fields, a siemens star; disc, Gaussian and
    zone-plate probes; 10³–10⁶ photons): the Gaussian modulus step scored higher phase SSIM than
    the Poisson Newton step on 6 of them and on average (0.844 vs 0.804; dead leaves 10³ 0.56 vs
    0.33, the zone plate at 10³ 0.85 vs 0.77), lower on lines at 10⁶ (0.96 vs 0.99) and blobs at
    10³ (0.73 vs 0.76) (README "One call for a new scan").
    """
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {NOISE_MODELS}, got {noise!r}")
    if noise == "auto":
        return "gaussian" if refine_probe else "poisson"
    return noise


def poisson_step_for(poisson_step: str, refine_probe: bool) -> str:
    """The Poisson step that runs: ``poisson_step``, or for 'auto' Fisher scoring for the object
    alone and the Newton factor with ``refine_probe``."""
    if poisson_step not in POISSON_STEPS:
        raise ValueError(f"poisson_step: expected one of {POISSON_STEPS}, got {poisson_step!r}")
    if poisson_step == "auto":
        return "newton" if refine_probe else "fisher"
    return poisson_step


def far_field_rule(noise: str, poisson_step: str, refine_probe: bool) -> str:
    """The far-field step of the 'pie' update: 'fisher', 'newton' or 'gaussian'.

    Both settings are resolved (and so validated) whatever the noise model: a bad value is
    never silently ignored.
    """
    noise = noise_model_for(noise, refine_probe)
    step = poisson_step_for(poisson_step, refine_probe)
    return step if noise == "poisson" else noise


def momentum_for(momentum: float | None, refine_probe: bool) -> float:
    """The momentum a refinement runs with: ``momentum``, or its automatic value for None."""
    return AUTO_MOMENTUM[bool(refine_probe)] if momentum is None else float(momentum)


def probe_source_for(requested: str, *, model: bool = True, probe_conditioned: bool = False,
                     mismatch: float | None = None) -> str:
    """Whose probe a refinement lights the object with: 'model' or 'scan'.

    ``requested`` is ``InferenceConfig.refine_probe_source``; 'auto' takes the scan's probe when
    the model reads the scan through another one (``mismatch`` above
    :data:`PROBE_MISMATCH_WARN`, or probes of other shapes), the model's otherwise. A
    probe-conditioned model already reads the scan with the scan's probe, and without a model
    (``model=False``) there is only the scan's: 'scan'.
    """
    if requested not in ("auto", "model", "scan"):
        raise ValueError(f"refine_probe_source: expected 'auto', 'model' or 'scan', got {requested!r}")
    if not model and requested == "model":
        raise ValueError("InferenceConfig.refine_probe_source='model' needs a model; without one "
                         "the refinement uses the scan's own probe ('scan' or 'auto')")
    if probe_conditioned or not model:
        return "scan"
    if requested == "auto":
        return "scan" if mismatch is None or mismatch > PROBE_MISMATCH_WARN else "model"
    return requested


def _resolve_flag(value: bool | str, name: str, auto: bool, why_on: str, why_off: str) -> tuple[bool, str]:
    """A bool-or-'auto' setting resolved, and why: ``auto`` decides 'auto'."""
    if value != "auto":
        return bool(value), f"{name}={value} was asked for"
    return auto, f"{name}='auto': " + (why_on if auto else why_off)


def _number(name: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name}: expected a finite number in [{lo}, {hi}], got {v!r}")
    return float(v)


def _count(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not (isinstance(v, int) and v >= lo):
        raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    return int(v)


@dataclasses.dataclass(frozen=True)
class RefineSettings:
    """Everything a refinement runs with, resolved and validated.

    Attributes
    ----------
    max_epochs : int
        Cap on passes over the scan (0 returns the start).
    method : str
        The update rule, a key of :data:`ptycho_nb.refine.rules.UPDATE_RULES` ('pie', 'adam').
    rule : str
        The 'pie' update's far-field step: 'fisher', 'newton' or 'gaussian'
        (:func:`far_field_rule`).
    step : float
        Relative step of the 'pie' update (1 = the full step); Adam's learning rate for 'adam'.
    alpha : float
        In [0, 1]: weight of the illumination maximum in the update's denominator.
    batch_size : int
        Patterns per update at the start (doubled on each plateau with ``grow_batch``).
    grow_batch : bool
    tol, patience : float, int
        The plateau rule: stop (or grow the batch) when the deviance improved by less than
        ``tol`` (relative) over the last ``patience`` epochs.
    holdout : float
        In [0, 0.5): fraction of patterns held out as the noise guard.
    seed : int
        Order of the patterns and choice of the held-out ones.
    momentum : float
        In [0, 0.99]: the object's momentum after every epoch (0 = off).
    refine_probe : bool
        Update the probe too, after epoch ``probe_start``.
    probe_start : int
        Epochs the object settles alone before the probe moves.
    probe_init : str
        With ``refine_probe``: which probe starts the data choose among (:data:`PROBE_INITS`).
    probe_source : str
        Whose probe lights the object: 'model' or 'scan' (:data:`PROBE_SOURCES`).
    start : str
        'network' or 'flat' (:data:`STARTS`).
    probe_modes : int
        With ``refine_probe``: incoherent modes to refine (:mod:`ptycho_nb.refine.modes`); more
        than the probe has are made from it; 0 = as many as it has.
    auto_modes : int
        With ``refine_probe`` and a single-mode probe: the mode count the data may choose
        instead of one (:func:`ptycho_nb.refine.probe_start.choose_modes`); 0 = no choice.
    correct_positions : bool
        Refine each pattern's position too (:mod:`ptycho_nb.refine.positions`), after epoch
        ``position_start``; 'pie' only.
    position_start : int
        Epochs the object settles before the positions move.
    position_step : float
        In (0, 1]: fraction of each pattern's least-squares shift taken per update.
    max_position_shift : float
        Bound of each position update per pattern and epoch, px.
    device : torch.device
        Where every tensor of the refinement lives.
    why : tuple of (str, str)
        How the 'auto' choices that depend on the scan were made (setting name, reason), for the
        run record and the log.
    chunk_patterns : int or None
        Patterns whose exit waves are held at once; a larger batch is accumulated chunk by chunk
        (the same update, bounded memory). None: from :data:`ptycho_nb.refine.scan.CHUNK_BYTES`.
    """

    max_epochs: int = 200
    method: str = "pie"
    rule: str = "fisher"
    step: float = 1.0
    alpha: float = 0.3
    batch_size: int = 64
    grow_batch: bool = True
    tol: float = 1e-3
    patience: int = 5
    holdout: float = 0.0
    seed: int = 0
    momentum: float = 0.0
    refine_probe: bool = False
    probe_start: int = 2
    probe_init: str = "auto"
    probe_source: str = "scan"
    start: str = "network"
    probe_modes: int = 0
    auto_modes: int = 0
    correct_positions: bool = False
    position_start: int = 10
    position_step: float = 1.0
    max_position_shift: float = 0.5
    device: torch.device = torch.device("cpu")
    chunk_patterns: int | None = None
    why: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # ``method`` is checked against the rule registry where the rule is looked up
        # (:func:`ptycho_nb.refine.rules.rule_for`): the rules read these settings, not the reverse.
        if not isinstance(self.method, str):
            raise ValueError(f"method: expected the name of an update rule, got {self.method!r}")
        if self.rule not in ("fisher", "newton", "gaussian"):
            raise ValueError(f"rule: expected 'fisher', 'newton' or 'gaussian', got {self.rule!r}")
        _count("max_epochs", self.max_epochs, 0)
        _count("batch_size", self.batch_size, 1)
        _count("patience", self.patience, 1)
        _count("probe_start", self.probe_start, 0)
        _count("seed", self.seed, 0)
        _count("position_start", self.position_start, 0)
        _count("probe_modes", self.probe_modes, 0)
        _count("auto_modes", self.auto_modes, 0)
        if self.correct_positions and self.method != "pie":
            raise ValueError(f"correct_positions: position correction is a step of the 'pie' update, "
                             f"not of method={self.method!r}")
        for name, lo, hi in (("step", 0.0, 10.0), ("alpha", 0.0, 1.0), ("momentum", 0.0, 0.99),
                             ("tol", 0.0, 1.0), ("holdout", 0.0, 0.5), ("position_step", 0.0, 1.0),
                             ("max_position_shift", 0.0, 16.0)):
            _number(name, getattr(self, name), lo, hi)
        if not self.step > 0:
            raise ValueError(f"step: expected > 0, got {self.step!r}")
        if self.holdout >= 0.5:
            raise ValueError(f"holdout: expected a fraction below 0.5, got {self.holdout!r}")
        for name, allowed in (("probe_init", PROBE_INITS), ("probe_source", PROBE_SOURCES),
                              ("start", STARTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if self.chunk_patterns is not None:
            _count("chunk_patterns", self.chunk_patterns, 1)
        object.__setattr__(self, "device", torch.device(self.device))

    @classmethod
    def of(cls, *, noise: str = "auto", poisson_step: str = "auto", device: Any = "cpu",
           **fields: Any) -> RefineSettings:
        """Settings from :func:`ptycho_nb.refine.refine`'s keywords: the likelihood ``noise``
        and ``poisson_step`` (each may be 'auto') resolve into :attr:`rule`."""
        rule = far_field_rule(noise, poisson_step, bool(fields.get("refine_probe", False)))
        return cls(rule=rule, device=torch.device(device), **fields)

    @classmethod
    def from_configs(cls, inference: InferenceConfig, execution: PyTorchExecutionConfig, *,
                     seed: int = 0, model: bool = True, probe_conditioned: bool = False,
                     probe_mismatch: float | None = None, scan_probe_exact: bool = False,
                     positions_exact: bool = False) -> RefineSettings:
        """The settings ``infer``/``reconstruct`` refine with.

        Parameters
        ----------
        inference : InferenceConfig
            Its ``refine_*`` fields ('auto' of ``refine_probe``, ``refine_probe_modes``,
            ``refine_positions``, ``refine_noise_model``, ``refine_poisson_step``,
            ``refine_momentum`` and ``refine_probe_source`` resolved here; :attr:`why` says how).
        execution : PyTorchExecutionConfig
            ``accelerator`` picks the device ('auto' = a GPU when torch sees one).
        seed : int
            The run's seed (the model's training seed, 0 without a model).
        model, probe_conditioned, probe_mismatch
            What ``refine_probe_source`` resolves from (:func:`probe_source_for`): whether a
            model made the start, whether it reads the scan's own probe, and how far the scan's
            probe is from the model's (:func:`ptycho_nb.refine.start.probe_mismatch`; None when
            they cannot be compared).
        scan_probe_exact, positions_exact : bool
            What the scan's record says (a simulation's: ``SimulatedScan.probe_exact``, no
            position errors); a measured scan knows neither.
        """
        icfg = inference
        source = probe_source_for(icfg.refine_probe_source, model=model,
                                  probe_conditioned=probe_conditioned, mismatch=probe_mismatch)
        # The scan's exact probe also lights the object when the model's is the same up to scale
        # and phase (a model trained on such scans without moving its probe).
        same = source == "scan" or (probe_mismatch is not None and probe_mismatch <= EXACT_MISMATCH)
        refine_probe, probe_why = _resolve_flag(
            icfg.refine_probe, "refine_probe", not (scan_probe_exact and same),
            "the probe is a guess (no record says it is the exact one, or the model's is another)",
            "the scan's record says the probe that lights the object is the exact one")
        correct, positions_why = _resolve_flag(
            icfg.refine_positions, "refine_positions", not positions_exact,
            "the positions are nominal (no record says they are exact)",
            "the scan's record says its positions are exact")
        modes, auto_modes = 0, 0
        if refine_probe:
            if icfg.refine_probe_modes == "auto":
                auto_modes = AUTO_MODES
            else:
                modes = int(icfg.refine_probe_modes)
        return cls(
            max_epochs=icfg.refine_epochs, method="pie",
            rule=far_field_rule(icfg.refine_noise_model, icfg.refine_poisson_step, refine_probe),
            step=icfg.refine_step, alpha=icfg.refine_alpha, batch_size=icfg.refine_batch_size,
            tol=icfg.refine_tolerance, patience=icfg.refine_patience, holdout=icfg.refine_holdout,
            seed=int(seed), momentum=momentum_for(icfg.refine_momentum, refine_probe),
            refine_probe=refine_probe, probe_init=icfg.refine_probe_init, probe_source=source,
            start=icfg.refine_start if model else "flat", probe_modes=modes, auto_modes=auto_modes,
            correct_positions=correct, device=refinement_device(execution.accelerator),
            why=(("refine_probe", probe_why), ("refine_positions", positions_why)))

    def replace(self, **changes: Any) -> RefineSettings:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)
