"""SimulatedScan: the typed record of a simulated scan, through metadata, files and PtychoData."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ptycho_nb import PtychoData, load, save
from ptycho_nb.data import SimulatedScan
from ptycho_nb.physics import simulate
from ptycho_nb.physics.varied import VariedSpec, draw_scan, scan_seed


@pytest.fixture(scope="module")
def scans() -> dict[str, PtychoData]:
    return {"simulate": simulate(N=16, n_positions=6, object_shape=(40, 40), seed=1),
            "varied": draw_scan(VariedSpec(N=16, n_positions=(4, 8)), scan_seed(3, 5))}


@pytest.mark.parametrize("which", ["simulate", "varied"])
def test_record_round_trips_through_metadata(scans, which):
    d = scans[which]
    rec = d.record
    assert isinstance(rec, SimulatedScan)
    assert rec.as_dict() == d.metadata  # the metadata is the record, key for key
    assert SimulatedScan.from_metadata(json.loads(json.dumps(rec.as_dict()))) == rec
    assert rec.photons_per_pattern == d.metadata["photons_per_pattern"]
    assert rec.n_positions == d.n_patterns and rec.object_shape == d.object.shape
    assert rec.dc_pixel == (8, 8) and rec.fft_norm == "ortho"


def test_stream_index_of_varied_scans(scans):
    assert scans["varied"].record.stream_index == 5
    assert scans["varied"].record.spawn_key == (5,)
    assert scans["simulate"].record.stream_index is None
    assert "stream_index" not in scans["simulate"].metadata  # only stream scans write it
    assert draw_scan(VariedSpec(N=16, n_positions=(4, 8)), 3).record.stream_index is None


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("which", ["simulate", "varied"])
def test_record_survives_save_and_load(scans, which, suffix, tmp_path):
    d = scans[which]
    path = tmp_path / f"scan{suffix}"
    save(d, path)
    back = load(path)
    assert back.record == d.record
    np.testing.assert_array_equal(back.diffraction, d.diffraction)


def test_no_record_for_data_that_was_not_simulated():
    d = PtychoData(diffraction=np.ones((2, 8, 8), np.float32), xcoords=[4.0, 5.0],
                   ycoords=[4.0, 4.0], probe=np.ones((8, 8), np.complex64),
                   metadata={"photons_per_pattern": 1e3, "pixel_size_m": 1e-8})
    assert d.record is None
    assert "photons/pattern" not in repr(d)


@pytest.mark.parametrize("key,value", [("photons_per_pattern", "many"), ("photons_per_pattern", -1.0),
                                       ("photons_per_pattern", None), ("n_positions", 2.5),
                                       ("object_shape", [40]), ("seed", -3), ("noise", "gaussian"),
                                       ("probe_kwargs", [1, 2]), ("step", True),
                                       ("source", "somebody.else")])
def test_bad_value_names_the_key(scans, key, value):
    md = {**scans["simulate"].metadata, key: value}
    with pytest.raises(ValueError, match=rf"SimulatedScan\.{key}: expected .* got "):
        SimulatedScan.from_metadata(md)


@pytest.mark.parametrize("key", ["photons_per_pattern", "probe_kind", "scan", "seed"])
def test_missing_key_is_named(scans, key):
    md = {k: v for k, v in scans["varied"].metadata.items() if k != key}
    with pytest.raises(ValueError, match=rf"SimulatedScan\.{key}: missing from the metadata"):
        SimulatedScan.from_metadata(md)


def test_a_bad_record_is_an_error_on_access_not_on_construction(scans):
    d = scans["simulate"]
    bad = PtychoData(diffraction=d.diffraction, xcoords=d.xcoords, ycoords=d.ycoords, probe=d.probe,
                     metadata={**d.metadata, "step": "wide"})
    with pytest.raises(ValueError, match=r"SimulatedScan\.step"):
        bad.record
    assert "photons/pattern" not in repr(bad)  # the repr never raises
    assert "photons/pattern=1e+06" in repr(d)


def test_inconsistent_stream_index_is_refused(scans):
    md = {**scans["varied"].metadata, "stream_index": 4}
    with pytest.raises(ValueError, match=r"SimulatedScan\.stream_index"):
        SimulatedScan.from_metadata(md)
    with pytest.raises(ValueError, match="metadata mapping"):
        SimulatedScan.from_metadata([("source", "x")])


def test_old_varied_metadata_reads_the_probe_family_as_the_kind(scans):
    # varied scans written before the one probe vocabulary: probe_kind held the builder
    md = {**scans["varied"].metadata, "probe_kind": "disc", "probe_family": "defocused_pupil"}
    assert SimulatedScan.from_metadata(md).probe_kind == "defocused_pupil"


def test_fields_are_normalised_and_frozen(scans):
    rec = scans["simulate"].record
    kw = {**rec.as_dict()}
    kw.pop("diffraction")
    again = SimulatedScan(**{**kw, "object_shape": [40, 40], "n_positions": np.int64(6),
                             "photons_per_pattern": np.float32(1e6),
                             "object_kwargs": {"radius_range": (1.0, 2.0)}})
    assert again.object_shape == (40, 40) and type(again.n_positions) is int
    assert type(again.photons_per_pattern) is float
    assert again.object_kwargs == {"radius_range": [1.0, 2.0]}  # as it reads back from JSON
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.step = 3.0


def test_ptychodus_product_takes_its_photon_count_from_the_record(scans, tmp_path):
    import h5py

    from ptycho_nb.data import write_ptychodus_product

    d = scans["varied"]
    write_ptychodus_product(d, tmp_path / "p.h5")
    with h5py.File(tmp_path / "p.h5") as f:
        assert f.attrs["probe_photon_count"] == pytest.approx(d.record.photons_per_pattern)
    # a measured scan (no record) keeps the dose it noted; without a usable one, ptychodus's
    # 'unknown' (0)
    for noted, written in ((5.0, 5.0), ("lots", 0.0), (None, 0.0), (float("nan"), 0.0)):
        meta = {} if noted is None else {"photons_per_pattern": noted}
        plain = PtychoData(diffraction=d.diffraction, xcoords=d.xcoords, ycoords=d.ycoords, probe=d.probe,
                           object=d.object, metadata=meta)
        write_ptychodus_product(plain, tmp_path / "q.h5", overwrite=True)
        with h5py.File(tmp_path / "q.h5") as f:
            assert f.attrs["probe_photon_count"] == written, noted
