"""The typed record of a simulated scan: what it was made of, written into and read from metadata.

``PtychoData.metadata`` stays a JSON-ready dict (the NPZ, HDF5 and ptychodus writers store it as
JSON); for a simulated scan it is :meth:`SimulatedScan.as_dict` of the scan's record, and code
that needs a fact of the scan reads it back through :meth:`SimulatedScan.from_metadata` (or
``PtychoData.record``), which checks every value and names the key that is missing or wrong,
instead of looking up string keys and failing later with a ``KeyError`` or ``TypeError``.

This module lives in ``data/`` beside the container, so it knows no physics: kinds are checked
to be names here, and the physics checks them against its vocabularies when it simulates.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SimulatedScan", "SCAN_SOURCES", "probe_checksum"]

#: Producers whose metadata carries a record (``source``); ``PtychoData.record`` is None for others.
SCAN_SOURCES = ("ptycho_nb.physics.simulate", "ptycho_nb.physics.varied.draw_scan")


class _Bad(Exception):
    """A value broke its field's rule (turned into a ValueError naming the field)."""


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad
    return v


def _choice(*allowed: Any) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in allowed:
            raise _Bad
        return v
    return check


def _real(lo: float | None = None, *, lo_open: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise _Bad
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise _Bad
        return float(v)
    return check


def _count(lo: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        # 3.0 from a hand-written file is an int; 3.5 is not
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != int(v) or v < lo:
            raise _Bad
        return int(v)
    return check


def _pair(item: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    def check(v: Any) -> tuple[Any, Any]:
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Sequence) or len(v) != 2:
            raise _Bad
        return (item(v[0]), item(v[1]))
    return check


def _ints(v: Any) -> tuple[int, ...]:
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Sequence):
        raise _Bad
    return tuple(_count(0)(x) for x in v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):  # 1 or "true" from a hand-written file is not a flag
        raise _Bad
    return v


def _fractions(v: Any) -> tuple[float, ...]:
    """Power fractions: positive, non-increasing (the first is the dominant mode), summing to 1."""
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Sequence) or not v:
        raise _Bad
    out = tuple(_real(0.0, lo_open=True)(x) for x in v)
    if any(b > a for a, b in zip(out, out[1:])) or abs(sum(out) - 1.0) > 1e-6:
        raise _Bad
    return out


def _seed(v: Any) -> int | tuple[int, ...]:
    # SeedSequence entropy: one int (the usual seed) or a sequence of them
    return _count(0)(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else _ints(v)


def _lists(v: Any) -> Any:
    """Tuples as lists, all the way down: the form the value has after a JSON round trip."""
    if isinstance(v, Mapping):
        return {k: _lists(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    return v


def _json_mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise _Bad
    out = _lists(v)
    try:
        json.dumps(out)
    except (TypeError, ValueError):
        raise _Bad from None
    return out


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _field(check: Callable[[Any], Any], rule: str, default: Any = dataclasses.MISSING, *,
           factory: Any = dataclasses.MISSING, omit_default: bool = False) -> Any:
    """A record field: its check (normalises or raises _Bad), the rule it states, and whether
    ``as_dict`` leaves it out while it holds its default (facts only some producers or some
    scans record: an ideal scan's metadata stays what it was before they existed)."""
    meta = {"check": check, "rule": rule, "omit_default": omit_default}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


_POSITIVE = "a positive finite number"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulatedScan:
    """What a simulated scan was made of (:func:`ptycho_nb.physics.simulate`,
    :func:`ptycho_nb.physics.draw_scan`), as typed, checked fields.

    Parameters
    ----------
    source : str
        The producer, one of :data:`SCAN_SOURCES`.
    photons_per_pattern : float
        Mean total counts per pattern (photons, > 0).
    intensity_scale : float
        ``s``: photons per unit ``|F{P·O}|²`` of the unit-intensity probe P (the stored probe is
        ``sqrt(s)·P``, so ``sum|stored probe|² = s``).
    fft_norm : str
        Normalisation of the far-field FFT ('ortho').
    dc_pixel : (row, column) ints
        Pixel of the zero spatial frequency in each pattern, (N//2, N//2).
    noise : 'poisson' or None
        Photon noise of the counts; None for noise-free amplitudes.
    seed : int or tuple of ints
        Entropy of the numpy ``SeedSequence`` the scan was drawn from.
    object_kind : str
        Object kind (``ptycho_nb.physics.OBJECT_KINDS``).
    object_shape : (H, W) ints
        Object size (px).
    object_kwargs : dict
        Parameters of the object kind (JSON-ready; tuples are stored as lists).
    amplitude_range, phase_range : (min, max) floats
        Transmission amplitude range and phase range (rad) of the object.
    probe_kind : str
        Probe kind (``ptycho_nb.physics.PROBE_KINDS``), or 'user' for a probe passed in;
        ``make_probe(probe_kind, N, **probe_kwargs)`` rebuilds the unit-intensity probe.
    probe_kwargs : dict
        Parameters of the probe kind (JSON-ready).
    probe_diameter : float
        Illuminated diameter of the probe (px, ``ptycho_nb.physics.probe_diameter``).
    scan : str
        Scan kind ('raster', 'spiral', 'random').
    step : float
        Scan step (px, > 0).
    overlap : float
        Linear overlap ``1 − step/probe_diameter`` (negative: gaps between footprints).
    jitter : float
        Std of the Gaussian position noise (px, >= 0).
    n_positions : int
        Number of scan positions (patterns) simulated.
    grid : (ny, nx) ints or None
        Raster grid asked for, if any.
    spawn_key : tuple of ints or None
        Spawn key of the scan's ``SeedSequence`` (scans of a stream, ``draw_scan``): with
        ``seed`` it redraws the scan; None for scans not drawn from a spec.
    object_seed : int or None
        Seed of the object's maps (varied scans).
    amplitude_mode : str or None
        How amplitude relates to phase (``ptycho_nb.physics.AMPLITUDE_MODES``; varied scans).
    probe_target_diameter : float or None
        Diameter the probe draw aimed at (px; varied scans).
    varied_spec : dict or None
        ``VariedSpec.to_dict()`` of the distribution the scan was drawn from.
    simulate_seconds : float or None
        Wall time of the simulation (s).
    probe_modes : int
        Incoherent probe modes K the patterns were made with (1: a coherent beam).
    mode_powers : tuple of floats
        Fraction of the beam's power in each mode, non-increasing, summing to 1 ((1.0,) for K = 1).
    probe_exact : bool
        Whether the stored ``PtychoData.probe`` is exactly the probe that made the data (one
        mode, or every mode stored). False when it is only the dominant mode of a partially
        coherent beam: a reconstruction should then refine it.
    position_error : float
        Std (px, per axis) of the Gaussian error of the stored (nominal) positions: the
        patterns were measured at ``PtychoData.xcoords_truth/ycoords_truth``.
    position_drift : float
        Slow drift (px) of the true positions from the nominal ones, reached at the last pattern.
    gap_rows, gap_columns : tuple of ints
        Detector rows / columns of module gaps (pixel indices, not measured).
    dead_pixel_fraction : float
        Fraction of the detector's pixels that are dead (read 0, masked).

    The last seven are left out of :meth:`as_dict` while they hold their defaults (an ideal
    scan), so metadata written before they existed reads back as an ideal scan.

    Raises
    ------
    ValueError
        A field breaks its rule; the message names the field (= the metadata key).

    Notes
    -----
    Not hashable: the parameter dicts are plain dicts so that they read back from JSON equal.
    """

    source: str = _field(_choice(*SCAN_SOURCES), f"one of {list(SCAN_SOURCES)}")
    photons_per_pattern: float = _field(_real(0.0, lo_open=True), _POSITIVE)
    intensity_scale: float = _field(_real(0.0, lo_open=True), _POSITIVE)
    fft_norm: str = _field(_text, "a non-empty string")
    dc_pixel: tuple[int, int] = _field(_pair(_count(0)), "a (row, column) pair of ints >= 0")
    noise: str | None = _field(_choice("poisson", None), "'poisson' or None")
    seed: int | tuple[int, ...] = _field(_seed, "an int >= 0 or a list of them")
    spawn_key: tuple[int, ...] | None = _field(_optional(_ints), "a list of ints >= 0 or None",
                                               None, omit_default=True)
    object_kind: str = _field(_text, "a non-empty string")
    object_shape: tuple[int, int] = _field(_pair(_count(1)), "an (H, W) pair of ints >= 1")
    object_kwargs: dict[str, Any] = _field(_json_mapping, "a JSON-ready mapping with str keys",
                                           factory=dict)
    object_seed: int | None = _field(_optional(_count(0)), "an int >= 0 or None", None, omit_default=True)
    amplitude_mode: str | None = _field(_optional(_text), "a non-empty string or None", None,
                                        omit_default=True)
    amplitude_range: tuple[float, float] = _field(_pair(_real()), "a (min, max) pair of finite numbers")
    phase_range: tuple[float, float] = _field(_pair(_real()), "a (min, max) pair of finite numbers")
    probe_kind: str = _field(_text, "a non-empty string")
    probe_kwargs: dict[str, Any] = _field(_json_mapping, "a JSON-ready mapping with str keys",
                                          factory=dict)
    probe_target_diameter: float | None = _field(_optional(_real(0.0, lo_open=True)),
                                                 f"{_POSITIVE} or None", None, omit_default=True)
    probe_diameter: float = _field(_real(0.0, lo_open=True), _POSITIVE)
    scan: str = _field(_text, "a non-empty string")
    step: float = _field(_real(0.0, lo_open=True), _POSITIVE)
    overlap: float = _field(_real(), "a finite number")
    jitter: float = _field(_real(0.0), "a finite number >= 0")
    n_positions: int = _field(_count(1), "an int >= 1")
    grid: tuple[int, int] | None = _field(_optional(_pair(_count(1))),
                                          "an (ny, nx) pair of ints >= 1 or None", None)
    varied_spec: dict[str, Any] | None = _field(_optional(_json_mapping), "a JSON-ready mapping or None",
                                                None, omit_default=True)
    simulate_seconds: float | None = _field(_optional(_real(0.0)), "a finite number >= 0 or None", None,
                                            omit_default=True)
    # What a real scan has that an ideal simulation lacks (ptycho_nb.physics.imperfections).
    probe_modes: int = _field(_count(1), "an int >= 1", 1, omit_default=True)
    mode_powers: tuple[float, ...] = _field(
        _fractions, "a non-increasing list of positive fractions summing to 1", (1.0,), omit_default=True)
    probe_exact: bool = _field(_flag, "True or False", True, omit_default=True)
    position_error: float = _field(_real(0.0), "a finite number >= 0", 0.0, omit_default=True)
    position_drift: float = _field(_real(0.0), "a finite number >= 0", 0.0, omit_default=True)
    gap_rows: tuple[int, ...] = _field(_ints, "a list of ints >= 0", (), omit_default=True)
    gap_columns: tuple[int, ...] = _field(_ints, "a list of ints >= 0", (), omit_default=True)
    dead_pixel_fraction: float = _field(_real(0.0), "a finite number >= 0", 0.0, omit_default=True)
    # Which probe the record speaks of (probe_checksum of the stored probe): a scan whose probe
    # was replaced by a guess keeps its record, and then `probe_exact` no longer applies to it.
    probe_checksum: str | None = _field(_optional(_text), "a hex digest or None", None, omit_default=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                # frozen: each field is normalised once, here (lists → tuples, ints → floats, ...)
                object.__setattr__(self, f.name, f.metadata["check"](value))
            except (_Bad, TypeError, ValueError, OverflowError):
                raise ValueError(f"SimulatedScan.{f.name}: expected {f.metadata['rule']}, "
                                 f"got {value!r}") from None
        if len(self.mode_powers) != self.probe_modes:
            raise ValueError(f"SimulatedScan.mode_powers: expected one fraction per probe mode "
                             f"(probe_modes = {self.probe_modes}), got {list(self.mode_powers)!r}")

    @property
    def stream_index(self) -> int | None:
        """Number of the scan in its stream (``scan_seed(seed, i)`` → i), or None."""
        return self.spawn_key[-1] if self.spawn_key else None

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready metadata (tuples as lists); inverse of :meth:`from_metadata`.

        Also writes ``diffraction = 'amplitude'`` (what the container holds, and what the file
        readers check) and, for stream scans, ``stream_index``.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["omit_default"] and value == f.default:
                continue
            out[f.name] = _lists(value)
            if f.name == "spawn_key":
                out["stream_index"] = self.stream_index
            elif f.name == "dc_pixel":
                out["diffraction"] = "amplitude"
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> SimulatedScan:
        """The record held in a scan's metadata (other keys are ignored).

        Reads what :meth:`as_dict` wrote, and the metadata of files written before the record
        existed (their varied scans named the probe kind ``probe_family``).

        Raises
        ------
        ValueError
            A key is missing, or its value is of the wrong type or breaks its rule; the message
            names the key.
        """
        if not isinstance(metadata, Mapping):
            raise ValueError(f"SimulatedScan: expected the metadata mapping, got {type(metadata).__name__}")
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in metadata:
                kw[f.name] = metadata[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"SimulatedScan.{f.name}: missing from the metadata "
                                 f"(expected {f.metadata['rule']})")
        if "probe_family" in metadata:  # files from before the one probe vocabulary
            kw["probe_kind"] = metadata["probe_family"]
        record = cls(**kw)
        if "stream_index" in metadata and metadata["stream_index"] != record.stream_index:
            raise ValueError(f"SimulatedScan.stream_index: expected {record.stream_index!r} (the last "
                             f"entry of spawn_key {metadata.get('spawn_key')!r}), got "
                             f"{metadata['stream_index']!r}")
        return record

    @staticmethod
    def describes(metadata: Mapping[str, Any]) -> bool:
        """Whether ``metadata`` claims to hold a record (its ``source`` is a simulator's)."""
        return isinstance(metadata, Mapping) and metadata.get("source") in SCAN_SOURCES


def probe_checksum(probe: Any) -> str:
    """A short digest of a probe's values (complex64, with its shape): the same probe, the same
    digest, on any machine."""
    import hashlib

    import numpy as np

    p = np.ascontiguousarray(np.asarray(probe, dtype=np.complex64))
    return hashlib.sha256(repr(p.shape).encode() + p.tobytes()).hexdigest()[:16]
