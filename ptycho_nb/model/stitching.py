"""Stitch per-pattern object patches into one object, weighted by the probe's intensity.

Each patch is trusted where the probe lit it: pixel weights are ``Σ_k |P_k|²`` normalised to a
maximum of 1, with ``middle_trim`` pixels zeroed along every patch edge. The object is
``Σ_j w·O_j / max(Σ_j w, eps·max Σ w)`` (:func:`ptycho_nb.physics.forward.stitch`), so unlit
pixels go to 0 instead of blowing up.

The frame (which object pixels are returned):

- ``pad_eval=False``: the bounding box of the scan positions (patch centres): the region the scan
  covers with overlap, where the reconstruction is best determined; the outer halves of the border
  patches are cut off.
- ``pad_eval=True``: that box padded by ``N/2 − middle_trim`` on every side, so every border scan
  point's (trimmed) patch is stitched in full.

These are :func:`stitch_patches`'s own frames. A reconstruction's frame is chosen once, where
it is assembled (:func:`ptycho_nb.workflows.reconstruction.assemble`; there ``pad_eval`` keeps
the lit field, the pixels whose summed weight passes a fraction of its maximum).

``offset = (row0, col0)`` is the frame's origin in scan coordinates: frame pixel (r, c) is object
pixel (r + row0, c + col0) of the scan's coordinate system (for simulated data, the ground truth's
own pixel grid).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..physics.forward import merge_patches, patch_taps, scatter_patches

__all__ = ["StitchedObject", "stitch_patches", "patch_weights", "coverage"]


@dataclasses.dataclass
class StitchedObject:
    """Result of :func:`stitch_patches`.

    Attributes
    ----------
    object : (H, W) complex64
    weight : (H, W) float32
        Summed patch weights (coverage × probe intensity), same frame.
    offset : (int, int)
        (row0, col0) of the frame's pixel (0, 0) in scan coordinates.
    """

    object: np.ndarray
    weight: np.ndarray
    offset: tuple[int, int]


def patch_weights(probe: np.ndarray | torch.Tensor, middle_trim: int = 0) -> torch.Tensor:
    """Per-pixel stitching weights (N, N) float32: probe intensity / max, edges trimmed."""
    p = torch.as_tensor(np.asarray(probe)) if not torch.is_tensor(probe) else probe.detach().cpu()
    inten = (p.real ** 2 + p.imag ** 2).to(torch.float32)
    if inten.ndim == 3:
        inten = inten.sum(0)
    n = int(inten.shape[-1])
    if not 0 <= middle_trim < n // 2:
        raise ValueError(f"middle_trim={middle_trim!r} is invalid: rule is 0 <= middle_trim < N/2 = {n // 2}")
    w = inten / torch.clamp(inten.max(), min=torch.finfo(torch.float32).tiny)
    if middle_trim:
        keep = torch.zeros_like(w)
        keep[middle_trim:n - middle_trim, middle_trim:n - middle_trim] = 1.0
        w = w * keep
    return w


def stitch_patches(patches: np.ndarray | torch.Tensor, xcoords: np.ndarray, ycoords: np.ndarray,
                   probe: np.ndarray | torch.Tensor, *, middle_trim: int = 0, pad_eval: bool = False,
                   margin: int | None = None, eps: float = 1e-3) -> StitchedObject:
    """Stitch (M, N, N) complex patches at patch centres (xcoords = column, ycoords = row).

    Parameters
    ----------
    patches : (M, N, N) complex
    xcoords, ycoords : (M,) float, object pixels
    probe : (N, N) or (K, N, N) complex — the weights' source
    middle_trim : int
        Pixels dropped along each patch edge (0 ≤ middle_trim < N/2).
    pad_eval : bool
        Pad the frame so border scan points reconstruct fully (see module docstring).
    margin : int, optional
        Pixels around the positions' bounding box, overriding ``pad_eval`` (``N/2`` holds every
        full patch, as the physics refinement needs).
    eps : float
        Relative floor of the weight normalisation.
    """
    pt = torch.as_tensor(patches) if not torch.is_tensor(patches) else patches.detach().cpu()
    if pt.ndim != 3 or not pt.is_complex():
        raise ValueError(f"patches: expected complex (M, N, N), got {tuple(pt.shape)} {pt.dtype}")
    m, n = int(pt.shape[0]), int(pt.shape[-1])
    x = np.asarray(xcoords, dtype=np.float64).reshape(-1)
    y = np.asarray(ycoords, dtype=np.float64).reshape(-1)
    if x.shape[0] != m or y.shape[0] != m:
        raise ValueError(f"xcoords/ycoords: expected {m} positions to match the patches, "
                         f"got {x.shape[0]} and {y.shape[0]}")
    w = patch_weights(probe, middle_trim)
    if tuple(w.shape) != (n, n):
        raise ValueError(f"probe: expected ({n}, {n}) or (K, {n}, {n}) to match the patches, got {tuple(w.shape)}")

    # Work on a canvas with room for every full patch, then crop to the frame.
    half = n // 2
    r0 = math.floor(y.min()) - half - 1
    c0 = math.floor(x.min()) - half - 1
    h = math.ceil(y.max()) + half + 2 - r0
    wd = math.ceil(x.max()) + half + 2 - c0
    taps = patch_taps(torch.from_numpy(x - c0), torch.from_numpy(y - r0), n, (h, wd))
    # The normalisation's summed weights are the coverage map: one scatter serves both.
    obj, coverage = merge_patches(pt.to(torch.complex64), taps, weight_map=w, eps=eps)

    if margin is None:
        margin = (half - middle_trim) if pad_eval else 0
    elif not 0 <= margin <= half:
        raise ValueError(f"margin={margin!r} is invalid: rule is 0 <= margin <= N/2 = {half}")
    top = math.floor(y.min()) - margin
    left = math.floor(x.min()) - margin
    bottom = math.ceil(y.max()) + margin + 1
    right = math.ceil(x.max()) + margin + 1
    sl = (slice(top - r0, bottom - r0), slice(left - c0, right - c0))
    return StitchedObject(
        object=obj[sl].numpy().astype(np.complex64),
        weight=coverage[sl].numpy().astype(np.float32),
        offset=(int(top), int(left)),
    )


def coverage(xcoords: np.ndarray, ycoords: np.ndarray, probe: np.ndarray | torch.Tensor,
             shape: tuple[int, int], *, middle_trim: int = 0, chunk: int = 1024) -> np.ndarray:
    """The summed stitching weights of patches at (xcoords, ycoords) on an (H, W) frame.

    What :func:`stitch_patches` returns as ``weight`` for patches lit by ``probe``: each pixel's
    sum of :func:`patch_weights` over the patches covering it (how well the scan lit it, in units
    of the probe's brightest pixel), without the patches themselves; ``chunk`` patterns at a
    time. Positions are patch centres in the frame's pixels.

    Returns
    -------
    (H, W) float32 ndarray
    """
    w = patch_weights(probe, middle_trim)
    n = int(w.shape[-1])
    x = torch.from_numpy(np.asarray(xcoords, dtype=np.float64).reshape(-1))
    y = torch.from_numpy(np.asarray(ycoords, dtype=np.float64).reshape(-1))
    total = torch.zeros(int(shape[0]), int(shape[1]), dtype=torch.float32)
    for i in range(0, len(x), chunk):
        taps = patch_taps(x[i:i + chunk], y[i:i + chunk], n, shape)
        total += scatter_patches(w.expand(taps.m, n, n).contiguous(), taps)
    return total.numpy()
