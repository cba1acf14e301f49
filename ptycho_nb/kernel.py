"""Where the code runs: inside a Jupyter (IPython) kernel or not.

Core code asks this at run time (never at import), so the same function serves the progress bar,
the live view and the strategy check.
"""

from __future__ import annotations

import sys

__all__ = ["in_notebook_kernel"]


def in_notebook_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel, where script-launching strategies cannot work."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - odd IPython states
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None
