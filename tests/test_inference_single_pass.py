"""Single-pass inference: every pattern the groups use goes through the network once, and the
result equals the grouped forward pass (member 0 of each merged group) to float tolerance.

Tiny on purpose (N=32, 30 patterns, n_filters_scale=1, an untrained model with random output
heads): seconds on two shared CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ptycho_nb
from ptycho_nb.config.canonical import ModelConfig, TrainingConfig
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.engine.datamodule import GroupedDiffraction, group_scan
from ptycho_nb.model import PINNModule, scaling_statistics
from ptycho_nb.model.overlap import merge_own_patches
from ptycho_nb.engine import predict as infer_mod

N = 32
N_PATTERNS = 30
BATCH = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(N=N, object_shape=(80, 80), n_positions=N_PATTERNS, step=5.0, seed=1)


def _module(scan, gridsize: int, **mkw) -> PINNModule:
    """An untrained model whose output differs from pattern to pattern (the decoder's last
    convolutions start at zero, which would make every patch the same flat object)."""
    torch.manual_seed(0)
    m = PINNModule(ModelConfig(N=N, gridsize=gridsize, n_filters_scale=1, **mkw),
                   TrainingConfig(batch_size=BATCH), PyTorchExecutionConfig(),
                   probe=scan.probe, scaling=scaling_statistics(scan))
    with torch.no_grad():
        for p in m.net.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    return m.eval()


def _grouped(module: PINNModule, scan, n_groups: int | None = None) -> np.ndarray:
    """The old path: each group through ``module`` (network + merge), member 0 kept."""
    t = module.training_config
    groups = group_scan(scan, module.model_config.gridsize, neighbor_count=t.neighbor_count,
                        n_groups=n_groups, seed=t.seed)
    out = []
    with torch.no_grad():
        for b in DataLoader(GroupedDiffraction(scan, groups), batch_size=BATCH):
            out.append(module(b["diffraction"], b["offset_x"], b["offset_y"])[:, 0])
    return torch.cat(out).numpy()


class _CountPatterns:
    """Forward hook on ``module.net``: patterns passed per call (B·C of each input)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.sizes: list[int] = []
        self.autocast: list[bool] = []
        self.channels_last: list[bool] = []
        # a convolution weight with several input channels (for one, both layouts coincide)
        self._weight = max((p for p in net.parameters() if p.ndim == 4), key=lambda p: p.shape[1])
        self.handle = net.register_forward_hook(self)

    def __call__(self, net, args, output) -> None:
        x = args[0]
        self.sizes.append(int(x.shape[0] * x.shape[1]))
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        self.channels_last.append(self._weight.is_contiguous(memory_format=torch.channels_last)
                                  and not self._weight.is_contiguous())


def _assert_close(new: np.ndarray, old: np.ndarray, rtol: float = 1e-4) -> None:
    assert new.shape == old.shape and new.dtype == np.complex64
    scale = float(np.abs(old).max())
    assert scale > 0 and np.ptp(np.abs(old)) > 1e-3 * scale  # patches differ: not a trivial match
    assert float(np.abs(new - old).max()) < rtol * scale


@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_single_pass_equals_grouped_forward(scan, gridsize, channels_last, monkeypatch):
    # Same memory format as the grouped pass: equal to float32 rounding (1e-5 of the patch
    # scale; gridsize 1 is bit-identical). Channels-last (what float32 on the CPU runs) takes
    # other convolution kernels: rounding differences of a few 1e-5 through the network.
    monkeypatch.setattr(infer_mod, "CHANNELS_LAST_PRECISIONS", ("32-true",) if channels_last else ())
    m = _module(scan, gridsize)
    old = _grouped(m, scan)
    count = _CountPatterns(m.net)
    rec = ptycho_nb.infer(m, scan, refine_epochs=0)
    count.handle.remove()
    assert all(count.channels_last) == channels_last
    _assert_close(rec.patches, old, rtol=1e-4 if channels_last else 1e-5)
    # every pattern once (one group per pattern: the groups use all of them), in batches of
    # the inference batch size; the grouped pass sent gridsize² patterns per group
    assert sum(count.sizes) == N_PATTERNS
    assert max(count.sizes) == BATCH
    assert rec.run.n_patterns == N_PATTERNS == rec.patches.shape[0]
    assert rec.timings.forward_s > 0 and rec.timings.stitch_s > 0


def test_fewer_groups_than_patterns(scan):
    m = _module(scan, 2)
    n_groups = 7
    old = _grouped(m, scan, n_groups=n_groups)
    t = m.training_config
    used = np.unique(group_scan(scan, 2, neighbor_count=t.neighbor_count, n_groups=n_groups,
                                seed=t.seed).indices)
    count = _CountPatterns(m.net)
    rec = ptycho_nb.infer(m, scan, refine_epochs=0, n_groups=n_groups)
    count.handle.remove()
    _assert_close(rec.patches, old)
    assert sum(count.sizes) == used.size <= 4 * n_groups
    assert rec.patches.shape == (n_groups, N, N) and rec.xcoords.shape == (n_groups,)


def test_without_object_big_only_own_patterns_pass(scan):
    m = _module(scan, 2, object_big=False)
    old = _grouped(m, scan)
    count = _CountPatterns(m.net)
    rec = ptycho_nb.infer(m, scan, refine_epochs=0)
    count.handle.remove()
    _assert_close(rec.patches, old)
    assert sum(count.sizes) == N_PATTERNS


def test_memory_format_and_precision(scan):
    m = _module(scan, 2)
    count = _CountPatterns(m.net)
    ptycho_nb.infer(m, scan, refine_epochs=0, accelerator="cpu")
    # float32 on the CPU runs channels-last (measured faster) and restores the layout after
    assert count.channels_last and all(count.channels_last) and not any(count.autocast)
    assert all(p.is_contiguous() for p in m.net.parameters())
    count.sizes.clear(), count.autocast.clear(), count.channels_last.clear()
    rec = ptycho_nb.infer(m, scan, refine_epochs=0, accelerator="cpu", precision="bf16-mixed")
    count.handle.remove()
    # bf16 stays the user's choice: autocast reaches the network, the layout is left alone
    assert count.autocast and all(count.autocast) and not any(count.channels_last)
    assert rec.patches.dtype == np.complex64 and np.isfinite(rec.patches).all()
    assert sum(count.sizes) == N_PATTERNS


def test_merge_own_patches_matches_merge_group_patches():
    from ptycho_nb.model import merge_group_patches

    g = torch.Generator().manual_seed(0)
    u, n = 9, 16
    patches = torch.randn(u, n, n, generator=g, dtype=torch.complex64)
    members = torch.tensor([[0, 1, 2, 3], [4, 0, 5, 6], [7, 8, 1, 0]])
    ox = torch.randn(3, 4, generator=g) * 3
    oy = torch.randn(3, 4, generator=g) * 3
    ref = torch.cat([merge_group_patches(patches[members[i:i + 2]], ox[i:i + 2], oy[i:i + 2])[:, 0]
                     for i in (0, 2)])
    got = merge_own_patches(patches, members, ox, oy, chunk_size=2)
    assert torch.equal(got, ref)
    assert torch.equal(merge_own_patches(patches, members[:, :1], ox[:, :1], oy[:, :1], chunk_size=2),
                       patches[members[:, 0]])
    assert merge_own_patches(patches, members[:0], ox[:0], oy[:0], chunk_size=2).shape == (0, n, n)
    with pytest.raises(ValueError, match="offset_x"):
        merge_own_patches(patches, members, ox[:, :2], oy, chunk_size=2)
