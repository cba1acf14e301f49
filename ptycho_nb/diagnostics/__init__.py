"""Diagnostics a user can trust without ground truth.

A measured scan has no true object to compare with; what it has is its own data. Three checks
use only those:

- :mod:`~ptycho_nb.diagnostics.predict` — the counts the reconstruction predicts, against the
  counts measured: normalised residuals per pixel; :mod:`~ptycho_nb.diagnostics.fit` — the
  deviance of every pattern and the residual of every detector pixel over all patterns (a
  defect or a misplaced DC centre shows there);
- :mod:`~ptycho_nb.refine.noise_floor` — the deviance a perfect model would still have,
  pixel by pixel from its predicted counts; deviance / floor ≈ 1 means the model explains the
  data down to the photon noise;
- :mod:`~ptycho_nb.diagnostics.resolution` — two reconstructions from alternate patterns
  (:func:`split_half`), and :mod:`~ptycho_nb.diagnostics.halves` — the FRC of their phases: the
  resolution the data support (½-bit and 1/7 thresholds).

:mod:`~ptycho_nb.diagnostics.summary` condenses them into a typed record of numbers
(:func:`report`) and :mod:`~ptycho_nb.diagnostics.figure` into one figure
(:func:`plot_diagnostics`). Only :mod:`~ptycho_nb.diagnostics.resolution` runs
reconstructions; the rest read given ones.

Example
-------
>>> import ptycho_nb
>>> from ptycho_nb import diagnostics
>>> scan = ptycho_nb.simulate(N=32, object_shape=(96, 96), n_positions=120)
>>> rec = ptycho_nb.reconstruct(scan, pad_eval=True)  # a frame that holds every full patch
>>> res = diagnostics.residuals(rec, scan)          # or mask=... for bad detector pixels
>>> half = diagnostics.split_half(scan)
>>> print(diagnostics.report(res, half))            # doctest: +SKIP
>>> diagnostics.plot_diagnostics(res, half);        # residual map, deviance/floor, FRC
"""

from .figure import plot_diagnostics
from .fit import Residuals, residuals
from .halves import LIT_THRESHOLD, SplitHalf, compare_halves, pixel_size_of
from ..refine.noise_floor import SERIES_FROM, expected_deviance
from .predict import (EPS, match_patterns, normalised_residuals, patches_are_the_objects,
                      predicted_counts)
from .resolution import split_half
from .summary import DiagnosticsReport, report

__all__ = [
    "residuals", "Residuals", "predicted_counts", "normalised_residuals", "match_patterns",
    "patches_are_the_objects",
    "expected_deviance", "split_half", "compare_halves", "SplitHalf", "pixel_size_of",
    "report", "DiagnosticsReport", "plot_diagnostics", "EPS", "SERIES_FROM", "LIT_THRESHOLD",
]
