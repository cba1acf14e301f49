"""The reconstruction model: network, overlap constraint and the physics-informed LightningModule."""

from .lightning_module import AMPLITUDE_REFERENCE, PINNModule, scaling_statistics
from .network import PtychoNet
from .overlap import merge_group_patches
from .refine import refine_object

__all__ = ["PINNModule", "PtychoNet", "merge_group_patches", "scaling_statistics", "refine_object",
           "AMPLITUDE_REFERENCE"]
