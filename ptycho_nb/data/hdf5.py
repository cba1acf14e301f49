"""ptycho_nb's own HDF5 layout (gzip-compressed datasets, units as attributes).

Layout (``format_version`` 1, or 2 for a file with a mask)::

    /                 attrs: format = "ptycho_nb", format_version, metadata = JSON string
    /diffraction      (M, N, N) float32, attrs units = "sqrt(photons)"   (amplitudes)
    /xcoords          (M,) float64, attrs units = "pixel" (patch-centre column)
    /ycoords          (M,) float64, attrs units = "pixel" (patch-centre row)
    /probe            (N, N) or (K, N, N) complex64, attrs units = "sqrt(photons)"
    /object           optional (H, W) complex64, attrs units = "transmission"
    /scan_index       optional (M,) int64
    /mask             optional (N, N) or (M, N, N) bool, True = pixel not measured   (version 2)
    /probe_truth      optional (K, N, N) complex64, attrs units = "sqrt(photons)"  (ground truth)
    /xcoords_truth    optional (M,) float64, attrs units = "pixel"                  (ground truth)
    /ycoords_truth    optional (M,) float64, attrs units = "pixel"                  (ground truth)

A file with a mask declares version 2: a version-1 reader ignores datasets it does not know, and
would take the unmeasured pixels for measured zeros; it refuses version 2 instead. The ground
truth is safe to ignore, so it leaves the version alone.

A reader seeing ``/diffraction`` with ``units = "photons"`` square-roots it (the units say so);
any other unit is refused. Detector flag values in it are refused, or with ``mask_flagged=True``
set to 0 and masked (:mod:`ptycho_nb.data.detector`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ._common import build, existing_file, metadata_from_json, metadata_to_json
from .container import PtychoData
from .detector import diffraction_from_file

__all__ = ["read_hdf5", "write_hdf5", "FORMAT_NAME", "FORMAT_VERSION", "is_ptycho_nb_hdf5",
           "MAX_DATASET_BYTES"]

FORMAT_NAME = "ptycho_nb"
#: The newest layout this module reads and writes (2: ``/mask``).
FORMAT_VERSION = 2
#: Written for files without a mask, which every reader of version 1 reads correctly.
_PLAIN_VERSION = 1
_TRUTH = (("probe_truth", "sqrt(photons)"), ("xcoords_truth", "pixel"), ("ycoords_truth", "pixel"))
_COMPRESS: dict[str, Any] = {"compression": "gzip", "compression_opts": 4}


def _attr_str(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


@contextlib.contextmanager
def open_h5(path: Path) -> Iterator[h5py.File]:
    """Open read-only; a non-HDF5, truncated or corrupt file → ValueError naming it.

    Errors h5py raises while the file is read (corrupt object headers or attributes surface as
    OSError/RuntimeError/KeyError deep inside) also become a ValueError naming the file.
    """
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a readable HDF5 file; truncated or corrupt? ({exc})") from exc
    with f:
        try:
            yield f
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: HDF5 data or metadata could not be read; corrupt? "
                             f"({type(exc).__name__}: {exc})") from exc


#: Largest dataset read into memory (bytes, as declared by its shape and dtype): a corrupt or
#: hostile file declaring terabytes is refused before any allocation.
MAX_DATASET_BYTES = 16 * 2**30


def read_dataset(path: Path, f: h5py.File, key: str, required: bool = True) -> np.ndarray | None:
    """Read dataset ``key``; ValueError naming file and key when it is missing (and required),
    a soft/external link, not a dataset, of a non-numeric dtype (string, compound, vlen), larger
    than :data:`MAX_DATASET_BYTES`, or unreadable."""
    try:
        link = f.get(key, getlink=True)
    except (OSError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}: '/{key}' could not be looked up; corrupt HDF5 metadata? "
                         f"({exc})") from exc
    if link is None:
        if required:
            raise ValueError(f"{path}: missing dataset '/{key}'; found {sorted(f.keys())}")
        return None
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        # An external link would read another file the user never named; a soft link may dangle.
        raise ValueError(f"{path}: '/{key}' is an HDF5 {type(link).__name__}; expected the "
                         "dataset itself stored in this file")
    try:
        item = f[key]
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: '/{key}' could not be opened; corrupt HDF5 metadata? ({exc})") from exc
    if not isinstance(item, h5py.Dataset):
        raise ValueError(f"{path}: '/{key}' is a {type(item).__name__}, expected a dataset")
    try:
        dtype, shape = item.dtype, item.shape
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: dataset '/{key}' has unreadable type/shape metadata; "
                         f"corrupt? ({exc})") from exc
    if dtype.kind not in "biufc" or dtype.fields is not None or h5py.check_vlen_dtype(dtype):
        kind = ("compound" if dtype.fields is not None else "variable-length"
                if h5py.check_vlen_dtype(dtype) else "string" if dtype.kind in "SUO" else str(dtype))
        raise ValueError(f"{path}: dataset '/{key}' has a {kind} dtype ({dtype}); expected numbers")
    if shape is None:
        raise ValueError(f"{path}: dataset '/{key}' is empty (HDF5 null dataspace)")
    nbytes = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    if nbytes > MAX_DATASET_BYTES:
        raise ValueError(f"{path}: dataset '/{key}' declares shape {shape} of {dtype} "
                         f"({nbytes / 2**30:.3g} GiB), more than the {MAX_DATASET_BYTES / 2**30:g} "
                         "GiB ptycho_nb reads into memory")
    try:
        return np.asarray(item[()])
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: dataset '/{key}' could not be read; truncated or corrupt? ({exc})") from exc


def is_ptycho_nb_hdf5(f: h5py.File) -> bool:
    """True when the open file declares our format in its root attributes."""
    return _attr_str(f.attrs.get("format")) == FORMAT_NAME


def read_hdf5(path: str | os.PathLike[str], *, mask_flagged: bool = False) -> PtychoData:
    """Read a file written by :func:`write_hdf5` into a :class:`PtychoData`.

    ``mask_flagged=True`` sets detector flag values in ``/diffraction`` to 0 and masks them,
    instead of refusing the file.
    """
    p = existing_file(path)
    with open_h5(p) as f:
        if not is_ptycho_nb_hdf5(f):
            raise ValueError(f"{p}: root attribute 'format' is {_attr_str(f.attrs.get('format'))!r}, "
                             f"expected {FORMAT_NAME!r}; datasets found: {sorted(f.keys())}")
        version = f.attrs.get("format_version")
        if isinstance(version, np.ndarray) and version.shape == ():
            version = version[()]
        # an integer in 1..FORMAT_VERSION: int(True), int(0.7) or a negative would pass int()
        if (isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer))
                or not 1 <= int(version) <= FORMAT_VERSION):
            raise ValueError(f"{p}: root attribute 'format_version' is {version!r}; expected an "
                             f"integer from 1 to {FORMAT_VERSION} (this ptycho_nb reads versions "
                             f"up to {FORMAT_VERSION})")
        meta: dict[str, Any] = {}
        if "metadata" in f.attrs:
            meta = metadata_from_json(p, "metadata (root attribute)", f.attrs["metadata"])
        diff = read_dataset(p, f, "diffraction")
        units = _attr_str(f["diffraction"].attrs.get("units", "sqrt(photons)"))
        xc = read_dataset(p, f, "xcoords")
        yc = read_dataset(p, f, "ycoords")
        optional = {k: read_dataset(p, f, k, required=False)
                    for k in ("object", "scan_index", "mask", *(k for k, _ in _TRUTH))}
        for key in ("xcoords", "ycoords", "xcoords_truth", "ycoords_truth"):
            u = _attr_str(f[key].attrs.get("units", "pixel")) if key in f else "pixel"
            if u != "pixel":
                raise ValueError(f"{p}: dataset '/{key}' has units {u!r}, expected 'pixel'")
        probe = read_dataset(p, f, "probe")
    assert diff is not None
    if units not in ("photons", "sqrt(photons)"):
        raise ValueError(f"{p}: dataset '/diffraction' has units {units!r}; expected "
                         "'sqrt(photons)' (amplitudes) or 'photons' (counts)")
    diff, flags = diffraction_from_file(p, "diffraction", diff, mask_flagged=mask_flagged,
                                        kind="counts" if units == "photons" else "amplitude")
    meta["diffraction"] = "amplitude"
    return build(p, {k: k for k in ("diffraction", "xcoords", "ycoords", "probe", *optional)},
                 flags=flags, diffraction=diff, xcoords=xc, ycoords=yc, probe=probe, metadata=meta,
                 **optional)


def write_hdf5(data: PtychoData, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``data`` in the ptycho_nb HDF5 layout, atomically; returns the path.

    FileExistsError when the file exists and ``overwrite`` is False.
    """
    if not isinstance(data, PtychoData):
        raise TypeError(f"write_hdf5: expected PtychoData, got {type(data).__name__}")
    meta = dict(data.metadata)
    meta["diffraction"] = "amplitude"
    with atomic_path(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION if data.mask is not None else _PLAIN_VERSION
            f.attrs["metadata"] = metadata_to_json(meta)
            d = f.create_dataset("diffraction", data=data.diffraction.astype(np.float32), **_COMPRESS)
            d.attrs["units"] = "sqrt(photons)"
            d.attrs["description"] = "far-field amplitudes, DC at (N//2, N//2)"
            for key, what in (("xcoords", "column"), ("ycoords", "row")):
                c = f.create_dataset(key, data=getattr(data, key).astype(np.float64), **_COMPRESS)
                c.attrs["units"] = "pixel"
                c.attrs["description"] = f"patch-centre {what} in object pixels"
            pr = f.create_dataset("probe", data=data.probe.astype(np.complex64), **_COMPRESS)
            pr.attrs["units"] = "sqrt(photons)"
            if data.object is not None:
                o = f.create_dataset("object", data=data.object.astype(np.complex64), **_COMPRESS)
                o.attrs["units"] = "transmission"
            if data.scan_index is not None:
                f.create_dataset("scan_index", data=data.scan_index.astype(np.int64), **_COMPRESS)
            if data.mask is not None:
                mk = f.create_dataset("mask", data=data.mask, **_COMPRESS)
                mk.attrs["description"] = ("True = detector pixel not measured; (N, N) shared by "
                                           "every pattern or (M, N, N) per pattern")
            for key, units in _TRUTH:
                if getattr(data, key) is not None:
                    t = f.create_dataset(key, data=getattr(data, key), **_COMPRESS)
                    t.attrs["units"] = units
                    t.attrs["description"] = "ground truth of a simulation, for scoring only"
    return Path(path)
