"""Synthetic complex objects (numpy): complex64 (H, W) transmission functions.

Every kind builds two normalised maps ``t`` (amplitude) and ``t'`` (phase) in [0, 1]; the object is
``(a_min + (a_max − a_min)·t) · exp(i·(p_min + (p_max − p_min)·t'))``. The two maps differ (other
image, other random draw, or a reversed/rotated pattern) so the channels are not trivially equal.
Bundled images live in ``ptycho_nb/assets/images.npz`` (see its README for sources and licences).
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any, Callable

import numpy as np
from scipy import ndimage

__all__ = ["make_object", "OBJECT_KINDS", "bundled_image", "BUNDLED_IMAGES"]

BUNDLED_IMAGES = ("hopper", "terrain")


@functools.lru_cache(maxsize=None)
def bundled_image(name: str) -> np.ndarray:
    """A bundled 256×256 grayscale image as float64 in [0, 1] (read-only array)."""
    if name not in BUNDLED_IMAGES:
        raise ValueError(f"name: unknown bundled image {name!r}; expected one of {BUNDLED_IMAGES}")
    ref = importlib.resources.files("ptycho_nb") / "assets" / "images.npz"
    with ref.open("rb") as fh, np.load(fh) as npz:
        img = npz[name].astype(np.float64) / 255.0
    img.setflags(write=False)
    return img


def _unit(a: np.ndarray) -> np.ndarray:
    """Min–max normalise to [0, 1] (a constant map becomes 0)."""
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a, dtype=np.float64) if hi <= lo else (a - lo) / (hi - lo)


def _resample(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then spline-zoom to ``shape`` exactly."""
    h, w = img.shape
    th, tw = shape
    if h * tw > w * th:  # too tall
        ch = max(1, round(w * th / tw))
        img = img[(h - ch) // 2:(h - ch) // 2 + ch]
    else:
        cw = max(1, round(h * tw / th))
        img = img[:, (w - cw) // 2:(w - cw) // 2 + cw]
    z = ndimage.zoom(img, (th / img.shape[0], tw / img.shape[1]), order=1, grid_mode=True, mode="nearest")
    # zoom's output size is rounded; crop/edge-pad by at most a pixel to hit ``shape`` exactly.
    z = z[:th, :tw]
    out = np.pad(z, ((0, th - z.shape[0]), (0, tw - z.shape[1])), mode="edge")
    return np.clip(out, 0.0, 1.0)


def _image_maps(shape: tuple[int, int], rng: np.random.Generator, amplitude: str = "hopper",
                phase: str = "terrain") -> tuple[np.ndarray, np.ndarray]:
    return _unit(_resample(bundled_image(amplitude), shape)), _unit(_resample(bundled_image(phase), shape))


def _grf(shape: tuple[int, int], rng: np.random.Generator, correlation_length: float) -> np.ndarray:
    """Gaussian random field: white noise low-passed by a Gaussian of the correlation length (px)."""
    noise = rng.standard_normal(shape)
    return _unit(ndimage.gaussian_filter(noise, correlation_length, mode="wrap"))


def _grf_maps(shape: tuple[int, int], rng: np.random.Generator,
              correlation_length: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    if not (correlation_length > 0):
        raise ValueError(f"correlation_length: expected > 0 pixels, got {correlation_length!r}")
    return _grf(shape, rng, correlation_length), _grf(shape, rng, correlation_length)


def _lines(shape: tuple[int, int], rng: np.random.Generator, n_lines: int,
           width_range: tuple[float, float]) -> np.ndarray:
    """Random segments of random orientation, length and width, anti-aliased (1 px soft edge)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    out = np.zeros(shape)
    diag = np.hypot(h, w)
    for _ in range(n_lines):  # few segments; each is vectorised over the pixels
        p0 = rng.uniform((0, 0), (h, w))
        theta = rng.uniform(0, np.pi)
        length = rng.uniform(0.1, 0.6) * diag
        d = np.array([np.sin(theta), np.cos(theta)])
        p1 = p0 + length * d
        half = rng.uniform(*width_range) / 2
        # distance of every pixel to the segment p0–p1
        t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / length, 0, 1)
        dist = np.hypot(yy - (p0[0] + t * (p1[0] - p0[0])), xx - (p0[1] + t * (p1[1] - p0[1])))
        seg = np.clip(half + 0.5 - dist, 0, 1)
        out = np.maximum(out, seg * rng.uniform(0.4, 1.0))
    return out


def _lines_maps(shape: tuple[int, int], rng: np.random.Generator, n_lines: int | None = None,
                width_range: tuple[float, float] = (1.0, 6.0)) -> tuple[np.ndarray, np.ndarray]:
    if n_lines is None:
        n_lines = max(8, int(np.hypot(*shape) / 8))
    if n_lines < 1:
        raise ValueError(f"n_lines: expected >= 1, got {n_lines!r}")
    if not (0 < width_range[0] <= width_range[1]):
        raise ValueError(f"width_range: expected 0 < min <= max pixels, got {width_range!r}")
    # Opaque-ish lines: strong features lower the amplitude; phase comes from another draw.
    amp = 1.0 - _lines(shape, rng, n_lines, width_range)
    ph = _lines(shape, rng, n_lines, width_range)
    return _unit(amp), _unit(ph)


def _siemens(shape: tuple[int, int], n_spokes: int, rotation: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r = np.hypot(yy - cy, xx - cx)
    ang = np.arctan2(yy - cy, xx - cx) + rotation
    # Supersample-free anti-aliasing: soften the spoke edge by ~1 px in arc length.
    s = np.sin(n_spokes * ang) * np.maximum(r, 1.0) / n_spokes  # ≈ signed arc distance (px)
    star = np.clip(s + 0.5, 0, 1)
    rmax = 0.45 * min(h, w)
    return star * np.clip(rmax - r + 0.5, 0, 1)


def _siemens_maps(shape: tuple[int, int], rng: np.random.Generator,
                  n_spokes: int = 36) -> tuple[np.ndarray, np.ndarray]:
    if n_spokes < 2:
        raise ValueError(f"n_spokes: expected >= 2, got {n_spokes!r}")
    ph = _siemens(shape, n_spokes, 0.0)
    # Physical pairing: the thicker material both absorbs (amplitude down) and shifts phase,
    # but with half as many, rotated spokes in amplitude so the channels are not just inverses.
    amp = 1.0 - 0.5 * _siemens(shape, max(2, n_spokes // 2), np.pi / (2 * n_spokes)) - 0.5 * ph
    return _unit(amp), _unit(ph)


def _mixed_maps(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ia, ip = _image_maps(shape, rng)
    la, lp = _lines_maps(shape, rng)
    ga, gp = _grf_maps(shape, rng, correlation_length=max(2.0, min(shape) / 40))
    return _unit(0.5 * ia + 0.3 * la + 0.2 * ga), _unit(0.5 * ip + 0.3 * lp + 0.2 * gp)


def _named_image(amplitude: str, phase: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return lambda shape, rng: _image_maps(shape, rng, amplitude, phase)


OBJECT_KINDS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "image": _image_maps,  # kw: amplitude='hopper', phase='terrain'
    "hopper": _named_image("hopper", "terrain"),
    "terrain": _named_image("terrain", "hopper"),
    "lines": _lines_maps,  # kw: n_lines, width_range
    "grf": _grf_maps,  # kw: correlation_length
    "siemens": _siemens_maps,  # kw: n_spokes
    "mixed": _mixed_maps,
}


def make_object(kind: str = "image", shape: tuple[int, int] = (256, 256), *,
                amplitude_range: tuple[float, float] = (0.5, 1.0),
                phase_range: tuple[float, float] = (-1.2, 1.2),
                seed: int | None = 0, **kw: Any) -> np.ndarray:
    """Synthetic complex object.

    Parameters
    ----------
    kind : str
        'image' (amplitude 'hopper', phase 'terrain'; ``amplitude=``/``phase=`` pick bundled
        images), 'hopper', 'terrain', 'lines', 'grf', 'siemens', 'mixed'.
    shape : (H, W)
        Object size in pixels.
    amplitude_range : (a_min, a_max)
        Transmission amplitude range, ``0 <= a_min <= a_max``.
    phase_range : (p_min, p_max)
        Phase range in radians, ``p_min <= p_max``.
    seed : int or None
        Seed of the numpy Generator for random kinds.
    **kw
        Kind-specific options (see ``OBJECT_KINDS``).

    Returns
    -------
    ndarray, (H, W) complex64
    """
    key = str(kind).lower()
    if key not in OBJECT_KINDS:
        raise ValueError(f"kind: unknown object kind {kind!r}; expected one of {sorted(OBJECT_KINDS)}")
    try:
        shape = (int(shape[0]), int(shape[1]))
        assert len(tuple(shape)) == 2
    except Exception:
        raise ValueError(f"shape: expected (H, W), got {shape!r}") from None
    if min(shape) < 4:
        raise ValueError(f"shape: expected both sides >= 4 pixels, got {shape!r}")
    a_min, a_max = (float(v) for v in amplitude_range)
    if not (0 <= a_min <= a_max) or not np.isfinite(a_max):
        raise ValueError(f"amplitude_range: expected finite 0 <= a_min <= a_max, got {amplitude_range!r}")
    p_min, p_max = (float(v) for v in phase_range)
    if not (p_min <= p_max) or not (np.isfinite(p_min) and np.isfinite(p_max)):
        raise ValueError(f"phase_range: expected finite p_min <= p_max (radians), got {phase_range!r}")
    rng = np.random.default_rng(seed)
    try:
        t_amp, t_ph = OBJECT_KINDS[key](shape, rng, **kw)
    except TypeError as exc:
        raise ValueError(f"make_object({key!r}): {exc}") from None
    amp = a_min + (a_max - a_min) * t_amp
    ph = p_min + (p_max - p_min) * t_ph
    return (amp * np.exp(1j * ph)).astype(np.complex64)
