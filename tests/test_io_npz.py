"""PtychoPINN NPZ contract reader/writer."""

import json

import numpy as np
import pytest

from ptycho_nb.data import PtychoData, load, read_npz, save, write_npz

M, N, H, W = 4, 8, 24, 24


def make_data(obj=True, **meta):
    rng = np.random.default_rng(1)
    return PtychoData(
        diffraction=(rng.random((M, N, N)) * 5).astype(np.float32),
        xcoords=np.array([4.0, 9.5, 12.0, 20.0]), ycoords=np.array([4.0, 6.0, 15.25, 20.0]),
        probe=(rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        object=(rng.random((H, W)) * np.exp(1j * rng.random((H, W)))).astype(np.complex64) if obj else None,
        scan_index=np.array([0, 0, 1, 1]), metadata={"photons_per_pattern": 1e4, **meta})


def raw(path, **arrays):
    np.savez(path, **arrays)
    return path


def base_arrays(d):
    return dict(probeGuess=d.probe, xcoords=d.xcoords, ycoords=d.ycoords)


def test_round_trip(tmp_path):
    d = make_data()
    p = write_npz(d, tmp_path / "d.npz")
    r = read_npz(p)
    for f in ("diffraction", "xcoords", "ycoords", "probe", "object", "scan_index"):
        np.testing.assert_array_equal(getattr(r, f), getattr(d, f))
    assert r.metadata["photons_per_pattern"] == 1e4 and r.metadata["diffraction"] == "amplitude"
    # load/save dispatch gives the same result
    save(d, tmp_path / "e.npz")
    np.testing.assert_array_equal(load(tmp_path / "e.npz").diffraction, d.diffraction)


def test_no_object_written_when_unknown(tmp_path):
    p = write_npz(make_data(obj=False), tmp_path / "d.npz")
    assert "objectGuess" not in np.load(p).files
    assert read_npz(p).object is None


def test_refuses_overwrite(tmp_path):
    p = write_npz(make_data(), tmp_path / "d.npz")
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="d.npz"):
        write_npz(make_data(obj=False), p)
    assert p.read_bytes() == before
    write_npz(make_data(obj=False), p, overwrite=True)
    assert read_npz(p).object is None


def test_legacy_diff3d_and_extras(tmp_path):
    d = make_data()
    p = raw(tmp_path / "legacy.npz", diff3d=d.diffraction, xcoords_start=d.xcoords + 3,
            ycoords_start=d.ycoords, bad_pixels=np.zeros((N, N), bool), **base_arrays(d),
            probe3=np.ones(3))
    r = read_npz(p)
    np.testing.assert_array_equal(r.diffraction, d.diffraction)
    np.testing.assert_array_equal(r.xcoords, d.xcoords)  # not xcoords_start
    assert r.metadata["source_diffraction_kind"] == "amplitude" and r.object is None


def test_probe_with_leading_mode_axis(tmp_path):
    d = make_data()
    p = raw(tmp_path / "p.npz", diffraction=d.diffraction, **{**base_arrays(d), "probeGuess": d.probe[None]})
    assert read_npz(p).probe.shape == (N, N)


def test_counts_explicit_and_recorded(tmp_path):
    d = make_data()
    counts = np.round(d.diffraction.astype(np.float64) ** 2 * 40)
    p = raw(tmp_path / "c.npz", diffraction=counts, **base_arrays(d))
    r = read_npz(p, diffraction_kind="counts")
    np.testing.assert_allclose(r.diffraction, np.sqrt(counts), rtol=1e-6)
    assert r.metadata["source_diffraction_kind"] == "counts"
    p2 = raw(tmp_path / "c2.npz", diffraction=counts, metadata_json=json.dumps({"diffraction": "counts"}),
             **base_arrays(d))
    np.testing.assert_allclose(read_npz(p2).diffraction, np.sqrt(counts), rtol=1e-6)


def test_unlabelled_counts_like_data_is_refused(tmp_path):
    d = make_data()
    counts = np.round(d.diffraction.astype(np.float64) ** 2 * 40)
    assert counts.max() > 50
    p = raw(tmp_path / "c.npz", diffraction=counts.astype(np.int32), **base_arrays(d))
    with pytest.raises(ValueError, match=r"c\.npz.*diffraction.*diffraction_kind"):
        read_npz(p)
    # the explicit choice is honoured either way
    np.testing.assert_array_equal(read_npz(p, diffraction_kind="amplitude").diffraction, counts)
    # small integer-valued amplitudes are fine (below the threshold)
    p2 = raw(tmp_path / "small.npz", diffraction=np.ones((M, N, N)) * 3, **base_arrays(d))
    assert read_npz(p2).diffraction.max() == 3


def test_conflicting_kind_warns(tmp_path):
    d = make_data()
    p = raw(tmp_path / "k.npz", diffraction=d.diffraction, metadata_json=json.dumps({"diffraction": "amplitude"}),
            **base_arrays(d))
    with pytest.warns(UserWarning, match="amplitude"):
        read_npz(p, diffraction_kind="counts")


def test_negative_counts_and_bad_kind(tmp_path):
    d = make_data()
    p = raw(tmp_path / "n.npz", diffraction=d.diffraction - 1, **base_arrays(d))
    with pytest.raises(ValueError, match=r"n\.npz.*'diffraction'.*negative"):
        read_npz(p, diffraction_kind="counts")
    with pytest.raises(ValueError, match=r"n\.npz.*'diffraction'.*negative"):
        read_npz(p, diffraction_kind="amplitude")
    with pytest.raises(ValueError, match="diffraction_kind"):
        read_npz(p, diffraction_kind="intensity")
    p2 = raw(tmp_path / "m.npz", diffraction=d.diffraction, metadata_json=json.dumps({"diffraction": "photons"}),
             **base_arrays(d))
    with pytest.raises(ValueError, match=r"m\.npz.*metadata_json"):
        read_npz(p2)


def test_nan_counts(tmp_path):
    d = make_data()
    diff = d.diffraction.copy()
    diff[0, 0, 0] = np.nan
    p = raw(tmp_path / "nan.npz", diffraction=diff, **base_arrays(d))
    with pytest.raises(ValueError, match=r"nan\.npz.*'diffraction'.*NaN"):
        read_npz(p, diffraction_kind="counts")
    with pytest.raises(ValueError, match=r"nan\.npz.*diffraction.*NaN"):
        read_npz(p, diffraction_kind="amplitude")


def test_missing_keys_listed(tmp_path):
    d = make_data()
    p = raw(tmp_path / "x.npz", diffraction=d.diffraction, xcoords=d.xcoords)
    with pytest.raises(ValueError, match=r"x\.npz.*probeGuess.*ycoords"):
        read_npz(p)


def test_mismatched_lengths_name_file_and_key(tmp_path):
    d = make_data()
    p = raw(tmp_path / "l.npz", diffraction=d.diffraction, **{**base_arrays(d), "xcoords": d.xcoords[:2]})
    with pytest.raises(ValueError, match=r"l\.npz.*xcoords"):
        read_npz(p)


def test_object_array_refused_without_unpickling(tmp_path):
    d = make_data()
    p = tmp_path / "o.npz"
    np.savez(p, diffraction=d.diffraction, probeGuess=np.array([d.probe, None], dtype=object),
             xcoords=d.xcoords, ycoords=d.ycoords)
    with pytest.raises(ValueError, match=r"o\.npz.*'probeGuess'.*unpickle"):
        read_npz(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_npz(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_file(tmp_path, keep):
    p = write_npz(make_data(), tmp_path / "t.npz")
    b = p.read_bytes()
    p.write_bytes(b[: int(len(b) * keep)])
    with pytest.raises(ValueError, match=r"t\.npz"):
        read_npz(p)
    with pytest.raises(ValueError, match=r"t\.npz"):
        load(p)


def test_foreign_files(tmp_path):
    p = tmp_path / "f.npz"
    p.write_text("hello, not an npz")
    with pytest.raises(ValueError, match=r"f\.npz"):
        read_npz(p)
    q = tmp_path / "single.npz"
    with open(q, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npz.*single \.npy"):
        read_npz(q)


def test_corrupted_bytes_name_file(tmp_path):
    p = write_npz(make_data(), tmp_path / "c.npz")
    b = bytearray(p.read_bytes())
    mid = len(b) // 2
    b[mid:mid + 64] = bytes(64)
    p.write_bytes(bytes(b))
    with pytest.raises(ValueError, match=r"c\.npz"):
        read_npz(p)
