"""Detector masks and ground-truth fields of PtychoData: validation, views, and every file format."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptycho_nb.data import PtychoData, load, read_npz, save, write_npz

M, N, H, W = 4, 8, 24, 24


def make_data(mask=None, **over) -> PtychoData:
    rng = np.random.default_rng(7)
    kw = dict(
        diffraction=np.sqrt(rng.poisson(30.0, (M, N, N))).astype(np.float32),
        xcoords=np.array([4.0, 9.5, 12.0, 20.0]), ycoords=np.array([4.0, 6.0, 15.25, 20.0]),
        probe=(rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        object=(rng.random((H, W)) * np.exp(1j * rng.random((H, W)))).astype(np.complex64),
        scan_index=np.zeros(M, np.int64), metadata={"photons_per_pattern": 1e4}, mask=mask)
    kw.update(over)
    return PtychoData(**kw)


def shared_mask() -> np.ndarray:
    m = np.zeros((N, N), bool)
    m[5, :] = True  # a one-row module gap
    m[1, 2] = True  # a dead pixel
    return m


def per_pattern_mask() -> np.ndarray:
    m = np.zeros((M, N, N), bool)
    m[:, 5, :] = True
    m[2, 0, 0] = True  # a pixel flagged in one pattern only
    return m


# ------------------------------------------------------------------ the container
def test_mask_shapes_and_dtypes_accepted():
    d = make_data(mask=shared_mask())
    assert d.mask.dtype == bool and d.mask.shape == (N, N) and d.mask.sum() == N + 1
    assert make_data(mask=per_pattern_mask()).mask.shape == (M, N, N)
    np.testing.assert_array_equal(make_data(mask=shared_mask().astype(np.uint8)).mask, shared_mask())
    np.testing.assert_array_equal(make_data(mask=shared_mask().astype(np.float32)).mask, shared_mask())
    assert make_data(mask=np.zeros((N, N), bool)).mask is None  # nothing masked: no mask
    assert make_data(mask=np.zeros((M, N, N), np.uint8)).mask is None
    given = shared_mask()
    d = make_data(mask=given)
    given[0, 0] = True
    assert not d.mask[0, 0]  # the container holds its own copy


@pytest.mark.parametrize("mask,match", [
    (np.zeros((N + 2, N + 2), bool), r"mask: expected shape \(8, 8\).*\(4, 8, 8\)"),
    (np.zeros((M + 1, N, N), bool), r"mask: expected shape"),
    (np.zeros(N, bool), r"mask: expected shape"),
    (np.full((N, N), 0.5), r"mask: holds 64 value\(s\) other than 0/1"),
    (np.full((N, N), 2, np.int32), r"mask: holds .* other than 0/1"),
    (np.full((N, N), np.nan), r"mask: holds .* other than 0/1"),
    (np.full((N, N), "1"), r"mask: has dtype <U1 \(string\)"),
    (np.ones((N, N), np.complex64), r"mask: has dtype complex64"),
])
def test_bad_masks_name_the_field(mask, match):
    with pytest.raises(ValueError, match=r"PtychoData\." + match):
        make_data(mask=mask)


def test_measured_views_whatever_the_mask_shape():
    plain, shared, per = make_data(), make_data(mask=shared_mask()), make_data(mask=per_pattern_mask())
    assert plain.measured.shape == (N, N) and plain.measured.all()
    np.testing.assert_array_equal(shared.measured, ~shared_mask())
    np.testing.assert_array_equal(per.measured, ~per_pattern_mask())
    for d in (plain, shared, per):
        for index, rows in ((slice(1, 3), [1, 2]), (np.array([3, 0]), [3, 0]), (2, [2]),
                            (np.array([True, False, True, False]), [0, 2])):
            got = d.measured_for(index)
            assert got.shape == (len(rows), N, N) and got.dtype == bool
            want = np.broadcast_to(d.measured, (M, N, N))[rows]
            np.testing.assert_array_equal(got, want)
            got[...] = False  # a fresh array, never a view of the mask
        assert d.measured_for(slice(0, 1)).flags.writeable
    assert shared.mask.sum() == N + 1  # untouched by the writes above
    with pytest.raises(IndexError):
        shared.measured_for(np.array([M]))


def test_subset_carries_masks_and_truth():
    truth = dict(probe_truth=np.ones((2, N, N), np.complex64),
                 xcoords_truth=np.array([4.5, 9.0, 12.5, 19.5]), ycoords_truth=np.array([4.0, 6.5, 15.0, 19.0]))
    s = make_data(mask=per_pattern_mask(), **truth).subset([2, 3])
    np.testing.assert_array_equal(s.mask, per_pattern_mask()[[2, 3]])
    np.testing.assert_array_equal(s.xcoords_truth, truth["xcoords_truth"][[2, 3]])
    np.testing.assert_array_equal(s.ycoords_truth, truth["ycoords_truth"][[2, 3]])
    assert s.probe_truth.shape == (2, N, N)
    np.testing.assert_array_equal(make_data(mask=shared_mask()).subset(slice(0, 2)).mask, shared_mask())
    # the one pattern-only pixel was in pattern 2: without it only the shared gap remains
    assert make_data(mask=per_pattern_mask()).subset([0, 1]).mask.sum() == 2 * N


def test_repr_counts_masked_pixels_and_names_the_truth():
    assert "mask" not in repr(make_data())
    assert f"mask {N + 1} px shared" in repr(make_data(mask=shared_mask()))
    assert f"mask {M * N + 1} px over {M} patterns" in repr(make_data(mask=per_pattern_mask()))
    r = repr(make_data(probe_truth=np.ones((N, N)), xcoords_truth=np.full(M, 10.0),
                       ycoords_truth=np.full(M, 10.0)))
    assert "truth: probe and positions" in r


def test_truth_fields_validated():
    d = make_data(probe_truth=np.ones((N, N)))
    assert d.probe_truth.shape == (1, N, N) and d.probe_truth.dtype == np.complex64
    with pytest.raises(ValueError, match=r"PtychoData\.probe_truth: expected shape"):
        make_data(probe_truth=np.ones((2, N + 2, N + 2)))
    with pytest.raises(ValueError, match=r"PtychoData\.probe_truth: is zero everywhere"):
        make_data(probe_truth=np.zeros((2, N, N)))
    with pytest.raises(ValueError, match=r"PtychoData\.xcoords_truth/ycoords_truth: only xcoords_truth"):
        make_data(xcoords_truth=np.full(M, 10.0))
    with pytest.raises(ValueError, match=r"PtychoData\.ycoords_truth: expected shape \(4,\)"):
        make_data(xcoords_truth=np.full(M, 10.0), ycoords_truth=np.full(M - 1, 10.0))
    with pytest.raises(ValueError, match=r"PtychoData\.xcoords_truth: contains NaN"):
        make_data(xcoords_truth=np.full(M, np.nan), ycoords_truth=np.full(M, 10.0))
    with pytest.raises(ValueError, match=r"PtychoData\.xcoords_truth/ycoords_truth: 1 position\(s\) put"):
        make_data(xcoords_truth=np.array([3.0, 10.0, 10.0, 10.0]), ycoords_truth=np.full(M, 10.0))


# ------------------------------------------------------------------ files
def _assert_round_trip(back: PtychoData, d: PtychoData) -> None:
    np.testing.assert_array_equal(back.diffraction, d.diffraction)  # masked values left alone
    for field in ("mask", "probe_truth", "xcoords_truth", "ycoords_truth"):
        want, got = getattr(d, field), getattr(back, field)
        assert (got is None) == (want is None), field
        if want is not None:
            assert got.shape == want.shape and got.dtype == want.dtype, field
            np.testing.assert_array_equal(got, want, err_msg=field)


TRUTH = dict(probe_truth=(np.arange(2 * N * N).reshape(2, N, N) * (1 + 1j)).astype(np.complex64),
             xcoords_truth=np.array([4.25, 9.0, 12.5, 19.75]), ycoords_truth=np.array([4.5, 6.0, 15.0, 19.5]))


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("mask", [None, "shared", "per_pattern"])
def test_mask_and_truth_round_trip_npz_and_hdf5(tmp_path, suffix, mask):
    m = {None: None, "shared": shared_mask(), "per_pattern": per_pattern_mask()}[mask]
    d = make_data(mask=m, **TRUTH)
    _assert_round_trip(load(save(d, tmp_path / f"scan{suffix}")), d)


def test_npz_keys_upstream_can_read(tmp_path):
    with np.load(write_npz(make_data(mask=shared_mask()), tmp_path / "s.npz")) as z:
        assert z["bad_pixels"].dtype == bool and z["bad_pixels"].shape == (N, N)
        assert "bad_pixels_per_pattern" not in z.files
    with np.load(write_npz(make_data(mask=per_pattern_mask(), **TRUTH), tmp_path / "p.npz")) as z:
        # upstream reads (N, N): the union keeps it off every pixel unmeasured anywhere
        np.testing.assert_array_equal(z["bad_pixels"], per_pattern_mask().any(axis=0))
        np.testing.assert_array_equal(z["bad_pixels_per_pattern"], per_pattern_mask())
        assert z["probe_truth"].shape == (2, N, N) and z["xcoords_truth"].shape == (M,)
    with np.load(write_npz(make_data(), tmp_path / "n.npz")) as z:
        assert not {"bad_pixels", "probe_truth", "xcoords_truth"} & set(z.files)


def test_upstream_npz_bad_pixels_read_as_mask(tmp_path):
    d = make_data()
    path = tmp_path / "upstream.npz"
    np.savez(path, diff3d=d.diffraction, probeGuess=d.probe, xcoords=d.xcoords, ycoords=d.ycoords,
             bad_pixels=shared_mask().astype(np.uint8))  # upstream files may store 0/1 integers
    back = read_npz(path, diffraction_kind="amplitude")
    np.testing.assert_array_equal(back.mask, shared_mask())
    np.testing.assert_array_equal(back.diffraction, d.diffraction)
    np.savez(path, diffraction=d.diffraction, probeGuess=d.probe, xcoords=d.xcoords, ycoords=d.ycoords,
             bad_pixels=np.full((N, N), 3, np.uint8))
    with pytest.raises(ValueError, match=r"upstream\.npz \(file key mask <- 'bad_pixels'\).*mask: holds"):
        read_npz(path, diffraction_kind="amplitude")


def test_hdf5_mask_layout_and_version(tmp_path):
    with h5py.File(save(make_data(mask=per_pattern_mask(), **TRUTH), tmp_path / "m.h5")) as f:
        assert int(f.attrs["format_version"]) == 2  # a version-1 reader must not drop the mask
        assert f["mask"].dtype == bool and f["mask"].shape == (M, N, N)
        assert "not measured" in f["mask"].attrs["description"]
        assert f["xcoords_truth"].attrs["units"] == "pixel"
        assert f["probe_truth"].attrs["units"] == "sqrt(photons)"
    with h5py.File(save(make_data(**TRUTH), tmp_path / "t.h5")) as f:
        assert int(f.attrs["format_version"]) == 1  # ground truth is safe to ignore
    with h5py.File(tmp_path / "t.h5", "r+") as f:
        f["xcoords_truth"].attrs["units"] = "m"
    with pytest.raises(ValueError, match=r"t\.h5: dataset '/xcoords_truth' has units 'm'"):
        load(tmp_path / "t.h5")


@pytest.mark.parametrize("mask", ["shared", "per_pattern"])
def test_mask_round_trip_ptychodus(tmp_path, mask):
    m = shared_mask() if mask == "shared" else per_pattern_mask()
    d = make_data(mask=m)
    p = save(d, tmp_path / "product.h5", format="ptychodus")
    back = load(p)
    np.testing.assert_array_equal(back.mask, m)
    np.testing.assert_array_equal(back.diffraction, d.diffraction)
    with h5py.File(tmp_path / "diffraction.h5") as f:
        np.testing.assert_array_equal(f["bad_pixels"][()], m if m.ndim == 2 else m.any(axis=0))
        assert ("ptycho_nb_bad_pixels" in f) == (m.ndim == 3)


def test_ptychodus_per_pattern_mask_follows_the_indexes(tmp_path):
    from ptycho_nb.data import read_ptychodus, write_ptychodus_diffraction, write_ptychodus_product

    d = make_data(mask=per_pattern_mask())
    pp = write_ptychodus_product(d, tmp_path / "prod.h5", indexes=[3, 2, 1, 0])
    back = read_ptychodus(pp, write_ptychodus_diffraction(d, tmp_path / "diff.h5"))
    np.testing.assert_array_equal(back.mask, per_pattern_mask()[::-1])
    np.testing.assert_array_equal(back.diffraction, d.diffraction[::-1])


@pytest.fixture
def pio():
    return pytest.importorskip("ptychodus.api.io", reason="ptychodus (and scikit-image) not installed")


def test_ptychodus_writer_bad_pixels_read_back(tmp_path, pio):
    from ptychodus.api.assemble import AssembledDiffractionData
    from ptychodus.api.geometry import PixelGeometry

    from ptycho_nb.data import read_ptychodus, write_ptychodus_product

    d = make_data()
    counts = np.round(d.diffraction.astype(np.float64) ** 2).astype(np.uint32)
    pio.save_diffraction_data(tmp_path / "diffraction.h5", AssembledDiffractionData(
        np.arange(M), counts, PixelGeometry(75e-6, 75e-6), shared_mask()))
    back = read_ptychodus(write_ptychodus_product(d, tmp_path / "product.h5"), tmp_path / "diffraction.h5")
    np.testing.assert_array_equal(back.mask, shared_mask())
    np.testing.assert_array_equal(back.diffraction, d.diffraction)  # values as stored


def test_ptychodus_reads_our_bad_pixels(tmp_path, pio):
    save(make_data(mask=per_pattern_mask()), tmp_path / "product.h5", format="ptychodus")
    theirs = pio.load_diffraction_data(tmp_path / "diffraction.h5")
    np.testing.assert_array_equal(theirs.get_bad_pixels(), per_pattern_mask().any(axis=0))
