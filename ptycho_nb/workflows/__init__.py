"""Workflows: ``train()``, ``infer()``, the model archive, and the demo (the main job)."""

from .inference import Reconstruction, infer, run_inference
from .model_io import load_model, save_model
from .training import TrainResult, run_training, train

__all__ = ["train", "run_training", "TrainResult", "infer", "run_inference", "Reconstruction",
           "save_model", "load_model"]
