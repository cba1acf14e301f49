"""Rules that relate fields of different configs (checked wherever both are known)."""

from __future__ import annotations

from .canonical import ModelConfig, TrainingConfig
from .execution import PyTorchExecutionConfig
from .fields import ConfigError

__all__ = ["check_compatible"]


def check_compatible(
    execution: PyTorchExecutionConfig,
    model: ModelConfig | None = None,
    training: TrainingConfig | None = None,
) -> None:
    """Cross-config rules; ``ConfigError`` names the fields of both configs."""
    if model is not None and execution.middle_trim >= model.N // 2:
        raise ConfigError(
            f"PyTorchExecutionConfig.middle_trim={execution.middle_trim!r} is invalid with "
            f"ModelConfig.N={model.N!r}: rule is middle_trim < N/2",
            fields=("middle_trim", "N"), value=execution.middle_trim,
        )
    if model is not None and training is not None and training.neighbor_count < model.gridsize**2:
        raise ConfigError(
            f"TrainingConfig.neighbor_count={training.neighbor_count!r} is invalid with "
            f"ModelConfig.gridsize={model.gridsize!r}: rule is neighbor_count ≥ gridsize²",
            fields=("neighbor_count", "gridsize"), value=training.neighbor_count,
        )
