"""A refinement as ``infer`` and ``reconstruct`` run it: probe start, loop, progress, record."""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from .loop import refine_scan
from .probe_start import refine_from_probe_start
from .progress import RefineProgressBar, chain_callbacks
from .record import RefineRecord, modes_reason
from .result import RefineProgress, RefineResult
from .scan import PreparedScan
from .settings import RefineSettings

__all__ = ["run_refinement"]

log = logging.getLogger(__name__)


def run_refinement(scan: PreparedScan, start: Any, probe: Any, intensity_scale: Any,
                   settings: RefineSettings, *,
                   callback: Callable[[RefineProgress], Any] | None = None,
                   progress_bar: bool = False) -> tuple[RefineResult, RefineRecord]:
    """Refine ``start`` against ``scan`` as ``settings`` say, and record what ran.

    With ``settings.refine_probe`` the probe's start is chosen as ``settings.probe_init`` says
    (:func:`~ptycho_nb.refine.probe_start.refine_from_probe_start`). ``progress_bar`` shows a
    :class:`~ptycho_nb.refine.progress.RefineProgressBar` (``enable_progress_bar``); ``callback``
    sees every epoch after it.

    Returns
    -------
    (RefineResult, RefineRecord)
    """
    bar = RefineProgressBar(settings.max_epochs) if progress_bar else None
    report = chain_callbacks(bar, callback)
    init = ""
    if settings.refine_probe:
        res, chosen = refine_from_probe_start(scan, start, probe, intensity_scale, settings,
                                              callback=report)
        init = chosen.name if chosen is not None else ("given" if settings.max_epochs > 0 else "")
        if res.modes is not None:
            log.info("refinement: %s", modes_reason(res.modes))
    else:
        res = refine_scan(scan, start, probe, intensity_scale, settings, callback=report)
    if bar is not None:
        bar.close(res.stopped)
    return res, RefineRecord.of(res, settings, init, nominal=torch.stack([scan.x, scan.y], 1))
