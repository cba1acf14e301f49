"""Quality metrics for complex object reconstructions against a ground truth.

Ptychography determines the object only up to a global phase offset, an amplitude scale, (with
position or probe errors) a small shift and, when the probe is refined, a linear phase ramp.
:func:`align` removes these before scoring so that the scores measure structure, not convention.

Conventions (README "Units and conventions"): images are indexed ``[row, col]``; scan positions ``xcoords`` are
columns and ``ycoords`` rows, in object pixels, naming patch centres. Spatial frequencies are in
cycles per pixel (Nyquist = 0.5). Only numpy and scipy are used.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "align",
    "illuminated_mask",
    "lit_mask",
    "LIT_FRACTION",
    "mae",
    "psnr",
    "ssim",
    "frc",
    "frc_crossing",
    "half_bit_threshold",
    "compare",
]


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------


def _as_2d(a: Any, name: str, *, complex_ok: bool = True) -> np.ndarray:
    """Return ``a`` as a 2-D numpy array or raise ValueError naming ``name``."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array, got shape {arr.shape}")
    if not complex_ok and np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected a real array, got dtype {arr.dtype}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    """Return a boolean mask of ``shape`` (all True when ``mask`` is None)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {m.shape}")
    m = m.astype(bool)
    if not m.any():
        raise ValueError(f"{name}: is empty (no True pixel); nothing to score")
    return m


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b}: expected equal shapes, got {a.shape} and {b.shape}")


# --------------------------------------------------------------------------------------------
# sub-pixel peak finding with a local (upsampled) DFT
# --------------------------------------------------------------------------------------------


def _local_dft(data: np.ndarray, rows_at: np.ndarray, row_basis: np.ndarray,
               cols_at: np.ndarray, col_basis: np.ndarray, sign: float) -> np.ndarray:
    """Evaluate ``sum_mn data[m, n] exp(sign 2πi (rows_at·row_basis[m] + cols_at·col_basis[n]))``.

    Two small matrix products replace a zero-padded FFT: only the few points around a peak are
    needed, so this costs O(K·N²) instead of O(u²N² log N) for upsampling factor u
    (Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156 (2008)).
    """
    er = np.exp(sign * 2j * np.pi * np.outer(rows_at, row_basis))
    ec = np.exp(sign * 2j * np.pi * np.outer(cols_at, col_basis))
    return er @ data @ ec.T


def _refine_peak(data: np.ndarray, row_basis: np.ndarray, col_basis: np.ndarray, sign: float,
                 start: tuple[float, float], step: tuple[float, float],
                 upsample: int) -> tuple[float, float]:
    """Refine a coarse peak ``start`` of ``|local_dft|`` to ``step/upsample`` precision.

    The search covers ±0.75 ``step`` around ``start`` (the coarse peak is within ±0.5 step).
    """
    k = int(math.ceil(1.5 * upsample))
    offsets = (np.arange(k) - k // 2) / upsample
    rows_at = start[0] + offsets * step[0]
    cols_at = start[1] + offsets * step[1]
    vals = np.abs(_local_dft(data, rows_at, row_basis, cols_at, col_basis, sign))
    i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
    return float(rows_at[i]), float(cols_at[j])


def _register_shift(pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    upsample: int) -> tuple[float, float]:
    """Shift (rows, cols) in pixels that, applied to each ``moving``, best matches ``fixed``.

    ``pairs`` holds ``(moving, fixed, mask)`` feature images of one (H, W) frame; the magnitudes
    of their cross-correlations are summed, so a constant phase factor per pair does not matter.
    The masked mean is removed so the mask outline itself does not pull the peak to zero shift.
    """
    def prep(a: np.ndarray, m: np.ndarray) -> np.ndarray:
        a = a.astype(np.complex128)
        return np.where(m, a - a[m].mean(), 0.0) if m.any() else np.zeros_like(a)

    products = [np.fft.fft2(prep(f, m)) * np.conj(np.fft.fft2(prep(mv, m))) for mv, f, m in pairs]
    cc = sum(np.abs(np.fft.ifft2(p)) for p in products)
    h, w = cc.shape
    r, c = np.unravel_index(int(np.argmax(cc)), cc.shape)
    # wrap to signed shifts
    r0 = r - h if r > h // 2 else r
    c0 = c - w if c > w // 2 else c
    if upsample <= 1:
        return float(r0), float(c0)
    # CC(y, x) = (1/HW) Σ_k P(k) exp(+2πi (fy y + fx x)); the 1/HW factor does not move the peak
    k = int(math.ceil(1.5 * upsample))
    offsets = (np.arange(k) - k // 2) / upsample
    rows_at, cols_at = r0 + offsets, c0 + offsets
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    vals = sum(np.abs(_local_dft(p, rows_at, fy, cols_at, fx, +1.0)) for p in products)
    i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
    return float(rows_at[i]), float(cols_at[j])


def _neighbour_products(a: np.ndarray, m: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``a[x+1]·conj(a[x])`` along rows and columns, zero-padded back to (H, W), with masks.

    A linear phase ramp only multiplies these by a constant phase factor, so registering them
    finds the shift even when the reconstruction carries an unknown ramp.
    """
    out = []
    for axis in (0, 1):
        lead = [slice(None), slice(None)]
        lag = [slice(None), slice(None)]
        lead[axis], lag[axis] = slice(1, None), slice(None, -1)
        d = np.zeros(a.shape, dtype=np.complex128)
        dm = np.zeros(a.shape, dtype=bool)
        d[tuple(lag)] = a[tuple(lead)] * np.conj(a[tuple(lag)])
        dm[tuple(lag)] = m[tuple(lead)] & m[tuple(lag)]
        out.append((d, dm))
    return out


def _fourier_shift(a: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Return ``a(r - shift[0], c - shift[1])`` by a Fourier phase ramp (periodic boundary)."""
    h, w = a.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    ramp = np.exp(-2j * np.pi * (fy * shift[0] + fx * shift[1]))
    out = np.fft.ifft2(np.fft.fft2(a) * ramp)
    # a real image stays real (the imaginary part is only round-off and the Nyquist term)
    return out if np.iscomplexobj(a) else out.real


def _fit_phase_ramp(z: np.ndarray, mask: np.ndarray, upsample: int) -> tuple[float, float]:
    """Gradient (rad/px along rows, cols) of the phase of ``z`` weighted by ``|z|`` in ``mask``.

    A linear phase is a peak in the Fourier transform of ``z``, so the coarse estimate is the FFT
    peak refined by the local DFT; this is immune to 2π wraps. A weighted least-squares plane fit
    on the (now small, unwrapped) residual phase then removes the leftover bias.
    """
    h, w = z.shape
    zm = np.where(mask, z, 0.0)
    spec = np.abs(np.fft.fft2(zm))
    r, c = np.unravel_index(int(np.argmax(spec)), spec.shape)
    f0 = (float(np.fft.fftfreq(h)[r]), float(np.fft.fftfreq(w)[c]))
    fr, fc = _refine_peak(zm, np.arange(h, dtype=float), np.arange(w, dtype=float), -1.0,
                          f0, (1.0 / h, 1.0 / w), max(upsample, 1))
    gy, gx = 2 * np.pi * fr, 2 * np.pi * fc
    rows, cols = np.nonzero(mask)
    resid = np.angle(z[rows, cols] * np.exp(-1j * (gy * rows + gx * cols)))
    wts = np.abs(z[rows, cols])
    if wts.sum() > 0 and rows.size >= 3:
        design = np.stack([np.ones_like(resid), rows, cols], axis=1).astype(float)
        sw = np.sqrt(wts)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], resid * sw, rcond=None)
        gy += float(coef[1])
        gx += float(coef[2])
    return float(gy), float(gx)


# --------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------


def align(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None, *,
          remove_ramp: bool = False, subpixel_shift: bool = False,
          upsample: int = 20) -> tuple[np.ndarray, dict[str, Any]]:
    """Remove the ambiguities of ptychography from ``recon`` relative to ``truth``.

    Steps: (1) optional shift by phase cross-correlation with local-DFT refinement to
    1/``upsample`` pixel, applied as a Fourier shift (periodic boundary; with ``remove_ramp`` the
    registration uses neighbour products ``a[x+1]·conj(a[x])``, which a ramp cannot mislead);
    (2) optional linear phase ramp, fitted to the phase of ``truth·conj(recon)`` weighted by its
    amplitude in the mask, removed before the shift is applied (a Fourier-shifted ramp rings);
    (3) global phase offset ``angle(Σ_mask truth·conj(recon))``; (4) amplitude scale
    ``Σ|truth||recon| / Σ|recon|²`` (least squares on amplitudes in the mask).

    Parameters
    ----------
    recon, truth : ndarray, complex, shape (H, W)
        Reconstruction and ground truth on the same pixel grid.
    mask : ndarray of bool, shape (H, W), optional
        Pixels used for the fits (default: all).
    remove_ramp, subpixel_shift : bool
        Enable steps (2) and (1).
    upsample : int
        Sub-pixel precision factor of the shift and ramp search (>= 1).

    Returns
    -------
    aligned : ndarray, complex128, shape (H, W)
        ``scale · shift(recon) · exp(i(offset + ramp_row·row + ramp_col·col))``.
    removed : dict
        ``shift`` (rows, cols) px applied to recon, ``phase_ramp`` (rad/px along rows, cols;
        row/col are array indices), ``phase_offset`` (rad), ``amplitude_scale``.
    """
    r = _as_2d(recon, "recon")
    t = _as_2d(truth, "truth")
    _same_shape(r, t, "recon", "truth")
    m = _check_mask(mask, t.shape)
    if not isinstance(upsample, (int, np.integer)) or upsample < 1:
        raise ValueError(f"upsample: expected an integer >= 1, got {upsample!r}")
    r = r.astype(np.complex128)
    t = t.astype(np.complex128)

    rows = np.arange(r.shape[0])[:, None]
    cols = np.arange(r.shape[1])[None, :]
    shift = (0.0, 0.0)
    if subpixel_shift:
        if remove_ramp:
            pairs = [(dr, dt, dm & dmt) for (dr, dm), (dt, dmt)
                     in zip(_neighbour_products(r, m), _neighbour_products(t, m))]
        else:
            pairs = [(r, t, m)]
        shift = _register_shift(pairs, int(upsample))

    ramp = (0.0, 0.0)
    if remove_ramp:
        shifted = _fourier_shift(r, shift) if shift != (0.0, 0.0) else r
        ramp = _fit_phase_ramp(t * np.conj(shifted), m, int(upsample))
        # a ramp is not periodic: Fourier-shifting a ramped image would ring across the frame.
        # Shifting commutes with a ramp up to a constant phase, so remove the ramp first (in the
        # unshifted frame) and shift afterwards.
        r = r * np.exp(1j * (ramp[0] * rows + ramp[1] * cols))
    if shift != (0.0, 0.0):
        r = _fourier_shift(r, shift)
    if remove_ramp and shift != (0.0, 0.0):
        # the first fit saw the ringing of a shifted ramp; refit the (small) remainder
        extra = _fit_phase_ramp(t * np.conj(r), m, int(upsample))
        r = r * np.exp(1j * (extra[0] * rows + extra[1] * cols))
        ramp = (ramp[0] + extra[0], ramp[1] + extra[1])

    cross = np.sum(t[m] * np.conj(r[m]))
    offset = float(np.angle(cross)) if cross != 0 else 0.0
    r = r * np.exp(1j * offset)

    denom = float(np.sum(np.abs(r[m]) ** 2))
    # a reconstruction that is zero in the mask has no scale to fit; leave it as is
    scale = float(np.sum(np.abs(t[m]) * np.abs(r[m])) / denom) if denom > 0 else 1.0
    r = r * scale
    removed = {"shift": (float(shift[0]), float(shift[1])),
               "phase_ramp": (float(ramp[0]), float(ramp[1])),
               "phase_offset": offset,
               "amplitude_scale": scale}
    return r, removed


# --------------------------------------------------------------------------------------------
# mask of the illuminated region
# --------------------------------------------------------------------------------------------


def illuminated_mask(shape: Sequence[int], xcoords: Any, ycoords: Any, probe: Any,
                     threshold: float = 0.1) -> np.ndarray:
    """Pixels where the summed probe intensity over all scan positions exceeds a fraction of its max.

    Parameters
    ----------
    shape : (H, W)
        Object frame size in pixels.
    xcoords, ycoords : array_like, shape (M,)
        Patch centres in object pixels: x = column, y = row. Rounded to the nearest pixel.
    probe : array_like, complex, shape (Ny, Nx), or (K, Ny, Nx) incoherent modes (summed in intensity)
        The patch of centre (x, y) covers ``obj[y - Ny//2 : y - Ny//2 + Ny, x - Nx//2 : ...]``
        (for even N this is ``obj[y-N//2 : y+N//2, x-N//2 : x+N//2]``); parts outside the frame
        are clipped.
    threshold : float
        Fraction in [0, 1) of the maximum summed intensity.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    if len(tuple(shape)) != 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"shape: expected (H, W) with positive sizes, got {tuple(shape)}")
    h, w = (int(s) for s in shape)
    xs = np.asarray(xcoords, dtype=float).ravel()
    ys = np.asarray(ycoords, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"xcoords and ycoords: expected equal lengths, got {xs.size} and {ys.size}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("xcoords/ycoords: expected finite values")
    p = np.asarray(probe)
    if p.ndim == 3:  # incoherent modes light the object together: their intensities add
        p = np.sqrt(np.sum(np.abs(p.astype(np.complex128)) ** 2, axis=0))
    p = _as_2d(p, "probe")
    if not (0.0 <= float(threshold) < 1.0):
        raise ValueError(f"threshold: expected a fraction in [0, 1), got {threshold!r}")
    inten = np.abs(p.astype(np.complex128)) ** 2
    ny, nx = inten.shape
    acc = np.zeros((h, w), dtype=np.float64)
    tops = np.rint(ys).astype(np.int64) - ny // 2
    lefts = np.rint(xs).astype(np.int64) - nx // 2
    for top, left in zip(tops, lefts):
        r0, r1 = max(top, 0), min(top + ny, h)
        c0, c1 = max(left, 0), min(left + nx, w)
        if r0 >= r1 or c0 >= c1:
            continue  # patch wholly outside the frame
        acc[r0:r1, c0:c1] += inten[r0 - top:r1 - top, c0 - left:c1 - left]
    return lit_mask(acc, threshold)


#: The fraction of its brightest pixel's summed illumination a pixel needs to count as lit (what
#: a reconstruction returns by default, :func:`lit_mask`, and what its figures show). 5 %: every
#: pixel the scoring counts (:func:`compare`'s ``probe_threshold``, 10 %) lies inside with a rim
#: to spare, so scores are those of the whole padded frame (measured on siemens, dead-leaves and
#: lines scans: identical to three decimals for any fraction up to 5 %), while the padding
#: corners and the faint tails of a defocused or zone-plate probe, where the object is not
#: determined, are left out.
LIT_FRACTION = 0.05


def lit_mask(weight: Any, fraction: float = LIT_FRACTION) -> np.ndarray:
    """The pixels whose summed illumination ``weight`` exceeds ``fraction`` of its maximum.

    Parameters
    ----------
    weight : (H, W) array_like, float
        Summed illumination (any units: e.g. a reconstruction's stitching weights, Σ over patterns
        of |P|²/max|P|²).
    fraction : float
        In [0, 1); 0 keeps every pixel lit at all.

    Returns
    -------
    (H, W) bool ndarray
        All False when nothing is lit.
    """
    w = _as_2d(weight, "weight", complex_ok=False)
    if not (0.0 <= float(fraction) < 1.0):
        raise ValueError(f"fraction: expected a fraction in [0, 1), got {fraction!r}")
    peak = float(np.max(w))
    if not peak > 0:
        return np.zeros(w.shape, dtype=bool)
    return w > fraction * peak


# --------------------------------------------------------------------------------------------
# scalar metrics
# --------------------------------------------------------------------------------------------


def _pair(image: Any, truth: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = _as_2d(image, "image", complex_ok=False).astype(np.float64)
    b = _as_2d(truth, "truth", complex_ok=False).astype(np.float64)
    _same_shape(a, b, "image", "truth")
    return a, b, _check_mask(mask, b.shape)


def _data_range(truth: np.ndarray, mask: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        if not (float(data_range) > 0):
            raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
        return float(data_range)
    vals = truth[mask]
    return float(vals.max() - vals.min())


def mae(image: Any, truth: Any, mask: Any = None) -> float:
    """Mean absolute error over ``mask`` (same units as the images). Real (H, W) arrays."""
    a, b, m = _pair(image, truth, mask)
    return float(np.mean(np.abs(a[m] - b[m])))


def psnr(image: Any, truth: Any, mask: Any = None, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB over ``mask``.

    ``data_range`` defaults to ``max - min`` of ``truth`` in the mask. Returns ``inf`` for
    identical images and NaN when the truth is constant (no range to compare against).
    """
    a, b, m = _pair(image, truth, mask)
    rng = _data_range(b, m, data_range)
    mse = float(np.mean((a[m] - b[m]) ** 2))
    if mse == 0.0:
        return math.inf
    if rng == 0.0:
        return math.nan
    return float(10.0 * np.log10(rng * rng / mse))


def ssim(image: Any, truth: Any, mask: Any = None, *, sigma: float = 1.5,
         data_range: float | None = None, k1: float = 0.01, k2: float = 0.03) -> float:
    """Structural similarity (Wang et al. 2004) with a Gaussian window, averaged inside ``mask``.

    Local means and (population) variances use a Gaussian of ``sigma`` px truncated at radius
    ``round(3.5 sigma)`` (5 px for σ = 1.5, i.e. the classic 11×11 window). The map is averaged over
    the mask eroded by that radius (frame border included), so every window lies inside the mask;
    if the erosion leaves nothing, over the mask itself. ``data_range`` defaults to the truth's
    ``max - min`` in the mask; NaN when that is zero.
    """
    a, b, m = _pair(image, truth, mask)
    if not (float(sigma) > 0):
        raise ValueError(f"sigma: expected a positive number, got {sigma!r}")
    rng = _data_range(b, m, data_range)
    if rng == 0.0:
        return math.nan
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sigma, truncate=truncate, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1 = (k1 * rng) ** 2
    c2 = (k2 * rng) ** 2
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    window = np.ones((2 * radius + 1,) * 2, dtype=bool)
    inner = ndimage.binary_erosion(m, structure=window, border_value=0)
    region = inner if inner.any() else m
    return float(np.mean(smap[region]))


# --------------------------------------------------------------------------------------------
# Fourier ring correlation
# --------------------------------------------------------------------------------------------


def frc(a: Any, b: Any, mask: Any = None, *,
        thresholds: Sequence[float] = (1.0 / 7.0, 0.5)) -> dict[str, Any]:
    """Fourier ring correlation of two images over the bounding box of ``mask``.

    Both images are cropped to the mask's bounding box, their mean inside the mask is removed
    (so the DC term does not leak into low rings), pixels outside the mask are set to zero and a
    separable Hann window is applied (so the box edges do not add spurious high frequencies).
    Rings are ``1/min(h, w)`` cycles/px wide, up to Nyquist (0.5).

    Returns
    -------
    dict
        ``frequencies`` (ring centres, cycles/px, shape (K,)), ``curve`` (FRC per ring, NaN where a
        ring has no power), ``n_pixels`` (Fourier samples per ring) and ``crossings`` mapping each
        threshold to the first frequency (linear interpolation, ring 0 skipped) where the curve falls
        below it, NaN if it never does.
    """
    x = _as_2d(a, "a")
    y = _as_2d(b, "b")
    _same_shape(x, y, "a", "b")
    m = _check_mask(mask, x.shape)
    rows, cols = np.nonzero(m)
    sl = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    x, y, mm = x[sl].astype(np.complex128), y[sl].astype(np.complex128), m[sl]
    h, w = x.shape
    if min(h, w) < 4:
        raise ValueError(f"mask: bounding box {h}x{w} is too small for an FRC (need >= 4x4)")
    win = np.outer(np.hanning(h), np.hanning(w))
    fx_ = np.fft.fft2(win * np.where(mm, x - x[mm].mean(), 0.0))
    fy_ = np.fft.fft2(win * np.where(mm, y - y[mm].mean(), 0.0))
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    width = 1.0 / min(h, w)
    nbins = int(np.floor(0.5 / width)) + 1
    idx = np.rint(radius / width).astype(np.int64)
    keep = idx < nbins
    idx, fxk, fyk = idx[keep], fx_[keep], fy_[keep]
    num = np.bincount(idx, weights=np.real(fxk * np.conj(fyk)), minlength=nbins)
    pa = np.bincount(idx, weights=np.abs(fxk) ** 2, minlength=nbins)
    pb = np.bincount(idx, weights=np.abs(fyk) ** 2, minlength=nbins)
    count = np.bincount(idx, minlength=nbins)
    den = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    freqs = np.arange(nbins) * width
    crossings: dict[float, float] = {}
    for thr in thresholds:
        thr = float(thr)
        crossings[thr] = frc_crossing(freqs, curve, thr)
    return {"frequencies": freqs, "curve": curve, "n_pixels": count, "crossings": crossings}


def half_bit_threshold(n_pixels: Any) -> np.ndarray:
    """The ½-bit information threshold of an FRC between two half data sets, per ring.

    ``T(n) = (0.2071 + 1.9102/√n) / (1.2071 + 0.9102/√n)`` for a ring of ``n`` Fourier samples
    (van Heel & Schatz, J. Struct. Biol. 151, 250 (2005)): the correlation two independent
    halves reach when each ring holds half a bit of information. It falls from 1 (n → 0)
    towards 0.1716 (n → ∞), so small rings near the centre need a higher correlation.

    Parameters
    ----------
    n_pixels : array_like of int, shape (K,)
        Fourier samples per ring (``frc(...)["n_pixels"]``).

    Returns
    -------
    ndarray, float64, shape (K,); 1 where a ring is empty.
    """
    n = np.asarray(n_pixels, dtype=np.float64)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise ValueError("n_pixels: expected finite, non-negative ring sizes")
    inv = 1.0 / np.sqrt(np.where(n > 0, n, 1.0))  # empty rings get 1 below, whatever this says
    return np.where(n > 0, (0.2071 + 1.9102 * inv) / (1.2071 + 0.9102 * inv), 1.0)


def frc_crossing(frequencies: Any, curve: Any, threshold: Any) -> float:
    """First frequency (ring 0 skipped) where an FRC curve drops below a threshold.

    Parameters
    ----------
    frequencies, curve : array_like, shape (K,)
        Ring centres (cycles/px) and the FRC per ring (NaN rings are skipped), as :func:`frc`
        returns them.
    threshold : float or array_like, shape (K,)
        A constant (1/7, 0.5) or one value per ring (:func:`half_bit_threshold`).

    Returns
    -------
    float
        Cycles/px, linearly interpolated between the last ring above and the first below
        (the gap between curve and threshold is what is interpolated); NaN if the curve never
        drops below (resolved to Nyquist).
    """
    freqs = np.asarray(frequencies, dtype=np.float64)
    c = np.asarray(curve, dtype=np.float64)
    if freqs.ndim != 1 or c.shape != freqs.shape:
        raise ValueError(f"frequencies/curve: expected two 1-D arrays of one length, got shapes "
                         f"{freqs.shape} and {c.shape}")
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), freqs.shape)
    gap = c - thr  # > 0 above the threshold; a constant threshold leaves the old interpolation
    prev_f, prev_g = None, None
    for f, g in zip(freqs[1:], gap[1:]):
        if np.isnan(g):
            continue
        if g < 0:
            if prev_g is None:
                return float(f)
            return float(prev_f + prev_g / (prev_g - g) * (f - prev_f))
        prev_f, prev_g = f, g
    return math.nan


# --------------------------------------------------------------------------------------------
# one-call comparison
# --------------------------------------------------------------------------------------------


def _object_array(reconstruction: Any) -> np.ndarray:
    """Complex 2-D array from an ndarray/tensor or an object with an ``.object`` attribute."""
    obj = reconstruction
    if not isinstance(obj, np.ndarray) and hasattr(obj, "object"):
        obj = obj.object
    if hasattr(obj, "detach"):  # a torch tensor, without importing torch here
        obj = obj.detach().cpu().numpy()
    arr = np.asarray(obj)
    # (1, H, W) or (1, 1, H, W) single-slice objects are common in ptychography products
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return _as_2d(arr, "reconstruction")


def compare(reconstruction: Any, truth: Any, *, mask: Any = None, xcoords: Any = None,
            ycoords: Any = None, probe: Any = None, offset: tuple[int, int] = (0, 0),
            remove_ramp: bool = False, subpixel_shift: bool = True,
            probe_threshold: float = 0.1) -> dict[str, Any]:
    """Align a reconstruction to the ground truth and score phase and amplitude.

    Parameters
    ----------
    reconstruction : complex ndarray (H, W) or object with a complex ``.object`` attribute
    truth : complex ndarray (Ht, Wt)
    mask : bool ndarray (Ht, Wt), optional
        Pixels to score, in the truth's frame.
    xcoords, ycoords, probe : optional
        Scan positions (columns, rows; patch centres, truth frame) and probe; when given, only
        pixels illuminated above ``probe_threshold`` of the max are scored (ANDed with ``mask``).
    offset : (row, col)
        Position of the reconstruction's pixel (0, 0) in the truth's frame (integers). Only the
        overlap of the two frames is compared.
    remove_ramp, subpixel_shift : bool
        Passed to :func:`align`.

    Returns
    -------
    dict
        ``phase_ssim``, ``phase_psnr`` (dB), ``phase_mae`` (rad), ``amplitude_ssim``,
        ``amplitude_psnr`` (dB), ``amplitude_mae``, ``phase_frc_1_7``, ``phase_frc_half``,
        ``amplitude_frc_1_7``, ``amplitude_frc_half`` (cycles/px where the FRC drops below 1/7 or
        1/2; NaN if it never does), and ``alignment`` (see :func:`align`).
    """
    rec = _object_array(reconstruction)
    tru = _as_2d(truth, "truth")
    if len(tuple(offset)) != 2 or any(int(o) != o for o in offset):
        raise ValueError(f"offset: expected two integers (row, col), got {offset!r}")
    r0, c0 = (int(o) for o in offset)
    # overlap in the truth's frame
    tr0, tr1 = max(r0, 0), min(r0 + rec.shape[0], tru.shape[0])
    tc0, tc1 = max(c0, 0), min(c0 + rec.shape[1], tru.shape[1])
    if tr0 >= tr1 or tc0 >= tc1:
        raise ValueError(f"offset: reconstruction {rec.shape} at {offset} does not overlap "
                         f"truth {tru.shape}")
    full_mask = np.ones(tru.shape, dtype=bool) if mask is None else _check_mask(mask, tru.shape)
    given = [v is not None for v in (xcoords, ycoords, probe)]
    if any(given) and not all(given):
        raise ValueError("xcoords, ycoords, probe: give all three to build the illuminated mask, "
                         "or none")
    if all(given):
        full_mask &= illuminated_mask(tru.shape, xcoords, ycoords, probe, probe_threshold)
    t = tru[tr0:tr1, tc0:tc1].astype(np.complex128)
    r = rec[tr0 - r0:tr1 - r0, tc0 - c0:tc1 - c0].astype(np.complex128)
    m = full_mask[tr0:tr1, tc0:tc1]
    if not m.any():
        raise ValueError("mask: no pixel to score inside the overlap of reconstruction and truth")

    aligned, removed = align(r, t, m, remove_ramp=remove_ramp, subpixel_shift=subpixel_shift)
    phase_t = np.angle(t)
    # recon phase expressed as truth phase + wrapped difference, so a 2π wrap is not an error
    phase_r = phase_t + np.angle(aligned * np.conj(t))
    amp_t, amp_r = np.abs(t), np.abs(aligned)

    out: dict[str, Any] = {}
    for name, img, ref in (("phase", phase_r, phase_t), ("amplitude", amp_r, amp_t)):
        out[f"{name}_ssim"] = ssim(img, ref, m)
        out[f"{name}_psnr"] = psnr(img, ref, m)
        out[f"{name}_mae"] = mae(img, ref, m)
        f = frc(img, ref, m, thresholds=(1.0 / 7.0, 0.5))
        out[f"{name}_frc_1_7"] = f["crossings"][1.0 / 7.0]
        out[f"{name}_frc_half"] = f["crossings"][0.5]
    out["alignment"] = removed
    return out
