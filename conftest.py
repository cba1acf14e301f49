"""Root pytest configuration.

The notebooks in ``notebooks/`` are collected by nbval (``--nbval-lax --nbval-current-env`` in
``pyproject.toml``). Their kernels inherit this process's environment, so quick mode is switched
on here, before any kernel starts, unless the caller chose otherwise (``PTYCHO_NB_QUICK=0``).
"""

import os

os.environ.setdefault("PTYCHO_NB_QUICK", "1")
