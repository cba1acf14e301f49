"""The engine: Lightning assembled from the execution config, for training and inference alike.

``trainer`` (the one flag → Trainer mapping), ``datamodule`` (grouped samples and the DataLoader
settings), ``callbacks`` (progress bar, live view, stop, history: one per module) and
``run_info`` (typed records of what a run did) and ``varied_data`` (samples streamed from varied
simulated scans).
"""

from .callbacks import History, LivePlot, PtychoProgressBar, StopCallback
from .datamodule import GroupedDiffraction, PtychoDataModule, dataloader_kwargs, group_scan
from .run_info import InferenceRunInfo, InferenceTimings, TrainRunInfo
from .trainer import build_trainer, resolve_accelerator, trainer_kwargs
from .varied_data import VariedScanDataset

__all__ = [
    "History", "LivePlot", "PtychoProgressBar", "StopCallback",
    "GroupedDiffraction", "PtychoDataModule", "dataloader_kwargs", "group_scan",
    "InferenceRunInfo", "InferenceTimings", "TrainRunInfo",
    "build_trainer", "resolve_accelerator", "trainer_kwargs", "VariedScanDataset",
]
