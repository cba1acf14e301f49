"""Lightning callbacks of ptycho_nb, one per module: progress bar, live view, stop, history, the
non-finite-loss guard, and for streamed pretraining the dataset's epoch and the newest checkpoint."""

from .dataset_epoch import DatasetEpoch
from .history import History
from .latest_checkpoint import LATEST, latest_checkpoint
from .live_plot import LIVE_PLOT_BUDGET, LivePlot, resolve_plot_every
from .non_finite import StopOnNonFiniteLoss
from .progress import PtychoProgressBar, epoch_label, notebook_bars_available
from .stop import StopCallback
from .view import TrainingView, current_view, training_view

__all__ = ["History", "LivePlot", "LIVE_PLOT_BUDGET", "resolve_plot_every", "PtychoProgressBar",
           "notebook_bars_available", "StopCallback", "TrainingView", "current_view", "training_view",
           "epoch_label", "StopOnNonFiniteLoss", "DatasetEpoch", "latest_checkpoint", "LATEST"]
