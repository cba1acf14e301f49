"""Detector flag values: refused by every reader (file, key, how many, the way out), masked on request."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ptycho_nb.data import (SATURATION_MARKER, PtychoData, flag_values, load, mask_flagged, read_hdf5,
                            read_npz, read_ptychodus, save, write_ptychodus_product)

M, N = 3, 8
XC = np.array([4.0, 8.0, 12.0])


def counts(dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(2).poisson(40.0, (M, N, N)).astype(dtype)


def probe() -> np.ndarray:
    return np.ones((N, N), np.complex64)


def npz(path, diffraction, kind="counts"):
    np.savez(path, diffraction=diffraction, probeGuess=probe(), xcoords=XC, ycoords=XC,
             metadata_json=json.dumps({"diffraction": kind}))
    return path


#: (name, dtype, flag value, where): one case per marker of ptycho_nb.data.detector.
MARKERS = [
    ("negative", np.int32, -1, [(0, 1, 1), (1, 1, 1), (2, 1, 1)]),   # a Pilatus-style gap pixel
    ("negative", np.float32, -2.0, [(1, 0, 3)]),
    ("NaN/inf", np.float32, np.nan, [(0, 2, 2), (2, 7, 7)]),
    ("NaN/inf", np.float64, np.inf, [(1, 4, 4)]),
    ("saturation marker(s) (the uint16 maximum 65535)", np.uint16, 2**16 - 1, [(0, 3, 3), (1, 3, 3)]),
    ("saturation marker(s) (the uint32 maximum 4294967295)", np.uint32, 2**32 - 1, [(2, 0, 0)]),
    ("saturation marker(s) (>= 2**32-1)", np.float64, 2.0**32 - 1, [(0, 5, 6)]),
    ("saturation marker(s) (>= 2**32-1)", np.int64, 2**32, [(1, 6, 5)]),
]


def flagged(dtype, value, where) -> tuple[np.ndarray, np.ndarray]:
    c = counts(dtype)
    truth = np.zeros((M, N, N), bool)
    for j, r, col in where:
        c[j, r, col] = value
        truth[j, r, col] = True
    return c, truth


@pytest.mark.parametrize("name,dtype,value,where", MARKERS)
def test_each_marker_refused_naming_file_key_count_and_the_way_out(tmp_path, name, dtype, value, where):
    c, _ = flagged(dtype, value, where)
    path = npz(tmp_path / "scan.npz", c)
    n_patterns = len({j for j, _, _ in where})
    with pytest.raises(ValueError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and "key 'diffraction'" in msg
    assert f"{len(where)} detector flag value(s) in {n_patterns} of {M} patterns: {len(where)} {name}" in msg
    assert "mask_flagged=True" in msg and "PtychoData.mask" in msg


@pytest.mark.parametrize("name,dtype,value,where", MARKERS)
def test_each_marker_masked_on_request(tmp_path, name, dtype, value, where):
    c, truth = flagged(dtype, value, where)
    d = load(npz(tmp_path / "scan.npz", c), mask_flagged=True)
    assert np.all(d.diffraction[truth] == 0)
    np.testing.assert_array_equal(np.broadcast_to(d.mask, truth.shape), truth)
    ok = ~truth
    np.testing.assert_allclose(d.diffraction[ok], np.sqrt(c[ok].astype(np.float64)), rtol=1e-6)
    # the same flagged pixel in every pattern (a gap) gives a shared (N, N) mask
    assert d.mask.ndim == (2 if len(where) == M and len({(r, col) for _, r, col in where}) == 1 else 3)


def test_counts_that_are_not_markers_load():
    c = counts(np.uint32)
    c[0, 0, 0] = 2**16 - 1  # 65535 in a 32-bit image is a count: a 32-bit counter passes it
    c[1, 0, 0] = 2**32 - 2
    assert not flag_values(c).any()
    c16 = counts(np.float64)
    c16[0, 0, 0] = 65535.0
    assert not flag_values(c16).any()
    amp = counts(np.uint16)
    amp[0, 0, 0] = 2**16 - 1
    assert not flag_values(amp, kind="amplitude").any()  # amplitudes: no saturation markers


def test_amplitude_files_refuse_negative_and_nan(tmp_path):
    a = np.sqrt(counts())
    a[0, 1, 1], a[2, 2, 2] = -0.5, np.nan
    path = npz(tmp_path / "amp.npz", a, kind="amplitude")
    with pytest.raises(ValueError, match=r"amp\.npz: key 'diffraction' holds 2 detector flag value\(s\) "
                                         r"in 2 of 3 patterns: 1 NaN/inf, 1 negative"):
        read_npz(path)
    d = read_npz(path, mask_flagged=True)
    assert d.mask.shape == (M, N, N) and d.mask.sum() == 2 and d.diffraction[0, 1, 1] == 0


def _hdf5(path, diffraction, units):
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = "ptycho_nb", 1
        f["diffraction"] = diffraction
        f["diffraction"].attrs["units"] = units
        f["xcoords"], f["ycoords"], f["probe"] = XC, XC, probe()
    return path


def test_hdf5_counts_flags_refused_and_masked(tmp_path):
    c, truth = flagged(np.uint16, 2**16 - 1, [(0, 2, 3), (1, 2, 3), (2, 2, 3)])
    path = _hdf5(tmp_path / "c.h5", c, "photons")
    with pytest.raises(ValueError, match=r"c\.h5: key 'diffraction' holds 3 detector flag value\(s\).*"
                                         r"uint16 maximum.*mask_flagged=True"):
        read_hdf5(path)
    d = load(path, mask_flagged=True)
    assert d.mask.shape == (N, N) and d.mask[2, 3] and d.mask.sum() == 1
    path = _hdf5(tmp_path / "a.h5", np.where(truth, -1.0, np.sqrt(c)), "sqrt(photons)")
    with pytest.raises(ValueError, match=r"a\.h5: key 'diffraction' holds 3 .*3 negative"):
        load(path)


def test_ptychodus_flags_refused_and_masked_with_the_files_own_mask(tmp_path):
    d = PtychoData(np.sqrt(counts()).astype(np.float32), XC, XC, probe(),
                   object=np.ones((16, 16), np.complex64))
    p = save(d, tmp_path / "product.h5", format="ptychodus")
    dp = tmp_path / "diffraction.h5"
    with h5py.File(dp, "r+") as f:
        assert f["patterns"].dtype == np.uint32  # Poisson counts: stored as integers
        f["patterns"][1, 4, 4] = SATURATION_MARKER
        f["bad_pixels"][0, 0] = True
    with pytest.raises(ValueError, match=r"diffraction\.h5: key 'patterns' holds 1 detector flag "
                                         r"value\(s\) in 1 of 3 patterns: 1 saturation marker"):
        read_ptychodus(p, dp)
    r = load(p, mask_flagged=True)
    assert r.mask.shape == (M, N, N) and r.mask[:, 0, 0].all() and r.mask[1, 4, 4]
    assert r.mask.sum() == M + 1 and r.diffraction[1, 4, 4] == 0


def test_ptychodus_writer_never_writes_the_uint32_marker(tmp_path):
    amp = np.sqrt(counts()).astype(np.float32)
    amp[0, 0, 0] = np.sqrt(np.float64(SATURATION_MARKER))  # a count the marker would stand for
    d = PtychoData(amp, XC, XC, probe(), object=np.ones((16, 16), np.complex64))
    save(d, tmp_path / "product.h5", format="ptychodus")
    with h5py.File(tmp_path / "diffraction.h5") as f:
        assert f["patterns"].dtype == np.float32


def test_load_mask_flagged_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="mask_flagged: expected True or False"):
        load(npz(tmp_path / "s.npz", counts()), mask_flagged="yes")


# ------------------------------------------------------------------ mask_flagged()
def test_mask_flagged_array_keeps_dtype_and_merges_masks():
    c, truth = flagged(np.int32, -1, [(0, 1, 1), (1, 1, 1), (2, 1, 1)])
    values, mask = mask_flagged(c)
    assert values.dtype == np.int32 and np.all(values[truth] == 0) and c[0, 1, 1] == -1  # a copy
    assert mask.shape == (N, N) and mask[1, 1] and mask.sum() == 1  # same pixel everywhere: shared
    given = np.zeros((N, N), bool)
    given[7, 0] = True
    _, merged = mask_flagged(c, given)
    assert merged.shape == (N, N) and merged.sum() == 2
    c[2, 3, 3] = -2
    _, per = mask_flagged(c, given)
    assert per.shape == (M, N, N) and per.sum() == 2 * M + 1
    assert mask_flagged(counts())[1] is None
    np.testing.assert_array_equal(mask_flagged(counts(), given)[1], given)


def test_mask_flagged_saturation_for_arrays_and_scans():
    c = counts()
    c[0, 4, 5] = 900.0
    _, mask = mask_flagged(c, saturation=500)
    assert mask.shape == (M, N, N) and mask.sum() == 1 and mask[0, 4, 5]
    amp = np.sqrt(c).astype(np.float32)
    d = PtychoData(amp, XC, XC, probe(), mask=np.eye(N, dtype=bool))
    out = mask_flagged(d, saturation=500)
    assert out is not d and out.diffraction[0, 4, 5] == 0 and d.diffraction[0, 4, 5] == 30
    assert out.mask.shape == (M, N, N) and out.mask.sum() == M * N + 1  # merged with d.mask
    again = mask_flagged(d)  # a valid scan has nothing to flag without a saturation level
    np.testing.assert_array_equal(again.diffraction, d.diffraction)
    np.testing.assert_array_equal(again.mask, d.mask)


@pytest.mark.parametrize("call,match", [
    (lambda: mask_flagged(np.ones((N, N))), r"data: expected \(M, N, N\)"),
    (lambda: mask_flagged(np.ones((M, N, N), complex)), "data: expected real numbers"),
    (lambda: mask_flagged(np.ones((M, N, N)), np.ones((N, N))), "mask: expected a bool array"),
    (lambda: mask_flagged(np.ones((M, N, N)), kind="intensity"), "kind: expected 'counts' or 'amplitude'"),
    (lambda: mask_flagged(np.ones((M, N, N)), saturation=-1), "saturation: expected None or a positive"),
    (lambda: mask_flagged(PtychoData(np.ones((M, N, N)), XC, XC, probe()), kind="counts"),
     "kind: a PtychoData holds amplitudes"),
    (lambda: mask_flagged(PtychoData(np.ones((M, N, N)), XC, XC, probe()), np.zeros((N, N), bool)),
     "mask: a PtychoData brings its own mask"),
])
def test_mask_flagged_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_container_refusal_points_to_mask_flagged():
    with pytest.raises(ValueError, match=r"PtychoData\.diffraction: amplitudes must be >= 0.*mask_flagged"):
        PtychoData(-np.ones((M, N, N)), XC, XC, probe())
    with pytest.raises(ValueError, match=r"PtychoData\.diffraction: contains 1 NaN/inf.*mask_flagged"):
        PtychoData(np.where(np.arange(M * N * N).reshape(M, N, N) == 5, np.nan, 1.0), XC, XC, probe())


def test_write_ptychodus_product_unchanged_by_masks(tmp_path):
    # the product never held the mask: it stays byte-for-byte what ptychodus expects
    d = PtychoData(np.sqrt(counts()).astype(np.float32), XC, XC, probe(), object=np.ones((16, 16), np.complex64),
                   mask=np.eye(N, dtype=bool))
    with h5py.File(write_ptychodus_product(d, tmp_path / "p.h5")) as f:
        assert "bad_pixels" not in f and "mask" not in f
