"""The network's single pass over a scan: datasets, the prediction module and the Trainer's run.

Inference passes each distinct pattern through the network once (the network maps every
pattern on its own) through a Lightning ``Trainer`` built from the execution config
(:func:`~ptycho_nb.engine.trainer.build_trainer`, ``mode='infer'``), so accelerator, devices,
precision and the progress bar land as they do in training. A gridsize > 1 model's groups are
then merged from those per-pattern patches (:func:`~ptycho_nb.model.overlap.merge_own_patches`).
A context network (``PtychoNet.context_patterns`` > 1) reads each pattern with its group's
per-pattern estimates (:class:`ContextPatterns`, made by :func:`context_dataset`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config.execution import PyTorchExecutionConfig
from ..data.container import PtychoData
from ..data.grouping import Groups, group_neighbors
from ..model.overlap import merge_own_patches
from .trainer import build_trainer, quiet_lightning, resolve_accelerator

__all__ = ["PatternDataset", "ContextPatterns", "context_dataset", "NetworkPredictor",
           "predict_patterns", "own_patches", "CHANNELS_LAST_PRECISIONS"]

#: Precisions under which the network runs in channels-last memory format on the CPU: there
#: bench/inference_speed.py measured it faster at equal results (float32 only; under bf16-mixed
#: it measured no faster). Not applied on other accelerators, where it was not measured.
CHANNELS_LAST_PRECISIONS = ("32-true",)


class PatternDataset(Dataset):
    """Single diffraction patterns, ``(1, N, N)`` float32 amplitudes, in the order of ``index``."""

    def __init__(self, diffraction: np.ndarray, index: np.ndarray) -> None:
        # One contiguous float32 copy (none when the scan is float32 already); samples are views.
        self.diffraction = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
        self.index = torch.from_numpy(np.asarray(index, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.diffraction[self.index[i]][None]


class ContextPatterns(Dataset):
    """Inference samples of a context network: one pattern with its group's estimates.

    Sample ``i`` (pattern ``index[i]``) is ``{'diffraction': (1, N, N) float32, 'estimates':
    (S, N, N) complex64, 'offset_x', 'offset_y': (S,) float32}``: the pattern, the estimates of
    the group seeded at it (``members[index[i]]``, itself first) and those members' positions.

    Parameters
    ----------
    diffraction : (M, N, N) amplitudes
    estimates : complex tensor, (M, N, N)
        Every pattern's per-pattern estimate (computed once per scan).
    members : (M, S) int
        Row j: the group seeded at pattern j (column 0 is j).
    xcoords, ycoords : (M,) float
        Scan positions, object pixels.
    index : (U,) int
        The patterns to serve, in order.
    """

    def __init__(self, diffraction: np.ndarray, estimates: torch.Tensor, members: np.ndarray,
                 xcoords: np.ndarray, ycoords: np.ndarray, index: np.ndarray) -> None:
        self.diffraction = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
        self.estimates = estimates.to(torch.complex64)
        self.members = torch.from_numpy(np.asarray(members, dtype=np.int64))
        if self.members.ndim != 2 or not torch.equal(self.members[:, 0], torch.arange(len(self.members))):
            raise ValueError("members: expected (M, S) groups seeded at every pattern (column 0 = the row)")
        self.x = torch.from_numpy(np.asarray(xcoords, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(ycoords, dtype=np.float32))
        self.index = torch.from_numpy(np.asarray(index, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = self.index[i]
        m = self.members[j]
        return {"diffraction": self.diffraction[j][None], "estimates": self.estimates[m],
                "offset_x": self.x[m], "offset_y": self.y[m]}


def context_dataset(module: Any, diffraction: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray,
                    index: np.ndarray | None = None, *, neighbor_count: int | None = None,
                    seed: int | None = 0, batch_size: int = 256) -> ContextPatterns:
    """Inference samples of a ``context_patterns`` network for a scan: each pattern of ``index``
    (default: all) with the group seeded at it.

    Every pattern's estimate is made once (``module.pattern_estimates``: the module's probe and
    intensity scale; adopt a scan's first for a ``probe_input`` model), in ``batch_size`` chunks
    where the module is.
    """
    s = module.net.context_patterns
    if s < 2:
        raise ValueError("context_dataset: this network reads each pattern's own estimate alone")
    d = np.ascontiguousarray(diffraction, dtype=np.float32)
    groups = group_neighbors(xcoords, ycoords, math.isqrt(s), neighbor_count=neighbor_count, seed=seed)
    dev = module.probe.device
    with torch.no_grad():
        est = torch.cat([module.pattern_estimates(torch.from_numpy(d[i:i + batch_size]).to(dev)[:, None])[:, 0].cpu()
                         for i in range(0, len(d), batch_size)])
    index = np.arange(len(d)) if index is None else index
    return ContextPatterns(d, est, groups.indices, xcoords, ycoords, index)


class NetworkPredictor(L.LightningModule):
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


def predict_patterns(module: Any, dataset: Dataset, loader_kw: dict[str, Any],
                     execution: PyTorchExecutionConfig, verbose: bool,
                     label: str = "Network pass") -> tuple[torch.Tensor, torch.device, str]:
    """Each pattern of ``dataset`` through the network once: (U, N, N) complex64 patches on the
    CPU, the device the network ran on (where the group merge runs too) and the precision
    Lightning ran it in."""
    channels_last = (resolve_accelerator(execution) == "cpu"
                     and execution.precision in CHANNELS_LAST_PRECISIONS)
    with quiet_lightning(verbose), _channels_last(module.net, channels_last):
        trainer = build_trainer(execution, mode="infer", verbose=verbose)
        outs = trainer.predict(NetworkPredictor(module, channels_last, label),
                               dataloaders=DataLoader(dataset, **loader_kw))
    patches = torch.cat([o.detach().cpu().to(torch.complex64) for o in outs], dim=0)
    return patches, trainer.strategy.root_device, str(trainer.precision)


def own_patches(module: Any, data: PtychoData, groups: Groups, loader_kw: dict[str, Any],
                execution: PyTorchExecutionConfig, verbose: bool,
                label: str = "Network pass") -> tuple[torch.Tensor, float, str, str]:
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
    device : str
        Where the network ran ('cpu', 'cuda:0', ...).
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
        dataset: Dataset = context_dataset(
            module, data.diffraction, data.xcoords, data.ycoords, patterns,
            neighbor_count=tcfg.neighbor_count, seed=tcfg.seed, batch_size=int(loader_kw["batch_size"]))
    else:
        dataset = PatternDataset(data.diffraction, patterns)
    per_pattern, device, precision = predict_patterns(module, dataset, loader_kw, execution, verbose, label)
    forward_s = time.perf_counter() - t0
    if not merge:
        return per_pattern[members[:, 0]], forward_s, precision, str(device)
    offset_x = torch.from_numpy(groups.offset_x.astype(np.float32))
    offset_y = torch.from_numpy(groups.offset_y.astype(np.float32))
    patches = merge_own_patches(per_pattern, members, offset_x, offset_y,
                                chunk_size=int(loader_kw["batch_size"]), device=device)
    return patches, forward_s, precision, str(device)
