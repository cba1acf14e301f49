"""The physics refinement: an object (and probe) refined against a scan's own diffraction.

``reconstruct`` and ``infer`` start it from a network's stitched object, or from a flat object
(the control), and run it until the data stop improving. It is a subsystem of its own:

- :mod:`~ptycho_nb.refine.settings` — :class:`RefineSettings`, every 'auto' of the configs
  resolved once (likelihood and step, momentum, probe source and start, device);
- :mod:`~ptycho_nb.refine.scan` — :class:`PreparedScan`, the data once on the refinement's device;
- :mod:`~ptycho_nb.refine.rules` — the update rules, one per module, in a registry;
- :mod:`~ptycho_nb.refine.loop` — the epoch loop (:func:`refine`, :func:`refine_scan`): stopping
  rules, holdout, momentum, batch growth;
- :mod:`~ptycho_nb.refine.start` — the frame, the starting object, whose probe;
- :mod:`~ptycho_nb.refine.probe_start` — the probe start the data choose;
- :mod:`~ptycho_nb.refine.progress`, :mod:`~ptycho_nb.refine.result`,
  :mod:`~ptycho_nb.refine.record` — what a run shows, returns and records;
- :mod:`~ptycho_nb.refine.run` — :func:`run_refinement`, the configured run.

It runs on any torch device (``PyTorchExecutionConfig.accelerator``; 'auto' = a GPU when torch
sees one) and reads one value back from it per epoch.

A first refinement is :func:`refine` (its docstring has an example); ``ptycho_nb.reconstruct``
runs it as configured (:func:`run_refinement`).
"""

from .deviance import poisson_deviance
from .loop import refine, refine_object, refine_scan
from .probe_start import (PROBE_TRIAL_EPOCHS, ProbeStart, choose_probe_start, probe_candidates,
                          refine_from_probe_start)
from .progress import RefineProgressBar, chain_callbacks
from .record import RefineRecord
from .result import RefineProgress, RefineResult
from .rules import FISHER_CAP, MAX_JOINT_STEP, UPDATE_RULES, joint_steps, rule_for
from .run import run_refinement
from .scan import PreparedScan
from .settings import (AUTO_MOMENTUM, NOISE_MODELS, POISSON_STEPS, PROBE_INITS, PROBE_MISMATCH_WARN,
                       RefineSettings, far_field_rule, momentum_for, noise_model_for,
                       poisson_step_for, probe_source_for)
from .start import Frame, flat_amplitude, flat_start, match_counts, probe_mismatch, scan_frame
from .state import RefineState

#: Names of the update rules (:data:`UPDATE_RULES`).
REFINE_METHODS = tuple(UPDATE_RULES)

__all__ = [
    "refine", "refine_scan", "refine_object", "run_refinement",
    "RefineSettings", "RefineResult", "RefineProgress", "RefineRecord", "RefineState", "PreparedScan",
    "UPDATE_RULES", "REFINE_METHODS", "rule_for", "joint_steps", "FISHER_CAP", "MAX_JOINT_STEP",
    "poisson_deviance", "NOISE_MODELS", "POISSON_STEPS", "PROBE_INITS", "AUTO_MOMENTUM",
    "noise_model_for", "poisson_step_for", "far_field_rule", "momentum_for",
    "Frame", "scan_frame", "flat_amplitude", "flat_start", "match_counts", "probe_mismatch",
    "probe_source_for", "PROBE_MISMATCH_WARN",
    "PROBE_TRIAL_EPOCHS", "ProbeStart", "probe_candidates", "choose_probe_start",
    "refine_from_probe_start", "RefineProgressBar", "chain_callbacks",
]
