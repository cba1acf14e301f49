"""Tell a dataset which epoch begins, so an iterable stream can start a new stretch each epoch."""

from __future__ import annotations

from typing import Protocol

import lightning as L

__all__ = ["DatasetEpoch", "EpochSettable"]


class EpochSettable(Protocol):
    """A dataset whose next pass depends on the epoch (``FreshScans``, ``VariedScanDataset``)."""

    def set_epoch(self, epoch: int) -> None: ...


class DatasetEpoch(L.Callback):
    """Calls ``dataset.set_epoch(trainer.current_epoch)`` as every training epoch starts.

    Lightning tells samplers the epoch, not iterable datasets. The epoch comes from the trainer,
    so a fit resumed from a checkpoint continues the stream where it left off rather than
    replaying its first epochs. The dataset must be the one the DataLoader iterates in this
    process (``num_workers=0``, or workers that are not persistent: they copy it per epoch).
    """

    def __init__(self, dataset: EpochSettable) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dataset.set_epoch(int(trainer.current_epoch))
