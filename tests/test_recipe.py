"""The pretrained generalist's recipe (``recipes/generalist_n64.py``, outside the installed
package), run at toy size: train, score, card, archive, score-only; and the model-card scores
(:mod:`ptycho_nb.pretrained.scoring`)."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.model import PINNModule, scaling_statistics
from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ptycho_nb.pretrained import scoring

REPO = pathlib.Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "generalist_n64.py"


def _load_recipe():
    """The recipe as a module, by path (it is a script beside the package, not in it)."""
    spec = importlib.util.spec_from_file_location("generalist_n64", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look up the module of the class they build
    spec.loader.exec_module(module)
    return module


rec = _load_recipe()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy_generalist")
    assert rec.main(["--out", str(out), "--toy", "--minutes", "1", "--threads", "1"]) == 0
    return out


def test_toy_recipe_writes_an_archive_with_its_card(toy_run):
    archive = toy_run / f"{rec.NAME}-toy.wts.h5.zip"
    assert archive.exists() and (toy_run / "trained.json").exists()
    card = json.loads((toy_run / "model_card.json").read_text())
    assert card["recipe"] == "python recipes/generalist_n64.py --minutes 1 --seed 0 --threads 1 --toy"
    assert card["training"]["steps"] > 0 and card["seed"] == 0
    # the device that trained it (Lightning's 'auto': this machine's CPU unless a GPU is found)
    want = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert card["hardware"]["device"].split()[0] == card["training"]["device"].split()[0] == want
    assert "commit_trained" in card["training"]  # None outside a git checkout
    assert set(card["held_out"]["objects"]) == set(scoring.HELD_OUT_OBJECTS)
    rows = card["scores_network_alone"]
    assert {r["object"] for r in rows} == set(scoring.HELD_OUT_OBJECTS)
    assert {r["probe_seen"] for r in rows} == {True, False}
    assert all(-1 <= r["phase_ssim"] <= 1 and -1 <= r["flat_phase_ssim"] <= 1 for r in rows)
    assert all(r["output_variation"] >= 0 for r in rows)
    assert card["collapsed"] == scoring.collapsed(rows)
    # the held-out kinds and probe family really are outside the training distribution
    spec = card["trained_on"]["spec"]
    kinds = set(dict(spec["object_kinds"]))
    assert not kinds & set(scoring.HELD_OUT_OBJECTS)
    model = ptycho_nb.load_model(archive)
    assert model.model_config.probe_input
    # it reads each pattern's physics estimate, and the card scores that input alone beside it
    assert model.net.physics_steps == rec.PHYSICS_STEPS == card["trained_on"]["network"]["physics_steps"]
    assert all(-1 <= r["estimate_phase_ssim"] <= 1 and -1 <= r["estimate_amplitude_ssim"] <= 1
               for r in rows)
    # trained with the supervised term on the simulated truth, recorded; the archive drops it
    assert card["trained_on"]["truth_weight"] == rec.TRUTH_WEIGHT > 0 and "supervised" in card["what"]
    assert model.truth_weight == 0
    assert model.net.context_patterns == rec.CONTEXT_PATTERNS == card["trained_on"]["network"]["context_patterns"]


def test_score_only_reloads_the_run(toy_run):
    module, facts = rec.load_trained(toy_run, toy=True)
    assert facts["steps"] > 0 and module.model_config.probe_input
    assert module.net.physics_steps == rec.PHYSICS_STEPS
    assert rec.main(["--out", str(toy_run), "--toy", "--score-only", "--overwrite"]) == 0


def test_probe_input_model_follows_the_scan_probe():
    # The same patterns read through two different probes give different patches: the probe
    # really conditions the network (and adopt_scan swaps it in).
    a = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=12, step=5.0, seed=1, probe_kind="disc")
    b = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=12, step=5.0, seed=1,
                           probe_kind="gaussian")
    torch.manual_seed(0)
    m = PINNModule(ModelConfig(N=32, n_filters_scale=1, probe_input=True), TrainingConfig(),
                   PyTorchExecutionConfig(), probe=a.probe, scaling=scaling_statistics(a))
    for p in m.net.amp_head.out.parameters():  # zero-initialised heads would hide the input
        torch.nn.init.normal_(p, std=0.1)
    x = torch.from_numpy(a.diffraction[:4, None])
    with torch.no_grad():
        m.adopt_scan(a)
        pa = m(x)
        m.adopt_scan(b)
        pb = m(x)
    assert np.allclose(m.probe.numpy(), b.probe)
    assert not torch.allclose(pa.abs(), pb.abs())
    plain = PINNModule(ModelConfig(N=32, n_filters_scale=1), TrainingConfig(), PyTorchExecutionConfig(),
                       probe=a.probe, scaling=scaling_statistics(a))
    with pytest.raises(ValueError, match="probe_input"):
        plain.adopt_scan(b)


def test_output_variation_tells_a_collapsed_network():
    """A network with zero-initialised output heads returns one patch whatever it reads (what a
    collapsed generalist does): variation ~0 and the card's verdict says collapsed; with its
    heads drawn at random the output follows the input."""
    scan = ptycho_nb.simulate(N=32, object_shape=(96, 96), n_positions=40, seed=2)
    torch.manual_seed(0)
    m = PINNModule(ModelConfig(N=32, n_filters_scale=1, probe_input=True), TrainingConfig(),
                   PyTorchExecutionConfig(), probe=scan.probe, scaling=scaling_statistics(scan))
    flat = scoring.output_variation(m, scan)
    assert 0 <= flat < 1e-3
    for head in (m.net.amp_head.out, m.net.phase_head.out):
        for p in head.parameters():
            torch.nn.init.normal_(p, std=0.3)
    assert scoring.output_variation(m, scan) > 100 * max(flat, 1e-6)
    rows = [{"output_variation": v} for v in (0.1, 0.2, 0.9)]
    assert scoring.collapsed(rows) and not scoring.collapsed([{"output_variation": 0.8}, *rows[2:]])
    assert not scoring.collapsed([{"phase_ssim": 0.5}])  # an old card without the measure
    no_truth = ptycho_nb.PtychoData(diffraction=scan.diffraction, xcoords=scan.xcoords,
                                    ycoords=scan.ycoords, probe=scan.probe)
    with pytest.raises(ValueError, match="no ground-truth object"):
        scoring.output_variation(m, no_truth)


def test_the_recipe_stays_out_of_the_wheel():
    """Only ``ptycho_nb*`` is packaged (as torchvision keeps ``references/`` out of its wheel)."""
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"]["include"]
    assert not any(fnmatch.fnmatch("recipes", pattern) for pattern in include)
    assert not (REPO / "ptycho_nb" / "pretrained" / "recipe.py").exists()


def test_the_recipe_runs_as_a_script_from_anywhere(tmp_path):
    """``python recipes/generalist_n64.py`` finds this checkout's ptycho_nb from any folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(RECIPE), "--help"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python recipes/generalist_n64.py") and "--score-only" in r.stdout

