"""Training samples streamed from varied simulated scans (:mod:`ptycho_nb.physics.varied`).

The scans are drawn on the fly, a bounded number at a time, so training on thousands of objects
never holds them all in memory. :class:`VariedScanDataset` is one seeded stream (a fixed set when
``n_scans`` is given); :class:`FreshScans` starts a new stretch of the stream every epoch, for
pretraining that never shows a scan twice.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from ..data.container import PtychoData
from ..data.grouping import group_neighbors
from ..model.lightning_module import scaling_statistics
from ..physics.forward import extract_patches
from ..physics.varied import VariedSpec, as_seed_sequence, iter_scans

__all__ = ["VariedScanDataset", "FreshScans"]

_SHUFFLE_KEY = 0x5EED  # tags the dataset's shuffle streams


def _epoch(epoch: int) -> int:
    """``epoch`` as an int; ValueError unless it is a non-negative integer."""
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch: expected a non-negative int, got {epoch!r}")
    return int(epoch)


class VariedScanDataset(torch.utils.data.IterableDataset):
    """Training samples (single patterns, or groups of neighbours) from a stream of varied scans.

    Each sample is a dict of tensors::

        diffraction      (C, N, N) float32   amplitudes, sqrt(counts); C = gridsize² (1 by default)
        offset_x         (C,) float32        member − group centre, columns (zeros for gridsize 1)
        offset_y         (C,) float32        member − group centre, rows
        index            (C,) int64          pattern indices within the scan
        scan             () int64            stream index of the scan (scan_seed(seed, scan))
        probe            (N, N) complex64    the scan's probe in sqrt(counts) units (sqrt(s)·P):
                                             forward_amplitude(probe, patch)² = expected counts
        intensity_scale  () float32          s = Σ|probe|², photons per unit |F{P·O}|² of the
                                             unit probe P
        photons          () float32          mean total counts per pattern of the scan
        input_scale      () float32          mean diffraction amplitude of the scan (network
                                             input normalisation, as ``scaling_statistics``)
        count_scale      () float32          the scan's intensity scale (``scaling_statistics``):
                                             the object amplitude 0.5 maps to its mean counts
        loss_weight      () float32          N² / photons: 1 / mean counts per pixel, so every
                                             dose weighs alike in the Poisson deviance
        truth            (C, N, N) complex64 only with ``truth=True``: the true object patches
                                             at the patterns' positions (for a supervised term,
                                             :class:`~ptycho_nb.model.PINNModule` ``truth_weight``)

    Probes differ between scans, so the probe travels **with every sample** rather than as a
    per-scan table: a batch can mix scans (and workers) freely, and default collation stacks it
    to (B, N, N) (B·N²·8 bytes, 2 MiB for B = 64, N = 64). Samples from one scan share one probe
    tensor until collation.

    Memory: at most ``buffer_scans`` scans are held per iterator (per worker); samples are
    drawn at random from all patterns of the held scans, a scan is dropped once all its patterns
    were yielded and the next one is drawn. ``scans_held`` / ``peak_scans_held`` count them in
    the process that iterates. Larger buffers mix more scans per batch; each DataLoader batch
    comes from one worker, so from at most ``buffer_scans`` scans.

    Workers: worker ``w`` of ``W`` (``torch.utils.data.get_worker_info``) draws scans
    ``w, w + W, w + 2W, …``, so no two workers yield the same scan and the union over workers
    is the same set of scans for any W. With ``n_scans`` set, one pass yields every pattern of
    scans ``0 … n_scans − 1`` (a fixed training set, regenerated on the fly); with None the
    stream is endless (give the trainer ``max_steps``). The dataset has no ``__len__``: the
    number of patterns per scan varies.

    Shuffling is seeded by (seed, epoch, worker); call :meth:`set_epoch` before each epoch for a
    new order (workers copy the dataset when an epoch's iterator starts, so use it with
    ``persistent_workers=False``).

    ``gridsize`` g > 1: a sample is a group of C = g² neighbouring patterns of one scan (one group
    seeded at each pattern, :func:`ptycho_nb.data.grouping.group_neighbors`): ``diffraction``
    (C, N, N), ``offset_x``/``offset_y`` (C,) member − group centre in pixels, ``index`` (C,), so the
    overlap constraint applies in training as on a single scan.

    Parameters
    ----------
    spec : VariedSpec
    seed : int, SeedSequence or None
        Stream seed (None: a random one, fixed at construction so every worker agrees).
    n_scans : int, optional
        Scans per pass; None = endless.
    buffer_scans : int
        Scans held at once per iterator (>= 1).
    shuffle : bool
        Random order within the buffer; False yields scan after scan, patterns in order.
    gridsize : int
        Patterns per sample are gridsize² neighbours (1: single patterns).
    truth : bool
        Also yield each pattern's true object patch (``truth``): the stream is simulated, so the
        truth is known; held per buffered scan like the patterns (M·N²·8 bytes).
    """

    def __init__(self, spec: VariedSpec, seed: int | np.random.SeedSequence | None = 0, *,
                 n_scans: int | None = None, buffer_scans: int = 8, shuffle: bool = True,
                 gridsize: int = 1, truth: bool = False) -> None:
        super().__init__()
        if not isinstance(spec, VariedSpec):
            raise ValueError(f"spec: expected a VariedSpec, got {type(spec).__name__}")
        if n_scans is not None and (not isinstance(n_scans, (int, np.integer)) or n_scans < 1):
            raise ValueError(f"n_scans: expected a positive int or None, got {n_scans!r}")
        if not isinstance(buffer_scans, (int, np.integer)) or buffer_scans < 1:
            raise ValueError(f"buffer_scans: expected a positive int, got {buffer_scans!r}")
        if isinstance(gridsize, bool) or not isinstance(gridsize, (int, np.integer)) or not 1 <= gridsize <= 4:
            raise ValueError(f"gridsize: expected an int from 1 to 4, got {gridsize!r}")
        self.spec = spec
        self.gridsize = int(gridsize)
        if not isinstance(truth, bool):
            raise ValueError(f"truth: expected a bool, got {truth!r}")
        self.truth = truth
        # Resolved now (a None seed becomes one random entropy), so every worker agrees.
        self._root = as_seed_sequence(seed)
        self.seed = self._root.entropy
        self.n_scans = None if n_scans is None else int(n_scans)
        self.buffer_scans = int(buffer_scans)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.scans_held = 0
        self.peak_scans_held = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle order of the next pass (same scans, another order)."""
        self.epoch = _epoch(epoch)

    def _scan_tensors(self, data: PtychoData) -> dict[str, Any]:
        probe = torch.from_numpy(np.ascontiguousarray(data.probe, dtype=np.complex64))
        d = data.diffraction
        record = data.record
        if record is None or record.stream_index is None:
            raise ValueError("VariedScanDataset: expected a scan drawn from a stream (iter_scans), "
                             "whose record holds its stream index")
        stream_index = record.stream_index
        stats = scaling_statistics(data)
        groups = group_neighbors(data.xcoords, data.ycoords, self.gridsize, seed=stream_index)
        rec = {
            "groups": torch.from_numpy(groups.indices.astype(np.int64)),
            "group_offset_x": torch.from_numpy(groups.offset_x.astype(np.float32)),
            "group_offset_y": torch.from_numpy(groups.offset_y.astype(np.float32)),
            "diffraction": torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32)),
            "probe": probe,
            "scan": torch.tensor(stream_index, dtype=torch.int64),
            "intensity_scale": torch.tensor(float(np.sum(np.abs(data.probe) ** 2)), dtype=torch.float32),
            "photons": torch.tensor(record.photons_per_pattern, dtype=torch.float32),
            "input_scale": torch.tensor(stats["input_scale"], dtype=torch.float32),
            # the scan's intensity scale as a single-scan model would start from it: amplitude
            # AMPLITUDE_REFERENCE ↔ the scan's mean counts (the scale of O is ambiguous anyway)
            "count_scale": torch.tensor(stats["intensity_scale"], dtype=torch.float32),
            # 1 / mean counts per pixel: the deviance of every dose weighs alike in a batch
            "loss_weight": torch.tensor(d.shape[-1] * d.shape[-2] / record.photons_per_pattern,
                                        dtype=torch.float32),
            "left": int(d.shape[0]),
        }
        if self.truth:
            rec["truth"] = extract_patches(
                torch.from_numpy(np.ascontiguousarray(data.object, dtype=np.complex64)),
                torch.from_numpy(np.asarray(data.xcoords, dtype=np.float64)),
                torch.from_numpy(np.asarray(data.ycoords, dtype=np.float64)), d.shape[-1])
        return rec

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        scans = iter_scans(self.spec, self._root, self.n_scans, start=wid, stride=nw)
        # Shuffle stream: a spawn key of length 3 never equals a scan's (i,) or its parts' (i, k).
        rng = np.random.default_rng(np.random.SeedSequence(
            self._root.entropy, spawn_key=tuple(self._root.spawn_key) + (_SHUFFLE_KEY, self.epoch, wid)))
        held: dict[int, dict[str, Any]] = {}
        pool: list[tuple[int, int]] = []  # (scan slot, pattern index) not yet yielded
        self.scans_held = 0
        exhausted = False
        slot = 0
        while True:
            # Refill: with shuffling keep buffer_scans scans; without, one at a time in order.
            while not exhausted and len(held) < (self.buffer_scans if self.shuffle else 1):
                try:
                    data = next(scans)
                except StopIteration:
                    exhausted = True
                    break
                held[slot] = self._scan_tensors(data)
                del data  # only the tensors above stay alive
                entries = [(slot, j) for j in range(held[slot]["left"])]
                # pop() takes from the end: in order, a new scan goes in front of what is left.
                pool[:0] = entries[::-1] if not self.shuffle else entries
                slot += 1
                self.scans_held = len(held)
                self.peak_scans_held = max(self.peak_scans_held, self.scans_held)
            if not pool:
                return
            if self.shuffle:
                k = int(rng.integers(len(pool)))
                pool[k], pool[-1] = pool[-1], pool[k]
            s, j = pool.pop()
            rec = held[s]
            sample = {
                # A copy: a view would keep the whole scan alive in consumers that hold samples.
                "diffraction": rec["diffraction"][rec["groups"][j]].clone(),
                "offset_x": rec["group_offset_x"][j].clone(), "offset_y": rec["group_offset_y"][j].clone(),
                "index": rec["groups"][j].clone(),
                "scan": rec["scan"], "probe": rec["probe"],
                "intensity_scale": rec["intensity_scale"], "photons": rec["photons"],
                "input_scale": rec["input_scale"], "count_scale": rec["count_scale"],
                "loss_weight": rec["loss_weight"],
            }
            if self.truth:
                sample["truth"] = rec["truth"][rec["groups"][j]].clone()
            rec["left"] -= 1
            if rec["left"] == 0:
                del held[s], rec
                self.scans_held = len(held)
            yield sample


class FreshScans(torch.utils.data.IterableDataset):
    """Samples of scans never drawn before, every epoch: pass ``e`` streams the scans of the seed
    ``(seed, e)``.

    Lightning restarts a dataset's iterator every epoch, and a :class:`VariedScanDataset` of one
    seed would replay the same first scans each time; here each epoch's iterator is a fresh
    :class:`VariedScanDataset` (endless, shuffled within ``buffer_scans``), so a pretraining run
    of many epochs sees a new stretch of the stream in each. Set the epoch before each pass with
    :meth:`set_epoch` (:class:`~ptycho_nb.engine.callbacks.DatasetEpoch` does, also after a
    resume); give the trainer ``limit_train_batches``, since the stream has no end.

    Samples are those of :class:`VariedScanDataset` (its docstring lists keys, shapes, units).

    Parameters
    ----------
    spec : VariedSpec
    seed : int
        Run seed; epoch ``e`` draws from ``SeedSequence([seed, e])``.
    buffer_scans : int
        Scans held at once per iterator (>= 1).
    gridsize : int
        Patterns per sample are gridsize² neighbours (1: single patterns).
    truth : bool
        Also yield the true object patches (``truth``, for a supervised term).
    """

    def __init__(self, spec: VariedSpec, seed: int, buffer_scans: int, gridsize: int,
                 truth: bool = False) -> None:
        super().__init__()
        self.spec, self.seed, self.buffer_scans = spec, int(seed), int(buffer_scans)
        self.gridsize = int(gridsize)
        self.truth = bool(truth)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the stretch of the stream the next pass yields."""
        self.epoch = _epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        ds = VariedScanDataset(self.spec, np.random.SeedSequence([self.seed, self.epoch]),
                               buffer_scans=self.buffer_scans, gridsize=self.gridsize, truth=self.truth)
        return iter(ds)
