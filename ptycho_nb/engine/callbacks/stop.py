"""A stop button for a fit running in another thread: ``event.set()`` ends it within a batch."""

from __future__ import annotations

import threading
from typing import Any

import lightning as L

__all__ = ["StopCallback"]


class StopCallback(L.Callback):
    """Sets ``trainer.should_stop`` once ``event`` is set (checked at every batch).

    Lightning then ends the fit as usual, so checkpoints and the live view stay consistent.

    Attributes
    ----------
    batches : int
        Training batches finished so far (what a progress display can show).
    """

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.batches = 0

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
        self._check(trainer)
