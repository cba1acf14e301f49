"""Typed records of what a run really did: resolved settings and timings (frozen dataclasses).

They replace free-form dicts read by key: ``result.run.epochs_run`` fails at the attribute, with
the attribute's name, where ``settings["epochs_run"]`` failed somewhere later or never.
:meth:`_Record.as_dict` gives the JSON-ready form written next to outputs.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from ..refine.record import RefineRecord

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


#: The flat ``refine_*`` names ``InferenceRunInfo`` had before the refinement's record was one
#: nested value: old name → (``RefineRecord`` attribute, value without a refinement).
_FLAT_REFINE_NAMES: dict[str, tuple[str, Any]] = {
    "refine_epochs": ("max_epochs", 0), "refine_step": ("step", 0.0),
    "refine_momentum": ("momentum", 0.0), "refine_loss": ("loss", ()),
    "refine_epochs_run": ("epochs_run", 0), "refine_stopped": ("stopped", ""),
    "refine_probe": ("probe", False), "refine_start": ("start", "network"),
    "refine_probe_source": ("probe_source", ""), "refine_step_rule": ("step_rule", ""),
    "refine_probe_init": ("probe_init", ""),
}


@dataclasses.dataclass(frozen=True)
class InferenceRunInfo(_Record):
    """How an inference run was resolved.

    Attributes
    ----------
    accelerator : str
        Where the network's pass ran (the concrete accelerator: 'auto' resolved); without a
        network pass (a flat start), where the refinement ran.
    batch_size : int
        Patterns per forward batch (per refinement update at the start, without a network).
    middle_trim : int
        Pixels trimmed from each patch edge before stitching.
    pad_eval : bool
    gridsize : int
    n_patterns : int
        Patterns reconstructed.
    probe_source : str
        Whose probe the network read the scan with: 'model' (a model's own), 'scan' (a
        probe-conditioned model, or a reconstruction without a model).
    precision : str
        What the network pass ran in, as Lightning ran it (``'16-mixed'`` asked on a CPU runs,
        and is reported, as ``'bf16-mixed'``); '32-true' without a network pass (a flat start).
        The refinement always runs in complex64.
    refinement : RefineRecord or None
        What the physics refinement did (:class:`ptycho_nb.refine.RefineRecord`: where it ran,
        its settings as resolved, its epochs and losses, why it stopped); None when the network's
        single pass was all (``refine_epochs=0``).

    The flat names of earlier releases (``refine_loss``, ``refine_epochs_run``, ...) still read,
    with a ``DeprecationWarning``, from :attr:`refinement`.
    """

    accelerator: str
    batch_size: int
    middle_trim: int
    pad_eval: bool
    gridsize: int
    n_patterns: int
    probe_source: str = "model"
    precision: str = "32-true"
    refinement: RefineRecord | None = None

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not fields: the flat refine_* names of old
        if name in _FLAT_REFINE_NAMES:
            attr, absent = _FLAT_REFINE_NAMES[name]
            warnings.warn(f"InferenceRunInfo.{name} is deprecated: use "
                          f"InferenceRunInfo.refinement.{attr}", DeprecationWarning, stacklevel=2)
            rec = self.refinement
            return absent if rec is None else getattr(rec, attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """Field name → value, the refinement's record as a nested dict (None without one)."""
        out = super().as_dict()
        out["refinement"] = None if self.refinement is None else self.refinement.as_dict()
        return out


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
