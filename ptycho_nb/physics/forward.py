"""Differentiable ptychographic forward model (torch, batched).

Conventions (README "Units and conventions") — decided once here and tested in ``tests/test_physics_forward.py``:

- **FFT**: ``far_field(psi) = fftshift(fft2(psi, norm="ortho"), dim=(-2, -1))``. The exit wave is
  transformed *as stored* (no ifftshift before the FFT: a shift of the real-space origin only
  changes the far-field phase, never the measured amplitude). ``norm="ortho"`` divides by
  ``sqrt(N*N)`` so Parseval holds, ``sum|psi|^2 == sum|Psi|^2``: a probe with ``sum|P|^2 = n``
  delivers at most ``n`` photons per pattern. DC lands at pixel ``(N//2, N//2)``. The unnormalised
  convention (numpy's default) is ``N`` times larger in amplitude.
- **Positions**: ``xcoords`` = column, ``ycoords`` = row of the patch *centre* in object pixels.
  ``patch[i, j] = O(y - N/2 + i, x - N/2 + j)``; integer positions give exactly
  ``obj[y - N//2 : y + N//2, x - N//2 : x + N//2]``. Sub-pixel positions use bilinear
  interpolation; ``place_patches`` is its exact adjoint.
- **Amplitudes**: ``forward_amplitude`` returns ``sqrt(sum_k |F{P_k * O_j}|^2)`` (incoherent
  probe modes add in intensity); intensities/counts are amplitude squared.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = [
    "FFT_NORM", "far_field", "extract_patches", "place_patches", "stitch",
    "PatchTaps", "patch_taps", "check_positions", "gather_patches", "scatter_patches", "merge_patches",
    "exit_waves", "forward_amplitude", "forward_amplitude_per_sample", "forward_from_object", "poisson_nll",
]

FFT_NORM = "ortho"
"""torch.fft normalisation used by :func:`far_field` (Parseval-preserving)."""


def far_field(exit_wave: torch.Tensor) -> torch.Tensor:
    """Far-field (Fraunhofer) wave of exit waves.

    Parameters
    ----------
    exit_wave : complex tensor, (..., N, N)

    Returns
    -------
    complex tensor, (..., N, N)
        ``fftshift(fft2(exit_wave, norm='ortho'))`` over the last two axes; DC at (N//2, N//2).
    """
    if not torch.is_tensor(exit_wave) or exit_wave.ndim < 2:
        raise ValueError("exit_wave: expected a tensor with at least 2 dimensions (..., N, N)")
    return torch.fft.fftshift(torch.fft.fft2(exit_wave, norm=FFT_NORM), dim=(-2, -1))


def _check_positions(xcoords: torch.Tensor, ycoords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(xcoords)
    y = torch.as_tensor(ycoords)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"xcoords/ycoords: expected two 1-D tensors of equal length (M,), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.is_complex() or y.is_complex():
        raise ValueError("xcoords/ycoords: expected real pixel coordinates")
    return x, y


def _as_batched_object(obj: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not torch.is_tensor(obj) or obj.ndim not in (2, 3):
        raise ValueError(f"obj: expected a tensor (H, W) or (B, H, W), got "
                         f"{tuple(obj.shape) if torch.is_tensor(obj) else type(obj).__name__}")
    return (obj[None], True) if obj.ndim == 2 else (obj, False)


def _real_dtype(t: torch.Tensor) -> torch.dtype:
    return t.real.dtype if t.is_complex() else (t.dtype if t.is_floating_point() else torch.float32)


@dataclasses.dataclass(frozen=True)
class PatchTaps:
    """Bilinear taps of M N×N patch windows on an (H, W) grid, computed once, used many times.

    Sub-pixel positions shift every pixel of a patch by the same fraction, so the bilinear weights
    are four scalars per patch and the four taps are the (N+1)×(N+1) integer window at the
    patch's floor corner, offset by 0 or 1 pixel per axis. Extraction gathers that window once
    and blends four shifted N×N views of it; placement is the exact adjoint (blend into an
    (N+1)×(N+1) window, scatter it once). Build with :func:`patch_taps`.

    Attributes
    ----------
    index : long tensor, (M·(N+1)²,)
        Flat indices ``row·W + col`` of every window pixel (clamped to the grid: a tap one past
        the far edge has weight 0 or a round-off-sized weight, as in the 4-tap formulation).
    weights : real tensor, (M, 2, 2)
        ``weights[j, a, b]`` multiplies the tap shifted by ``a`` rows and ``b`` columns; each
        patch's four weights sum to 1. Differentiable w.r.t. the positions.
    n : int
        Patch side N.
    shape : (int, int)
        Grid (H, W).
    """

    index: torch.Tensor
    weights: torch.Tensor
    n: int
    shape: tuple[int, int]

    @property
    def m(self) -> int:
        """Number of patches M."""
        return int(self.weights.shape[0])


def _axis_start(coords: torch.Tensor, n: int, size: int, real_dtype: torch.dtype,
                name: str, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Window start (M,) long and the fractional shift (M,) along one axis, bounds checked.

    Sample positions are ``coords - n/2 + arange(n)``; ``value = (1-f)·O[i] + f·O[i+1]``.
    """
    # Split into integer + fraction in the positions' own precision (float64 scan coordinates of a
    # complex64 object keep their sub-pixel accuracy); only the weights take the object's dtype.
    work = torch.promote_types(coords.dtype, real_dtype) if coords.is_floating_point() else real_dtype
    start = coords.to(work) - n / 2  # position of patch pixel 0, may be fractional
    # The tolerance snaps positions that are integers up to round-off (31.9999999) onto the grid,
    # leaving a tiny negative fraction, so valid edge positions never fail the bounds check.
    tol = 1e-6
    lo = torch.floor(start.detach() + tol)
    frac = (start - lo).to(real_dtype)  # differentiable w.r.t. coords (floor has zero gradient)
    lo = lo.long()
    # The bounds check reads a value back from the device: callers that checked every position
    # once (the refinement, batch after batch) skip it.
    if check and (torch.any(lo < 0) or torch.any(lo + (n - 1) + (frac > tol).long() > size - 1)):
        raise ValueError(f"{name}: positions put the {n}-pixel patch outside the object axis of "
                         f"length {size}; centres must lie within [{n / 2}, {size - n / 2}]")
    return lo, frac


def _axis_taps(coords: torch.Tensor, n: int, size: int, real_dtype: torch.dtype,
               name: str, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Window start rows (M, N+1) long, clamped, and the fractional shift (M,) along one axis."""
    lo, frac = _axis_start(coords, n, size, real_dtype, name, check)
    # The window's last tap may be one past the end when frac is 0 (an integer position at the far
    # edge); its weight is then 0 (or round-off), so clamping keeps the gather in bounds.
    idx = torch.clamp(lo[:, None] + torch.arange(n + 1, device=coords.device)[None, :], max=size - 1)
    return idx, frac


def check_positions(xcoords: torch.Tensor, ycoords: torch.Tensor, N: int, shape: tuple[int, int]) -> None:
    """Refuse positions that put an N×N patch outside an (H, W) grid (the check of
    :func:`patch_taps`, without building any taps: O(M) memory for M positions)."""
    x, y = _check_positions(xcoords, ycoords)
    for coords, size, name in ((y, int(shape[0]), "ycoords"), (x, int(shape[1]), "xcoords")):
        _axis_start(coords, N, size, torch.float32, name, True)  # as patch_taps checks them


def patch_taps(xcoords: torch.Tensor, ycoords: torch.Tensor, N: int, shape: tuple[int, int],
               real_dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
               *, check: bool = True) -> PatchTaps:
    """Bilinear taps of N×N patches centred at (x, y) on an (H, W) grid.

    Parameters
    ----------
    xcoords, ycoords : tensor, (M,) float
        Patch-centre column and row in grid pixels; ``N/2 <= x <= W - N/2`` (same for y/H).
    N : int
        Patch side (pixels, even).
    shape : (H, W)
    real_dtype : torch dtype
        Dtype of the weights (the real dtype of the data they will weight).
    device : optional
        Where the taps live (default: the positions' device).
    check : bool
        Refuse positions that put a patch outside the grid (a ``ValueError``). ``False`` skips
        the check, which reads a value back from the device, for positions already checked.

    Returns
    -------
    PatchTaps
    """
    if not isinstance(N, int) or N <= 0 or N % 2:
        raise ValueError(f"N: expected a positive even int, got {N!r}")
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"shape: expected (H, W) with positive sides, got {shape!r}")
    x, y = _check_positions(xcoords, ycoords)
    if device is not None:
        x, y = x.to(device), y.to(device)
    h, w = int(shape[0]), int(shape[1])
    rows, fy = _axis_taps(y, N, h, real_dtype, "ycoords", check)
    cols, fx = _axis_taps(x, N, w, real_dtype, "xcoords", check)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(-1)
    wy = torch.stack([1 - fy, fy], dim=1)  # (M, 2): weight of row shift 0, 1
    wx = torch.stack([1 - fx, fx], dim=1)
    return PatchTaps(index=index, weights=wy[:, :, None] * wx[:, None, :], n=N, shape=(h, w))


#: The four bilinear taps as (row shift, column shift) within a patch's (N+1)×(N+1) window.
_SHIFTS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _real_view(t: torch.Tensor) -> torch.Tensor:
    # Complex data as (..., 2) real pairs: real weights then cost 2 real multiplies per element
    # instead of a promotion to complex and a complex multiply.
    return torch.view_as_real(t) if t.is_complex() else t[..., None]


def _from_real_view(t: torch.Tensor, complex_: bool) -> torch.Tensor:
    return torch.view_as_complex(t.contiguous()) if complex_ else t[..., 0]


def gather_patches(obj: torch.Tensor, taps: PatchTaps) -> torch.Tensor:
    """Bilinear patches of ``obj`` at precomputed taps (see :func:`extract_patches`).

    Parameters
    ----------
    obj : tensor, (H, W) or (B, H, W), complex or real — ``taps.shape`` must be (H, W)
    taps : PatchTaps

    Returns
    -------
    tensor, (M, N, N) — or (B, M, N, N) for a batched object
    """
    o, squeeze = _as_batched_object(obj)
    b, h, w = o.shape
    if (h, w) != taps.shape:
        raise ValueError(f"obj: expected (..., {taps.shape[0]}, {taps.shape[1]}) to match the taps, "
                         f"got {tuple(obj.shape)}")
    n, m = taps.n, taps.m
    win = o.reshape(b, h * w).index_select(1, taps.index).reshape(b, m, n + 1, n + 1)
    v = _real_view(win)  # (B, M, N+1, N+1, 2|1)
    wt = taps.weights.to(v.dtype)[:, :, :, None, None, None]  # (M, 2, 2, 1, 1, 1)
    out = wt[:, 0, 0] * v[:, :, :n, :n]
    for dy, dx in _SHIFTS[1:]:  # fused multiply-adds: one pass over the patch per tap
        out = out.addcmul(wt[:, dy, dx], v[:, :, dy:dy + n, dx:dx + n])
    out = _from_real_view(out, o.is_complex())
    return out[0] if squeeze else out


def scatter_patches(patches: torch.Tensor, taps: PatchTaps, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Scatter-add patches at precomputed taps: the adjoint of :func:`gather_patches`.

    Parameters
    ----------
    patches : tensor, (M, N, N) or (B, M, N, N)
    taps : PatchTaps
    out : tensor, (H, W) or (B, H, W), optional
        A canvas to add into, in place (no autograd through it): a caller that scatters batch
        after batch keeps one canvas instead of allocating and copying one per call.

    Returns
    -------
    tensor, (H, W) — or (B, H, W), ``H, W = taps.shape`` (``out`` when given)
    """
    squeeze = patches.ndim == 3
    p = patches[None] if squeeze else patches
    b, m, n, _ = p.shape
    if (m, n) != (taps.m, taps.n):
        raise ValueError(f"patches: expected (..., {taps.m}, {taps.n}, {taps.n}) to match the taps, "
                         f"got {tuple(patches.shape)}")
    v = _real_view(p)  # (B, M, N, N, 2|1)
    wt = taps.weights.to(v.dtype)[:, :, :, None, None, None]
    # Blend the four shifted, weighted copies into one (N+1)×(N+1) window per patch (in place,
    # one pass each), then scatter the window once.
    win = v.new_zeros(*v.shape[:2], n + 1, n + 1, v.shape[-1])
    for dy, dx in _SHIFTS:
        win[:, :, dy:dy + n, dx:dx + n].addcmul_(wt[:, dy, dx], v)
    win = _from_real_view(win, p.is_complex())
    h, w = taps.shape
    if out is not None:
        if tuple(out.shape[-2:]) != (h, w) or out.dtype != win.dtype or not out.is_contiguous():
            raise ValueError(f"out: expected a contiguous {win.dtype} canvas (..., {h}, {w}), got "
                             f"{out.dtype} {tuple(out.shape)}")
        out.view(b, h * w).index_add_(1, taps.index, win.reshape(b, -1))
        return out
    canvas = torch.zeros(b, h * w, dtype=win.dtype, device=win.device)
    canvas = canvas.index_add(1, taps.index, win.reshape(b, -1))  # out-of-place: keeps autograd simple
    canvas = canvas.reshape(b, h, w)
    return canvas[0] if squeeze else canvas


def extract_patches(obj: torch.Tensor, xcoords: torch.Tensor, ycoords: torch.Tensor, N: int) -> torch.Tensor:
    """Cut N×N patches centred at (x, y) out of the object (bilinear for sub-pixel positions).

    Parameters
    ----------
    obj : tensor, (H, W) or (B, H, W), complex or real
    xcoords, ycoords : tensor, (M,) float
        Patch-centre column and row in object pixels; ``N/2 <= x <= W - N/2`` (same for y/H).
    N : int
        Patch side (pixels, even).

    Returns
    -------
    tensor, (M, N, N) — or (B, M, N, N) for a batched object
        ``patch[i, j] = O(y - N/2 + i, x - N/2 + j)``. Exactly a slice at integer positions;
        differentiable w.r.t. ``obj`` and the positions.
    """
    o, _ = _as_batched_object(obj)
    taps = patch_taps(xcoords, ycoords, N, tuple(o.shape[-2:]), _real_dtype(o), o.device)
    return gather_patches(obj, taps)


def place_patches(patches: torch.Tensor, xcoords: torch.Tensor, ycoords: torch.Tensor,
                  shape: tuple[int, int], weights: torch.Tensor | None = None) -> torch.Tensor:
    """Scatter-add patches into an object-sized canvas: the adjoint of :func:`extract_patches`.

    Parameters
    ----------
    patches : tensor, (M, N, N) or (B, M, N, N)
    xcoords, ycoords : tensor, (M,) float — patch centres (column, row), object pixels
    shape : (H, W)
        Canvas shape.
    weights : tensor, (N, N) or (M, N, N), optional
        Real per-pixel weights multiplied into the patches before scattering.

    Returns
    -------
    tensor, (H, W) — or (B, H, W)
        ``sum_j A_j^T patch_j`` with ``A_j`` the bilinear extraction operator of position j.
    """
    if not torch.is_tensor(patches) or patches.ndim not in (3, 4) or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"patches: expected (M, N, N) or (B, M, N, N), got "
                         f"{tuple(patches.shape) if torch.is_tensor(patches) else type(patches).__name__}")
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"shape: expected (H, W) with positive sides, got {shape!r}")
    m, n = int(patches.shape[-3]), int(patches.shape[-1])
    x, y = _check_positions(xcoords, ycoords)
    if x.shape[0] != m:
        raise ValueError(f"xcoords: expected {m} positions to match the patches, got {x.shape[0]}")
    p = patches if weights is None else patches * _check_weights(weights, m, n, patches.device)
    taps = patch_taps(x, y, n, shape, _real_dtype(p), p.device)
    return scatter_patches(p, taps)


def _check_weights(weights: torch.Tensor, m: int, n: int, device: torch.device) -> torch.Tensor:
    wt = torch.as_tensor(weights, device=device)
    if wt.shape not in ((n, n), (m, n, n)):
        raise ValueError(f"weights: expected shape ({n}, {n}) or ({m}, {n}, {n}), got {tuple(wt.shape)}")
    return wt


def merge_patches(patches: torch.Tensor, taps: PatchTaps, weight_map: torch.Tensor | None = None,
                  eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`stitch` at precomputed taps, also returning the summed weights.

    Parameters
    ----------
    patches : tensor, (M, N, N) or (B, M, N, N)
    taps : PatchTaps
        From :func:`patch_taps` for the patches' positions and the canvas (H, W).
    weight_map : tensor, (N, N) or (M, N, N), optional
        Non-negative real weights; uniform when None.
    eps : float
        Relative floor of the denominator (see :func:`stitch`).

    Returns
    -------
    (object, weight)
        ``object`` (H, W) or (B, H, W) as :func:`stitch`; ``weight`` (H, W), the summed
        per-pixel weights ``sum_j A_j^T w`` (the coverage map).
    """
    if not (eps > 0):
        raise ValueError(f"eps: expected a positive float, got {eps!r}")
    n, m = taps.n, taps.m
    rdt = _real_dtype(patches)
    if weight_map is None:
        wmap = torch.ones(n, n, dtype=rdt, device=patches.device)
        num = scatter_patches(patches, taps)  # uniform weights: no multiply by ones
    else:
        wmap = torch.as_tensor(weight_map, device=patches.device)
        if wmap.is_complex() or torch.any(wmap < 0):
            raise ValueError("weight_map: expected non-negative real weights")
        wmap = _check_weights(wmap.to(rdt), m, n, patches.device)
        num = scatter_patches(patches * wmap, taps)
    den = scatter_patches(wmap.expand(m, n, n), taps)
    floor = eps * torch.clamp(den.detach().max(), min=torch.finfo(rdt).tiny)
    return num / torch.clamp(den, min=floor), den


def stitch(patches: torch.Tensor, xcoords: torch.Tensor, ycoords: torch.Tensor,
           shape: tuple[int, int], weight_map: torch.Tensor | None = None,
           eps: float = 1e-3) -> torch.Tensor:
    """Merge overlapping patches into one object: ``sum(w·patch) / max(sum w, eps·max(sum w))``.

    Parameters
    ----------
    patches : tensor, (M, N, N) or (B, M, N, N)
    xcoords, ycoords : tensor, (M,) — patch centres (column, row), object pixels
    shape : (H, W)
    weight_map : tensor, (N, N) or (M, N, N), optional
        Non-negative real weights (e.g. probe intensity); uniform when None.
    eps : float
        Relative floor of the denominator. Pixels with no coverage come out 0 (numerator is 0),
        and barely covered pixels are damped instead of amplifying noise by 1/(tiny weight).

    Returns
    -------
    tensor, (H, W) or (B, H, W)
        Weighted mean of all patch pixels landing on each object pixel (identity for
        ``extract_patches`` at integer positions inside the covered region).
    """
    if not (eps > 0):
        raise ValueError(f"eps: expected a positive float, got {eps!r}")
    n = int(patches.shape[-1])
    # One set of taps serves the numerator and the denominator.
    taps = patch_taps(xcoords, ycoords, n, shape, _real_dtype(patches), patches.device)
    return merge_patches(patches, taps, weight_map=weight_map, eps=eps)[0]


def exit_waves(probe: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Exit waves ``P · O_j`` (thin-object approximation).

    Parameters
    ----------
    probe : complex tensor, (N, N) or (K, N, N) incoherent modes
    patches : complex tensor, (..., M, N, N)

    Returns
    -------
    complex tensor, (..., M, N, N) for a single probe, (..., M, K, N, N) for K modes.
    """
    if probe.ndim not in (2, 3):
        raise ValueError(f"probe: expected (N, N) or (K, N, N), got {tuple(probe.shape)}")
    if patches.ndim < 2 or patches.shape[-2:] != probe.shape[-2:]:
        raise ValueError(f"patches: expected (..., {probe.shape[-2]}, {probe.shape[-1]}) to match "
                         f"the probe, got {tuple(patches.shape)}")
    if probe.ndim == 2:
        return probe * patches
    return probe * patches[..., None, :, :]


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0; the double-where keeps gradients finite (0 there).
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def forward_amplitude(probe: torch.Tensor, patches: torch.Tensor,
                      scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """Predicted diffraction amplitudes ``sqrt(scale · sum_k |F{P_k · O_j}|²)``.

    Parameters
    ----------
    probe : complex tensor, (N, N) or (K, N, N)
    patches : complex tensor, (..., M, N, N)
    scale : float or tensor, optional
        Intensity scale (photons per unit probe intensity); broadcast against (..., M, 1, 1).

    Returns
    -------
    real tensor, (..., M, N, N)
        Amplitudes (sqrt of expected counts), DC at (N//2, N//2).
    """
    psi = far_field(exit_waves(probe, patches))
    inten = psi.real ** 2 + psi.imag ** 2
    if probe.ndim == 3:
        inten = inten.sum(dim=-3)  # incoherent modes add in intensity
    if scale is not None:
        inten = inten * scale
    return _safe_sqrt(inten)


def forward_amplitude_per_sample(probes: torch.Tensor, patches: torch.Tensor,
                                 scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """:func:`forward_amplitude` where every sample has its own probe.

    Parameters
    ----------
    probes : complex tensor, (B, N, N) or (B, K, N, N) incoherent modes
        Sample b's probe lights every patch of ``patches[b]``.
    patches : complex tensor, (B, C, N, N)
    scale : float or tensor, optional
        Intensity scale; a tensor broadcasts against (B, C, 1, 1).

    Returns
    -------
    real tensor, (B, C, N, N)
    """
    if probes.ndim not in (3, 4) or patches.ndim != 4 or probes.shape[0] != patches.shape[0] \
            or probes.shape[-2:] != patches.shape[-2:]:
        raise ValueError(f"probes/patches: expected (B, [K,] N, N) and (B, C, N, N) with the same B "
                         f"and N, got {tuple(probes.shape)} and {tuple(patches.shape)}")
    modes = probes if probes.ndim == 4 else probes[:, None]
    psi = far_field(modes[:, None] * patches[:, :, None])  # (B, C, K, N, N)
    inten = (psi.real ** 2 + psi.imag ** 2).sum(dim=2)
    if scale is not None:
        inten = inten * scale
    return _safe_sqrt(inten)


def forward_from_object(probe: torch.Tensor, obj: torch.Tensor, xcoords: torch.Tensor,
                        ycoords: torch.Tensor, scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """Amplitudes of the patterns at (xcoords, ycoords): extract patches, then forward_amplitude.

    Shapes as in :func:`extract_patches` and :func:`forward_amplitude`; returns (M, N, N).
    """
    n = int(probe.shape[-1])
    return forward_amplitude(probe, extract_patches(obj, xcoords, ycoords, n), scale=scale)


def poisson_nll(pred_amplitude: torch.Tensor, measured_amplitude: torch.Tensor,
                eps: float = 1e-6) -> torch.Tensor:
    """Poisson negative log-likelihood of measured counts, mean over all pixels.

    ``nll = mean(lam - k · log(lam + eps))`` with ``lam = pred²`` the expected counts and
    ``k = measured²`` the observed counts. The k-only constant ``log(k!)`` is dropped (it has no
    gradient), so the minimum is not 0.

    Parameters
    ----------
    pred_amplitude, measured_amplitude : real tensors of the same shape, amplitudes (sqrt counts)
    eps : float
        Keeps log finite where the prediction is 0.

    Returns
    -------
    scalar tensor
    """
    if pred_amplitude.shape != measured_amplitude.shape:
        raise ValueError(f"measured_amplitude: expected shape {tuple(pred_amplitude.shape)} to match "
                         f"pred_amplitude, got {tuple(measured_amplitude.shape)}")
    if not (eps > 0):
        raise ValueError(f"eps: expected a positive float, got {eps!r}")
    lam = pred_amplitude ** 2
    k = measured_amplitude ** 2
    return torch.mean(lam - k * torch.log(lam + eps))
