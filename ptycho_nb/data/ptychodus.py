"""ptychodus product and diffraction HDF5 files (verified against ptychodus 1.7.0, ``ptychodus.api.io``).

Product file (``save_product`` / ``load_product``)::

    /                         attrs name, comments, detector_object_distance_m, photon_energy_eV
                              (legacy: probe_energy_eV), probe_photon_count, exposure_time_s, ...
    /probe                    (n_opr, n_modes, h, w) complex; attrs pixel_width_m, pixel_height_m
    /object                   (layers, H, W) complex; attrs center_x_m, center_y_m,
                              pixel_width_m, pixel_height_m
    /object_layer_spacing_m   (layers - 1,)
    /probe_position_indexes   (M,) int — index of the diffraction pattern of each position
    /probe_position_x_m, /probe_position_y_m   (M,) probe-centre positions, metres
    /loss_epochs, /loss_values

Diffraction file (``save_diffraction_data`` / ``load_diffraction_data``)::

    /indexes                  (M,) int
    /patterns                 (M, N, N) photon COUNTS; attrs detector_pixel_width_m,
                              detector_pixel_height_m
    /bad_pixels               (N, N) bool, True = pixel not measured
    /probe_photon_counts      optional

Masks: ``/bad_pixels`` becomes ``PtychoData.mask`` (the pattern values are left as stored; an
all-False ``/bad_pixels``, which ptychodus writes when nothing is masked, is no mask). ptychodus
holds one (N, N) mask for every pattern, so a per-pattern mask is written as its union in
``/bad_pixels`` (every pixel unmeasured in some pattern is kept out of ptychodus's likelihood)
and exactly in the extra dataset ``/ptycho_nb_bad_pixels`` (M, N, N), which our reader prefers.
Detector flag values in ``/patterns`` (negative, NaN/inf, saturation markers, see
:mod:`ptycho_nb.data.detector`) are refused, or with ``mask_flagged=True`` set to 0 and masked.
Ground-truth fields (``probe_truth``, ``xcoords_truth``/``ycoords_truth``) are not written: a
ptychodus product has no place for them (use NPZ or our HDF5).

Half-pixel decision
-------------------
ptychodus uses the centred-pixel convention: pixel index ``i`` of an array of size ``W`` sits at
``x_m = center_x_m + (i - (W-1)/2) * pixel_width_m`` (``ObjectGeometry``), and a probe at
continuous object pixel ``cx`` covers object columns ``cx - (N-1)/2 ... cx + (N-1)/2``
(``ProbeGeometry.resolve_patch_bounds``: ``x_lower = cx - (N-1)/2``). Our integer position ``x``
covers columns ``x - N//2 ... x + N//2 - 1``. Equating the lower edges for even N::

    x_ours = cx_ptychodus + 1/2        x_m = center_x_m + (x_ours - W/2) * pixel_width_m

(likewise for y with the height). So our pixel centre ``N//2`` of a patch is half a pixel right of
/below the geometric centre ptychodus uses; the conversion here applies that shift both ways, and a
test checks that ptychodus's own ``resolve_patch_bounds`` selects exactly our patch.

Placeholders
------------
Facts a ptychodus product needs but ``PtychoData`` may lack are written as documented placeholders
and listed in the root attribute ``ptycho_nb_placeholders`` (JSON) and in ``comments``: object
pixel size :data:`PLACEHOLDER_PIXEL_SIZE_M`, photon energy :data:`PLACEHOLDER_PHOTON_ENERGY_EV`,
detector distance :data:`PLACEHOLDER_DETECTOR_DISTANCE_M`, detector pixel
:data:`PLACEHOLDER_DETECTOR_PIXEL_SIZE_M`. Reading our own file back drops placeholder values, so
they never masquerade as measured metadata. Our metadata and ``scan_index`` travel in the extra
root attribute ``ptycho_nb_metadata`` and dataset ``/ptycho_nb_scan_index`` (ptychodus ignores both).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ._common import build, existing_file, metadata_from_json, metadata_to_json
from .container import PtychoData
from .detector import SATURATION_MARKER, diffraction_from_file
from .hdf5 import open_h5, read_dataset

__all__ = [
    "PtychodusProduct", "PtychodusDiffraction",
    "write_ptychodus_product", "read_ptychodus_product",
    "write_ptychodus_diffraction", "read_ptychodus_diffraction", "read_ptychodus",
    "pixel_to_world", "world_to_pixel", "is_ptychodus_product", "is_ptychodus_diffraction",
    "PLACEHOLDER_PIXEL_SIZE_M", "PLACEHOLDER_PHOTON_ENERGY_EV",
    "PLACEHOLDER_DETECTOR_DISTANCE_M", "PLACEHOLDER_DETECTOR_PIXEL_SIZE_M",
]

#: Object pixel size (m) written when metadata has none: a placeholder, recorded as such.
PLACEHOLDER_PIXEL_SIZE_M = 1e-8
#: Photon energy (eV) placeholder; ptychodus refuses a product without one.
PLACEHOLDER_PHOTON_ENERGY_EV = 10000.0
#: Detector–object distance (m) placeholder; ptychodus refuses a product without one.
PLACEHOLDER_DETECTOR_DISTANCE_M = 1.0
#: Detector pixel size (m) placeholder for the diffraction file.
PLACEHOLDER_DETECTOR_PIXEL_SIZE_M = 75e-6

_PLACEHOLDERS_ATTR = "ptycho_nb_placeholders"
_META_ATTR = "ptycho_nb_metadata"
_SCAN_INDEX = "ptycho_nb_scan_index"
_PER_PATTERN_MASK = "ptycho_nb_bad_pixels"


# ---------------------------------------------------------------------------- coordinates
def world_to_pixel(pos_m: np.ndarray, center_m: float, pixel_m: float, size_px: int) -> np.ndarray:
    """ptychodus world position (m) → our patch-centre object pixel coordinate.

    ``(pos_m - center_m) / pixel_m + (size_px - 1) / 2`` is ptychodus's pixel coordinate; ours is
    half a pixel larger (module docstring), i.e. ``(pos_m - center_m) / pixel_m + size_px / 2``.
    """
    return (np.asarray(pos_m, dtype=np.float64) - center_m) / pixel_m + (size_px - 1) / 2 + 0.5


def pixel_to_world(pos_px: np.ndarray, center_m: float, pixel_m: float, size_px: int) -> np.ndarray:
    """Our patch-centre object pixel coordinate → ptychodus world position (m); inverse of above."""
    return (np.asarray(pos_px, dtype=np.float64) - 0.5 - (size_px - 1) / 2) * pixel_m + center_m


# ---------------------------------------------------------------------------- containers
@dataclasses.dataclass
class PtychodusProduct:
    """The parts of a ptychodus product ptycho_nb uses, positions already in our pixel convention.

    Attributes
    ----------
    object : (H, W) complex64 — layer 0 of the product's object.
    probe : (K, N, N) complex64 — OPR mode 0, all incoherent modes.
    xcoords, ycoords : (M,) float64 — patch-centre column/row in object pixels (our convention).
    indexes : (M,) int64 — diffraction-pattern index of each position.
    pixel_width_m, pixel_height_m : object pixel size (m); center_x_m, center_y_m : object centre (m).
    photon_energy_eV, detector_distance_m : None when absent or a ptycho_nb placeholder.
    name, comments : root attributes; placeholders : names of placeholder values in the file.
    metadata : our metadata JSON when the file was written by ptycho_nb, else {}.
    scan_index : (M,) int64 or None (ptycho_nb extra).
    """

    object: np.ndarray
    probe: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    indexes: np.ndarray
    pixel_width_m: float
    pixel_height_m: float
    center_x_m: float
    center_y_m: float
    photon_energy_eV: float | None = None  # noqa: N815 - the file's name
    detector_distance_m: float | None = None
    name: str = ""
    comments: str = ""
    placeholders: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    scan_index: np.ndarray | None = None


@dataclasses.dataclass
class PtychodusDiffraction:
    """A ptychodus diffraction file: ``patterns`` (M, N, N) photon counts as stored, ``indexes``
    (M,), ``bad_pixels`` (N, N) bool (True = not measured), detector pixel size (m; None when a
    ptycho_nb placeholder), and ``bad_pixels_per_pattern`` (M, N, N) bool when the file holds
    ptycho_nb's exact per-pattern mask (rows in the order of ``patterns``)."""

    indexes: np.ndarray
    patterns: np.ndarray
    bad_pixels: np.ndarray | None
    detector_pixel_width_m: float | None
    detector_pixel_height_m: float | None
    bad_pixels_per_pattern: np.ndarray | None = None


# ---------------------------------------------------------------------------- helpers
def _s(v: Any) -> Any:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v


def _attr(path: Path, node: h5py.HLObject, key: str, where: str, default: Any = ...) -> Any:
    if key in node.attrs:
        return _s(node.attrs[key])
    if default is ...:
        raise ValueError(f"{path}: missing attribute '{key}' on {where}; found {sorted(node.attrs.keys())}")
    return default


def _float_attr(path: Path, node: h5py.HLObject, key: str, where: str, default: Any = ...) -> Any:
    v = _attr(path, node, key, where, default)
    if v is None or v is default:
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: attribute '{key}' on {where} should be a number, got {v!r}") from None
    if not np.isfinite(f):
        raise ValueError(f"{path}: attribute '{key}' on {where} is {f}")
    return f


def _placeholders(path: Path, f: h5py.File) -> list[str]:
    if _PLACEHOLDERS_ATTR not in f.attrs:
        return []
    try:
        val = json.loads(_s(f.attrs[_PLACEHOLDERS_ATTR]))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: root attribute '{_PLACEHOLDERS_ATTR}' is not valid JSON ({exc})") from exc
    return [str(v) for v in val] if isinstance(val, list) else []


def _index_array(path: Path, key: str, arr: np.ndarray) -> np.ndarray:
    """Pattern indexes as int64; anything but integers (or integer-valued floats) refused by key.

    Casting would truncate 2.7 to 2 (pairing a position with the wrong pattern) and turn NaN or
    booleans into silent garbage.
    """
    a = np.asarray(arr).reshape(-1)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ValueError(f"{path}: dataset '/{key}' should hold integer pattern indexes, got dtype "
                     f"{a.dtype}" + (" with NaN/inf or fractional values" if a.dtype.kind == "f" else ""))


def _positive(name: str, v: float) -> float:
    v = float(v)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a positive finite size in metres, got {v}")
    return v


def sibling_diffraction_path(product_path: str | os.PathLike[str]) -> Path:
    """Where ptycho_nb puts (and looks for) the diffraction file of a product file.

    ``product.h5`` (ptychodus's standard workflow layout) → ``diffraction.h5`` beside it;
    any other ``NAME.h5`` → ``NAME_diffraction.h5``.
    """
    p = Path(product_path)
    if p.name == "product.h5":
        return p.with_name("diffraction.h5")
    return p.with_name(f"{p.stem}_diffraction{p.suffix or '.h5'}")


def is_ptychodus_product(f: h5py.File) -> bool:
    """True when the open file has ptychodus product datasets."""
    return "probe_position_x_m" in f and "probe_position_y_m" in f


def is_ptychodus_diffraction(f: h5py.File) -> bool:
    """True when the open file has ptychodus assembled-diffraction datasets."""
    return "patterns" in f and "indexes" in f


# ---------------------------------------------------------------------------- product
def read_ptychodus_product(path: str | os.PathLike[str]) -> PtychodusProduct:
    """Read a ptychodus product file; positions converted to our patch-centre pixels.

    Missing datasets/attributes, wrong shapes, NaN/inf → ValueError naming file and key.
    """
    p = existing_file(path)
    with open_h5(p) as f:
        if not is_ptychodus_product(f):
            raise ValueError(f"{p}: not a ptychodus product (no '/probe_position_x_m' and "
                             f"'/probe_position_y_m'); datasets found: {sorted(f.keys())}")
        obj = read_dataset(p, f, "object")
        probe = read_dataset(p, f, "probe")
        idx = read_dataset(p, f, "probe_position_indexes")
        xm = read_dataset(p, f, "probe_position_x_m")
        ym = read_dataset(p, f, "probe_position_y_m")
        where = "dataset '/object'"
        cx = _float_attr(p, f["object"], "center_x_m", where)
        cy = _float_attr(p, f["object"], "center_y_m", where)
        pw = _float_attr(p, f["object"], "pixel_width_m", where)
        ph = _float_attr(p, f["object"], "pixel_height_m", where)
        energy = _float_attr(p, f, "photon_energy_eV", "the root", None)
        if energy is None:
            energy = _float_attr(p, f, "probe_energy_eV", "the root", None)  # pre-rename spelling
        dist = _float_attr(p, f, "detector_object_distance_m", "the root", None)
        name = str(_attr(p, f, "name", "the root", ""))
        comments = str(_attr(p, f, "comments", "the root", ""))
        placeholders = _placeholders(p, f)
        meta = (metadata_from_json(p, f"{_META_ATTR} (root attribute)", f.attrs[_META_ATTR])
                if _META_ATTR in f.attrs else {})
        scan = read_dataset(p, f, _SCAN_INDEX, required=False)
    assert obj is not None and probe is not None and idx is not None and xm is not None and ym is not None

    for key, v in (("pixel_width_m", pw), ("pixel_height_m", ph)):
        if v <= 0:
            raise ValueError(f"{p}: attribute '{key}' on dataset '/object' must be > 0, got {v}")
    if not np.iscomplexobj(obj) or obj.ndim not in (2, 3) or obj.size == 0:
        raise ValueError(f"{p}: dataset '/object' should be complex (layers, H, W), got {obj.dtype} {obj.shape}")
    if obj.ndim == 3:
        if obj.shape[0] > 1:
            warnings.warn(f"{p}: '/object' has {obj.shape[0]} layers; using layer 0", UserWarning, stacklevel=2)
        obj = obj[0]
    if not np.iscomplexobj(probe) or probe.ndim not in (2, 3, 4):
        raise ValueError(f"{p}: dataset '/probe' should be complex (n_opr, n_modes, h, w), got "
                         f"{probe.dtype} {probe.shape}")
    probe = probe.reshape((1,) * (4 - probe.ndim) + probe.shape)[0]  # OPR mode 0, all modes
    m = xm.reshape(-1).shape[0]
    for key, arr in (("probe_position_y_m", ym), ("probe_position_indexes", idx)):
        if arr.reshape(-1).shape[0] != m:
            raise ValueError(f"{p}: dataset '/{key}' has {arr.size} entries, but "
                             f"'/probe_position_x_m' has {m}")
    for key, arr in (("probe_position_x_m", xm), ("probe_position_y_m", ym)):
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{p}: dataset '/{key}' should hold real positions in metres, got "
                             f"dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{p}: dataset '/{key}' contains NaN/inf")
    h, w = obj.shape
    if "pixel_size_m" in placeholders:
        meta.pop("pixel_size_m", None)
    return PtychodusProduct(
        object=obj.astype(np.complex64), probe=probe.astype(np.complex64),
        xcoords=world_to_pixel(xm.reshape(-1), cx, pw, w),
        ycoords=world_to_pixel(ym.reshape(-1), cy, ph, h),
        indexes=_index_array(p, "probe_position_indexes", idx), pixel_width_m=pw, pixel_height_m=ph,
        center_x_m=cx, center_y_m=cy,
        photon_energy_eV=None if "photon_energy_eV" in placeholders else energy,
        detector_distance_m=None if "detector_distance_m" in placeholders else dist,
        name=name, comments=comments, placeholders=placeholders, metadata=meta,
        scan_index=None if scan is None else _index_array(p, _SCAN_INDEX, scan))


def write_ptychodus_product(
    data: PtychoData | None,
    path: str | os.PathLike[str],
    *,
    object: np.ndarray | None = None,  # noqa: A002 - the file's name for it
    probe: np.ndarray | None = None,
    xcoords: np.ndarray | None = None,
    ycoords: np.ndarray | None = None,
    indexes: np.ndarray | None = None,
    pixel_size_m: float | None = None,
    center_x_m: float | None = None,
    center_y_m: float | None = None,
    photon_energy_eV: float | None = None,  # noqa: N803
    detector_distance_m: float | None = None,
    name: str = "ptycho_nb",
    loss_values: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a ptychodus product file, atomically; returns the path.

    Parameters
    ----------
    data : PtychoData or None
        Source of probe, positions, object, scan_index and metadata; any keyword part given
        explicitly (e.g. a reconstructed ``object`` and its ``probe``) replaces data's.
    object : (H, W) complex, optional
        Object in object pixels (required when ``data`` has none).
    probe : (N, N) or (K, N, N) complex, optional
    xcoords, ycoords : (M,) float, optional
        Patch-centre column/row in our pixel convention (converted per the module docstring).
    indexes : (M,) int, optional
        Diffraction-pattern index of each position; default ``arange(M)``.
    pixel_size_m : float, optional
        Object pixel size (m); default ``metadata['pixel_size_m']`` or the placeholder.
    center_x_m, center_y_m : float, optional
        World position of the object centre (m); default from metadata or 0.
    photon_energy_eV, detector_distance_m : float, optional
        Default from metadata or the placeholders.
    name : str
        Product name attribute.
    loss_values : (E,) float, optional
        Training loss per epoch.
    overwrite : bool
        Replace an existing file (else FileExistsError).
    """
    meta: dict[str, Any] = dict(data.metadata) if data is not None else {}
    try:
        record = data.record if data is not None else None
    except ValueError:  # an informational attribute must not stop the product being written
        record = None
    if record is not None:
        photons = record.photons_per_pattern
    else:  # a measured scan's own note of its dose, when it carries one; ptychodus: 0 = unknown
        noted = meta.get("photons_per_pattern")
        photons = float(noted) if isinstance(noted, (int, float)) and not isinstance(noted, bool) \
            and math.isfinite(noted) and noted > 0 else 0.0
    obj = object if object is not None else (data.object if data is not None else None)
    prb = probe if probe is not None else (data.probe if data is not None else None)
    xc = xcoords if xcoords is not None else (data.xcoords if data is not None else None)
    yc = ycoords if ycoords is not None else (data.ycoords if data is not None else None)
    scan = data.scan_index if data is not None else None
    for field, v in (("object", obj), ("probe", prb), ("xcoords", xc), ("ycoords", yc)):
        if v is None:
            raise ValueError(f"write_ptychodus_product: {field} is required (a ptychodus product "
                             "always holds an object, a probe and positions); pass "
                             f"{field}= or a PtychoData that has it")
    obj = np.asarray(obj)
    prb = np.asarray(prb)
    if obj.ndim != 2 or not np.all(np.isfinite(obj)):
        raise ValueError(f"write_ptychodus_product: object must be a finite 2-D (H, W) array, got {obj.shape}")
    if prb.ndim not in (2, 3) or prb.shape[-1] != prb.shape[-2] or not np.all(np.isfinite(prb)):
        raise ValueError(f"write_ptychodus_product: probe must be a finite (N, N) or (K, N, N) array, got {prb.shape}")
    xc = np.asarray(xc, dtype=np.float64).reshape(-1)
    yc = np.asarray(yc, dtype=np.float64).reshape(-1)
    if xc.shape != yc.shape or not (np.all(np.isfinite(xc)) and np.all(np.isfinite(yc))):
        raise ValueError(f"write_ptychodus_product: xcoords {xc.shape} and ycoords {yc.shape} must be "
                         "finite and of equal length")
    m = xc.shape[0]
    idx = np.arange(m, dtype=np.int64) if indexes is None else np.asarray(indexes, dtype=np.int64).reshape(-1)
    if idx.shape[0] != m:
        raise ValueError(f"write_ptychodus_product: indexes has {idx.shape[0]} entries for {m} positions")

    placeholders: list[str] = []

    def pick(value: float | None, key: str, placeholder: float) -> float:
        if value is not None:
            return float(value)
        if meta.get(key) is not None:
            return float(meta[key])
        placeholders.append(key)
        return placeholder

    px = _positive("pixel_size_m", pick(pixel_size_m, "pixel_size_m", PLACEHOLDER_PIXEL_SIZE_M))
    energy = _positive("photon_energy_eV", pick(photon_energy_eV, "photon_energy_eV", PLACEHOLDER_PHOTON_ENERGY_EV))
    dist = _positive("detector_distance_m",
                     pick(detector_distance_m, "detector_distance_m", PLACEHOLDER_DETECTOR_DISTANCE_M))
    cx = float(center_x_m if center_x_m is not None else meta.get("object_center_x_m", 0.0))
    cy = float(center_y_m if center_y_m is not None else meta.get("object_center_y_m", 0.0))
    h, w = obj.shape
    comments = ("written by ptycho_nb; positions are probe centres "
                "(ptycho_nb pixel = ptychodus pixel + 0.5)")
    if placeholders:
        comments += "; PLACEHOLDER values (not measured): " + ", ".join(placeholders)
    losses = np.zeros(0) if loss_values is None else np.asarray(loss_values, dtype=np.float64).reshape(-1)

    with atomic_path(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["name"] = name
            f.attrs["comments"] = comments
            f.attrs["detector_object_distance_m"] = dist
            f.attrs["photon_energy_eV"] = energy
            f.attrs["probe_photon_count"] = photons
            f.attrs["exposure_time_s"] = 0.0
            f.attrs["mass_attenuation_m2_per_kg"] = 0.0
            f.attrs["tomography_angle_deg"] = 0.0
            f.attrs["focus_object_distance_m"] = 0.0
            f.attrs["tilt_angle_deg"] = 0.0
            f.attrs["far_field"] = True
            f.attrs[_PLACEHOLDERS_ATTR] = json.dumps(placeholders)
            f.attrs[_META_ATTR] = metadata_to_json(meta)
            f.create_dataset("probe_position_indexes", data=idx)
            f.create_dataset("probe_position_x_m", data=pixel_to_world(xc, cx, px, w))
            f.create_dataset("probe_position_y_m", data=pixel_to_world(yc, cy, px, h))
            pr = f.create_dataset("probe", data=prb.astype(np.complex64).reshape((1, -1) + prb.shape[-2:]))
            pr.attrs["pixel_width_m"] = px
            pr.attrs["pixel_height_m"] = px
            o = f.create_dataset("object", data=obj.astype(np.complex64)[None])
            o.attrs["center_x_m"] = cx
            o.attrs["center_y_m"] = cy
            o.attrs["pixel_width_m"] = px
            o.attrs["pixel_height_m"] = px
            f.create_dataset("object_layer_spacing_m", data=np.zeros(0, dtype=np.float64))
            f.create_dataset("loss_epochs", data=np.arange(losses.shape[0], dtype=np.int64))
            f.create_dataset("loss_values", data=losses)
            if scan is not None:
                f.create_dataset(_SCAN_INDEX, data=scan.astype(np.int64))
    return Path(path)


# ---------------------------------------------------------------------------- diffraction
def read_ptychodus_diffraction(path: str | os.PathLike[str]) -> PtychodusDiffraction:
    """Read a ptychodus assembled-diffraction file (``/patterns`` counts, ``/indexes``)."""
    p = existing_file(path)
    with open_h5(p) as f:
        if not is_ptychodus_diffraction(f):
            raise ValueError(f"{p}: not a ptychodus diffraction file (needs '/patterns' and "
                             f"'/indexes'); datasets found: {sorted(f.keys())}")
        patterns = read_dataset(p, f, "patterns")
        indexes = read_dataset(p, f, "indexes")
        bad = read_dataset(p, f, "bad_pixels", required=False)
        per_pattern = read_dataset(p, f, _PER_PATTERN_MASK, required=False)
        where = "dataset '/patterns'"
        dpw = _float_attr(p, f["patterns"], "detector_pixel_width_m", where, None)
        dph = _float_attr(p, f["patterns"], "detector_pixel_height_m", where, None)
        if "detector_pixel_size_m" in _placeholders(p, f):
            dpw = dph = None
    assert patterns is not None and indexes is not None
    if patterns.ndim != 3 or patterns.shape[1] != patterns.shape[2]:
        raise ValueError(f"{p}: dataset '/patterns' should be (M, N, N), got {patterns.shape}")
    indexes = indexes.reshape(-1)
    if indexes.shape[0] != patterns.shape[0]:
        raise ValueError(f"{p}: dataset '/indexes' has {indexes.shape[0]} entries for "
                         f"{patterns.shape[0]} patterns")
    if bad is not None and bad.shape != patterns.shape[1:]:
        raise ValueError(f"{p}: dataset '/bad_pixels' has shape {bad.shape}, expected {patterns.shape[1:]}")
    if patterns.dtype.kind not in "iuf":
        raise ValueError(f"{p}: dataset '/patterns' should hold real photon counts, got dtype "
                         f"{patterns.dtype}")
    if per_pattern is not None and per_pattern.shape != patterns.shape:
        raise ValueError(f"{p}: dataset '/{_PER_PATTERN_MASK}' has shape {per_pattern.shape}, "
                         f"expected {patterns.shape} (one mask per pattern)")
    for key, m in (("bad_pixels", bad), (_PER_PATTERN_MASK, per_pattern)):
        if m is not None and not (m.dtype.kind == "b" or (m.dtype.kind in "iu"
                                                          and np.all((m == 0) | (m == 1)))):
            raise ValueError(f"{p}: dataset '/{key}' should hold booleans (or 0/1), got dtype "
                             f"{m.dtype}")
    return PtychodusDiffraction(indexes=_index_array(p, "indexes", indexes), patterns=patterns,
                                bad_pixels=None if bad is None else bad.astype(bool),
                                detector_pixel_width_m=dpw, detector_pixel_height_m=dph,
                                bad_pixels_per_pattern=(None if per_pattern is None
                                                        else per_pattern.astype(bool)))


def write_ptychodus_diffraction(data: PtychoData, path: str | os.PathLike[str], *,
                                detector_pixel_size_m: float | None = None,
                                overwrite: bool = False) -> Path:
    """Write ``data``'s diffraction as a ptychodus diffraction file of COUNTS, atomically.

    Counts are amplitude². When they are integers to float32 precision (Poisson data) they are
    stored as uint32 (below its 2³²−1 flag value), else as float32 (noise-free simulations), so
    nothing is rounded away. ``data.mask`` goes to ``/bad_pixels`` (module docstring: a
    per-pattern mask as its union, and exactly in ``/ptycho_nb_bad_pixels``).
    """
    if not isinstance(data, PtychoData):
        raise TypeError(f"write_ptychodus_diffraction: expected PtychoData, got {type(data).__name__}")
    counts = np.square(data.diffraction.astype(np.float64))
    rounded = np.round(counts)
    # float32 amplitudes carry ~6e-8 relative error, so squared integers come back within ~1e-7.
    if np.all(np.abs(counts - rounded) <= np.maximum(1e-3, 3e-7 * counts)) and rounded.max() < SATURATION_MARKER:
        patterns: np.ndarray = rounded.astype(np.uint32)
    else:
        patterns = counts.astype(np.float32)
    placeholders: list[str] = []
    size = detector_pixel_size_m if detector_pixel_size_m is not None else data.metadata.get("detector_pixel_size_m")
    if size is None:
        size = PLACEHOLDER_DETECTOR_PIXEL_SIZE_M
        placeholders.append("detector_pixel_size_m")
    size = _positive("detector_pixel_size_m", size)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs[_PLACEHOLDERS_ATTR] = json.dumps(placeholders)
            f.create_dataset("indexes", data=np.arange(data.n_patterns, dtype=np.int64))
            d = f.create_dataset("patterns", data=patterns, compression="gzip", compression_opts=4)
            d.attrs["detector_pixel_width_m"] = size
            d.attrs["detector_pixel_height_m"] = size
            d.attrs["units"] = "photons"
            mask = data.mask
            if mask is None:
                shared = np.zeros(patterns.shape[1:], dtype=bool)  # ptychodus always has one
            elif mask.ndim == 2:
                shared = mask
            else:  # ptychodus holds one mask for all: keep it off every pixel unmeasured anywhere
                shared = mask.any(axis=0)
                f.create_dataset(_PER_PATTERN_MASK, data=mask, compression="gzip", compression_opts=4)
            f.create_dataset("bad_pixels", data=shared)
    return Path(path)


def read_ptychodus(product_path: str | os.PathLike[str],
                   diffraction_path: str | os.PathLike[str], *, mask_flagged: bool = False) -> PtychoData:
    """Combine a ptychodus product (probe, object, positions) and diffraction file into PtychoData.

    Patterns are matched to positions through ``/probe_position_indexes`` ↔ ``/indexes``; counts
    become amplitudes (sqrt). ``/bad_pixels`` becomes ``PtychoData.mask`` (values left as stored);
    detector flag values in ``/patterns`` are refused, or with ``mask_flagged=True`` set to 0 and
    masked.
    """
    prod = read_ptychodus_product(product_path)
    dp = existing_file(diffraction_path)
    diff = read_ptychodus_diffraction(dp)
    pp = Path(product_path)
    lookup: dict[int, int] = {}
    for row, i in enumerate(diff.indexes.tolist()):
        if i in lookup:
            raise ValueError(f"{dp}: dataset '/indexes' repeats pattern index {i}")
        lookup[i] = row
    missing = [int(i) for i in prod.indexes if int(i) not in lookup]
    if missing:
        raise ValueError(f"{pp}: '/probe_position_indexes' names {len(missing)} pattern(s) absent from "
                         f"'/indexes' of {dp} (first: {missing[0]})")
    rows = np.array([lookup[int(i)] for i in prod.indexes], dtype=np.int64)
    amp, flags = diffraction_from_file(dp, "patterns", diff.patterns[rows], kind="counts",
                                       mask_flagged=mask_flagged)
    mask = diff.bad_pixels if diff.bad_pixels_per_pattern is None else diff.bad_pixels_per_pattern[rows]
    meta = dict(prod.metadata)
    n = amp.shape[-1]
    if prod.probe.shape[-2:] != (n, n):
        raise ValueError(f"{pp}: '/probe' is {prod.probe.shape[-2:]} but the patterns of {dp} are {n}x{n}")
    if "pixel_size_m" not in prod.placeholders:
        if np.isclose(prod.pixel_width_m, prod.pixel_height_m, rtol=1e-9, atol=0):
            meta["pixel_size_m"] = prod.pixel_width_m
        else:
            meta["pixel_width_m"], meta["pixel_height_m"] = prod.pixel_width_m, prod.pixel_height_m
    if prod.photon_energy_eV is not None:
        meta["photon_energy_eV"] = prod.photon_energy_eV
    if prod.detector_distance_m is not None:
        meta["detector_distance_m"] = prod.detector_distance_m
    if diff.detector_pixel_width_m is not None:
        meta["detector_pixel_size_m"] = diff.detector_pixel_width_m
    if prod.center_x_m != 0.0 or prod.center_y_m != 0.0 or "object_center_x_m" in meta:
        meta["object_center_x_m"], meta["object_center_y_m"] = prod.center_x_m, prod.center_y_m
    meta["diffraction"] = "amplitude"
    meta["source_diffraction_kind"] = "counts"
    meta.setdefault("source", {"format": "ptychodus", "product": str(pp), "diffraction": str(dp),
                               "name": prod.name})
    return build(pp, {"xcoords": "probe_position_x_m", "ycoords": "probe_position_y_m",
                      "probe": "probe", "object": "object", "diffraction": f"{dp}:/patterns",
                      "mask": f"{dp}:/bad_pixels"},
                 flags=flags, diffraction=amp, xcoords=prod.xcoords, ycoords=prod.ycoords,
                 probe=prod.probe, object=prod.object, scan_index=prod.scan_index, metadata=meta,
                 mask=mask)
