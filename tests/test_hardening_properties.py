"""Property-based tests (hypothesis) over the readers, the config fields and the model archive.

Each property says: whatever the input, the outcome is either a valid result or a clear error
(``ValueError`` / ``ConfigError`` naming the file, key or field) -- never another exception type,
never a silently converted value. Outcome counts are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptycho_nb.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.config.fields import ConfigError, config_fields
from ptycho_nb.data import PtychoData, load, save
from ptycho_nb.model.archive import read_archive, write_archive

#: Under CI the examples are derandomised (the same every run: CI must not be flaky); a
#: developer's run explores new ones each time, which is how new bad inputs are found.
_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _settings(n: int) -> settings:
    """Bounded runs (the whole module stays well under a minute on 2 cores); no example
    database is written into the working tree."""
    return settings(max_examples=n, deadline=None, database=None, derandomize=_CI,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

M, N = 6, 16


def _report(name: str) -> None:
    print(f"\n{name}: {dict(COUNTS[name])}")


# ------------------------------------------------------------------ readers
def _valid() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:N, 0:N] - N // 2
    return {"diffraction": rng.random((M, N, N)).astype(np.float32),
            "probeGuess": (np.exp(-(x**2 + y**2) / 20.0) + 0j).astype(np.complex64),
            "xcoords": np.linspace(10, 20, M), "ycoords": np.linspace(12, 18, M),
            "scan_index": np.zeros(M, dtype=np.int64)}


#: Replacement values for one key: wrong dtype families, non-finite values, wrong shapes.
_BAD = {
    "bool": lambda a: np.asarray(a).real > 0.5 if np.iscomplexobj(a) else np.asarray(a) > 0.5,
    "datetime": lambda a: np.zeros(np.shape(a), dtype="datetime64[ns]"),
    "timedelta": lambda a: np.zeros(np.shape(a), dtype="timedelta64[s]"),
    "string": lambda a: np.full(np.shape(a), "1.5"),
    "nan": lambda a: np.full(np.shape(a), np.nan),
    "inf": lambda a: np.full(np.shape(a), np.inf),
    "negative": lambda a: -np.ones(np.shape(a)),
    "fraction": lambda a: np.full(np.shape(a), 2.5),
    "int": lambda a: np.ones(np.shape(a), dtype=np.int32),
    "huge": lambda a: np.full(np.shape(a), 1e300),
    "complex": lambda a: np.ones(np.shape(a), dtype=np.complex128),
    "scalar": lambda a: np.float64(3.0),
    "empty": lambda a: np.zeros((0,) + np.shape(a)[1:]),
    "short": lambda a: np.asarray(a)[:-1] if np.ndim(a) else a,
    "uint8": lambda a: np.ones(np.shape(a), dtype=np.uint8),
}


def _check_loaded(d: PtychoData) -> None:
    """A scan that loaded is valid: finite, right dtypes, the promised shapes."""
    assert d.diffraction.dtype == np.float32 and np.all(np.isfinite(d.diffraction))
    assert np.all(d.diffraction >= 0)
    assert d.xcoords.dtype == np.float64 and np.all(np.isfinite(d.xcoords))
    assert d.probe.dtype == np.complex64 and np.all(np.isfinite(d.probe))
    assert d.scan_index is None or d.scan_index.dtype == np.int64


@_settings(150)
@given(key=st.sampled_from(["diffraction", "probeGuess", "xcoords", "ycoords", "scan_index"]),
       bad=st.sampled_from(sorted(_BAD)), fmt=st.sampled_from(["npz", "h5"]))
def test_reader_outcome_is_valid_data_or_clear_error(tmp_path_factory, key, bad, fmt):
    arrays = _valid()
    arrays[key] = _BAD[bad](arrays[key])
    folder = tmp_path_factory.mktemp("r")
    if fmt == "npz":
        path = folder / "s.npz"
        np.savez(path, **arrays)
        kw = {"diffraction_kind": "amplitude"}
    else:
        path = folder / "s.h5"
        names = {"probeGuess": "probe"}
        with h5py.File(path, "w") as f:
            f.attrs["format"], f.attrs["format_version"] = "ptycho_nb", 1
            for k, v in arrays.items():
                v = np.asarray(v)
                if v.dtype.kind == "U":
                    v = v.astype("S")
                try:
                    f[names.get(k, k)] = v
                except TypeError:  # h5py cannot store datetime64: store its int64 view
                    f[names.get(k, k)] = v.view(np.int64)
        kw = {}
    try:
        data = load(path, **kw)
    except ValueError as exc:
        msg = str(exc)
        assert str(path) in msg, msg
        # it names the key (or, for a length mismatch, the key it disagrees with)
        assert any(k in msg for k in ("diffraction", "probe", "xcoords", "ycoords",
                                      "scan_index", "format")), msg
        COUNTS["readers"]["clear error"] += 1
    else:
        _check_loaded(data)
        COUNTS["readers"]["loaded valid"] += 1


@_settings(40)
@given(m=st.integers(1, 8), n=st.sampled_from([2, 4, 8]), k=st.integers(1, 2),
       seed=st.integers(0, 2**16), fmt=st.sampled_from(["npz", "h5", "ptychodus"]),
       with_scan_index=st.booleans())
def test_valid_scan_round_trips_exactly(tmp_path_factory, m, n, k, seed, fmt, with_scan_index):
    rng = np.random.default_rng(seed)
    probe = (rng.random((k, n, n)) + 1j * rng.random((k, n, n))).astype(np.complex64)
    obj = (rng.random((n * 4, n * 4)) + 1j * rng.random((n * 4, n * 4))).astype(np.complex64)
    data = PtychoData(diffraction=rng.random((m, n, n)).astype(np.float32),
                      xcoords=rng.uniform(n // 2, 3.5 * n, m), ycoords=rng.uniform(n // 2, 3.5 * n, m),
                      probe=probe, object=obj,
                      scan_index=rng.integers(0, 3, m) if with_scan_index else None)
    folder = tmp_path_factory.mktemp("rt")
    if fmt == "ptychodus":
        p = save(data, folder / "product.h5", format="ptychodus")
    else:
        p = save(data, folder / f"s.{'npz' if fmt == 'npz' else 'h5'}")
    back = load(p)
    np.testing.assert_allclose(back.diffraction, data.diffraction, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(back.xcoords, data.xcoords, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.probe, data.probe if k > 1 else data.probe)
    COUNTS["round trip"][fmt] += 1


# ------------------------------------------------------------------ config fields
CONFIGS = (ModelConfig, TrainingConfig, InferenceConfig, PyTorchExecutionConfig)
FIELDS = [(cls, f) for cls in CONFIGS for f in config_fields(cls)]
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
    st.booleans(), st.none(), st.text(max_size=8), st.sampled_from(["auto", "min", "cpu", ""]),
    st.just([1.0]), st.just({"a": 1}),
)


def _ok(f, value) -> bool:
    """The rule, re-derived independently of validate_fields, for a value that was accepted."""
    m = f.metadata
    if value is None:
        return m["optional"]
    if m["choices"] is not None and value not in m["choices"]:
        return False
    if m["kind"] == "float":
        if not (isinstance(value, float) and math.isfinite(value)):
            return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if m["min"] is not None and (value <= m["min"] if m["min_exclusive"] else value < m["min"]):
            return False
        if m["max"] is not None and (value >= m["max"] if m["max_exclusive"] else value > m["max"]):
            return False
    return True


@_settings(400)
@given(pick=st.sampled_from(FIELDS), value=VALUES)
def test_config_field_accepts_only_rule_abiding_values(pick, value):
    cls, f = pick
    try:
        cfg = cls(**{f.name: value})
    except ConfigError as exc:
        assert f.name in str(exc) or f.name in exc.fields, str(exc)
        COUNTS["config fields"]["clear error"] += 1
        return
    except ValueError as exc:  # cross-field rules (ConfigError is a ValueError too)
        raise AssertionError(f"{cls.__name__}.{f.name}={value!r}: plain ValueError {exc}")
    got = getattr(cfg, f.name)
    assert _ok(f, got), f"{cls.__name__}.{f.name}={value!r} accepted as {got!r}"
    COUNTS["config fields"]["accepted valid"] += 1


# ------------------------------------------------------------------ archive
_TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64,
                 torch.int64, torch.int32, torch.uint8, torch.bool]


@st.composite
def state_dicts(draw):
    n = draw(st.integers(1, 4))
    out = {}
    for i in range(n):
        dtype = draw(st.sampled_from(_TORCH_DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
        seed = draw(st.integers(0, 2**16))
        g = torch.Generator().manual_seed(seed)
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        if dtype.is_complex:
            t = torch.complex(t, -t)
        out[f"p{i}.w"] = (t * 10).to(dtype)
    return out


@_settings(40)
@given(state=state_dicts())
def test_archive_round_trip_is_bit_identical(tmp_path_factory, state):
    p = write_archive(tmp_path_factory.mktemp("a") / "wts.h5.zip", state_dict=state,
                      configs={"model": {"N": 16}}, params={"x": 1}, scaling={"s": 1.5},
                      model_name="Toy")
    back = read_archive(p).state_dict
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    COUNTS["archive round trip"]["identical"] += 1


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory):
    p = write_archive(tmp_path_factory.mktemp("a") / "wts.h5.zip",
                      state_dict={"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(2)},
                      configs={"model": {"N": 16}}, params={}, scaling={"s": 1.0}, model_name="Toy")
    return p.read_bytes()


@_settings(150)
@given(data=st.data())
def test_damaged_archive_is_refused_clearly(tmp_path_factory, archive_bytes, data):
    raw = bytearray(archive_bytes)
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    p = tmp_path_factory.mktemp("d") / "wts.h5.zip"
    p.write_bytes(bytes(raw))
    try:
        arc = read_archive(p)
    except ValueError as exc:
        assert str(p) in str(exc), str(exc)
        COUNTS["damaged archive"]["clear error"] += 1
    else:
        # damage that zip/sha256 cannot see (e.g. in a comment or padding): content unchanged
        assert torch.equal(arc.state_dict["w"], torch.arange(12.0).reshape(3, 4))
        COUNTS["damaged archive"]["read unchanged"] += 1


@_settings(60)
@given(member=st.sampled_from(["configs.json", "params.json", "scaling.json", "wts.h5",
                               "manifest.json"]),
       payload=st.one_of(st.binary(max_size=64),
                         st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False)
                                      | st.text(max_size=5),
                                      lambda c: st.lists(c, max_size=3)
                                      | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                      max_leaves=8).map(lambda o: json.dumps(o).encode())))
def test_checksummed_but_malformed_member_is_refused(tmp_path_factory, archive_bytes, member,
                                                     payload):
    """A member replaced by arbitrary bytes/JSON, with the checksums made to match again."""
    import hashlib

    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[member] = payload
    if member != "manifest.json":
        manifest = json.loads(members["manifest.json"])
        manifest["checksums"][member] = hashlib.sha256(payload).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
    p = tmp_path_factory.mktemp("m") / "wts.h5.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    try:
        read_archive(p)
    except ValueError as exc:
        assert str(p) in str(exc), str(exc)
        COUNTS["malformed member"]["clear error"] += 1
    else:
        COUNTS["malformed member"]["read"] += 1  # e.g. a JSON object in params.json: valid


def test_zz_report_counts():
    """Print the outcome counts of the properties above (run with -s to see them)."""
    for name in sorted(COUNTS):
        _report(name)
    total = sum(sum(c.values()) for c in COUNTS.values())
    print(f"\ntotal inputs: {total}")
