"""Legacy flat parameter dict, for code written against upstream PtychoPINN's ``ptycho.params``.

``cfg`` uses upstream key names (``N``, ``gridsize``, ``object.big``, ``probe.trainable``,
``output_prefix``, ...). It is filled from the canonical configs only, by
:func:`ptycho_nb.config.legacy.update_legacy_dict`, before any data loading or model construction
(CONFIG-001). ptycho_nb's own code never reads it; the model archive stores a copy so a model
file is self-describing. The execution config never enters it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cfg", "get", "params"]

#: The legacy flat dict (upstream key names).
cfg: dict[str, Any] = {}


def get(key: str) -> Any:
    """Value of ``key`` in :data:`cfg` (``KeyError`` naming the key when unset)."""
    try:
        return cfg[key]
    except KeyError:
        raise KeyError(f"params.cfg has no key {key!r}; was update_legacy_dict called?") from None


def params() -> dict[str, Any]:
    """A copy of :data:`cfg` (upstream's ``params.params()``)."""
    return dict(cfg)
