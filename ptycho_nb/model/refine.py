"""Deprecated home of the physics refinement: it is the package :mod:`ptycho_nb.refine` now.

``from ptycho_nb.model.refine import refine`` keeps working, with a ``DeprecationWarning``;
import from :mod:`ptycho_nb.refine` instead.
"""

from __future__ import annotations

import warnings

from ..refine import (FISHER_CAP, MAX_JOINT_STEP, NOISE_MODELS, POISSON_STEPS, REFINE_METHODS,
                      RefineProgress, RefineResult, joint_steps, noise_model_for, poisson_deviance,
                      poisson_step_for, refine, refine_object)

__all__ = ["refine", "RefineResult", "RefineProgress", "refine_object", "REFINE_METHODS", "NOISE_MODELS",
           "poisson_deviance", "joint_steps", "MAX_JOINT_STEP", "POISSON_STEPS", "FISHER_CAP",
           "poisson_step_for", "noise_model_for"]

warnings.warn("ptycho_nb.model.refine is deprecated: the refinement is the package ptycho_nb.refine "
              "(from ptycho_nb.refine import refine, ...)", DeprecationWarning, stacklevel=2)
