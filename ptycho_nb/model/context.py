"""The estimates a pattern's neighbours contribute, shifted onto the pattern's frame.

A network with ``context_patterns`` S > 1 (:class:`~ptycho_nb.model.network.PtychoNet`) reads, for
each pattern, the per-pattern physics estimates of S patterns — its own and S − 1 neighbours' —
each moved by the scan-position difference so that all show the same piece of object, with the
probe weight that says where each is lit. In training the context of a pattern is the rest of its
group (gridsize² = S neighbours, as the overlap constraint uses); in inference it is the group
seeded at the pattern (:func:`ptycho_nb.data.grouping.group_neighbors`), so every pattern still
passes through the network once (the inference samples are
:class:`ptycho_nb.engine.predict.ContextPatterns`).

Shifts are whole pixels (positions rounded; the context is an input, not the physics) and
circular: a neighbour moved by more than the probe's margin to the patch edge wraps part of its
lit area round to the other side, where its weight still says it is that neighbour's; groups
are drawn among the nearest patterns, so such moves are rare and small.
"""

from __future__ import annotations

import torch

__all__ = ["context_order", "group_context", "shift_patches"]


def context_order(c: int, own_only: bool = False) -> torch.Tensor:
    """(C', C) member indices: row i is member i first, then the others in group order
    (C' = 1, member 0 only, with ``own_only``)."""
    rows = [[i] + [j for j in range(c) if j != i] for i in range(1 if own_only else c)]
    return torch.tensor(rows, dtype=torch.int64)


def shift_patches(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each (…, N, N) patch moved by whole pixels (rows ``dy``, columns ``dx``, shapes ``x.shape[:-2]``),
    circularly: ``out[..., y, x] = x[..., y − dy, x − dx]``."""
    lead = x.shape[:-2]
    n_r, n_c = x.shape[-2:]
    flat = x.reshape(-1, n_r, n_c)
    k = flat.shape[0]
    dy = dy.reshape(k).to(torch.int64)
    dx = dx.reshape(k).to(torch.int64)
    rows = (torch.arange(n_r, device=x.device)[None, :] - dy[:, None]) % n_r
    cols = (torch.arange(n_c, device=x.device)[None, :] - dx[:, None]) % n_c
    idx = (rows[:, :, None] * n_c + cols[:, None, :]).reshape(k, n_r * n_c)
    # one gather along the flattened patch (faster than three-tensor advanced indexing on CPU);
    # complex values move as (re, im) pairs
    if flat.is_complex():
        pairs = torch.view_as_real(flat.reshape(k, n_r * n_c))
        out = torch.view_as_complex(pairs.gather(1, idx[..., None].expand(k, n_r * n_c, 2)).contiguous())
    else:
        out = flat.reshape(k, n_r * n_c).gather(1, idx)
    return out.reshape(*lead, n_r, n_c)


def group_context(estimates: torch.Tensor, offset_x: torch.Tensor, offset_y: torch.Tensor,
                  weight: torch.Tensor, own_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's context: the group's estimates on its frame, and where each is lit.

    Parameters
    ----------
    estimates : complex tensor, (B, S, N, N)
        The per-pattern estimates of each group's S members.
    offset_x, offset_y : tensor, (B, S)
        Member positions (column, row; any common origin), object pixels.
    weight : real tensor, (N, N) or (B, N, N)
        Where a group's probe lights a patch (:func:`ptycho_nb.model.supervision.probe_weight`).
    own_only : bool
        Only member 0's context (inference: one pattern and the group seeded at it).

    Returns
    -------
    context : complex tensor, (B, C', S, N, N)
        ``context[b, i, k]`` is member ``context_order(S)[i, k]``'s estimate moved by its position
        minus member i's (slot 0: member i itself, unmoved); C' = S, or 1 with ``own_only``.
    context_weight : real tensor, (B, C', S, N, N)
        The probe weight moved alike.
    """
    if estimates.ndim != 4:
        raise ValueError(f"estimates: expected (B, S, N, N), got {tuple(estimates.shape)}")
    b, s, n, _ = estimates.shape
    if offset_x.shape != (b, s) or offset_y.shape != (b, s):
        raise ValueError(f"offset_x/offset_y: expected ({b}, {s}), got {tuple(offset_x.shape)} "
                         f"and {tuple(offset_y.shape)}")
    order = context_order(s, own_only).to(estimates.device)  # (C', S)
    ox = torch.round(offset_x.to(torch.float64)).to(torch.int64)
    oy = torch.round(offset_y.to(torch.float64)).to(torch.int64)
    # source member order[i, k] moved by its position minus member i's
    dx = ox[:, order] - ox[:, order[:, :1]]  # (B, C', S)
    dy = oy[:, order] - oy[:, order[:, :1]]
    src = estimates[:, order]  # (B, C', S, N, N)
    context = shift_patches(src, dy, dx)
    w = weight.to(estimates.real.dtype)
    w = (w[None] if w.ndim == 2 else w)[:, None, None].expand(b, *order.shape, n, n)
    return context, shift_patches(w, dy, dx)
