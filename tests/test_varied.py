"""Varied training data: new object kinds, VariedSpec, draw_scan, iter_scans, VariedScanDataset."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ptycho_nb import PtychoData
from ptycho_nb.physics import forward_from_object, make_object, varied
from ptycho_nb.physics.objects import OBJECT_KINDS, object_maps
from ptycho_nb.engine.callbacks import DatasetEpoch
from ptycho_nb.engine.varied_data import FreshScans, VariedScanDataset
from ptycho_nb.physics.varied import (PROBE_FAMILIES, VariedSpec, draw_object,
                                      draw_probe, draw_scan, iter_scans, scan_seed)

NEW_KINDS = ("dead_leaves", "polygons", "blobs", "texture")

# Small scans keep the file fast: 32-pixel patterns, 12–24 positions.
SMALL = VariedSpec(N=32, n_positions=(12, 24))


def _same_scan(a: PtychoData, b: PtychoData) -> bool:
    ma = {k: v for k, v in a.metadata.items() if k != "simulate_seconds"}
    mb = {k: v for k, v in b.metadata.items() if k != "simulate_seconds"}
    return (np.array_equal(a.diffraction, b.diffraction) and np.array_equal(a.xcoords, b.xcoords)
            and np.array_equal(a.ycoords, b.ycoords) and np.array_equal(a.probe, b.probe)
            and np.array_equal(a.object, b.object) and ma == mb)


# --- object kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_new_kinds_seeded_in_range(kind):
    kw = dict(amplitude_range=(0.2, 0.8), phase_range=(-0.7, 1.9))
    a = make_object(kind, (48, 64), seed=1, **kw)
    assert a.shape == (48, 64) and a.dtype == np.complex64
    assert np.array_equal(a, make_object(kind, (48, 64), seed=1, **kw))
    assert not np.array_equal(a, make_object(kind, (48, 64), seed=2, **kw))
    amp, ph = np.abs(a), np.angle(a)
    tol = 1e-5
    assert amp.min() >= 0.2 - tol and amp.max() <= 0.8 + tol
    assert ph.min() >= -0.7 - tol and ph.max() <= 1.9 + tol
    # Structured, not flat: both maps use most of their range.
    assert np.ptp(amp) > 0.5 and np.ptp(ph) > 2.0


def test_new_kinds_registered_and_maps_match_make_object():
    assert set(NEW_KINDS) <= set(OBJECT_KINDS)
    t_amp, t_ph = object_maps("polygons", (40, 40), seed=5)
    assert t_amp.min() == 0 and t_amp.max() == 1 and t_ph.min() == 0 and t_ph.max() == 1
    o = make_object("polygons", (40, 40), seed=5, amplitude_range=(0.5, 1.0), phase_range=(0, 1))
    np.testing.assert_allclose(np.abs(o), 0.5 + 0.5 * t_amp, atol=1e-6)


def test_texture_is_another_picture_per_seed_unlike_image():
    assert np.array_equal(make_object("image", (64, 64), seed=1), make_object("image", (64, 64), seed=2))
    a, b = (np.abs(make_object("texture", (64, 64), seed=s)) for s in (1, 2))
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.9


def test_dead_leaves_are_piecewise_flat():
    # Occluding opaque leaves: most pixels equal a neighbour (flat interiors), edges are ~1 px.
    t, _ = object_maps("dead_leaves", (96, 96), seed=0, radius_range=(4.0, 30.0))
    flat = np.isclose(t[:, 1:], t[:, :-1], atol=1e-9)
    assert flat.mean() > 0.5
    g, _ = object_maps("grf", (96, 96), seed=0)
    assert np.isclose(g[:, 1:], g[:, :-1], atol=1e-9).mean() < 0.05
    assert np.unique(np.round(t, 6)).size > 20  # many leaves


@pytest.mark.parametrize("kw,match", [({"radius_range": (5, 2)}, "radius_range"),
                                      ({"exponent": -1}, "exponent"),
                                      ({"shapes": ("star",)}, "shapes")])
def test_dead_leaves_bad_args(kw, match):
    with pytest.raises(ValueError, match=match):
        make_object("dead_leaves", (32, 32), **kw)


# --- spec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw,match", [
    ({"N": 31}, "N"), ({"N": 4}, "N"),
    ({"object_kinds": {"moon": 1.0}}, "object_kinds"),
    ({"object_kinds": {"grf": -1.0}}, "object_kinds"),
    ({"object_kinds": {"grf": 0.0}}, "object_kinds"),
    ({"amplitude_modes": ["sometimes"]}, "amplitude_modes"),
    ({"probe_families": {"laser": 1}}, "probe_families"),
    ({"scan_kinds": ["zigzag"]}, "scan_kinds"),
    ({"amplitude_max": (0.5, 1.5)}, "amplitude_max"),
    ({"amplitude_contrast": (0.2, 1.0)}, "amplitude_contrast"),
    ({"phase_span": (0.0, 1.0)}, "phase_span"),
    ({"phase_center": (0.0, 3.0)}, "phase_center"),
    ({"probe_diameter": (0.3, 0.9)}, "probe_diameter"),
    ({"focus_phase": (-1.0, 2.0)}, "focus_phase"),
    ({"overlap": (0.5, 1.0)}, "overlap"),
    ({"jitter": (0.2, 0.1)}, "jitter"),
    ({"photons": (0.0, 1e4)}, "photons"),
    ({"photons": (1e4, math.inf)}, "photons"),
    ({"n_positions": (10, 5)}, "n_positions"),
    ({"n_positions": (1.5, 5)}, "n_positions"),
    ({"object_size": 16}, "object_size"),
    ({"object_size": "huge"}, "object_size"),
    ({"noise": "gaussian"}, "noise"),
])
def test_spec_validation_names_field(kw, match):
    with pytest.raises(ValueError, match=rf"VariedSpec\.{match}: expected .* got "):
        VariedSpec(**kw)


def test_spec_normalises_and_round_trips():
    s = VariedSpec(object_kinds=["grf", "blobs"], scan_kinds={"spiral": 2.0}, photons=[1e4, 1e5])
    assert s.object_kinds == (("grf", 1.0), ("blobs", 1.0)) and s.photons == (1e4, 1e5)
    d = s.to_dict()
    assert VariedSpec.from_dict(json.loads(json.dumps(d))) == s
    hash(s)  # frozen and hashable
    with pytest.raises(ValueError, match="unknown field"):
        VariedSpec.from_dict({**d, "bogus": 1})


# --- draws --------------------------------------------------------------------------------------


def test_amplitude_modes():
    base = dict(N=32, object_kinds={"grf": 1.0})
    o, info = draw_object(VariedSpec(amplitude_modes={"phase_only": 1}, **base), 3, shape=(64, 64))
    assert info["amplitude_mode"] == "phase_only"
    np.testing.assert_allclose(np.abs(o), 1.0, atol=1e-6)
    o, info = draw_object(VariedSpec(amplitude_modes={"correlated": 1}, **base), 3, shape=(64, 64))
    # amplitude = a_max·(a_min/a_max)^t' with phase = p_min + span·t': log|O| is linear in the
    # phase with a negative slope (absorption grows with the phase shift).
    slope, icpt = np.polyfit(np.angle(o).ravel(), np.log(np.abs(o)).ravel(), 1)
    resid = np.log(np.abs(o)).ravel() - (slope * np.angle(o).ravel() + icpt)
    assert slope < 0 and np.abs(resid).max() < 1e-4
    o, info = draw_object(VariedSpec(amplitude_modes={"independent": 1}, **base), 3, shape=(64, 64))
    lo, hi = info["amplitude_range"]
    assert 0 < lo < hi <= 1 and np.abs(o).min() >= lo - 1e-5 and np.abs(o).max() <= hi + 1e-5
    p0, p1 = info["phase_range"]
    assert 0.1 - 1e-9 <= p1 - p0 <= math.pi + 1e-9
    assert np.angle(o).min() >= p0 - 1e-5 and np.angle(o).max() <= p1 + 1e-5


@pytest.mark.parametrize("family", PROBE_FAMILIES)
def test_probe_families(family):
    spec = VariedSpec(N=64)
    for seed in range(3):
        p, info = draw_probe(spec, seed, family=family)
        assert p.shape == (64, 64) and p.dtype == np.complex64
        assert np.sum(np.abs(p) ** 2) == pytest.approx(1.0, rel=1e-5)
        assert info["probe_kind"] == family
        # roughly the drawn size, and ~0 at the window edge
        assert 0.4 < info["probe_diameter"] / info["probe_target_diameter"] < 1.6
        a = np.abs(p)
        assert max(a[0].max(), a[-1].max(), a[:, 0].max(), a[:, -1].max()) < 0.05 * a.max()
    with pytest.raises(ValueError, match="family"):
        draw_probe(spec, 0, family="laser")


def test_every_probe_family_tells_the_twin_apart_unless_asked_for_flat_discs():
    """Training probes carry a phase (twin_distance well above 0): with a flat, centro-symmetric
    probe a single pattern cannot tell O from its twin, which a per-pattern network cannot learn."""
    from ptycho_nb.physics import twin_distance

    spec = VariedSpec(N=64)
    for family in PROBE_FAMILIES:
        d = [twin_distance(draw_probe(spec, seed, family=family)[0]) for seed in range(40)]
        assert min(d) > 0.3, (family, min(d))
    flat = VariedSpec(N=64, focus_phase=(0.0, 0.0))
    d = [twin_distance(draw_probe(flat, seed, family="disc")[0]) for seed in range(40)]
    assert np.median(d) < 0.3
    _, info = draw_probe(spec, 3, family="disc")
    edge = abs(info["probe_kwargs"]["curvature"]) * info["probe_kwargs"]["radius"] ** 2
    assert spec.focus_phase[0] <= edge <= spec.focus_phase[1]


def test_draw_scan_reproducible_and_seed_sensitive():
    a, b, c = draw_scan(SMALL, 4), draw_scan(SMALL, 4), draw_scan(SMALL, 5)
    assert _same_scan(a, b) and not _same_scan(a, c)
    ss = scan_seed(9, 2)
    assert _same_scan(draw_scan(SMALL, ss), draw_scan(SMALL, ss))  # ss is not consumed
    # the recorded seed and spawn key redraw the scan
    md = a.metadata
    again = draw_scan(SMALL, np.random.SeedSequence(md["seed"], spawn_key=md["spawn_key"]))
    assert _same_scan(a, again)


def test_draw_scan_matches_forward_model_and_dose():
    spec = VariedSpec(N=32, n_positions=(12, 24), noise=None, photons=(2e3, 5e3))
    for seed in range(3):
        d = draw_scan(spec, seed)
        pred = forward_from_object(torch.from_numpy(d.probe), torch.from_numpy(d.object),
                                   torch.from_numpy(d.xcoords), torch.from_numpy(d.ycoords)).numpy()
        np.testing.assert_allclose(pred, d.diffraction, rtol=2e-5, atol=1e-4 * d.diffraction.max())
        md = d.metadata
        assert 2e3 <= md["photons_per_pattern"] <= 5e3
        assert d.intensities.sum(axis=(1, 2)).mean() == pytest.approx(md["photons_per_pattern"], rel=1e-4)
        assert np.sum(np.abs(d.probe) ** 2) == pytest.approx(md["intensity_scale"], rel=1e-4)


def test_draw_scan_metadata_and_poisson_counts():
    spec = VariedSpec(N=32, n_positions=(12, 24), photons=(1e3, 1e7))
    seen = set()
    for seed in range(6):
        d = draw_scan(spec, seed)
        md = d.metadata
        json.dumps(md)
        assert 1e3 <= md["photons_per_pattern"] <= 1e7
        assert 12 <= d.n_patterns <= 24 and d.diffraction.shape[1:] == (32, 32)
        assert md["object_kind"] in OBJECT_KINDS and md["probe_kind"] in PROBE_FAMILIES
        assert md["scan"] in ("raster", "spiral", "random") and md["varied_spec"] == spec.to_dict()
        lo, hi = spec.overlap
        assert lo - 1e-9 <= md["overlap"] <= hi + 1e-9
        counts = d.intensities.astype(np.float64)
        assert np.allclose(counts, np.round(counts), atol=1e-2 * max(1.0, counts.max()) ** 0.5)
        # positions keep every patch inside the object
        h, w = d.object.shape
        assert d.xcoords.min() >= 16 and d.xcoords.max() <= w - 16
        assert d.ycoords.min() >= 16 and d.ycoords.max() <= h - 16
        seen.add((md["object_kind"], md["probe_kind"], md["scan"]))
    assert len(seen) > 1


def test_fixed_object_size():
    spec = VariedSpec(N=32, n_positions=(20, 20), object_size=96, scan_kinds=["raster"], overlap=(0.5, 0.5))
    d = draw_scan(spec, 0)
    assert d.object.shape == (96, 96) and 1 <= d.n_patterns <= 20


# --- streams ------------------------------------------------------------------------------------


def test_iter_scans_independent_of_chunking():
    whole = list(iter_scans(SMALL, 11, n=4))
    assert [s.metadata["stream_index"] for s in whole] == [0, 1, 2, 3]
    tail = list(iter_scans(SMALL, 11, n=4, start=2))
    endless = list(itertools.islice(iter_scans(SMALL, 11), 4))
    odd = list(iter_scans(SMALL, 11, n=4, start=1, stride=2))
    assert all(_same_scan(a, b) for a, b in zip(whole[2:], tail))
    assert all(_same_scan(a, b) for a, b in zip(whole, endless))
    assert _same_scan(whole[1], odd[0]) and _same_scan(whole[3], odd[1])
    assert _same_scan(whole[3], draw_scan(SMALL, scan_seed(11, 3)))
    # the i-th scan uses SeedSequence(seed).spawn's i-th child
    child = np.random.SeedSequence(11).spawn(4)[3]
    assert _same_scan(whole[3], draw_scan(SMALL, child))


TINY = VariedSpec(N=16, n_positions=(4, 8), object_kinds={"grf": 1.0, "polygons": 1.0})


def test_dataset_samples_and_memory_bound(monkeypatch):
    drawn = []
    real = varied.draw_scan

    def counting(spec, seed, **kw):
        drawn.append(seed)
        return real(spec, seed, **kw)

    monkeypatch.setattr(varied, "draw_scan", counting)
    ds = VariedScanDataset(TINY, seed=3, n_scans=7, buffer_scans=2)
    it = iter(ds)
    first = next(it)
    assert len(drawn) == 2  # streamed: only the buffer was drawn so far
    assert set(first) == {"diffraction", "offset_x", "offset_y", "index", "scan", "probe",
                          "intensity_scale", "photons", "input_scale", "count_scale",
                          "loss_weight"}
    assert float(first["loss_weight"]) == pytest.approx(16 * 16 / float(first["photons"]), rel=1e-6)
    assert first["diffraction"].shape == (1, 16, 16) and first["diffraction"].dtype == torch.float32
    assert first["offset_x"].shape == (1,) and float(first["offset_x"]) == 0.0
    assert first["probe"].shape == (16, 16) and first["probe"].dtype == torch.complex64
    samples = [first]
    for s in it:
        assert ds.scans_held <= 2
        samples.append(s)
    assert ds.peak_scans_held == 2 and len(drawn) == 7
    scans = {i: real(TINY, scan_seed(3, i)) for i in range(7)}
    assert len(samples) == sum(d.n_patterns for d in scans.values())
    keys = [(int(s["scan"]), int(s["index"])) for s in samples]
    assert len(set(keys)) == len(keys) and {k[0] for k in keys} == set(range(7))
    # shuffled across the buffer: the first samples mix two scans
    assert len({k[0] for k in keys[:8]}) == 2
    for s in samples[:10]:
        d = scans[int(s["scan"])]
        j = int(s["index"])
        np.testing.assert_array_equal(s["diffraction"][0].numpy(), d.diffraction[j])
        np.testing.assert_array_equal(s["probe"].numpy(), d.probe)
        assert float(s["photons"]) == pytest.approx(d.metadata["photons_per_pattern"], rel=1e-6)
        assert float(s["intensity_scale"]) == pytest.approx(d.metadata["intensity_scale"], rel=1e-5)


def test_dataset_in_order_and_epochs():
    in_order = VariedScanDataset(TINY, 1, n_scans=3, shuffle=False)
    ordered = [(int(s["scan"]), int(s["index"])) for s in in_order]
    assert ordered == sorted(ordered)
    ds = VariedScanDataset(TINY, 1, n_scans=3, buffer_scans=3)
    e0 = [(int(s["scan"]), int(s["index"])) for s in ds]
    again = [(int(s["scan"]), int(s["index"])) for s in ds]
    ds.set_epoch(1)
    e1 = [(int(s["scan"]), int(s["index"])) for s in ds]
    assert e0 == again and e0 != e1 and sorted(e0) == sorted(e1) == ordered


def test_fresh_scans_stream_new_scans_each_epoch_the_callback_names():
    """Every epoch of a FreshScans stream is another stretch of scans, replayed alike for the same
    epoch (a resumed run continues where it was); DatasetEpoch hands it the trainer's epoch."""
    stream = FreshScans(TINY, seed=5, buffer_scans=1, gridsize=1)

    def first_patterns() -> torch.Tensor:
        return torch.stack([s["diffraction"] for s in itertools.islice(stream, 6)])

    e0 = first_patterns()
    assert torch.equal(e0, first_patterns())
    DatasetEpoch(stream).on_train_epoch_start(type("T", (), {"current_epoch": 3})(), None)
    assert stream.epoch == 3 and not torch.equal(e0, first_patterns())
    stream.set_epoch(0)
    assert torch.equal(e0, first_patterns())
    with pytest.raises(ValueError, match="epoch"):
        stream.set_epoch(-1)


def test_dataset_splits_across_workers():
    ds = VariedScanDataset(TINY, seed=2, n_scans=6, buffer_scans=2)
    loader = DataLoader(ds, batch_size=5, num_workers=2)
    keys, scans_by_batch = [], []
    for batch in loader:
        assert batch["diffraction"].shape[1:] == (1, 16, 16)
        assert batch["probe"].shape[1:] == (16, 16) and batch["probe"].dtype == torch.complex64
        pairs = list(zip(batch["scan"].tolist(), batch["index"][:, 0].tolist()))
        keys += pairs
        scans_by_batch.append({p[0] for p in pairs})
    expected = {(i, j) for i in range(6) for j in range(draw_scan(TINY, scan_seed(2, i)).n_patterns)}
    assert len(keys) == len(set(keys)) and set(keys) == expected
    # Each batch comes from one worker: worker 0 has the even scans, worker 1 the odd ones.
    assert all(len({s % 2 for s in b}) == 1 for b in scans_by_batch)


def test_dataset_bad_args():
    with pytest.raises(ValueError, match="buffer_scans"):
        VariedScanDataset(TINY, buffer_scans=0)
    with pytest.raises(ValueError, match="n_scans"):
        VariedScanDataset(TINY, n_scans=0)
    with pytest.raises(ValueError, match="spec"):
        VariedScanDataset({"N": 16})


def test_dataset_yields_groups_of_neighbours_for_gridsize_2():
    ds = VariedScanDataset(TINY, seed=4, n_scans=2, buffer_scans=2, gridsize=2)
    samples = list(ds)
    first = samples[0]
    assert first["diffraction"].shape == (4, 16, 16) and first["index"].shape == (4,)
    assert first["offset_x"].shape == (4,) and float(first["offset_x"].abs().sum()) > 0
    # each group's members come from one scan, and their patterns are those of the scan
    scan = draw_scan(TINY, scan_seed(4, int(first["scan"])))
    assert torch.equal(first["diffraction"], torch.from_numpy(scan.diffraction[first["index"].numpy()]))
    # member offsets are the member's position minus the group centre
    x = scan.xcoords[first["index"].numpy()]
    assert np.allclose(first["offset_x"].numpy(), x - x.mean(), atol=1e-5)
    with pytest.raises(ValueError, match="gridsize"):
        VariedScanDataset(TINY, gridsize=0)


def test_dataset_yields_true_patches_on_request():
    """``truth=True``: each sample carries its patterns' true object patches, which the forward
    model turns into the scan's expected counts; without it the sample has no truth."""
    from ptycho_nb.physics.forward import forward_amplitude

    spec = dataclasses.replace(TINY, photons=(1e9, 1e9))
    sample = next(iter(VariedScanDataset(spec, seed=3, n_scans=1, gridsize=2, truth=True)))
    assert sample["truth"].shape == sample["diffraction"].shape and sample["truth"].is_complex()
    pred = forward_amplitude(sample["probe"], sample["truth"][None])[0]
    assert float((pred - sample["diffraction"]).abs().mean() / sample["diffraction"].mean()) < 0.01
    assert "truth" not in next(iter(VariedScanDataset(spec, seed=3, n_scans=1)))
    with pytest.raises(ValueError, match="truth"):
        VariedScanDataset(spec, truth=1)
