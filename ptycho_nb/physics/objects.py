"""Synthetic complex objects (numpy): complex64 (H, W) transmission functions.

Every kind builds two normalised maps ``t`` (amplitude) and ``t'`` (phase) in [0, 1]
(:func:`object_maps`); the object is
``(a_min + (a_max − a_min)·t) · exp(i·(p_min + (p_max − p_min)·t'))``. The two maps differ (other
image, other random draw, or a reversed/rotated pattern) so the channels are not trivially equal.
Kinds: the same picture for every seed ('image', 'hopper', 'terrain', 'siemens'); random per seed
('lines', 'grf', 'mixed' = image + lines + grf); and procedural kinds for varied training data
(:mod:`ptycho_nb.physics.varied`): 'dead_leaves', 'polygons', 'blobs' (cell-like), 'texture'
(random views of the bundled images).
Bundled images live in ``ptycho_nb/assets/images.npz`` (see its README for sources and licences).
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any, Callable

import numpy as np
from scipy import ndimage

__all__ = ["make_object", "object_maps", "OBJECT_KINDS", "bundled_image", "BUNDLED_IMAGES"]

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


# --- Procedural kinds for varied training data (see ptycho_nb.physics.varied) -----------------
# Shapes are painted inside their bounding box only, so the cost grows with the painted area,
# not with (number of shapes) × (object area).


def _check_pair(name: str, value: Any, low: float = 0.0) -> tuple[float, float]:
    """Validate a (min, max) pair with ``low < min <= max < inf``."""
    try:
        lo, hi = (float(v) for v in value)
    except Exception:
        raise ValueError(f"{name}: expected a (min, max) pair, got {value!r}") from None
    if not (low < lo <= hi < np.inf):
        raise ValueError(f"{name}: expected finite {low} < min <= max, got {value!r}")
    return lo, hi


def _box(shape: tuple[int, int], cy: float, cx: float, reach: float
         ) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Pixels within ``reach`` (px) of (cy, cx), clipped to the map: slices and local offsets.

    Returns (rows, cols, dy (h, 1), dx (1, w)) or None when the box misses the map.
    """
    h, w = shape
    y0, y1 = max(0, int(np.floor(cy - reach))), min(h, int(np.ceil(cy + reach)) + 1)
    x0, x1 = max(0, int(np.floor(cx - reach))), min(w, int(np.ceil(cx + reach)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - cy
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - cx
    return slice(y0, y1), slice(x0, x1), dy, dx


def _polygon_coverage(dy: np.ndarray, dx: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a simple polygon, vertices (K, 2, ...) as (row, col) px.

    Inside/outside by the even–odd crossing rule, then a 1-pixel soft edge from the exact distance
    to the nearest edge, so non-convex polygons work too. Vertices (K, 2) describe one polygon for
    all pixels; (K, 2, E) one polygon per entry of flat ``dy``, ``dx`` (E,).
    """
    yy, xx = np.broadcast_arrays(dy, dx)
    inside = np.zeros(yy.shape, dtype=bool)
    dist2 = np.full(yy.shape, np.inf)
    for i in range(len(verts)):
        ay, ax = verts[i - 1]
        by, bx = verts[i]
        ey, ex = by - ay, bx - ax
        crosses = (ay > yy) != (by > yy)  # the edge spans this row: ey != 0 wherever it is used
        with np.errstate(divide="ignore", invalid="ignore"):
            inside ^= crosses & (xx < ax + (yy - ay) * ex / ey)
        t = np.clip(((yy - ay) * ey + (xx - ax) * ex) / np.maximum(ey * ey + ex * ex, 1e-12), 0.0, 1.0)
        dist2 = np.minimum(dist2, (yy - ay - t * ey) ** 2 + (xx - ax - t * ex) ** 2)
    d = np.sqrt(dist2)
    return np.clip(0.5 + np.where(inside, d, -d), 0.0, 1.0)


def _random_polygon(rng: np.random.Generator, radius: float, n_vertices: int,
                    convex: bool) -> np.ndarray:
    """Star-shaped polygon about the origin, vertices (K, 2) as (row, col) px.

    Jittered but ordered angles keep it simple (no self-crossing); equal radii give a convex
    polygon inscribed in the circle of ``radius``, random radii a non-convex one.
    """
    ang = (2 * np.pi * (np.arange(n_vertices) + rng.uniform(-0.35, 0.35, n_vertices)) / n_vertices
           + rng.uniform(0, 2 * np.pi))
    rad = radius * (np.ones(n_vertices) if convex else rng.uniform(0.35, 1.0, n_vertices))
    return np.stack([rad * np.sin(ang), rad * np.cos(ang)], axis=1)


_LEAF_SHAPES = ("disc", "ellipse", "polygon")
_LEAF_MAX_VERTICES = 8


def _leaf_batch(rng: np.random.Generator, shape: tuple[int, int], n: int, lo: float, hi: float,
                exponent: float, shapes: tuple[str, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random leaves, rasterised together: (pixel, leaf, coverage) entries and leaf values.

    Returns flat pixel indices (E,), leaf indices (E,) in drawing order, coverage (E,) in (0, 1]
    and values (n, 2) (amplitude, phase) in [0, 1].
    """
    h, w = shape
    a = 1.0 - exponent
    u = rng.uniform(size=n)
    # Inverse CDF of the truncated power law (log-uniform when exponent == 1).
    r = lo * (hi / lo) ** u if abs(a) < 1e-9 else (lo ** a + u * (hi ** a - lo ** a)) ** (1 / a)
    cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
    kind = np.asarray([_LEAF_SHAPES.index(s) for s in shapes])[rng.integers(len(shapes), size=n)]
    th, q = rng.uniform(0, np.pi, n), rng.uniform(0.3, 1.0, n)  # ellipse orientation, axis ratio
    nv = rng.integers(3, _LEAF_MAX_VERTICES + 1, size=n)
    ang = (2 * np.pi * (np.arange(_LEAF_MAX_VERTICES) + rng.uniform(-0.35, 0.35, (n, _LEAF_MAX_VERTICES)))
           / nv[:, None] + rng.uniform(0, 2 * np.pi, (n, 1)))
    # Polygons with fewer vertices repeat their last one (zero-length edges change nothing).
    ang = np.where(np.arange(_LEAF_MAX_VERTICES)[None, :] < nv[:, None], ang,
                   np.take_along_axis(ang, nv[:, None] - 1, axis=1))
    values = rng.uniform(size=(n, 2))
    # Enumerate every leaf's pixels within r + 1 of its centre (every leaf shape fits in that
    # circle), clipped to the map, without a Python loop: first its rows, then each row's span.
    reach = r + 1.0
    ya = np.maximum(np.ceil(cy - reach), 0).astype(np.int64)
    nrows = np.maximum(np.minimum(np.floor(cy + reach), h - 1).astype(np.int64) - ya + 1, 0)
    row_leaf = np.repeat(np.arange(n), nrows)
    row_y = ya[row_leaf] + np.arange(row_leaf.size) - np.repeat(np.cumsum(nrows) - nrows, nrows)
    half = np.sqrt(np.maximum(reach[row_leaf] ** 2 - (row_y - cy[row_leaf]) ** 2, 0.0))
    xa = np.maximum(np.ceil(cx[row_leaf] - half), 0).astype(np.int64)
    ncols = np.maximum(np.minimum(np.floor(cx[row_leaf] + half), w - 1).astype(np.int64) - xa + 1, 0)
    leaf, yy = np.repeat(row_leaf, ncols), np.repeat(row_y, ncols)
    xx = np.repeat(xa, ncols) + np.arange(leaf.size) - np.repeat(np.cumsum(ncols) - ncols, ncols)
    dy, dx, rr = yy - cy[leaf], xx - cx[leaf], r[leaf]
    cov = np.zeros(leaf.size)
    k = kind[leaf]
    m = k == 0
    cov[m] = np.clip(rr[m] + 0.5 - np.hypot(dy[m], dx[m]), 0.0, 1.0)
    m = k == 1
    if m.any():
        t, qq = th[leaf[m]], q[leaf[m]]
        uu = dy[m] * np.cos(t) + dx[m] * np.sin(t)
        vv = -dy[m] * np.sin(t) + dx[m] * np.cos(t)
        # Semi-axes r and q·r; the edge is 1 px soft along the minor axis, 1/q px along the major.
        cov[m] = np.clip(qq * (rr[m] - np.hypot(uu, vv / qq)) + 0.5, 0.0, 1.0)
    m = k == 2
    if m.any():
        # Convex polygon = intersection of half-planes: signed distance ≈ the largest distance
        # beyond any edge line (exact inside and along edges; at sharp corners the soft edge
        # reaches a fraction of a pixel further out — fine for anti-aliasing, and much cheaper
        # than exact segment distances). Angles increase, so the vertices run counter-clockwise
        # in (x, y) = (col, row) and (e_y, −e_x) points outwards.
        vy, vx = r[:, None] * np.sin(ang), r[:, None] * np.cos(ang)  # (n, K)
        ey, ex = vy - np.roll(vy, 1, axis=1), vx - np.roll(vx, 1, axis=1)
        norm = np.hypot(ey, ex)
        ok = norm > 1e-9  # repeated vertices make zero-length edges: skip them
        safe = np.where(ok, norm, 1.0)
        ny_, nx_ = np.where(ok, -ex / safe, 0.0), np.where(ok, ey / safe, 0.0)
        off = np.where(ok, ny_ * vy + nx_ * vx, np.inf)  # a skipped edge never bounds
        lm, py, px = leaf[m], dy[m], dx[m]
        d = np.full(lm.size, -np.inf)
        for i in range(_LEAF_MAX_VERTICES):
            d = np.maximum(d, ny_[lm, i] * py + nx_[lm, i] * px - off[lm, i])
        cov[m] = np.clip(0.5 - d, 0.0, 1.0)
    keep = cov > 0
    return (yy * w + xx)[keep], leaf[keep], cov[keep], values


def _power_moment(p: float, exponent: float, lo: float, hi: float) -> float:
    """``∫ r^(p − exponent) dr`` over [lo, hi] (unnormalised moment of the radius power law)."""
    e = p + 1.0 - exponent
    return float(np.log(hi / lo)) if abs(e) < 1e-9 else (hi ** e - lo ** e) / e


def _dead_leaves_maps(shape: tuple[int, int], rng: np.random.Generator,
                      radius_range: tuple[float, float] | None = None, exponent: float = 3.0,
                      shapes: tuple[str, ...] = _LEAF_SHAPES, max_leaves: int = 200_000,
                      coverage: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """Dead leaves: opaque random discs, ellipses and convex polygons occluding one another.

    Radii follow ``p(r) ∝ r^-exponent`` on ``radius_range`` (px; default 1 px to a fifth of the
    shorter side); exponent 3 is the scale-invariant case. Leaves are drawn front to back (each new
    leaf lies behind those drawn, visible only in their gaps) — the same picture as back-to-front
    occlusion, but it stops once ``coverage`` of the area is covered (or after ``max_leaves``);
    what is left shows a flat background. Every leaf has its own amplitude and phase value, so
    the two maps share edges but not values. Leaves are rasterised in vectorised batches.
    """
    h, w = shape
    lo, hi = _check_pair("radius_range", (1.0, max(2.0, min(shape) / 5)) if radius_range is None
                         else radius_range)
    if not (np.isfinite(exponent) and exponent > 0):
        raise ValueError(f"exponent: expected a finite number > 0, got {exponent!r}")
    shapes = (shapes,) if isinstance(shapes, str) else tuple(shapes)
    if not shapes or any(s not in _LEAF_SHAPES for s in shapes):
        raise ValueError(f"shapes: expected a non-empty subset of {_LEAF_SHAPES}, got {shapes!r}")
    if not isinstance(max_leaves, (int, np.integer)) or max_leaves < 1:
        raise ValueError(f"max_leaves: expected a positive int, got {max_leaves!r}")
    if not (0 < coverage <= 1):
        raise ValueError(f"coverage: expected 0 < coverage <= 1, got {coverage!r}")
    npix = h * w
    amp, ph = np.zeros(npix), np.zeros(npix)
    log_clear = np.zeros(npix)  # log of the fraction of each pixel not hidden by a leaf in front
    # Batch size: about the number of leaves still needed, from the mean leaf area (≈ 2 r², the
    # mix of discs, ellipses and polygons) and the Poisson coverage law 1 − exp(−n·area/A).
    z = _power_moment(0, exponent, lo, hi)
    mean_r, mean_r2 = _power_moment(1, exponent, lo, hi) / z, _power_moment(2, exponent, lo, hi) / z
    per_leaf = 2.0 * mean_r2 / ((h + 2 * mean_r) * (w + 2 * mean_r))
    drawn, clear_mean = 0, 1.0
    while drawn < max_leaves and clear_mean > 1.0 - coverage:
        need = np.log(clear_mean / (1.0 - coverage)) / per_leaf
        n = int(min(np.clip(1.1 * need, 256, 8192), max_leaves - drawn))
        drawn += n
        pix, leaf, cov, values = _leaf_batch(rng, shape, n, lo, hi, exponent, shapes)
        # Visibility of each entry = its coverage × what the leaves in front left of the pixel:
        # those of earlier batches (log_clear) and earlier leaves of this batch (an exclusive
        # cumulative sum of log(1 − coverage) within each pixel). Entries come leaf by leaf, so
        # a stable sort by pixel keeps the drawing order within each pixel.
        order = np.argsort(pix, kind="stable")
        pix, leaf, cov = pix[order], leaf[order], cov[order]
        lg = np.log1p(-np.minimum(cov, 1.0 - 1e-12))
        csum = np.cumsum(lg) - lg
        first = np.ones(pix.size, dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(pix.size), 0))
        vis = cov * np.exp(log_clear[pix] + csum - csum[start])
        amp += np.bincount(pix, vis * values[leaf, 0], minlength=npix)
        ph += np.bincount(pix, vis * values[leaf, 1], minlength=npix)
        log_clear += np.bincount(pix, lg, minlength=npix)
        clear_mean = float(np.exp(log_clear).mean())
    clear = np.exp(log_clear)
    va, vp = rng.uniform(size=2)
    return _unit((amp + va * clear).reshape(shape)), _unit((ph + vp * clear).reshape(shape))


def _polygons_maps(shape: tuple[int, int], rng: np.random.Generator,
                   radius_range: tuple[float, float] | None = None, n_polygons: int | None = None,
                   n_vertices: tuple[int, int] = (3, 10),
                   opacity_range: tuple[float, float] = (0.4, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping random filled polygons (convex and non-convex), partly translucent.

    Each polygon has a circumradius in ``radius_range`` (px; default 1/12 to 1/3 of the shorter
    side), 3 to 9 vertices (``n_vertices`` is the half-open range), an opacity in
    ``opacity_range`` and its own amplitude and phase values, composited back to front over a
    random background. ``n_polygons`` defaults to about two layers over the area (at most 400).
    """
    h, w = shape
    lo, hi = _check_pair("radius_range", (max(1.5, min(shape) / 12), max(2.0, min(shape) / 3))
                         if radius_range is None else radius_range)
    v0, v1 = (int(v) for v in n_vertices)
    if not (3 <= v0 < v1):
        raise ValueError(f"n_vertices: expected 3 <= min < max (half-open), got {n_vertices!r}")
    o0, o1 = _check_pair("opacity_range", opacity_range)
    if o1 > 1:
        raise ValueError(f"opacity_range: expected 0 < min <= max <= 1, got {opacity_range!r}")
    if n_polygons is None:
        n_polygons = int(np.clip(2 * h * w / (np.pi * ((lo + hi) / 2) ** 2), 4, 400))
    if not isinstance(n_polygons, (int, np.integer)) or n_polygons < 1:
        raise ValueError(f"n_polygons: expected a positive int, got {n_polygons!r}")
    amp, ph = np.full(shape, rng.uniform()), np.full(shape, rng.uniform())
    for _ in range(int(n_polygons)):
        r = rng.uniform(lo, hi)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        verts = _random_polygon(rng, r, int(rng.integers(v0, v1)), convex=bool(rng.uniform() < 0.5))
        alpha = rng.uniform(o0, o1)
        va, vp = rng.uniform(size=2)
        box = _box(shape, cy, cx, r + 1.0)
        if box is None:
            continue
        sy, sx, dy, dx = box
        c = alpha * _polygon_coverage(dy, dx, verts)
        amp[sy, sx] += c * (va - amp[sy, sx])
        ph[sy, sx] += c * (vp - ph[sy, sx])
    return _unit(amp), _unit(ph)


def _star_radius(rng: np.random.Generator, n_harmonics: int, strength: float
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """Smooth random radial profile ``1 + Σ_m a_m cos(m θ + φ_m)`` (m = 2..n+1), a cell outline."""
    m = np.arange(2, n_harmonics + 2)
    a = rng.uniform(0, strength, m.size) / m
    phi = rng.uniform(0, 2 * np.pi, m.size)
    return lambda th: 1.0 + np.sum(a[:, None, None] * np.cos(m[:, None, None] * th + phi[:, None, None]),
                                   axis=0)


def _blobs_maps(shape: tuple[int, int], rng: np.random.Generator,
                radius_range: tuple[float, float] | None = None, n_cells: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cell-like blobs: smooth, irregular bodies with a membrane rim and a nucleus.

    Each cell (radius in ``radius_range`` px; default 1/14 to 1/6 of the shorter side, at least
    3 px) has a wobbly elliptical outline, a thin bright membrane, textured cytoplasm and an
    off-centre nucleus with its own rim. Phase (thickness) weights the membrane and body most,
    absorption (amplitude) the nucleus, each with per-cell random strengths and separate textures,
    so the maps are related but not equal. Overlapping cells add up. ``n_cells`` defaults to about
    half the area covered (at most 300).
    """
    h, w = shape
    lo, hi = _check_pair("radius_range", (max(3.0, min(shape) / 14), max(3.0, min(shape) / 6))
                         if radius_range is None else radius_range)
    if n_cells is None:
        n_cells = int(np.clip(0.5 * h * w / (np.pi * ((lo + hi) / 2) ** 2), 3, 300))
    if not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells: expected a positive int, got {n_cells!r}")
    # Fine textures (cytoplasm granules) and a faint background, separate draws per channel.
    tex_p = _grf(shape, rng, 1.5)
    tex_a = _grf(shape, rng, 1.5)
    ph = 0.08 * _grf(shape, rng, max(2.0, lo))
    absorb = 0.08 * _grf(shape, rng, max(2.0, lo))
    centres: list[tuple[float, float, float]] = []
    for _ in range(int(n_cells)):
        r = rng.uniform(lo, hi)
        # A few tries for a spot that does not overlap existing cells much; else accept overlap.
        for _try in range(8):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            if all(np.hypot(cy - y, cx - x) > 0.8 * (r + q) for y, x, q in centres):
                break
        centres.append((cy, cx, r))
        box = _box(shape, cy, cx, 1.5 * r + 2.0)
        th0, q = rng.uniform(0, np.pi), rng.uniform(0.65, 1.0)
        outline = _star_radius(rng, 3, 0.35)
        ny, nx = rng.uniform(-0.3, 0.3, 2) * r  # nucleus offset
        rn = rng.uniform(0.25, 0.45) * r
        n_outline = _star_radius(rng, 2, 0.2)
        w_mem = rng.uniform(0.6, 1.4)
        # Per-cell material: membrane/body/nucleus weights for phase and for absorption.
        p_body, p_mem, p_nuc = rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.5)
        a_body, a_mem, a_nuc = rng.uniform(0.05, 0.25), rng.uniform(0.0, 0.3), rng.uniform(0.4, 0.9)
        if box is None:
            continue
        sy, sx, dy, dx = box
        u = dy * np.cos(th0) + dx * np.sin(th0)
        v = (-dy * np.sin(th0) + dx * np.cos(th0)) / q
        d = np.hypot(u, v) - r * outline(np.arctan2(v, u))  # ≈ signed distance to the outline (px)
        body = 0.5 * (1 - np.tanh(d / 0.8))
        membrane = np.exp(-(d / w_mem) ** 2)
        dn = np.hypot(dy - ny, dx - nx) - rn * n_outline(np.arctan2(dy - ny, dx - nx))
        nucleus = 0.5 * (1 - np.tanh(dn / 0.8)) * body
        n_rim = np.exp(-(dn / 0.9) ** 2) * body
        ph[sy, sx] += (body * p_body * (0.7 + 0.6 * tex_p[sy, sx]) + p_mem * membrane
                       + p_nuc * nucleus + 0.3 * n_rim)
        absorb[sy, sx] += (body * a_body * (0.7 + 0.6 * tex_a[sy, sx]) + a_mem * membrane
                           + a_nuc * nucleus * (0.8 + 0.4 * tex_a[sy, sx]))
    # Absorbing material lowers the amplitude.
    return _unit(-absorb), _unit(ph)


def _affine_crop(img: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                 scale_range: tuple[float, float]) -> np.ndarray:
    """A random rotated, scaled, possibly mirrored view of ``img`` filling ``shape``.

    ``scale`` (log-uniform in ``scale_range``) is output pixels per image pixel; outside the image
    the view continues mirrored, so any output size is filled.
    """
    h, w = shape
    s = np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1])))
    th = rng.uniform(0, 2 * np.pi)
    flip = -1.0 if rng.uniform() < 0.5 else 1.0
    oy, ox = rng.uniform(0, img.shape[0]), rng.uniform(0, img.shape[1])
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy, xx = (yy - (h - 1) / 2) / s, flip * (xx - (w - 1) / 2) / s
    src_y = oy + np.cos(th) * yy - np.sin(th) * xx
    src_x = ox + np.sin(th) * yy + np.cos(th) * xx
    t = ndimage.map_coordinates(img, [src_y, src_x], order=1, mode="mirror")
    # A random gamma varies the grey-level distribution (dark- or bright-dominated textures).
    return _unit(_unit(t) ** np.exp(rng.uniform(np.log(0.5), np.log(2.0))))


def _texture_maps(shape: tuple[int, int], rng: np.random.Generator,
                  scale_range: tuple[float, float] = (0.5, 4.0),
                  images: tuple[str, ...] = BUNDLED_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """Textures from the bundled images: a random crop, rotation, scale, mirror and gamma per map.

    Amplitude and phase are independent views (either image), so every seed gives another
    picture — unlike 'image', which is the same picture for every seed.
    """
    s0, s1 = _check_pair("scale_range", scale_range)
    images = tuple(images)
    if not images:
        raise ValueError(f"images: expected a non-empty subset of {BUNDLED_IMAGES}, got {images!r}")
    maps = []
    for _ in range(2):
        img = bundled_image(images[int(rng.integers(len(images)))])
        maps.append(_affine_crop(img, shape, rng, (s0, s1)))
    return maps[0], maps[1]


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
    # Procedural kinds (different picture for every seed), used by ptycho_nb.physics.varied:
    "dead_leaves": _dead_leaves_maps,  # kw: radius_range, exponent, shapes, max_leaves, coverage
    "polygons": _polygons_maps,  # kw: radius_range, n_polygons, n_vertices, opacity_range
    "blobs": _blobs_maps,  # kw: radius_range, n_cells
    "texture": _texture_maps,  # kw: scale_range, images
}


def _check_kind_shape(kind: str, shape: Any) -> tuple[str, tuple[int, int]]:
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
    return key, shape


def _kind_maps(key: str, shape: tuple[int, int], seed: Any, kw: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    try:
        return OBJECT_KINDS[key](shape, rng, **kw)
    except TypeError as exc:
        raise ValueError(f"make_object({key!r}): {exc}") from None


def object_maps(kind: str = "image", shape: tuple[int, int] = (256, 256), *,
                seed: int | np.random.SeedSequence | None = 0,
                **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two normalised maps behind :func:`make_object`: amplitude ``t`` and phase ``t'``.

    Same ``kind``, ``shape``, ``seed`` and ``**kw`` as :func:`make_object`, which returns
    ``(a_min + (a_max − a_min)·t) · exp(i·(p_min + (p_max − p_min)·t'))`` of exactly these maps.
    Callers that couple amplitude and phase differently (e.g. an amplitude derived from the phase
    map, as :mod:`ptycho_nb.physics.varied` does) start from here.

    Returns
    -------
    t_amp, t_phase : ndarray, (H, W) float64 in [0, 1]
    """
    key, shape = _check_kind_shape(kind, shape)
    return _kind_maps(key, shape, seed, kw)


def make_object(kind: str = "image", shape: tuple[int, int] = (256, 256), *,
                amplitude_range: tuple[float, float] = (0.5, 1.0),
                phase_range: tuple[float, float] = (-1.2, 1.2),
                seed: int | None = 0, **kw: Any) -> np.ndarray:
    """Synthetic complex object.

    Parameters
    ----------
    kind : str
        'image' (amplitude 'hopper', phase 'terrain'; ``amplitude=``/``phase=`` pick bundled
        images), 'hopper', 'terrain', 'lines', 'grf', 'siemens', 'mixed'; procedural kinds that
        differ for every seed: 'dead_leaves', 'polygons', 'blobs' (cell-like), 'texture' (random
        views of the bundled images).
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
    key, shape = _check_kind_shape(kind, shape)
    a_min, a_max = (float(v) for v in amplitude_range)
    if not (0 <= a_min <= a_max) or not np.isfinite(a_max):
        raise ValueError(f"amplitude_range: expected finite 0 <= a_min <= a_max, got {amplitude_range!r}")
    p_min, p_max = (float(v) for v in phase_range)
    if not (p_min <= p_max) or not (np.isfinite(p_min) and np.isfinite(p_max)):
        raise ValueError(f"phase_range: expected finite p_min <= p_max (radians), got {phase_range!r}")
    t_amp, t_ph = _kind_maps(key, shape, seed, kw)
    amp = a_min + (a_max - a_min) * t_amp
    ph = p_min + (p_max - p_min) * t_ph
    return (amp * np.exp(1j * ph)).astype(np.complex64)
