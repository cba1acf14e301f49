"""Root pytest configuration.

The notebooks in ``notebooks/`` are collected by nbval (``--nbval-lax --nbval-current-env`` in
``pyproject.toml``). Their kernels inherit this process's environment, so quick mode is switched
on here, before any kernel starts, unless the caller chose otherwise (``PTYCHO_NB_QUICK=0``).
"""

import os

os.environ.setdefault("PTYCHO_NB_QUICK", "1")

# Imported before any test module imports lightning: with the `iterative` extra installed, PyPI's
# CUDA torchvision sits beside the CPU torch and only ptycho_nb's import-time shim lets
# torchmetrics (hence lightning) import. Users get the same by importing ptycho_nb first.
import ptycho_nb  # noqa: E402,F401
