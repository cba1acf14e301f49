"""PtychoPINN NPZ contract: reader and writer.

Keys (upstream-compatible):

==============  =========================================================================
``diffraction`` (M, N, N) diffraction; upstream files may call it ``diff3d`` (read as well)
``probeGuess``  (N, N) or (K, N, N) complex probe
``objectGuess`` optional (H, W) complex object (ground truth for simulations)
``xcoords``     (M,) patch-centre column, object pixels
``ycoords``     (M,) patch-centre row, object pixels
``scan_index``  optional (M,) int
``bad_pixels``  optional (N, N) bool, True = pixel not measured (upstream's key) → ``mask``;
                an (M, N, N) array is read as a per-pattern mask
``bad_pixels_per_pattern`` optional (M, N, N) bool (ours): a per-pattern mask, read in
                preference to ``bad_pixels`` (which then holds their union, for upstream)
``probe_truth`` optional (K, N, N) complex: the true probe modes (simulations; scoring only)
``xcoords_truth``, ``ycoords_truth`` optional (M,): the true positions (simulations; scoring only)
``metadata_json`` optional JSON object (ours); ``diffraction`` in it says 'amplitude'/'counts'
==============  =========================================================================

Amplitude or counts is never guessed silently. ``read_npz(path, diffraction_kind=None)``:

- ``'amplitude'`` / ``'counts'``: the caller says what the file holds (counts are square-rooted).
- ``None``: use what the file's metadata records. If it records nothing, the PtychoPINN contract
  (amplitudes) is assumed, **except** when every value is integer-valued and the maximum exceeds
  :data:`COUNTS_LIKE_MAX` -- such data are almost surely raw photon counts, and reading them as
  amplitudes would square the photon scale -- then a ``ValueError`` asks the caller to pass
  ``diffraction_kind`` explicitly.

Detector flag values in the diffraction (negative, NaN/inf, and in counts the saturation markers
of :mod:`ptycho_nb.data.detector`) are refused, naming the key and how many; with
``mask_flagged=True`` they are set to 0 and masked.

Files are opened with ``allow_pickle=False``: object arrays are refused, never unpickled. Other
upstream extras (``xcoords_start``, ``ycoords_start``, ...) are ignored. Coordinates are
taken as-is in our patch-centre convention (note: ptychodus's own NPZ export writes its
``(N-1)/2``-centred pixel coordinates, half a pixel below ours; see ``ptycho_nb.data.ptychodus``).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..atomic import atomic_path
from ._common import build, existing_file, metadata_from_json, metadata_to_json
from .container import PtychoData
from .detector import diffraction_from_file

__all__ = ["read_npz", "write_npz", "COUNTS_LIKE_MAX", "METADATA_KEY", "MAX_MEMBER_BYTES",
           "MASK_KEY", "PER_PATTERN_MASK_KEY"]

METADATA_KEY = "metadata_json"
#: Upstream PtychoPINN's detector mask, (N, N) bool, True = not measured.
MASK_KEY = "bad_pixels"
#: Ours: a per-pattern (M, N, N) mask (``MASK_KEY`` then holds its union, for upstream readers).
PER_PATTERN_MASK_KEY = "bad_pixels_per_pattern"
#: Optional container fields stored under their own names: ground truth for scoring.
_TRUTH_KEYS = ("probe_truth", "xcoords_truth", "ycoords_truth")
#: An unlabelled file whose values are all integers with a maximum above this is treated as
#: ambiguous (probably counts) and refused until ``diffraction_kind`` is given.
COUNTS_LIKE_MAX = 50.0

DiffractionKind = Literal["amplitude", "counts"]
_KINDS = ("amplitude", "counts")


#: Largest array read from an NPZ member (bytes, as its header declares): a zip bomb or a
#: header declaring terabytes is refused before numpy allocates it.
MAX_MEMBER_BYTES = 16 * 2**30


def _check_member(path: Path, npz: Any, key: str) -> None:
    """Refuse a member whose declared (header) or uncompressed size exceeds the ceiling, or whose
    header promises more data than the member holds."""
    try:
        info = npz.zip.getinfo(f"{key}.npy")
    except (KeyError, AttributeError):
        return  # numpy reports it
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{path}: key '{key}' is {info.file_size} bytes uncompressed, more than "
                         f"the {MAX_MEMBER_BYTES} ptycho_nb reads")
    try:
        with npz.zip.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(fh)
            header_len = fh.tell()
    except Exception as exc:  # noqa: BLE001 - any header problem: numpy's own read reports it
        if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
            return
        raise ValueError(f"{path}: key '{key}' has an unreadable array header ({exc})") from exc
    if dtype.hasobject:
        return  # refused below as a pickled object array
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > info.file_size - header_len:
        raise ValueError(f"{path}: key '{key}' declares shape {shape} of {dtype} ({declared} "
                         f"bytes) but holds {info.file_size - header_len}; truncated or corrupt")


def _get(path: Path, npz: Any, key: str) -> np.ndarray:
    """Read one array; any failure (pickled object array, CRC/zlib error) names file and key."""
    _check_member(path, npz, key)
    try:
        return np.asarray(npz[key])
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path}: key '{key}' holds a Python object array; refusing to unpickle "
                             "(allow_pickle=False). Re-save it as a numeric array.") from exc
        raise ValueError(f"{path}: key '{key}' could not be read ({exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, EOFError, OSError on a truncated file
        raise ValueError(f"{path}: key '{key}' could not be read; the file looks truncated or "
                         f"corrupt ({type(exc).__name__}: {exc})") from exc


def _looks_like_counts(d: np.ndarray) -> bool:
    d = np.asarray(d, dtype=np.float64)
    return bool(d.size and np.all(np.isfinite(d)) and d.max() > COUNTS_LIKE_MAX
                and np.all(d == np.round(d)))


def read_npz(path: str | os.PathLike[str], diffraction_kind: DiffractionKind | None = None, *,
             mask_flagged: bool = False) -> PtychoData:
    """Read a PtychoPINN-contract NPZ file.

    Parameters
    ----------
    path : str or PathLike
        The ``.npz`` file.
    diffraction_kind : {'amplitude', 'counts', None}
        What the diffraction array holds; None → what the file's metadata records (see module
        docstring for the unlabelled case).
    mask_flagged : bool
        Set detector flag values to 0 and add them to the mask, instead of refusing the file.

    Returns
    -------
    PtychoData
        Diffraction as float32 amplitudes (sqrt counts); ``metadata['diffraction'] = 'amplitude'``
        and ``metadata['source_diffraction_kind']`` records what the file held.
    """
    if diffraction_kind not in (None, *_KINDS):
        raise ValueError(f"diffraction_kind: expected 'amplitude', 'counts' or None, got {diffraction_kind!r}")
    p = existing_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(b"PK"):
        # say what the file is instead of numpy's "pickled data" guess for any non-zip bytes
        what = ("a single .npy array" if head.startswith(b"\x93NUMPY")
                else "pickled Python data (refused: never unpickled)" if head.startswith(b"\x80")
                else "empty" if not head
                else "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head)
                else "binary data of unknown format")
        raise ValueError(f"{p}: not an NPZ archive (expected a zip file with keys 'diffraction', "
                         f"'probeGuess', 'xcoords', 'ycoords'); the file holds {what}")
    try:
        npz = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{p}: not an NPZ archive (numpy could not read it without unpickling: {exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{p}: not a readable NPZ archive; truncated or corrupt? "
                         f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{p}: holds a single .npy array, expected an NPZ archive with keys "
                         "'diffraction', 'probeGuess', 'xcoords', 'ycoords'")
    with npz:
        keys = set(npz.files)
        diff_key = "diffraction" if "diffraction" in keys else "diff3d" if "diff3d" in keys else None
        missing = [k for k in ("probeGuess", "xcoords", "ycoords") if k not in keys]
        if diff_key is None:
            missing.insert(0, "diffraction (or diff3d)")
        if missing:
            raise ValueError(f"{p}: missing key(s) {', '.join(missing)}; keys found: {sorted(keys)}. "
                             "Expected the PtychoPINN NPZ contract.")
        meta: dict[str, Any] = {}
        if METADATA_KEY in keys:
            meta = metadata_from_json(p, METADATA_KEY, _get(p, npz, METADATA_KEY))
        diff = _get(p, npz, diff_key)
        probe = _get(p, npz, "probeGuess")
        xc = _get(p, npz, "xcoords")
        yc = _get(p, npz, "ycoords")
        obj = _get(p, npz, "objectGuess") if "objectGuess" in keys else None
        scan = _get(p, npz, "scan_index") if "scan_index" in keys else None
        mask_key = PER_PATTERN_MASK_KEY if PER_PATTERN_MASK_KEY in keys else MASK_KEY
        mask = _get(p, npz, mask_key) if mask_key in keys else None
        truth = {k: _get(p, npz, k) for k in _TRUTH_KEYS if k in keys}

    recorded = meta.get("diffraction")
    if recorded is not None and recorded not in _KINDS:
        raise ValueError(f"{p}: key '{METADATA_KEY}' records diffraction={recorded!r}; "
                         "expected 'amplitude' or 'counts'")
    kind = diffraction_kind
    if kind is None:
        kind = recorded
    elif recorded is not None and recorded != kind:
        warnings.warn(f"{p}: file metadata says diffraction is {recorded!r} but "
                      f"diffraction_kind={kind!r} was passed; using {kind!r}", UserWarning, stacklevel=2)
    if kind is None:
        if np.issubdtype(diff.dtype, np.number) and not np.iscomplexobj(diff) and _looks_like_counts(diff):
            raise ValueError(
                f"{p}: key '{diff_key}' records no kind and its values are all integers up to "
                f"{float(np.max(diff)):g}: these look like photon COUNTS, but the PtychoPINN contract "
                "says amplitudes. Pass diffraction_kind='counts' (values are square-rooted) or "
                "diffraction_kind='amplitude' to load them as they are.")
        kind = "amplitude"
    diff, flags = diffraction_from_file(p, diff_key, diff, kind=kind, mask_flagged=mask_flagged)

    meta = dict(meta)
    meta["diffraction"] = "amplitude"
    meta["source_diffraction_kind"] = kind
    return build(p, {"diffraction": diff_key, "probe": "probeGuess", "object": "objectGuess",
                     "xcoords": "xcoords", "ycoords": "ycoords", "scan_index": "scan_index",
                     "mask": mask_key, **{k: k for k in _TRUTH_KEYS}},
                 flags=flags, diffraction=diff, xcoords=xc, ycoords=yc, probe=probe, object=obj,
                 scan_index=scan, metadata=meta, mask=mask, **truth)


def write_npz(data: PtychoData, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``data`` as a PtychoPINN-contract NPZ (compressed), atomically.

    ``diffraction`` holds float32 amplitudes and ``metadata_json`` records
    ``diffraction='amplitude'``; ``objectGuess`` is written when ``data.object`` is known, the
    mask as ``bad_pixels`` (N, N) when there is one (a per-pattern mask also as
    ``bad_pixels_per_pattern``, ``bad_pixels`` then its union), and the ground-truth fields
    under their own names when set. Returns the path written. FileExistsError when it exists and
    ``overwrite`` is False.
    """
    if not isinstance(data, PtychoData):
        raise TypeError(f"write_npz: expected PtychoData, got {type(data).__name__}")
    meta = dict(data.metadata)
    meta["diffraction"] = "amplitude"
    meta.pop("source_diffraction_kind", None)
    arrays: dict[str, np.ndarray] = {
        "diffraction": data.diffraction.astype(np.float32),
        "probeGuess": data.probe.astype(np.complex64),
        "xcoords": data.xcoords.astype(np.float64),
        "ycoords": data.ycoords.astype(np.float64),
        METADATA_KEY: np.asarray(metadata_to_json(meta)),
    }
    if data.object is not None:
        arrays["objectGuess"] = data.object.astype(np.complex64)
    if data.scan_index is not None:
        arrays["scan_index"] = data.scan_index.astype(np.int64)
    if data.mask is not None:
        # Upstream reads an (N, N) mask: a per-pattern one goes beside it, the union (every
        # pixel unmeasured in some pattern) keeping upstream off all of them.
        arrays[MASK_KEY] = data.mask if data.mask.ndim == 2 else data.mask.any(axis=0)
        if data.mask.ndim == 3:
            arrays[PER_PATTERN_MASK_KEY] = data.mask
    for key in _TRUTH_KEYS:
        if getattr(data, key) is not None:
            arrays[key] = getattr(data, key)
    with atomic_path(path, overwrite=overwrite) as tmp:
        # A file handle, not a name: np.savez would otherwise append '.npz' to odd suffixes.
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path)
