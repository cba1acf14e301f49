"""Typed records of what a run really did: resolved settings and timings (frozen dataclasses).

They replace free-form dicts read by key: ``result.run.epochs_run`` fails at the attribute, with
the attribute's name, where ``settings["epochs_run"]`` failed somewhere later or never.
:meth:`_Record.as_dict` gives the JSON-ready form written next to outputs.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

__all__ = ["TrainRunInfo", "InferenceRunInfo", "InferenceTimings"]


class _Record:
    """Shared by the records: a plain dict view for JSON files."""

    def as_dict(self) -> dict[str, Any]:
        """Field name → value (tuples stay tuples; ``json.dumps`` writes them as lists)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Any:
        # Results used to be dicts; code written against them keeps working, with a warning.
        warnings.warn(f"{type(self).__name__}[{name!r}] is deprecated: use the attribute "
                      f".{name}", DeprecationWarning, stacklevel=2)
        if name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class TrainRunInfo(_Record):
    """How a training run was resolved and how it ended.

    Attributes
    ----------
    accelerator : str
        The concrete accelerator ('auto' resolved: cuda, mps or cpu).
    devices : int or str
        What ``Trainer(devices=...)`` was given; ``devices_used`` is what it used.
    strategy, precision : str
        As given to the Trainer.
    monitor : str
        The metric that selected the best checkpoint and drove early stopping (``val_*`` falls
        back to ``train_*`` without validation data).
    validation : bool
        Whether validation data existed.
    train_samples : int
        Training samples (groups) per epoch.
    output_dir : str
    plot_every_n_epochs : int or str
        The live view's redraw interval as used (0 = off, 'auto').
    epochs_run : int
        Completed training epochs.
    interrupted : bool
        Training ended on Ctrl+C / a kernel interrupt (the model so far is kept).
    global_step : int
        Optimizer steps taken.
    devices_used : int
    global_zero : bool
        True in the process that reports (rank 0); other DDP ranks stay quiet.
    history_scope : str
        'epochs' (every epoch), or 'final' when only the last epoch's metrics came back from
        spawned processes.
    """

    accelerator: str
    devices: Any
    strategy: str
    precision: str
    monitor: str
    validation: bool
    train_samples: int
    output_dir: str
    plot_every_n_epochs: Any
    epochs_run: int
    interrupted: bool
    global_step: int
    devices_used: int
    global_zero: bool
    history_scope: str = "epochs"


@dataclasses.dataclass(frozen=True)
class InferenceRunInfo(_Record):
    """How an inference run was resolved.

    Attributes
    ----------
    accelerator : str
    batch_size : int
        Patterns per forward batch.
    middle_trim : int
        Pixels trimmed from each patch edge before stitching.
    pad_eval : bool
    gridsize : int
    n_patterns : int
        Patterns reconstructed.
    refine_epochs : int
        Cap on physics-refinement epochs (0 = the network alone).
    refine_step : float
    refine_momentum : float
        The object momentum the refinement ran with (``InferenceConfig.refine_momentum``, its
        automatic value resolved); 0 without refinement.
    refine_loss : tuple of float
        The refinement's mean Poisson deviance per pixel: the start, then one per epoch.
    refine_epochs_run : int
        Epochs the refinement ran before its stopping rule (or the cap) ended it.
    refine_stopped : str
        Why it ended: 'plateau', 'holdout', 'max_epochs', 'callback'; '' without refinement.
    refine_probe : bool
        Whether the probe was refined (``Reconstruction.probe`` is then the refined one).
    refine_start : str
        'network' or 'flat' (the control).
    probe_source : str
        Whose probe the network read the scan with: 'model' (a model's own), 'scan' (a
        probe-conditioned model, or a reconstruction without a model).
    refine_probe_source : str
        Whose probe the refinement started from: 'model' or 'scan'
        (``InferenceConfig.refine_probe_source`` resolved); '' without refinement.
    refine_step_rule : str
        The refinement's far-field step: 'fisher', 'newton' (``refine_poisson_step`` resolved) or
        'gaussian'; '' without refinement.
    refine_probe_init : str
        The probe start a probe refinement continued from: 'given', or the scan's mean-pattern
        start 'patterns+' / 'patterns-' (``InferenceConfig.refine_probe_init`` resolved by the
        data); '' without probe refinement.
    precision : str
        What the network pass ran in, as Lightning ran it (``'16-mixed'`` asked on a CPU runs,
        and is reported, as ``'bf16-mixed'``); '32-true' without a network pass (a flat start).
        The refinement always runs in complex64.
    """

    accelerator: str
    batch_size: int
    middle_trim: int
    pad_eval: bool
    gridsize: int
    n_patterns: int
    refine_epochs: int
    refine_step: float
    refine_loss: tuple[float, ...] = ()
    refine_epochs_run: int = 0
    refine_stopped: str = ""
    refine_probe: bool = False
    refine_start: str = "network"
    probe_source: str = "model"
    precision: str = "32-true"
    refine_momentum: float = 0.0
    refine_probe_source: str = ""
    refine_step_rule: str = ""
    refine_probe_init: str = ""


@dataclasses.dataclass(frozen=True)
class InferenceTimings(_Record):
    """Wall times of an inference run, seconds, and the resulting rates.

    Attributes
    ----------
    load_s : float
        Model loading and grouping.
    forward_s : float
        The network's forward passes.
    stitch_s : float
        Stitching the patches into the object.
    refine_s : float
        Physics refinement (0 without).
    total_s : float
    patterns_per_s : float
        Patterns / (forward + stitch + refine).
    network_patterns_per_s : float
        Patterns / (forward + stitch): the network's single pass alone.
    """

    load_s: float
    forward_s: float
    stitch_s: float
    refine_s: float
    total_s: float
    patterns_per_s: float
    network_patterns_per_s: float
