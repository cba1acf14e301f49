"""Pretrained models shipped with the package, by name.

A packaged model is a ``wts.h5.zip`` archive in ``ptycho_nb/pretrained/models/``; its name is the
file name without ``.wts.h5.zip``. Wherever a model path is accepted, ``"pretrained:NAME"`` names
one: ``load_model("pretrained:NAME")``, ``infer("pretrained:NAME", scan)``, ``ptycho-nb infer
--model-path pretrained:NAME``, and as the start of a fine-tuning run,
``train(scan, init="pretrained:NAME")`` / ``ptycho-nb train --init pretrained:NAME``
(specs/ptychodus_api_spec.md §5). Each archive carries its model card (:func:`card`). The catalog
behind these functions is :mod:`ptycho_nb.model.catalog`.

Every function takes ``folder`` to look elsewhere than the package's folder (tests, a user's own
collection); nothing here keeps state. How a card scores a model (held-out scans, the collapse
check) is :mod:`ptycho_nb.pretrained.scoring`; the recipe that trains the shipped generalist is
``recipes/generalist_n64.py`` in the repository, outside the installed package.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from ..model import catalog
from ..model.catalog import PRETRAINED_PREFIX, PRETRAINED_SUFFIX, pretrained_names, pretrained_path
from ..model.io import load_model, read_card

__all__ = ["available", "path", "load", "card", "models_dir", "PREFIX", "SUFFIX"]

#: Prefix naming a packaged model wherever a model path is accepted.
PREFIX = PRETRAINED_PREFIX
#: File-name suffix of a packaged model.
SUFFIX = PRETRAINED_SUFFIX

Folder = str | os.PathLike[str] | None


def models_dir() -> pathlib.Path:
    """The package's folder of pretrained models."""
    return pathlib.Path(catalog.PRETRAINED_DIR)


def available(folder: Folder = None) -> list[str]:
    """Names of the packaged models (sorted; empty when none is shipped).

    Parameters
    ----------
    folder : path-like, optional
        Where to look instead of the package's ``pretrained/models`` folder.
    """
    return pretrained_names(folder)


def path(name: str, folder: Folder = None) -> pathlib.Path:
    """The archive file of the model ``name`` (``"pretrained:"`` prefix optional).

    Raises
    ------
    FileNotFoundError
        Unknown name; the message lists the available ones and the nearest match.
    """
    return pretrained_path(name, folder)


def load(name: str, folder: Folder = None) -> Any:
    """The model ``name`` as a ``PINNModule`` in eval mode (its card in ``.model_card``)."""
    return load_model(pretrained_path(name, folder))


def card(name: str, folder: Folder = None) -> dict[str, Any]:
    """The model card stored in the archive of ``name`` (an empty dict when it has none)."""
    return read_card(pretrained_path(name, folder)) or {}
