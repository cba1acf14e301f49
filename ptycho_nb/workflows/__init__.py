"""Orchestration: payload preparation, ``train()``, ``infer()``, ``reconstruct()``, model files and the demo."""

from .inference import Reconstruction, infer, run_inference
from .reconstruct import reconstruct
from .model_io import load_model, save_model
from .payload import InferencePayload, TrainingPayload, create_inference_payload, create_training_payload
from .training import TrainResult, run_training, train

__all__ = ["Reconstruction", "infer", "reconstruct", "run_inference", "load_model", "save_model",
           "InferencePayload", "TrainingPayload", "create_inference_payload",
           "create_training_payload", "TrainResult", "run_training", "train"]
