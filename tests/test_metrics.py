"""Tests of ptycho_nb.metrics against cases with known answers (small images, CPU-cheap)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from ptycho_nb import metrics as M

H, W = 48, 48


def _object(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """Smooth random complex object: amplitude in [0.5, 1], phase spanning a few radians."""
    rng = np.random.default_rng(seed)
    amp = ndimage.gaussian_filter(rng.random((h, w)), 1.5)
    amp = 0.5 + 0.5 * (amp - amp.min()) / np.ptp(amp)
    ph = ndimage.gaussian_filter(rng.standard_normal((h, w)), 1.5)
    ph = 2.0 * ph / np.abs(ph).max()
    return (amp * np.exp(1j * ph)).astype(np.complex64)


def _fshift(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """a(r - dy, c - dx) by a Fourier phase ramp."""
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * (fy * dy + fx * dx)))


def _raw_phase_ssim(recon: np.ndarray, truth: np.ndarray) -> float:
    return M.ssim(np.angle(recon), np.angle(truth))


def test_identical_is_perfect() -> None:
    t = _object()
    res = M.compare(t, t)
    for ch in ("phase", "amplitude"):
        assert res[f"{ch}_ssim"] == pytest.approx(1.0, abs=1e-9)
        assert res[f"{ch}_mae"] == pytest.approx(0.0, abs=1e-9)
        assert res[f"{ch}_psnr"] > 100
        assert math.isnan(res[f"{ch}_frc_half"])  # never drops below the threshold
    assert res["alignment"]["shift"] == pytest.approx((0.0, 0.0), abs=1e-9)
    assert M.psnr(np.abs(t), np.abs(t)) == math.inf


def test_frc_of_image_with_itself_is_one() -> None:
    img = np.angle(_object(3))
    out = M.frc(img, img)
    assert np.allclose(out["curve"], 1.0)
    assert out["frequencies"][0] == 0 and out["frequencies"][-1] == pytest.approx(0.5)
    assert all(math.isnan(v) for v in out["crossings"].values())


def test_phase_offset_and_scale_removed() -> None:
    t = _object(1)
    recon = 0.3 * t * np.exp(1j * 2.9)
    aligned, removed = M.align(recon, t)
    assert removed["phase_offset"] == pytest.approx(-2.9, abs=1e-6)
    assert removed["amplitude_scale"] == pytest.approx(1 / 0.3, rel=1e-5)
    assert np.allclose(aligned, t, atol=1e-5)
    res = M.compare(recon, t, subpixel_shift=False)
    assert res["phase_ssim"] > 0.999 and res["amplitude_ssim"] > 0.999
    assert res["phase_mae"] < 1e-5 and res["amplitude_mae"] < 1e-5
    assert _raw_phase_ssim(recon, t) < 0.5
    assert M.mae(np.abs(recon), np.abs(t)) > 0.3


def test_phase_wrap_is_not_an_error() -> None:
    t = np.full((24, 24), np.exp(1j * 3.1), dtype=np.complex64)
    t[:, 12:] = np.exp(-1j * 3.1)  # phase jumps across ±π but the field barely changes
    rng = np.random.default_rng(0)
    t = t * (1 + 0.01 * rng.random(t.shape))
    recon = t * np.exp(1j * 0.1)  # pushes part of the phase past π
    res = M.compare(recon, t, subpixel_shift=False)
    assert res["phase_mae"] < 1e-5


def test_linear_phase_ramp_removed() -> None:
    t = _object(2)
    rows, cols = np.mgrid[:H, :W]
    recon = t * np.exp(-1j * (0.21 * rows - 0.17 * cols + 1.0))
    res = M.compare(recon, t, remove_ramp=True, subpixel_shift=False)
    assert res["alignment"]["phase_ramp"] == pytest.approx((0.21, -0.17), abs=1e-4)
    assert res["phase_ssim"] > 0.999
    without = M.compare(recon, t, remove_ramp=False, subpixel_shift=False)
    assert without["phase_ssim"] < 0.5


def test_subpixel_shift_removed() -> None:
    t = _object(4)
    recon = _fshift(t, 1.4, -2.25)
    aligned, removed = M.align(recon, t, subpixel_shift=True, upsample=20)
    assert removed["shift"] == pytest.approx((-1.4, 2.25), abs=0.051)
    res = M.compare(recon, t, subpixel_shift=True)
    assert res["phase_ssim"] > 0.99 and res["amplitude_ssim"] > 0.99
    without = M.compare(recon, t, subpixel_shift=False)
    assert without["phase_ssim"] < 0.8 * res["phase_ssim"]


def test_shift_and_ramp_together() -> None:
    t = _object(5)
    rows, cols = np.mgrid[:H, :W]
    recon = _fshift(t, -0.6, 1.3) * np.exp(1j * (0.15 * rows + 0.1 * cols))
    res = M.compare(recon, t, remove_ramp=True, subpixel_shift=True)
    assert res["alignment"]["shift"] == pytest.approx((0.6, -1.3), abs=0.051)
    assert res["phase_ssim"] > 0.98


def test_noise_lowers_scores_monotonically() -> None:
    t = _object(6)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(t.shape) + 1j * rng.standard_normal(t.shape)
    results = [M.compare(t + s * noise, t, subpixel_shift=False) for s in (0.02, 0.06, 0.2, 0.5)]
    for key in ("phase_ssim", "phase_psnr", "amplitude_ssim", "amplitude_psnr"):
        vals = [r[key] for r in results]
        assert all(a > b for a, b in zip(vals, vals[1:])), (key, vals)
    for key in ("phase_frc_half", "phase_frc_1_7"):
        # NaN = never crossed = resolved up to Nyquist
        vals = [0.5 if math.isnan(r[key]) else r[key] for r in results]
        assert all(a >= b for a, b in zip(vals, vals[1:])), (key, vals)
        assert vals[0] > vals[-1], (key, vals)


def test_illuminated_mask_positions_are_column_row() -> None:
    probe = np.ones((4, 4), dtype=np.complex64)
    mask = M.illuminated_mask((20, 30), xcoords=[5.2], ycoords=[12.0], probe=probe)
    expected = np.zeros((20, 30), dtype=bool)
    expected[10:14, 3:7] = True  # rows y-2..y+1, cols x-2..x+1
    assert np.array_equal(mask, expected)
    # clipping at the edges and a dim probe pixel below the threshold
    probe2 = np.ones((4, 4), dtype=np.complex64)
    probe2[0, 0] = 0.1  # intensity 0.01 < 0.1 of max
    mask2 = M.illuminated_mask((20, 30), [0, 28], [19, 2], probe2)
    exp2 = np.zeros((20, 30), dtype=bool)
    exp2[17:20, 0:2] = True
    exp2[0:4, 26:30] = True
    # first patch: probe2[0, 0] lands at (17, -2), clipped away; second: at (0, 26), too dim
    exp2[0, 26] = False
    assert np.array_equal(mask2, exp2)


def test_compare_with_positions_offset_and_object_attribute() -> None:
    t = _object(7)
    probe = np.ones((8, 8), dtype=np.complex64)
    xs, ys = np.array([12.0, 20.0, 28.0]), np.array([16.0, 16.0, 24.0])
    # garbage outside the illuminated area must not matter
    recon = t.copy()
    mask = M.illuminated_mask(t.shape, xs, ys, probe)
    recon[~mask] = 0
    res = M.compare(SimpleNamespace(object=recon), t, xcoords=xs, ycoords=ys, probe=probe,
                    subpixel_shift=False)
    assert res["phase_ssim"] > 0.999 and res["amplitude_mae"] < 1e-6
    # a reconstruction on a smaller frame placed at (row 8, col 4) of the truth
    crop = t[8:40, 4:36]
    res2 = M.compare(crop, t, offset=(8, 4), subpixel_shift=False)
    assert res2["phase_ssim"] > 0.999
    res3 = M.compare(crop, t, subpixel_shift=False)  # top-left aligned: wrong frame
    assert res3["phase_ssim"] < 0.5


def test_bad_input_raises_value_error() -> None:
    t = _object()
    with pytest.raises(ValueError, match="recon and truth"):
        M.align(t[:-1], t)
    with pytest.raises(ValueError, match="mask"):
        M.align(t, t, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="reconstruction"):
        M.compare(np.ones((2, 3, 4, 4)), t)
    with pytest.raises(ValueError, match="xcoords, ycoords, probe"):
        M.compare(t, t, xcoords=[1.0], ycoords=[2.0])
    with pytest.raises(ValueError, match="xcoords and ycoords"):
        M.illuminated_mask((8, 8), [1, 2], [1], np.ones((2, 2)))
    with pytest.raises(ValueError, match="threshold"):
        M.illuminated_mask((8, 8), [1], [1], np.ones((2, 2)), threshold=1.5)
    with pytest.raises(ValueError, match="image and truth"):
        M.ssim(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="offset"):
        M.compare(t, t, offset=(100, 0))
    with pytest.raises(ValueError, match="a and b"):
        M.frc(np.zeros((8, 8)), np.zeros((8, 9)))


def test_half_bit_threshold_has_its_known_values() -> None:
    # van Heel & Schatz 2005: 1 for a one-sample ring, → 0.2071/1.2071 for large rings
    t = M.half_bit_threshold([0, 1, 100, 10**12])
    assert t[0] == 1.0 and t[1] == pytest.approx(1.0, abs=1e-4)
    assert t[2] == pytest.approx((0.2071 + 0.19102) / (1.2071 + 0.09102))
    assert t[3] == pytest.approx(0.2071 / 1.2071, abs=1e-5)
    assert np.all(np.diff(t[1:]) < 0)
    with pytest.raises(ValueError, match="n_pixels"):
        M.half_bit_threshold([-1])


def test_frc_crossing_takes_a_constant_or_a_threshold_per_ring() -> None:
    f = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    curve = np.array([1.0, 0.9, 0.6, 0.2, 0.1])
    assert M.frc_crossing(f, curve, 0.5) == pytest.approx(0.2 + 0.1 * 0.1 / 0.4)
    # a threshold per ring: the crossing of curve − threshold (here 0.2 − 0.3 < 0 at ring 3)
    thr = np.array([1.0, 0.5, 0.4, 0.3, 0.3])
    assert M.frc_crossing(f, curve, thr) == pytest.approx(0.2 + 0.1 * 0.2 / 0.3)
    assert math.isnan(M.frc_crossing(f, curve, 0.05))  # never below: resolved to Nyquist
    # frc's own crossings are the constant case
    a, b = np.angle(_object(3)), np.angle(_object(4))
    out = M.frc(a, b)
    assert out["crossings"][0.5] == M.frc_crossing(out["frequencies"], out["curve"], 0.5)
    with pytest.raises(ValueError, match="frequencies/curve"):
        M.frc_crossing(f, curve[:3], 0.5)
