"""The one validated container for a ptychography scan.

Conventions (see README "Units and conventions"):

- ``diffraction`` holds far-field **amplitudes** (square root of photon counts), float32, shape
  (M, N, N), DC at pixel (N//2, N//2) (fftshifted).
- ``xcoords`` is the column, ``ycoords`` the row of each patch **centre**, in object pixels: the
  patch of an integer position (x, y) is ``object[y - N//2 : y + N//2, x - N//2 : x + N//2]``.
- ``probe`` is complex64, (N, N) or (K, N, N) for K incoherent modes.
- ``object`` is the complex64 ground truth (H, W) when known, else None.
- ``mask`` marks the detector pixels that were **not measured** (True; upstream PtychoPINN's
  ``bad_pixels`` and ptychodus's ``/bad_pixels`` convention): (N, N) shared by every pattern or
  (M, N, N) per pattern, None when every pixel was measured. Consumers read a batch's pixels
  through :meth:`PtychoData.measured_for`, whatever the mask's shape.
- ``probe_truth``, ``xcoords_truth`` / ``ycoords_truth``: ground truth a simulation knows beyond
  the object (the probe modes that made the data, the positions they were measured at), for
  scoring only: reconstruction never reads them. None when the stored probe / positions are the
  truth or the truth is unknown (measured data).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from .scan_record import SimulatedScan

__all__ = ["PtychoData", "MAX_POSITION_SPAN"]

#: Largest extent of the scan positions along x or y, pixels (the reconstructed object spans it:
#: 2**16 px square is already 32 GB of complex64).
MAX_POSITION_SPAN = 2**16


def _fail(field: str, what: str) -> None:
    raise ValueError(f"PtychoData.{field}: {what}")


#: numpy dtype kinds accepted per field: a dtype outside its family is refused by name rather
#: than cast (a bool or datetime coordinate would otherwise become 0/1 or nanoseconds).
_REAL = {"i": "integer", "u": "unsigned integer", "f": "float"}
_FAMILIES: dict[str, dict[str, str]] = {
    "diffraction": _REAL,
    "xcoords": _REAL,
    "ycoords": _REAL,
    "probe": {**_REAL, "c": "complex"},
    "object": {**_REAL, "c": "complex"},
    "scan_index": {"i": "integer", "u": "unsigned integer", "f": "integer-valued float"},
    "mask": {"b": "bool", "i": "integer (0/1)", "u": "unsigned integer (0/1)", "f": "float (0/1)"},
    "probe_truth": {**_REAL, "c": "complex"},
    "xcoords_truth": _REAL,
    "ycoords_truth": _REAL,
}


def _as_array(field: str, value: object) -> np.ndarray:
    """``value`` as an ndarray of the field's dtype family; ValueError naming field and dtype."""
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        _fail(field, f"could not be made into an array ({exc})")
    allowed = _FAMILIES[field]
    if a.dtype.kind not in allowed:
        what = {"b": "bool", "M": "datetime", "m": "timedelta", "O": "Python object",
                "U": "string", "S": "bytes", "V": "compound/void"}.get(a.dtype.kind, "other")
        _fail(field, f"has dtype {a.dtype} ({what}); expected one of: "
                     f"{', '.join(sorted(set(allowed.values())))}")
    return a


def _fits_float32(field: str, a: np.ndarray) -> None:
    """Refuse finite values that single precision would turn into inf (1e300 is not NaN/inf
    in the file, so saying so would mislead)."""
    if a.dtype.kind in "fc" and a.dtype.itemsize > (4 if a.dtype.kind == "f" else 8):
        with np.errstate(invalid="ignore"):
            big = np.abs(a[np.isfinite(a)]) > np.finfo(np.float32).max
        if np.any(big):
            _fail(field, f"holds {int(big.sum())} value(s) beyond the float32 range "
                         f"(|x| > {np.finfo(np.float32).max:.3g})")


#: Where a refused diffraction value most likely came from, and what to do about it.
_FLAG_HINT = ("detector flag values? ptycho_nb.data.mask_flagged sets them to 0 and marks them "
              "in the mask; the readers do the same with mask_flagged=True")


def _coords(field: str, value: object, m: int) -> np.ndarray:
    """(M,) float64 patch-centre coordinates, finite, spanning at most MAX_POSITION_SPAN."""
    c = _as_array(field, value)
    if c.ndim == 2 and 1 in c.shape:
        c = c.reshape(-1)
    if c.ndim != 1 or c.shape[0] != m:
        _fail(field, f"expected shape ({m},) to match {m} patterns, got {c.shape}")
    if np.iscomplexobj(c):
        _fail(field, "must be real pixel coordinates")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)):
        _fail(field, "contains NaN/inf values")
    span = float(c.max() - c.min())
    if span > MAX_POSITION_SPAN:
        # the stitched object spans the positions: 10^6 px would need terabytes
        _fail(field, f"positions span {span:.4g} pixels, more than {MAX_POSITION_SPAN}; "
                     "expected patch-centre coordinates in object pixels (metres given?)")
    return c


def _probe(field: str, value: object, n: int) -> np.ndarray:
    """(N, N) or (K, N, N) complex64, finite and not zero everywhere (a (1, N, N) becomes (N, N))."""
    p = _as_array(field, value)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    if p.ndim not in (2, 3) or p.shape[-2:] != (n, n):
        _fail(field, f"expected shape ({n}, {n}) or (K, {n}, {n}) to match the patterns, got {p.shape}")
    _fits_float32(field, p)
    p = p.astype(np.complex64)
    if not np.all(np.isfinite(p)):
        _fail(field, "contains NaN/inf values")
    if not np.any(np.abs(p) > 0):
        _fail(field, "is zero everywhere")
    return p


def _check_inside(field: str, xc: np.ndarray, yc: np.ndarray, n: int, shape: tuple[int, int]) -> None:
    """Refuse positions whose N×N patch leaves an (H, W) object."""
    h, w = shape
    half = n // 2
    tol = 1e-6
    bad = (xc - half < -tol) | (xc + half > w + tol) | (yc - half < -tol) | (yc + half > h + tol)
    if np.any(bad):
        j = int(np.argmax(bad))
        _fail(field, (
            f"{int(bad.sum())} position(s) put the {n}x{n} patch outside the {h}x{w} object, "
            f"first: pattern {j} at (x={xc[j]:.2f}, y={yc[j]:.2f}); "
            f"centres must lie within [{half}, {w - half}] x [{half}, {h - half}]"))


def _mask(value: object, m: int, n: int) -> np.ndarray | None:
    """(N, N) or (M, N, N) bool, True = not measured; None when no pixel is masked."""
    a = _as_array("mask", value)
    if a.shape not in ((n, n), (m, n, n)):
        _fail("mask", f"expected shape ({n}, {n}) (shared by every pattern) or ({m}, {n}, {n}) "
                      f"(per pattern), True = pixel not measured; got {a.shape}")
    if a.dtype.kind != "b":
        with np.errstate(invalid="ignore"):
            binary = (a == 0) | (a == 1)
        if not np.all(binary):
            _fail("mask", f"holds {int(np.sum(~binary))} value(s) other than 0/1; expected bool "
                          "(True = pixel not measured) or 0/1")
    a = a.astype(bool)  # a copy: the caller's array stays theirs
    # One way to say "every pixel measured": consumers skip the masking cost on None.
    return a if a.any() else None


@dataclasses.dataclass(eq=False)
class PtychoData:
    """A ptychography scan: diffraction amplitudes, scan positions, probe, optional ground truth.

    Parameters
    ----------
    diffraction : ndarray, (M, N, N) float32
        Far-field amplitudes (sqrt of photon counts), DC at (N//2, N//2).
    xcoords, ycoords : ndarray, (M,) float64
        Patch-centre column (x) and row (y) of each pattern, in object pixels: for a measured
        scan what the stage reported (nominal positions).
    probe : ndarray, (N, N) or (K, N, N) complex64
        Illumination; K incoherent modes when 3-D.
    object : ndarray, (H, W) complex64, optional
        Ground-truth object transmission (simulations) or an initial guess.
    scan_index : ndarray, (M,) int64, optional
        Index of the scan each pattern belongs to (PtychoPINN's ``scan_index``).
    metadata : dict
        JSON-serialisable facts: photons per pattern, FFT convention, pixel size, energy, ...;
        for a simulated scan, its :class:`~ptycho_nb.data.scan_record.SimulatedScan` record
        (read it typed as :attr:`record`).
    mask : ndarray, (N, N) or (M, N, N) bool, optional
        Detector pixels that were **not measured** (True): module gaps, dead, hot or flagged
        pixels, a beamstop. (N, N) holds for every pattern, (M, N, N) per pattern. Bool or 0/1
        values are accepted; a mask without any True pixel is stored as None (every pixel
        measured). The diffraction values under the mask are left as they are and mean nothing.
    probe_truth : ndarray, (K, N, N) complex64, optional
        The true probe modes that made the data (a simulation's ground truth, in the units of
        ``probe``), when ``probe`` is not all of it; for scoring, never for reconstruction.
    xcoords_truth, ycoords_truth : ndarray, (M,) float64, optional
        The true patch-centre column and row of each pattern (a simulation with position
        errors: the patterns were measured there, ``xcoords``/``ycoords`` are the nominal
        positions); both or neither. For scoring, never for reconstruction.

    Every array is checked and converted on construction; a bad one raises ``ValueError`` naming
    the field and what was expected.
    """

    diffraction: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    probe: np.ndarray
    object: np.ndarray | None = None
    scan_index: np.ndarray | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask: np.ndarray | None = None
    probe_truth: np.ndarray | None = None
    xcoords_truth: np.ndarray | None = None
    ycoords_truth: np.ndarray | None = None

    def __post_init__(self) -> None:
        d = _as_array("diffraction", self.diffraction)
        if d.ndim != 3:
            _fail("diffraction", f"expected a 3-D array (M, N, N) of amplitudes, got shape {d.shape}")
        m, n, n2 = d.shape
        if n != n2:
            _fail("diffraction", f"patterns must be square (N, N), got {n}x{n2}")
        if n % 2:
            _fail("diffraction", f"pattern size N must be even (DC at N//2), got N={n}")
        if m == 0:
            _fail("diffraction", "holds no patterns (M = 0)")
        if np.iscomplexobj(d):
            _fail("diffraction", "must be real amplitudes, got a complex array")
        _fits_float32("diffraction", d)
        d = d.astype(np.float32, copy=False)
        if not np.all(np.isfinite(d)):
            _fail("diffraction", f"contains {int(np.sum(~np.isfinite(d)))} NaN/inf values ({_FLAG_HINT})")
        if np.any(d < 0):
            _fail("diffraction", f"amplitudes must be >= 0, found {int(np.sum(d < 0))} negative, "
                                 f"minimum {float(d.min())} ({_FLAG_HINT})")
        self.diffraction = d

        self.xcoords = _coords("xcoords", self.xcoords, m)
        self.ycoords = _coords("ycoords", self.ycoords, m)
        self.probe = _probe("probe", self.probe, n)

        if self.object is not None:
            o = _as_array("object", self.object)
            if o.ndim == 3 and o.shape[0] == 1:
                o = o[0]
            if o.ndim != 2:
                _fail("object", f"expected a 2-D complex array (H, W), got shape {o.shape}")
            _fits_float32("object", o)
            o = o.astype(np.complex64)
            if not np.all(np.isfinite(o)):
                _fail("object", "contains NaN/inf values")
            _check_inside("xcoords/ycoords", self.xcoords, self.ycoords, n, o.shape)
            self.object = o

        if self.scan_index is not None:
            s = _as_array("scan_index", self.scan_index).reshape(-1)
            if s.shape[0] != m:
                _fail("scan_index", f"expected shape ({m},), got {s.shape}")
            if s.dtype.kind == "f" and not (np.all(np.isfinite(s)) and np.all(s == np.round(s))):
                # NaN or 2.5 would become int64 garbage or a truncated index
                _fail("scan_index", "holds NaN/inf or non-integer values; expected integers")
            if s.dtype.kind in "uf" and s.size and (s.min() < np.iinfo(np.int64).min
                                                    or s.max() > np.iinfo(np.int64).max):
                _fail("scan_index", "holds values outside the int64 range")
            self.scan_index = s.astype(np.int64)

        if not isinstance(self.metadata, dict):
            _fail("metadata", f"expected a dict, got {type(self.metadata).__name__}")
        try:
            json.dumps(self.metadata)
        except TypeError as exc:
            _fail("metadata", f"must be JSON-serialisable ({exc})")

        if self.mask is not None:
            self.mask = _mask(self.mask, m, n)
        if self.probe_truth is not None:
            t = _probe("probe_truth", self.probe_truth, n)
            self.probe_truth = t if t.ndim == 3 else t[None]
        if (self.xcoords_truth is None) != (self.ycoords_truth is None):
            given = "xcoords_truth" if self.xcoords_truth is not None else "ycoords_truth"
            _fail("xcoords_truth/ycoords_truth", f"only {given} was given; the true positions "
                                                 "need both coordinates (or neither)")
        if self.xcoords_truth is not None:
            self.xcoords_truth = _coords("xcoords_truth", self.xcoords_truth, m)
            self.ycoords_truth = _coords("ycoords_truth", self.ycoords_truth, m)
            if self.object is not None:  # the patterns were measured there: inside the object
                _check_inside("xcoords_truth/ycoords_truth", self.xcoords_truth,
                              self.ycoords_truth, n, self.object.shape)

    # ------------------------------------------------------------------ derived views
    @property
    def n_patterns(self) -> int:
        """Number of patterns M."""
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 - the field's physical name
        """Pattern (and probe) side length in pixels."""
        return int(self.diffraction.shape[-1])

    @property
    def probe_modes(self) -> np.ndarray:
        """The probe as (K, N, N) incoherent modes (K = 1 for a single coherent probe)."""
        return self.probe if self.probe.ndim == 3 else self.probe[None]

    @property
    def record(self) -> SimulatedScan | None:
        """The simulated scan's facts, typed and checked (:class:`SimulatedScan`), read from
        :attr:`metadata`; None when the metadata holds no record (e.g. measured data).

        Raises ValueError naming the key when the metadata claims a record but a value is
        missing or wrong. Read anew on each access: ``metadata`` is a plain, mutable dict.
        """
        if not SimulatedScan.describes(self.metadata):
            return None
        return SimulatedScan.from_metadata(self.metadata)

    @property
    def intensities(self) -> np.ndarray:
        """Diffraction intensities (photon counts), amplitude squared, (M, N, N) float32."""
        return np.square(self.diffraction)

    @property
    def positions(self) -> np.ndarray:
        """Patch centres as (M, 2) array of (y, x) = (row, column) in object pixels."""
        return np.stack([self.ycoords, self.xcoords], axis=1)

    @property
    def measured(self) -> np.ndarray:
        """Measured detector pixels (True), the complement of :attr:`mask`: (N, N) bool when
        the mask is shared or absent (then all True), (M, N, N) bool when it is per pattern."""
        if self.mask is None:
            return np.ones((self.N, self.N), dtype=bool)
        return ~self.mask

    def measured_for(self, index: np.ndarray | slice | int) -> np.ndarray:
        """Measured pixels (True) of the patterns ``index`` selects, (B, N, N) bool, whatever
        the mask's shape (a shared or absent mask is repeated): what a batch's loss weighs.

        Parameters
        ----------
        index : int, slice, or (B,) int / (M,) bool array
            Patterns, as ``diffraction[index]`` would select them (an int gives B = 1).
        """
        rows = np.atleast_1d(np.arange(self.n_patterns)[index])
        if rows.ndim != 1:
            raise ValueError(f"index: expected an int, a slice or a 1-D index array, got shape {rows.shape}")
        if self.mask is None:
            return np.ones((rows.size, self.N, self.N), dtype=bool)
        if self.mask.ndim == 2:
            return np.repeat(~self.mask[None], rows.size, axis=0)
        return ~self.mask[rows]

    def subset(self, index: np.ndarray | slice) -> "PtychoData":
        """A new container with the selected patterns (same probe, object, metadata and shared
        mask; per-pattern masks and true positions selected with them)."""
        def pick(a: np.ndarray | None, per_pattern: bool = True) -> np.ndarray | None:
            return None if a is None else a[index] if per_pattern else a

        return PtychoData(
            diffraction=self.diffraction[index],
            xcoords=self.xcoords[index],
            ycoords=self.ycoords[index],
            probe=self.probe,
            object=self.object,
            scan_index=pick(self.scan_index),
            metadata=dict(self.metadata),
            mask=pick(self.mask, self.mask is not None and self.mask.ndim == 3),
            probe_truth=self.probe_truth,
            xcoords_truth=pick(self.xcoords_truth),
            ycoords_truth=pick(self.ycoords_truth),
        )

    def __repr__(self) -> str:
        obj = "None" if self.object is None else f"{self.object.shape[0]}x{self.object.shape[1]} complex64"
        span_x = (float(self.xcoords.min()), float(self.xcoords.max()))
        span_y = (float(self.ycoords.min()), float(self.ycoords.max()))
        try:
            record = self.record
        except ValueError:  # a repr must not raise; .record says what is wrong
            record = None
        extra = f", photons/pattern={record.photons_per_pattern:.3g}" if record is not None else ""
        if self.mask is not None:
            extra += (f", mask {int(self.mask.sum())} px shared" if self.mask.ndim == 2 else
                      f", mask {int(self.mask.sum())} px over {int(self.mask.any(axis=(1, 2)).sum())} "
                      "patterns")
        truth = [name for name, v in (("probe", self.probe_truth), ("positions", self.xcoords_truth))
                 if v is not None]
        if truth:
            extra += f", truth: {' and '.join(truth)}"
        return (f"PtychoData(M={self.n_patterns} patterns of {self.N}x{self.N}, "
                f"x in [{span_x[0]:.1f}, {span_x[1]:.1f}], y in [{span_y[0]:.1f}, {span_y[1]:.1f}] px, "
                f"probe {tuple(self.probe.shape)}, object {obj}{extra})")
