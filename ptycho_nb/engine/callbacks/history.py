"""Per-epoch metric history as plain lists (what ``TrainResult.history`` holds)."""

from __future__ import annotations

import lightning as L

from ...model.lightning_module import EPOCHS_METRIC

__all__ = ["History"]


class History(L.Callback):
    """Collects every logged epoch metric (after validation) into ``history[name]`` lists."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key, value in trainer.callback_metrics.items():
            if key == EPOCHS_METRIC:
                continue  # bookkeeping, not a curve
            try:
                self.history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):  # non-scalar metrics are not history
                continue
