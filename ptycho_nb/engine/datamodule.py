"""Grouped diffraction samples for training and inference (torch Dataset + LightningDataModule).

A sample is one neighbour group (gridsize² patterns, :func:`~ptycho_nb.data.grouping.group_neighbors`):

``{'diffraction': (C, N, N) float32 amplitudes, 'offset_x': (C,) float32, 'offset_y': (C,) float32,
'index': (C,) int64 pattern indices}``

The DataLoader settings (workers, pinning, persistence, prefetch) come from the execution config
through :func:`dataloader_kwargs`, nowhere else.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.execution import PyTorchExecutionConfig
from ..data.container import PtychoData
from ..data.grouping import Groups, group_neighbors

__all__ = ["GroupedDiffraction", "PtychoDataModule", "group_scan", "dataloader_kwargs"]


def dataloader_kwargs(
    cfg: PyTorchExecutionConfig,
    *,
    batch_size: int,
    mode: str = "train",
    shuffle: bool | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``torch.utils.data.DataLoader`` from an execution config.

    Parameters
    ----------
    cfg : PyTorchExecutionConfig
    batch_size : int
        The training batch size (``TrainingConfig.batch_size``); at inference
        ``cfg.inference_batch_size`` replaces it when set.
    mode : {'train', 'infer'}
    shuffle : bool, optional
        Defaults to True for training, False for inference.
    """
    if mode not in ("train", "infer"):
        raise ValueError(f"dataloader_kwargs: mode={mode!r} is invalid: rule is one of 'train', 'infer'")
    if mode == "infer" and cfg.inference_batch_size is not None:
        batch_size = cfg.inference_batch_size
    kw: dict[str, Any] = {
        "batch_size": int(batch_size),
        "shuffle": (mode == "train") if shuffle is None else bool(shuffle),
        "num_workers": cfg.num_workers,
        "pin_memory": cfg.pin_memory,
    }
    if cfg.num_workers > 0:
        kw["persistent_workers"] = cfg.persistent_workers
        if cfg.prefetch_factor is not None:
            kw["prefetch_factor"] = cfg.prefetch_factor
    return kw


def group_scan(data: PtychoData, gridsize: int, *, neighbor_count: int, n_groups: int | None,
               seed: int | None) -> Groups:
    """Neighbour groups of a scan for the model's gridsize (one group per pattern by default).

    ``neighbor_count`` is capped at the number of other patterns, so a small scan still groups.
    """
    k = min(neighbor_count, data.n_patterns - 1) if gridsize > 1 else None
    return group_neighbors(data.xcoords, data.ycoords, gridsize, neighbor_count=k,
                           n_groups=n_groups, seed=0 if seed is None else seed)


class GroupedDiffraction(Dataset):
    """Neighbour groups of one scan as tensors (held in memory, shared by every worker).

    Parameters
    ----------
    data : PtychoData
    groups : Groups
        From :func:`group_scan`; indices (G, C), offsets (G, C) in pixels (member − centre).
    """

    def __init__(self, data: PtychoData, groups: Groups) -> None:
        if groups.indices.max(initial=-1) >= data.n_patterns:
            raise ValueError("groups: indices refer to patterns the scan does not have")
        # One contiguous float32 copy of the patterns; samples are views gathered by index.
        self.diffraction = torch.from_numpy(np.ascontiguousarray(data.diffraction, dtype=np.float32))
        self.indices = torch.from_numpy(groups.indices.astype(np.int64))
        self.offset_x = torch.from_numpy(groups.offset_x.astype(np.float32))
        self.offset_y = torch.from_numpy(groups.offset_y.astype(np.float32))

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = self.indices[i]
        return {"diffraction": self.diffraction[idx], "offset_x": self.offset_x[i],
                "offset_y": self.offset_y[i], "index": idx}


class PtychoDataModule(L.LightningDataModule):
    """Training (and validation) samples from the configs.

    Validation data: the test scan when given; otherwise a seeded ``validation_fraction`` of the
    training groups; none when that fraction is 0 (the monitored metric then falls back to
    ``train_*``, see :func:`~ptycho_nb.config.execution.resolve_monitor`).
    """

    def __init__(self, train_data: PtychoData, *, model: ModelConfig, training: TrainingConfig,
                 execution: PyTorchExecutionConfig, test_data: PtychoData | None = None) -> None:
        super().__init__()
        self.train_data, self.test_data = train_data, test_data
        self.model, self.training, self.execution = model, training, execution
        if train_data.N != model.N:
            raise ValueError(f"train_data: patterns are {train_data.N}x{train_data.N} but "
                             f"ModelConfig.N={model.N}")
        if test_data is not None and test_data.N != model.N:
            raise ValueError(f"test_data: patterns are {test_data.N}x{test_data.N} but ModelConfig.N={model.N}")
        t = training
        groups = group_scan(train_data, model.gridsize, neighbor_count=t.neighbor_count,
                            n_groups=t.n_groups, seed=t.seed)
        full = GroupedDiffraction(train_data, groups)
        self.val_set: Dataset | None = None
        if test_data is not None:
            self.train_set: Dataset = full
            self.val_set = GroupedDiffraction(test_data, group_scan(
                test_data, model.gridsize, neighbor_count=t.neighbor_count, n_groups=None, seed=t.seed))
        elif t.validation_fraction > 0 and len(full) >= 2:
            n_val = max(1, int(round(len(full) * t.validation_fraction)))
            if n_val >= len(full):
                raise ValueError(
                    f"TrainingConfig.validation_fraction={t.validation_fraction} leaves no training "
                    f"samples: {len(full)} sample(s), {n_val} held out for validation; lower it "
                    "(0 trains on every sample) or give more patterns")
            perm = np.random.default_rng(0 if t.seed is None else t.seed).permutation(len(full))
            self.val_set = torch.utils.data.Subset(full, perm[:n_val].tolist())
            self.train_set = torch.utils.data.Subset(full, perm[n_val:].tolist())
        else:
            self.train_set = full

    @property
    def has_validation(self) -> bool:
        return self.val_set is not None

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, **dataloader_kwargs(
            self.execution, batch_size=self.training.batch_size, mode="train"))

    def val_dataloader(self) -> Any:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, **dataloader_kwargs(
            self.execution, batch_size=self.training.batch_size, mode="train", shuffle=False))
