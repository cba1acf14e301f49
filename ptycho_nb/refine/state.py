"""What a refinement updates: the object, the probe and the intensity scale, on one device."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

__all__ = ["RefineState", "Updates"]


@dataclasses.dataclass
class RefineState:
    """The unknowns of a refinement, updated in place by the update rules.

    Attributes
    ----------
    object : complex64 tensor, (H, W)
    probe : complex64 tensor, (N, N) or (K, N, N) incoherent modes
    scale : float32 0-d tensor
        Photons per unit of |F{P·O}|² (1 when the probe is in counts units).
    x, y : float64 tensors, (M,), or None
        The patterns' positions (column, row) in the frame's pixels, when the refinement
        corrects them; None: the scan's own (:class:`~ptycho_nb.refine.scan.PreparedScan`).
    """

    object: torch.Tensor
    probe: torch.Tensor
    scale: torch.Tensor
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None

    @property
    def modes(self) -> int:
        """Incoherent probe modes K (1 for a single probe)."""
        return int(self.probe.shape[0]) if self.probe.ndim == 3 else 1

    @classmethod
    def build(cls, obj: Any, probe: Any, intensity_scale: Any,
              device: torch.device | str = "cpu") -> RefineState:
        """Copies of a start on ``device``, checked.

        Object pixels exactly 0 (never covered by a stitched start) start from the mean
        amplitude of the others.
        """
        device = torch.device(device)
        o = torch.as_tensor(obj).detach().to(device=device, dtype=torch.complex64).clone()
        if o.ndim != 2:
            raise ValueError(f"obj: expected a 2-D complex object (H, W), got shape {tuple(o.shape)}")
        if not bool(torch.isfinite(torch.view_as_real(o)).all()):
            raise ValueError("obj: expected finite values, found NaN or inf")
        p = torch.as_tensor(probe).detach().to(device=device, dtype=torch.complex64).clone()
        if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2]:
            raise ValueError(f"probe: expected (N, N) or (K, N, N), got shape {tuple(p.shape)}")
        scale = torch.as_tensor(intensity_scale).detach().to(device=device, dtype=torch.float32).reshape(())
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"intensity_scale: expected a finite positive number, got {float(scale)!r}")
        cover = o.abs() > 0
        if not bool(cover.any()):
            raise ValueError("obj: expected a non-zero initial object")
        o = torch.where(cover, o, torch.full_like(o, complex(float(o[cover].abs().mean()), 0.0)))
        return cls(object=o, probe=p, scale=scale)


@dataclasses.dataclass(frozen=True)
class Updates:
    """What one epoch's batches update besides the object."""

    probe: bool = False
    positions: bool = False
