"""``load`` / ``save``: one entry point for every supported file format.

Formats: ``'npz'`` (PtychoPINN contract), ``'hdf5'`` (ptycho_nb's layout), ``'ptychodus'``
(product file + diffraction file). ``load`` decides by content (file signature, then HDF5
contents), so a misnamed file still loads; ``save`` decides by the ``format`` keyword or the suffix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_files
from ._common import existing_file, sniff
from .container import PtychoData
from .hdf5 import is_ptycho_nb_hdf5, open_h5, read_hdf5, write_hdf5
from .npz import read_npz, write_npz
from .ptychodus import (is_ptychodus_diffraction, is_ptychodus_product, read_ptychodus,
                        sibling_diffraction_path, write_ptychodus_diffraction, write_ptychodus_product)

__all__ = ["load", "save", "FORMATS"]

FORMATS = ("npz", "hdf5", "ptychodus")
_SUFFIX = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5"}


def _no_kw(path: Path, fmt: str, kw: dict[str, Any]) -> None:
    if kw:
        raise TypeError(f"load({path}): the {fmt} reader takes no keyword(s) {sorted(kw)}")


def load(path: str | os.PathLike[str], *, mask_flagged: bool = False, **kw: Any) -> PtychoData:
    """Load a scan from ``path`` as :class:`PtychoData`.

    Parameters
    ----------
    path : str or PathLike
        ``.npz`` (PtychoPINN contract), or HDF5: ptycho_nb's layout (root attribute
        ``format='ptycho_nb'``) or a ptychodus product file (has ``/probe_position_x_m``).
    mask_flagged : bool
        Detector flag values in the diffraction (negative, NaN/inf, saturation markers: see
        :mod:`ptycho_nb.data.detector`) are refused by default; True sets them to 0 and marks
        them in ``PtychoData.mask``. The file's own mask is read either way.
    **kw
        ``diffraction_kind=`` for NPZ (see :func:`read_npz`); ``diffraction_path=`` for a
        ptychodus product (default: the sibling file, ``diffraction.h5`` beside ``product.h5``
        or ``NAME_diffraction.h5`` beside ``NAME.h5``).

    Raises
    ------
    FileNotFoundError
        ``path`` (or a needed diffraction file) does not exist.
    ValueError
        Unknown, truncated or corrupt file, naming it and what was found.
    """
    if not isinstance(mask_flagged, bool):
        raise TypeError(f"mask_flagged: expected True or False, got {mask_flagged!r}")
    p = existing_file(path)
    kind = sniff(p)
    if kind == "zip":
        return read_npz(p, mask_flagged=mask_flagged, **kw)
    if kind != "hdf5":
        if p.suffix.lower() == ".npz":
            return read_npz(p, mask_flagged=mask_flagged, **kw)  # gives the precise NPZ error
        raise ValueError(f"{p}: neither an NPZ (zip) nor an HDF5 file (suffix {p.suffix!r}); "
                         f"supported formats: {', '.join(FORMATS)}")
    with open_h5(p) as f:
        try:
            ours = is_ptycho_nb_hdf5(f)
            product = is_ptychodus_product(f)
            diffraction = is_ptychodus_diffraction(f)
            keys = sorted(f.keys())
            attrs = sorted(f.attrs.keys())
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"{p}: HDF5 file whose metadata cannot be read; corrupt? ({exc})") from exc
    if ours:
        _no_kw(p, "ptycho_nb HDF5", kw)
        return read_hdf5(p, mask_flagged=mask_flagged)
    if product:
        dpath = kw.pop("diffraction_path", None)
        _no_kw(p, "ptychodus", kw)
        if dpath is None:
            dpath = sibling_diffraction_path(p)
            if not dpath.exists():
                raise ValueError(f"{p}: is a ptychodus product file; its diffraction patterns live in a "
                                 f"separate file. Pass diffraction_path=..., or put it at {dpath}")
        return read_ptychodus(p, dpath, mask_flagged=mask_flagged)
    if diffraction:
        raise ValueError(f"{p}: is a ptychodus diffraction file (patterns only, no probe/positions); "
                         "load its product file with load(product_path, diffraction_path=this file)")
    raise ValueError(f"{p}: HDF5 file of unknown layout: datasets {keys}, root attributes {attrs}; "
                     "expected ptycho_nb (root attribute format='ptycho_nb') or a ptychodus product "
                     "('/probe_position_x_m')")


def save(data: PtychoData, path: str | os.PathLike[str], *, format: str | None = None,  # noqa: A002
         overwrite: bool = False, **kw: Any) -> Path:
    """Save ``data`` to ``path``, atomically; returns the path.

    Parameters
    ----------
    format : {'npz', 'hdf5', 'ptychodus', None}
        None → from the suffix (``.npz`` → npz; ``.h5``/``.hdf5`` → ptycho_nb HDF5).
        ``'ptychodus'`` writes the product at ``path`` and the diffraction (counts) beside it
        (see :func:`~ptycho_nb.data.ptychodus.sibling_diffraction_path`); needs ``data.object``.
    overwrite : bool
        Replace existing file(s); otherwise FileExistsError naming the path.
    **kw
        Passed to :func:`write_ptychodus_product` (e.g. ``pixel_size_m``) for 'ptychodus'.
    """
    p = Path(path)
    fmt = format if format is not None else _SUFFIX.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{p}: cannot tell the format from suffix {p.suffix!r}; use .npz, .h5 or "
                         f"pass format= one of {FORMATS}")
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if fmt != "ptychodus" and kw:
        raise TypeError(f"save(format={fmt!r}) takes no keyword(s) {sorted(kw)}")
    if fmt == "npz":
        return write_npz(data, p, overwrite=overwrite)
    if fmt == "hdf5":
        return write_hdf5(data, p, overwrite=overwrite)
    dpath = sibling_diffraction_path(p)
    # The pair appears together or not at all: a failing diffraction file leaves no orphan product.
    with atomic_files({"product": p, "diffraction": dpath}, overwrite=overwrite) as tmp:
        write_ptychodus_product(data, tmp["product"], **kw)
        write_ptychodus_diffraction(data, tmp["diffraction"])
    return p
