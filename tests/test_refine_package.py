"""The refinement as a subsystem (ptycho_nb.refine): the same results as before it moved, on any
device, with one read-back per epoch, bounded memory, and an update-rule registry."""

from __future__ import annotations

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.config import InferenceConfig, PyTorchExecutionConfig
from ptycho_nb.refine import (UPDATE_RULES, PreparedScan, RefineSettings, refine, refine_scan,
                              rule_for)

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = pathlib.Path(__file__).with_name("data")


def _generator():
    spec = importlib.util.spec_from_file_location("make_refine_reference", DATA / "make_refine_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "refine_reference.npz") as f:
        return {k: f[k] for k in f.files}


def _scan(ref):
    return (ref["scan/diffraction"], ref["scan/xcoords"], ref["scan/ycoords"])


@pytest.mark.parametrize("case", list(_generator().CASES))
def test_results_are_those_of_the_refinement_before_it_moved(reference, case):
    """tests/data/refine_reference.npz was written by ``ptycho_nb.model.refine.refine`` at
    18af0d7 (CPU, one thread): the package reproduces its objects and probes to float rounding
    (on this machine bit for bit) and its epoch counts exactly."""
    gen = _generator()
    kind, kw = gen.CASES[case]
    d, x, y = _scan(reference)
    true = reference["scan/probe"]
    probe = {"true": true, "guess": None, "modes": None}[kind]
    if kind == "guess":
        from ptycho_nb.physics.probes import gaussian_guess
        probe = gaussian_guess(true)
    elif kind == "modes":
        probe = np.stack([true, 0.3 * np.roll(true, 2, axis=0)]).astype(np.complex64)
    flat = np.ones(tuple(reference["scan/object_shape"]), np.complex64)
    res = refine(flat, d, x, y, probe, 1.0, **kw)
    if case == "joint_modes":
        # Changed on purpose since the reference: incoherent modes are re-orthogonalised after
        # every epoch that moves them (ptycho_nb.refine.modes), so they cannot drift into one.
        g = res.probe.reshape(2, -1)
        gram = (g.conj() @ g.T).abs()
        assert float(gram[0, 1]) < 1e-4 * float(gram[0, 0]) and float(gram[1, 1]) < float(gram[0, 0])
        assert res.deviance[-1] <= 1.05 * reference[f"{case}/deviance"][-1]
        return
    assert [res.epochs_run, res.best_epoch] == list(reference[f"{case}/epochs"])
    for what, got in (("object", res.object), ("probe", res.probe)):
        want = reference[f"{case}/{what}"]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(res.deviance, reference[f"{case}/deviance"], rtol=1e-5)


@pytest.fixture(scope="module")
def small():
    return ptycho_nb.simulate(N=16, object_kind="lines", object_shape=(48, 48), n_positions=40,
                              step=4.0, photons_per_pattern=1e5, seed=5, jitter=0.3)


@pytest.mark.parametrize("joint", [False, True])
def test_a_batch_larger_than_a_chunk_is_the_same_update(small, joint):
    """Chunks bound the memory of large batches; the update is the same sums, to float rounding."""
    flat = np.ones_like(small.object)
    probe = small.probe if not joint else np.stack([small.probe, 0.2 * small.probe.T])
    kw = dict(max_epochs=4, batch_size=40, refine_probe=joint, probe_start=0, tol=0.0, patience=10)
    whole = refine(flat, small.diffraction, small.xcoords, small.ycoords, probe, **kw)
    chunked = refine(flat, small.diffraction, small.xcoords, small.ycoords, probe, chunk_patterns=7, **kw)
    np.testing.assert_allclose(chunked.object.numpy(), whole.object.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(chunked.probe.numpy(), whole.probe.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(chunked.deviance, whole.deviance, rtol=1e-5)


class _ReadBacks:
    """Counts the ways a tensor's value comes back to Python (each one waits for the device)."""

    NAMES = ("item", "tolist", "__float__", "__int__", "__bool__")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            real = getattr(torch.Tensor, name)

            def counted(t, *a, _real=real, **k):
                self.count += 1
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("joint", [False, True])
def test_values_come_back_from_the_device_per_epoch_not_per_batch(small, monkeypatch, joint):
    """Read-backs during the epochs do not grow with the number of batches: 40 batches of one
    pattern cost what one batch of 40 does."""
    flat = np.ones_like(small.object)
    settings = dict(max_epochs=3, tol=0.0, patience=10, refine_probe=joint, probe_start=0,
                    momentum=0.5, grow_batch=False, holdout=0.1)
    scan = PreparedScan.build(small.diffraction, small.xcoords, small.ycoords, 16, small.object.shape)
    counts = []
    for batch in (1, 40):
        reads = _ReadBacks(monkeypatch)
        refine_scan(scan, flat, small.probe, 1.0, RefineSettings.of(batch_size=batch, **settings))
        counts.append(reads.count)
        monkeypatch.undo()
    assert counts[0] == counts[1], counts
    assert 0 < counts[0] < 40  # a handful per epoch: the deviances, the checks


def test_the_scan_is_held_once(small):
    """On the CPU the refinement's data are the caller's float32 amplitudes, not a copy."""
    d = np.ascontiguousarray(small.diffraction, dtype=np.float32)
    scan = PreparedScan.build(d, small.xcoords, small.ycoords, 16, small.object.shape)
    assert scan.amplitudes.data_ptr() == d.ctypes.data
    # and what a batch needs is made per batch, from those
    idx = torch.tensor([3, 1])
    counts = scan.counts(idx)
    np.testing.assert_allclose(counts.numpy(), d[[3, 1]] ** 2)
    assert scan.mean_counts() == pytest.approx(float(np.mean(np.sum(d.astype(np.float64) ** 2, axis=(1, 2)))), rel=1e-6)


def test_progress_hands_out_host_copies_on_request(small):
    seen = []
    res = refine(np.ones_like(small.object), small.diffraction, small.xcoords, small.ycoords,
                 small.probe, max_epochs=2, callback=lambda p: seen.append(p.object_array()))
    assert len(seen) == 2 and all(isinstance(a, np.ndarray) and a.dtype == np.complex64 for a in seen)
    assert not np.array_equal(seen[0], seen[1])  # copies, not a view of the live object
    assert res.device == "cpu" and isinstance(res.object_array(), np.ndarray)


def test_a_new_update_rule_is_one_function_and_one_registry_line(small, monkeypatch):
    """The loop serves any rule in the registry: here a rule that scales the object by the
    measured-to-predicted counts ratio (a toy), run through the same epochs and stopping rules."""
    from ptycho_nb.refine.deviance import batch_deviance, predicted_counts
    from ptycho_nb.physics.forward import gather_patches

    def scale_rule(state, scan, settings):
        def step(idx, updates):
            _, lam = predicted_counts(state.probe * scan.checker,
                                      gather_patches(state.object, scan.taps(idx)), state.scale)
            counts = scan.counts(idx)
            state.object.mul_(torch.sqrt(counts.sum() / lam.sum()))
            return batch_deviance(lam, counts, scan.klogk[idx], scan.accumulate)
        return step

    monkeypatch.setitem(UPDATE_RULES, "scale", scale_rule)
    res = refine(0.1 * np.ones_like(small.object), small.diffraction, small.xcoords, small.ycoords,
                 small.probe, method="scale", max_epochs=3, tol=0.0)
    assert res.epochs_run == 3 and res.deviance[-1] < res.deviance[0] and res.step_rule == ""
    with pytest.raises(ValueError, match=r"method: expected one of \('pie', 'adam'"):
        rule_for("lsqml")


def test_settings_resolve_every_auto_once_from_the_configs():
    e = PyTorchExecutionConfig()
    s = RefineSettings.from_configs(InferenceConfig(), e, seed=4, scan_probe_exact=True, positions_exact=True)
    assert (s.rule, s.momentum, s.refine_probe, s.device, s.seed) == ("fisher", 0.85, False, torch.device("cpu"), 4)
    assert not s.correct_positions and (s.probe_modes, s.auto_modes) == (0, 0)
    # a measured scan (its record says nothing): the probe is a guess, the positions nominal
    m = RefineSettings.from_configs(InferenceConfig(), e)
    assert m.refine_probe and m.correct_positions and m.auto_modes == 3
    assert "guess" in dict(m.why)["refine_probe"] and "nominal" in dict(m.why)["refine_positions"]
    j = RefineSettings.from_configs(InferenceConfig(refine_probe=True), e, probe_mismatch=0.01)
    assert (j.rule, j.momentum, j.probe_source, j.probe_init) == ("gaussian", 0.0, "model", "auto")
    # whose probe: the scan's when it is another than the model's, or there is no model
    assert RefineSettings.from_configs(InferenceConfig(), e, probe_mismatch=0.3).probe_source == "scan"
    assert RefineSettings.from_configs(InferenceConfig(), e, probe_conditioned=True).probe_source == "scan"
    flat = RefineSettings.from_configs(InferenceConfig(), e, model=False)
    assert (flat.probe_source, flat.start) == ("scan", "flat")
    with pytest.raises(ValueError, match="refine_probe_source='model' needs a model"):
        RefineSettings.from_configs(InferenceConfig(refine_probe_source="model"), e, model=False)
    p = RefineSettings.from_configs(InferenceConfig(refine_probe=True, refine_noise_model="poisson"), e)
    assert p.rule == "newton"
    with pytest.raises(ValueError, match="momentum"):
        RefineSettings(momentum=1.5)
    with pytest.raises(ValueError, match="probe_source"):
        RefineSettings(probe_source="guess")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where torch sees no GPU")
def test_a_gpu_asked_for_where_there_is_none_is_a_clear_error():
    with pytest.raises(ValueError, match=r"accelerator='cuda'.*no CUDA device.*'auto'"):
        RefineSettings.from_configs(InferenceConfig(), PyTorchExecutionConfig(accelerator="cuda"))
    # 'auto' is the CPU here, and the run record says where the refinement ran
    s = RefineSettings.from_configs(InferenceConfig(), PyTorchExecutionConfig(accelerator="auto"))
    assert s.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_refinement_runs_there_and_agrees_with_the_cpu(small):
    kw = dict(max_epochs=5, batch_size=8, tol=0.0, patience=10, momentum=0.85)
    args = (np.ones_like(small.object), small.diffraction, small.xcoords, small.ycoords, small.probe)
    cpu = refine(*args, **kw)
    gpu = refine(*args, device="cuda", **kw)
    assert gpu.object.device.type == "cuda" and gpu.device.startswith("cuda")
    np.testing.assert_allclose(gpu.object_array(), cpu.object_array(), rtol=1e-3, atol=1e-4)
    rec = ptycho_nb.reconstruct(small, refine_epochs=3, accelerator="auto")
    assert rec.run.refinement.device.startswith("cuda")


def test_the_run_record_says_where_the_refinement_ran_and_old_names_still_read(small):
    rec = ptycho_nb.reconstruct(small, model=None, refine_epochs=3, accelerator="cpu")
    ref = rec.run.refinement
    assert ref.device == "cpu" and ref.start == "flat" and ref.epochs_run == 3
    assert rec.run.accelerator == "cpu"
    assert rec.run.as_dict()["refinement"]["loss"] == ref.loss
    with pytest.warns(DeprecationWarning, match=r"refine_loss is deprecated.*refinement\.loss"):
        assert rec.run.refine_loss == ref.loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.run.refinement.stopped  # the new names warn of nothing


def test_the_old_module_path_forwards_with_a_warning():
    import importlib
    import sys

    sys.modules.pop("ptycho_nb.model.refine", None)
    with pytest.warns(DeprecationWarning, match="ptycho_nb.model.refine is deprecated"):
        old = importlib.import_module("ptycho_nb.model.refine")
    assert old.refine is refine
