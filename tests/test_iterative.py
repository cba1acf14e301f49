"""ptychi interop (the `iterative` extra): conventions, isolation, errors, and the bench's smoke run."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.iterative import (export_for_ptychi, ptychi_available, ptychi_forward_check,
                                 run_ptychi)

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_ptychi = pytest.mark.skipif(not ptychi_available(), reason="the `iterative` extra (ptychi) is not installed")


@pytest.fixture(scope="module")
def scan() -> ptycho_nb.PtychoData:
    """A small noise-free scan on whole-pixel positions (there ptychi's model and ours agree)."""
    from ptycho_nb.physics.forward import forward_from_object

    d = ptycho_nb.simulate(seed=3, N=32, object_shape=(72, 72), n_positions=20, step=6, noise=None)
    x, y = np.round(d.xcoords), np.round(d.ycoords)
    with torch.no_grad():
        amp = forward_from_object(torch.from_numpy(d.probe), torch.from_numpy(d.object),
                                  torch.from_numpy(x), torch.from_numpy(y))
    return ptycho_nb.PtychoData(diffraction=amp.float().numpy(), xcoords=x, ycoords=y,
                                probe=d.probe, object=d.object, metadata=d.metadata)


def test_export_translates_units_and_positions(scan) -> None:
    out = export_for_ptychi(scan)
    n = scan.N
    np.testing.assert_allclose(out["counts"], scan.diffraction.astype(np.float64) ** 2, rtol=1e-6)
    # ptychi's FFT is unnormalised: the probe is divided by sqrt(N*N)
    np.testing.assert_allclose(out["probe"][0, 0] * n, scan.probe, rtol=1e-6)
    h, w = scan.object.shape
    np.testing.assert_allclose(out["pos_y"], scan.ycoords - h // 2)
    np.testing.assert_allclose(out["pos_x"], scan.xcoords - w // 2)
    assert out["object"].shape == (1, h, w) and out["offset"] == (0, 0)


def test_export_refuses_a_wrong_initial_object(scan) -> None:
    with pytest.raises(ValueError, match="initial_object"):
        export_for_ptychi(scan, initial_object=np.ones((3, 3)))


@pytest.mark.parametrize("kwargs, field", [({"algorithm": "DM"}, "algorithm"), ({"epochs": 0}, "epochs"),
                                           ({"noise_model": "cauchy"}, "noise_model")])
def test_run_ptychi_names_the_bad_argument(scan, kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        run_ptychi(scan, **kwargs)


@needs_ptychi
def test_ptychi_forward_model_matches_ours_on_whole_pixels(scan) -> None:
    assert ptychi_forward_check(scan)["relative_error"] < 1e-5


@needs_ptychi
def test_run_ptychi_is_isolated_and_improves_the_object(scan) -> None:
    dtype, device = torch.get_default_dtype(), torch.empty(0).device
    rng_state = torch.random.get_rng_state()
    out = run_ptychi(scan, algorithm="LSQML", epochs=8, batch_size=10, snapshot_epochs=[2, 5, 8, 30])
    # ptychi sets torch's global defaults and seeds when it builds a task: not in this process
    assert torch.get_default_dtype() == dtype and torch.empty(0).device == device
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert out["object"].shape == scan.object.shape and out["offset"] == (0, 0)
    assert out["loss"].size == 8 and out["loss"][-1] < out["loss"][0]
    # snapshots only inside the run (8 is the final object, 30 never happens), timed cumulatively
    assert out["snapshot_epochs"].tolist() == [2, 5]
    assert out["snapshots"].shape == (2, *scan.object.shape)
    assert 0 < out["snapshot_seconds"][0] < out["snapshot_seconds"][1] < out["seconds"]
    assert not np.allclose(out["snapshots"][0], out["object"])
    flat = ptycho_nb.metrics.compare(np.ones_like(scan.object), scan.object, xcoords=scan.xcoords,
                                     ycoords=scan.ycoords, probe=scan.probe)
    got = ptycho_nb.metrics.compare(out["object"], scan.object, offset=out["offset"],
                                    xcoords=scan.xcoords, ycoords=scan.ycoords, probe=scan.probe)
    assert got["phase_psnr"] > flat["phase_psnr"] + 3


@needs_ptychi
def test_compare_iterative_bench_smoke(tmp_path) -> None:
    """The benchmark runs end to end at tiny sizes (CI never runs its full sizes)."""
    # with a test scan whose probe the model never saw (issue 13 (a))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_iterative.py"), "--quick",
                           "--test-probe-kind", "zone_plate", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "table.md").read_text()
    assert "'zone_plate' for the test scan, never seen in training" in table
    for method in ("ptycho_nb network alone", "ptycho_nb reconstruct",
                   "refinement from flat start (control)", "ptycho_nb refinement, probe refined",
                   "ptychi LSQML gaussian known probe", "ptychi LSQML poisson known probe",
                   "ptychi LSQML gaussian probe refined", "ptychi LSQML poisson probe refined",
                   "ptychi EPIE known probe", "ptychi EPIE probe refined"):
        assert method in table
    if ptycho_nb.pretrained.available():  # the packaged generalist's rows beside the trained model's
        assert "generalist-n64 network alone" in table
        assert "ptycho_nb reconstruct, generalist-n64 start" in table
    assert list(tmp_path.glob("recon_*.png")) and (tmp_path / "ssim_vs_seconds.png").exists()
    # the export check inside the bench: ptychi's forward model agrees with ours
    err = float(table.split("relative error): ")[1].split(": ")[1].split()[0].rstrip(","))
    assert err < 1e-5
