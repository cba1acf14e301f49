"""Neighbour grouping: reproducibility, nearness, offsets, and the offset sign convention."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptycho_nb.data import Groups, group_neighbors


def grid(n=6, step=4, origin=16):
    yy, xx = np.mgrid[0:n, 0:n]
    rng = np.random.default_rng(5)
    order = rng.permutation(n * n)  # scan order unrelated to space
    return (origin + step * xx.ravel())[order].astype(float), (origin + step * yy.ravel())[order].astype(float)


def test_gridsize_one():
    x, y = grid()
    g = group_neighbors(x, y, 1)
    assert isinstance(g, Groups) and g.indices.shape == (36, 1) and g.group_size == 1
    np.testing.assert_array_equal(g.indices[:, 0], np.arange(36))
    assert np.all(g.offset_x == 0) and np.all(g.offset_y == 0)
    np.testing.assert_array_equal(g.center_x, x)
    np.testing.assert_array_equal(g.center_y, y)


def test_reproducible_by_seed():
    x, y = grid()
    a = group_neighbors(x, y, 2, neighbor_count=6, seed=7)
    b = group_neighbors(x, y, 2, neighbor_count=6, seed=7)
    c = group_neighbors(x, y, 2, neighbor_count=6, seed=8)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    s1 = group_neighbors(x, y, 2, n_groups=10, seed=np.random.default_rng(3))
    s2 = group_neighbors(x, y, 2, n_groups=10, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(s1.indices, s2.indices)


def test_members_are_near_neighbours_and_distinct():
    x, y = grid()
    k = 5
    g = group_neighbors(x, y, 2, neighbor_count=k, seed=1)
    assert g.indices.shape == (36, 4) and g.indices.dtype == np.int64
    np.testing.assert_array_equal(g.indices[:, 0], np.arange(36))  # one group per pattern, own seed
    tree = cKDTree(np.stack([x, y], 1))
    for row in g.indices:
        assert len(set(row.tolist())) == 4
        d_k = np.sort(tree.query([x[row[0]], y[row[0]]], k=k + 1)[0])[-1]
        d = np.hypot(x[row[1:]] - x[row[0]], y[row[1:]] - y[row[0]])
        assert np.all(d <= d_k + 1e-12) and np.all(d > 0)


def test_offsets_plus_centre_equal_positions():
    x, y = grid()
    x = x + np.linspace(0, 0.7, 36)  # non-integer, x differs from y
    # 36 seeds x C(8, 8) = 36 distinct groups of 9 (more are refused: they could only repeat)
    g = group_neighbors(x, y, 3, n_groups=30, seed=2)
    assert g.indices.shape == (30, 9) and g.n_groups == 30
    np.testing.assert_allclose(g.center_x[:, None] + g.offset_x, x[g.indices], atol=1e-12)
    np.testing.assert_allclose(g.center_y[:, None] + g.offset_y, y[g.indices], atol=1e-12)
    np.testing.assert_allclose(g.offset_x.mean(1), 0, atol=1e-12)


def test_offset_sign_convention_with_numpy_slicing():
    """A member's patch is the window of the centre-anchored region shifted by (offset_y, offset_x)."""
    n = 8
    x, y = grid(n=5, step=4, origin=16)  # multiples of 4 → every 4-member centre is an integer
    rng = np.random.default_rng(0)
    obj = rng.random((64, 64)) + 1j * rng.random((64, 64))  # asymmetric: a flipped sign cannot match
    g = group_neighbors(x, y, 2, neighbor_count=8, seed=4)
    r = n // 2 + 12  # region half-size covers every offset
    checked = 0
    for gi in range(g.n_groups):
        cx, cy = g.center_x[gi], g.center_y[gi]
        assert cx == int(cx) and cy == int(cy)
        cx, cy = int(cx), int(cy)
        region = obj[cy - r:cy + r, cx - r:cx + r]
        for j, m in enumerate(g.indices[gi]):
            ox, oy = int(g.offset_x[gi, j]), int(g.offset_y[gi, j])
            xm, ym = int(x[m]), int(y[m])
            patch = obj[ym - n // 2:ym + n // 2, xm - n // 2:xm + n // 2]
            window = region[r + oy - n // 2:r + oy + n // 2, r + ox - n // 2:r + ox + n // 2]
            np.testing.assert_array_equal(patch, window)
            if ox != 0 and oy != 0 and ox != oy:
                # the flipped (or x/y-swapped) offset would pick a different window
                assert not np.array_equal(patch, region[r - oy - n // 2:r - oy + n // 2, r - ox - n // 2:r - ox + n // 2])
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("kw,match", [
    (dict(gridsize=2, neighbor_count=2), "neighbor_count"),
    (dict(gridsize=2, neighbor_count=99), "neighbor_count"),
    (dict(gridsize=0), "gridsize"),
    (dict(gridsize=1.5), "gridsize"),
    (dict(gridsize=7), "gridsize"),
    (dict(gridsize=1, n_groups=0), "n_groups"),
    (dict(gridsize=1, n_groups=100), "n_groups"),
])
def test_bad_arguments(kw, match):
    x, y = grid()
    with pytest.raises(ValueError, match=match):
        group_neighbors(x, y, **kw)


def test_bad_coordinates():
    with pytest.raises(ValueError, match="lengths differ"):
        group_neighbors(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        group_neighbors(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="no positions"):
        group_neighbors(np.zeros(0), np.zeros(0))


def test_oversampling_for_gridsize_two():
    x, y = grid(n=3)
    g = group_neighbors(x, y, 2, n_groups=20, seed=0)
    assert g.indices.shape == (20, 4)


def test_offset_sign_convention_against_forward_model():
    """Patches the forward model extracts at (centre + offset) are the members' own patches.

    Sub-pixel group centres included: the physics layer places member j of a group at
    ``centre + offset_j``, and that must be the member's measured position, diffraction included.
    """
    import torch

    from ptycho_nb.physics import extract_patches, forward_amplitude, make_probe

    n = 16
    rng = np.random.default_rng(1)
    x = 20 + rng.random(30) * 24
    y = 20 + rng.random(30) * 24
    obj = torch.from_numpy((rng.random((64, 64)) * np.exp(1j * rng.random((64, 64)))).astype(np.complex64))
    probe = torch.from_numpy(make_probe("gaussian", n))
    g = group_neighbors(x, y, 2, neighbor_count=5, seed=3)
    members = g.indices.ravel()
    px = torch.from_numpy((g.center_x[:, None] + g.offset_x).ravel())
    py = torch.from_numpy((g.center_y[:, None] + g.offset_y).ravel())
    via_offsets = forward_amplitude(probe, extract_patches(obj, px, py, n))
    direct = forward_amplitude(probe, extract_patches(obj, torch.from_numpy(x[members]),
                                                      torch.from_numpy(y[members]), n))
    torch.testing.assert_close(via_offsets, direct, rtol=1e-5, atol=1e-6)
    # a flipped sign would put the patch elsewhere: make sure the test could fail
    flipped = forward_amplitude(probe, extract_patches(
        obj, torch.from_numpy((g.center_x[:, None] - g.offset_x).ravel()),
        torch.from_numpy((g.center_y[:, None] - g.offset_y).ravel()), n))
    assert not torch.allclose(flipped, direct, rtol=1e-3, atol=1e-4)
