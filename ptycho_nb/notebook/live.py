"""Moved: :mod:`ptycho_nb.engine.callbacks.live_plot` (this forwarding module warns)."""

import warnings

from ..engine.callbacks.live_plot import LIVE_PLOT_BUDGET, LivePlot, resolve_plot_every

warnings.warn("ptycho_nb.notebook.live moved to ptycho_nb.engine.callbacks.live_plot",
              DeprecationWarning, stacklevel=2)

__all__ = ["LivePlot", "resolve_plot_every", "LIVE_PLOT_BUDGET"]
