"""Pretrained models by name, model cards, and fine-tuning from a model (init_model / --init).

The models here are tiny ones trained in the tests and placed in a temporary "models" folder; the
package's own folder is exercised only for what it ships (specs/ptychodus_api_spec.md §5).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb import cli, pretrained
from ptycho_nb.config import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_nb.config.fields import ConfigError
from ptycho_nb.model import catalog
from ptycho_nb.workflows.payload import create_inference_payload, create_training_payload
from ptycho_nb.workflows.training import init_model_config

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(N=32, object_shape=(80, 80), n_positions=30, step=5.0)
FAST = dict(nepochs=1, batch_size=8, enable_checkpointing=False)
CARD = {"recipe": "tiny test model", "seeds": [1], "commit": "abc123", "training_time_s": 1.5,
        "hardware": "cpu", "scores": {"phase_ssim": np.float32(0.5), "epochs": np.int64(1)}}


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=1, **TINY)


@pytest.fixture(scope="module")
def other_scan():
    """Another object, and a probe 10× dimmer (another dose) than ``scan``'s."""
    return ptycho_nb.simulate(seed=2, photons_per_pattern=1e5, **TINY)


@pytest.fixture(scope="module")
def models(scan, tmp_path_factory):
    """A "models" folder with ``tiny`` (gridsize 1) and ``tiny-probe`` (probe_input) in it."""
    root = tmp_path_factory.mktemp("pretrained")
    folder = root / "models"
    plain = ptycho_nb.train(scan, n_filters_scale=1, output_dir=root / "plain", **FAST)
    ptycho_nb.save_model(plain, folder / "tiny.wts.h5.zip", card=CARD)
    cond = ptycho_nb.train(scan, n_filters_scale=1, probe_input=True, output_dir=root / "cond", **FAST)
    cond.save(folder / "tiny-probe.wts.h5.zip")  # no card
    return folder


def _net_state(module):
    return {k: v.detach().clone() for k, v in module.net.state_dict().items()}


class _StartState(L.Callback):
    """Records the network weights, probe and input statistic the fit starts from."""

    def on_train_start(self, trainer, pl_module):
        self.net = _net_state(pl_module)
        self.probe = pl_module.probe.detach().clone()


# ----------------------------------------------------------------------------- catalogue


def test_available_path_load_card(models, scan):
    assert pretrained.available(models) == ["tiny", "tiny-probe"]
    assert pretrained.available(models.parent / "nowhere") == []
    p = pretrained.path("tiny", models)
    assert p == models / "tiny.wts.h5.zip" and p.is_file()
    assert pretrained.path("pretrained:tiny", models) == p
    card = pretrained.card("tiny", models)
    assert card["recipe"] == "tiny test model" and card["scores"] == {"phase_ssim": 0.5, "epochs": 1}
    assert pretrained.card("tiny-probe", models) == {}
    module = pretrained.load("tiny", models)
    assert module.model_config.N == 32 and not module.training
    assert module.model_card == card
    assert ptycho_nb.load_model(p).model_card == card
    assert ptycho_nb.load_model(models / "tiny-probe.wts.h5.zip").model_card is None


def test_unknown_name_lists_the_available_ones(models):
    with pytest.raises(FileNotFoundError, match="did you mean 'tiny'") as err:
        pretrained.path("tinny", models)
    assert "tiny, tiny-probe" in str(err.value) and "'tinny'" in str(err.value)
    with pytest.raises(FileNotFoundError, match="none are installed"):
        pretrained.load("tiny", models.parent / "empty")
    for bad in ("../tiny", "", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="pretrained model name"):
            pretrained.path(bad, models)


def test_card_must_be_json(models, tmp_path):
    module = pretrained.load("tiny", models)
    for card, where in [({"scores": {"x": object()}}, r"card\['scores'\]\['x'\]"),
                        ({"loss": float("nan")}, r"card\['loss'\]"),
                        ({1: "a"}, "string keys"), (["not", "a", "dict"], "expected a dict"),
                        ({"a": np.zeros(3)}, r"card\['a'\]: a ndarray")]:
        with pytest.raises(ValueError, match=where):
            ptycho_nb.save_model(module, tmp_path / "m.wts.h5.zip", card=card)
        assert not (tmp_path / "m.wts.h5.zip").exists()


def test_shipped_models(monkeypatch):
    """Whatever the package ships: loadable by name, with a card, under 25 MB in all."""
    names = pretrained.available()
    total = sum(pretrained.path(n).stat().st_size for n in names)
    assert total <= 25 * 2**20, f"shipped models take {total / 2**20:.1f} MB (limit 25 MB)"
    if not names:
        pytest.skip("no pretrained model is shipped yet")
    for name in names:
        card = pretrained.card(name)
        assert card, f"{name}: its archive has no model card"
        module = ptycho_nb.load_model(f"pretrained:{name}")
        assert module.model_card == card
        # a model that ignores its input (the recipe's collapse check) never ships
        assert card.get("collapsed") is False, f"{name}: its card does not say it reads its input"


# ----------------------------------------------------------------------------- pretrained:NAME


def test_pretrained_name_wherever_a_model_path_is(models, scan, monkeypatch):
    # explicit folder: the resolver itself
    assert catalog.resolve_archive_path("pretrained:tiny", folder=models) == models / "tiny.wts.h5.zip"
    # configs keep the reference as written
    cfg = InferenceConfig(model_path="pretrained:tiny")
    assert str(cfg.model_path) == "pretrained:tiny"
    assert InferenceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # an unknown name fails before any work, listing what there is
    with pytest.raises(FileNotFoundError, match="model path: pretrained model 'nope' not found"):
        create_inference_payload("pretrained:nope", scan, legacy_cfg={})
    # the default folder, pointed at the test's
    monkeypatch.setattr(catalog, "PRETRAINED_DIR", models)
    assert pretrained.available() == ["tiny", "tiny-probe"]
    module = ptycho_nb.load_model("pretrained:tiny")
    assert module.model_card["commit"] == "abc123"
    a = ptycho_nb.infer("pretrained:tiny", scan, refine_epochs=0)
    b = ptycho_nb.infer(models / "tiny.wts.h5.zip", scan, refine_epochs=0)
    np.testing.assert_array_equal(a.object, b.object)
    assert np.isfinite(a.object).all()
    with pytest.raises(FileNotFoundError, match="available: tiny, tiny-probe"):
        ptycho_nb.infer("pretrained:tiny-prob", scan, refine_epochs=0)


# ----------------------------------------------------------------------------- fine-tuning


def test_fine_tune_gridsize2_from_gridsize1_archive(models, other_scan, tmp_path):
    archive = models / "tiny.wts.h5.zip"
    start = ptycho_nb.load_model(archive)
    seen = _StartState()
    r = ptycho_nb.train(other_scan, init_model=archive, gridsize=2, output_dir=tmp_path,
                        callbacks=[seen], **FAST)
    # the fit started from the archive's network, not from random weights
    for k, v in _net_state(start).items():
        assert torch.equal(seen.net[k], v), k
    # ... with this scan's probe, and it trained
    np.testing.assert_array_equal(seen.probe.numpy(), other_scan.probe.astype(np.complex64))
    after = _net_state(r.module)
    assert any(not torch.equal(after[k], v) for k, v in _net_state(start).items())
    # the ModelConfig really used: the archive's, with this run's gridsize
    assert r.model == start.model_config.replace(gridsize=2)
    assert r.module.model_config == r.model and r.training.init_model == archive
    sources = {e.field: e.source for e in r.audit}
    assert sources["model.gridsize"] == "override" and sources["model.n_filters_scale"] == "init_model"
    assert np.isfinite(r.history["train_loss"][0])
    assert ptycho_nb.load_model(r.archive_path).model_config.gridsize == 2


def test_fine_tune_probe_input_model_by_name(models, other_scan, tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "PRETRAINED_DIR", models)
    start = pretrained.load("tiny-probe")
    seen = _StartState()
    r = ptycho_nb.train(other_scan, init="pretrained:tiny-probe", output_dir=tmp_path,
                        callbacks=[seen], **FAST)
    want = _net_state(start)
    for k, v in want.items():
        if k != "input_scale":
            assert torch.equal(seen.net[k], v), k
    # adopt_scan: this scan's probe and input statistic
    np.testing.assert_allclose(float(seen.net["input_scale"]), other_scan.diffraction.mean(), rtol=1e-5)
    assert not np.isclose(float(want["input_scale"]), float(seen.net["input_scale"]))
    np.testing.assert_array_equal(seen.probe.numpy(), other_scan.probe.astype(np.complex64))
    assert r.model.probe_input and r.model.n_filters_scale == 1
    assert str(r.training.init_model) == "pretrained:tiny-probe"


@pytest.mark.parametrize("field,value", [("n_filters_scale", 2), ("N", 64), ("probe_input", True)])
def test_contradicting_model_config_is_refused(models, scan, tmp_path, field, value):
    with pytest.raises(ConfigError, match=f"ModelConfig.{field}={value!r} contradicts") as err:
        ptycho_nb.train(scan, init_model=models / "tiny.wts.h5.zip", output_dir=tmp_path,
                        **{field: value}, **FAST)
    assert err.value.fields == (field,)
    assert not (tmp_path / "wts.h5.zip").exists()


def test_init_model_errors(models, scan, other_scan, tmp_path):
    with pytest.raises(FileNotFoundError, match="init_model: pretrained model 'nope'"):
        ptycho_nb.train(scan, init="pretrained:nope", output_dir=tmp_path, **FAST)
    with pytest.raises(FileNotFoundError, match="no-such"):
        ptycho_nb.train(scan, init=tmp_path / "no-such.wts.h5.zip", output_dir=tmp_path, **FAST)
    with pytest.raises(TypeError, match="init= or init_model="):
        ptycho_nb.train(scan, init="a", init_model="b", output_dir=tmp_path)
    big = ptycho_nb.simulate(seed=3, N=64, object_shape=(120, 120), n_positions=4, step=8.0)
    with pytest.raises(ConfigError, match=r"N=32 but the training patterns are 64x64"):
        ptycho_nb.train(big, init_model=models / "tiny.wts.h5.zip", output_dir=tmp_path, **FAST)


def test_model_config_object_defaults_do_not_contradict(scan):
    """A ModelConfig object sets every field; its untouched defaults are not a choice."""
    start = ModelConfig(N=32, n_filters_scale=1, probe_input=True)
    p = create_training_payload(scan, model=ModelConfig(gridsize=2), legacy_cfg={}, load=False)
    used, audit = init_model_config(start, p.model, p.audit, scan, where="x")
    assert used == start.replace(gridsize=2)
    p = create_training_payload(scan, model=ModelConfig(n_filters_scale=3), legacy_cfg={}, load=False)
    with pytest.raises(ConfigError, match="n_filters_scale=3 contradicts"):
        init_model_config(start, p.model, p.audit, scan, where="x")
    assert TrainingConfig(init_model="pretrained:x").to_dict()["init_model"] == "pretrained:x"


# ----------------------------------------------------------------------------- CLI


def _cli(*argv):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ptycho_nb.cli", *map(str, argv)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_cli_train_init_then_infer(models, other_scan, tmp_path, capsys):
    data = tmp_path / "scan.npz"
    ptycho_nb.save(other_scan, data)
    out = tmp_path / "ft"
    r = _cli("train", "--init", models / "tiny.wts.h5.zip", "--train-data", data, "--output-dir", out,
             "--gridsize", "2", "--nepochs", "1", "--batch-size", "8", "--disable-checkpointing",
             "--accelerator", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    used = ptycho_nb.load_model(out / "wts.h5.zip")
    assert used.model_config.gridsize == 2 and used.model_config.n_filters_scale == 1
    assert used.training_config.init_model == models / "tiny.wts.h5.zip"
    r = _cli("infer", "--model-path", out / "wts.h5.zip", "--test-data", data, "--output-dir",
             tmp_path / "inf", "--refine-epochs", "0", "--accelerator", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "inf" / "reconstruction.npz").is_file()
    # in-process (a subprocess costs seconds of imports): an unknown name is a one-line error
    assert cli.main(["infer", "--model-path", "pretrained:no-such-model", "--test-data", str(data),
                     "--output-dir", str(tmp_path / "inf2")]) == 2
    err = capsys.readouterr().err
    assert "pretrained model 'no-such-model' not found" in err and "available:" in err
    assert not (tmp_path / "inf2").exists()


def test_shipped_models_cards_are_repeated_in_the_docs():
    """Each shipped model has docs/models/NAME.md, whose score table is the card's."""
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs" / "models"
    names = pretrained.available()
    if not names:
        pytest.skip("no pretrained model is shipped yet")
    for name in names:
        page = docs / f"{name}.md"
        assert page.is_file(), f"{name}: no model card page {page}"
        text = page.read_text()
        card = pretrained.card(name)
        assert card["commit"][:7] in text and card["training"]["commit_trained"][:7] in text
        rows = [line for line in text.splitlines() if line.startswith(("| lines", "| siemens"))]
        assert len(rows) == len(card["scores_network_alone"])
        for line, r in zip(rows, card["scores_network_alone"]):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[0] == r["object"] and cells[2] == f"{r['photons']:.0e}", line
            assert [float(c) for c in cells[3:8]] == [round(r[k], 3) for k in (
                "phase_ssim", "estimate_phase_ssim", "flat_phase_ssim", "amplitude_ssim",
                "estimate_amplitude_ssim")], line
