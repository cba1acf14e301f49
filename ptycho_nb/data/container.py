"""The one validated container for a ptychography scan.

Conventions (see README "Units and conventions"):

- ``diffraction`` holds far-field **amplitudes** (square root of photon counts), float32, shape
  (M, N, N), DC at pixel (N//2, N//2) (fftshifted).
- ``xcoords`` is the column, ``ycoords`` the row of each patch **centre**, in object pixels: the
  patch of an integer position (x, y) is ``object[y - N//2 : y + N//2, x - N//2 : x + N//2]``.
- ``probe`` is complex64, (N, N) or (K, N, N) for K incoherent modes.
- ``object`` is the complex64 ground truth (H, W) when known, else None.
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


@dataclasses.dataclass(eq=False)
class PtychoData:
    """A ptychography scan: diffraction amplitudes, scan positions, probe, optional ground truth.

    Parameters
    ----------
    diffraction : ndarray, (M, N, N) float32
        Far-field amplitudes (sqrt of photon counts), DC at (N//2, N//2).
    xcoords, ycoords : ndarray, (M,) float64
        Patch-centre column (x) and row (y) of each pattern, in object pixels.
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
            _fail("diffraction", f"contains {int(np.sum(~np.isfinite(d)))} NaN/inf values")
        if np.any(d < 0):
            _fail("diffraction", f"amplitudes must be >= 0, found minimum {float(d.min())}")
        self.diffraction = d

        for name in ("xcoords", "ycoords"):
            c = _as_array(name, getattr(self, name))
            if c.ndim == 2 and 1 in c.shape:
                c = c.reshape(-1)
            if c.ndim != 1 or c.shape[0] != m:
                _fail(name, f"expected shape ({m},) to match {m} patterns, got {c.shape}")
            if np.iscomplexobj(c):
                _fail(name, "must be real pixel coordinates")
            c = c.astype(np.float64)
            if not np.all(np.isfinite(c)):
                _fail(name, "contains NaN/inf values")
            span = float(c.max() - c.min())
            if span > MAX_POSITION_SPAN:
                # the stitched object spans the positions: 10^6 px would need terabytes
                _fail(name, f"positions span {span:.4g} pixels, more than {MAX_POSITION_SPAN}; "
                            "expected patch-centre coordinates in object pixels (metres given?)")
            setattr(self, name, c)

        p = _as_array("probe", self.probe)
        if p.ndim == 3 and p.shape[0] == 1:
            p = p[0]
        if p.ndim not in (2, 3) or p.shape[-2:] != (n, n):
            _fail("probe", f"expected shape ({n}, {n}) or (K, {n}, {n}) to match the patterns, got {p.shape}")
        _fits_float32("probe", p)
        p = p.astype(np.complex64)
        if not np.all(np.isfinite(p)):
            _fail("probe", "contains NaN/inf values")
        if not np.any(np.abs(p) > 0):
            _fail("probe", "is zero everywhere")
        self.probe = p

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
            h, w = o.shape
            half = n // 2
            tol = 1e-6
            bad = ((self.xcoords - half < -tol) | (self.xcoords + half > w + tol)
                   | (self.ycoords - half < -tol) | (self.ycoords + half > h + tol))
            if np.any(bad):
                j = int(np.argmax(bad))
                _fail("xcoords/ycoords", (
                    f"{int(bad.sum())} position(s) put the {n}x{n} patch outside the {h}x{w} object, "
                    f"first: pattern {j} at (x={self.xcoords[j]:.2f}, y={self.ycoords[j]:.2f}); "
                    f"centres must lie within [{half}, {w - half}] x [{half}, {h - half}]"))
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

    def subset(self, index: np.ndarray | slice) -> "PtychoData":
        """A new container with the selected patterns (same probe, object and metadata)."""
        return PtychoData(
            diffraction=self.diffraction[index],
            xcoords=self.xcoords[index],
            ycoords=self.ycoords[index],
            probe=self.probe,
            object=self.object,
            scan_index=None if self.scan_index is None else self.scan_index[index],
            metadata=dict(self.metadata),
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
        return (f"PtychoData(M={self.n_patterns} patterns of {self.N}x{self.N}, "
                f"x in [{span_x[0]:.1f}, {span_x[1]:.1f}], y in [{span_y[0]:.1f}, {span_y[1]:.1f}] px, "
                f"probe {tuple(self.probe.shape)}, object {obj}{extra})")
