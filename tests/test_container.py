"""PtychoData validation: every bad input is a ValueError naming the field."""

import numpy as np
import pytest

from ptycho_nb.data import PtychoData

M, N, H, W = 3, 8, 24, 28


def _good(**over):
    rng = np.random.default_rng(0)
    kw = dict(
        diffraction=rng.random((M, N, N)).astype(np.float32),
        xcoords=np.array([4.0, 10.0, 20.0]),
        ycoords=np.array([4.0, 12.0, 18.0]),
        probe=(rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        object=np.ones((H, W), np.complex64),
        scan_index=np.zeros(M, np.int64),
        metadata={"photons_per_pattern": 1e6},
    )
    kw.update(over)
    return kw


def test_good_converts_types():
    d = PtychoData(**_good(xcoords=[[4], [10], [20]], probe=np.ones((1, N, N))))
    assert d.diffraction.dtype == np.float32 and d.probe.dtype == np.complex64
    assert d.xcoords.shape == (M,) and d.probe.shape == (N, N) and d.N == N and d.n_patterns == M
    assert d.positions.shape == (M, 2) and np.array_equal(d.positions[:, 1], d.xcoords)
    assert d.subset([0, 2]).n_patterns == 2
    assert "M=3" in repr(d)


BAD = [
    ("diffraction", dict(diffraction=np.zeros((N, N), np.float32))),            # 2-D
    ("diffraction", dict(diffraction=np.zeros((M, N, N + 2), np.float32))),      # not square
    ("diffraction", dict(diffraction=np.zeros((M, 7, 7), np.float32))),          # odd N
    ("diffraction", dict(diffraction=np.zeros((0, N, N), np.float32))),          # empty
    ("diffraction", dict(diffraction=np.zeros((M, N, N), np.complex64))),        # complex
    ("diffraction", dict(diffraction=np.full((M, N, N), np.nan, np.float32))),   # NaN
    ("diffraction", dict(diffraction=np.full((M, N, N), np.inf, np.float32))),   # inf
    ("diffraction", dict(diffraction=-np.ones((M, N, N), np.float32))),          # negative
    ("xcoords", dict(xcoords=np.array([4.0, 10.0]))),                             # length mismatch
    ("ycoords", dict(ycoords=np.array([4.0, np.nan, 8.0]))),                      # NaN
    ("xcoords", dict(xcoords=np.array([4.0, np.inf, 8.0]))),                      # inf
    ("xcoords", dict(xcoords=np.array([4, 10, 20]) + 0j)),                        # complex
    ("probe", dict(probe=np.ones((N + 2, N + 2), np.complex64))),                 # wrong size
    ("probe", dict(probe=np.ones((N,), np.complex64))),                           # wrong ndim
    ("probe", dict(probe=np.zeros((N, N), np.complex64))),                        # all zero
    ("probe", dict(probe=np.full((N, N), np.nan, np.complex64))),                 # NaN
    ("object", dict(object=np.ones((2, H, W), np.complex64))),                    # 3-D
    ("object", dict(object=np.full((H, W), np.nan, np.complex64))),               # NaN
    ("xcoords/ycoords", dict(xcoords=np.array([2.0, 10.0, 20.0]))),               # patch outside
    ("xcoords/ycoords", dict(ycoords=np.array([4.0, 12.0, 21.0]))),               # patch outside
    ("scan_index", dict(scan_index=np.zeros(M + 1))),                             # length
    ("metadata", dict(metadata=[1, 2])),                                          # not a dict
    ("metadata", dict(metadata={"x": object()})),                                 # not JSON
]


@pytest.mark.parametrize("field,over", BAD)
def test_bad_input_names_field(field, over):
    with pytest.raises(ValueError, match=f"PtychoData.{field}"):
        PtychoData(**_good(**over))
