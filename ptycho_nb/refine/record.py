"""The typed record of what a refinement did, for run records and the files written beside them."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .modes import power_fractions
from .result import ModeChoice, RefineResult
from .settings import RefineSettings

__all__ = ["RefineRecord", "modes_reason"]


def modes_reason(choice: ModeChoice) -> str:
    """Why a refinement kept as many probe modes as it did, in words."""
    one = choice.deviance[1]
    if len(choice.deviance) == 1:
        return (f"refine_probe_modes='auto': 1 mode, its deviance {one:.4g} per pixel is at the "
                f"noise floor {choice.floor:.4g}")
    (k, more), = ((c, v) for c, v in choice.deviance.items() if c != 1)
    return (f"refine_probe_modes='auto': {choice.modes} mode(s): one converged at {one:.4g} per pixel "
            f"(noise floor {choice.floor:.4g}); {k} modes reached {more:.4g} after {choice.epochs} epochs")


@dataclasses.dataclass(frozen=True)
class RefineRecord:
    """How a refinement was resolved and how it ended (``InferenceRunInfo.refinement``).

    Attributes
    ----------
    device : str
        Where it ran ('cpu', 'cuda:0', ...).
    start : str
        'network' or 'flat' (the control).
    method : str
        The update rule ('pie', 'adam').
    step_rule : str
        The far-field step: 'fisher', 'newton' or 'gaussian' ('' for 'adam').
    step, alpha, momentum : float
        As run (``refine_momentum`` resolved).
    probe : bool
        Whether the probe was refined.
    probe_source : str
        Whose probe lit the object at the start: 'model' or 'scan'.
    probe_init : str
        The probe start a probe refinement continued from: 'given', 'patterns+' or 'patterns-'
        ('' without probe refinement).
    max_epochs : int
        The cap (``InferenceConfig.refine_epochs``).
    batch_schedule : tuple of (int, int)
        (epoch after which it took effect, batch size).
    epochs_run : int
        Epochs run before the stopping rule (or the cap) ended it.
    stopped : str
        'plateau', 'holdout', 'max_epochs' or 'callback'.
    loss : tuple of float
        Mean Poisson deviance per pixel: the start, then one per epoch.
    holdout_loss : tuple of float
        The held-out patterns' deviance (empty without a holdout).
    probe_modes : int
        Incoherent probe modes refined (1: a coherent probe).
    mode_powers : tuple of float
        Each mode's share of the probe's power, strongest first.
    positions : bool
        Whether the positions were corrected (``Reconstruction.xcoords``/``ycoords`` are then
        the corrected ones).
    position_shift_rms : float
        Rms of the corrections, px (0 without position correction).
    why : tuple of (str, str)
        How the scan-dependent 'auto' settings were resolved (setting, reason).
    seconds : float
        Wall time of the refinement, probe-start trials included.
    """

    device: str
    start: str
    method: str
    step_rule: str
    step: float
    alpha: float
    momentum: float
    probe: bool
    probe_source: str
    probe_init: str
    max_epochs: int
    batch_schedule: tuple[tuple[int, int], ...]
    epochs_run: int
    stopped: str
    loss: tuple[float, ...]
    holdout_loss: tuple[float, ...]
    probe_modes: int
    mode_powers: tuple[float, ...]
    positions: bool
    position_shift_rms: float
    why: tuple[tuple[str, str], ...]
    seconds: float

    @classmethod
    def of(cls, result: RefineResult, settings: RefineSettings, probe_init: str = "", *,
           nominal: torch.Tensor | None = None) -> RefineRecord:
        """The record of ``result``, run with ``settings``; ``nominal`` (M, 2) the positions the
        scan gave (for the corrections' rms)."""
        shift = 0.0
        if result.positions is not None and nominal is not None:
            d = result.positions.to(torch.float64) - nominal.to(result.positions.device, torch.float64)
            shift = float(d.square().sum(dim=1).mean().sqrt())
        powers = tuple(float(v) for v in power_fractions(result.probe).cpu())
        return cls(device=result.device, max_epochs=settings.max_epochs, epochs_run=result.epochs_run,
                   stopped=result.stopped, loss=tuple(result.deviance),
                   holdout_loss=tuple(result.holdout_deviance), start=settings.start,
                   method=settings.method, step_rule=result.step_rule, step=settings.step,
                   alpha=settings.alpha, momentum=settings.momentum,
                   batch_schedule=tuple(result.batch_schedule), probe=settings.refine_probe,
                   probe_source=settings.probe_source, probe_init=probe_init,
                   probe_modes=len(powers), mode_powers=powers,
                   positions=result.positions is not None, position_shift_rms=shift,
                   why=tuple(settings.why) + ((("refine_probe_modes", modes_reason(result.modes)),)
                                              if result.modes is not None else ()),
                   seconds=result.seconds)

    def as_dict(self) -> dict[str, Any]:
        """Field name → value (JSON-ready: tuples become lists when dumped)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
