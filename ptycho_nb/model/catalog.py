"""The catalog of packaged (pretrained) models: their names, their files, and the default one.

A packaged model is a ``wts.h5.zip`` archive in ``ptycho_nb/pretrained/models/``; its name is the
file name without ``.wts.h5.zip``. Wherever a model path is accepted, ``"pretrained:NAME"`` names
one; :func:`resolve_archive_path` turns any accepted model path into the archive file, at load
time, so configs carry the reference as written. The public face of the catalog is
:mod:`ptycho_nb.pretrained` (``available``, ``load``, ``card``, ``path``).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from ..config.fields import nearest_name
from .archive import ARCHIVE_NAME, read_archive

__all__ = ["PRETRAINED_PREFIX", "PRETRAINED_SUFFIX", "PRETRAINED_DIR", "DEFAULT_PRETRAINED",
           "is_pretrained", "pretrained_names", "pretrained_path", "resolve_archive_path",
           "default_model"]

#: Prefix that names a packaged model wherever a model path is accepted.
PRETRAINED_PREFIX = "pretrained:"
#: File-name suffix of a packaged model (its name is the file name without it).
PRETRAINED_SUFFIX = ".wts.h5.zip"
#: Where the packaged models live (package data). Looked up at call time, so a test may point it
#: elsewhere; every function also takes an explicit ``folder``.
PRETRAINED_DIR = pathlib.Path(__file__).resolve().parents[1] / "pretrained" / "models"
#: The packaged model :func:`ptycho_nb.reconstruct` starts from when none is given (for scans of
#: its N).
DEFAULT_PRETRAINED = "generalist-n64"


def is_pretrained(path: Any) -> bool:
    """Whether ``path`` is a ``"pretrained:NAME"`` reference (a str or a path spelled so)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(PRETRAINED_PREFIX)


def _folder(folder: str | os.PathLike[str] | None) -> pathlib.Path:
    return pathlib.Path(PRETRAINED_DIR if folder is None else folder)


def pretrained_names(folder: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the packaged models in ``folder`` (default: the package's), sorted; [] if none."""
    f = _folder(folder)
    if not f.is_dir():
        return []
    return sorted(p.name[: -len(PRETRAINED_SUFFIX)] for p in f.iterdir()
                  if p.is_file() and p.name.endswith(PRETRAINED_SUFFIX)
                  and len(p.name) > len(PRETRAINED_SUFFIX) and not p.name.startswith("."))


def pretrained_path(name: str, folder: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The archive of the packaged model ``name`` (``"pretrained:"`` prefix optional).

    Raises
    ------
    ValueError
        A name that is empty or holds a path separator (names are file names, not paths).
    FileNotFoundError
        No such model, listing the available names and the nearest one.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"pretrained model name: expected a str, got {type(name).__name__}")
    text = os.fspath(name)
    bare = text[len(PRETRAINED_PREFIX):] if text.startswith(PRETRAINED_PREFIX) else text
    if bare.endswith(PRETRAINED_SUFFIX):
        bare = bare[: -len(PRETRAINED_SUFFIX)]
    if not bare or "/" in bare or "\\" in bare or bare.startswith("."):
        raise ValueError(f"pretrained model name {bare!r} is invalid: expected the file name of a "
                         f"packaged model without {PRETRAINED_SUFFIX!r} (no folders)")
    f = _folder(folder)
    p = f / (bare + PRETRAINED_SUFFIX)
    if not p.is_file():
        names = pretrained_names(folder)
        near = nearest_name(bare, names)
        listing = ", ".join(names) if names else "none are installed"
        raise FileNotFoundError(
            f"pretrained model {bare!r} not found in {f}"
            + (f"; did you mean {near!r}?" if near else "")
            + f" (available: {listing})")
    return p


def resolve_archive_path(path: str | os.PathLike[str], *,
                         folder: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The archive file for ``path``: the file itself, ``wts.h5.zip`` inside a folder, or the
    packaged file of ``"pretrained:NAME"`` (looked up in ``folder``, default the package's).

    Raises
    ------
    FileNotFoundError
        No archive there, or an unknown pretrained name (listing the available ones).
    """
    if is_pretrained(path):
        return pretrained_path(os.fspath(path), folder)
    p = pathlib.Path(path)
    if p.is_dir():
        p = p / ARCHIVE_NAME
    if not p.exists():
        raise FileNotFoundError(f"model archive not found: {p}")
    return p


def default_model(n: int | None = None) -> str | None:
    """``"pretrained:<DEFAULT_PRETRAINED>"`` when that model ships with this install (and, given
    ``n``, was trained for N×N patterns), else None."""
    if DEFAULT_PRETRAINED not in pretrained_names():
        return None
    name = f"pretrained:{DEFAULT_PRETRAINED}"
    if n is not None and _model_n(name) != n:
        return None
    return name


def _model_n(path: str) -> int | None:
    """The pattern side N an archive's model was trained for (its configs.json; no weights built)."""
    # a corrupt archive raises here (read_archive names what is wrong); one without N serves none
    try:
        return int(read_archive(resolve_archive_path(path)).configs["model"]["N"])
    except (KeyError, TypeError):
        return None
