"""``train()``: configs → data → model → Lightning Trainer → a trained model and its archive.

The settings are resolved once (:mod:`ptycho_nb.workflows.payload`); the Trainer, its callbacks
and the DataLoaders are assembled by the engine (:mod:`ptycho_nb.engine`), where every
execution-config field lands. Training in a background thread, for a responsive notebook, is
:func:`ptycho_nb.notebook.start_training`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import time
import warnings
from typing import Any, Iterable, Mapping

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.compat import check_compatible
from ..config.execution import PyTorchExecutionConfig, resolve_monitor
from ..config.fields import ConfigError
from ..config.precedence import AuditEntry
from ..engine.callbacks import History, LivePlot, StopOnNonFiniteLoss, resolve_plot_every
from ..engine.datamodule import PtychoDataModule
from ..engine.run_info import TrainRunInfo
from ..engine.trainer import (build_trainer, fit_interruptibly, quiet_lightning, resolve_accelerator,
                              seed_everything)
from ..model.lightning_module import EPOCHS_METRIC, PINNModule, scaling_statistics
from ..model.weights import load_checkpoint_weights, load_state_dict_strict
from ..model.archive import ARCHIVE_NAME
from ..model.io import load_model, save_model
from .payload import TrainingPayload, create_training_payload

__all__ = ["TrainResult", "train", "run_training", "history_table", "init_model_config",
           "INIT_FREE_FIELDS"]

log = logging.getLogger(__name__)

#: ModelConfig fields a fine-tuning run may choose differently from its starting model: the
#: network maps each pattern on its own (the C patterns of a group are folded into the batch), so
#: the grouping and the overlap merge change no weight.
INIT_FREE_FIELDS = ("gridsize", "object_big")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    module : PINNModule
        The trained model (the best checkpoint's weights when checkpointing monitored one).
    history : dict of str → list of float
        Per-epoch values of every logged metric (``train_loss``, ``val_loss``, ...).
    best_checkpoint : Path or None
        Lightning checkpoint of the best epoch (loads with ``torch.load(weights_only=True)``).
    archive_path : Path or None
        The ``wts.h5.zip`` written into the output folder.
    run : TrainRunInfo
        What the Trainer really ran with (resolved accelerator, devices, strategy, precision,
        monitored metric) and how it ended (epochs run, interrupted).
    audit : tuple of AuditEntry
        Every config field's final value and the layer it came from (spec §4.9).
    elapsed_s : float
        Wall time of ``fit``, seconds.
    model, training, execution : the resolved configs
    """

    module: Any
    history: dict[str, list[float]]
    best_checkpoint: pathlib.Path | None
    archive_path: pathlib.Path | None
    run: TrainRunInfo
    audit: tuple[AuditEntry, ...]
    elapsed_s: float
    model: ModelConfig
    training: TrainingConfig
    execution: PyTorchExecutionConfig

    @property
    def interrupted(self) -> bool:
        """True when training stopped early on a KeyboardInterrupt (the model is still usable)."""
        return self.run.interrupted

    @property
    def settings(self) -> dict[str, Any]:
        """Deprecated dict form of :attr:`run`."""
        warnings.warn("TrainResult.settings is deprecated: use TrainResult.run (a TrainRunInfo)",
                      DeprecationWarning, stacklevel=2)
        return self.run.as_dict()

    def save(self, path: str | pathlib.Path, *, overwrite: bool = False,
             card: Mapping[str, Any] | None = None) -> pathlib.Path:
        """Write the model to a ``wts.h5.zip`` archive, with an optional model card (see
        :func:`ptycho_nb.save_model`)."""
        return save_model(self, path, overwrite=overwrite, card=card)

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items() if v and k.endswith("loss")}
        losses = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()))
        return (f"TrainResult(epochs={self.run.epochs_run}, {losses}, "
                f"accelerator={self.run.accelerator!r}, archive={self.archive_path}, "
                f"elapsed={self.elapsed_s:.1f}s{', interrupted' if self.interrupted else ''})")


def _check_finite_history(history: Mapping[str, list[float]]) -> None:
    """Refuse a run whose logged losses went NaN/inf (e.g. under a spawned strategy, where the
    batch check, :class:`~ptycho_nb.engine.callbacks.StopOnNonFiniteLoss`, runs in the child
    processes)."""
    for key, values in history.items():
        bad = [i for i, v in enumerate(values) if not math.isfinite(float(v))]
        if bad and key.endswith(("loss", "nll", "mae")):
            raise FloatingPointError(
                f"training metric {key} became {values[bad[0]]} at epoch {bad[0]}; no model "
                "archive was written. Lower learning_rate (or the loss weights), or check the "
                "data for extreme values")


def _check_finite_weights(module: Any) -> None:
    """Refuse a trained module with NaN/inf weights (they would only make NaN reconstructions)."""
    import torch

    for name, t in module.state_dict().items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise FloatingPointError(
                f"training left non-finite values in weight {name!r}; no model archive was "
                "written. Lower learning_rate (or the loss weights), or check the data for "
                "extreme values")


def train(data: Any = None, *, model: ModelConfig | None = None, training: TrainingConfig | None = None,
          execution: PyTorchExecutionConfig | None = None, test_data: Any = None,
          front_end: str | None = None, overwrite: bool = False, callbacks: Iterable[Any] = (),
          verbose: bool = False, init: Any = None, **overrides: Any) -> TrainResult:
    """Train a physics-informed model on a scan, self-supervised (no ground truth needed).

    Parameters
    ----------
    data : PtychoData or path, optional
        Training scan (in memory or a file); else ``training.train_data_file``.
    model, training, execution : configs, optional
        Dataclass defaults where omitted.
    test_data : PtychoData or path, optional
        Held-out scan: the validation metrics are computed on it.
    front_end : {None, 'cli', 'widget'}
        Which front-end defaults apply below the configs (accelerator 'auto', progress bar on).
    overwrite : bool
        Replace an existing ``wts.h5.zip`` in ``training.output_dir`` (refused by default,
        before training starts).
    callbacks : iterable of lightning Callbacks
        Extra callbacks (e.g. a live plot), added after ours.
    verbose : bool
        Let Lightning's informational messages through.
    init : path or str, optional
        Start from this model's weights (fine-tuning): a ``wts.h5.zip`` archive, a training output
        folder or ``"pretrained:NAME"``. Shorthand for the override ``init_model=...``
        (``TrainingConfig.init_model``); the model settings come from that model.
    **overrides
        Any config field by name (``learning_rate=3e-4``, ``nepochs=5``, ``'model.gridsize'=2``);
        highest precedence, logged, and an unknown name is an error.

    Returns
    -------
    TrainResult
        Also after an interrupt (``result.interrupted``). To train in the background and keep a
        notebook responsive, use :func:`ptycho_nb.notebook.start_training`.
    """
    if "background" in overrides:
        raise TypeError("train(background=...) is gone: call "
                        "ptycho_nb.notebook.start_training(data, ...) for a background run")
    if init is not None:
        if any(k in overrides for k in ("init_model", "training.init_model")):
            raise TypeError("train(): pass init= or init_model=, not both (init is an alias of "
                            "TrainingConfig.init_model)")
        overrides["init_model"] = init
    payload = create_training_payload(
        data, model=model, training=training, execution=execution, overrides=overrides,
        front_end=front_end, test_data=test_data)
    return run_training(payload, overwrite=overwrite, callbacks=callbacks, verbose=verbose)


def run_training(payload: TrainingPayload, *, overwrite: bool = False, callbacks: Iterable[Any] = (),
                 verbose: bool = False) -> TrainResult:
    """Run a validated :class:`~ptycho_nb.workflows.payload.TrainingPayload` (the CLI's entry)."""
    mcfg, tcfg, ecfg = payload.model, payload.training, payload.execution
    out_dir = pathlib.Path(tcfg.output_dir)
    archive = out_dir / ARCHIVE_NAME
    if archive.exists() and not overwrite:
        raise FileExistsError(f"{archive} exists: pass overwrite=True (CLI: --overwrite) or choose "
                              "another TrainingConfig.output_dir")
    audit = payload.audit
    start = None
    if tcfg.init_model is not None:
        # before seeding: building the loaded module draws random numbers a run from scratch
        # does not, and the seeded run should not depend on that
        start = load_model(tcfg.init_model)
        mcfg, audit = init_model_config(start.model_config, mcfg, audit, payload.train_data,
                                        where=str(tcfg.init_model))
        check_compatible(ecfg, mcfg, tcfg)
    if tcfg.seed is not None:
        seed_everything(tcfg.seed)

    dm = PtychoDataModule(payload.train_data, model=mcfg, training=tcfg, execution=ecfg,
                          test_data=payload.test_data)
    module = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=payload.train_data.probe,
                        scaling=scaling_statistics(payload.train_data),
                        network=None if start is None else start.network_kwargs)
    if start is not None:
        _start_from(module, start, payload.train_data)
    module.has_validation = dm.has_validation
    history = History()
    extra = [history, StopOnNonFiniteLoss(), *callbacks]
    live = next((cb for cb in extra if isinstance(cb, LivePlot)), None)
    if live is None:
        every = resolve_plot_every(ecfg.plot_every_n_epochs)
        if every != 0:
            live = LivePlot(every)
            extra.append(live)
    monitor = resolve_monitor(ecfg, dm.has_validation)
    accelerator = resolve_accelerator(ecfg)
    log.info("training on %s (accelerator %r requested), %d samples, %d epochs",
             accelerator, ecfg.accelerator, len(dm.train_set), tcfg.nepochs)

    with quiet_lightning(verbose):
        trainer = build_trainer(ecfg, mode="train", max_epochs=tcfg.nepochs, default_root_dir=out_dir,
                                has_validation=dm.has_validation, checkpoint_dir=out_dir / "checkpoints",
                                extra_callbacks=extra, verbose=verbose)
        t0 = time.perf_counter()
        fit_interruptibly(trainer, module, dm)
        elapsed = time.perf_counter() - t0

    best = None
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        best = pathlib.Path(ckpt.best_model_path)
        try:
            saved = load_checkpoint_weights(best)
        except (FileNotFoundError, ValueError, OSError):
            if not trainer.interrupted:
                raise
            # Ctrl+C while that checkpoint was being written: it is missing or incomplete, so
            # the model so far is the one in memory (the last finished step).
            log.warning("training interrupted while writing %s; keeping the weights in memory "
                        "(the last finished step) instead", best)
            best = None
        else:
            module.load_state_dict(saved["state_dict"])
    scope = "epochs"
    if not history.history and trainer.callback_metrics:
        # Spawned strategies (ddp_spawn) run the callbacks in child processes; Lightning hands only
        # the final metrics back to this one.
        history.history = {k: [float(v)] for k, v in trainer.callback_metrics.items()
                           if v.numel() == 1 and k != EPOCHS_METRIC}
        scope = "final"
    _check_finite_history(history.history)
    _check_finite_weights(module)
    module.eval()
    run = TrainRunInfo(
        accelerator=accelerator,
        # what Lightning ran (e.g. '16-mixed' runs as 'bf16-mixed' on the CPU), not what was asked
        devices=ecfg.devices, strategy=ecfg.strategy, precision=str(trainer.precision), monitor=monitor,
        validation=dm.has_validation, train_samples=len(dm.train_set), output_dir=str(out_dir),
        plot_every_n_epochs=live.every_n_epochs if live is not None else 0,
        epochs_run=max(int(trainer.current_epoch), int(trainer.callback_metrics.get(EPOCHS_METRIC, 0))),
        interrupted=bool(trainer.interrupted), global_step=int(trainer.global_step),
        devices_used=int(trainer.num_devices), global_zero=bool(trainer.is_global_zero),
        history_scope=scope)

    archive_path = None
    if trainer.is_global_zero:
        archive_path = save_model(module, archive, overwrite=overwrite)
    return TrainResult(module=module, history=history.history, best_checkpoint=best,
                       archive_path=archive_path, run=run, audit=audit,
                       elapsed_s=elapsed, model=mcfg, training=tcfg, execution=ecfg)


def _user_set(entry: AuditEntry, default: Any) -> bool:
    """Whether a ModelConfig value was chosen for this run rather than defaulted.

    A config object sets every field, so its values equal to the dataclass default count as not
    chosen (as in :func:`~ptycho_nb.config.precedence.log_audit`); N taken from the data
    (source ``'data'``) is checked against the model separately.
    """
    if entry.source in ("default", "data"):
        return False
    return not (entry.source.endswith("_config") and entry.value == default)


def init_model_config(start: ModelConfig, requested: ModelConfig, audit: tuple[AuditEntry, ...],
                      train_data: Any, *, where: str) -> tuple[ModelConfig, tuple[AuditEntry, ...]]:
    """The ModelConfig of a run that starts from a model whose config is ``start``.

    Every field comes from ``start`` except :data:`INIT_FREE_FIELDS`, which keep the value chosen
    for this run (``start``'s when none was chosen). A field chosen for this run that differs from
    ``start``'s is an error, as are training patterns of another size than ``start.N``.

    Returns
    -------
    config : ModelConfig
        The config really used.
    audit : tuple of AuditEntry
        ``audit`` with the ``model.*`` entries taken from the starting model marked with source
        ``'init_model'``.

    Raises
    ------
    ConfigError
        Naming the contradicting field, its two values and ``where`` the model came from.
    """
    entries = {e.field: e for e in audit}
    defaults = ModelConfig()
    data_n = getattr(getattr(train_data, "diffraction", None), "shape", (None,))[-1]
    if data_n is not None and int(data_n) != start.N:
        raise ConfigError(
            f"TrainingConfig.init_model={where!r}: that model was trained for N={start.N} but the "
            f"training patterns are {data_n}x{data_n} (N must match the data)",
            fields=("N", "init_model"), value=data_n)
    values: dict[str, Any] = {}
    taken: set[str] = set()
    for f in dataclasses.fields(ModelConfig):
        entry = entries.get(f"model.{f.name}")
        chosen = entry is not None and _user_set(entry, getattr(defaults, f.name))
        mine, theirs = getattr(requested, f.name), getattr(start, f.name)
        if f.name in INIT_FREE_FIELDS:
            values[f.name] = mine if chosen else theirs
        elif chosen and mine != theirs:
            raise ConfigError(
                f"ModelConfig.{f.name}={mine!r} contradicts the model it starts from "
                f"(TrainingConfig.init_model={where!r} has {f.name}={theirs!r}): the model settings "
                f"come from that model; leave {f.name} unset or start from another model",
                fields=(f.name,), value=mine)
        else:
            values[f.name] = theirs
        if not chosen:
            taken.add(f"model.{f.name}")
    config = ModelConfig(**values)
    new_audit = tuple(AuditEntry(e.field, getattr(config, e.field.split(".", 1)[1]), "init_model")
                      if e.field in taken else e for e in audit)
    return config, new_audit


def _start_from(module: PINNModule, start: PINNModule, train_data: Any) -> None:
    """Give ``module`` the network weights of ``start`` (``net.*``: parameters and buffers).

    The probe and the intensity scale stay this scan's. A ``probe_input`` model also adopts the
    scan's input statistic; any other keeps the one its network was trained with, so before the
    first step it computes exactly what ``start`` computes.
    """
    net_state = {k[len("net."):]: v for k, v in start.state_dict().items() if k.startswith("net.")}
    try:
        load_state_dict_strict(module.net, net_state)
    except ValueError as exc:
        raise ValueError(f"TrainingConfig.init_model: the starting model's network does not fit "
                         f"this run's: {exc}") from None
    module.scaling["input_scale"] = float(module.net.input_scale)
    if module.model_config.probe_input:
        module.adopt_scan(train_data)
        module.scaling["input_scale"] = float(module.net.input_scale)


def history_table(history: Mapping[str, list[float]]) -> str:
    """The loss history as a small plain-text table (one row per epoch, numbered from 1 as the
    progress bar, the log lines and the live figure number them)."""
    keys = [k for k in ("train_loss", "val_loss") if k in history]
    rows = ["epoch  " + "  ".join(f"{k:>12}" for k in keys)]
    for i in range(max((len(history[k]) for k in keys), default=0)):
        rows.append(f"{i + 1:5d}  " + "  ".join(
            f"{history[k][i]:12.5g}" if i < len(history[k]) else " " * 12 for k in keys))
    return "\n".join(rows)
