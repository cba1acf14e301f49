"""Neighbour groups for gridsize g: C = g² nearby scan points per training sample.

Each group has a *seed* pattern (member 0) and C − 1 further members drawn at random, without
replacement, from the seed's K nearest other scan points (``scipy.spatial.cKDTree``). The group
centre is the mean member position; offsets are member position − centre, with explicit x
(column) and y (row) names. A member's patch (integer positions) is the window of the
centre-anchored region shifted by ``(offset_y, offset_x)``:
``obj[cy + oy - N//2 : cy + oy + N//2, cx + ox - N//2 : cx + ox + N//2]``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["Groups", "group_neighbors", "DEFAULT_NEIGHBOR_COUNT"]

#: K used when none is given (upstream PtychoPINN's default); raised to C − 1 when smaller.
DEFAULT_NEIGHBOR_COUNT = 4


@dataclasses.dataclass(frozen=True)
class Groups:
    """Neighbour groups.

    Attributes
    ----------
    indices : (G, C) int64 — pattern indices of each group's members; column 0 is the seed.
    center_x, center_y : (G,) float64 — mean member column / row, object pixels.
    offset_x, offset_y : (G, C) float64 — member column / row minus the group centre, pixels.
    """

    indices: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    offset_x: np.ndarray
    offset_y: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of groups G."""
        return int(self.indices.shape[0])

    @property
    def group_size(self) -> int:
        """Members per group C = gridsize²."""
        return int(self.indices.shape[1])


def group_neighbors(
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    gridsize: int = 1,
    *,
    neighbor_count: int | None = None,
    n_groups: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> Groups:
    """Form groups of C = gridsize² neighbouring scan points.

    Parameters
    ----------
    xcoords, ycoords : (M,) float
        Patch-centre column / row of each pattern, object pixels.
    gridsize : int
        g ≥ 1; C = g² members per group. g = 1 → each group is one pattern, offset 0.
    neighbor_count : int, optional
        K: the other members are drawn from the seed's K nearest other points. Needs
        C − 1 ≤ K ≤ M − 1. None → max(DEFAULT_NEIGHBOR_COUNT, C − 1), capped at M − 1.
    n_groups : int, optional
        None → one group per pattern, seeded at that pattern (G = M, in order). Otherwise G seeds
        drawn at random (without replacement when G ≤ M; with replacement when G > M, allowed
        only for C > 1, where different neighbour draws make distinct samples).
    seed : int, Generator or None
        Randomness; the same int gives the same groups.

    Returns
    -------
    Groups
    """
    x = np.asarray(xcoords, dtype=np.float64).reshape(-1)
    y = np.asarray(ycoords, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"xcoords/ycoords: lengths differ ({x.shape[0]} vs {y.shape[0]})")
    m = x.shape[0]
    if m == 0:
        raise ValueError("xcoords/ycoords: no positions")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("xcoords/ycoords: contain NaN/inf")
    if isinstance(gridsize, bool) or not isinstance(gridsize, (int, np.integer)) or gridsize < 1:
        raise ValueError(f"gridsize: expected an integer >= 1, got {gridsize!r}")
    c = int(gridsize) ** 2
    if c > m:
        raise ValueError(f"gridsize: {gridsize} needs C = {c} patterns per group but only {m} exist")
    if neighbor_count is None:
        k = min(max(DEFAULT_NEIGHBOR_COUNT, c - 1), m - 1)
    else:
        k = int(neighbor_count)
        if k < c - 1:
            raise ValueError(f"neighbor_count: K = {k} is too small for gridsize {gridsize}: "
                             f"need K >= C - 1 = {c - 1}")
        if k > m - 1 and c > 1:
            raise ValueError(f"neighbor_count: K = {k} exceeds the {m - 1} other scan points")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    if n_groups is None:
        seeds = np.arange(m, dtype=np.int64)
    else:
        if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
            raise ValueError(f"n_groups: expected None or an integer >= 1, got {n_groups!r}")
        g = int(n_groups)
        if g < 1:
            raise ValueError(f"n_groups: expected None or >= 1, got {n_groups!r}")
        if g > m and c == 1:
            raise ValueError(f"n_groups: {g} groups of one pattern from only {m} patterns would "
                             "repeat patterns; use n_groups <= M (or gridsize > 1)")
        # A seed and a choice of C - 1 of its K neighbours make a group: more groups than that
        # can only repeat (and would spin in Python for minutes at 10^7).
        distinct = m * math.comb(k, c - 1)
        if g > distinct:
            raise ValueError(f"n_groups: {g} is more than the {distinct} distinct groups this scan "
                             f"can give ({m} patterns x C({k}, {c - 1}) neighbour choices for "
                             f"gridsize {gridsize}); use n_groups <= {distinct}")
        seeds = rng.choice(m, size=g, replace=g > m).astype(np.int64)

    if c == 1:
        idx = seeds[:, None]
    else:
        tree = cKDTree(np.stack([x, y], axis=1))
        # k + 1 because the nearest point to a seed is the seed itself.
        _, nn = tree.query(np.stack([x[seeds], y[seeds]], axis=1), k=k + 1)
        nn = np.asarray(nn, dtype=np.int64).reshape(len(seeds), k + 1)
        idx = np.empty((len(seeds), c), dtype=np.int64)
        for gi, s in enumerate(seeds):
            # Drop the seed explicitly (duplicate positions may put another point first).
            others = nn[gi][nn[gi] != s][:k]
            pick = np.sort(rng.choice(others.shape[0], size=c - 1, replace=False))
            idx[gi, 0] = s
            idx[gi, 1:] = others[pick]

    mx, my = x[idx], y[idx]
    cx, cy = mx.mean(axis=1), my.mean(axis=1)
    return Groups(indices=idx, center_x=cx, center_y=cy,
                  offset_x=mx - cx[:, None], offset_y=my - cy[:, None])
