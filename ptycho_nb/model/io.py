"""Save and load trained models as ``wts.h5.zip`` archives (never pickles), with their cards.

The archive (see :mod:`ptycho_nb.model.archive`) holds the canonical configs, the legacy
params dict, the scaling statistics and the module's state dict (network weights, the probe, the
intensity scale), so a model file is self-describing and loads without the training data. An
optional model card (recipe, seeds, commit, scores, ...) travels in its ``extra.json``.

Wherever a model path is accepted, ``"pretrained:NAME"`` names a model shipped with the package
(``ptycho_nb/pretrained/models/NAME.wts.h5.zip``; see :mod:`ptycho_nb.model.catalog` and
:mod:`ptycho_nb.pretrained`). The name is resolved here, at load time, so configs carry it as
written.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any, Mapping

import numpy as np

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.legacy import update_legacy_dict
from .archive import ARCHIVE_NAME, read_archive, write_archive
from .catalog import resolve_archive_path
from .lightning_module import PINNModule
from .weights import load_checkpoint_weights, load_state_dict_strict

__all__ = ["save_model", "load_model", "model_from_checkpoint", "read_card", "MODEL_NAME", "CARD_KEY"]

MODEL_NAME = "PINNModule"
#: Key of the model card in the archive's ``extra.json``.
CARD_KEY = "card"


# --------------------------------------------------------------------------------------------
# model card
# --------------------------------------------------------------------------------------------


def _check_card(value: Any, where: str = "card") -> None:
    """Raise ValueError naming the first entry of a card that JSON cannot hold faithfully."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is a {type(key).__name__}; a model card "
                                 "needs string keys (JSON)")
            _check_card(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_card(item, f"{where}[{i}]")
    elif value is None or isinstance(value, (bool, int, str)):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}={value!r} is not JSON-serialisable (use None for a missing "
                             "score)")
    elif isinstance(value, np.generic):  # numpy scalars: stored as the Python number they hold
        _check_card(value.item(), where)
    else:
        raise ValueError(f"{where}: a {type(value).__name__} is not JSON-serialisable (a model "
                         "card holds dicts, lists, strings, numbers, bools and None)")


def _card_json(card: Mapping[str, Any]) -> dict[str, Any]:
    """``card`` as plain JSON types (numpy scalars become Python numbers), after checking it."""
    if not isinstance(card, Mapping):
        raise ValueError(f"card: expected a dict, got {type(card).__name__}")
    _check_card(card)
    return json.loads(json.dumps(dict(card), default=lambda o: o.item()))


def read_card(path: str | os.PathLike[str], *,
              folder: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The model card stored in an archive (or ``"pretrained:NAME"``), None when it has none."""
    archive = read_archive(resolve_archive_path(path, folder=folder))
    card = (archive.extra or {}).get(CARD_KEY)
    return dict(card) if isinstance(card, dict) else None


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------


def _module_of(obj: Any) -> PINNModule:
    module = getattr(obj, "module", obj)
    if not isinstance(module, PINNModule):
        raise TypeError(f"save_model: expected a TrainResult or a PINNModule, got {type(obj).__name__}")
    return module


def save_model(obj: Any, path: str | os.PathLike[str], *, overwrite: bool = False,
               card: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Write a trained model (a ``TrainResult`` or ``PINNModule``) to a ``wts.h5.zip`` archive.

    ``path`` may be a folder, which then receives ``wts.h5.zip``. Writes atomically and refuses to
    overwrite an existing file unless ``overwrite=True``.

    Parameters
    ----------
    card : dict, optional
        Model card (recipe, seeds, commit, training time, hardware, scores, ...), stored in the
        archive and returned by :func:`read_card` / ``load_model(...).model_card``. It must be
        JSON-serialisable (ValueError naming the offending entry otherwise); it is not carried
        over from a loaded model, whose card would no longer describe what is saved.
    """
    module = _module_of(obj)
    card_json = None if card is None else _card_json(card)
    target = pathlib.Path(path)
    # A folder (existing, or a new extension-less name) receives wts.h5.zip; an existing file is
    # the target itself, whatever its name (so overwrite=True replaces it rather than failing to
    # create a folder of the same name).
    if target.is_dir() or (target.suffix == "" and not target.exists()):
        target = target / ARCHIVE_NAME
    params: dict[str, Any] = {}
    update_legacy_dict(params, module.model_config)
    update_legacy_dict(params, module.training_config)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    extra: dict[str, Any] = {"network": dict(module.network_kwargs),
                             "probe_shape": list(module.probe.shape)}
    if card_json is not None:
        extra[CARD_KEY] = card_json
    return write_archive(
        target,
        state_dict=state,
        configs={"model": module.model_config.to_dict(), "training": module.training_config.to_dict()},
        params=params,
        scaling=dict(module.scaling),
        model_name=MODEL_NAME,
        extra=extra,
        overwrite=overwrite,
    )


def model_from_checkpoint(ckpt_path: str | os.PathLike[str]) -> PINNModule:
    """A ``PINNModule`` from a Lightning checkpoint that ptycho_nb's training wrote.

    Reads the checkpoint with ``weights_only=True`` (no unpickling of code); its hyperparameters
    carry the configs, scaling and network settings. Save it as an archive with
    :func:`save_model`.
    """
    saved = load_checkpoint_weights(ckpt_path)
    hp = saved.get("hyper_parameters") if isinstance(saved, dict) else None
    state = saved.get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(hp, dict) or not isinstance(state, dict) or "model" not in hp:
        raise ValueError(f"{ckpt_path}: not a ptycho_nb training checkpoint (expected "
                         "'hyper_parameters' with the model config and a 'state_dict')")
    try:
        module = PINNModule(model=ModelConfig.from_dict(hp["model"]),
                            training=TrainingConfig.from_dict(hp.get("training", {})),
                            probe=None, probe_shape=hp.get("probe_shape"),
                            scaling=hp.get("scaling"), network=hp.get("network") or {})
        load_state_dict_strict(module, state)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{ckpt_path}: checkpoint does not describe a loadable ptycho_nb model "
                         f"({exc})") from exc
    module.model_card = None
    module.eval()
    return module


def load_model(path: str | os.PathLike[str]) -> PINNModule:
    """Load a ``PINNModule`` from a ``wts.h5.zip`` archive, a folder holding one, or a packaged
    model ``"pretrained:NAME"``, in eval mode.

    The module's ``model_card`` attribute holds the archive's model card (None when absent).

    Raises
    ------
    FileNotFoundError
        No archive at ``path``, or an unknown pretrained name (listing the available ones).
    ValueError
        A corrupt, tampered, foreign (e.g. TensorFlow) or incompatible archive, naming what was
        found.
    """
    archive = read_archive(resolve_archive_path(path))
    if archive.manifest.get("model_name") != MODEL_NAME:
        raise ValueError(f"{path}: archive holds model {archive.manifest.get('model_name')!r}, "
                         f"expected {MODEL_NAME!r}")
    for key in ("model", "training"):
        if key not in archive.configs:
            raise ValueError(f"{path}: configs.json lacks the {key!r} config")
    extra = archive.extra or {}
    for key, value in archive.scaling.items():
        # the scaling statistics multiply every prediction: NaN here is as bad as NaN weights
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{path}: scaling.json[{key!r}] is {value!r}; expected a finite number")
    try:
        if "probe" not in archive.state_dict and not extra.get("probe_shape"):
            raise ValueError("no 'probe' weight and no probe_shape in extra.json")
        module = PINNModule(
            model=ModelConfig.from_dict(archive.configs["model"]),
            training=TrainingConfig.from_dict(archive.configs["training"]),
            probe=None,
            probe_shape=extra.get("probe_shape") or list(archive.state_dict["probe"].shape),
            scaling=archive.scaling,
            network=extra.get("network") or {},
        )
        load_state_dict_strict(module, archive.state_dict)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        # checksummed members that are well-formed JSON/HDF5 but do not describe a model
        raise ValueError(f"{path}: the archive does not describe a loadable model "
                         f"({type(exc).__name__}: {exc})") from exc
    card = extra.get(CARD_KEY)
    module.model_card = dict(card) if isinstance(card, dict) else None
    module.eval()
    return module
