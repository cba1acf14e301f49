"""Training in a background thread, stoppable within a batch (design §7).

A Stop button cannot be clicked while ``trainer.fit`` blocks the kernel; running
:func:`ptycho_nb.train` in a thread keeps the kernel responsive, and a small Lightning callback
turns :meth:`TrainingHandle.stop` into ``trainer.should_stop = True`` at the next batch end.
Lightning then ends the fit as usual, so the best checkpoint so far is kept and the
:class:`~ptycho_nb.workflows.training.TrainResult` is returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import lightning as L

__all__ = ["StopCallback", "TrainingHandle", "start_training"]


class StopCallback(L.Callback):
    """Sets ``trainer.should_stop`` once ``event`` is set (checked at every batch end)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.batches = 0
        self.epochs = 0

    def _check(self, trainer: L.Trainer) -> None:
        if self.event.is_set():
            trainer.should_stop = True

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> Any:
        if self.event.is_set():
            trainer.should_stop = True
            return -1  # skip the rest of this epoch
        return None

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self.batches += 1
        self._check(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self.epochs += 1
        self._check(trainer)


class TrainingHandle:
    """A training run in a background thread.

    Attributes
    ----------
    result : TrainResult or None
        Set when training finished (also after :meth:`stop`).
    error : BaseException or None
        The exception training raised, if any.
    """

    def __init__(self, train_kwargs: dict[str, Any],
                 on_done: Callable[[TrainingHandle], None] | None = None) -> None:
        self._stop_event = threading.Event()
        self.callback = StopCallback(self._stop_event)
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._on_done = on_done
        kw = dict(train_kwargs)
        kw["callbacks"] = [*kw.get("callbacks", ()), self.callback]
        self._kwargs = kw
        self._thread = threading.Thread(target=self._run, name="ptycho_nb-train", daemon=True)

    def _run(self) -> None:
        from ..workflows.training import train

        self.started_at = time.perf_counter()
        try:
            self.result = train(**self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported through .error / join()
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            if self._on_done is not None:
                try:
                    self._on_done(self)
                except Exception:
                    import logging

                    logging.getLogger(__name__).exception("on_done callback failed")

    def start(self) -> TrainingHandle:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask training to stop at the next batch end (best checkpoint kept)."""
        self._stop_event.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    @property
    def done(self) -> bool:
        """True once the thread has finished (successfully or not)."""
        return self.finished_at is not None and not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> Any:
        """Wait for training; return the :class:`TrainResult` (None if still running after
        ``timeout``). Re-raises the exception training raised."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        state = ("failed" if self.error is not None else "done") if self.done else (
            "stopping" if self.stop_requested else "running")
        return f"<TrainingHandle {state}, {self.callback.batches} batches>"


def start_training(on_done: Callable[[TrainingHandle], None] | None = None,
                   **train_kwargs: Any) -> TrainingHandle:
    """Start :func:`ptycho_nb.train` (``train_kwargs`` as for it) in a background thread.

    A :class:`StopCallback` is added to ``callbacks``; ``on_done(handle)`` runs in the thread
    when training ends. Returns the started :class:`TrainingHandle`.
    """
    return TrainingHandle(train_kwargs, on_done=on_done).start()
