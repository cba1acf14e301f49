"""Which torch device an accelerator name means: one answer for the Trainer and the refinement.

``PyTorchExecutionConfig.accelerator`` names hardware the way Lightning does ('auto', 'cpu',
'gpu', 'cuda', 'mps', 'tpu'); the network's passes go through a Lightning Trainer, the physics
refinement runs plain torch. Both resolve 'auto' here, so the two never disagree about where
"a GPU when torch sees one" is.
"""

from __future__ import annotations

import logging

import torch

__all__ = ["concrete_accelerator", "refinement_device"]

log = logging.getLogger(__name__)


def concrete_accelerator(accelerator: str) -> str:
    """The accelerator 'auto' resolves to: cuda when torch sees a CUDA device, then mps, then
    cpu; any other name unchanged."""
    if accelerator != "auto":
        return accelerator
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def refinement_device(accelerator: str) -> torch.device:
    """The one torch device a refinement runs on for ``accelerator``.

    'gpu' and 'cuda' mean the first CUDA device (the refinement is one process on one device,
    whatever ``devices`` gives the Trainer); 'tpu' has no complex FFT in torch, so a refinement
    asked to run there runs on the CPU (logged).

    Raises
    ------
    ValueError
        For 'gpu'/'cuda' when torch sees no CUDA device, or 'mps' when MPS is unavailable
        (naming the field and what to pass instead).
    """
    name = concrete_accelerator(accelerator)
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"PyTorchExecutionConfig.accelerator={accelerator!r}: torch sees no CUDA "
                             "device; pass accelerator='auto' (a GPU when there is one) or 'cpu'")
        return torch.device("cuda", torch.cuda.current_device())
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"PyTorchExecutionConfig.accelerator={accelerator!r}: MPS is not "
                             "available here; pass accelerator='auto' or 'cpu'")
        return torch.device("mps")
    if name == "tpu":
        log.warning("the physics refinement runs on the CPU for accelerator 'tpu' (torch has no "
                    "complex FFT there)")
    return torch.device("cpu")
