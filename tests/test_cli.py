"""The ptycho-nb CLI: help lists every flag and default, errors without tracebacks, precedence."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from ptycho_nb import cli
from ptycho_nb.config import InferenceConfig, ModelConfig, PyTorchExecutionConfig
from ptycho_nb.config.cli_args import MODE_CLASSES, cli_default, cli_layers
from ptycho_nb.config.precedence import front_end_layer, resolve


def resolved(args, mode):
    """The configs a command line resolves to (what the CLI's payload preparation computes)."""
    return resolve(MODE_CLASSES[mode], [front_end_layer("cli"), *cli_layers(args, mode)])[0]
from ptycho_nb.config.fields import config_fields, format_value


def run_cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "ptycho_nb.cli", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def _norm(text):
    return " ".join(text.split())


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_help_lists_every_flag_and_default(mode):
    r = run_cli(mode, "--help")
    assert r.returncode == 0, r.stderr
    out = _norm(r.stdout)
    n = 0
    for section, cls in MODE_CLASSES[mode].items():
        for f in config_fields(cls):
            if mode not in f.metadata["modes"]:
                continue
            for flag in f.metadata["flags"] + f.metadata["neg_flags"]:
                assert flag in r.stdout, flag
            assert f"(default: {format_value(cli_default(cls, f))})" in out, f.name
            n += 1
    assert n >= (20 if mode == "train" else 10)
    for flag in ("--device", "--config", "--quiet", "--no-deterministic"):
        if mode == "infer" and flag == "--no-deterministic":
            continue
        assert flag in r.stdout
    assert "(default: 'auto')" in out  # accelerator's front-end default


def test_reconstruct_help_shows_its_own_defaults():
    """reconstruct takes infer's flags; its help shows the defaults it runs with (the lit field)."""
    sub = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0]
    rec, inf = (_norm(sub.choices[c].format_help()) for c in ("reconstruct", "infer"))
    pad = "Sets pad_eval=True. (default: {})"
    assert pad.format("True") in rec and pad.format("False") in inf
    assert "(default: 'auto')" in rec  # the CLI's front-end default stays below it
    f = next(f for f in config_fields(PyTorchExecutionConfig) if f.name == "pad_eval")
    assert cli_default(PyTorchExecutionConfig, f, "reconstruct") is True
    assert cli_default(PyTorchExecutionConfig, f) is False


def test_train_flag_set_of_issue():
    text = cli.build_parser().format_help()
    sub = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0]
    train = sub.choices["train"].format_help()
    infer = sub.choices["infer"].format_help()
    for flag in ["--accelerator", "--deterministic", "--no-deterministic", "--num-workers",
                 "--learning-rate", "--scheduler", "--accumulate-grad-batches", "--gradient-clip-val",
                 "--strategy", "--quiet", "--enable-checkpointing", "--disable-checkpointing",
                 "--checkpoint-save-top-k", "--checkpoint-monitor", "--checkpoint-mode",
                 "--early-stop-patience", "--logger", "--device", "--disable_mlflow",
                 "--train-data", "--test-data", "--output-dir", "--config"]:
        assert flag in train, flag
    for flag in ["--accelerator", "--num-workers", "--inference-batch-size", "--middle-trim",
                 "--pad-eval", "--quiet", "--model-path", "--test-data", "--output-dir", "--device"]:
        assert flag in infer, flag
    assert "simulate" in text


def test_bad_value_exits_with_field_message_no_traceback(tmp_path):
    r = run_cli("train", "--train-data", str(tmp_path / "x.npz"), "--num-workers", "-1")
    assert r.returncode == 2
    assert "num_workers" in r.stderr and "Traceback" not in r.stderr + r.stdout
    r = run_cli("infer", "--learning-rate", "0.1")  # not an infer flag
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv,needle", [
    (["train", "--num-workers", "abc"], "num_workers"),
    (["train", "--learning-rate", "0", "--train-data", "x.npz"], "learning_rate"),
    (["train", "--accelerator", "gpux", "--train-data", "x.npz"], "accelerator"),
    (["train", "--train-data", "nope.npz"], "nope.npz"),
    (["train"], "train_data_file"),
    (["infer", "--middle-trim", "-2"], "middle_trim"),
    (["infer", "--model-path", "none.zip", "--test-data", "x.npz"], "none.zip"),
    (["train", "--backend", "tensorflow", "--train-data", "x.npz"], "PyTorch path"),
    (["train", "--logger", "csv", "--disable_mlflow", "--train-data", "x.npz"], "disable_mlflow"),
])
def test_errors_in_process(argv, needle, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if "abc" in argv else _nullcontext():
        rc = cli.main(argv)
        assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_front_end_defaults_and_flags():
    ex = resolved(parse("train"), "train")["execution"]
    assert ex.accelerator == "auto" and ex.enable_progress_bar is True
    ex = resolved(parse(
        "train", "--quiet", "--no-deterministic", "--disable-checkpointing", "--accumulate-grad-batches", "4",
        "--gradient-clip-val", "none", "--logger", "none", "--checkpoint-monitor", "train_loss",
        "--checkpoint-mode", "min", "--scheduler", "Cosine", "--lr", "0.01", "--devices", "1"), "train")["execution"]
    assert ex.enable_progress_bar is False and ex.deterministic is False
    assert ex.enable_checkpointing is False and ex.accum_steps == 4 and ex.gradient_clip_val is None
    assert ex.checkpoint_mode == "min" and ex.scheduler == "Cosine" and ex.learning_rate == 0.01
    assert ex.devices == 1 and ex.logger_backend is None
    ex = resolved(parse("infer", "--inference-batch-size", "8", "--pad-eval",
                                                "--middle-trim", "3"), "infer")["execution"]
    assert (ex.inference_batch_size, ex.pad_eval, ex.middle_trim) == (8, True, 3)


def test_device_is_deprecated_alias_and_never_forces_cpu():
    with pytest.warns(DeprecationWarning, match="--device"):
        ex = resolved(parse("train", "--device", "cuda"), "train")["execution"]
    assert ex.accelerator == "cuda"
    with pytest.warns(DeprecationWarning):
        ex = resolved(parse("train", "--device", "cpu", "--accelerator", "auto"), "train")["execution"]
    assert ex.accelerator == "auto"
    assert resolved(parse("infer"), "infer")["execution"].accelerator == "auto"
    assert resolved(parse("train", "--disable_mlflow"), "train")["execution"].logger_backend is None


def test_device_warning_shown_by_cli(tmp_path):
    r = run_cli("infer", "--device", "cpu", "--model-path", str(tmp_path / "m.zip"))
    assert "DeprecationWarning" in r.stderr and "--accelerator" in r.stderr
    assert r.returncode == 2 and "m.zip" in r.stderr and "Traceback" not in r.stderr


def test_config_file_and_typed_flags_win(tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({
        "execution": PyTorchExecutionConfig(num_workers=2, learning_rate=5e-4).to_dict(),
        "model": {"N": 32, "gridsize": 2},
        "training": {"nepochs": 3, "batch_size": 4},
    }))
    args = parse("train", "--config", str(f), "--learning-rate", "0.02", "--nepochs", "7")
    ex = resolved(args, "train")["execution"]
    canon = resolved(args, "train")
    assert ex.learning_rate == 0.02 and ex.num_workers == 2
    assert ex.accelerator == "cpu"  # the saved config object beats the front-end default
    assert canon["model"] == ModelConfig(N=32, gridsize=2)
    assert canon["training"].nepochs == 7 and canon["training"].batch_size == 4
    # a flat one-config file is read as the execution section
    flat = tmp_path / "flat.json"
    PyTorchExecutionConfig(accelerator="auto", inference_batch_size=3).to_json(flat)
    ex = resolved(parse("infer", "--config", str(flat)), "infer")["execution"]
    assert ex.inference_batch_size == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"execution": {"num_worker": 1}}))
    with pytest.raises(ValueError, match="did you mean 'num_workers'"):
        resolved(parse("train", "--config", str(bad)), "train")["execution"]
    with pytest.raises(FileNotFoundError, match="missing.json"):
        resolved(parse("train", "--config", str(tmp_path / "missing.json")), "train")["execution"]


def test_canonical_flags():
    canon = resolved(parse(
        "train", "--N", "32", "--gridsize", "2", "--no-object-big", "--probe-trainable",
        "--mae-weight", "0.5", "--output-dir", "o", "--train-data", "a.npz", "--n-groups", "none"), "train")
    m, t = canon["model"], canon["training"]
    assert (m.N, m.gridsize, m.object_big) == (32, 2, False)
    assert t.probe_trainable and t.mae_weight == 0.5 and str(t.train_data_file) == "a.npz"
    i = resolved(parse("infer", "--model-path", "m.zip", "--n-groups", "5"), "infer")
    assert i["inference"] == InferenceConfig(model_path="m.zip", n_groups=5)


def _small_npz(path):
    from ptycho_nb.data import PtychoData, save

    rng = np.random.default_rng(0)
    d = PtychoData(diffraction=rng.random((4, 16, 16), dtype=np.float32),
                   xcoords=np.arange(4, dtype=float) + 20, ycoords=np.full(4, 20.0),
                   probe=np.ones((16, 16), np.complex64))
    save(d, path)
    return path


def test_verbose_logs_applied_values(tmp_path):
    r = run_cli("-v", "train", "--train-data", str(tmp_path / "x.npz"), "--num-workers", "1")
    assert "config execution.num_workers = 1 (source: cli flag)" in r.stderr
    assert "config execution.accelerator = 'auto' (source: front_end:cli)" in r.stderr


def test_typed_flag_over_config_file_is_audited_and_logged_once_as_the_flag(tmp_path, caplog):
    import logging

    from ptycho_nb.workflows.payload import create_training_payload

    cfg = tmp_path / "f.json"
    cfg.write_text(json.dumps({"execution": {"learning_rate": 0.001}, "training": {"nepochs": 3}}))
    data = _small_npz(tmp_path / "x.npz")
    args = parse("train", "--config", str(cfg), "--train-data", str(data), "--learning-rate", "0.02")
    with caplog.at_level(logging.INFO, logger="ptycho_nb"):
        payload = create_training_payload(front_end="cli", layers=cli_layers(args, "train"), load=False)
    audit = {e.field: (e.value, e.source) for e in payload.audit}
    assert audit["execution.learning_rate"] == (0.02, "cli flag")
    assert audit["training.nepochs"] == (3, "config file")
    # the file does not set accelerator or the bar: the CLI's front-end defaults stay
    assert audit["execution.accelerator"] == ("auto", "front_end:cli")
    assert audit["execution.enable_progress_bar"] == (True, "front_end:cli")
    lr_lines = [r.getMessage() for r in caplog.records if "learning_rate" in r.getMessage()]
    assert lr_lines == ["config execution.learning_rate = 0.02 (source: cli flag)"]


def test_config_file_with_only_learning_rate_keeps_cli_defaults_end_to_end(tmp_path):
    cfg = tmp_path / "f.json"
    cfg.write_text(json.dumps({"execution": {"learning_rate": 0.001}}))
    data = _small_npz(tmp_path / "x.npz")
    r = run_cli("-v", "train", "--config", str(cfg), "--train-data", str(data), "--N", "16",
                "--nepochs", "1", "--batch-size", "2", "--n-filters-scale", "1", "--learning-rate", "0.02",
                "--disable-checkpointing", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "(requested 'auto')" in r.stdout
    logged = r.stderr.count("config execution.learning_rate =")
    assert logged == 1 and "config execution.learning_rate = 0.02 (source: cli flag)" in r.stderr
    assert "config execution.enable_progress_bar = True (source: front_end:cli)" in r.stderr


def test_simulate_end_to_end(tmp_path):
    out = tmp_path / "sim" / "scan.npz"
    r = run_cli("simulate", "--output", str(out), "--N", "32", "--n-positions", "12", "--seed", "3",
                "--photons", "1e5")
    assert r.returncode == 0, r.stderr
    assert out.exists() and out.with_suffix(".png").exists()
    from ptycho_nb.data import load

    d = load(out)
    assert d.diffraction.shape == (12, 32, 32)
    r = run_cli("simulate", "--output", str(out), "--photons", "-1")
    assert r.returncode == 2 and "photons" in r.stderr and "Traceback" not in r.stderr
