"""The notebook layer: config forms with live validation, a panel, background training and
reconstruction.

Everything here is built on ipywidgets and the field metadata of :mod:`ptycho_nb.config.fields`
(README "In a notebook"). The progress bar and the live view are Lightning callbacks of the
engine (:mod:`ptycho_nb.engine.callbacks`), re-exported here for convenience.
"""

from ..engine.callbacks import LivePlot, PtychoProgressBar, StopCallback
from .background import ReconstructionHandle, TrainingHandle, start_reconstruction, start_training
from .builders import (GENERAL, INVALID_CLASS, CheckpointLoggingBuilder, ConfigBuilder,
                       DataLoaderBuilder, ExecutionConfigBuilder, InferenceConfigBuilder,
                       InferenceExecutionBuilder, ModelConfigBuilder, OptimizerBuilder,
                       TrainerBuilder, TrainingConfigBuilder, UXBuilder)
from .panel import Panel
from .refine_view import RefineView

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
    "ReconstructionHandle",
    "RefineView",
    "StopCallback",
    "TrainerBuilder",
    "TrainingConfigBuilder",
    "TrainingHandle",
    "UXBuilder",
    "start_reconstruction",
    "start_training",
]
