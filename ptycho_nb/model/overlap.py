"""Overlap constraint for gridsize > 1: merge a group's patches in real space, then re-extract.

The C member patches of each group are placed on a shared canvas at their relative positions
(``offset − offset[member 0]`` plus a fixed integer anchor, so integer scan positions stay on the
pixel grid and the round trip is exact), averaged with the regularised normalisation of
:func:`ptycho_nb.physics.forward.stitch` (``sum(w·patch) / max(sum w, eps·max sum w)``: no blow-up
where patches barely cover), and cut out again with
:func:`~ptycho_nb.physics.forward.extract_patches`. Every group gets its own tile of one wide
canvas, so the whole batch is one place/extract call, and both share one set of bilinear taps.
Differentiable (w.r.t. patches and offsets).
"""

from __future__ import annotations

import math

import torch

from ..physics.forward import PatchTaps, gather_patches, merge_patches, patch_taps

__all__ = ["merge_group_patches", "merge_own_patches"]


def merge_group_patches(patches: torch.Tensor, offset_x: torch.Tensor, offset_y: torch.Tensor,
                        weight_map: torch.Tensor | None = None, eps: float = 1e-3, *,
                        own_only: bool = False) -> torch.Tensor:
    """Overlap-consistent patches: members merged in a shared canvas, then re-extracted.

    Parameters
    ----------
    patches : complex tensor, (B, C, N, N)
    offset_x, offset_y : tensor, (B, C)
        Member position minus group centre (column, row), object pixels.
    weight_map : real tensor (N, N), optional
        Per-pixel merge weight of each patch (uniform when None).
    eps : float
        Relative floor of the normalisation (see :func:`~ptycho_nb.physics.forward.stitch`).
    own_only : bool
        Re-extract member 0 only (inference keeps nothing else): (B, 1, N, N), the same values.

    Returns
    -------
    complex tensor, (B, C, N, N)
        With C = 1 the input is returned unchanged. With identical offsets, every member becomes
        the (weighted) mean of the members; patches cut from one object at integer positions
        come back unchanged.
    """
    if patches.ndim != 4:
        raise ValueError(f"patches: expected (B, C, N, N), got {tuple(patches.shape)}")
    b, c, n, _ = patches.shape
    if offset_x.shape != (b, c) or offset_y.shape != (b, c):
        raise ValueError(f"offset_x/offset_y: expected ({b}, {c}), got {tuple(offset_x.shape)} "
                         f"and {tuple(offset_y.shape)}")
    if c == 1:
        return patches
    rdt = patches.real.dtype if patches.is_complex() else patches.dtype
    ox = (offset_x - offset_x[:, :1]).to(rdt)
    oy = (offset_y - offset_y[:, :1]).to(rdt)
    span = float(torch.max(torch.abs(torch.cat([ox, oy]))).detach()) if ox.numel() else 0.0
    half = n // 2 + int(math.ceil(span)) + 2  # canvas half-width (integer anchor)
    side = 2 * half
    tile = torch.arange(b, dtype=rdt, device=patches.device)[:, None] * side
    x = (tile + half + ox).reshape(-1)
    y = (half + oy).reshape(-1)
    flat = patches.reshape(b * c, n, n)
    # One set of bilinear taps serves the merge (numerator and weights) and the re-extraction.
    taps = patch_taps(x, y, n, (side, side * b), rdt, patches.device)
    canvas, _ = merge_patches(flat, taps, weight_map=weight_map, eps=eps)
    if own_only:
        # member 0's taps alone: each patch's blend is independent, so its values do not change
        taps = PatchTaps(index=taps.index.reshape(b * c, -1)[::c].reshape(-1), weights=taps.weights[::c],
                         n=taps.n, shape=taps.shape)
        c = 1
    return gather_patches(canvas, taps).reshape(b, c, n, n)


def merge_own_patches(patches: torch.Tensor, members: torch.Tensor, offset_x: torch.Tensor,
                      offset_y: torch.Tensor, *, chunk_size: int,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Member 0 of every group's overlap-merged patches, from patches predicted once per pattern.

    The network maps every pattern on its own (:class:`~ptycho_nb.model.network.PtychoNet`), so a
    group's merged patches need only the per-pattern patches: gathered by ``members`` and merged
    by :func:`merge_group_patches`, ``chunk_size`` groups per call, in float32, without autograd.

    Parameters
    ----------
    patches : complex tensor, (U, N, N)
        One network patch per distinct pattern.
    members : integer tensor, (G, C)
        Rows of ``patches`` forming each group; column 0 is the group's own pattern.
    offset_x, offset_y : tensor, (G, C)
        Member position minus group centre (column, row), object pixels.
    chunk_size : int
        Groups per merge call. The merge's normalisation floor is relative to the largest weight
        sum of the call, so chunks equal to the grouped forward pass's batches reproduce it
        exactly, not just to float tolerance.
    device : torch.device or str, optional
        Where to merge (default: where ``patches`` are); the result comes back to ``patches``'
        device.

    Returns
    -------
    complex64 tensor, (G, N, N)
        With C = 1: ``patches[members[:, 0]]``.
    """
    if patches.ndim != 3 or members.ndim != 2:
        raise ValueError(f"patches/members: expected (U, N, N) and (G, C), got {tuple(patches.shape)} "
                         f"and {tuple(members.shape)}")
    if offset_x.shape != members.shape or offset_y.shape != members.shape:
        raise ValueError(f"offset_x/offset_y: expected {tuple(members.shape)}, got "
                         f"{tuple(offset_x.shape)} and {tuple(offset_y.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    members = members.to(device=patches.device, dtype=torch.int64)
    if members.shape[1] == 1:
        return patches[members[:, 0]].to(torch.complex64)
    dev = patches.device if device is None else torch.device(device)
    out = []
    with torch.no_grad():
        for s in range(0, members.shape[0], chunk_size):
            idx = members[s:s + chunk_size]
            group = patches[idx].to(device=dev, dtype=torch.complex64)  # (b, C, N, N)
            merged = merge_group_patches(group, offset_x[s:s + chunk_size].to(dev, torch.float32),
                                         offset_y[s:s + chunk_size].to(dev, torch.float32), own_only=True)
            out.append(merged[:, 0].to(patches.device))
    if not out:  # no groups
        return patches.new_zeros((0, *patches.shape[1:]), dtype=torch.complex64)
    return torch.cat(out, dim=0)
