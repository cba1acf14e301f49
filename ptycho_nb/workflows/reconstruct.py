"""``reconstruct()``: one call from a scan to the best reconstruction the package can make.

The start is a model (a given archive or in-memory model, else the default pretrained model
when one ships with the package, optionally fine-tuned on the scan for a few self-supervised
epochs), its single pass over the scan, then the physics refinement run to convergence
(:mod:`ptycho_nb.refine`, ``InferenceConfig.refine_*``). With no model at all
the refinement starts from a flat object and the scan's own probe: the iterative engine alone,
which is also the control every comparison carries.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import tempfile
import time
from typing import Any

import numpy as np
import torch

from ..config.canonical import InferenceConfig
from ..config.execution import PyTorchExecutionConfig
from ..config.precedence import AuditEntry
from ..data.container import PtychoData
from ..engine.run_info import InferenceRunInfo, InferenceTimings
from ..model.catalog import DEFAULT_PRETRAINED, default_model
from ..model.io import save_model
from ..refine import RefineSettings
from .inference import refine_frame, refined_reconstruction, run_inference, scan_facts
from .reconstruction import Reconstruction
from .payload import InferencePayload, create_inference_payload

__all__ = ["reconstruct", "run_reconstruct", "DEFAULT_PRETRAINED", "default_model"]

log = logging.getLogger(__name__)


def reconstruct(data: Any = None, model: Any = None, *, execution: PyTorchExecutionConfig | None = None,
                inference: InferenceConfig | None = None, front_end: str | None = None,
                verbose: bool = False, refine_callback: Any = None, **overrides: Any) -> Reconstruction:
    """Reconstruct a scan: model start (if any), single pass, refinement to convergence.

    Parameters
    ----------
    data : PtychoData or path
        The scan (any format :func:`ptycho_nb.data.load` reads).
    model : TrainResult, module, path or ``"pretrained:NAME"``, optional
        Default: ``InferenceConfig.model_path`` if set, else the packaged pretrained model
        (``DEFAULT_PRETRAINED``) when the scan's patterns have its size N, else none (a flat
        start with the scan's own probe).
    execution, inference : configs, optional
        A config object sets every field of its section, so ``execution=`` decides ``pad_eval``
        too (the dataclass default False: the box of the scan centres).
    front_end : {None, 'cli', 'widget'}
    verbose : bool
    refine_callback : callable(RefineProgress) -> bool, optional
        Called after every refinement epoch (progress, live view); True stops the refinement.
    **overrides
        Config fields by name: ``refine_probe=True``, ``fine_tune_epochs=5``,
        ``refine_epochs=50``, ``refine_start='flat'``, ...

    Returns
    -------
    Reconstruction
        As :func:`ptycho_nb.infer` returns, but by default over the whole lit field
        (``pad_eval=True``, audit source ``'reconstruct'``: every pixel the probe lit, see
        :attr:`Reconstruction.lit`); ``pad_eval=False`` or ``.crop('scan')`` gives the box of
        the scan centres. ``run.refinement.start`` says which start was used.
    """
    payload = create_inference_payload(model, data, inference=inference, execution=execution,
                                       overrides=overrides, front_end=front_end, require_model=False,
                                       command="reconstruct")
    return run_reconstruct(payload, verbose=verbose, refine_callback=refine_callback)


def run_reconstruct(payload: InferencePayload, *, verbose: bool = False,
                    refine_callback: Any = None) -> Reconstruction:
    """Run a validated payload (``require_model=False`` allowed): the CLI's entry."""
    icfg = payload.inference
    source = payload.model if payload.model is not None else icfg.model_path
    if source is None:
        # The packaged model serves scans of its own pattern size; others refine from a flat start.
        n = int(payload.test_data.diffraction.shape[-1])
        packaged = default_model()
        source = default_model(n) if packaged is not None else None
        if source is not None:
            log.info("reconstruct: starting from the packaged model %s", source)
        elif packaged is not None:
            log.info("reconstruct: the packaged model %s is for another pattern size than this "
                     "scan's %dx%d; refining from a flat start", packaged, n, n)
    if source is None:
        if icfg.fine_tune_epochs:
            raise ValueError(f"InferenceConfig.fine_tune_epochs={icfg.fine_tune_epochs} needs a model "
                             "to fine-tune; pass model=... (no packaged model serves this scan's "
                             "pattern size)")
        log.info("reconstruct: no model given or packaged for this scan; refining from a flat start")
        return _flat_reconstruction(payload, refine_callback)
    if icfg.fine_tune_epochs:
        return _fine_tuned(payload, source, verbose, refine_callback)
    return run_inference(_with_model(payload, source), verbose=verbose, refine_callback=refine_callback)


def _with_model(payload: Any, source: Any) -> Any:
    return dataclasses.replace(payload, model=source)


def _fine_tuned(payload: Any, source: Any, verbose: bool, refine_callback: Any) -> Reconstruction:
    """A few self-supervised epochs on the scan itself from ``source``, then the reconstruction.

    The fine-tune trains under the run's execution config (accelerator, precision, learning
    rate, ...: what the user set for this reconstruction), without checkpoints; its resolved
    settings join the reconstruction's audit as ``fine_tune.<section>.<field>``.
    """
    from .training import train

    icfg, data = payload.inference, payload.test_data
    with tempfile.TemporaryDirectory(prefix="ptycho_nb_finetune_") as tmp:
        init = source
        if not isinstance(source, (str, pathlib.Path)):
            module = getattr(source, "module", source)
            init = save_model(module, pathlib.Path(tmp) / "start.wts.h5.zip")
        t0 = time.perf_counter()
        tuned = train(data, init=init, execution=payload.execution.replace(enable_checkpointing=False),
                      nepochs=icfg.fine_tune_epochs, output_dir=pathlib.Path(tmp) / "tuned",
                      verbose=verbose)
        log.info("reconstruct: fine-tuned %d epoch(s) on the scan in %.1f s (%s, %s)",
                 icfg.fine_tune_epochs, time.perf_counter() - t0, tuned.run.accelerator,
                 tuned.run.precision)
        audit = payload.audit + _fine_tune_audit(tuned.audit, payload.audit)
        payload = dataclasses.replace(_with_model(payload, tuned), audit=audit,
                                      inference=dataclasses.replace(icfg, fine_tune_epochs=0))
        return run_inference(payload, verbose=verbose, refine_callback=refine_callback)


def _fine_tune_audit(trained: tuple[AuditEntry, ...],
                     run: tuple[AuditEntry, ...]) -> tuple[AuditEntry, ...]:
    """The fine-tune's settings as ``fine_tune.<section>.<field>`` entries. An execution field
    whose value is the run's keeps the run's source (an override the user typed stays an
    override, not "execution_config"); one the fine-tune sets itself says so."""
    given = {e.field: e for e in run}
    out = []
    for e in trained:
        source = e.source
        if e.field.startswith("execution."):
            mine = given.get(e.field)
            source = mine.source if mine is not None and mine.value == e.value else "reconstruct:fine_tune"
        out.append(AuditEntry(f"fine_tune.{e.field}", e.value, source))
    return tuple(out)


def _flat_reconstruction(payload: Any, refine_callback: Any) -> Reconstruction:
    """The refinement alone from a flat object, with the scan's own probe (counts units)."""
    t0 = time.perf_counter()
    data: PtychoData = payload.test_data
    icfg, ecfg = payload.inference, payload.execution
    if data.probe is None:
        raise ValueError("reconstruct without a model needs the scan's probe: this scan has none; "
                         "pass model=... (an archive, a trained model or pretrained:NAME)")
    probe = torch.from_numpy(np.asarray(data.probe, dtype=np.complex64))
    settings = RefineSettings.from_configs(icfg, ecfg, seed=0, model=False, **scan_facts(data))
    own = np.arange(data.n_patterns)
    res, record, refine_s = refine_frame(data, own, None, probe, 1.0, settings, ecfg,
                                         refine_callback=refine_callback)
    t2 = time.perf_counter()
    run = InferenceRunInfo(
        accelerator=record.device.split(":")[0], batch_size=icfg.refine_batch_size,
        middle_trim=ecfg.middle_trim, pad_eval=ecfg.pad_eval, gridsize=1, n_patterns=len(own),
        probe_source="scan", refinement=record)
    recon = refined_reconstruction(data, own, res, ecfg, timings=None, run=run, audit=payload.audit)
    t3 = time.perf_counter()  # the assembly (the patches, the weights, the crop) counts as stitching
    recon.timings = InferenceTimings(
        load_s=t2 - t0 - refine_s, forward_s=0.0, stitch_s=t3 - t2, refine_s=refine_s, total_s=t3 - t0,
        patterns_per_s=len(own) / max(t3 - t2 + refine_s, 1e-9), network_patterns_per_s=0.0)
    return recon
