"""Orchestration: payload preparation, ``train()``, ``infer()``, ``reconstruct()`` and the demo.

Model files (the archive, ``save_model`` / ``load_model``, the pretrained catalog) live in
:mod:`ptycho_nb.model`; ``load_model`` and ``save_model`` are re-exported here for convenience.
"""

from .inference import Reconstruction, infer, run_inference
from .reconstruct import reconstruct
from ..model.io import load_model, save_model
from .payload import InferencePayload, TrainingPayload, create_inference_payload, create_training_payload
from .training import TrainResult, run_training, train

__all__ = ["Reconstruction", "infer", "reconstruct", "run_inference", "load_model", "save_model",
           "InferencePayload", "TrainingPayload", "create_inference_payload",
           "create_training_payload", "TrainResult", "run_training", "train"]
