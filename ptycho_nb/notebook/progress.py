"""Moved: :mod:`ptycho_nb.engine.callbacks.progress` (this forwarding module warns)."""

import warnings

from ..engine.callbacks.progress import PtychoProgressBar, notebook_bars_available

warnings.warn("ptycho_nb.notebook.progress moved to ptycho_nb.engine.callbacks.progress",
              DeprecationWarning, stacklevel=2)

__all__ = ["PtychoProgressBar", "notebook_bars_available"]
