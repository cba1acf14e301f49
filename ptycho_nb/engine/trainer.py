"""The one place an execution config becomes a Lightning ``Trainer``, for training and inference.

Every trainer-category field of :class:`~ptycho_nb.config.execution.PyTorchExecutionConfig` lands
here (accelerator, devices, strategy, precision, determinism, clipping, accumulation), and so do
the progress bar, checkpointing, early stopping and the logger. Training (``mode='train'``) and
inference (``mode='infer'``) build their Trainers through :func:`build_trainer`, and so does the
pretraining stream of ``recipes/`` (epochs of a fixed number of batches, a time budget), so the
flag → Trainer mapping exists once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import warnings
from typing import Any, Iterable, Iterator

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException

from ..config.execution import KERNEL_SAFE_STRATEGIES, PyTorchExecutionConfig, resolve_monitor
from .. import kernel
from ..devices import concrete_accelerator
from .callbacks.progress import PtychoProgressBar

__all__ = [
    "MODES",
    "resolve_accelerator",
    "resolve_precision",
    "build_logger",
    "default_callbacks",
    "trainer_kwargs",
    "build_trainer",
    "check_strategy",
    "quiet_lightning",
    "fit_interruptibly",
    "seed_everything",
]

log = logging.getLogger(__name__)

MODES = ("train", "infer")
#: Loggers whose INFO chatter (device summaries, tips) is kept from the user unless asked for.
_CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning")


def resolve_accelerator(cfg: PyTorchExecutionConfig) -> str:
    """The concrete accelerator 'auto' resolves to (cuda, then mps, then cpu); others unchanged."""
    return concrete_accelerator(cfg.accelerator)


def resolve_precision(cfg: PyTorchExecutionConfig, accelerator: str) -> str:
    """The precision that really runs on ``accelerator`` (reported as such).

    Lightning runs ``'16-mixed'`` on the CPU as ``'bf16-mixed'`` (CPU autocast has no float16);
    asking for it explicitly here makes the run report what ran. ``'16-true'`` cannot run on the
    CPU (torch's CPU FFT has no float16), so it is refused naming the field.
    """
    precision = cfg.precision
    if accelerator == "cpu" and precision == "16-mixed":
        log.warning("precision '16-mixed' runs as 'bf16-mixed' on the CPU (no float16 autocast "
                    "there); the run reports 'bf16-mixed'")
        return "bf16-mixed"
    if accelerator == "cpu" and precision == "16-true":
        raise ValueError("PyTorchExecutionConfig.precision='16-true' cannot run on the CPU "
                         "(torch's CPU FFT has no float16); use '32-true', 'bf16-mixed' or "
                         "'bf16-true', or a GPU accelerator")
    return precision


def build_logger(cfg: PyTorchExecutionConfig, save_dir: str | os.PathLike) -> Any:
    """The Lightning logger for ``cfg.logger_backend`` (False when None)."""
    backend = cfg.logger_backend
    if backend is None:
        return False
    if backend == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(save_dir), name="logs")
    if backend == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(save_dir), name="logs")
    if backend == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(save_dir=str(save_dir))
    raise AssertionError(backend)  # pragma: no cover


def default_callbacks(
    cfg: PyTorchExecutionConfig,
    *,
    has_validation: bool,
    checkpoint_dir: str | os.PathLike | None = None,
    mode: str = "train",
) -> list[Any]:
    """Lightning callbacks implied by ``cfg``: progress bar, checkpointing, early stopping.

    The progress bar is chosen explicitly (TQDM: a widget in Jupyter, text in a terminal) and is
    added only when ``enable_progress_bar`` is True (Lightning refuses a bar callback otherwise).
    ``ModelCheckpoint`` is added only when ``enable_checkpointing`` is True; inference
    (``mode='infer'``) gets the progress bar only.
    """
    out: list[Any] = []
    if cfg.enable_progress_bar:
        out.append(PtychoProgressBar())
    if mode == "infer":
        return out
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    monitor = resolve_monitor(cfg, has_validation)
    if cfg.enable_checkpointing:
        out.append(
            ModelCheckpoint(
                dirpath=None if checkpoint_dir is None else str(checkpoint_dir),
                monitor=monitor,
                mode=cfg.checkpoint_mode,
                save_top_k=cfg.checkpoint_save_top_k,
                save_last=False,
            )
        )
    out.append(EarlyStopping(monitor=monitor, mode=cfg.checkpoint_mode, patience=cfg.early_stop_patience))
    return out


def trainer_kwargs(
    cfg: PyTorchExecutionConfig,
    *,
    mode: str = "train",
    max_epochs: int | None = None,
    default_root_dir: str | os.PathLike | None = None,
    has_validation: bool = True,
    extra_callbacks: Iterable[Any] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    verbose: bool = False,
    limit_train_batches: int | None = None,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``lightning.Trainer`` from an execution config.

    Parameters
    ----------
    cfg : PyTorchExecutionConfig
    mode : {'train', 'infer'}
        Inference predicts on one device without logger, checkpoints or gradient settings.
    max_epochs : int, optional
        From ``TrainingConfig.nepochs`` (training).
    default_root_dir : path, optional
        Output folder (logs and checkpoints go below it; training).
    has_validation : bool
        Whether validation data exist (selects the monitored metric; training).
    extra_callbacks : iterable
        Further callbacks (history, live plot, stop button), appended after ours.
    checkpoint_dir : path, optional
        Folder of ``ModelCheckpoint`` (None: Lightning's default below ``default_root_dir``).
    verbose : bool
        Show Lightning's model summary.
    limit_train_batches : int, optional
        Batches per training epoch (training): a streamed dataset has no length, so its epochs
        end here; None = the whole training set.
    max_minutes : float, optional
        Wall-clock budget of the fit in minutes (training; Lightning's ``max_time``), after which
        it ends as after its last epoch; None = no budget.

    Returns
    -------
    dict
        ``lightning.Trainer(**kwargs)`` accepts it as is.
    """
    if mode not in MODES:
        raise ValueError(f"trainer_kwargs: mode={mode!r} is invalid: rule is one of {MODES}")
    accelerator = resolve_accelerator(cfg)
    if cfg.accelerator == "auto":
        log.info("accelerator 'auto' resolved to %r", accelerator)
    common: dict[str, Any] = {
        "accelerator": accelerator,
        "precision": resolve_precision(cfg, accelerator),
        "enable_progress_bar": cfg.enable_progress_bar,
        "enable_model_summary": verbose,
    }
    callbacks = default_callbacks(cfg, has_validation=has_validation, checkpoint_dir=checkpoint_dir,
                                  mode=mode) + list(extra_callbacks)
    if mode == "infer":
        # One process predicts the whole scan: gathering predictions across ranks buys nothing here.
        return {**common, "devices": 1, "logger": False, "enable_checkpointing": False,
                "inference_mode": True, "callbacks": callbacks}
    root = default_root_dir if default_root_dir is not None else os.getcwd()
    kw: dict[str, Any] = {
        **common,
        "devices": cfg.devices,
        "strategy": cfg.strategy,
        "deterministic": cfg.deterministic,
        "gradient_clip_val": cfg.gradient_clip_val,
        "accumulate_grad_batches": cfg.accum_steps,
        "enable_checkpointing": cfg.enable_checkpointing,
        "logger": build_logger(cfg, root),
        "callbacks": callbacks,
        "default_root_dir": str(root),
    }
    if max_epochs is not None:
        kw["max_epochs"] = int(max_epochs)
    if limit_train_batches is not None:
        kw["limit_train_batches"] = int(limit_train_batches)
    if max_minutes is not None:
        kw["max_time"] = {"minutes": float(max_minutes)}
    if not has_validation:
        kw["limit_val_batches"] = 0
    return kw


def build_trainer(cfg: PyTorchExecutionConfig, **kwargs: Any) -> L.Trainer:
    """``lightning.Trainer(**trainer_kwargs(cfg, **kwargs))`` (see :func:`trainer_kwargs`)."""
    if kwargs.get("mode", "train") == "train":
        check_strategy(cfg)
    kw = trainer_kwargs(cfg, **kwargs)
    try:
        return L.Trainer(**kw)
    except (MisconfigurationException, ImportError) as exc:
        # e.g. accelerator='gpu' on a machine without one, strategy='deepspeed' not installed
        raise ValueError(
            f"PyTorchExecutionConfig accelerator={cfg.accelerator!r} (resolved {kw['accelerator']!r}), "
            f"strategy={kw.get('strategy', 'auto')!r}, precision={kw['precision']!r} cannot run on "
            f"this machine: {exc}") from exc


def check_strategy(cfg: PyTorchExecutionConfig) -> None:
    """Refuse strategies that re-launch the script when running inside a notebook kernel."""
    if kernel.in_notebook_kernel() and cfg.strategy not in KERNEL_SAFE_STRATEGIES:
        raise ValueError(
            f"PyTorchExecutionConfig.strategy={cfg.strategy!r} cannot run inside a notebook "
            f"kernel (it launches the script again in new processes); use 'ddp_notebook' here, or "
            f"run `ptycho-nb train --strategy {cfg.strategy}` from a terminal. "
            f"Kernel-safe strategies: {', '.join(KERNEL_SAFE_STRATEGIES)}")


@contextlib.contextmanager
def quiet_lightning(verbose: bool) -> Iterator[None]:
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


def fit_interruptibly(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """``trainer.fit`` that survives Ctrl+C / a kernel interrupt.

    Lightning answers a KeyboardInterrupt by ignoring SIGINT from then on and calling
    ``sys.exit(1)``: fine for a script, fatal for a notebook kernel. Here the interrupt ends
    training, the SIGINT handler is restored and the caller keeps the model trained so far.
    """
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main else None
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:
        if not trainer.interrupted:
            raise
        log.warning("training interrupted after %d epoch(s); keeping the model so far",
                    trainer.current_epoch)
    finally:
        if on_main and previous is not None:
            signal.signal(signal.SIGINT, previous)


def seed_everything(seed: int) -> int:
    """Seed Python's, numpy's and torch's generators, and every DataLoader worker's, from ``seed``.

    Lightning's ``seed_everything`` with ``workers=True`` (each DataLoader worker derives a seed of
    its own, so workers do not repeat each other's random draws) and without its log line:
    ``TrainingConfig.seed`` and the pretraining recipe's seed land here, so workflows need no
    Lightning import of their own.

    Parameters
    ----------
    seed : int
        An unsigned 32-bit integer (what ``TrainingConfig.seed`` accepts).

    Returns
    -------
    int
        The seed set.
    """
    return L.seed_everything(seed, workers=True, verbose=False)
