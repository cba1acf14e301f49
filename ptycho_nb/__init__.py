"""ptycho_nb: Jupyter-first physics-informed neural-network ptychography.

The public API: ``simulate``, ``load``, ``save`` and ``PtychoData`` (data), the configuration
dataclasses (``PyTorchExecutionConfig``, ``ModelConfig``, ``TrainingConfig``, ``InferenceConfig``)
and the submodules ``physics``, ``data``, ``config`` and ``metrics``.
"""

__version__ = "0.1.0"

from .config import InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig
from .data import PtychoData, load, save
from .physics import simulate
from .workflows import Reconstruction, TrainResult, infer, load_model, save_model, train
from . import metrics

__all__ = [
    "PtychoData", "load", "save", "simulate",
    "PyTorchExecutionConfig", "ModelConfig", "TrainingConfig", "InferenceConfig",
    "train", "infer", "TrainResult", "Reconstruction", "save_model", "load_model", "metrics",
    "__version__",
]
