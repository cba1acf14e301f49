"""Let a CPU torch import PyPI's (CUDA) torchvision, which the ``iterative`` extra brings in.

ptychi depends on torchvision (for a Gaussian blur), and pip resolves it to PyPI's torchvision, a
CUDA build whose compiled operators (``torchvision/_C.so``) cannot load beside the CPU torch wheel.
torchvision then fails at import on a missing ``torchvision::nms`` operator, and so does everything
that imports it on the way: torchmetrics, hence ``import lightning``. Defining the missing operator
*schemas* with ``torch.library`` before torchvision is imported lets it import; nothing in ptycho_nb
or ptychi calls those operators (they would raise "no kernel registered").

The shim is applied only when torchvision is installed **and** its compiled library fails to load,
so a working torchvision (a matching CUDA torch, or a CPU build) is never touched: defining the
schemas first would make its own registration fail.

This module imports nothing but the standard library and torch, so the ptychi worker script (run
with this folder on ``sys.path``) can use it before importing anything else.
"""

from __future__ import annotations

import importlib.util
import pathlib

__all__ = ["apply_torchvision_shim"]

_SHIM_LIB = None  # the torch.library.Library holding the schemas; dropping it would remove them
_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _compiled_ops_load(package_dir: pathlib.Path) -> bool:
    import torch

    libs = sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd"))
    if not libs:
        return False
    try:
        # What torchvision does itself at import; loading the same file twice is a no-op.
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


def apply_torchvision_shim() -> bool:
    """Define ``torchvision::nms``/``qnms`` schemas if torchvision's compiled ops cannot load.

    Returns
    -------
    bool
        True when the schemas are (now or already) defined by this shim; False when not needed
        (torchvision absent or working, or already imported).
    """
    global _SHIM_LIB
    if _SHIM_LIB is not None:
        return True
    import sys

    if "torchvision" in sys.modules:  # imported already (successfully): nothing to fix
        return False
    try:
        spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    if _compiled_ops_load(pathlib.Path(spec.origin).parent):
        return False
    import torch

    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        try:
            lib.define(schema)
        except RuntimeError:  # defined already by someone else
            pass
    _SHIM_LIB = lib
    return True
