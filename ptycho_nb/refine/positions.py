"""Position correction: each pattern's scan position refined from its own data.

Stage encoders and drift leave positions ~0.5–2 px off. Once the object has settled, each
batch's wanted exit-wave change ``Δψ_j`` (the far-field correction back in real space, which the
object and probe updates also use) is also explained, to first order, by a shift ``(δx, δy)``
of the pattern's patch: ``Δψ_j ≈ P·(δx ∂O_j/∂x + δy ∂O_j/∂y)``. The least-squares pair solves a
2×2 system per pattern (:func:`shift_estimates`; the patch gradients by central differences);
each shift is scaled by a step and bounded. After each epoch :func:`constrain` holds the mean
shift of the scan at zero (otherwise object and positions drift together: a shift of the whole
scan changes no pattern) and keeps every patch inside the frame.
"""

from __future__ import annotations

import torch

__all__ = ["shift_estimates", "constrain", "patch_gradients"]


def patch_gradients(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Derivatives of patches along columns (x) and rows (y), per pixel: central differences
    inside, one-sided at the edges (where the probe is dim). (B, N, N) → two (B, N, N)."""
    gx = torch.empty_like(patches)
    gy = torch.empty_like(patches)
    gx[..., 1:-1] = (patches[..., 2:] - patches[..., :-2]) * 0.5
    gx[..., 0] = patches[..., 1] - patches[..., 0]
    gx[..., -1] = patches[..., -1] - patches[..., -2]
    gy[..., 1:-1, :] = (patches[..., 2:, :] - patches[..., :-2, :]) * 0.5
    gy[..., 0, :] = patches[..., 1, :] - patches[..., 0, :]
    gy[..., -1, :] = patches[..., -1, :] - patches[..., -2, :]
    return gx, gy


def shift_estimates(probe: torch.Tensor, patches: torch.Tensor, d_psi: torch.Tensor, *,
                    step: float, max_shift: float,
                    dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pattern position corrections (δx, δy), px, that best explain ``d_psi``.

    Parameters
    ----------
    probe : complex (N, N) or (K, N, N)
        The probe as the exit waves use it (any fixed ±1 modulation, the same as in ``d_psi``).
    patches : complex (B, N, N)
    d_psi : complex (B, N, N) or (B, K, N, N)
        The wanted exit-wave change.
    step : float
        Fraction of the least-squares shift taken.
    max_shift : float
        Bound of each component, px.
    dtype : torch dtype
        Of the sums (float64, but float32 where the device has no float64).

    Returns
    -------
    (dx, dy) : ``dtype`` (B,) tensors (0 where a patch has no texture to register)
    """
    gx, gy = patch_gradients(patches)
    multi = probe.ndim == 3
    ux = probe[None] * gx[:, None] if multi else probe * gx
    uy = probe[None] * gy[:, None] if multi else probe * gy
    dims = tuple(range(1, ux.ndim))
    a11 = (ux.real.square() + ux.imag.square()).sum(dim=dims, dtype=dtype)
    a22 = (uy.real.square() + uy.imag.square()).sum(dim=dims, dtype=dtype)
    a12 = (ux.conj() * uy).real.sum(dim=dims, dtype=dtype)
    b1 = (ux.conj() * d_psi).real.sum(dim=dims, dtype=dtype)
    b2 = (uy.conj() * d_psi).real.sum(dim=dims, dtype=dtype)
    # a small ridge keeps a patch textured along one direction only from a wild step along the other
    ridge = 1e-3 * (a11 + a22) + 1e-30
    a11, a22 = a11 + ridge, a22 + ridge
    det = a11 * a22 - a12 * a12
    dx = (b1 * a22 - b2 * a12) / det
    dy = (a11 * b2 - a12 * b1) / det
    ok = torch.isfinite(dx) & torch.isfinite(dy)
    dx = torch.where(ok, dx, torch.zeros_like(dx)).mul_(step).clamp_(-max_shift, max_shift)
    dy = torch.where(ok, dy, torch.zeros_like(dy)).mul_(step).clamp_(-max_shift, max_shift)
    return dx, dy


def constrain(x: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor,
              idx: torch.Tensor, n: int, shape: tuple[int, int]) -> None:
    """Hold the mean correction of the patterns ``idx`` at zero and every patch inside the
    (H, W) frame, in place: ``x``, ``y`` the corrected positions, ``x0``, ``y0`` the nominal ones."""
    if idx.numel():
        x[idx] -= (x[idx] - x0[idx]).mean()
        y[idx] -= (y[idx] - y0[idx]).mean()
    # a patch at centre c covers c − N/2 … c + N/2 − 1 (and the next pixel when c is fractional)
    x.clamp_(n / 2, shape[1] - n / 2)
    y.clamp_(n / 2, shape[0] - n / 2)
