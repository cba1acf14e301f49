"""The refinement's measure of fit: the Poisson deviance of predicted against measured counts.

``D = Σ λ − k + k·log(k/λ)`` per pixel (≥ 0, 0 for a perfect fit; at the noise floor its
expectation, which is 0.5 per pixel only where counts are high and less where they are low:
:func:`ptycho_nb.diagnostics.expected_deviance`), k measured and λ predicted counts. It is computed as ``Σλ − Σ k·log λ + Σ(k·log k − k)``:
the last sum is each pattern's constant, made once (:attr:`PreparedScan.klogk`), so a batch costs
one pass over its predicted counts.
"""

from __future__ import annotations

import torch

from .scan import EPS, PreparedScan
from .state import RefineState
from ..physics.forward import gather_patches
from .noise_floor import expected_deviance_torch

__all__ = ["poisson_deviance", "predicted_counts", "batch_deviance", "scan_deviance", "scan_noise_floor"]


def poisson_deviance(pred_counts: torch.Tensor, counts: torch.Tensor,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """Poisson deviance per pixel, ``λ - k + k·log(k / λ)`` (≥ 0, 0 for a perfect fit), summed.

    Parameters
    ----------
    pred_counts, counts : real tensors of one shape (expected and measured counts)
    weight : real tensor broadcasting to them, optional
        1 where a pixel was measured, 0 where not (left out of the sum).

    Returns
    -------
    scalar float64 tensor: the sum over all (measured) pixels.
    """
    lam = pred_counts.double().clamp_min(EPS)
    k = counts.double()
    klog = torch.where(k > 0, k * torch.log(k.clamp_min(EPS) / lam), torch.zeros_like(k))
    dev = lam - k + klog
    return dev.sum() if weight is None else (dev * weight.double()).sum()


def predicted_counts(probe: torch.Tensor, patches: torch.Tensor,
                     scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Far fields and expected counts of a batch.

    Parameters
    ----------
    probe : complex (N, N) or (K, N, N)
        For far fields in the data's DC-centred order, the probe times
        :attr:`PreparedScan.checker` (see :mod:`ptycho_nb.refine.scan`).
    patches : complex (B, N, N)
    scale : 0-d tensor, photons per unit of |F{P·O}|²

    Returns
    -------
    far : complex (B, N, N) or (B, K, N, N)
        ``fft2(P·O_j, norm='ortho')``.
    lam : real (B, N, N)
        ``scale · Σ_k |far|²``, at least :data:`~ptycho_nb.refine.scan.EPS`.
    """
    multi = probe.ndim == 3
    psi = probe[None] * patches[:, None] if multi else probe * patches
    far = torch.fft.fft2(psi, norm="ortho")
    lam = far.real.square() + far.imag.square()
    if multi:
        lam = lam.sum(dim=1)
    return far, lam.mul_(scale).clamp_(min=EPS)


def batch_deviance(lam: torch.Tensor, counts: torch.Tensor, klogk: torch.Tensor,
                   dtype: torch.dtype, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The summed deviance of a batch from its expected counts ``lam`` and measured ``counts``
    (one order, both (B, N, N)) and the patterns' constants ``klogk`` (B,), as a 0-d ``dtype``
    tensor (no value read back from the device). ``weight`` (N, N) or (B, N, N), 1 where
    measured and 0 elsewhere, leaves unmeasured pixels out."""
    if weight is None:
        return (lam.sum(dtype=dtype) - (counts * torch.log(lam)).sum(dtype=dtype) + klogk.sum(dtype=dtype))
    return ((lam * weight).sum(dtype=dtype) - (counts * torch.log(lam) * weight).sum(dtype=dtype)
            + klogk.sum(dtype=dtype))


def scan_deviance(state: RefineState, scan: PreparedScan, idx: torch.Tensor,
                  chunk: int) -> torch.Tensor:
    """The summed deviance of the patterns ``idx`` under the current object and probe
    (0-d tensor in ``scan.accumulate``; chunks of ``chunk`` patterns)."""
    total = torch.zeros((), dtype=scan.accumulate, device=scan.device)
    with torch.no_grad():
        for part in scan.chunks(idx, chunk):
            _, lam = predicted_counts(state.probe * scan.checker,
                                      gather_patches(state.object, scan.taps(part, state.x, state.y)),
                                      state.scale)
            total += batch_deviance(lam, scan.counts(part), scan.klogk[part], scan.accumulate,
                                    scan.weights(part))
    return total


def scan_noise_floor(state: RefineState, scan: PreparedScan, idx: torch.Tensor,
                     chunk: int) -> torch.Tensor:
    """The summed deviance the patterns ``idx`` would still have if the current object and probe
    were exactly right: the Poisson expectation of each measured pixel's deviance from its
    predicted counts (:func:`~ptycho_nb.refine.noise_floor.expected_deviance`), 0-d in
    ``scan.accumulate``. Deviance / floor ≈ 1: the model explains the data to the noise."""
    total = torch.zeros((), dtype=scan.accumulate, device=scan.device)
    with torch.no_grad():
        for part in scan.chunks(idx, chunk):
            _, lam = predicted_counts(state.probe * scan.checker,
                                      gather_patches(state.object, scan.taps(part, state.x, state.y)),
                                      state.scale)
            f = expected_deviance_torch(lam.to(scan.accumulate))
            weight = scan.weights(part)
            total += (f if weight is None else f * weight).sum()
    return total
