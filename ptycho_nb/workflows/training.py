"""``train()``: configs → data → model → Lightning Trainer → a trained model and its archive.

Every execution-config field lands in one place: the Trainer (accelerator, devices, strategy,
precision, deterministic, gradient clipping, accumulation, progress bar, logger), the callbacks
(checkpointing, early stopping), the DataLoader (workers, pinning, persistence, prefetch) or the
optimizer (learning rate, scheduler) — see :mod:`ptycho_nb.config.execution`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import signal
import sys
import threading
import time
import warnings
from typing import Any, Iterable, Iterator, Mapping

import lightning as L

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.execution import (KERNEL_SAFE_STRATEGIES, PyTorchExecutionConfig, resolve_monitor,
                                trainer_kwargs)
from ..config.factories import AuditEntry, TrainingPayload, create_training_payload
from ..data.datamodule import PtychoDataModule
from ..model.lightning_module import EPOCHS_METRIC
from .model_io import ARCHIVE_NAME, save_model

__all__ = ["TrainResult", "train", "run_training", "in_notebook_kernel"]

log = logging.getLogger(__name__)

#: Loggers whose INFO chatter (device summaries, tips) is kept from the user unless asked for.
_CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning")


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
    settings : dict
        What the Trainer really ran with: resolved accelerator, devices, strategy, precision,
        monitored metric, epochs run, whether it was interrupted.
    audit : tuple of AuditEntry
        Every config field's final value and its source (override, config, front end, default).
    elapsed_s : float
        Wall time of ``fit``, seconds.
    """

    module: Any
    history: dict[str, list[float]]
    best_checkpoint: pathlib.Path | None
    archive_path: pathlib.Path | None
    settings: dict[str, Any]
    audit: tuple[AuditEntry, ...]
    elapsed_s: float
    model: ModelConfig
    training: TrainingConfig
    execution: PyTorchExecutionConfig

    @property
    def interrupted(self) -> bool:
        """True when training stopped early on a KeyboardInterrupt (the model is still usable)."""
        return bool(self.settings.get("interrupted"))

    def save(self, path: str | pathlib.Path, *, overwrite: bool = False) -> pathlib.Path:
        """Write the model to a ``wts.h5.zip`` archive (see :func:`ptycho_nb.save_model`)."""
        return save_model(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items() if v and k.endswith("loss")}
        losses = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()))
        return (f"TrainResult(epochs={self.settings.get('epochs_run')}, {losses}, "
                f"accelerator={self.settings.get('accelerator')!r}, archive={self.archive_path}, "
                f"elapsed={self.elapsed_s:.1f}s{', interrupted' if self.interrupted else ''})")


class _History(L.Callback):
    """Collects every logged epoch metric (after validation) into plain lists."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key, value in trainer.callback_metrics.items():
            if key == EPOCHS_METRIC:
                continue
            try:
                self.history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):  # non-scalar metrics are not history
                continue


def in_notebook_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel, where script-launching strategies cannot work."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - odd IPython states
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _live_plot(execution: PyTorchExecutionConfig, given: Iterable[Any]) -> Any:
    """The LivePlot callback the resolved ``plot_every_n_epochs`` asks for (None when off or
    when the caller already passed one)."""
    from ..notebook.live import LivePlot, resolve_plot_every

    every = resolve_plot_every(execution.plot_every_n_epochs)
    if every == 0 or any(isinstance(cb, LivePlot) for cb in given):
        return None
    return LivePlot(every)


def _check_strategy(execution: PyTorchExecutionConfig) -> None:
    if in_notebook_kernel() and execution.strategy not in KERNEL_SAFE_STRATEGIES:
        raise ValueError(
            f"PyTorchExecutionConfig.strategy={execution.strategy!r} cannot run inside a notebook "
            f"kernel (it launches the script again in new processes); use 'ddp_notebook' here, or "
            f"run `ptycho-nb train --strategy {execution.strategy}` from a terminal. "
            f"Kernel-safe strategies: {', '.join(KERNEL_SAFE_STRATEGIES)}")


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    """Keep Lightning's INFO chatter (device summary, tips) out of the user's output."""
    if verbose:
        yield
        return
    saved = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    for name in saved:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Lightning 2.6 on torch 2.13 warns about its own pytree use on every fit.
            warnings.filterwarnings("ignore", message=r".*treespec.*", category=Warning)
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _fit_interruptibly(trainer: L.Trainer, module: L.LightningModule, dm: L.LightningDataModule) -> None:
    """``trainer.fit`` that survives Ctrl+C / a kernel interrupt.

    Lightning answers a KeyboardInterrupt by ignoring SIGINT from then on and calling
    ``sys.exit(1)``: fine for a script, fatal for a notebook kernel. Here the interrupt ends
    training, the SIGINT handler is restored and the caller keeps the model trained so far.
    """
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main else None
    try:
        trainer.fit(module, datamodule=dm)
    except SystemExit:
        if not trainer.interrupted:
            raise
        log.warning("training interrupted after %d epoch(s); keeping the model so far",
                    trainer.current_epoch)
    finally:
        if on_main and previous is not None:
            signal.signal(signal.SIGINT, previous)


def train(data: Any = None, *, model: ModelConfig | None = None, training: TrainingConfig | None = None,
          execution: PyTorchExecutionConfig | None = None, test_data: Any = None,
          front_end: str | None = None, overwrite: bool = False, callbacks: Iterable[Any] = (),
          verbose: bool = False, background: bool = False, **overrides: Any) -> Any:
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
    background : bool
        Train in a background thread and return at once a
        :class:`~ptycho_nb.notebook.background.TrainingHandle` (``.stop()`` ends training within
        a batch, keeping the best checkpoint; ``.join()``; ``.result``), so a notebook kernel stays
        responsive.
    **overrides
        Any config field by name (``learning_rate=3e-4``, ``nepochs=5``, ``'model.gridsize'=2``);
        highest precedence, logged, and an unknown name is an error.

    Returns
    -------
    TrainResult, or a TrainingHandle when ``background=True``
    """
    if background:
        from ..notebook.background import start_training

        return start_training(data=data, model=model, training=training, execution=execution,
                              test_data=test_data, front_end=front_end, overwrite=overwrite,
                              callbacks=callbacks, verbose=verbose, **overrides)
    payload = create_training_payload(
        data, model=model, training=training, execution=execution, overrides=overrides,
        front_end=front_end, test_data=test_data)
    return run_training(payload, overwrite=overwrite, callbacks=callbacks, verbose=verbose)


def run_training(payload: TrainingPayload, *, overwrite: bool = False, callbacks: Iterable[Any] = (),
                 verbose: bool = False) -> TrainResult:
    """Run a validated :class:`~ptycho_nb.config.factories.TrainingPayload` (the CLI's entry)."""
    from ..model.lightning_module import PINNModule, scaling_statistics
    from .archive import load_checkpoint_weights

    mcfg, tcfg, ecfg = payload.model, payload.training, payload.execution
    _check_strategy(ecfg)
    out_dir = pathlib.Path(tcfg.output_dir)
    archive = out_dir / ARCHIVE_NAME
    if archive.exists() and not overwrite:
        raise FileExistsError(f"{archive} exists: pass overwrite=True (CLI: --overwrite) or choose "
                              "another TrainingConfig.output_dir")
    if tcfg.seed is not None:
        L.seed_everything(tcfg.seed, workers=True, verbose=False)

    dm = PtychoDataModule(payload.train_data, model=mcfg, training=tcfg, execution=ecfg,
                          test_data=payload.test_data)
    module = PINNModule(model=mcfg, training=tcfg, execution=ecfg, probe=payload.train_data.probe,
                        scaling=scaling_statistics(payload.train_data))
    module.has_validation = dm.has_validation
    history = _History()
    extra = [history, *callbacks]
    live = _live_plot(ecfg, extra)
    if live is not None:
        extra.append(live)
    kwargs = trainer_kwargs(ecfg, max_epochs=tcfg.nepochs, default_root_dir=out_dir,
                            has_validation=dm.has_validation, checkpoint_dir=out_dir / "checkpoints",
                            extra_callbacks=extra)
    kwargs["enable_model_summary"] = verbose
    if not dm.has_validation:
        kwargs["limit_val_batches"] = 0
    settings = {
        "accelerator": kwargs["accelerator"], "devices": kwargs["devices"],
        "strategy": kwargs["strategy"], "precision": kwargs["precision"],
        "monitor": resolve_monitor(ecfg, dm.has_validation), "validation": dm.has_validation,
        "train_samples": len(dm.train_set), "output_dir": str(out_dir),
        "plot_every_n_epochs": next((getattr(cb, "every_n_epochs", 0) for cb in extra
                                     if type(cb).__name__ == "LivePlot"), 0),
    }
    log.info("training on %s (accelerator %r requested), %d samples, %d epochs",
             settings["accelerator"], ecfg.accelerator, len(dm.train_set), tcfg.nepochs)

    with _quiet_lightning(verbose):
        trainer = L.Trainer(**kwargs)
        t0 = time.perf_counter()
        _fit_interruptibly(trainer, module, dm)
        elapsed = time.perf_counter() - t0

    settings["interrupted"] = bool(trainer.interrupted)
    settings["epochs_run"] = max(int(trainer.current_epoch),
                                 int(trainer.callback_metrics.get(EPOCHS_METRIC, 0)))
    settings["global_step"] = int(trainer.global_step)
    settings["devices_used"] = int(trainer.num_devices)
    settings["global_zero"] = bool(trainer.is_global_zero)
    best = None
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        best = pathlib.Path(ckpt.best_model_path)
        saved = load_checkpoint_weights(best)
        module.load_state_dict(saved["state_dict"])
    if not history.history and trainer.callback_metrics:
        # Spawned strategies (ddp_spawn) run the callbacks in child processes; Lightning hands only
        # the final metrics back to this one.
        history.history = {k: [float(v)] for k, v in trainer.callback_metrics.items()
                           if v.numel() == 1 and k != EPOCHS_METRIC}
        settings["history"] = "final epoch only (metrics of spawned processes)"
    module.eval()

    archive_path = None
    if trainer.is_global_zero:
        archive_path = save_model(module, archive, overwrite=overwrite)
    return TrainResult(module=module, history=history.history, best_checkpoint=best,
                       archive_path=archive_path, settings=settings, audit=payload.audit,
                       elapsed_s=elapsed, model=mcfg, training=tcfg, execution=ecfg)


def history_table(history: Mapping[str, list[float]]) -> str:
    """The loss history as a small plain-text table (one row per epoch)."""
    keys = [k for k in ("train_loss", "val_loss") if k in history]
    rows = ["epoch  " + "  ".join(f"{k:>12}" for k in keys)]
    for i in range(max((len(history[k]) for k in keys), default=0)):
        rows.append(f"{i:5d}  " + "  ".join(
            f"{history[k][i]:12.5g}" if i < len(history[k]) else " " * 12 for k in keys))
    return "\n".join(rows)
