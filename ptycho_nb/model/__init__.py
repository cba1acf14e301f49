"""The reconstruction model: network, overlap constraint and the physics-informed LightningModule."""

from typing import Any

from .lightning_module import AMPLITUDE_REFERENCE, PINNModule, scaling_statistics
from .network import PtychoNet
from .overlap import merge_group_patches

__all__ = ["PINNModule", "PtychoNet", "merge_group_patches", "scaling_statistics", "AMPLITUDE_REFERENCE"]


def __getattr__(name: str) -> Any:
    # The refinement has its own package now (ptycho_nb.refine); the old name still resolves,
    # through the deprecated module that warns.
    if name == "refine_object":
        from .refine import refine_object

        return refine_object
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
