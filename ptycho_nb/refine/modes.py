"""Incoherent probe modes: a partially coherent beam as K mutually incoherent modes.

Measured intensities are the sum of the modes' intensities, ``Σ_k |F{P_k · O}|²`` (the forward
model and both update rules handle a (K, N, N) probe). A guess is usually one mode; the
refinement makes K from it (:func:`with_modes`: the guess keeps most of the power, the others
start as the guess times first- and second-order Hermite-like factors, orthogonalised), and after
every epoch that moved the probe it re-orthogonalises them (:func:`orthogonalize`: the modes of
the beam's coherence are orthogonal, and without this two modes can drift into one), sorted by
power so ``power_fractions`` decreases.
"""

from __future__ import annotations

import torch

__all__ = ["with_modes", "orthogonalize", "power_fractions", "EXTRA_MODE_POWER"]

#: Fraction of the total power each added mode starts with (the guess keeps the rest).
EXTRA_MODE_POWER = 0.05


def power_fractions(probe: torch.Tensor) -> torch.Tensor:
    """Each mode's share of the total power, (K,) (a single probe: (1.0,))."""
    p = probe if probe.ndim == 3 else probe[None]
    power = (p.real.square() + p.imag.square()).sum(dim=(-2, -1))
    return power / power.sum().clamp_min(torch.finfo(power.dtype).tiny)


def orthogonalize(probe: torch.Tensor) -> torch.Tensor:
    """The same beam as orthogonal modes, strongest first: the singular vectors of the
    (K, N·N) mode matrix scaled by their singular values. The total intensity
    ``Σ_k |P_k|²`` at every pixel is unchanged (it is the matrix's diagonal of PᴴP)."""
    if probe.ndim == 2 or probe.shape[0] == 1:
        return probe
    k, n, _ = probe.shape
    u, s, vh = torch.linalg.svd(probe.reshape(k, n * n), full_matrices=False)
    return (s[:, None].to(vh.dtype) * vh).reshape(k, n, n)  # s is sorted descending


def with_modes(probe: torch.Tensor, k: int, *, extra_power: float = EXTRA_MODE_POWER) -> torch.Tensor:
    """``probe`` as ``k`` incoherent modes of the same total power.

    Modes already given are kept (orthogonalised); missing ones are made from the strongest as
    it times x, y, xy, x² − y², ... (centred on its intensity, scaled to its width), orthogonal
    to the others, each starting with ``extra_power`` of the total. ``k`` below the given count
    keeps the ``k`` strongest.
    """
    if k < 1:
        raise ValueError(f"probe_modes: expected at least 1 mode, got {k}")
    p = probe if probe.ndim == 3 else probe[None]
    p = orthogonalize(p)
    if p.shape[0] >= k:
        return p[:k] if k > 1 else p[0]
    n = p.shape[-1]
    total = (p.real.square() + p.imag.square()).sum()
    main = p[0]
    inten = main.real.square() + main.imag.square()
    ar = torch.arange(n, device=p.device, dtype=inten.dtype)
    w = inten / inten.sum()
    cy, cx = (w.sum(1) * ar).sum(), (w.sum(0) * ar).sum()
    sy = ((w.sum(1) * (ar - cy) ** 2).sum()).sqrt().clamp_min(1.0)
    sx = ((w.sum(0) * (ar - cx) ** 2).sum()).sqrt().clamp_min(1.0)
    y = ((ar - cy) / sy)[:, None].expand(n, n)
    x = ((ar - cx) / sx)[None, :].expand(n, n)
    factors = [x, y, x * y, x * x - y * y, x * x + y * y - 2]
    modes = list(p)
    for f in factors:
        if len(modes) == k:
            break
        m = main * f.to(main.dtype)
        for other in modes:  # Gram-Schmidt against the modes so far
            m = m - (torch.vdot(other.reshape(-1), m.reshape(-1)) / torch.vdot(
                other.reshape(-1), other.reshape(-1))) * other
        modes.append(m)
    if len(modes) < k:
        raise ValueError(f"probe_modes: at most {len(factors) + p.shape[0]} modes can be made from "
                         f"this probe, asked for {k}")
    out = torch.stack(modes)
    power = (out.real.square() + out.imag.square()).sum(dim=(-2, -1))
    given = p.shape[0]
    share = torch.empty_like(power)
    share[given:] = extra_power
    share[:given] = (1 - extra_power * (k - given)) * power[:given] / power[:given].sum()
    return out * torch.sqrt(share * total / power.clamp_min(torch.finfo(power.dtype).tiny))[:, None, None].to(out.dtype)
