"""``infer()``: a trained model + a scan → one forward pass per pattern → a stitched object.

By default the stitched object is then refined against the scan's own diffraction through the
same forward model (:mod:`ptycho_nb.refine`: Poisson likelihood, mini-batch updates with
momentum, batches that grow on every plateau, stopping when the data stop improving;
``InferenceConfig.refine_*``), optionally with the probe, on the device the execution config
names. ``refine_epochs=0`` returns the network's reconstruction alone; ``refine_start='flat'``
runs the same refinement from a flat object, the control that measures what the network's start
contributes.

The same :class:`Reconstruction` comes back from the Python API and the CLI; the CLI also writes
it (``reconstruction.npz``, ``product.h5`` for ptychodus, ``reconstruction.png``).
"""

from __future__ import annotations

import logging
import pathlib
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..config.canonical import InferenceConfig
from ..config.compat import check_compatible
from ..config.execution import PyTorchExecutionConfig
from ..data.container import PtychoData
from ..data.scan_record import probe_checksum
from ..engine.datamodule import dataloader_kwargs, group_scan
from ..engine.predict import own_patches
from ..engine.run_info import InferenceRunInfo, InferenceTimings
from ..engine.trainer import resolve_accelerator
from ..model.io import load_model
from ..model.stitching import coverage, stitch_patches
from ..physics.forward import extract_patches
from ..refine import (PROBE_MISMATCH_WARN, PreparedScan, RefineSettings, flat_start, match_counts,
                      probe_mismatch, run_refinement, scan_frame)
from .payload import InferencePayload, create_inference_payload
from .reconstruction import OUTPUT_FILES, Reconstruction, assemble

__all__ = ["Reconstruction", "infer", "run_inference", "refine_frame", "OUTPUT_FILES"]

log = logging.getLogger(__name__)


def infer(model_or_archive: Any, data: Any, *, execution: PyTorchExecutionConfig | None = None,
          inference: InferenceConfig | None = None, front_end: str | None = None,
          verbose: bool = False, **overrides: Any) -> Reconstruction:
    """Reconstruct a scan with a trained model: one forward pass per pattern, then stitching.

    Parameters
    ----------
    model_or_archive : TrainResult, PINNModule, or path
        A trained model in memory, a ``wts.h5.zip`` archive, or a training output folder.
    data : PtychoData or path
        The scan to reconstruct (it need not have been seen in training).
    execution, inference : configs, optional
    front_end : {None, 'cli', 'widget'}
    **overrides
        Config fields by name (``inference_batch_size=64``, ``middle_trim=4``, ``pad_eval=True``).

    Returns
    -------
    Reconstruction
    """
    payload = create_inference_payload(model_or_archive, data, inference=inference, execution=execution,
                                       overrides=overrides, front_end=front_end)
    return run_inference(payload, verbose=verbose)


def _scan_subset(diffraction: np.ndarray, own: np.ndarray) -> np.ndarray:
    """The patterns ``own`` of a scan, without a copy when they are all of them in order."""
    if len(own) == len(diffraction) and np.array_equal(own, np.arange(len(own))):
        return diffraction
    return diffraction[own]


def scan_facts(data: PtychoData) -> dict[str, bool]:
    """What a scan's record says is exact (``RefineSettings.from_configs``' ``scan_probe_exact``,
    ``positions_exact``): a simulation knows; a measured scan (no record, or one that does not
    read) knows neither."""
    try:
        record = data.record
    except ValueError:
        record = None
    if record is None:
        return {"scan_probe_exact": False, "positions_exact": False}
    # the record speaks of the probe it was made with; a probe replaced since (a guess) is not it
    same = record.probe_checksum is None or record.probe_checksum == probe_checksum(data.probe)
    return {"scan_probe_exact": bool(record.probe_exact) and same,
            "positions_exact": record.position_error == 0 and record.position_drift == 0}


def refine_frame(data: PtychoData, own: np.ndarray, start: Any, probe: Any, scale: Any,
                 settings: RefineSettings, execution: PyTorchExecutionConfig, *,
                 refine_callback: Any = None, match: bool = False) -> tuple[Any, Any, float]:
    """Refine a start over the frame of the patterns ``own`` (:func:`~ptycho_nb.refine.scan_frame`).

    ``start`` is the frame's object, or None for a flat start (:func:`~ptycho_nb.refine.flat_start`);
    ``match`` rescales a given start to the scan's counts under ``probe``
    (:func:`~ptycho_nb.refine.match_counts`). Returns the :class:`~ptycho_nb.refine.RefineResult`,
    its :class:`~ptycho_nb.refine.RefineRecord` and the seconds it took, set-up included.
    """
    t0 = time.perf_counter()
    n = int(np.shape(probe)[-1])
    x, y = data.xcoords[own], data.ycoords[own]
    frame = scan_frame(x, y, n)
    mask = data.mask if data.mask is None or data.mask.ndim == 2 else data.mask[own]
    scan = PreparedScan.build(_scan_subset(data.diffraction, own), x - frame.col0, y - frame.row0, n,
                              frame.shape, settings.device, mask=mask)
    for name, why in settings.why:
        log.info("refinement: %s", why)
    if start is None:
        start = flat_start(scan, torch.as_tensor(probe), scale)
    elif match:
        start = match_counts(start, scan, torch.as_tensor(probe), scale)
    res, record = run_refinement(scan, start, probe, scale, settings, callback=refine_callback,
                                 progress_bar=execution.enable_progress_bar)
    return res, record, time.perf_counter() - t0


def refined_reconstruction(data: PtychoData, own: np.ndarray, res: Any, execution: PyTorchExecutionConfig,
                           **fields: Any) -> Reconstruction:
    """The :class:`Reconstruction` of a refinement's result over the frame of the patterns
    ``own``: its object, the stitching weights of its probe, the refined object's patches at the
    positions it was refined at (what the reconstruction says each pattern saw, so its
    diagnostics read them whatever frame is returned); ``fields`` are the rest of
    :func:`~ptycho_nb.workflows.reconstruction.assemble`'s."""
    probe = res.probe_array()
    x, y = data.xcoords[own], data.ycoords[own]
    frame = scan_frame(x, y, int(probe.shape[-1]))
    xl, yl = x - frame.col0, y - frame.row0
    if res.positions is not None:  # the positions the object was refined at, corrected
        xl, yl = (res.positions.cpu().numpy()[:, k].astype(np.float64) for k in (0, 1))
        x, y = xl + frame.col0, yl + frame.row0
    weight = coverage(xl, yl, probe, frame.shape, middle_trim=execution.middle_trim)
    obj = res.object_array()
    with torch.no_grad():
        fields["patches"] = extract_patches(torch.from_numpy(obj), torch.from_numpy(xl),
                                            torch.from_numpy(yl), int(probe.shape[-1])).numpy()
    return assemble(data=data, frame=frame, obj=obj, weight=weight, xcoords=x, ycoords=y,
                    probe=probe, execution=execution, **fields)


def run_inference(payload: InferencePayload, *, verbose: bool = False,
                  refine_callback: Any = None) -> Reconstruction:
    """Run a validated :class:`~ptycho_nb.workflows.payload.InferencePayload` (the CLI's entry).

    ``refine_callback(progress)`` is passed on to the refinement
    (a :class:`~ptycho_nb.refine.RefineProgress` after every refinement epoch).
    """
    t0 = time.perf_counter()
    if payload.inference.fine_tune_epochs:
        raise ValueError(f"InferenceConfig.fine_tune_epochs={payload.inference.fine_tune_epochs}: "
                         "fine-tuning is reconstruct's step (ptycho_nb.reconstruct, ptycho-nb "
                         "reconstruct); infer uses the model as it is")
    source = payload.model
    module = load_model(source) if isinstance(source, (str, pathlib.Path)) else getattr(source, "module", source)
    module.eval()
    data: PtychoData = payload.test_data
    mcfg, tcfg, ecfg = module.model_config, module.training_config, payload.execution
    check_compatible(ecfg, mcfg)
    if data.N != mcfg.N:
        raise ValueError(f"test data: patterns are {data.N}x{data.N} but the model was trained "
                         f"for N={mcfg.N}")
    if not np.any(data.diffraction):
        raise ValueError("test data: every pattern is dark (0 counts); there is nothing to "
                         "reconstruct")
    if data.n_patterns == 1 and not ecfg.pad_eval:
        raise ValueError("test data: one scan position gives a 1x1 frame; pass pad_eval=True to "
                         "keep the probe-lit area around it")
    icfg = payload.inference
    mismatch = None
    if mcfg.probe_input:
        # A probe-conditioned model reads this scan through its own probe and input statistic.
        module.adopt_scan(data)
        probe_source = "scan"
    else:
        probe_source = "model"
        mismatch = probe_mismatch(module.effective_probe.detach().cpu().numpy(), data.probe)
        if mismatch is not None and mismatch > PROBE_MISMATCH_WARN:
            then = ("the refinement lights the object with the scan's own "
                    f"(refine_probe_source={icfg.refine_probe_source!r}; 'model' keeps the model's)"
                    if icfg.refine_epochs > 0 and icfg.refine_probe_source != "model" else
                    "a probe-conditioned model (ModelConfig.probe_input) reads the scan's")
            warnings.warn(
                f"test data: the scan's probe differs from the model's (shape mismatch "
                f"{mismatch:.2f}, 0 = the same up to scale and phase); the network reads the scan "
                f"through its own probe; {then}", UserWarning, stacklevel=3)
    groups = group_scan(data, mcfg.gridsize, neighbor_count=tcfg.neighbor_count,
                        n_groups=payload.inference.n_groups, seed=tcfg.seed)
    loader_kw = dataloader_kwargs(ecfg, batch_size=tcfg.batch_size, mode="infer")
    t1 = time.perf_counter()
    # Named by purpose: a run may make two passes (the demo: the network alone, then the start
    # of a refinement), and two bars with one name do not say which is which.
    label = ("Network pass (start of refinement)" if payload.inference.refine_epochs > 0
             else "Network pass (network alone)")
    patches, forward_s, precision, _ = own_patches(module, data, groups, loader_kw, ecfg, verbose, label)
    t2 = t1 + forward_s  # the group merge counts as stitching (stitch_s), not as the network
    own = groups.indices[:, 0]
    x, y = data.xcoords[own], data.ycoords[own]
    model_probe = module.effective_probe.detach().cpu()
    n = mcfg.N
    # The frame that holds every full patch (the refinement needs them); cropped in assemble.
    full = stitch_patches(patches, x, y, model_probe, middle_trim=ecfg.middle_trim, margin=n // 2)
    record = None
    refine_s = 0.0
    if icfg.refine_epochs > 0:
        settings = RefineSettings.from_configs(icfg, ecfg, seed=0 if tcfg.seed is None else tcfg.seed,
                                               probe_conditioned=bool(mcfg.probe_input),
                                               probe_mismatch=mismatch, **scan_facts(data))
        probe, scale = model_probe, module.intensity_scale.detach().cpu()
        rescale = settings.probe_source == "scan" and not mcfg.probe_input
        if rescale:  # the scan's own probe is in counts units: scale 1, the start rescaled to it
            probe, scale = torch.from_numpy(np.asarray(data.probe, dtype=np.complex64)), 1.0
        start = None if icfg.refine_start == "flat" else full.object
        res, record, refine_s = refine_frame(data, own, start, probe, scale, settings, ecfg,
                                             refine_callback=refine_callback, match=rescale)
    t3 = time.perf_counter()
    timings = InferenceTimings(
        load_s=t1 - t0, forward_s=t2 - t1, stitch_s=t3 - t2 - refine_s, refine_s=refine_s,
        total_s=t3 - t0, patterns_per_s=len(own) / max(t3 - t1, 1e-9),
        network_patterns_per_s=len(own) / max(t3 - t1 - refine_s, 1e-9))
    run = InferenceRunInfo(
        accelerator=resolve_accelerator(ecfg), batch_size=int(loader_kw["batch_size"]),
        middle_trim=ecfg.middle_trim, pad_eval=ecfg.pad_eval, gridsize=mcfg.gridsize,
        n_patterns=int(len(own)), probe_source=probe_source, precision=precision, refinement=record)
    common = dict(execution=ecfg, timings=timings, run=run, audit=payload.audit)
    if record is not None:
        return refined_reconstruction(data, own, res, **common)
    frame = scan_frame(x, y, n)
    return assemble(data=data, frame=frame, obj=full.object, weight=full.weight, xcoords=x,
                    ycoords=y, probe=model_probe.numpy(), patches=patches.numpy(), **common)
