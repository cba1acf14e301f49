"""train() → archive → infer() end to end, stitching, interrupts, and the CLI as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import lightning as L
import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.model.stitching import patch_weights, stitch_patches
from ptycho_nb.physics import extract_patches
from ptycho_nb.refine.start import scan_frame
from ptycho_nb.workflows.frames import slices_in

TINY = dict(N=32, object_shape=(80, 80), n_positions=30, step=5.0)
FAST = dict(nepochs=1, batch_size=8, n_filters_scale=1)


@pytest.fixture(scope="module")
def scans():
    return ptycho_nb.simulate(seed=1, **TINY), ptycho_nb.simulate(seed=2, **TINY)


@pytest.fixture(scope="module")
def trained(scans, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    return ptycho_nb.train(scans[0], test_data=scans[1], output_dir=out, **FAST)


def test_train_result(trained):
    assert isinstance(trained.module, ptycho_nb.model.PINNModule) if hasattr(ptycho_nb, "model") else True
    assert trained.archive_path is not None and trained.archive_path.exists()
    assert trained.best_checkpoint is not None and trained.best_checkpoint.exists()
    assert len(trained.history["train_loss"]) == 1 and len(trained.history["val_loss"]) == 1
    assert np.isfinite(trained.history["train_loss"][0])
    assert trained.run.accelerator == "cpu" and trained.run.epochs_run == 1
    sources = {e.field: e.source for e in trained.audit}
    assert sources["training.nepochs"] == "override"
    assert sources["execution.accelerator"] == "default"
    assert "TrainResult(" in repr(trained)


def test_archive_round_trip_gives_bit_identical_inference(trained, scans, tmp_path):
    a = ptycho_nb.infer(trained, scans[1])
    loaded = ptycho_nb.load_model(trained.archive_path)
    b = ptycho_nb.infer(loaded, scans[1])
    c = ptycho_nb.infer(trained.archive_path, scans[1])
    np.testing.assert_array_equal(a.object, b.object)
    np.testing.assert_array_equal(a.patches, c.patches)
    # the probe and intensity scale travel in the archive too
    for k, v in trained.module.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    path = ptycho_nb.save_model(trained, tmp_path / "m.h5.zip")
    with pytest.raises(FileExistsError, match="m.h5.zip"):
        ptycho_nb.save_model(trained, path)


def test_training_output_is_never_overwritten_silently(scans, trained):
    out = trained.archive_path.parent
    before = trained.archive_path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        ptycho_nb.train(scans[0], output_dir=out, **FAST)
    assert trained.archive_path.read_bytes() == before


def test_load_model_refuses_bad_archives(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ptycho_nb.load_model(tmp_path / "nowhere")
    truncated = tmp_path / "t.h5.zip"
    truncated.write_bytes(trained.archive_path.read_bytes()[:500])
    with pytest.raises(ValueError, match="t.h5.zip"):
        ptycho_nb.load_model(truncated)
    foreign = tmp_path / "tf.zip"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("params.dill", b"\x80\x04K\x01.")
        z.writestr("model.keras", b"keras")
    with pytest.raises(ValueError, match="(?i)tensorflow"):
        ptycho_nb.load_model(foreign)


def test_reconstruction_of_unseen_scan(trained, scans, tmp_path):
    test = scans[1]
    rec = ptycho_nb.infer(trained, test)
    assert rec.object.dtype == np.complex64 and rec.patches.shape == (test.n_patterns, 32, 32)
    # default frame: the bounding box of the scan positions
    assert rec.offset == (int(np.floor(test.ycoords.min())), int(np.floor(test.xcoords.min())))
    assert rec.object.shape == (int(np.ceil(test.ycoords.max())) + 1 - rec.offset[0],
                                int(np.ceil(test.xcoords.max())) + 1 - rec.offset[1])
    assert rec.timings.patterns_per_s > 0
    m = rec.compare()
    assert set(m) >= {"phase_ssim", "amplitude_ssim", "phase_psnr", "phase_frc_1_7"}
    paths = rec.save(tmp_path / "out")
    with np.load(paths["reconstruction.npz"]) as z:
        np.testing.assert_array_equal(z["object"], rec.object)
        assert tuple(z["offset"]) == rec.offset
    back = ptycho_nb.data.read_ptychodus_product(paths["product.h5"])
    np.testing.assert_allclose(np.squeeze(back.object), rec.object, rtol=1e-6)
    assert paths["reconstruction.png"].stat().st_size > 1000
    with pytest.raises(FileExistsError):
        rec.save(tmp_path / "out")


def test_refinement_fits_the_scan_better_than_the_network_alone(trained, scans):
    """refine_epochs > 0 lowers the Poisson NLL of the scan's own data; 0 is the pure network."""
    from ptycho_nb.physics import forward_from_object, poisson_nll

    test = scans[1]
    net = ptycho_nb.infer(trained, test, refine_epochs=0, pad_eval=True)
    ref = ptycho_nb.infer(trained, test, refine_epochs=5, pad_eval=True)
    assert net.run.refinement is None and net.timings.refine_s == 0
    assert ref.timings.refine_s > 0 and 1 <= ref.run.refinement.epochs_run <= 5
    assert len(ref.run.refinement.loss) == ref.run.refinement.epochs_run + 1  # the start, then each epoch
    assert ref.run.refinement.stopped in ("plateau", "max_epochs")
    assert net.offset == ref.offset and net.object.shape == ref.object.shape
    probe = trained.module.effective_probe.detach()
    scale = trained.module.intensity_scale.detach()

    def nll(rec):
        # the lit field leaves out patch corners the probe barely lit: the forward model needs
        # every full patch, so the object goes back on the full frame, 0 outside the lit field
        full = scan_frame(rec.xcoords, rec.ycoords, probe.shape[-1])
        obj = np.zeros(full.shape, np.complex64)
        obj[slices_in(rec.frame, full)] = rec.object
        x = torch.from_numpy(rec.xcoords - full.col0)
        y = torch.from_numpy(rec.ycoords - full.row0)
        pred = forward_from_object(probe, torch.from_numpy(obj), x, y, scale=scale)
        return float(poisson_nll(pred, torch.from_numpy(test.diffraction)))

    assert nll(ref) < nll(net)
    with pytest.raises(ValueError, match="refine_epochs"):
        ptycho_nb.infer(trained, test, refine_epochs=-1)


def test_stitching_true_patches_returns_the_object():
    """Stitching the true patches (extract → stitch) gives back the object in the frame."""
    rng = np.random.default_rng(0)
    obj = (0.5 + rng.random((70, 70))) * np.exp(1j * rng.random((70, 70)))
    n = 16
    x = np.repeat(np.arange(10, 61, 4.0), 13)
    y = np.tile(np.arange(10, 61, 4.0), 13)
    patches = extract_patches(torch.from_numpy(obj.astype(np.complex64)), torch.from_numpy(x),
                              torch.from_numpy(y), n)
    yy, xx = np.mgrid[0:n, 0:n] - n / 2
    probe = np.exp(-(xx ** 2 + yy ** 2) / 40).astype(np.complex64)
    s = stitch_patches(patches, x, y, probe)
    r0, c0 = s.offset
    assert (r0, c0) == (10, 10) and s.object.shape == (49, 49)  # centres 10..58
    np.testing.assert_allclose(s.object, obj[10:59, 10:59], rtol=1e-5, atol=1e-5)
    padded = stitch_patches(patches, x, y, probe, pad_eval=True, middle_trim=2)
    assert padded.offset == (10 - 6, 10 - 6) and padded.object.shape == (49 + 12, 49 + 12)
    lit = padded.weight > 1e-3 * padded.weight.max()
    r0, c0 = padded.offset
    np.testing.assert_allclose(padded.object[lit], obj[r0:r0 + 61, c0:c0 + 61][lit], rtol=1e-4, atol=1e-4)
    w = patch_weights(probe, middle_trim=3)
    assert float(w.max()) == pytest.approx(1.0) and torch.all(w[:3] == 0) and torch.all(w[:, -3:] == 0)


class _Interrupt(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_the_model_and_the_kernel_usable(scans, tmp_path):
    import signal

    before = signal.getsignal(signal.SIGINT)
    r = ptycho_nb.train(scans[0], output_dir=tmp_path / "a", callbacks=[_Interrupt()],
                        **{**FAST, "nepochs": 5})
    assert r.interrupted and r.run.epochs_run < 5
    assert r.archive_path.exists() and ptycho_nb.load_model(r.archive_path) is not None
    assert signal.getsignal(signal.SIGINT) is before  # Lightning leaves SIGINT ignored otherwise
    again = ptycho_nb.train(scans[0], output_dir=tmp_path / "b", **FAST)  # a second run starts
    assert not again.interrupted


def _cli(*args, cwd, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ptycho_nb.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


def test_cli_simulate_train_infer_end_to_end(tmp_path):
    r = _cli("simulate", "--output", "train.npz", "--N", "32", "--n-positions", "30", "--seed", "3",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("simulate", "--output", "test.npz", "--N", "32", "--n-positions", "30", "--seed", "4",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("train", "--train-data", "train.npz", "--test-data", "test.npz", "--output-dir", "model",
             "--N", "32", "--nepochs", "1", "--batch-size", "8", "--n-filters-scale", "1", "--quiet",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accelerator 'cpu' (requested 'auto')" in r.stdout
    assert "Epoch" not in r.stderr  # --quiet: no progress bar
    assert (tmp_path / "model" / "wts.h5.zip").exists()
    r = _cli("infer", "--model-path", "model", "--test-data", "test.npz", "--output-dir", "rec",
             "--middle-trim", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "phase" in r.stdout and "SSIM" in r.stdout
    for name in ("reconstruction.npz", "product.h5", "reconstruction.png"):
        assert (tmp_path / "rec" / name).exists()
    # same folder again: refused without --overwrite, no traceback
    r = _cli("infer", "--model-path", "model", "--test-data", "test.npz", "--output-dir", "rec",
             "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr
    r = _cli("infer", "--model-path", "nowhere.zip", "--test-data", "test.npz", cwd=tmp_path)
    assert r.returncode == 2 and "nowhere.zip" in r.stderr and "Traceback" not in r.stderr


def test_cli_demo_quick(tmp_path):
    r = _cli("demo", "--quick", "--quiet", "--output-dir", "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SSIM" in r.stdout and "unseen scan" in r.stdout
    out = tmp_path / "demo"
    for name in ("wts.h5.zip", "reconstruction.npz", "product.h5", "reconstruction.png", "metrics.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0 <= metrics["phase_ssim"] <= 1
    # every file the demo leaves is listed, the checkpoint too; no 'nan cycles/px'
    written = {line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("wrote ")}
    on_disk = {str(p.relative_to(tmp_path)) for p in out.rglob("*") if p.is_file()}
    assert written == on_disk and any(p.endswith(".ckpt") for p in on_disk)
    assert "nan cycles/px" not in r.stdout


def test_missing_torch_is_a_runtime_error_with_install_guidance():
    code = "import sys; sys.modules['torch'] = None; import ptycho_nb"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr and "pip install torch==2.13.0" in r.stderr
