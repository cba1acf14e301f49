"""Deprecated home of the refinement's progress bar: it is :mod:`ptycho_nb.refine.progress` now."""

from __future__ import annotations

import warnings

from ..refine.progress import RefineProgressBar, chain_callbacks

__all__ = ["RefineProgressBar", "chain_callbacks"]

warnings.warn("ptycho_nb.engine.refine_progress is deprecated: import RefineProgressBar and "
              "chain_callbacks from ptycho_nb.refine", DeprecationWarning, stacklevel=2)
