"""``reconstruct()``: one call from a scan to the best reconstruction the package can make.

The start is a model (a given archive or in-memory model, else the default pretrained model
when one ships with the package, optionally fine-tuned on the scan for a few self-supervised
epochs), its single pass over the scan, then the physics refinement run to convergence
(:func:`ptycho_nb.model.refine.refine`, ``InferenceConfig.refine_*``). With no model at all
the refinement starts from a flat object and the scan's own probe: the iterative engine alone,
which is also the control every comparison carries.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import tempfile
import time
from typing import Any

import numpy as np
import torch

from ..config.canonical import InferenceConfig
from ..config.execution import PyTorchExecutionConfig
from ..data.container import PtychoData
from ..engine.run_info import InferenceRunInfo, InferenceTimings
from ..physics.forward import place_patches, extract_patches
from .inference import Reconstruction, flat_amplitude, refine_as_configured, refine_momentum, run_inference
from ..model.catalog import DEFAULT_PRETRAINED, default_model
from ..model.io import save_model
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
        As :func:`ptycho_nb.infer` returns; ``run.refine_start`` says which start was used.
    """
    payload = create_inference_payload(model, data, inference=inference, execution=execution,
                                       overrides=overrides, front_end=front_end, require_model=False)
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
        if icfg.refine_probe_source == "model":
            raise ValueError("InferenceConfig.refine_probe_source='model' needs a model; without one "
                             "the refinement uses the scan's own probe ('scan' or 'auto')")
        log.info("reconstruct: no model given or packaged for this scan; refining from a flat start")
        return _flat_reconstruction(payload, refine_callback)
    if icfg.fine_tune_epochs:
        return _fine_tuned(payload, source, verbose, refine_callback)
    return run_inference(_with_model(payload, source), verbose=verbose, refine_callback=refine_callback)


def _with_model(payload: Any, source: Any) -> Any:
    return dataclasses.replace(payload, model=source)


def _fine_tuned(payload: Any, source: Any, verbose: bool, refine_callback: Any) -> Reconstruction:
    """A few self-supervised epochs on the scan itself from ``source``, then the reconstruction."""
    from .training import train

    icfg, data = payload.inference, payload.test_data
    with tempfile.TemporaryDirectory(prefix="ptycho_nb_finetune_") as tmp:
        init = source
        if not isinstance(source, (str, pathlib.Path)):
            module = getattr(source, "module", source)
            init = save_model(module, pathlib.Path(tmp) / "start.wts.h5.zip")
        t0 = time.perf_counter()
        tuned = train(data, init=init, nepochs=icfg.fine_tune_epochs, output_dir=pathlib.Path(tmp) / "tuned",
                      enable_progress_bar=payload.execution.enable_progress_bar,
                      enable_checkpointing=False, verbose=verbose)
        log.info("reconstruct: fine-tuned %d epoch(s) on the scan in %.1f s", icfg.fine_tune_epochs,
                 time.perf_counter() - t0)
        payload = _with_model(payload, tuned)
        payload = dataclasses.replace(payload, inference=dataclasses.replace(icfg, fine_tune_epochs=0))
        return run_inference(payload, verbose=verbose, refine_callback=refine_callback)


def _flat_reconstruction(payload: Any, refine_callback: Any) -> Reconstruction:
    """The refinement alone from a flat object, with the scan's own probe (counts units)."""
    t0 = time.perf_counter()
    data: PtychoData = payload.test_data
    icfg, ecfg = payload.inference, payload.execution
    if data.probe is None:
        raise ValueError("reconstruct without a model needs the scan's probe: this scan has none; "
                         "pass model=... (an archive, a trained model or pretrained:NAME)")
    probe = torch.from_numpy(np.asarray(data.probe, dtype=np.complex64))
    n = int(probe.shape[-1])
    x, y = np.asarray(data.xcoords, np.float64), np.asarray(data.ycoords, np.float64)
    # A frame holding every full patch: the bounding box of the positions padded by N/2.
    row0, col0 = math.floor(y.min() - n / 2), math.floor(x.min() - n / 2)
    h = math.ceil(y.max() + n / 2) - row0 + 1
    w = math.ceil(x.max() + n / 2) - col0 + 1
    xl, yl = x - col0, y - row0
    amp = flat_amplitude(data.diffraction, probe, 1.0)
    start = np.full((h, w), amp, dtype=np.complex64)
    epochs = icfg.refine_epochs
    t1 = time.perf_counter()
    res, probe_init = refine_as_configured(start, data.diffraction, xl, yl, probe, 1.0, icfg, ecfg,
                                           seed=0, callback=refine_callback)
    t2 = time.perf_counter()
    with torch.no_grad():
        p_int = (res.probe.abs() ** 2).reshape(-1, n, n).sum(dim=0)
        weight = place_patches(p_int.expand(len(x), n, n).contiguous(), torch.from_numpy(xl),
                               torch.from_numpy(yl), (h, w)).numpy()
        patches = extract_patches(res.object, torch.from_numpy(xl), torch.from_numpy(yl), n).numpy()
    # The frame infer() returns: the positions' bounding box, padded by N/2 - middle_trim with pad_eval.
    margin = (n // 2 - ecfg.middle_trim) if ecfg.pad_eval else 0
    cut = n // 2 - margin
    sl = (slice(cut, h - cut), slice(cut, w - cut))
    t3 = time.perf_counter()
    timings = InferenceTimings(load_s=t1 - t0, forward_s=0.0, stitch_s=t3 - t2, refine_s=t2 - t1,
                               total_s=t3 - t0, patterns_per_s=len(x) / max(t3 - t1, 1e-9),
                               network_patterns_per_s=0.0)
    run = InferenceRunInfo(
        accelerator="cpu", batch_size=icfg.refine_batch_size, middle_trim=ecfg.middle_trim,
        pad_eval=ecfg.pad_eval, gridsize=1, n_patterns=len(x), refine_epochs=epochs,
        refine_step=icfg.refine_step, refine_loss=tuple(res.deviance), refine_epochs_run=res.epochs_run,
        refine_stopped=res.stopped, refine_probe=bool(icfg.refine_probe and epochs > 0),
        refine_start="flat", probe_source="scan", refine_probe_source="scan" if epochs > 0 else "",
        refine_momentum=refine_momentum(icfg) if epochs > 0 else 0.0,
        refine_step_rule=res.step_rule if epochs > 0 else "", refine_probe_init=probe_init)
    return Reconstruction(
        object=res.object.numpy()[sl].astype(np.complex64), offset=(row0 + cut, col0 + cut),
        weight=weight[sl].astype(np.float32), patches=patches.astype(np.complex64), xcoords=x.copy(),
        ycoords=y.copy(), probe=res.probe.numpy().astype(np.complex64), truth=data.object,
        timings=timings, run=run, audit=payload.audit)
