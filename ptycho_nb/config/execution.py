"""The PyTorch execution configuration: runtime knobs of training and inference only.

:class:`PyTorchExecutionConfig` never changes the physics or the data. Each field is declared once
with its metadata (see :mod:`ptycho_nb.config.fields`), including where it lands; the engine
(:mod:`ptycho_nb.engine.trainer`, :mod:`ptycho_nb.engine.datamodule`) and the model's optimizer
(:mod:`ptycho_nb.model.optim`) map a config onto Lightning, the DataLoader and Adam. This module
is inert vocabulary: it imports no torch and no Lightning.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from typing import Any

from ..metrics import LIT_FRACTION
from .fields import ConfigError, config_field, validate_fields
from .serialize import ConfigBase

__all__ = [
    "PyTorchExecutionConfig",
    "ACCELERATORS",
    "STRATEGIES",
    "KERNEL_SAFE_STRATEGIES",
    "PRECISIONS",
    "SCHEDULERS",
    "LOGGER_BACKENDS",
    "MONITOR_METRICS",
    "METRIC_MODES",
    "FRONT_END_DEFAULTS",
    "RECONSTRUCT_DEFAULTS",
    "LIVE_PLOT_BUDGET",
    "EXPONENTIAL_GAMMA",
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "resolve_monitor",
]

log = logging.getLogger(__name__)

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "tpu", "mps")
STRATEGIES = ("auto", "single_device", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp", "deepspeed")
#: Strategies that work inside a Jupyter kernel (no re-launch of the script).
KERNEL_SAFE_STRATEGIES = ("auto", "single_device", "ddp_notebook", "ddp_fork")
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
#: Schedulers :func:`ptycho_nb.model.optim.configure_optimizers` really applies.
SCHEDULERS = ("Default", "Exponential", "Cosine", "Plateau")
LOGGER_BACKENDS = ("none", "csv", "tensorboard", "mlflow")
#: Metrics the training module logs (per epoch).
MONITOR_METRICS = ("val_loss", "train_loss", "val_nll", "train_nll", "val_mae", "train_mae")
#: Which direction is better for each monitored metric: all are losses, so lower ('min').
#: ``checkpoint_mode`` must agree, or checkpointing would keep the worst epoch.
METRIC_MODES: dict[str, str] = {m: "min" for m in MONITOR_METRICS}
#: ``plot_every_n_epochs=None`` (auto) in a notebook kernel: the live view redraws whenever the
#: training time since its last redraw is at least (last redraw time) / LIVE_PLOT_BUDGET, so the
#: redraws cost at most this fraction of training time on any hardware (see
#: ptycho_nb.engine.callbacks.live_plot).
LIVE_PLOT_BUDGET = 0.10
#: Exponential scheduler decay per epoch.
EXPONENTIAL_GAMMA = 0.95
#: Plateau scheduler: factor and patience (epochs).
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 10

#: Defaults the front ends (CLI, widget builders) start from, on purpose different from the
#: dataclass defaults (which suit scripts and tests: CPU, silent).
FRONT_END_DEFAULTS: dict[str, Any] = {"accelerator": "auto", "enable_progress_bar": True}

#: Defaults of the ``reconstruct`` command (``ptycho_nb.reconstruct``, ``ptycho-nb reconstruct``,
#: the panel's Reconstruct), above the front end's and below every config the user gives: the
#: whole lit field (``pad_eval=True``), as every iterative engine returns it. ``infer`` keeps
#: the dataclass default (the box of the scan centres).
RECONSTRUCT_DEFAULTS: dict[str, Any] = {"pad_eval": True}

_LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}

_TRAIN, _INFER = ("train",), ("infer",)
_TRAIN_INFER = ("train", "infer")


@dataclasses.dataclass(frozen=True)
class PyTorchExecutionConfig(ConfigBase):
    """Runtime knobs of PyTorch/Lightning training and inference (never physics or data).

    Every field is validated on construction; ``dataclasses.replace`` (or :meth:`replace`)
    re-validates, so an invalid config cannot exist. Invalid values raise
    :class:`~ptycho_nb.config.fields.ConfigError` (a ``ValueError``) naming the field(s), the
    value and the rule. See ``specs/ptychodus_api_spec.md`` §4.9 for the generated field table.
    """

    SECTION = "execution"

    # --- trainer -------------------------------------------------------------------------------
    accelerator: str = config_field(
        "cpu", category="trainer", kind="str", choices=ACCELERATORS,
        flags=("--accelerator",), modes=_TRAIN_INFER, lands="Trainer(accelerator)",
        help="Hardware to run on; 'auto' picks cuda, then mps, then cpu (the resolved device is reported).",
    )
    devices: Any = config_field(
        "auto", category="trainer", kind="int_or_auto", min=-1,
        flags=("--devices",), modes=_TRAIN_INFER, lands="Trainer(devices)",
        rule="0 is not allowed (-1 = all devices)",
        help="Number of devices ('auto' = what the accelerator offers, -1 = all).",
    )
    strategy: str = config_field(
        "auto", category="trainer", kind="str", choices=STRATEGIES,
        flags=("--strategy",), modes=_TRAIN, lands="Trainer(strategy)",
        rule="in a notebook kernel only " + ", ".join(KERNEL_SAFE_STRATEGIES),
        help="Lightning distribution strategy.",
    )
    precision: str = config_field(
        "32-true", category="trainer", kind="str", choices=PRECISIONS,
        flags=("--precision",), modes=_TRAIN_INFER, lands="Trainer(precision)",
        help="Numerical precision of training/inference.",
    )
    deterministic: bool = config_field(
        True, category="trainer", kind="bool",
        flags=("--deterministic",), neg_flags=("--no-deterministic",), modes=_TRAIN,
        lands="Trainer(deterministic)",
        help="Use deterministic algorithms (reproducible, sometimes slower).",
    )
    gradient_clip_val: float | None = config_field(
        None, category="trainer", kind="float", optional=True, min=0.0, max=1e6,
        flags=("--gradient-clip-val",), modes=_TRAIN, lands="Trainer(gradient_clip_val)",
        help="Clip gradient norm to this value (None = no clipping).",
    )
    accum_steps: int = config_field(
        1, category="trainer", kind="int", min=0, min_exclusive=True,
        flags=("--accumulate-grad-batches", "--accum-steps"), modes=_TRAIN,
        lands="Trainer(accumulate_grad_batches)",
        help="Accumulate gradients over this many batches before each optimizer step.",
    )
    # --- dataloader ----------------------------------------------------------------------------
    num_workers: int = config_field(
        0, category="dataloader", kind="int", min=0,
        flags=("--num-workers",), modes=_TRAIN_INFER, lands="DataLoader(num_workers)",
        help="DataLoader worker processes (0 = load in the main process; safest in notebooks).",
    )
    pin_memory: bool = config_field(
        False, category="dataloader", kind="bool",
        flags=("--pin-memory",), neg_flags=("--no-pin-memory",), modes=_TRAIN_INFER,
        lands="DataLoader(pin_memory)",
        help="Pin host memory for faster host-to-GPU copies.",
    )
    persistent_workers: bool = config_field(
        False, category="dataloader", kind="bool",
        flags=("--persistent-workers",), neg_flags=("--no-persistent-workers",), modes=_TRAIN,
        lands="DataLoader(persistent_workers)", rule="True only with num_workers > 0",
        help="Keep worker processes alive between epochs.",
    )
    prefetch_factor: int | None = config_field(
        None, category="dataloader", kind="int", optional=True, min=0, min_exclusive=True,
        flags=("--prefetch-factor",), modes=_TRAIN, lands="DataLoader(prefetch_factor)",
        rule="set only with num_workers > 0",
        help="Batches loaded in advance by each worker (None = PyTorch's default).",
    )
    # --- optimizer -----------------------------------------------------------------------------
    learning_rate: float = config_field(
        1e-3, category="optimizer", kind="float", min=0.0, min_exclusive=True, max=10.0,
        flags=("--learning-rate", "--lr"), modes=_TRAIN, lands="optimizer: Adam(lr)",
        widget={"step": 1e-4},
        help="Adam learning rate.",
    )
    scheduler: str = config_field(
        "Default", category="optimizer", kind="str", choices=SCHEDULERS,
        flags=("--scheduler",), modes=_TRAIN, lands="optimizer: LR scheduler",
        help=(
            f"Learning-rate schedule: Default = constant; Exponential = ×{EXPONENTIAL_GAMMA} per "
            f"epoch; Cosine = cosine annealing over nepochs; Plateau = ×{PLATEAU_FACTOR} after "
            f"{PLATEAU_PATIENCE} epochs without improvement of checkpoint_monitor_metric."
        ),
    )
    # --- ux ------------------------------------------------------------------------------------
    enable_progress_bar: bool = config_field(
        False, category="ux", kind="bool",
        flags=("--progress-bar",), neg_flags=("--quiet",), modes=_TRAIN_INFER,
        lands="Trainer(enable_progress_bar) + PtychoProgressBar callback",
        help="Show a progress bar (a widget in Jupyter, text in a terminal); --quiet turns it off.",
    )
    plot_every_n_epochs: int | None = config_field(
        None, category="ux", kind="int", optional=True, min=0,
        flags=("--plot-every-n-epochs",), modes=_TRAIN, lands="LivePlot callback",
        units="epochs",
        rule=(f"None = auto: in a notebook kernel as often as keeps redraws under {LIVE_PLOT_BUDGET:.0%} "
              "of training time (measured), off elsewhere"),
        help=("Redraw the live figure (amplitude, phase, losses) every k epochs in a notebook "
              "(0 = off, None = auto: on in a notebook kernel, off elsewhere)."),
    )
    # --- checkpoint ----------------------------------------------------------------------------
    enable_checkpointing: bool = config_field(
        True, category="checkpoint", kind="bool",
        flags=("--enable-checkpointing",), neg_flags=("--disable-checkpointing",), modes=_TRAIN,
        lands="Trainer(enable_checkpointing) + ModelCheckpoint callback",
        help="Save the best checkpoint(s) during training.",
    )
    checkpoint_save_top_k: int = config_field(
        1, category="checkpoint", kind="int", min=-1,
        flags=("--checkpoint-save-top-k",), modes=_TRAIN, lands="ModelCheckpoint(save_top_k)",
        help="How many best checkpoints to keep (0 = none, -1 = all).",
    )
    checkpoint_monitor_metric: str = config_field(
        "val_loss", category="checkpoint", kind="str", choices=MONITOR_METRICS,
        flags=("--checkpoint-monitor",), modes=_TRAIN,
        lands="ModelCheckpoint(monitor), EarlyStopping(monitor), Plateau scheduler",
        rule="val_* falls back to train_* when there is no validation data",
        help="Metric that selects the best checkpoint and drives early stopping.",
    )
    checkpoint_mode: str = config_field(
        "min", category="checkpoint", kind="str", choices=("min", "max"),
        flags=("--checkpoint-mode",), modes=_TRAIN,
        lands="ModelCheckpoint(mode), EarlyStopping(mode)",
        rule="must match checkpoint_monitor_metric's direction: 'min' for every logged metric "
             "(all are losses)",
        help="Whether a lower ('min') or higher ('max') monitored metric is better.",
    )
    early_stop_patience: int = config_field(
        100, category="checkpoint", kind="int", min=0, min_exclusive=True,
        flags=("--early-stop-patience",), modes=_TRAIN, lands="EarlyStopping(patience)",
        units="epochs",
        help="Stop after this many epochs without improvement of the monitored metric.",
    )
    # --- logging -------------------------------------------------------------------------------
    logger_backend: str | None = config_field(
        None, category="logging", kind="str", optional=True, choices=LOGGER_BACKENDS,
        flags=("--logger",), modes=_TRAIN, lands="Trainer(logger)",
        rule="'none' is stored as None; tensorboard/mlflow need their optional package",
        help="Experiment logger (None = no logger).",
    )
    # --- inference -----------------------------------------------------------------------------
    inference_batch_size: int | None = config_field(
        None, category="inference", kind="int", optional=True, min=0, min_exclusive=True,
        flags=("--inference-batch-size",), modes=_INFER, lands="DataLoader(batch_size) at inference",
        help="Batch size at inference (None = the training batch size).",
    )
    middle_trim: int = config_field(
        0, category="inference", kind="int", min=0, units="pixels",
        flags=("--middle-trim",), modes=_INFER, lands="stitching",
        rule="< N/2 (checked against ModelConfig.N by check_compatible)",
        help="Pixels trimmed from each patch edge before stitching.",
    )
    pad_eval: bool = config_field(
        False, category="inference", kind="bool",
        flags=("--pad-eval",), neg_flags=("--no-pad-eval",), modes=_INFER, lands="stitching",
        help="Return the whole lit field: the bounding box of every pixel the probe lit above "
             f"{LIT_FRACTION:.0%} of the best-lit pixel's summed weight (border scan points in "
             "full), rather than the box of the scan positions.",
    )

    def __post_init__(self) -> None:
        if self.logger_backend == "none":
            object.__setattr__(self, "logger_backend", None)
        validate_fields(self)
        want = METRIC_MODES[self.checkpoint_monitor_metric]
        if self.checkpoint_mode != want:
            raise ConfigError(
                f"PyTorchExecutionConfig.checkpoint_mode={self.checkpoint_mode!r} is invalid with "
                f"checkpoint_monitor_metric={self.checkpoint_monitor_metric!r}: that metric is "
                f"better when {'lower' if want == 'min' else 'higher'}, so the mode must be "
                f"{want!r} (otherwise the worst epoch would be kept)",
                fields=("checkpoint_mode", "checkpoint_monitor_metric"), value=self.checkpoint_mode,
            )
        if self.devices == 0:
            raise ConfigError(
                "PyTorchExecutionConfig.devices=0 is invalid: rule is 'auto', -1 (all) or >= 1",
                fields=("devices",), value=0,
            )
        if self.persistent_workers and self.num_workers == 0:
            raise ConfigError(
                "PyTorchExecutionConfig.persistent_workers=True is invalid with num_workers=0: "
                "persistent_workers needs num_workers > 0",
                fields=("persistent_workers", "num_workers"), value=True,
            )
        if self.prefetch_factor is not None and self.num_workers == 0:
            raise ConfigError(
                f"PyTorchExecutionConfig.prefetch_factor={self.prefetch_factor!r} is invalid with "
                "num_workers=0: prefetch_factor may be set only with num_workers > 0",
                fields=("prefetch_factor", "num_workers"), value=self.prefetch_factor,
            )
        if self.logger_backend in _LOGGER_PACKAGES:
            pkgs = _LOGGER_PACKAGES[self.logger_backend]
            if not any(importlib.util.find_spec(p) is not None for p in pkgs):
                extra = "[tensorboard]" if self.logger_backend == "tensorboard" else ""
                install = f"pip install ptycho-nb{extra}" if extra else f"pip install {pkgs[0]}"
                raise ConfigError(
                    f"PyTorchExecutionConfig.logger_backend={self.logger_backend!r} needs the "
                    f"optional package {pkgs[0]!r}, which is not installed ({install}); "
                    "or choose 'csv' or None",
                    fields=("logger_backend",), value=self.logger_backend,
                )


def resolve_monitor(cfg: PyTorchExecutionConfig, has_validation: bool) -> str:
    """The metric to monitor: ``val_*`` falls back to ``train_*`` without validation data."""
    metric = cfg.checkpoint_monitor_metric
    if not has_validation and metric.startswith("val_"):
        fallback = "train_" + metric[len("val_"):]
        log.info("no validation data: monitoring %s instead of %s", fallback, metric)
        return fallback
    return metric
