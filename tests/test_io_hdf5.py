"""ptycho_nb's own HDF5 layout."""

import h5py
import numpy as np
import pytest

from ptycho_nb.data import PtychoData, load, read_hdf5, save, write_hdf5

M, N, H, W = 4, 8, 24, 24


def make_data(obj=True, scan=True):
    rng = np.random.default_rng(2)
    return PtychoData(
        diffraction=(rng.random((M, N, N)) * 5).astype(np.float32),
        xcoords=np.array([4.0, 9.5, 12.0, 20.0]), ycoords=np.array([4.0, 6.0, 15.25, 20.0]),
        probe=(rng.random((2, N, N)) + 1j * rng.random((2, N, N))).astype(np.complex64),
        object=(rng.random((H, W)) + 1j).astype(np.complex64) if obj else None,
        scan_index=np.array([0, 0, 1, 1]) if scan else None,
        metadata={"photons_per_pattern": 1e4, "fft_norm": "ortho", "dc_pixel": [4, 4]})


@pytest.mark.parametrize("obj,scan", [(True, True), (False, False)])
def test_round_trip(tmp_path, obj, scan):
    d = make_data(obj, scan)
    p = write_hdf5(d, tmp_path / "d.h5")
    r = read_hdf5(p)
    for f in ("diffraction", "xcoords", "ycoords", "probe", "object", "scan_index"):
        a, b = getattr(r, f), getattr(d, f)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    assert r.metadata == {**d.metadata, "diffraction": "amplitude"}
    r2 = load(p)
    np.testing.assert_array_equal(r2.probe, d.probe)


def test_layout_units_and_compression(tmp_path):
    p = save(make_data(), tmp_path / "d.hdf5")
    with h5py.File(p) as f:
        assert f.attrs["format"] == "ptycho_nb" and int(f.attrs["format_version"]) == 1
        assert f["diffraction"].attrs["units"] == "sqrt(photons)"
        assert f["xcoords"].attrs["units"] == "pixel" and f["ycoords"].attrs["units"] == "pixel"
        assert f["diffraction"].compression == "gzip"


def test_counts_units_are_square_rooted(tmp_path):
    d = make_data()
    p = write_hdf5(d, tmp_path / "d.h5")
    with h5py.File(p, "r+") as f:
        counts = f["diffraction"][()].astype(np.float64) ** 2
        del f["diffraction"]
        f.create_dataset("diffraction", data=counts).attrs["units"] = "photons"
    np.testing.assert_allclose(read_hdf5(p).diffraction, d.diffraction, rtol=1e-6)
    with h5py.File(p, "r+") as f:
        f["diffraction"].attrs["units"] = "furlongs"
    with pytest.raises(ValueError, match=r"d\.h5.*/diffraction.*furlongs"):
        read_hdf5(p)


def test_refuses_overwrite(tmp_path):
    p = write_hdf5(make_data(), tmp_path / "d.h5")
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="d.h5"):
        save(make_data(obj=False), p)
    assert p.read_bytes() == before
    save(make_data(obj=False), p, overwrite=True)
    assert read_hdf5(p).object is None


def test_missing_dataset_and_bad_values(tmp_path):
    p = write_hdf5(make_data(), tmp_path / "d.h5")
    with h5py.File(p, "r+") as f:
        del f["ycoords"]
    with pytest.raises(ValueError, match=r"d\.h5.*'/ycoords'"):
        read_hdf5(p)
    q = write_hdf5(make_data(), tmp_path / "e.h5")
    with h5py.File(q, "r+") as f:
        f["xcoords"][1] = np.nan
    with pytest.raises(ValueError, match=r"e\.h5.*xcoords.*NaN"):
        read_hdf5(q)


def test_foreign_hdf5(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["stuff"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"other\.h5.*format"):
        read_hdf5(p)
    with pytest.raises(ValueError, match=r"other\.h5.*unknown layout.*stuff"):
        load(p)
    with h5py.File(p, "r+") as f:
        f.attrs["format"] = "ptycho_nb"
        f.attrs["format_version"] = 99
    with pytest.raises(ValueError, match=r"other\.h5.*format_version"):
        read_hdf5(p)


def test_missing_and_truncated(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.h5"):
        read_hdf5(tmp_path / "gone.h5")
    p = write_hdf5(make_data(), tmp_path / "t.h5")
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    with pytest.raises(ValueError, match=r"t\.h5"):
        read_hdf5(p)
    with pytest.raises(ValueError, match=r"t\.h5"):
        load(p)


def test_save_format_choice(tmp_path):
    d = make_data()
    with pytest.raises(ValueError, match="suffix"):
        save(d, tmp_path / "d.dat")
    p = save(d, tmp_path / "d.dat", format="hdf5")
    np.testing.assert_array_equal(load(p).diffraction, d.diffraction)  # content, not suffix
    with pytest.raises(ValueError, match="format"):
        save(d, tmp_path / "x.h5", format="tiff")
    q = tmp_path / "junk.bin"
    q.write_bytes(b"\x00" * 32)
    with pytest.raises(ValueError, match=r"junk\.bin"):
        load(q)
