"""Differentiable ptychographic forward model (torch, batched).

Conventions (design.md §3) — decided once here and tested in ``tests/test_physics_forward.py``:

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

import torch

__all__ = [
    "FFT_NORM", "FFT_SHIFTED", "far_field", "extract_patches", "place_patches", "stitch",
    "exit_waves", "forward_amplitude", "forward_from_object", "poisson_nll",
]

FFT_NORM = "ortho"
"""torch.fft normalisation used by :func:`far_field` (Parseval-preserving)."""
FFT_SHIFTED = True
"""Diffraction patterns are fftshifted: DC at pixel (N//2, N//2)."""


def _dc_pixel(n: int) -> tuple[int, int]:
    return (n // 2, n // 2)


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


def _bilinear_taps(coords: torch.Tensor, n: int, size: int, real_dtype: torch.dtype,
                   name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer taps and weights along one axis for patch centres ``coords`` (M,).

    Returns i0, i1 (M, n) long indices and w0, w1 (M, n) weights with
    ``value = w0 * O[i0] + w1 * O[i1]`` for sample positions ``coords - n/2 + arange(n)``.
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
    i0 = lo.long()[:, None] + torch.arange(n, device=coords.device)[None, :]
    if torch.any(i0[:, 0] < 0) or torch.any(i0[:, -1] + (frac > tol).long() > size - 1):
        raise ValueError(f"{name}: positions put the {n}-pixel patch outside the object axis of "
                         f"length {size}; centres must lie within [{n / 2}, {size - n / 2}]")
    # i1 may be one past the end when frac == 0 (integer position at the far edge); its weight is
    # then exactly 0, so clamping the index is harmless and keeps the gather in bounds.
    i1 = torch.clamp(i0 + 1, max=size - 1)
    w1 = frac[:, None].expand(-1, n)
    w0 = 1 - w1
    return i0, i1, w0, w1


def _as_batched_object(obj: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not torch.is_tensor(obj) or obj.ndim not in (2, 3):
        raise ValueError(f"obj: expected a tensor (H, W) or (B, H, W), got "
                         f"{tuple(obj.shape) if torch.is_tensor(obj) else type(obj).__name__}")
    return (obj[None], True) if obj.ndim == 2 else (obj, False)


def _real_dtype(t: torch.Tensor) -> torch.dtype:
    return t.real.dtype if t.is_complex() else (t.dtype if t.is_floating_point() else torch.float32)


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
    if not isinstance(N, int) or N <= 0 or N % 2:
        raise ValueError(f"N: expected a positive even int, got {N!r}")
    o, squeeze = _as_batched_object(obj)
    x, y = _check_positions(xcoords, ycoords)
    b, h, w = o.shape
    rdt = _real_dtype(o)
    r0, r1, wr0, wr1 = _bilinear_taps(y.to(o.device), N, h, rdt, "ycoords")
    c0, c1, wc0, wc1 = _bilinear_taps(x.to(o.device), N, w, rdt, "xcoords")
    flat = o.reshape(b, h * w)
    m = x.shape[0]

    def gather(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        idx = (r[:, :, None] * w + c[:, None, :]).reshape(-1)  # (M*N*N,)
        return flat[:, idx].reshape(b, m, N, N)

    # Separable bilinear: rows and columns interpolate independently (weights (M,N,1)×(M,1,N)).
    out = (wr0[:, :, None] * wc0[:, None, :] * gather(r0, c0)
           + wr0[:, :, None] * wc1[:, None, :] * gather(r0, c1)
           + wr1[:, :, None] * wc0[:, None, :] * gather(r1, c0)
           + wr1[:, :, None] * wc1[:, None, :] * gather(r1, c1))
    return out[0] if squeeze else out


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
    squeeze = patches.ndim == 3
    p = patches[None] if squeeze else patches
    b, m, n, _ = p.shape
    x, y = _check_positions(xcoords, ycoords)
    if x.shape[0] != m:
        raise ValueError(f"xcoords: expected {m} positions to match the patches, got {x.shape[0]}")
    if weights is not None:
        wt = torch.as_tensor(weights, device=p.device)
        if wt.shape not in ((n, n), (m, n, n)):
            raise ValueError(f"weights: expected shape ({n}, {n}) or ({m}, {n}, {n}), got {tuple(wt.shape)}")
        p = p * wt
    h, w = int(shape[0]), int(shape[1])
    rdt = _real_dtype(p)
    r0, r1, wr0, wr1 = _bilinear_taps(y.to(p.device), n, h, rdt, "ycoords")
    c0, c1, wc0, wc1 = _bilinear_taps(x.to(p.device), n, w, rdt, "xcoords")
    canvas = torch.zeros(b, h * w, dtype=p.dtype, device=p.device)
    for r, wr in ((r0, wr0), (r1, wr1)):
        for c, wc in ((c0, wc0), (c1, wc1)):
            idx = (r[:, :, None] * w + c[:, None, :]).reshape(-1)
            src = (wr[:, :, None] * wc[:, None, :] * p).reshape(b, -1)
            canvas = canvas.index_add(1, idx, src)  # out-of-place: keeps autograd simple
    canvas = canvas.reshape(b, h, w)
    return canvas[0] if squeeze else canvas


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
    n = patches.shape[-1]
    m = patches.shape[-3]
    rdt = _real_dtype(patches)
    if weight_map is None:
        wmap = torch.ones(n, n, dtype=rdt, device=patches.device)
    else:
        wmap = torch.as_tensor(weight_map, device=patches.device)
        if wmap.is_complex() or torch.any(wmap < 0):
            raise ValueError("weight_map: expected non-negative real weights")
        wmap = wmap.to(rdt)
    num = place_patches(patches, xcoords, ycoords, shape, weights=wmap)
    den = place_patches(wmap.expand(m, n, n), xcoords, ycoords, shape)
    floor = eps * torch.clamp(den.detach().max(), min=torch.finfo(rdt).tiny)
    return num / torch.clamp(den, min=floor)


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
