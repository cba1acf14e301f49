"""Varied simulated scans for training networks that generalise beyond one object.

A :class:`VariedSpec` describes a *distribution* of ptychography scans: object kinds and how
amplitude and phase are coupled, probe families, scan geometries and doses. :func:`draw_scan`
draws one scan from it, fully determined by ``(spec, seed)``; :func:`iter_scans` streams scans;
:class:`ptycho_nb.engine.varied_data.VariedScanDataset` turns the stream into single-pattern training samples with a bounded
number of scans in memory.

Units and conventions are those of :func:`ptycho_nb.physics.simulate` and the README ("Units and
conventions"): diffraction amplitudes are sqrt(counts), float32 (M, N, N), DC at (N//2, N//2);
``xcoords`` is the column and ``ycoords`` the row of each patch centre in object pixels; the
stored probe is ``sqrt(s)·P`` with ``sum|P|² = 1`` so that ``forward_amplitude(probe, patches)²``
are the expected counts. The draw decides what a scan is made of; measuring it (the one forward
model, :func:`ptycho_nb.physics.forward.forward_from_object`, with simulate's photon scaling) and
recording it is the scan assembly that ``simulate`` shares, :mod:`ptycho_nb.physics.assemble`.

Reproducibility: a scan's randomness comes from a numpy ``SeedSequence``. Scan ``i`` of a stream
seeded with ``seed`` uses ``SeedSequence(seed, spawn_key=(i,))`` (:func:`scan_seed`, the same as
the i-th child of ``SeedSequence(seed).spawn``), so it is the same scan however the stream is
chunked, restarted or split across workers. Inside a scan, separate child sequences drive the
object, probe, scan geometry, dose and noise, so changing e.g. the dose range leaves the objects
and probes of the same seeds unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any, Iterator, Mapping, NoReturn, Sequence

import numpy as np

from ..data.container import PtychoData
from .assemble import assemble_scan, fit_object_shape
from .imperfections import Imperfections
from .objects import OBJECT_KINDS, object_maps
from .probes import PROBE_KINDS, make_probe, probe_diameter
from .scan import SCAN_KINDS, make_scan

__all__ = ["VariedSpec", "AMPLITUDE_MODES", "PROBE_FAMILIES", "scan_seed", "as_seed_sequence",
           "draw_scan", "draw_object", "draw_probe", "iter_scans"]

AMPLITUDE_MODES = ("independent", "phase_only", "correlated")
"""How the amplitude relates to the phase: the kind's own amplitude map; ``|O| = 1``; or
``a_max·(a_min/a_max)^t'`` from the phase map ``t'`` (one thickness map: absorption grows where
the phase shift grows, as for a single material)."""

PROBE_FAMILIES = tuple(PROBE_KINDS)
"""The probe kinds a :class:`VariedSpec` draws from: the names of
:data:`~ptycho_nb.physics.probes.PROBE_KINDS`, the one probe vocabulary, in its order (an alias
kept for code written when the varied draw had a list of its own). How each kind's parameters
are drawn: :func:`_draw_probe`."""

# Child indices of a scan's SeedSequence: one independent stream per part of the draw.
_K_OBJECT, _K_OBJECT_MAPS, _K_PROBE, _K_SCAN, _K_POSITIONS, _K_DOSE, _K_NOISE = range(7)
_K_IMPERFECTIONS = 7  # added later: the streams above stay what they were

_WeightsIn = Mapping[str, float] | Sequence[str] | Sequence[tuple[str, float]]


def _fail(field: str, value: Any, rule: str) -> NoReturn:
    raise ValueError(f"VariedSpec.{field}: expected {rule}, got {value!r}")


def _weights(field: str, value: Any, allowed: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Normalise weighted choices to ``((name, weight), ...)``; bare names get weight 1."""
    rule = (f"a mapping name → weight >= 0 (or a list of names / (name, weight) pairs), names "
            f"from {sorted(allowed)}, at least one weight > 0, no duplicates")
    items = list(value.items()) if isinstance(value, Mapping) else None
    if items is None:
        if isinstance(value, str) or not isinstance(value, Sequence):
            _fail(field, value, rule)
        items = [(v, 1.0) if isinstance(v, str) else tuple(v) for v in value]
    out = []
    for item in items:
        if len(item) != 2:
            _fail(field, value, rule)
        name, w = str(item[0]).lower(), item[1]
        try:
            w = float(w)
        except (TypeError, ValueError):
            _fail(field, value, rule)
        if name not in allowed or not (math.isfinite(w) and w >= 0):
            _fail(field, value, rule)
        out.append((name, w))
    names = [n for n, _ in out]
    if not out or len(set(names)) != len(names) or sum(w for _, w in out) <= 0:
        _fail(field, value, rule)
    return tuple(out)


def _pair(field: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
          hi_open: bool = False) -> tuple[float, float]:
    """Validate a (min, max) pair inside [lo, hi] (open ends as asked)."""
    rule = (f"a (min, max) pair with {lo} {'<' if lo_open else '<='} min <= max "
            f"{'<' if hi_open else '<='} {hi}")
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        _fail(field, value, rule)
    ok_lo = a > lo if lo_open else a >= lo
    ok_hi = b < hi if hi_open else b <= hi
    if not (math.isfinite(a) and math.isfinite(b) and ok_lo and a <= b and ok_hi):
        _fail(field, value, rule)
    return (a, b)


@dataclasses.dataclass(frozen=True)
class VariedSpec:
    """Distribution of simulated scans (all ranges are (min, max); draws are uniform unless noted).

    Parameters
    ----------
    N : int
        Pattern and probe size (px, even, >= 8).
    object_kinds : mapping or sequence
        Object kinds of :func:`ptycho_nb.physics.make_object` and their relative weights; per-kind
        parameters (feature sizes in units of N) are drawn too, see ``_object_kwargs``.
    amplitude_modes : mapping or sequence
        Weights of :data:`AMPLITUDE_MODES`: 'independent', 'phase_only' (``|O| = 1``),
        'correlated' (amplitude derived from the phase map).
    amplitude_max : (min, max)
        Largest transmission amplitude ``a_max``, in (0, 1] (passive object).
    amplitude_contrast : (min, max)
        ``c`` in ``a_min = a_max·(1 − c)``, in [0, 1).
    phase_span : (min, max)
        Peak-to-peak phase ``p_max − p_min`` (rad), log-uniform, in (0, 2π].
    phase_center : (min, max)
        Centre of the phase range (rad); ``|center| + span/2 <= π`` keeps the phase inside the
        range of a π·tanh phase head. Default 0: a constant phase offset is not measurable
        (it leaves every diffraction amplitude unchanged), so varying it only moves the targets.
    probe_families : mapping or sequence
        Weights of probe kinds, names from :data:`~ptycho_nb.physics.probes.PROBE_KINDS` (the one
        probe vocabulary, also :data:`PROBE_FAMILIES`).
    probe_diameter : (min, max)
        Target illuminated diameter as a fraction of N (the drawn probe's measured
        :func:`~ptycho_nb.physics.probe_diameter` is recorded and sets the scan step), in (0, 0.6].
    defocus : (min, max)
        Defocus phase at the aperture edge (rad, random sign) of 'defocused_pupil'; 'gaussian'
        draws its curvature phase at the beam radius from [focus_phase min, defocus max].
    focus_phase : (min, max)
        Phase at the edge of an in-focus 'disc' (rad, random sign), and the least curvature
        phase of a 'gaussian': real beams are never flat, and a flat, centro-symmetric probe
        leaves single patterns blind to the twin image (:func:`~ptycho_nb.physics.twin_distance`),
        which a per-pattern network cannot learn. (0, 0) gives flat discs.
    scan_kinds : mapping or sequence
        Weights of 'raster', 'spiral', 'random'.
    overlap : (min, max)
        Linear overlap ``1 − step/diameter`` in [0, 1) (for random scans it sets the density).
    jitter : (min, max)
        Position noise std as a fraction of the step (raster, spiral), in [0, 0.5].
    photons : (min, max)
        Mean total counts per pattern, log-uniform, > 0.
    n_positions : (min, max)
        Number of patterns per scan, integers, inclusive.
    object_size : 'fit' or int
        'fit': the smallest object that holds the scan (its size varies with step and count);
        an int: a square object of that side (px, >= N), the scan truncated to ``n_positions``.
    noise : 'poisson' or None
        Photon noise; None gives noise-free amplitudes (tests, references).
    imperfections : Imperfections, mapping or None
        What every drawn scan has of a real one (:class:`~ptycho_nb.physics.imperfections.Imperfections`
        or its ``to_dict()``: probe modes, position errors, detector gaps and dead pixels); the
        errors and dead pixels are drawn per scan from its seed. None (default): ideal scans.

    Weighted fields accept a mapping, a list of names (equal weights) or of (name, weight) pairs
    and are stored as ``((name, weight), ...)``; weights need not sum to 1.

    Defaults follow the ranges asked of the generator: every listed object kind, probe family and
    scan kind with comparable weights; doses 1e3–1e7; two objects in five phase-only or
    amplitude-from-phase; phases from weak (0.1 rad) to strong (π); moderate scans (64–256
    patterns) so a few scans fit a shuffling buffer. The 'image'/'hopper'/'terrain' kinds (one
    fixed picture) are left out by default so they can serve as held-out test objects; 'texture'
    views the same two bundled images, set its weight to 0 for a strictly held-out test.
    """

    N: int = 64
    object_kinds: _WeightsIn = (("dead_leaves", 0.25), ("grf", 0.15), ("polygons", 0.15),
                                ("blobs", 0.15), ("texture", 0.15), ("lines", 0.15))
    amplitude_modes: _WeightsIn = (("independent", 0.6), ("phase_only", 0.2), ("correlated", 0.2))
    amplitude_max: tuple[float, float] = (0.7, 1.0)
    amplitude_contrast: tuple[float, float] = (0.05, 0.9)
    phase_span: tuple[float, float] = (0.1, math.pi)
    phase_center: tuple[float, float] = (0.0, 0.0)
    probe_families: _WeightsIn = (("disc", 0.25), ("defocused_pupil", 0.25), ("zone_plate", 0.25),
                                  ("gaussian", 0.25))
    probe_diameter: tuple[float, float] = (0.25, 0.5)
    defocus: tuple[float, float] = (1.0, 12.0)
    focus_phase: tuple[float, float] = (1.0, 3.0)
    scan_kinds: _WeightsIn = (("raster", 1.0), ("spiral", 1.0), ("random", 1.0))
    overlap: tuple[float, float] = (0.4, 0.85)
    jitter: tuple[float, float] = (0.0, 0.1)
    photons: tuple[float, float] = (1e3, 1e7)
    n_positions: tuple[int, int] = (64, 256)
    object_size: str | int = "fit"
    noise: str | None = "poisson"
    imperfections: Imperfections | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:  # frozen: normalise each field once, here
            object.__setattr__(self, name, value)

        if not isinstance(self.N, (int, np.integer)) or isinstance(self.N, bool) or self.N < 8 or self.N % 2:
            _fail("N", self.N, "an even int >= 8")
        set_("N", int(self.N))
        set_("object_kinds", _weights("object_kinds", self.object_kinds, tuple(OBJECT_KINDS)))
        set_("amplitude_modes", _weights("amplitude_modes", self.amplitude_modes, AMPLITUDE_MODES))
        set_("probe_families", _weights("probe_families", self.probe_families, tuple(PROBE_KINDS)))
        set_("scan_kinds", _weights("scan_kinds", self.scan_kinds, SCAN_KINDS))
        set_("amplitude_max", _pair("amplitude_max", self.amplitude_max, 0.0, 1.0, lo_open=True))
        set_("amplitude_contrast", _pair("amplitude_contrast", self.amplitude_contrast, 0.0, 1.0,
                                         hi_open=True))
        span = _pair("phase_span", self.phase_span, 0.0, 2 * math.pi, lo_open=True)
        set_("phase_span", span)
        centre = _pair("phase_center", self.phase_center, -math.pi, math.pi)
        if max(abs(centre[0]), abs(centre[1])) + span[1] / 2 > math.pi + 1e-12:
            _fail("phase_center", self.phase_center,
                  f"max|center| + max(phase_span)/2 <= π (phase_span max is {span[1]:.4g})")
        set_("phase_center", centre)
        set_("probe_diameter", _pair("probe_diameter", self.probe_diameter, 0.0, 0.6, lo_open=True))
        set_("defocus", _pair("defocus", self.defocus, 0.0, 100.0))
        set_("focus_phase", _pair("focus_phase", self.focus_phase, 0.0, 100.0))
        set_("overlap", _pair("overlap", self.overlap, 0.0, 1.0, hi_open=True))
        set_("jitter", _pair("jitter", self.jitter, 0.0, 0.5))
        set_("photons", _pair("photons", self.photons, 0.0, math.inf, lo_open=True, hi_open=True))
        n = self.n_positions
        try:
            ok = (len(n) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in n)
                  and 1 <= n[0] <= n[1])
        except TypeError:
            ok = False
        if not ok:
            _fail("n_positions", n, "a (min, max) pair of ints with 1 <= min <= max")
        set_("n_positions", (int(n[0]), int(n[1])))
        size = self.object_size
        if isinstance(size, str):
            if size != "fit":
                _fail("object_size", size, f"'fit' or an int >= N = {self.N}")
        elif not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < self.N:
            _fail("object_size", size, f"'fit' or an int >= N = {self.N}")
        else:
            set_("object_size", int(size))
        if self.noise not in ("poisson", None):
            _fail("noise", self.noise, "'poisson' or None")
        imp = self.imperfections
        if isinstance(imp, Mapping):
            try:
                imp = Imperfections.from_dict(imp)
            except ValueError as exc:
                raise ValueError(f"VariedSpec.imperfections: {exc}") from None
        if imp is not None and not isinstance(imp, Imperfections):
            _fail("imperfections", imp, "an Imperfections, its to_dict() mapping, or None")
        if imp is not None:
            try:
                imp.check_size(self.N)
            except ValueError as exc:
                raise ValueError(f"VariedSpec.imperfections: {exc}") from None
        set_("imperfections", imp)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (weights as dicts, ranges as lists); inverse of
        :meth:`from_dict`. Suitable for a model card: what the model was trained on."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("object_kinds", "amplitude_modes", "probe_families", "scan_kinds"):
                v = {k: w for k, w in v}
            elif f.name == "imperfections":
                if v is None:
                    continue  # an ideal spec's dict stays what it was before the field existed
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VariedSpec:
        """Spec from :meth:`to_dict` output (unknown keys raise ValueError naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"VariedSpec: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**dict(d))


# --- Random draws -------------------------------------------------------------------------------


def scan_seed(seed: int | np.random.SeedSequence | None, index: int) -> np.random.SeedSequence:
    """SeedSequence of scan ``index`` of the stream ``seed``: ``SeedSequence(seed).spawn(...)[index]``.

    (A None seed draws fresh entropy on every call; :func:`iter_scans` fixes it once per stream.)
    """
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),),
                                  pool_size=root.pool_size)


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """``seed`` as a numpy SeedSequence (None: fresh entropy); ValueError for anything else."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed: expected a non-negative int, a numpy SeedSequence or None, got {seed!r}")
    return np.random.SeedSequence(seed)


def _child(ss: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    # Built explicitly rather than with ss.spawn(), which advances a counter inside ss: the same
    # SeedSequence passed twice must give the same scan.
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,), pool_size=ss.pool_size)


def _int_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1, np.uint64)[0])


def _choose(rng: np.random.Generator, weighted: tuple[tuple[str, float], ...]) -> str:
    w = np.array([x for _, x in weighted], dtype=np.float64)
    return weighted[int(rng.choice(len(weighted), p=w / w.sum()))][0]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _object_kwargs(kind: str, rng: np.random.Generator, N: int) -> dict[str, Any]:
    """Per-kind parameters, feature sizes in units of the pattern size N.

    dead_leaves: radii from 1.5–3 px to 0.2–0.8 N, power-law exponent 2.5–3.5; polygons: radius
    0.1–0.5 N (log-uniform) ± 50 %; blobs: cell radius 0.1–0.35 N ± 30 %; grf: correlation length
    0.5 px (almost white noise) to N/4 (log-uniform); lines: widths from 1 px to 2–8 px; texture:
    the kind's own random scale, rotation and crop. Other kinds use their defaults.
    """
    if kind == "dead_leaves":
        lo = rng.uniform(1.5, 3.0)
        return {"radius_range": (lo, max(lo, N * _loguniform(rng, 0.2, 0.8))),
                "exponent": rng.uniform(2.5, 3.5)}
    if kind == "polygons":
        r = N * _loguniform(rng, 0.1, 0.5)
        return {"radius_range": (max(1.5, 0.5 * r), max(1.5, 1.5 * r))}
    if kind == "blobs":
        r = N * _loguniform(rng, 0.1, 0.35)
        return {"radius_range": (max(3.0, 0.7 * r), max(3.0, 1.3 * r))}
    if kind == "grf":
        return {"correlation_length": _loguniform(rng, 0.5, max(0.5, N / 4))}
    if kind == "lines":
        return {"width_range": (1.0, rng.uniform(2.0, 8.0))}
    return {}


def _draw_object(spec: VariedSpec, ss: np.random.SeedSequence, shape: tuple[int, int],
                 kind: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Object (H, W) complex64 and what was drawn, from the object streams of ``ss``."""
    rng = np.random.default_rng(_child(ss, _K_OBJECT))
    kind = _choose(rng, spec.object_kinds) if kind is None else str(kind).lower()
    kw = _object_kwargs(kind, rng, spec.N)
    mode = _choose(rng, spec.amplitude_modes)
    a_max = rng.uniform(*spec.amplitude_max)
    a_min = a_max * (1.0 - rng.uniform(*spec.amplitude_contrast))
    span = _loguniform(rng, *spec.phase_span)
    centre = rng.uniform(*spec.phase_center)
    p_min, p_max = centre - span / 2, centre + span / 2
    seed = _int_seed(_child(ss, _K_OBJECT_MAPS))
    t_amp, t_ph = object_maps(kind, shape, seed=seed, **kw)
    if mode == "phase_only":
        amp = np.ones(shape)
        a_min = a_max = 1.0
    elif mode == "correlated":
        # One thickness map t' sets both: phase ∝ t', log-amplitude ∝ −t' (Beer–Lambert).
        amp = a_max * (a_min / a_max) ** t_ph
    else:
        amp = a_min + (a_max - a_min) * t_amp
    obj = (amp * np.exp(1j * (p_min + (p_max - p_min) * t_ph))).astype(np.complex64)
    info = {"object_kind": kind,
            "object_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
            "object_seed": seed, "object_shape": [int(shape[0]), int(shape[1])],
            "amplitude_mode": mode, "amplitude_range": [float(a_min), float(a_max)],
            "phase_range": [float(p_min), float(p_max)]}
    return obj, info


def _pupil_kwargs(rng: np.random.Generator, radius: float, sign: float,
                  edge_phase: tuple[float, float]) -> dict[str, float]:
    """Parameters of an aperture ('disc', 'defocused_pupil') with an edge phase from ``edge_phase``."""
    # Edge phase φ of the defocus; Fresnel number F = radius²/lam_z of the propagation to the
    # sample sets the edge rings. F >= 2φ/π bounds the spread the defocus adds to ~radius/2.
    phi = sign * rng.uniform(*edge_phase)
    f_lo = max(2.0, 2 * abs(phi) / math.pi)
    fresnel = _loguniform(rng, f_lo, max(f_lo, 30.0))
    return {"radius": radius, "curvature": phi / radius ** 2, "softness": rng.uniform(0.5, 2.0),
            "lam_z": radius ** 2 / fresnel}


def _zone_plate_kwargs(rng: np.random.Generator, N: int, radius: float, sign: float) -> dict[str, float]:
    # The defocused ring has radius ≈ lam_z·outer_radius/N: pick the pupil, solve for lam_z.
    outer = N * rng.uniform(0.12, 0.3)
    return {"outer_radius": outer, "stop_fraction": rng.uniform(0.0, 0.5), "lam_z": sign * radius * N / outer}


def _gaussian_kwargs(spec: VariedSpec, rng: np.random.Generator, target: float, radius: float,
                     sign: float) -> dict[str, float]:
    # probe_diameter of a Gaussian beam is 2√2·σ.
    lo = spec.focus_phase[0]
    return {"sigma": target / (2 * math.sqrt(2)),
            "curvature": sign * rng.uniform(lo, max(lo, spec.defocus[1])) / radius ** 2}


def _draw_probe(spec: VariedSpec, ss: np.random.SeedSequence, family: str | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit-intensity probe (N, N) complex64 and what was drawn, from the probe stream of ``ss``.

    Every kind of :data:`PROBE_KINDS` is drawn at a target diameter from ``spec.probe_diameter``
    with a random sign of its phase curvature, then its own parameters: 'disc' an edge phase from
    ``spec.focus_phase``, 'defocused_pupil' from ``spec.defocus`` (both a Fresnel number and an
    edge softness), 'zone_plate' a pupil and central stop, 'gaussian' a curvature phase at the
    beam radius from [focus_phase min, defocus max]. The probe is built by
    :func:`~ptycho_nb.physics.make_probe` from the recorded kind and parameters.
    """
    rng = np.random.default_rng(_child(ss, _K_PROBE))
    N = spec.N
    family = _choose(rng, spec.probe_families) if family is None else str(family)
    if family not in PROBE_KINDS:
        raise ValueError(f"family: unknown probe kind {family!r}; expected one of {list(PROBE_KINDS)}")
    target = N * rng.uniform(*spec.probe_diameter)  # illuminated diameter (px)
    radius = min(target / 2, 0.49 * N)
    sign = 1.0 if rng.uniform() < 0.5 else -1.0
    if family in ("disc", "defocused_pupil"):
        edge_phase = spec.defocus if family == "defocused_pupil" else spec.focus_phase
        kw = _pupil_kwargs(rng, radius, sign, edge_phase)
    elif family == "zone_plate":
        kw = _zone_plate_kwargs(rng, N, radius, sign)
    elif family == "gaussian":
        kw = _gaussian_kwargs(spec, rng, target, radius, sign)
    else:  # a kind added to PROBE_KINDS needs its parameter draw here
        raise ValueError(f"family: probe kind {family!r} has no parameter draw in VariedSpec")
    p = make_probe(family, N, **kw)
    info = {"probe_kind": family, "probe_kwargs": {k: float(v) for k, v in kw.items()},
            "probe_target_diameter": float(target), "probe_diameter": float(probe_diameter(p))}
    return p, info


def _raster_grid(n: int) -> tuple[int, int]:
    """(rows, columns) of the near-square raster that holds ``n`` positions: the tightest object."""
    nx = math.ceil(math.sqrt(n))
    return (math.ceil(n / nx), nx)


def draw_object(spec: VariedSpec, seed: int | np.random.SeedSequence | None = 0, *,
                shape: tuple[int, int] | None = None, kind: str | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """One object from the spec (e.g. for galleries).

    With ``kind=None`` and the scan's object shape this is exactly the object of
    ``draw_scan(spec, seed)``; forcing ``kind`` skips the kind draw.

    Returns
    -------
    obj : ndarray, (H, W) complex64 — default shape (4N, 4N)
    info : dict — kind, kind parameters, amplitude mode, amplitude and phase ranges, map seed
    """
    if kind is not None and str(kind).lower() not in OBJECT_KINDS:
        raise ValueError(f"kind: unknown object kind {kind!r}; expected one of {sorted(OBJECT_KINDS)}")
    shape = (4 * spec.N, 4 * spec.N) if shape is None else (int(shape[0]), int(shape[1]))
    return _draw_object(spec, as_seed_sequence(seed), shape, kind)


def draw_probe(spec: VariedSpec, seed: int | np.random.SeedSequence | None = 0, *,
               family: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One probe from the spec, unit total intensity ``sum|P|² = 1``.

    With ``family=None`` this is the (unscaled) probe of ``draw_scan(spec, seed)``.

    Returns
    -------
    probe : ndarray, (N, N) complex64
    info : dict — ``probe_kind`` (= the family), its parameters ``probe_kwargs`` (so
        ``make_probe(probe_kind, N, **probe_kwargs)`` rebuilds it), target and measured
        ``probe_target_diameter`` / ``probe_diameter`` (px)
    """
    return _draw_probe(spec, as_seed_sequence(seed), family)


def draw_scan(spec: VariedSpec, seed: int | np.random.SeedSequence | None = 0, *,
              batch_size: int = 256) -> PtychoData:
    """One random scan from ``spec``, fully determined by ``(spec, seed)``.

    Parameters
    ----------
    spec : VariedSpec
    seed : int, SeedSequence or None
        An int is ``SeedSequence(seed)``; stream scans use :func:`scan_seed`.
    batch_size : int
        Patterns per forward chunk (bounds memory to ~batch_size·N² complex values).

    Returns
    -------
    PtychoData
        ``diffraction`` (M, N, N) float32 sqrt(counts), ``xcoords``/``ycoords`` (M,) float64,
        probe (N, N) complex64 ``sqrt(s)·P``, ground-truth object complex64, and ``metadata``:
        its :class:`~ptycho_nb.data.scan_record.SimulatedScan` record (typed: ``.record``),
        the facts of :func:`~ptycho_nb.physics.simulate`'s scans plus ``amplitude_mode``,
        ``object_seed``, ``probe_target_diameter``, ``seed`` / ``spawn_key`` (``draw_scan(spec,
        SeedSequence(seed, spawn_key=spawn_key))`` redraws it), ``stream_index`` (scan number in
        its stream, or None) and ``varied_spec`` (:meth:`VariedSpec.to_dict`). With
        ``spec.imperfections``, also what :func:`~ptycho_nb.physics.simulate` gives a realistic
        scan: ``mask``, ``probe_truth``, ``xcoords_truth``/``ycoords_truth`` and their record
        fields; a fitted object grows by their position margin.
    """
    t0 = time.perf_counter()
    if not isinstance(spec, VariedSpec):
        raise ValueError(f"spec: expected a VariedSpec, got {type(spec).__name__}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    ss = as_seed_sequence(seed)
    N = spec.N

    p, probe_info = _draw_probe(spec, ss)
    diam = probe_info["probe_diameter"]

    rng = np.random.default_rng(_child(ss, _K_SCAN))
    scan = _choose(rng, spec.scan_kinds)
    step = (1.0 - rng.uniform(*spec.overlap)) * diam
    jitter = rng.uniform(*spec.jitter) * step if scan != "random" else 0.0
    n = int(rng.integers(spec.n_positions[0], spec.n_positions[1] + 1))
    if spec.object_size == "fit":
        shape = fit_object_shape(scan, N, step, n, grid=_raster_grid(n) if scan == "raster" else None)
        n_request: int | None = n
    else:
        shape = (spec.object_size, spec.object_size)
        n_request = n if scan == "random" else None  # all that fit, truncated below
    pos_seed = _int_seed(_child(ss, _K_POSITIONS))
    x, y = make_scan(scan, shape, N, step=step, jitter=jitter, seed=pos_seed, n_positions=n_request)
    x, y = x[:n], y[:n]
    if spec.object_size == "fit" and spec.imperfections is not None:
        # room for the true positions beyond the scan (a fixed object size stays as asked)
        margin = spec.imperfections.position_margin
        shape = (shape[0] + 2 * margin, shape[1] + 2 * margin)
        x, y = x + margin, y + margin

    obj, object_info = _draw_object(spec, ss, shape)

    photons = _loguniform(np.random.default_rng(_child(ss, _K_DOSE)), *spec.photons)
    noise_rng = np.random.default_rng(_child(ss, _K_NOISE)) if spec.noise == "poisson" else None
    entropy = ss.entropy if isinstance(ss.entropy, (int, np.integer)) else list(ss.entropy)
    # the assembly measures these from the arrays themselves
    facts = {k: v for k, v in {**object_info, **probe_info}.items()
             if k not in ("object_shape", "probe_diameter")}
    return assemble_scan(p, obj, x, y, photons_per_pattern=photons, noise_rng=noise_rng, step=step,
                         started=t0, batch_size=batch_size, imperfections=spec.imperfections,
                         imperfection_seed=_child(ss, _K_IMPERFECTIONS),
                         source="ptycho_nb.physics.varied.draw_scan",
                         seed=entropy, spawn_key=ss.spawn_key, scan=scan, jitter=float(jitter),
                         grid=None, varied_spec=spec.to_dict(), **facts)


def iter_scans(spec: VariedSpec, seed: int | np.random.SeedSequence | None = 0,
               n: int | None = None, *, start: int = 0, stride: int = 1) -> Iterator[PtychoData]:
    """Scans ``start, start + stride, …`` (below ``n``; endless when ``n`` is None), one at a time.

    Scan ``i`` is ``draw_scan(spec, scan_seed(seed, i))`` whatever the chunking, so two
    consumers with the same seed see the same scans, and ``stride``/``start`` split a stream
    between workers without overlap. Nothing is held between yields.
    """
    if not isinstance(spec, VariedSpec):
        raise ValueError(f"spec: expected a VariedSpec, got {type(spec).__name__}")
    if n is not None and (not isinstance(n, (int, np.integer)) or n < 0):
        raise ValueError(f"n: expected a non-negative int or None, got {n!r}")
    if not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start: expected a non-negative int, got {start!r}")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride: expected a positive int, got {stride!r}")
    root = as_seed_sequence(seed)  # a None seed is fixed here, once, for the whole stream
    indices = itertools.count(start, stride) if n is None else range(start, n, stride)
    for i in indices:
        yield draw_scan(spec, scan_seed(root, i))
