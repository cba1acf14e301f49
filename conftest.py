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


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests: on a shared 2-core machine two OpenMP threads
    stall each other (a 0.2 s run takes 5-10 s under load). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
