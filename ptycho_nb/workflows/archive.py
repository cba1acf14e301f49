"""Deprecated home of the model archive: use :mod:`ptycho_nb.model.archive` (the ``wts.h5.zip``
format) and :mod:`ptycho_nb.model.weights` (loading weights into modules).

The archive is a model file, so it lives with the model; this module only forwards the names
scripts written against the old path use, and warns once on import.
"""

from __future__ import annotations

import warnings

from ..model.archive import (ARCHIVE_NAME, BACKEND, EXTRA, FORMAT, FORMAT_VERSION, JSON_MEMBERS,
                             MANIFEST, MAX_JSON_MEMBER_BYTES, MAX_WEIGHTS_BYTES, REQUIRED, WEIGHTS,
                             Archive, read_archive, write_archive)
from ..model.weights import load_checkpoint_weights, load_state_dict_strict

__all__ = ["FORMAT", "FORMAT_VERSION", "Archive", "write_archive", "read_archive",
           "load_state_dict_strict", "load_checkpoint_weights", "ARCHIVE_NAME", "BACKEND", "EXTRA",
           "JSON_MEMBERS", "MANIFEST", "MAX_JSON_MEMBER_BYTES", "MAX_WEIGHTS_BYTES", "REQUIRED",
           "WEIGHTS"]

warnings.warn("ptycho_nb.workflows.archive is deprecated: import from ptycho_nb.model.archive "
              "(read_archive, write_archive, ...) and ptycho_nb.model.weights "
              "(load_state_dict_strict, load_checkpoint_weights)", DeprecationWarning, stacklevel=2)
