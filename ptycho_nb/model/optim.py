"""Adam and the learning-rate schedulers the execution config names (``learning_rate``, ``scheduler``)."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from ..config.execution import (EXPONENTIAL_GAMMA, PLATEAU_FACTOR, PLATEAU_PATIENCE,
                                PyTorchExecutionConfig, resolve_monitor)

__all__ = ["configure_optimizers"]


def configure_optimizers(
    cfg: PyTorchExecutionConfig,
    parameters: Iterable[Any],
    *,
    max_epochs: int,
    has_validation: bool = True,
) -> dict[str, Any]:
    """The ``configure_optimizers`` return value for Lightning: Adam(lr) and the scheduler.

    Returns
    -------
    dict
        ``{"optimizer": ...}`` plus ``"lr_scheduler"`` unless ``scheduler == 'Default'``.
    """
    opt = torch.optim.Adam(parameters, lr=cfg.learning_rate)
    out: dict[str, Any] = {"optimizer": opt}
    if cfg.scheduler == "Default":
        return out
    if cfg.scheduler == "Exponential":
        sched: Any = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=EXPONENTIAL_GAMMA)
        out["lr_scheduler"] = {"scheduler": sched, "interval": "epoch"}
    elif cfg.scheduler == "Cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(max_epochs), 1))
        out["lr_scheduler"] = {"scheduler": sched, "interval": "epoch"}
    elif cfg.scheduler == "Plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=cfg.checkpoint_mode, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
        out["lr_scheduler"] = {
            "scheduler": sched,
            "interval": "epoch",
            "monitor": resolve_monitor(cfg, has_validation),
        }
    return out
