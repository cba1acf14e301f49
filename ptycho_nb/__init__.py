"""ptycho_nb: Jupyter-first physics-informed neural-network ptychography.

The public API:

- data: ``simulate`` (the embedded default), ``load``, ``save``, ``PtychoData``;
- configuration: ``PyTorchExecutionConfig``, ``ModelConfig``, ``TrainingConfig``,
  ``InferenceConfig``;
- runs: ``train`` (→ ``TrainResult``), ``infer`` (→ ``Reconstruction``), ``reconstruct``
  (a scan → the best reconstruction: model start, single pass, refinement to convergence), ``save_model``,
  ``load_model``; ``pretrained`` (shipped models: ``available()``, ``load(name)``, and
  ``"pretrained:NAME"`` wherever a model path goes);
- submodules ``physics``, ``data``, ``config``, ``metrics``, ``diagnostics`` (residuals, the
  noise floor and the split-half resolution of a reconstruction, no ground truth needed); the
  notebook layer (forms, panel, ``start_training`` for background runs) is
  ``ptycho_nb.notebook``.

Layers import only downward (README "Layout"): front ends → ``workflows`` → ``engine`` →
``model`` → ``physics`` / ``data`` / ``config`` → the ground floor.
"""

from .version import __version__

try:  # torch is mandatory (spec §4.7): say how to get it rather than fail deep inside an import
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise RuntimeError(
        "ptycho_nb needs PyTorch, which is not installed: on a CPU machine run "
        "`pip install torch==2.13.0` (the CPU wheel), elsewhere the torch build for your "
        "accelerator, then `pip install ptycho-nb`") from _exc

# Before anything imports lightning (whose torchmetrics imports torchvision): a CUDA torchvision
# from PyPI beside a CPU torch (what the `iterative` extra installs) otherwise breaks that import.
from ._torchvision_compat import apply_torchvision_shim as _apply_torchvision_shim

_apply_torchvision_shim()

from .config import InferenceConfig, ModelConfig, PyTorchExecutionConfig, TrainingConfig
from .data import PtychoData, load, save
from .physics import simulate
from .workflows import Reconstruction, TrainResult, infer, load_model, reconstruct, save_model, train
from . import diagnostics, metrics, pretrained

__all__ = [
    "PtychoData", "load", "save", "simulate",
    "PyTorchExecutionConfig", "ModelConfig", "TrainingConfig", "InferenceConfig",
    "train", "infer", "reconstruct", "TrainResult", "Reconstruction", "save_model", "load_model", "metrics", "pretrained",
    "diagnostics",
    "__version__",
]
