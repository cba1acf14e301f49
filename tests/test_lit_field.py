"""Issue 27: ``reconstruct`` returns the whole lit field; ``infer`` keeps the box of the scan
centres; ``Reconstruction.lit`` and ``.crop`` say and change which pixels a reconstruction holds."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

import ptycho_nb
from ptycho_nb.metrics import LIT_FRACTION, lit_mask
from ptycho_nb.model.stitching import coverage
from ptycho_nb.refine.start import scan_frame
from ptycho_nb.workflows.frames import centre_frame, slices_in

catalog = importlib.import_module("ptycho_nb.model.catalog")

pytestmark = pytest.mark.usefixtures("one_thread")

#: A zone-plate probe: a ring-shaped beam with faint tails, the lit field well inside the padding.
SCAN = dict(N=32, object_kind="lines", probe_kind="zone_plate", object_shape=(96, 96), n_positions=60,
            photons_per_pattern=1e6)
EPOCHS = dict(refine_epochs=4)


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=2, **SCAN)


@pytest.fixture(scope="module")
def trained(scan, tmp_path_factory):
    return ptycho_nb.train(ptycho_nb.simulate(seed=1, **SCAN), output_dir=tmp_path_factory.mktemp("t"),
                           nepochs=1, batch_size=8, n_filters_scale=1, enable_progress_bar=False)


@pytest.fixture(autouse=True)
def _no_packaged_model(monkeypatch):
    # a flat start whatever ships with the checkout: the frame, not the start, is under test
    monkeypatch.setattr(catalog, "DEFAULT_PRETRAINED", "no-such-model")


def _source(rec, field="execution.pad_eval"):
    return {e.field: (e.value, e.source) for e in rec.audit}[field]


def _inside(inner, outer) -> bool:
    return (outer.row0 <= inner.row0 and outer.col0 <= inner.col0
            and inner.row0 + inner.h <= outer.row0 + outer.h and inner.col0 + inner.w <= outer.col0 + outer.w)


def test_reconstruct_returns_every_lit_pixel_and_infer_the_box(scan, trained):
    rec = ptycho_nb.reconstruct(scan, trained, **EPOCHS)
    box = ptycho_nb.infer(trained, scan, **EPOCHS)
    assert _source(rec) == (True, "reconstruct") and _source(box) == (False, "default")
    assert rec.run.pad_eval and not box.run.pad_eval
    # strictly larger on every side, and the box inside it at its own offset, pixel for pixel
    assert _inside(box.frame, rec.frame) and rec.frame != box.frame
    assert rec.offset[0] < box.offset[0] and rec.offset[1] < box.offset[1]
    assert rec.offset[0] + rec.object.shape[0] > box.offset[0] + box.object.shape[0]
    sl = slices_in(box.frame, rec.frame)
    np.testing.assert_array_equal(rec.object[sl], box.object)
    np.testing.assert_array_equal(rec.weight[sl], box.weight)
    # every pixel the scan lit lies in the frame, which is no wider than they are
    n = scan.N
    full = scan_frame(rec.xcoords, rec.ycoords, n)
    weight = coverage(rec.xcoords - full.col0, rec.ycoords - full.row0, rec.probe, full.shape)
    lit = lit_mask(weight)
    assert lit.sum() == rec.lit.sum() and rec.lit.sum() > box.lit.sum()
    assert rec.lit[0].any() and rec.lit[-1].any() and rec.lit[:, 0].any() and rec.lit[:, -1].any()
    # ... and it leaves out the padding corners the probe never lit
    assert rec.object.size < 0.8 * full.h * full.w
    assert np.array_equal(rec.lit, rec.weight > LIT_FRACTION * rec.weight.max())


def test_the_users_settings_still_win(scan):
    base = ptycho_nb.reconstruct(scan, pad_eval=False, **EPOCHS)
    assert _source(base) == (False, "override")
    assert base.frame == centre_frame(scan.xcoords, scan.ycoords, scan.N)
    # an execution config object sets every field: its pad_eval (False) beats reconstruct's
    obj = ptycho_nb.reconstruct(scan, execution=ptycho_nb.PyTorchExecutionConfig(), **EPOCHS)
    assert _source(obj) == (False, "execution_config") and obj.frame == base.frame
    np.testing.assert_array_equal(obj.object, base.object)
    # a front end's defaults lie below reconstruct's
    widget = ptycho_nb.reconstruct(scan, front_end="widget", enable_progress_bar=False, **EPOCHS)
    assert _source(widget) == (True, "reconstruct")
    assert _source(widget, "execution.accelerator") == ("auto", "front_end:widget")


def test_crop_reframes_and_scan_is_the_old_default(scan):
    rec = ptycho_nb.reconstruct(scan, **EPOCHS)
    old = ptycho_nb.reconstruct(scan, pad_eval=False, **EPOCHS)
    box = rec.crop("scan")
    assert box.offset == old.offset and box.object.shape == old.object.shape
    np.testing.assert_array_equal(box.object, old.object)
    np.testing.assert_array_equal(box.weight, old.weight)
    assert rec.crop("lit").frame == rec.frame  # the default frame is the lit one
    assert box.crop("scan").frame == box.frame  # idempotent
    # a box in scan coordinates
    r0, c0 = rec.offset[0] + 3, rec.offset[1] + 5
    part = rec.crop((r0, r0 + 20, c0, c0 + 30))
    assert part.offset == (r0, c0) and part.object.shape == (20, 30)
    np.testing.assert_array_equal(part.object, rec.object[3:23, 5:35])
    assert part.object.base is None  # a copy: writing to it leaves rec alone
    assert part.patches is rec.patches and part.truth is rec.truth
    # metrics stay aligned by offset: the crop scores the truth where it lies
    assert abs(box.compare()["phase_ssim"] - old.compare()["phase_ssim"]) < 1e-12
    with pytest.raises(ValueError, match="region='all' is invalid"):
        rec.crop("all")
    with pytest.raises(ValueError, match="not inside the frame"):
        rec.crop((rec.offset[0] - 1, rec.offset[0] + 5, c0, c0 + 5))
    with pytest.raises(ValueError, match="row0 < row1"):
        rec.crop((r0, r0, c0, c0 + 5))
    with pytest.raises(ValueError, match="four integers"):
        rec.crop((r0, r0 + 2.5, c0, c0 + 5))
    with pytest.raises(ValueError, match="four integers"):
        rec.crop((r0, r0 + 2))


def test_the_lit_field_scores_higher_on_a_wide_lit_border():
    """Three positions under a wide defocused beam: the box of the scan centres is a sliver of
    what the scan determines, the lit field the picture (Reconstruction.compare, the truth
    aligned by offset, on the frame the package returns)."""
    wide = ptycho_nb.simulate(N=32, object_kind="lines", probe_kind="defocused_pupil", n_positions=3, seed=2)
    rec = ptycho_nb.reconstruct(wide)
    old = ptycho_nb.reconstruct(wide, pad_eval=False)
    assert rec.object.size > 4 * old.object.size
    assert rec.compare()["phase_ssim"] > old.compare()["phase_ssim"] + 0.03


def test_save_and_plot_any_frame(scan, tmp_path):
    rec = ptycho_nb.reconstruct(scan, **EPOCHS)
    for name, r in (("lit", rec), ("scan", rec.crop("scan"))):
        paths = r.save(tmp_path / name)
        with np.load(paths["reconstruction.npz"]) as z:
            assert tuple(z["offset"]) == r.offset and z["weight"].shape == r.object.shape
            np.testing.assert_array_equal(z["object"], r.object)
        back = ptycho_nb.data.read_ptychodus_product(paths["product.h5"])
        np.testing.assert_allclose(np.squeeze(back.object), r.object, rtol=1e-6)
        # positions are relative to the frame: the same pixel of the object under each centre
        np.testing.assert_allclose(back.xcoords, r.xcoords - r.offset[1], atol=1e-6)
        np.testing.assert_allclose(back.ycoords, r.ycoords - r.offset[0], atol=1e-6)
        assert paths["reconstruction.png"].stat().st_size > 1000
        # the figure shows the lit pixels only
        fig = r.plot(show=False)
        phase = fig.axes[1].images[0].get_array()
        assert np.array_equal(np.ma.getmaskarray(phase) | np.isnan(np.ma.getdata(phase)), ~r.lit)


def test_cli_reconstruct_writes_the_lit_frame(scan, tmp_path):
    path = ptycho_nb.data.save(scan, tmp_path / "scan.npz")
    api = ptycho_nb.reconstruct(scan, **EPOCHS)
    frames = {}
    for flags in ((), ("--no-pad-eval",)):
        out = tmp_path / ("box" if flags else "lit")
        r = subprocess.run([sys.executable, "-m", "ptycho_nb.cli", "reconstruct", "--test-data", str(path),
                            "--output-dir", str(out), "--refine-epochs", "4", "--accelerator", "cpu",
                            "--quiet", *flags], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        with np.load(out / "reconstruction.npz") as z:
            frames[out.name] = (tuple(z["offset"]), z["object"].shape)
    assert frames["lit"] == (api.offset, api.object.shape)
    assert frames["box"] == (api.crop("scan").offset, api.crop("scan").object.shape)


def test_a_dense_scan_keeps_at_least_the_box():
    """'Lit' is relative to the brightest pixel: however dense the scan, the lit frame holds
    every scan centre (padding never returns less than no padding)."""
    dense = ptycho_nb.simulate(N=32, object_kind="lines", object_shape=(80, 80), n_positions=200,
                               step=1.0, seed=4)
    rec = ptycho_nb.reconstruct(dense, refine_epochs=1)
    box = rec.crop("scan")
    assert _inside(box.frame, rec.frame) and box.frame == centre_frame(dense.xcoords, dense.ycoords, 32)
