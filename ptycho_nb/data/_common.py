"""Small helpers shared by the readers and writers (error messages that name file and key)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .container import PtychoData
from .detector import union_masks

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def existing_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path, checked to be an existing regular file.

    Raises
    ------
    TypeError
        ``path`` is not a str or PathLike.
    ValueError
        An empty path, a directory, or a FIFO/device/socket (opening a FIFO would block forever).
    FileNotFoundError
        Nothing exists at ``path``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike file path, got {type(path).__name__}")
    if os.fspath(path) in ("", b""):
        raise ValueError("path is empty; expected a data file path")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory; expected a data file")
    if not p.is_file():
        raise ValueError(f"{p}: is not a regular file (a FIFO, device or socket); expected a "
                         "data file")
    return p


def sniff(path: Path) -> str:
    """Return 'hdf5', 'zip' or 'unknown' from the first bytes of the file."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "unknown"


def build(path: Path, keys: dict[str, str], flags: np.ndarray | None = None, **fields: Any) -> PtychoData:
    """Construct PtychoData, re-raising its ValueError with the file and the source key named.

    ``keys`` maps container field names to the key/dataset each came from in the file.
    ``flags`` (the mask of the flag values a reader set to 0, see
    :func:`~ptycho_nb.data.detector.diffraction_from_file`) joins the file's own mask once the
    container has checked that one.
    """
    try:
        data = PtychoData(**fields)
        return data if flags is None else dataclasses.replace(data, mask=union_masks(data.mask, flags))
    except ValueError as exc:
        msg = str(exc)
        src = [f"{f} <- '{k}'" for f, k in keys.items() if f"PtychoData.{f}" in msg]
        where = f" (file key {', '.join(src)})" if src else ""
        raise ValueError(f"{path}{where}: {msg}") from exc


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Serialise metadata; the container already guarantees it is JSON-serialisable."""
    return json.dumps(metadata, sort_keys=True)


def metadata_from_json(path: Path, key: str, text: Any) -> dict[str, Any]:
    """Parse a metadata JSON string read from ``path[key]``; ValueError naming both if bad."""
    if isinstance(text, np.ndarray):
        text = text.item() if text.shape == () else text
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise ValueError(f"{path}: key '{key}' should hold a JSON string, got {type(text).__name__}")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: key '{key}' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: key '{key}' should hold a JSON object, got {type(meta).__name__}")
    return meta
