"""Lightning callbacks of ptycho_nb, one per module: progress bar, live view, stop, history."""

from .history import History
from .live_plot import LIVE_PLOT_BUDGET, LivePlot, resolve_plot_every
from .progress import PtychoProgressBar, notebook_bars_available
from .stop import StopCallback

__all__ = ["History", "LivePlot", "LIVE_PLOT_BUDGET", "resolve_plot_every", "PtychoProgressBar",
           "notebook_bars_available", "StopCallback"]
