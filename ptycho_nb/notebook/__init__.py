"""The notebook layer: config forms with live validation, a panel, background training.

See ``design.md`` §7. Everything here is built on ipywidgets and the field metadata of
:mod:`ptycho_nb.config.fields`.
"""

from .background import StopCallback, TrainingHandle, start_training
from .builders import (GENERAL, INVALID_CLASS, CheckpointLoggingBuilder, ConfigBuilder,
                       DataLoaderBuilder, ExecutionConfigBuilder, InferenceConfigBuilder,
                       InferenceExecutionBuilder, ModelConfigBuilder, OptimizerBuilder,
                       TrainerBuilder, TrainingConfigBuilder, UXBuilder)
from .live import LivePlot
from .panel import Panel
from .progress import PtychoProgressBar

__all__ = [
                       "LivePlot",
                       "PtychoProgressBar",
                       "GENERAL",
                       "INVALID_CLASS",
                       "CheckpointLoggingBuilder",
                       "ConfigBuilder",
                       "DataLoaderBuilder",
                       "ExecutionConfigBuilder",
                       "InferenceConfigBuilder",
                       "InferenceExecutionBuilder",
                       "ModelConfigBuilder",
                       "OptimizerBuilder",
                       "Panel",
                       "StopCallback",
                       "TrainerBuilder",
                       "TrainingConfigBuilder",
                       "TrainingHandle",
                       "UXBuilder",
                       "start_training",
]
