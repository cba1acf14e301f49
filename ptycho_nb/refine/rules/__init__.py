"""Update rules of the refinement, one per module, found by name in :data:`UPDATE_RULES`.

A rule is one function ``rule(state, scan, settings) -> step``: it prepares what it keeps between
batches (an optimizer, say) and returns ``step(idx, updates)``, which updates the
:class:`~ptycho_nb.refine.state.RefineState` in place from the patterns ``idx`` — the object, and
what ``updates`` (:class:`~ptycho_nb.refine.state.Updates`) asks: the probe, the positions — and
returns their summed Poisson deviance before the update as a 0-d tensor (read once per epoch by
the loop, never per batch). The epoch loop (:mod:`ptycho_nb.refine.loop`) is the same for every rule.
A new rule is a module with that function and one line here.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..state import Updates
from .adam import adam_update
from .pie import FAR_FIELD_STEPS, FISHER_CAP, MAX_JOINT_STEP, joint_steps, pie_update

__all__ = ["UPDATE_RULES", "rule_for", "Step", "UpdateRule", "joint_steps", "FAR_FIELD_STEPS", "FISHER_CAP",
           "MAX_JOINT_STEP"]

#: ``step(idx, updates) -> deviance``: one batch's update.
Step = Callable[[torch.Tensor, Updates], torch.Tensor]
#: ``rule(state, scan, settings) -> step``.
UpdateRule = Callable[..., Step]

UPDATE_RULES: dict[str, UpdateRule] = {
    "pie": pie_update,
    "adam": adam_update,
}


def rule_for(method: str) -> UpdateRule:
    """The update rule named ``method`` (a ``ValueError`` naming the choices otherwise)."""
    try:
        return UPDATE_RULES[method]
    except (KeyError, TypeError):
        raise ValueError(f"method: expected one of {tuple(UPDATE_RULES)}, got {method!r}") from None
