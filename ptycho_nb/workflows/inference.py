"""``infer()``: a trained model + a scan → one forward pass per pattern → a stitched object.

By default the stitched object is then refined against the scan's own diffraction through the
same forward model (:func:`ptycho_nb.model.refine.refine`: Poisson likelihood, mini-batch
updates with momentum, batches that grow on every plateau, stopping when the data stop
improving; ``InferenceConfig.refine_*``), optionally with the probe. ``refine_epochs=0`` returns
the network's reconstruction alone; ``refine_start='flat'`` runs the same refinement from a flat
object, the control that measures what the network's start contributes.

The same :class:`Reconstruction` comes back from the Python API and the CLI; the CLI also writes
it (``reconstruction.npz``, ``product.h5`` for ptychodus, ``reconstruction.png``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import pathlib
import time
import warnings
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..atomic import atomic_files
from ..config.canonical import InferenceConfig
from ..config.compat import check_compatible
from ..config.execution import PyTorchExecutionConfig
from ..config.precedence import AuditEntry
from ..data.container import PtychoData
from ..data.grouping import Groups
from ..data.ptychodus import write_ptychodus_product
from ..engine.datamodule import dataloader_kwargs, group_scan
from ..engine.refine_progress import RefineProgressBar, chain_callbacks
from ..engine.run_info import InferenceRunInfo, InferenceTimings
from ..engine.trainer import build_trainer, quiet_lightning, resolve_accelerator
from ..metrics import compare
from ..model.overlap import merge_own_patches
from ..model.probe_start import refine_from_probe_start
from ..model.refine import refine
from ..model.stitching import StitchedObject, stitch_patches
from ..physics.forward import extract_patches
from ..plots import plot_reconstruction
from ..model.io import load_model
from .payload import InferencePayload, create_inference_payload

__all__ = ["Reconstruction", "infer", "run_inference", "OUTPUT_FILES"]

log = logging.getLogger(__name__)

#: Files :meth:`Reconstruction.save` writes into its folder.
OUTPUT_FILES = ("reconstruction.npz", "product.h5", "reconstruction.png")


@dataclasses.dataclass(eq=False)
class Reconstruction:
    """A reconstructed object and how it was made.

    Attributes
    ----------
    object : (H, W) complex64
        The stitched object transmission in the frame described by ``offset``.
    offset : (int, int)
        (row0, col0): frame pixel (r, c) is pixel (r + row0, c + col0) of the scan's coordinates
        (for simulated data, of the ground truth).
    weight : (H, W) float32
        Summed stitching weights (probe intensity × coverage); 0 where nothing was reconstructed.
    patches : (M, N, N) complex64
        The per-pattern predictions that were stitched.
    xcoords, ycoords : (M,) float64
        Their patch centres (scan coordinates).
    probe : (N, N) or (K, N, N) complex64
        The probe the model used (refined when it was trainable, and by the physics
        refinement when ``refine_probe``).
    truth : (H0, W0) complex64 or None
        The scan's ground truth, when it had one (for plots and :meth:`compare`).
    timings : InferenceTimings
        Seconds per phase (load, forward, stitch, refine, total) and patterns per second.
        ``forward_s`` is the network's single pass over the distinct patterns the groups use;
        ``stitch_s`` includes the gridsize > 1 group merge that follows it.
    run : InferenceRunInfo
        Resolved accelerator, batch size, middle_trim, pad_eval, refinement epochs and losses.
    audit : tuple of AuditEntry
    """

    object: np.ndarray
    offset: tuple[int, int]
    weight: np.ndarray
    patches: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    probe: np.ndarray
    truth: np.ndarray | None
    timings: InferenceTimings
    run: InferenceRunInfo
    audit: tuple[AuditEntry, ...] = ()

    @property
    def settings(self) -> dict[str, Any]:
        """Deprecated dict form of :attr:`run`."""
        warnings.warn("Reconstruction.settings is deprecated: use Reconstruction.run "
                      "(an InferenceRunInfo)", DeprecationWarning, stacklevel=2)
        return self.run.as_dict()

    @property
    def amplitude(self) -> np.ndarray:
        """|object|, (H, W) float32."""
        return np.abs(self.object).astype(np.float32)

    @property
    def phase(self) -> np.ndarray:
        """angle(object) in radians, (H, W) float32."""
        return np.angle(self.object).astype(np.float32)

    def compare(self, truth: np.ndarray | None = None, **kwargs: Any) -> dict[str, Any]:
        """Aligned amplitude/phase metrics against ``truth`` (default: the scan's ground truth)."""
        truth = self.truth if truth is None else truth
        if truth is None:
            raise ValueError("truth: this scan has no ground truth; pass one")
        kwargs.setdefault("xcoords", self.xcoords)
        kwargs.setdefault("ycoords", self.ycoords)
        kwargs.setdefault("probe", self.probe)
        return compare(self.object, truth, offset=self.offset, **kwargs)

    def plot(self, path: str | pathlib.Path | None = None, *, show: bool | None = None) -> Any:
        """Figure of amplitude and phase (and ground truth and error when known).

        In a notebook cell the figure is shown when the cell ends, also after ``recon.plot();``
        (``show=False``: never; see :func:`ptycho_nb.plots.show_figure`).
        """
        return plot_reconstruction(self, path, show=show)

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        # show=False: this *is* the display; queueing the figure again would show it twice
        plot_reconstruction(self, show=False).savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    def __repr__(self) -> str:
        t = self.timings
        return (f"Reconstruction(object {self.object.shape[0]}x{self.object.shape[1]} at offset "
                f"{self.offset}, {self.patches.shape[0]} patterns, {t.patterns_per_s:.0f} "
                f"patterns/s)")

    def save(self, output_dir: str | pathlib.Path, *, overwrite: bool = False) -> dict[str, pathlib.Path]:
        """Write reconstruction.npz, product.h5 (ptychodus) and reconstruction.png into a folder.

        The three files appear together or not at all (written into a staging folder beside
        them, then moved into place; see :func:`ptycho_nb.atomic.atomic_files`): a failure, a
        full disk included, leaves neither a partial set nor, with ``overwrite=True``, a mix of
        new and old files. Refuses to replace existing files unless ``overwrite=True`` (checked
        for all three before any is written).
        """
        out = pathlib.Path(output_dir)
        paths = {name: out / name for name in OUTPUT_FILES}
        with atomic_files(paths, overwrite=overwrite) as tmp:
            with open(tmp["reconstruction.npz"], "wb") as fh:
                np.savez_compressed(
                    fh, object=self.object, amplitude=self.amplitude, phase=self.phase,
                    offset=np.asarray(self.offset, dtype=np.int64), weight=self.weight,
                    xcoords=self.xcoords, ycoords=self.ycoords, probe=self.probe,
                    metadata_json=np.asarray(json.dumps({"timings": self.timings.as_dict(),
                                                         "run": self.run.as_dict()}, default=str)))
            write_ptychodus_product(
                None, tmp["product.h5"], object=self.object, probe=self.probe,
                xcoords=self.xcoords - self.offset[1], ycoords=self.ycoords - self.offset[0])
            # show=False: the PNG it writes is not a figure to show in the cell
            self.plot(show=False).savefig(tmp["reconstruction.png"], format="png", dpi=100)
        return paths


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


#: Precisions under which the network runs in channels-last memory format on the CPU: there
#: bench/inference_speed.py measured it faster at equal results (float32 only; under bf16-mixed
#: it measured no faster). Not applied on other accelerators, where it was not measured.
CHANNELS_LAST_PRECISIONS = ("32-true",)


class _Patterns(Dataset):
    """Single diffraction patterns, ``(1, N, N)`` float32 amplitudes, in the order of ``index``."""

    def __init__(self, diffraction: np.ndarray, index: np.ndarray) -> None:
        # One contiguous float32 copy (none when the scan is float32 already); samples are views.
        self.diffraction = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
        self.index = torch.from_numpy(np.asarray(index, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.diffraction[self.index[i]][None]


class _NetworkPredictor(L.LightningModule):
    """``predict_step``: a model's network alone on single patterns, (B, 1, N, N) → (B, N, N).

    The whole model is wrapped, not only its network, so Lightning moves (and, for a precision
    such as '64-true', converts) it as a whole, as it did for the grouped forward pass.
    ``progress_label`` names the pass in the progress bar (a run can make more than one).
    """

    def __init__(self, inner: Any, channels_last: bool, progress_label: str = "Network pass") -> None:
        super().__init__()
        self.inner = inner
        self.channels_last = channels_last
        self.progress_label = progress_label

    def predict_step(self, batch: torch.Tensor | dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):  # a context network: the pattern with its group's estimates
            d = batch["diffraction"]
            if self.channels_last:
                d = d.contiguous(memory_format=torch.channels_last)
            return self.inner.network_patches(d, offset_x=batch["offset_x"], offset_y=batch["offset_y"],
                                              estimates=batch["estimates"], own_only=True)[:, 0]
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.inner.network_patches(batch)[:, 0]


@contextlib.contextmanager
def _channels_last(net: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Hold ``net``'s 4-D weights in channels-last format inside the block, contiguous after
    (so a later training run, and the saved archive, see the layout they always had)."""
    if not enabled:
        yield
        return
    net.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        net.to(memory_format=torch.contiguous_format)


def _predict_patterns(module: Any, dataset: Dataset, loader_kw: dict[str, Any],
                      execution: PyTorchExecutionConfig, verbose: bool,
                      label: str = "Network pass") -> tuple[torch.Tensor, torch.device, str]:
    """Each pattern of ``dataset`` through the network once: (U, N, N) complex64 patches on the
    CPU, the device the network ran on (where the group merge runs too) and the precision
    Lightning ran it in."""
    channels_last = (resolve_accelerator(execution) == "cpu"
                     and execution.precision in CHANNELS_LAST_PRECISIONS)
    with quiet_lightning(verbose), _channels_last(module.net, channels_last):
        trainer = build_trainer(execution, mode="infer", verbose=verbose)
        outs = trainer.predict(_NetworkPredictor(module, channels_last, label),
                               dataloaders=DataLoader(dataset, **loader_kw))
    patches = torch.cat([o.detach().cpu().to(torch.complex64) for o in outs], dim=0)
    return patches, trainer.strategy.root_device, str(trainer.precision)


def _own_patches(module: Any, data: PtychoData, groups: Groups, loader_kw: dict[str, Any],
                 execution: PyTorchExecutionConfig, verbose: bool,
                 label: str = "Network pass") -> tuple[torch.Tensor, float, str]:
    """Member 0 of every group, merged with its neighbours when C > 1 (object_big).

    The network maps every pattern on its own, so each distinct pattern the groups use goes
    through it once; the groups' merged patches are then formed from those per-pattern patches
    (:func:`~ptycho_nb.model.overlap.merge_own_patches`, in batches of the inference batch size,
    as the grouped forward pass merged them). Without the merge only the groups' own patterns
    are needed.

    Returns
    -------
    patches : (G, N, N) complex64 tensor (CPU)
    forward_s : float
        Seconds of the network pass alone (the merge follows it).
    precision : str
        The precision the pass ran in (what ran, e.g. 'bf16-mixed' for '16-mixed' on a CPU).
    """
    merge = groups.group_size > 1 and module.model_config.object_big
    used = groups.indices if merge else groups.indices[:, :1]
    patterns, members = np.unique(used, return_inverse=True)
    members = torch.from_numpy(members.reshape(used.shape).astype(np.int64))
    t0 = time.perf_counter()
    if module.net.context_patterns > 1:
        # each pattern with the group seeded at it; every pattern's estimate made once (counted
        # in the network's time)
        tcfg = module.training_config
        dataset: Dataset = module.context_dataset(
            data.diffraction, data.xcoords, data.ycoords, patterns, neighbor_count=tcfg.neighbor_count,
            seed=tcfg.seed, batch_size=int(loader_kw["batch_size"]))
    else:
        dataset = _Patterns(data.diffraction, patterns)
    per_pattern, device, precision = _predict_patterns(module, dataset, loader_kw, execution, verbose, label)
    forward_s = time.perf_counter() - t0
    if not merge:
        return per_pattern[members[:, 0]], forward_s, precision
    offset_x = torch.from_numpy(groups.offset_x.astype(np.float32))
    offset_y = torch.from_numpy(groups.offset_y.astype(np.float32))
    patches = merge_own_patches(per_pattern, members, offset_x, offset_y,
                                chunk_size=int(loader_kw["batch_size"]), device=device)
    return patches, forward_s, precision


#: probe_mismatch above which infer() warns that the scan's probe is not the model's.
PROBE_MISMATCH_WARN = 0.05


def probe_mismatch(a: np.ndarray, b: np.ndarray | None) -> float | None:
    """``1 - |<a, b>| / (|a| |b|)`` of two probes (modes summed in intensity): 0 when they are the
    same up to scale and a global phase, 1 when orthogonal; None when ``b`` is None or the
    sizes differ."""
    if b is None:
        return None
    a = np.asarray(a).reshape(-1, *np.shape(a)[-2:])[0]
    b = np.asarray(b).reshape(-1, *np.shape(b)[-2:])[0]
    if a.shape != b.shape:
        return None
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if not (na > 0 and nb > 0):
        return None
    return float(1.0 - abs(np.vdot(a, b)) / (na * nb))


def flat_amplitude(diffraction: np.ndarray, probe: torch.Tensor, scale: Any) -> float:
    """The flat object's amplitude that predicts the scan's mean counts per pattern.

    A flat object c under probe P predicts ``scale · c² · sum|P|²`` counts per pattern (the
    orthonormal FFT keeps energy), so the control's start uses only the data and the probe.
    """
    counts = float(np.mean(np.sum(np.square(diffraction, dtype=np.float64), axis=(-2, -1))))
    power = float(torch.sum(probe.abs() ** 2)) * float(scale)
    if not (counts > 0 and power > 0):
        raise ValueError("refine_start='flat': the scan's patterns hold no counts (or the probe "
                         "no power); a flat start cannot be scaled")
    return math.sqrt(counts / power)


def refinement_probe(icfg: InferenceConfig, model_probe: torch.Tensor, model_scale: Any,
                     scan_probe: np.ndarray, *, probe_conditioned: bool,
                     mismatch: float | None) -> tuple[torch.Tensor, Any, str]:
    """The probe and intensity scale the refinement starts from, and whose it is.

    ``refine_probe_source='auto'`` takes the scan's probe when the model reads the scan through
    another one (``mismatch`` above :data:`PROBE_MISMATCH_WARN`, or probes of other shapes), the
    model's otherwise. The scan's probe comes with scale 1: the start is then rescaled to the
    scan's counts (:func:`match_counts`), as a flat start is.
    """
    source = icfg.refine_probe_source
    if probe_conditioned:
        source = "model"  # the model's probe is the scan's already (adopt_scan)
    elif source == "auto":
        differs = mismatch is None or mismatch > PROBE_MISMATCH_WARN
        source = "scan" if differs else "model"
    if source == "model":
        return model_probe, model_scale, "scan" if probe_conditioned else "model"
    return torch.from_numpy(np.asarray(scan_probe, dtype=np.complex64)), 1.0, "scan"


def match_counts(start: np.ndarray, diffraction: np.ndarray, x: np.ndarray, y: np.ndarray,
                 probe: torch.Tensor, scale: Any) -> np.ndarray:
    """``start`` times the one factor that makes its predicted counts the scan's, on average.

    The orthonormal FFT keeps energy, so a pattern's predicted counts are
    ``scale · Σ|P|²·|O_patch|²`` (modes summed); ``x``, ``y`` are patch centres in ``start``'s
    frame (px). Used when the refinement's probe is not the one the start was made with.
    """
    n = int(probe.shape[-1])
    obj = torch.from_numpy(np.ascontiguousarray(start, dtype=np.complex64))
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64))
    p_int = (probe.abs() ** 2).reshape(-1, n, n).sum(dim=0)
    total = 0.0
    for i in range(0, len(xt), 1024):  # chunks: a whole scan's patches need not fit in memory
        patches = extract_patches(obj, xt[i:i + 1024], yt[i:i + 1024], n)
        total += float((p_int * patches.abs() ** 2).sum(dtype=torch.float64))
    predicted = total * float(scale) / max(len(x), 1)
    counts = float(np.mean(np.sum(np.square(diffraction, dtype=np.float64), axis=(-2, -1))))
    if not (predicted > 0 and counts > 0):
        return start
    return (start * math.sqrt(counts / predicted)).astype(start.dtype)


#: ``InferenceConfig.refine_momentum=None``: the object-only momentum, and the one with
#: ``refine_probe`` (joint least-squares steps; momentum on the coupled pair measured worse in
#: phase SSIM on 1,000-pattern scans at 10³–10⁶ photons, README "How it compares").
AUTO_MOMENTUM = {False: 0.85, True: 0.0}


def refine_momentum(icfg: InferenceConfig) -> float:
    """The momentum a refinement runs with (``refine_momentum``, or its automatic value)."""
    if icfg.refine_momentum is not None:
        return float(icfg.refine_momentum)
    return AUTO_MOMENTUM[bool(icfg.refine_probe)]


def refine_as_configured(start: Any, diffraction: np.ndarray, x: np.ndarray, y: np.ndarray,
                         probe: Any, scale: Any, icfg: InferenceConfig,
                         ecfg: PyTorchExecutionConfig, *, seed: int,
                         callback: Any = None) -> tuple[Any, str]:
    """:func:`~ptycho_nb.model.refine.refine` with the ``InferenceConfig.refine_*`` settings, and
    a progress bar when ``enable_progress_bar`` (for every front end that refines).

    With ``refine_probe`` the probe's start is chosen as ``refine_probe_init`` says
    (:func:`~ptycho_nb.model.probe_start.refine_from_probe_start`). Returns the
    :class:`~ptycho_nb.model.refine.RefineResult` and the probe start that ran ('given',
    'patterns+', 'patterns-'; '' without probe refinement).
    """
    bar = RefineProgressBar(icfg.refine_epochs) if ecfg.enable_progress_bar else None
    kw = dict(step=icfg.refine_step, alpha=icfg.refine_alpha, momentum=refine_momentum(icfg),
              batch_size=icfg.refine_batch_size, tol=icfg.refine_tolerance,
              patience=icfg.refine_patience, noise=icfg.refine_noise_model,
              poisson_step=icfg.refine_poisson_step, holdout=icfg.refine_holdout, seed=seed,
              callback=chain_callbacks(bar, callback))
    init = ""
    if icfg.refine_probe:
        res, chosen = refine_from_probe_start(start, diffraction, x, y, probe, scale,
                                              init=icfg.refine_probe_init,
                                              max_epochs=icfg.refine_epochs, **kw)
        init = chosen.name if chosen is not None else ("given" if icfg.refine_epochs > 0 else "")
    else:
        res = refine(start, diffraction, x, y, probe, scale, max_epochs=icfg.refine_epochs, **kw)
    if bar is not None:
        bar.close(res.stopped)
    return res, init


def run_inference(payload: InferencePayload, *, verbose: bool = False,
                  refine_callback: Any = None) -> Reconstruction:
    """Run a validated :class:`~ptycho_nb.workflows.payload.InferencePayload` (the CLI's entry).

    ``refine_callback(progress)`` is passed on to :func:`~ptycho_nb.model.refine.refine`
    (a :class:`~ptycho_nb.model.refine.RefineProgress` after every refinement epoch).
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
    patches, forward_s, precision = _own_patches(module, data, groups, loader_kw, ecfg, verbose, label)
    t2 = t1 + forward_s  # the group merge counts as stitching (stitch_s), not as the network
    own = groups.indices[:, 0]
    x, y = data.xcoords[own], data.ycoords[own]
    probe = module.effective_probe.detach().cpu()
    n = mcfg.N
    margin = (n // 2 - ecfg.middle_trim) if ecfg.pad_eval else 0
    refine_info: dict[str, Any] = {}
    if icfg.refine_epochs > 0:
        # The refinement needs every full patch inside its frame; crop to the asked-for frame after.
        full = stitch_patches(patches, x, y, probe, middle_trim=ecfg.middle_trim, margin=n // 2)
        t_s = time.perf_counter()
        scale = module.intensity_scale.detach().cpu()
        xl, yl = x - full.offset[1], y - full.offset[0]  # positions in the refinement's frame
        probe, scale, refine_source = refinement_probe(
            icfg, probe, scale, data.probe, probe_conditioned=bool(mcfg.probe_input), mismatch=mismatch)
        start = full.object
        if icfg.refine_start == "flat":
            start = np.full_like(full.object, flat_amplitude(data.diffraction[own], probe, scale))
        elif refine_source == "scan" and not mcfg.probe_input:
            start = match_counts(start, data.diffraction[own], xl, yl, probe, scale)
        res, probe_init = refine_as_configured(
            start, data.diffraction[own], xl, yl, probe, scale, icfg, ecfg,
            seed=0 if tcfg.seed is None else tcfg.seed, callback=refine_callback)
        cut = n // 2 - margin
        sl = (slice(cut, full.object.shape[0] - cut), slice(cut, full.object.shape[1] - cut))
        stitched = StitchedObject(object=res.object.numpy()[sl].astype(np.complex64),
                                  weight=full.weight[sl], offset=(full.offset[0] + cut, full.offset[1] + cut))
        probe = res.probe
        refine_info = {"refine_s": time.perf_counter() - t_s, "result": res, "probe_init": probe_init}
    else:
        stitched = stitch_patches(patches, x, y, probe, middle_trim=ecfg.middle_trim, margin=margin)
    t3 = time.perf_counter()
    refine_s = refine_info.get("refine_s", 0.0)
    timings = InferenceTimings(
        load_s=t1 - t0, forward_s=t2 - t1, stitch_s=t3 - t2 - refine_s, refine_s=refine_s,
        total_s=t3 - t0, patterns_per_s=len(own) / max(t3 - t1, 1e-9),
        network_patterns_per_s=len(own) / max(t3 - t1 - refine_s, 1e-9))
    run = InferenceRunInfo(
        accelerator=resolve_accelerator(ecfg), batch_size=int(loader_kw["batch_size"]),
        middle_trim=ecfg.middle_trim, pad_eval=ecfg.pad_eval, gridsize=mcfg.gridsize,
        n_patterns=int(len(own)), refine_epochs=icfg.refine_epochs, refine_step=icfg.refine_step,
        refine_loss=tuple(res.deviance) if refine_info else (),
        refine_epochs_run=res.epochs_run if refine_info else 0,
        refine_stopped=res.stopped if refine_info else "",
        refine_probe=bool(icfg.refine_probe and icfg.refine_epochs > 0),
        refine_start=icfg.refine_start, probe_source=probe_source, precision=precision,
        refine_momentum=refine_momentum(icfg) if refine_info else 0.0,
        refine_probe_source=refine_source if refine_info else "",
        refine_step_rule=res.step_rule if refine_info else "",
        refine_probe_init=refine_info.get("probe_init", ""))
    return Reconstruction(
        object=stitched.object, offset=stitched.offset, weight=stitched.weight,
        patches=patches.numpy(), xcoords=x.copy(), ycoords=y.copy(),
        probe=probe.numpy().astype(np.complex64), truth=data.object, timings=timings,
        run=run, audit=payload.audit)
