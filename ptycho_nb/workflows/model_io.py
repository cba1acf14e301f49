"""Deprecated home of model I/O: use :mod:`ptycho_nb.model.io` (``save_model``, ``load_model``,
``model_from_checkpoint``, ``read_card``) and :mod:`ptycho_nb.model.catalog` (the packaged
models: ``pretrained_names``, ``pretrained_path``, ``resolve_archive_path``, ...).

Model files live with the model; this module only forwards the names scripts written against the
old path use, and warns once on import. Pointing the packaged-model folder elsewhere means
setting ``ptycho_nb.model.catalog.PRETRAINED_DIR`` (setting it here changes nothing), or passing
``folder=`` to the catalog's functions.
"""

from __future__ import annotations

import warnings

from ..model.archive import ARCHIVE_NAME
from ..model.catalog import (PRETRAINED_DIR, PRETRAINED_PREFIX, PRETRAINED_SUFFIX, is_pretrained,
                             pretrained_names, pretrained_path, resolve_archive_path)
from ..model.io import CARD_KEY, MODEL_NAME, load_model, model_from_checkpoint, read_card, save_model

__all__ = ["save_model", "load_model", "model_from_checkpoint", "ARCHIVE_NAME", "resolve_archive_path",
           "read_card", "PRETRAINED_PREFIX", "PRETRAINED_SUFFIX", "PRETRAINED_DIR", "is_pretrained",
           "pretrained_names", "pretrained_path", "MODEL_NAME", "CARD_KEY"]

warnings.warn("ptycho_nb.workflows.model_io is deprecated: import from ptycho_nb.model.io "
              "(save_model, load_model, model_from_checkpoint, read_card) and "
              "ptycho_nb.model.catalog (pretrained_names, pretrained_path, resolve_archive_path, ...)",
              DeprecationWarning, stacklevel=2)
