"""Stop a fit at the first non-finite training loss, so no archive of NaN weights is written."""

from __future__ import annotations

from typing import Any, Mapping

import lightning as L
import torch

__all__ = ["StopOnNonFiniteLoss"]


class StopOnNonFiniteLoss(L.Callback):
    """Stop training at the first batch whose loss is NaN/inf.

    Past that point every update writes NaN into the weights; stopping with an error (rather than
    finishing the epochs and saving) means no archive of NaN weights is ever written.

    Under DDP the decision is shared (any rank's non-finite loss stops every rank at the same
    batch): a rank that raised alone would leave the others waiting forever in their next
    collective.

    Raises
    ------
    FloatingPointError
        From ``fit``, naming the loss value, the epoch and the batch.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        bad = isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            value = float(loss.detach().float().mean()) if bad else "non-finite on another process"
            raise FloatingPointError(
                f"training loss became {value} at epoch "
                f"{trainer.current_epoch}, batch {batch_idx}; training stopped and no model "
                "archive was written. Lower learning_rate (or the loss weights), or check the "
                "data for extreme values")
