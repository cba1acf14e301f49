"""The model archive ``wts.h5.zip`` (spec §6): safe to load, atomic to write.

Layout of the zip (all members at the top level):

``manifest.json``
    ``format`` = ``"ptycho_nb-model"``, ``format_version`` = 1, ``backend`` = ``"pytorch"``,
    ``package_version``, ``torch_version``, ``model_name``, ``created_utc`` (ISO 8601),
    ``weights`` (list of ``{"name", "shape", "dtype"}`` in state_dict order, dtype as
    ``"torch.float32"`` etc.) and ``checksums`` (member name → sha256 hex digest of its bytes,
    for every member except the manifest itself).
``configs.json``, ``params.json``, ``scaling.json``, optional ``extra.json``
    Plain JSON (numpy scalars/arrays, tuples and paths are converted to JSON types).
``wts.h5``
    One HDF5 dataset per state_dict entry in the group ``/weights``, named by the state_dict key.
    Complex tensors are stored natively (h5py's compound ``{r, i}`` type, complex64 stays
    complex64), so a round trip is bit-identical with no reshaping convention to remember;
    bfloat16 (which numpy lacks) is stored as its raw 16-bit pattern (uint16). Every dataset has
    the attribute ``torch_dtype`` (e.g. ``"torch.complex64"``).

Reading never unpickles: members are read as bytes, JSON is parsed with :mod:`json` and the
weights are read by h5py from memory. Archives of another backend (upstream PtychoPINN's
TensorFlow archive with ``*.dill``/``model.keras`` members or a pickled manifest) are refused.
Putting the weights read into a module is :mod:`ptycho_nb.model.weights`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import pathlib
import zipfile
from dataclasses import dataclass, field
from typing import Any, Mapping
from zlib import error as zlib_error  # raised by zipfile on corrupt deflate streams

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from ..version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Archive",
    "write_archive",
    "read_archive",
    "ARCHIVE_NAME",
]

#: File name of the archive inside a training output folder (and the name ``save_model`` gives a
#: folder's archive).
ARCHIVE_NAME = "wts.h5.zip"
FORMAT = "ptycho_nb-model"
FORMAT_VERSION = 1
BACKEND = "pytorch"
MANIFEST = "manifest.json"
WEIGHTS = "wts.h5"
JSON_MEMBERS = ("configs.json", "params.json", "scaling.json")
EXTRA = "extra.json"
REQUIRED = (MANIFEST, *JSON_MEMBERS, WEIGHTS)
_H5_GROUP = "weights"

# suffixes/names that mark archives written by other backends (upstream PtychoPINN, Keras, pickle)
_FOREIGN_SUFFIXES = (".dill", ".pkl", ".pickle", ".keras", ".pb", ".pt", ".pth", ".ckpt")
_PICKLE_MAGIC = b"\x80"  # protocol 2+ pickles start with PROTO (0x80)

#: Largest manifest / JSON member read (bytes): configs are kilobytes; anything near this is not ours.
MAX_JSON_MEMBER_BYTES = 16 * 2**20
#: Absolute ceiling on the weights member (bytes), whatever the manifest declares.
MAX_WEIGHTS_BYTES = 8 * 2**30
#: HDF5 overhead allowed on top of the weights' raw bytes: a fixed part plus one per dataset.
_H5_OVERHEAD_BYTES, _H5_PER_DATASET_BYTES = 2**20, 2**16
#: Zip compression methods ptycho_nb writes (others are refused before decompressing).
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_CHUNK = 2**20

# torch dtypes that numpy/h5py cannot hold directly → (numpy storage dtype)
_RAW_STORED = {torch.bfloat16: np.uint16}
_DTYPES = {str(d): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
)}


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


@dataclass
class Archive:
    """Contents of a ptycho_nb model archive.

    Attributes
    ----------
    manifest : dict
        Parsed ``manifest.json``.
    configs, params, scaling : dict
        Canonical configs, flat legacy params dict, scaling statistics.
    state_dict : dict[str, torch.Tensor]
        Weights on the CPU, in the order recorded in the manifest.
    extra : dict or None
        Optional ``extra.json``.
    """

    manifest: dict[str, Any]
    configs: dict[str, Any]
    params: dict[str, Any]
    scaling: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    extra: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """Convert the non-JSON types configs commonly hold."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (pathlib.PurePath,)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _json_bytes(obj: Any, member: str) -> bytes:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{member}: expected a dict, got {type(obj).__name__}")
    try:
        text = json.dumps(dict(obj), indent=2, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{member}: cannot be written as JSON ({exc})") from exc
    return text.encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _weights_to_h5_bytes(state_dict: Mapping[str, torch.Tensor]) -> tuple[bytes, list[dict]]:
    """Serialise tensors to an in-memory HDF5 file; return its bytes and the manifest entries."""
    entries: list[dict] = []
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        grp = f.create_group(_H5_GROUP)
        for name, tensor in state_dict.items():
            if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                raise ValueError(f"state_dict: key {name!r} cannot name an HDF5 dataset "
                                 "(expected a non-empty string without '/')")
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"state_dict[{name!r}]: expected a torch.Tensor, "
                                 f"got {type(tensor).__name__}")
            t = tensor.detach().cpu().contiguous()
            if str(t.dtype) not in _DTYPES:
                raise ValueError(f"state_dict[{name!r}]: dtype {t.dtype} is not supported "
                                 f"(expected one of {sorted(_DTYPES)})")
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
                raise ValueError(f"state_dict[{name!r}]: holds {int((~torch.isfinite(t)).sum())} "
                                 "NaN/inf value(s); a model with non-finite weights is not saved")
            if t.dtype in _RAW_STORED:
                arr = t.view(torch.int16).numpy().view(_RAW_STORED[t.dtype])
            else:
                arr = t.numpy()
            ds = grp.create_dataset(name, data=arr)
            ds.attrs["torch_dtype"] = str(t.dtype)
            entries.append({"name": name, "shape": list(t.shape), "dtype": str(t.dtype)})
    return buf.getvalue(), entries


def write_archive(path: str | os.PathLike, *, state_dict: Mapping[str, torch.Tensor],
                  configs: dict[str, dict], params: dict, scaling: dict, model_name: str,
                  extra: dict | None = None, overwrite: bool = False) -> pathlib.Path:
    """Write a model archive atomically.

    The zip is built in a temporary file in the target folder and moved into place with
    :func:`os.replace`, so a failure leaves neither a partial archive nor a changed old one.

    Parameters
    ----------
    path : path-like
        Target file, conventionally ``…/wts.h5.zip``.
    state_dict : mapping of str → torch.Tensor
        Weights (any device; stored from the CPU copy).
    configs : dict of dict
        Canonical configs as plain dicts (e.g. ``{"model": {...}, "training": {...}}``).
    params : dict
        The flat legacy params dict.
    scaling : dict
        Scaling statistics (e.g. intensity scale).
    model_name : str
    extra : dict, optional
        Anything else JSON-serialisable, stored as ``extra.json``.
    overwrite : bool
        Replace an existing file; otherwise FileExistsError.

    Returns
    -------
    pathlib.Path
        The written file.
    """

    target = pathlib.Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists (pass overwrite=True to replace it)")
    if target.exists() and not target.is_file():
        raise ValueError(f"{target}: exists and is not a regular file")
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name: expected a non-empty string, got {model_name!r}")
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict: expected a mapping of str to tensors, got "
                         f"{type(state_dict).__name__}")
    if not isinstance(configs, Mapping) or not all(isinstance(v, Mapping) for v in configs.values()):
        raise ValueError("configs: expected a dict of dicts (one per canonical config)")
    members = {"configs.json": _json_bytes(configs, "configs.json"),
               "params.json": _json_bytes(params, "params.json"),
               "scaling.json": _json_bytes(scaling, "scaling.json")}
    if extra is not None:
        members[EXTRA] = _json_bytes(extra, EXTRA)

    # atomic_path: same-folder temporary file, fsync, umask-respecting mode (an overwritten
    # archive keeps its mode), a full disk reported naming the archive.
    with atomic_path(target, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
                weights_bytes, entries = _weights_to_h5_bytes(state_dict)
                zf.writestr(WEIGHTS, weights_bytes)
                members[WEIGHTS] = weights_bytes
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "backend": BACKEND,
                    "package_version": __version__,
                    "torch_version": torch.__version__,
                    "model_name": model_name,
                    "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "weights": entries,
                    "checksums": {name: _sha256(data) for name, data in members.items()},
                }
                # the manifest goes last: it needs every other member's checksum
                zf.writestr(MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
    return target


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _unsafe_reason(name: str) -> str | None:
    """Why a zip member name could escape an extraction folder, or None if it is safe."""
    if not name:
        return "empty name"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    first = name.split("/", 1)[0]
    if len(first) >= 2 and first[1] == ":":
        return "starts with a drive letter"
    if any(part == ".." for part in name.split("/")):
        return "contains a '..' component"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _foreign_error(path: pathlib.Path, why: str) -> ValueError:
    return ValueError(
        f"{path}: this is not a ptycho_nb model archive but appears to be a TensorFlow/PtychoPINN "
        f"archive from another backend ({why}); ptycho_nb will not unpickle it. Retrain with "
        "ptycho_nb or convert the weights with the upstream tools.")


def _parse_json(data: bytes, member: str, path: pathlib.Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: member {member!r} is not valid UTF-8 JSON ({exc})") from exc


def _read_weights(data: bytes, entries: list, path: pathlib.Path) -> dict[str, torch.Tensor]:
    """Tensors from the in-memory ``wts.h5``, checked against the manifest's entries."""
    state: dict[str, torch.Tensor] = {}
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise ValueError(f"{path}: member {WEIGHTS!r} is not a readable HDF5 file ({exc})") from exc
    try:
        with f:
            _read_weight_datasets(f, entries, path, state)
    except ValueError:
        raise
    except (OSError, KeyError, TypeError, RuntimeError) as exc:
        # checksummed but malformed HDF5 inside (corrupt metadata, odd types)
        raise ValueError(f"{path}: member {WEIGHTS!r} holds malformed HDF5 data "
                         f"({type(exc).__name__}: {exc})") from exc
    return state


def _read_weight_datasets(f: h5py.File, entries: list, path: pathlib.Path,
                          state: dict[str, torch.Tensor]) -> None:
    """Fill ``state`` from the open ``wts.h5``; ValueError naming the weight on any mismatch."""
    if _H5_GROUP not in f or not isinstance(f[_H5_GROUP], h5py.Group):
        raise ValueError(f"{path}: member {WEIGHTS!r} lacks the group '/{_H5_GROUP}'")
    grp = f[_H5_GROUP]
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: manifest weight entry {entry!r} is malformed "
                             "(expected an object with name, shape and dtype)")
    listed = [e.get("name") for e in entries]
    unlisted = sorted(set(grp.keys()) - set(listed))
    if unlisted:
        raise ValueError(f"{path}: {WEIGHTS} holds datasets not in the manifest: {unlisted}")
    for entry in entries:
        name, shape, dtype = entry.get("name"), entry.get("shape"), entry.get("dtype")
        if (not isinstance(name, str) or not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)
                or not isinstance(dtype, str) or dtype not in _DTYPES):
            raise ValueError(f"{path}: manifest weight entry {entry!r} is malformed "
                             f"(expected name, shape list and a dtype in {sorted(_DTYPES)})")
        if name not in grp or not isinstance(grp[name], h5py.Dataset):
            raise ValueError(f"{path}: weight {name!r} listed in the manifest is missing "
                             f"from {WEIGHTS}")
        ds = grp[name]
        if list(ds.shape) != shape:
            raise ValueError(f"{path}: weight {name!r}: manifest shape {tuple(shape)}, "
                             f"stored shape {ds.shape}")
        stored_dtype = ds.attrs.get("torch_dtype")
        if isinstance(stored_dtype, bytes):
            stored_dtype = stored_dtype.decode()
        if stored_dtype != dtype:
            raise ValueError(f"{path}: weight {name!r}: manifest dtype {dtype}, "
                             f"stored dtype attribute {stored_dtype}")
        torch_dtype = _DTYPES[dtype]
        expected_np = _RAW_STORED.get(torch_dtype)
        if expected_np is None:
            expected_np = torch.empty(0, dtype=torch_dtype).numpy().dtype
        if ds.dtype != np.dtype(expected_np):
            raise ValueError(f"{path}: weight {name!r}: manifest dtype {dtype} needs HDF5 "
                             f"data of {np.dtype(expected_np)}, found {ds.dtype}")
        arr = np.array(ds[()], dtype=ds.dtype, copy=True).reshape(shape)
        tensor = torch.from_numpy(arr)
        if torch_dtype in _RAW_STORED:
            tensor = tensor.view(torch.int16).view(torch_dtype)
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
                torch.isfinite(tensor).all()):
            raise ValueError(f"{path}: weight {name!r} holds "
                             f"{int((~torch.isfinite(tensor)).sum())} NaN/inf value(s); "
                             "refusing a model with non-finite weights")
        state[name] = tensor


def read_archive(path: str | os.PathLike, *,
                 extract_to: str | os.PathLike | None = None) -> Archive:
    """Read and validate a model archive without executing any pickled code.

    Parameters
    ----------
    path : path-like
        The ``wts.h5.zip`` file.
    extract_to : path-like, optional
        Also write the (validated) members into this folder.

    Returns
    -------
    Archive

    Raises
    ------
    ValueError
        Not a zip or truncated; unsafe member name; archive of another backend; missing member;
        bad manifest; checksum mismatch; weights not matching the manifest.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such archive file")
    if not path.is_file():  # a FIFO would block open() forever, a folder is not an archive
        raise ValueError(f"{path}: is not a regular file; expected a wts.h5.zip model archive")
    try:
        zf = zipfile.ZipFile(path, "r")
    # NotImplementedError: a damaged "version needed to extract" field reads as a zip feature
    # Python lacks; like any damage, that is a corrupt file, named as such
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise ValueError(f"{path}: not a valid zip archive (truncated or corrupt): {exc}") from exc
    with zf:
        names = [info.filename for info in zf.infolist()]
        for name in names:
            why = _unsafe_reason(name)
            if why is not None:
                raise ValueError(f"{path}: zip entry {name!r} is unsafe ({why}); refusing to read")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{path}: duplicate zip entries {dupes}")
        if MANIFEST not in names and _is_torch_checkpoint(names):
            raise ValueError(
                f"{path}: this is a PyTorch/Lightning checkpoint (torch.save zip holding "
                "data.pkl), not a ptycho_nb model archive (wts.h5.zip). Training writes the "
                "archive itself as OUTPUT_DIR/wts.h5.zip; to turn a ptycho_nb checkpoint into "
                "one: ptycho_nb.save_model(ptycho_nb.model.io.model_from_checkpoint("
                f"{str(path)!r}), 'wts.h5.zip')")
        foreign = [n for n in names if n.lower().endswith(_FOREIGN_SUFFIXES)
                   or n.rsplit("/", 1)[-1].lower() in ("saved_model.pb", "keras_metadata.pb")]
        if foreign and MANIFEST not in names:
            raise _foreign_error(path, f"members {foreign}")

        def member(name: str, limit: int = MAX_JSON_MEMBER_BYTES) -> bytes:
            try:
                info = zf.getinfo(name)
            except KeyError as exc:
                raise ValueError(f"{path}: required member {name!r} is missing") from exc
            return _read_member(zf, info, path, limit)

        if MANIFEST not in names:
            raise ValueError(f"{path}: required member {MANIFEST!r} is missing "
                             "(not a ptycho_nb model archive)")
        raw_manifest = member(MANIFEST)
        if raw_manifest.startswith(_PICKLE_MAGIC):
            raise _foreign_error(path, f"{MANIFEST} holds pickle data")
        manifest = _parse_json(raw_manifest, MANIFEST, path)
        if not isinstance(manifest, dict):
            raise ValueError(f"{path}: {MANIFEST} must hold a JSON object")
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: manifest format {manifest.get('format')!r}, "
                             f"expected {FORMAT!r}")
        if manifest.get("backend") != BACKEND:
            raise _foreign_error(path, f"manifest backend {manifest.get('backend')!r}")
        version = manifest.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
            raise ValueError(f"{path}: manifest format_version {version!r}; this ptycho_nb reads "
                             f"format_version {FORMAT_VERSION} (a newer archive needs a newer "
                             "ptycho_nb)")
        if foreign:
            raise ValueError(f"{path}: unexpected pickle/model members {foreign} in a ptycho_nb "
                             "archive; refusing to read it")
        for name in REQUIRED:
            if name not in names:
                raise ValueError(f"{path}: required member {name!r} is missing")
        checksums = manifest.get("checksums")
        if not isinstance(checksums, dict):
            raise ValueError(f"{path}: manifest lacks a 'checksums' object")
        for name in (*JSON_MEMBERS, WEIGHTS):
            if name not in checksums:
                raise ValueError(f"{path}: manifest has no checksum for {name!r}")
        entries = manifest.get("weights")
        if not isinstance(entries, list):
            raise ValueError(f"{path}: manifest lacks a 'weights' list")
        weights_limit = _weights_limit(entries, path)
        data: dict[str, bytes] = {}
        for name, digest in checksums.items():
            if name == MANIFEST or _unsafe_reason(str(name)) is not None:
                raise ValueError(f"{path}: manifest lists an invalid member {name!r}")
            if name not in names:
                raise ValueError(f"{path}: member {name!r} listed in the manifest is missing")
            if not isinstance(digest, str):
                raise ValueError(f"{path}: manifest checksum of {name!r} is {digest!r}, "
                                 "expected a sha256 hex string")
            blob = member(name, weights_limit if name == WEIGHTS else MAX_JSON_MEMBER_BYTES)
            if _sha256(blob) != digest:
                raise ValueError(f"{path}: member {name!r} fails its sha256 check (tampered or "
                                 "corrupt)")
            data[name] = blob

        parsed = {}
        for name in (*JSON_MEMBERS, *((EXTRA,) if EXTRA in data else ())):
            obj = _parse_json(data[name], name, path)
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: {name} must hold a JSON object")
            parsed[name] = obj
        state = _read_weights(data[WEIGHTS], entries, path)

        if extract_to is not None:
            _extract(path, {MANIFEST: raw_manifest, **data}, pathlib.Path(extract_to))

    return Archive(manifest=manifest, configs=parsed["configs.json"],
                   params=parsed["params.json"], scaling=parsed["scaling.json"],
                   state_dict=state, extra=parsed.get(EXTRA))


def _is_torch_checkpoint(names: list[str]) -> bool:
    """Whether zip member names are those of ``torch.save`` (``<root>/data.pkl``, ``<root>/version``)."""
    return any(n.endswith("/data.pkl") or n == "data.pkl" for n in names) and any(
        n.endswith("/version") or n == "version" for n in names)


def _weights_limit(entries: list, path: pathlib.Path) -> int:
    """Largest size the weights member may have: the manifest's tensors plus HDF5 overhead,
    never above :data:`MAX_WEIGHTS_BYTES`."""
    total = _H5_OVERHEAD_BYTES
    for entry in entries:
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if (not isinstance(shape, list) or not isinstance(dtype, str) or dtype not in _DTYPES
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise ValueError(f"{path}: manifest weight entry {entry!r} is malformed "
                             f"(expected name, shape list of integers >= 0 and a dtype in "
                             f"{sorted(_DTYPES)})")
        numel = 1
        for d in shape:
            numel *= d
        total += numel * _itemsize(_DTYPES[dtype]) + _H5_PER_DATASET_BYTES
        if total > MAX_WEIGHTS_BYTES:
            raise ValueError(f"{path}: manifest declares more than {MAX_WEIGHTS_BYTES} bytes of "
                             "weights; refusing to read it")
    return total


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: pathlib.Path,
                 limit: int) -> bytes:
    """A member's bytes, read in chunks and stopped as soon as it exceeds ``limit`` bytes.

    The declared size is checked first, but a zip bomb can lie about it, so the decompressed
    stream is counted as well.
    """
    name = info.filename
    if info.flag_bits & 0x1:
        raise ValueError(f"{path}: member {name!r} is encrypted; ptycho_nb archives never are")
    if info.compress_type not in _COMPRESSIONS:
        raise ValueError(f"{path}: member {name!r} uses zip compression method "
                         f"{info.compress_type}; expected stored (0) or deflate (8)")
    if info.file_size > limit:
        raise ValueError(f"{path}: member {name!r} declares {info.file_size} bytes, more than "
                         f"the {limit} this member may have; refusing to decompress it")
    chunks: list[bytes] = []
    size = 0
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ValueError(f"{path}: member {name!r} decompresses to more than {limit} "
                                     "bytes (more than declared); refusing to read it")
                chunks.append(chunk)
    except UnicodeDecodeError as exc:  # a damaged local header's name (a ValueError subclass)
        raise ValueError(f"{path}: member {name!r} cannot be read (corrupt zip header): {exc}") from exc
    except ValueError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zlib_error, NotImplementedError,
            RuntimeError) as exc:
        raise ValueError(f"{path}: member {name!r} cannot be read (truncated or corrupt zip): "
                         f"{exc}") from exc
    return b"".join(chunks)


def _extract(path: pathlib.Path, members: Mapping[str, bytes], folder: pathlib.Path) -> None:
    """Write validated members below ``folder``, refusing any that would land outside it."""
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    for name, blob in members.items():
        dest = (root / name).resolve()
        if dest != root and root not in dest.parents:
            raise ValueError(f"{path}: zip entry {name!r} would be extracted outside {folder}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
