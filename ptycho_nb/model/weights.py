"""Weights into modules: a state dict loaded with every key, shape and kind checked, and
Lightning checkpoints read without unpickling code.

The archive format itself (:mod:`ptycho_nb.model.archive`) yields a state dict; these helpers put
one into a module, whichever file it came from.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import torch

__all__ = ["load_state_dict_strict", "load_checkpoint_weights"]


def _family(dtype: torch.dtype) -> str:
    """'complex', 'float', 'bool' or 'integer': kinds load_state_dict must not convert between."""
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "float"
    return "bool" if dtype == torch.bool else "integer"


def load_state_dict_strict(module: torch.nn.Module,
                           state_dict: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Load ``state_dict`` into ``module`` with every key, shape and real/complex kind checked.

    Raises ValueError naming missing or unexpected keys, or the key whose shape (expected vs
    found) or real/complex kind differs. Returns ``module``.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError(f"state_dict: keys do not match the module (missing: {missing}, "
                         f"unexpected: {unexpected})")
    for key, want in expected.items():
        got = state_dict[key]
        if not isinstance(got, torch.Tensor):
            raise ValueError(f"state_dict[{key!r}]: expected a tensor, got {type(got).__name__}")
        if tuple(got.shape) != tuple(want.shape):
            raise ValueError(f"state_dict[{key!r}]: expected shape {tuple(want.shape)}, "
                             f"found {tuple(got.shape)}")
        if got.is_complex() != want.is_complex():
            raise ValueError(f"state_dict[{key!r}]: expected dtype {want.dtype}, found {got.dtype} "
                             "(real/complex mismatch)")
        if _family(got.dtype) != _family(want.dtype):
            # load_state_dict would cast int weights to float silently (and bools to 0/1)
            raise ValueError(f"state_dict[{key!r}]: expected a {_family(want.dtype)} tensor like "
                             f"{want.dtype}, found {got.dtype}")
    module.load_state_dict(dict(state_dict), strict=True)
    return module


def load_checkpoint_weights(ckpt_path: str | os.PathLike) -> Any:
    """Load a checkpoint (e.g. a Lightning ``.ckpt``) with ``weights_only=True`` on the CPU.

    Raises ValueError when the file holds pickled objects beyond tensors and plain containers
    (ptycho_nb never falls back to ``weights_only=False``).
    """
    p = pathlib.Path(ckpt_path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint file")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError/… depending on the cause
        raise ValueError(f"{p}: not a weights-only-loadable checkpoint (it holds pickled Python "
                         f"objects or is corrupt); ptycho_nb will not unpickle it: {exc}") from exc
