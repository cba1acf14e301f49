"""reconstruct(): one call from a scan to a refined reconstruction (API and CLI), with its controls."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ptycho_nb
import importlib

# the packaged default (DEFAULT_PRETRAINED, default_model) is the catalog's
catalog = importlib.import_module("ptycho_nb.model.catalog")

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(N=32, object_kind="lines", object_shape=(96, 96), n_positions=60, photons_per_pattern=1e6)


@pytest.fixture(scope="module")
def scans():
    return ptycho_nb.simulate(seed=1, **TINY), ptycho_nb.simulate(seed=2, **TINY)


@pytest.fixture(scope="module")
def trained(scans, tmp_path_factory):
    return ptycho_nb.train(scans[0], output_dir=tmp_path_factory.mktemp("train"), nepochs=1,
                           batch_size=8, n_filters_scale=1, enable_progress_bar=False)


def test_without_a_model_it_refines_a_flat_start_with_the_scans_probe(scans, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    test = scans[1]
    rec = ptycho_nb.reconstruct(test, refine_tolerance=1e-2)
    assert rec.run.refinement.start == "flat" and rec.run.refinement.stopped == "plateau"
    assert 0 < rec.run.refinement.epochs_run < rec.run.refinement.max_epochs
    # the scan centres' box is the best-determined part; the lit border around it less so
    assert rec.crop("scan").compare()["phase_ssim"] > 0.9 and rec.compare()["phase_ssim"] > 0.85
    assert rec.timings.refine_s > 0 and rec.timings.forward_s == 0
    # the frame is the lit field: past the positions' bounding box on every side
    assert rec.offset[0] < test.ycoords.min() and rec.offset[1] < test.xcoords.min()
    assert rec.offset[0] + rec.object.shape[0] > test.ycoords.max() + 1
    assert rec.weight.shape == rec.object.shape and rec.weight.max() > 0


def test_the_packaged_default_serves_only_its_own_pattern_size(scans, tmp_path, monkeypatch):
    """The default start is the packaged model for scans of its N; other sizes refine from flat."""
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "mine")
    # a packaged model for N=32 (a one-epoch network saved where the package looks)
    folder = tmp_path / "models"
    folder.mkdir()
    net = ptycho_nb.train(scans[0], output_dir=tmp_path / "t", nepochs=1, batch_size=8,
                          n_filters_scale=1, enable_progress_bar=False)
    ptycho_nb.save_model(net, folder / "mine.wts.h5.zip")
    monkeypatch.setattr(catalog, "pretrained_names", lambda: ["mine"])
    monkeypatch.setattr(catalog, "resolve_archive_path",
                        lambda path: folder / (str(path).split(":", 1)[1] + ".wts.h5.zip"))
    assert catalog.default_model() == "pretrained:mine"
    assert catalog.default_model(32) == "pretrained:mine"
    assert catalog.default_model(64) is None
    big = ptycho_nb.simulate(seed=3, N=64, object_kind="lines", object_shape=(128, 128), n_positions=20)
    rec = ptycho_nb.reconstruct(big, refine_epochs=2)
    assert rec.run.refinement.start == "flat" and rec.timings.forward_s == 0


def test_the_shipped_default_starts_a_scan_of_its_size():
    if catalog.default_model() is None:
        pytest.skip("no default pretrained model ships with this checkout")
    big = ptycho_nb.simulate(seed=3, N=64, object_kind="lines", object_shape=(128, 128), n_positions=20)
    rec = ptycho_nb.reconstruct(big, refine_epochs=2)
    assert rec.run.refinement.start == "network" and rec.timings.forward_s > 0
    assert np.isfinite(rec.object).all() and rec.run.refinement.epochs_run == 2


def test_with_a_model_it_starts_from_the_network_and_beats_the_network_alone(scans, trained):
    test = scans[1]
    alone = ptycho_nb.infer(trained, test, refine_epochs=0)
    rec = ptycho_nb.reconstruct(test, trained, refine_tolerance=1e-2, pad_eval=False)
    assert rec.run.refinement.start == "network" and rec.run.refinement.epochs_run > 0
    assert rec.object.shape == alone.object.shape and rec.offset == alone.offset  # infer's frame
    assert rec.compare()["phase_ssim"] > alone.compare()["phase_ssim"] + 0.2
    flat = ptycho_nb.reconstruct(test, trained, refine_start="flat", refine_epochs=3)
    assert flat.run.refinement.start == "flat" and flat.run.refinement.epochs_run == 3


def test_fine_tuning_runs_on_the_scan_and_is_refused_by_infer(scans, trained):
    rec = ptycho_nb.reconstruct(scans[1], trained.archive_path, fine_tune_epochs=1, refine_epochs=2)
    assert rec.run.refinement.epochs_run == 2
    with pytest.raises(ValueError, match="fine_tune_epochs"):
        ptycho_nb.infer(trained, scans[1], fine_tune_epochs=1)


def test_probe_refinement_from_a_rough_guess(scans, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    from ptycho_nb.physics.probes import gaussian_guess
    import dataclasses

    test = scans[1]
    guess = gaussian_guess(test.probe)
    rough = dataclasses.replace(test, probe=guess)
    # 60 patterns: with momentum a rough probe guess measured unstable at this size (1,000-pattern
    # scans are not: bench/compare_iterative.py), so this small test runs plain steps.
    kw = dict(refine_epochs=40, refine_momentum=0.0)
    fixed = ptycho_nb.reconstruct(rough, refine_probe=False, **kw)
    moved = ptycho_nb.reconstruct(rough, refine_probe=True, **kw)
    assert moved.run.refinement.probe and not np.array_equal(moved.probe, guess)
    assert moved.run.refinement.loss[-1] < fixed.run.refinement.loss[-1]
    # the default takes the guess for what it is (the scan's record speaks of another probe)
    auto = ptycho_nb.reconstruct(rough, **kw)
    why = dict(auto.run.refinement.why)["refine_probe"]
    assert auto.run.refinement.probe and "guess" in why, why
    assert auto.run.refinement.loss == moved.run.refinement.loss
    exact = ptycho_nb.reconstruct(test, **kw)  # the simulation's own probe: kept as it is
    assert not exact.run.refinement.probe and "exact" in dict(exact.run.refinement.why)["refine_probe"]


def test_clear_errors(scans, monkeypatch):
    import dataclasses

    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    with pytest.raises(ValueError, match="probe"):
        ptycho_nb.reconstruct(dataclasses.replace(scans[1], probe=None))
    with pytest.raises(ValueError, match="fine_tune_epochs"):
        ptycho_nb.reconstruct(scans[1], fine_tune_epochs=2)
    with pytest.raises(ValueError, match="refine_step"):
        ptycho_nb.reconstruct(scans[1], refine_step=float("inf"))
    with pytest.raises(ValueError, match="refine_alpha"):
        ptycho_nb.reconstruct(scans[1], refine_alpha=0.0)


def test_refine_alpha_reaches_the_update(scans, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    steady = ptycho_nb.reconstruct(scans[1], refine_epochs=2, refine_alpha=1.0)
    default = ptycho_nb.reconstruct(scans[1], refine_epochs=2)
    # alpha = 1 divides every update by the brightest illumination: smaller steps where the
    # probe is dim, so the same two epochs fit the data less well.
    assert default.run.refinement.loss[-1] < steady.run.refinement.loss[-1]


@pytest.mark.parametrize("fmt,name", [("npz", "scan.npz"), ("hdf5", "scan.h5"), ("ptychodus", "product.h5")])
def test_cli_reconstructs_files_in_every_format(scans, tmp_path, fmt, name):
    path = ptycho_nb.data.save(scans[1], tmp_path / name, format=fmt)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ptycho_nb.cli", "reconstruct", "--test-data", str(path),
           "--output-dir", str(out), "--refine-epochs", "5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "refinement" in r.stdout and (out / "reconstruction.npz").exists()
    if fmt != "npz":
        return
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_refine_view_draws_the_object_as_the_refinement_runs(scans, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    from ptycho_nb.notebook import RefineView

    view = RefineView(every=2)
    rec = ptycho_nb.reconstruct(scans[1], refine_epochs=4, refine_callback=view)
    assert view.epoch == rec.run.refinement.epochs_run == 4 and len(view.deviance) == 4
    assert view.image.value[:8] == b"\x89PNG\r\n\x1a\n" and "epoch 4/4" in view.label.value
    # the picture leaves blank what the scan never lit (there the object is only its start)
    lit = view._last.lit
    assert lit.shape == view.phase.shape and lit.any() and not lit.all()
    assert np.array_equal(np.isnan(view.phase), ~lit)


def test_infer_says_what_it_cannot_use(scans, trained):
    """Issue 14 item 6: a dark scan and a single position are refused; a foreign probe is named."""
    import dataclasses

    test = scans[1]
    with pytest.raises(ValueError, match="dark"):
        ptycho_nb.infer(trained, dataclasses.replace(test, diffraction=np.zeros_like(test.diffraction)))
    with pytest.raises(ValueError, match="pad_eval"):
        ptycho_nb.infer(trained, test.subset(slice(0, 1)), refine_epochs=0)
    same = ptycho_nb.infer(trained, test, refine_epochs=0)
    assert same.run.probe_source == "model"
    other = dataclasses.replace(test, probe=np.ones_like(test.probe))
    with pytest.warns(UserWarning, match="probe differs"):
        rec = ptycho_nb.infer(trained, other, refine_epochs=0)
    assert rec.run.probe_source == "model"


def test_a_scan_with_another_probe_is_refined_with_its_own(scans, trained):
    """Issue 13 (a): a model trained with one probe, a scan made with another. The network reads
    the scan through the model's probe (it knows no other), but the refinement must light the
    object with the scan's: with the model's it fits the wrong physics."""
    import warnings

    other = ptycho_nb.simulate(seed=2, probe_kind="zone_plate", **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        wrong = ptycho_nb.reconstruct(other, trained, refine_probe_source="model", refine_tolerance=1e-2)
    with pytest.warns(UserWarning, match="refinement lights the object with the scan's own"):
        own = ptycho_nb.reconstruct(other, trained, refine_tolerance=1e-2)
    assert wrong.run.refinement.probe_source == "model" and own.run.refinement.probe_source == "scan"
    assert own.run.probe_source == "model"  # the network's pass
    assert np.allclose(own.probe, other.probe)  # not refined: the scan's, as given
    assert own.compare()["phase_ssim"] > wrong.compare()["phase_ssim"] + 0.3
    assert own.compare()["phase_ssim"] > 0.8
    # the same probe: 'auto' keeps the model's (it may have been refined in training)
    same = ptycho_nb.reconstruct(scans[1], trained, refine_epochs=2)
    assert same.run.refinement.probe_source == "model"
    # 'scan' asked for explicitly, with the very probe the model has: the scan's, by name
    forced = ptycho_nb.reconstruct(scans[1], trained, refine_probe_source="scan", refine_epochs=2)
    assert forced.run.refinement.probe_source == "scan"


def test_refine_probe_source_model_without_a_model_is_refused(scans, monkeypatch):
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")
    with pytest.raises(ValueError, match="refine_probe_source='model' needs a model"):
        ptycho_nb.reconstruct(scans[1], refine_probe_source="model", refine_epochs=2)
    rec = ptycho_nb.reconstruct(scans[1], refine_epochs=2)
    assert rec.run.refinement.probe_source == "scan"


def test_fine_tune_honours_the_execution_config_and_records_it(trained, scans):
    """The fine-tune trains under the run's execution config: a learning rate of ~0 leaves the
    network as it was (the single pass is the untuned model's), a real one moves it; precision
    and accelerator reach it too, and the audit says what it ran with."""
    scan = scans[1]
    before = ptycho_nb.infer(trained, scan, refine_epochs=0)
    kw = dict(fine_tune_epochs=1, refine_epochs=0, accelerator="cpu")
    frozen = ptycho_nb.reconstruct(scan, trained, learning_rate=1e-12, **kw)
    np.testing.assert_allclose(frozen.patches, before.patches, rtol=1e-4, atol=1e-5)
    moved = ptycho_nb.reconstruct(scan, trained, learning_rate=3e-2, precision="bf16-mixed", **kw)
    assert not np.allclose(moved.patches, before.patches, rtol=1e-3, atol=1e-4)
    audit = {e.field: (e.value, e.source) for e in moved.audit}
    assert audit["fine_tune.execution.learning_rate"] == (3e-2, "override")
    assert audit["fine_tune.execution.precision"] == ("bf16-mixed", "override")
    assert audit["fine_tune.execution.accelerator"] == ("cpu", "override")
    assert audit["fine_tune.training.nepochs"][0] == 1
    assert audit["fine_tune.execution.enable_checkpointing"][0] is False
    assert {e.field: e.value for e in frozen.audit}["fine_tune.execution.learning_rate"] == 1e-12


def test_match_counts_fits_the_scans_mean_counts():
    import torch

    from ptycho_nb.refine import PreparedScan, match_counts

    scan = ptycho_nb.simulate(seed=3, **TINY)
    prepared = PreparedScan.build(scan.diffraction, scan.xcoords, scan.ycoords, scan.N, scan.object.shape)
    probe = torch.from_numpy(scan.probe)
    scaled = match_counts(scan.object * 0.1, prepared, probe, 1.0)
    # the truth predicts the data's counts; a tenth of it is scaled back to within the noise
    assert np.allclose(np.abs(scaled.numpy()), np.abs(scan.object), rtol=0.02)
    assert scaled.dtype == torch.complex64
