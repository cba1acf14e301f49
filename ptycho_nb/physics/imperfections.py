"""What a real scan has that an ideal simulation lacks: a partially coherent beam, position
errors, detector defects (README "Units and conventions"; the scan assembly applies them).

- **Partial coherence**: the beam is K mutually incoherent modes carrying power fractions
  ``mode_powers`` (typically 70–90 % in the first); each pattern is the incoherent sum
  ``Σ_k |F{P_k · O_j}|²``. The extra modes are Hermite–Gauss-like variants of the main probe —
  the probe times Hermite polynomials in x and y scaled to its rms width, in order of degree
  ((1, 0), (0, 1), (2, 0), (1, 1), ...) — Gram–Schmidt orthogonalised: the modes of a Gaussian
  Schell-model beam, which they are exactly for a Gaussian probe, and the usual start of a
  mixed-state reconstruction. They share the main probe's support and phase curvature.
- **Position errors**: the patterns are measured at the TRUE positions, nominal + error; what a
  stage reports, and what ``PtychoData.xcoords/ycoords`` hold, is the NOMINAL ones. The error is
  Gaussian, std ``position_error`` px per axis, plus an optional slow drift that grows linearly
  in pattern order to ``position_drift`` px at the last pattern, in a random direction (thermal
  drift of a stage over a scan). True positions are kept inside the object (clipped).
- **Detector defects**: module gaps (whole rows / columns, ``gap_rows`` / ``gap_columns``) and
  dead pixels (``dead_pixel_fraction`` of all pixels, uniformly placed, the same in every
  pattern). They read 0 in the diffraction and are True in ``PtychoData.mask``.

All random draws come from a SeedSequence of their own (positions and detector in separate
child streams), so an ideal scan of the same seed keeps its object, probe, positions and noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.polynomial.hermite import hermval

__all__ = ["Imperfections", "default_mode_powers", "coherent_modes", "true_positions",
           "detector_mask", "gap_lines"]

#: Power fractions of a typical three-mode beam (the first mode dominant, README example).
_THREE_MODES = (0.72, 0.19, 0.09)
#: Ratio of successive mode powers for other K.
_MODE_RATIO = 0.3
#: Child streams of the imperfections' SeedSequence.
_K_POSITIONS, _K_DETECTOR = 0, 1


def default_mode_powers(k: int) -> tuple[float, ...]:
    """Power fractions of K modes: (0.72, 0.19, 0.09) for K = 3, else ``∝ 0.3^k`` (K = 2: 0.77, 0.23)."""
    if k == 3:
        return _THREE_MODES
    w = _MODE_RATIO ** np.arange(k)
    return tuple(float(x) for x in w / w.sum())


def _fail(field: str, value: Any, rule: str) -> None:
    raise ValueError(f"{field}: expected {rule}, got {value!r}")


def _number(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and lo <= value <= hi):
        _fail(field, value, f"a number in [{lo:g}, {hi:g}]")
    return float(value)


def _lines(field: str, value: Any) -> tuple[int, ...]:
    rule = "a sequence of distinct pixel indices >= 0"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        _fail(field, value, rule)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in value) \
            or len(set(value)) != len(value):
        _fail(field, value, rule)
    return tuple(sorted(int(v) for v in value))


@dataclasses.dataclass(frozen=True)
class Imperfections:
    """How a simulated scan departs from the ideal one (module docstring); all off by default.

    Parameters
    ----------
    probe_modes : int
        Incoherent probe modes K (1 = a coherent beam).
    mode_powers : sequence of K floats, optional
        Power fraction of each mode: positive, non-increasing, summing to 1 (within 1e-6).
        Default :func:`default_mode_powers`.
    store_probe_modes : bool
        What the scan's ``PtychoData.probe`` holds with K > 1: False (default) the dominant
        mode only, carrying the beam's whole power — what a user usually has (a single-mode
        probe from an earlier reconstruction or a model); True every mode, exactly.
    position_error : float
        Std of the Gaussian position error, px per axis, in [0, 64].
    position_drift : float
        Drift reached at the last pattern, px, in [0, 256].
    gap_rows, gap_columns : sequences of ints
        Detector rows / columns that are module gaps (pixel indices < N).
    dead_pixel_fraction : float
        Fraction of all detector pixels that are dead, in [0, 0.5].
    """

    probe_modes: int = 1
    mode_powers: tuple[float, ...] | None = None
    store_probe_modes: bool = False
    position_error: float = 0.0
    position_drift: float = 0.0
    gap_rows: tuple[int, ...] = ()
    gap_columns: tuple[int, ...] = ()
    dead_pixel_fraction: float = 0.0

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:  # frozen: normalise each field once, here
            object.__setattr__(self, name, value)

        k = self.probe_modes
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 16:
            _fail("probe_modes", k, "an int from 1 to 16")
        set_("probe_modes", int(k))
        powers = default_mode_powers(int(k)) if self.mode_powers is None else self.mode_powers
        rule = (f"{k} positive, non-increasing fractions summing to 1 (one per probe mode; "
                "the first is the dominant mode)")
        try:
            p = tuple(float(v) for v in powers)
        except (TypeError, ValueError):
            _fail("mode_powers", self.mode_powers, rule)
        if len(p) != k or not all(math.isfinite(v) and v > 0 for v in p) \
                or any(b > a for a, b in zip(p, p[1:])) or abs(sum(p) - 1.0) > 1e-6:
            _fail("mode_powers", self.mode_powers, rule)
        set_("mode_powers", p)
        if not isinstance(self.store_probe_modes, bool):
            _fail("store_probe_modes", self.store_probe_modes, "True or False")
        set_("position_error", _number("position_error", self.position_error, 0.0, 64.0))
        set_("position_drift", _number("position_drift", self.position_drift, 0.0, 256.0))
        set_("gap_rows", _lines("gap_rows", self.gap_rows))
        set_("gap_columns", _lines("gap_columns", self.gap_columns))
        set_("dead_pixel_fraction", _number("dead_pixel_fraction", self.dead_pixel_fraction, 0.0, 0.5))

    @property
    def moves_positions(self) -> bool:
        """Whether the true positions differ from the nominal ones."""
        return self.position_error > 0 or self.position_drift > 0

    @property
    def probe_exact(self) -> bool:
        """Whether the stored probe is exactly the probe that made the data."""
        return self.probe_modes == 1 or self.store_probe_modes

    @property
    def position_margin(self) -> int:
        """Pixels an automatically sized object grows by on each side, so the true positions
        (4 standard deviations and the whole drift away) stay inside it unclipped."""
        return math.ceil(4 * self.position_error + self.position_drift)

    def check_size(self, N: int) -> None:  # noqa: N803 - the pattern size's name everywhere
        """Refuse gap lines outside an N×N detector."""
        for name in ("gap_rows", "gap_columns"):
            lines = getattr(self, name)
            if lines and lines[-1] >= N:
                _fail(name, list(lines), f"pixel indices below the pattern size N = {N}")

    def record_facts(self) -> dict[str, Any]:
        """The record's fields of these imperfections (``SimulatedScan``)."""
        return {"probe_modes": self.probe_modes, "mode_powers": self.mode_powers,
                "probe_exact": self.probe_exact, "position_error": self.position_error,
                "position_drift": self.position_drift, "gap_rows": self.gap_rows,
                "gap_columns": self.gap_columns, "dead_pixel_fraction": self.dead_pixel_fraction}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists); inverse of :meth:`from_dict`."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Imperfections:
        """From :meth:`to_dict` output; a key that is no field raises ValueError naming it."""
        try:
            return cls(**dict(d))
        except TypeError as exc:  # the dataclass's own refusal of an unknown keyword
            names = [f.name for f in dataclasses.fields(cls)]
            raise ValueError(f"Imperfections: {exc}; the fields are {names}") from None


def gap_lines(detector_gaps: int | Mapping[str, Sequence[int]] | None, N: int  # noqa: N803
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(rows, columns) of module gaps from :func:`~ptycho_nb.physics.simulate`'s ``detector_gaps``.

    Parameters
    ----------
    detector_gaps : None, int or mapping
        None or 0: no gaps. An int w: a cross of two module gaps, w rows and w columns wide,
        starting at pixel ``N//2 + N//8`` (beside the direct beam, as a beamline places it on a
        module, not in a gap). A mapping ``{'rows': [...], 'columns': [...]}``: those pixel
        rows / columns (either key may be left out).
    N : int
        Pattern size (px).
    """
    if detector_gaps is None:
        return (), ()
    if isinstance(detector_gaps, Mapping):
        unknown = sorted(set(detector_gaps) - {"rows", "columns"})
        if unknown:
            _fail("detector_gaps", dict(detector_gaps), "a mapping with keys 'rows' and/or 'columns'")
        return (_lines("detector_gaps['rows']", detector_gaps.get("rows", ())),
                _lines("detector_gaps['columns']", detector_gaps.get("columns", ())))
    if isinstance(detector_gaps, bool) or not isinstance(detector_gaps, (int, np.integer)) \
            or not 0 <= detector_gaps <= N // 4:
        _fail("detector_gaps", detector_gaps, f"None, an int width from 0 to N/4 = {N // 4}, or a "
                                              "mapping {'rows': [...], 'columns': [...]}")
    start = N // 2 + N // 8
    lines = tuple(range(start, start + int(detector_gaps)))
    return lines, lines


def coherent_modes(probe: np.ndarray, powers: Sequence[float]) -> np.ndarray:
    """K orthogonal modes from a main probe (module docstring), mode k with power ``powers[k]``.

    Parameters
    ----------
    probe : (N, N) complex
        The main probe (any non-zero power; mode 0 is it, rescaled).
    powers : K floats summing to 1
        Power fractions.

    Returns
    -------
    (K, N, N) complex64
        ``sum|mode_k|² = powers[k]``, ``<mode_j, mode_k> = 0`` for j ≠ k (to float32 round-off).
    """
    p = np.asarray(probe, dtype=np.complex128)
    inten = np.abs(p) ** 2
    n0, n1 = p.shape
    yy, xx = np.mgrid[:n0, :n1].astype(np.float64)
    tot = inten.sum()
    cy, cx = (inten * yy).sum() / tot, (inten * xx).sum() / tot
    sy = math.sqrt((inten * (yy - cy) ** 2).sum() / tot)
    sx = math.sqrt((inten * (xx - cx) ** 2).sum() / tot)
    # Hermite–Gauss modes of a Gaussian of intensity std s: H_n(x / (√2·s)) times the Gaussian.
    u, v = (xx - cx) / (math.sqrt(2) * sx), (yy - cy) / (math.sqrt(2) * sy)
    orders = [(a, d - a) for d in range(1, 8) for a in range(d, -1, -1)]
    modes = [p / math.sqrt(tot)]
    for nx, ny in orders:
        if len(modes) == len(powers):
            break
        c = p * hermval(u, [0] * nx + [1]) * hermval(v, [0] * ny + [1])
        before = np.linalg.norm(c)
        for m in modes:
            c = c - np.vdot(m, c) * m
        norm = np.linalg.norm(c)
        if norm > 1e-6 * before:  # else a variant the modes so far already span: the next order
            modes.append(c / norm)
    if len(modes) < len(powers):
        raise ValueError(f"probe_modes: the probe supports only {len(modes)} distinct modes "
                         f"(asked for {len(powers)})")
    return np.stack([m * math.sqrt(w) for m, w in zip(modes, powers)]).astype(np.complex64)


def _child(seed: np.random.SeedSequence, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (k,)))


def true_positions(xcoords: np.ndarray, ycoords: np.ndarray, imperfections: Imperfections,
                   seed: np.random.SeedSequence, object_shape: tuple[int, int], N: int  # noqa: N803
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Where the patterns are measured: the nominal positions plus their errors.

    Parameters
    ----------
    xcoords, ycoords : (M,) float64
        Nominal patch centres (column, row), object pixels.
    imperfections : Imperfections
        ``position_error`` (px per axis) and ``position_drift`` (px at the last pattern).
    seed : SeedSequence
        Of the scan's imperfections (its position stream is used).
    object_shape : (H, W)
        The true positions are clipped to its valid range ``[N/2, W − N/2] × [N/2, H − N/2]``.
    N : int
        Pattern size (px).

    Returns
    -------
    (x_true, y_true) : (M,) float64
    """
    rng = _child(seed, _K_POSITIONS)
    m = xcoords.size
    dx = rng.normal(0.0, imperfections.position_error, m) if imperfections.position_error else np.zeros(m)
    dy = rng.normal(0.0, imperfections.position_error, m) if imperfections.position_error else np.zeros(m)
    if imperfections.position_drift:
        angle = rng.uniform(0.0, 2 * math.pi)
        t = np.arange(m) / max(m - 1, 1)
        dx = dx + imperfections.position_drift * math.cos(angle) * t
        dy = dy + imperfections.position_drift * math.sin(angle) * t
    h, w = object_shape
    return (np.clip(xcoords + dx, N / 2, w - N / 2), np.clip(ycoords + dy, N / 2, h - N / 2))


def detector_mask(N: int, imperfections: Imperfections, seed: np.random.SeedSequence  # noqa: N803
                  ) -> np.ndarray | None:
    """The detector's unmeasured pixels, (N, N) bool (True = gap or dead), or None for none.

    Dead pixels are ``round(dead_pixel_fraction · N²)`` pixels drawn without replacement from
    the whole detector (from the detector stream of ``seed``); they may fall in a gap.
    """
    imperfections.check_size(N)
    mask = np.zeros((N, N), dtype=bool)
    mask[list(imperfections.gap_rows), :] = True
    mask[:, list(imperfections.gap_columns)] = True
    n_dead = round(imperfections.dead_pixel_fraction * N * N)
    if n_dead:
        mask.flat[_child(seed, _K_DETECTOR).choice(N * N, size=n_dead, replace=False)] = True
    return mask if mask.any() else None
