"""Forward model: conventions, NumPy reference agreement, adjointness, round trips, gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from ptycho_nb.physics import (FFT_NORM, exit_waves, extract_patches, far_field, forward_amplitude,
                               forward_from_object, place_patches, poisson_nll, stitch)

VECTOR = Path(__file__).parent / "data" / "conventions_vector.npz"


# ---------------------------------------------------------------- independent numpy reference
def np_patch(obj: np.ndarray, x: float, y: float, n: int) -> np.ndarray:
    """Bilinear patch by explicit per-pixel loops (slow, obviously correct)."""
    out = np.zeros((n, n), dtype=np.complex128)
    for i in range(n):
        for j in range(n):
            r, c = y - n / 2 + i, x - n / 2 + j
            r0, c0 = int(np.floor(r)), int(np.floor(c))
            fr, fc = r - r0, c - c0
            v = 0j
            for dr, wr in ((0, 1 - fr), (1, fr)):
                for dc, wc in ((0, 1 - fc), (1, fc)):
                    if wr * wc:
                        v += wr * wc * obj[r0 + dr, c0 + dc]
            out[i, j] = v
    return out


def np_amplitude(probe: np.ndarray, patch: np.ndarray) -> np.ndarray:
    n = patch.shape[-1]
    modes = probe if probe.ndim == 3 else probe[None]
    inten = sum(np.abs(np.fft.fftshift(np.fft.fft2(m * patch)) / n) ** 2 for m in modes)
    return np.sqrt(inten)


def rand_complex(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


# ---------------------------------------------------------------- tests
def test_fft_convention_constants_and_dc_pixel():
    assert FFT_NORM == "ortho"
    psi = torch.ones(8, 8, dtype=torch.complex64)
    out = far_field(psi)
    # A flat wave puts all its power at DC, pixel (N//2, N//2), amplitude sqrt(N*N) with ortho.
    assert torch.argmax(out.abs()).item() == 4 * 8 + 4
    assert out.abs()[4, 4].item() == pytest.approx(8.0, rel=1e-6)


def test_parseval():
    rng = np.random.default_rng(0)
    psi = torch.from_numpy(rand_complex(rng, 3, 16, 16))
    out = far_field(psi)
    assert torch.allclose((psi.abs() ** 2).sum((-1, -2)), (out.abs() ** 2).sum((-1, -2)), rtol=1e-12)


def test_reproduces_conventions_vector():
    d = np.load(VECTOR)
    probe = torch.from_numpy(d["probeGuess"])
    obj = torch.from_numpy(d["objectGuess"])
    x, y = torch.from_numpy(d["xcoords"]), torch.from_numpy(d["ycoords"])
    n = probe.shape[-1]
    amp = forward_from_object(probe, obj, x, y).numpy()
    ref = d["diffraction"]
    # ortho divides by sqrt(N*N) = N: the single global factor between the conventions.
    assert np.max(np.abs(amp * n - ref)) <= 1e-6 * ref.max() * 4
    # ... and a swapped x/y would not (the vector has an asymmetric bar).
    swapped = forward_from_object(probe, obj, y, x).numpy()
    assert np.max(np.abs(swapped * n - ref)) > 1e-2 * ref.max()


def test_matches_numpy_reference_subpixel_and_modes():
    rng = np.random.default_rng(1)
    obj = rand_complex(rng, 20, 24)
    probe = rand_complex(rng, 2, 8, 8)
    xs = np.array([4.0, 7.3, 19.99, 12.5])
    ys = np.array([4.0, 10.71, 15.0, 6.25])
    ours = forward_from_object(torch.from_numpy(probe), torch.from_numpy(obj),
                               torch.from_numpy(xs), torch.from_numpy(ys)).numpy()
    for k in range(len(xs)):
        ref = np_amplitude(probe, np_patch(obj, xs[k], ys[k], 8))
        np.testing.assert_allclose(ours[k], ref, rtol=1e-10, atol=1e-12)


def test_probe_modes_sum_intensities_and_scale():
    rng = np.random.default_rng(2)
    p = torch.from_numpy(rand_complex(rng, 3, 8, 8))
    patches = torch.from_numpy(rand_complex(rng, 5, 8, 8))
    total = sum(forward_amplitude(p[k], patches) ** 2 for k in range(3))
    assert torch.allclose(forward_amplitude(p, patches) ** 2, total, rtol=1e-10)
    assert exit_waves(p, patches).shape == (5, 3, 8, 8)
    assert torch.allclose(forward_amplitude(p, patches, scale=4.0), 2 * forward_amplitude(p, patches))


def test_integer_extraction_is_slicing_and_xy_convention():
    obj = np.zeros((40, 50), dtype=np.complex64)
    obj[10:12, 5:45] = 1  # horizontal bar: long along x (columns)
    o = torch.from_numpy(obj)
    patch = extract_patches(o, torch.tensor([25.0]), torch.tensor([11.0]), 8)[0].numpy()
    # centre (x=25, y=11): rows 7..14, cols 21..28 -> bar occupies patch rows 3, 4 fully
    np.testing.assert_array_equal(patch, obj[7:15, 21:29])
    assert patch[3:5].all() and not patch[:3].any() and not patch[5:].any()
    xs = torch.tensor([4.0, 46.0, 30.0])
    ys = torch.tensor([4.0, 36.0, 20.0])
    pat = extract_patches(o, xs, ys, 8)
    for k in range(3):
        x, y = int(xs[k]), int(ys[k])
        np.testing.assert_array_equal(pat[k].numpy(), obj[y - 4:y + 4, x - 4:x + 4])


def test_subpixel_extraction_matches_shifted_object():
    rng = np.random.default_rng(3)
    obj = rand_complex(rng, 30, 30)
    dx, dy = 0.3, 0.65
    # shifted(q) = obj(q + d): scipy's shift moves content by -d (linear interpolation).
    shifted = (ndimage.shift(obj.real, (-dy, -dx), order=1)
               + 1j * ndimage.shift(obj.imag, (-dy, -dx), order=1))
    f64 = torch.float64
    a = extract_patches(torch.from_numpy(obj), torch.tensor([14.0 + dx], dtype=f64),
                        torch.tensor([12.0 + dy], dtype=f64), 10)
    b = extract_patches(torch.from_numpy(shifted), torch.tensor([14.0], dtype=f64),
                        torch.tensor([12.0], dtype=f64), 10)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


def test_place_is_adjoint_of_extract():
    rng = np.random.default_rng(4)
    obj = torch.from_numpy(rand_complex(rng, 18, 21))
    v = torch.from_numpy(rand_complex(rng, 3, 6, 6))
    xs, ys = torch.tensor([3.0, 9.4, 17.7]), torch.tensor([3.2, 14.5, 8.0])
    lhs = torch.vdot(extract_patches(obj, xs, ys, 6).reshape(-1), v.reshape(-1))
    rhs = torch.vdot(obj.reshape(-1), place_patches(v, xs, ys, (18, 21)).reshape(-1))
    assert torch.allclose(lhs, rhs, rtol=1e-12)


def _covered(xs, ys, n, shape):
    cov = place_patches(torch.ones(len(xs), n, n, dtype=torch.float64), xs, ys, shape)
    return cov


def test_round_trip_integer_positions_identity():
    rng = np.random.default_rng(5)
    obj = torch.from_numpy(rand_complex(rng, 32, 40))
    xs = torch.tensor([8.0, 14.0, 20.0, 26.0, 32.0, 12.0, 30.0])
    ys = torch.tensor([8.0, 10.0, 12.0, 14.0, 16.0, 22.0, 24.0])
    out = stitch(extract_patches(obj, xs, ys, 16), xs, ys, (32, 40))
    cov = _covered(xs, ys, 16, (32, 40)) > 0
    assert cov.sum() > 500
    np.testing.assert_allclose(out[cov].numpy(), obj[cov].numpy(), rtol=1e-12)
    assert torch.all(out[~cov] == 0)  # uncovered regions go to 0, not NaN/inf


def test_round_trip_subpixel_on_smooth_object():
    # The adjoint of bilinear interpolation is not its inverse for arbitrary objects, but the
    # hat-weighted stitch reproduces any linear (ramp) object exactly where fully covered.
    h, w = 30, 34
    yy, xx = np.mgrid[:h, :w]
    obj = torch.from_numpy((0.3 + 0.02 * xx - 0.01 * yy) + 1j * (0.05 * yy + 0.01 * xx))
    xs = torch.tensor([8.3, 13.7, 19.45, 25.1, 11.2, 22.9], dtype=torch.float64)
    ys = torch.tensor([8.6, 9.2, 12.9, 14.05, 20.5, 21.3], dtype=torch.float64)
    out = stitch(extract_patches(obj, xs, ys, 12), xs, ys, (h, w))
    # Exact where no patch has its (fractionally covered) border: there every contributing patch
    # has samples on both sides of the pixel, and the hat-weighted mean of a ramp is the ramp.
    per_patch = torch.stack([_covered(xs[k:k + 1], ys[k:k + 1], 12, (h, w)) for k in range(len(xs))])
    full = ((per_patch == 0) | (torch.abs(per_patch - 1) < 1e-12)).all(0) & (per_patch.sum(0) > 0)
    assert full.sum() > 200
    np.testing.assert_allclose(out.numpy()[full.numpy()], obj.numpy()[full.numpy()], atol=1e-10)
    # Everywhere covered the stitch is a weighted local average: close for a smooth object.
    cov = per_patch.sum(0) > 0.5
    np.testing.assert_allclose(out.numpy()[cov.numpy()], obj.numpy()[cov.numpy()], atol=0.03)


def test_stitch_weight_map_and_regulariser():
    obj = torch.ones(20, 20, dtype=torch.complex128) * (0.5 + 0.5j)
    xs, ys = torch.tensor([6.0, 10.0, 14.0]), torch.tensor([10.0, 10.0, 10.0])
    wmap = torch.exp(-((torch.arange(8.0) - 4) ** 2)[:, None] / 8 - ((torch.arange(8.0) - 4) ** 2)[None] / 8)
    out = stitch(extract_patches(obj, xs, ys, 8), xs, ys, (20, 20), weight_map=wmap, eps=1e-12)
    assert torch.allclose(out[6:14, 2:18], obj[6:14, 2:18], rtol=1e-10)
    with pytest.raises(ValueError, match="eps"):
        stitch(extract_patches(obj, xs, ys, 8), xs, ys, (20, 20), eps=0)


def test_gradcheck_object_and_positions():
    rng = np.random.default_rng(6)
    obj = torch.from_numpy(rand_complex(rng, 7, 8)).requires_grad_(True)
    probe = torch.from_numpy(rand_complex(rng, 4, 4))
    # non-integer positions: bilinear is piecewise linear, smooth between pixel boundaries
    xs = torch.tensor([2.3, 5.6], dtype=torch.float64, requires_grad=True)
    ys = torch.tensor([3.7, 2.2], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda o: forward_from_object(probe, o, xs.detach(), ys.detach()),
                             (obj,), eps=1e-6, atol=1e-6, fast_mode=True)
    torch.autograd.gradcheck(lambda x, y: forward_from_object(probe, obj.detach(), x, y),
                             (xs, ys), eps=1e-6, atol=1e-6)
    torch.autograd.gradcheck(lambda p: place_patches(p, xs.detach(), ys.detach(), (7, 8)),
                             (torch.from_numpy(rand_complex(rng, 2, 4, 4)).requires_grad_(True),),
                             eps=1e-6, atol=1e-6, fast_mode=True)


def test_amplitude_gradient_finite_at_zero_intensity():
    probe = torch.zeros(4, 4, dtype=torch.complex128)
    probe[1, 1] = 1
    patches = torch.zeros(1, 4, 4, dtype=torch.complex128, requires_grad=True)
    forward_amplitude(probe, patches).sum().backward()
    assert torch.isfinite(patches.grad.abs()).all()


def test_poisson_nll_minimised_at_truth():
    meas = torch.sqrt(torch.tensor([[4.0, 9.0], [0.0, 1.0]]))
    base = poisson_nll(meas, meas)
    assert poisson_nll(meas * 1.1, meas) > base and poisson_nll(meas * 0.9, meas) > base
    # Value check against the formula mean(lam - k log lam).
    lam = torch.tensor([1.0, 2.0])
    k = torch.tensor([3.0, 0.0])
    expect = torch.mean(lam - k * torch.log(lam + 1e-6))
    assert torch.allclose(poisson_nll(lam.sqrt(), k.sqrt()), expect)
    with pytest.raises(ValueError, match="measured_amplitude"):
        poisson_nll(meas, meas[0])


def test_bad_inputs_raise():
    obj = torch.zeros(20, 20, dtype=torch.complex64)
    with pytest.raises(ValueError, match="xcoords"):
        extract_patches(obj, torch.tensor([3.0]), torch.tensor([10.0]), 8)  # patch off the left edge
    with pytest.raises(ValueError, match="ycoords"):
        extract_patches(obj, torch.tensor([10.0]), torch.tensor([16.5]), 8)
    with pytest.raises(ValueError, match="N"):
        extract_patches(obj, torch.tensor([10.0]), torch.tensor([10.0]), 7)
    with pytest.raises(ValueError, match="xcoords/ycoords"):
        extract_patches(obj, torch.tensor([10.0, 11.0]), torch.tensor([10.0]), 8)
    with pytest.raises(ValueError, match="probe"):
        exit_waves(torch.zeros(8), torch.zeros(1, 8, 8))
    # edge positions are valid: x = W - N/2 exactly
    p = extract_patches(obj, torch.tensor([16.0]), torch.tensor([4.0]), 8)
    assert p.shape == (1, 8, 8)
    # ... also up to float round-off (as PtychoData allows)
    o = torch.randn(20, 20, dtype=torch.complex128)
    x = torch.tensor([4 - 1e-9, 16 + 1e-9], dtype=torch.float64)
    y = torch.tensor([16 + 1e-9, 4 - 1e-9], dtype=torch.float64)
    np.testing.assert_allclose(extract_patches(o, x, y, 8).numpy(),
                               extract_patches(o, x.round(), y.round(), 8).numpy(), atol=1e-7)


# ---------------------------------------------------------------- pinned against the 4-tap form
def ref_taps(coords: torch.Tensor, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The textbook per-pixel bilinear taps along one axis: i0, i1 (M, n) and w1 (M, n)."""
    start = coords.double() - n / 2
    lo = torch.floor(start + 1e-6)
    i0 = lo.long()[:, None] + torch.arange(n)[None, :]
    return i0, torch.clamp(i0 + 1, max=size - 1), (start - lo)[:, None].expand(-1, n)


def ref_extract(obj: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, n: int) -> torch.Tensor:
    """Four full gathers with per-pixel weight grids (the pre-PatchTaps implementation), float64."""
    h, w = obj.shape
    r0, r1, fr = ref_taps(ys, n, h)
    c0, c1, fc = ref_taps(xs, n, w)
    o = obj.to(torch.complex128)
    out = 0
    for r, wr in ((r0, 1 - fr), (r1, fr)):
        for c, wc in ((c0, 1 - fc), (c1, fc)):
            out = out + wr[:, :, None] * wc[:, None, :] * o[r[:, :, None], c[:, None, :]]
    return out


def ref_place(p: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Four full scatters (the adjoint of :func:`ref_extract`), float64."""
    h, w = shape
    n = p.shape[-1]
    r0, r1, fr = ref_taps(ys, n, h)
    c0, c1, fc = ref_taps(xs, n, w)
    canvas = torch.zeros(h * w, dtype=torch.complex128)
    for r, wr in ((r0, 1 - fr), (r1, fr)):
        for c, wc in ((c0, 1 - fc), (c1, fc)):
            src = (wr[:, :, None] * wc[:, None, :] * p.to(torch.complex128)).reshape(-1)
            canvas.index_add_(0, (r[:, :, None] * w + c[:, None, :]).reshape(-1), src)
    return canvas.reshape(h, w)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_extract_place_stitch_match_four_tap_reference(dtype):
    # Sub-pixel, integer, far-edge and round-off-snapped positions; float32 agrees to round-off.
    rng = np.random.default_rng(11)
    h, w, n = 26, 31, 8
    obj = torch.from_numpy(rand_complex(rng, h, w)).to(dtype)
    xs = torch.tensor([4.0, 27.0, 27.0, 9.37, 15.5, 20.0 - 1e-9, 11.999], dtype=torch.float64)
    ys = torch.tensor([4.0, 22.0, 13.25, 22.0, 7.81, 11.0 + 1e-9, 4.0], dtype=torch.float64)
    tol = 1e-12 if dtype == torch.complex128 else 2e-6
    np.testing.assert_allclose(extract_patches(obj, xs, ys, n).numpy(),
                               ref_extract(obj, xs, ys, n).numpy(), rtol=0, atol=tol * 4)
    p = torch.from_numpy(rand_complex(rng, len(xs), n, n)).to(dtype)
    np.testing.assert_allclose(place_patches(p, xs, ys, (h, w)).numpy(),
                               ref_place(p, xs, ys, (h, w)).numpy(), rtol=0, atol=tol * 20)
    wmap = torch.from_numpy(rng.random((n, n)))
    ref = (ref_place(p * wmap, xs, ys, (h, w))
           / torch.clamp(ref_place(wmap.expand(len(xs), n, n) + 0j, xs, ys, (h, w)).real,
                         min=1e-3 * float(ref_place(wmap.expand(len(xs), n, n) + 0j, xs, ys, (h, w)).real.max())))
    np.testing.assert_allclose(stitch(p, xs, ys, (h, w), weight_map=wmap).numpy(), ref.numpy(),
                               rtol=0, atol=tol * 100)


def test_patch_taps_reused_equal_one_shot_calls():
    from ptycho_nb.physics.forward import gather_patches, merge_patches, patch_taps, scatter_patches

    rng = np.random.default_rng(12)
    obj = torch.from_numpy(rand_complex(rng, 2, 24, 24)).to(torch.complex64)  # batched object
    xs, ys = torch.tensor([6.3, 12.0, 17.9]), torch.tensor([8.5, 12.25, 16.0])
    taps = patch_taps(xs, ys, 8, (24, 24))
    assert taps.m == 3 and taps.index.shape == (3 * 9 * 9,) and taps.weights.shape == (3, 2, 2)
    torch.testing.assert_close(taps.weights.sum((1, 2)), torch.ones(3))
    pat = gather_patches(obj, taps)
    torch.testing.assert_close(pat, extract_patches(obj, xs, ys, 8), rtol=0, atol=0)
    torch.testing.assert_close(scatter_patches(pat, taps), place_patches(pat, xs, ys, (24, 24)), rtol=0, atol=0)
    wmap = torch.rand(8, 8)
    merged, weight = merge_patches(pat[0], taps, weight_map=wmap)
    torch.testing.assert_close(merged, stitch(pat[0], xs, ys, (24, 24), weight_map=wmap), rtol=0, atol=0)
    torch.testing.assert_close(weight, place_patches(wmap.expand(3, 8, 8), xs, ys, (24, 24)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="taps"):
        gather_patches(obj[:, :20], taps)
