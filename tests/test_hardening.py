"""Hand cases for the hardening issue: one or more per root cause, each failing before its fix.

Real files, real h5py/torch/zipfile; failures are provoked with real inputs (a NaN object, a
negative detector pixel size, a file-size limit, a FIFO), never by patching those libraries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ptycho_nb
from ptycho_nb.atomic import atomic_files, new_file_mode
from ptycho_nb.config.canonical import InferenceConfig, ModelConfig, TrainingConfig
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.config.fields import ConfigError, config_fields
from ptycho_nb.config.files import read_config_file
from ptycho_nb.data import PtychoData, load, save
from ptycho_nb.data.grouping import group_neighbors
from ptycho_nb.model.archive import read_archive, write_archive
from ptycho_nb.model.weights import load_state_dict_strict
from ptycho_nb.workflows.demo import metrics_json, run_demo

TINY = dict(N=32, object_shape=(80, 80), n_positions=30, step=5.0)
FAST = dict(nepochs=1, batch_size=8, n_filters_scale=1)
ROOT = Path(__file__).resolve().parents[1]


def _listing(d: Path) -> list[str]:
    return sorted(os.listdir(d)) if d.exists() else []


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=1, **TINY)


@pytest.fixture(scope="module")
def trained(scan, tmp_path_factory):
    return ptycho_nb.train(scan, output_dir=tmp_path_factory.mktemp("train"), **FAST)


@pytest.fixture(scope="module")
def recon(trained, scan):
    return ptycho_nb.infer(trained, scan, refine_epochs=0)


def _small_archive(path: Path, **kw) -> Path:
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(3)}
    return write_archive(path, state_dict=state, configs={"model": {}}, params={},
                         scaling={"s": 1.0}, model_name="Toy", **kw)


def _rebuild(src: Path, dst: Path, replace: dict[str, bytes], *, manifest_edit=None,
             compress: dict[str, int] | None = None) -> Path:
    """Copy an archive, replacing members and re-checksumming them (a well-formed outside)."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members.update(replace)
    manifest = json.loads(members["manifest.json"])
    manifest["checksums"] = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()
                             if n != "manifest.json"}
    if manifest_edit is not None:
        manifest_edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in members.items():
            zf.writestr(n, b, compress_type=(compress or {}).get(n, zipfile.ZIP_DEFLATED))
    return dst


def _h5_bytes(datasets: dict[str, np.ndarray], attrs: dict[str, dict] | None = None) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        g = f.create_group("weights")
        for k, v in datasets.items():
            ds = g.create_dataset(k, data=v)
            for a, av in (attrs or {}).get(k, {}).items():
                ds.attrs[a] = av
    return buf.getvalue()


# ------------------------------------------------------------------ 1. whole or nothing
def test_reconstruction_save_failure_leaves_no_partial_set(recon, tmp_path):
    bad = dataclasses.replace(recon, object=recon.object.copy())
    bad.object[0, 0] = np.nan  # the product writer refuses it after the npz was written
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="object"):
        bad.save(out)
    assert _listing(out) == []


def test_reconstruction_save_overwrite_failure_keeps_old_set(recon, tmp_path):
    out = tmp_path / "out"
    paths = recon.save(out)
    before = {p.name: p.read_bytes() for p in paths.values()}
    bad = dataclasses.replace(recon, object=recon.object.copy())
    bad.object[0, 0] = np.inf
    with pytest.raises(ValueError):
        bad.save(out, overwrite=True)
    assert {p.name: p.read_bytes() for p in paths.values()} == before
    assert _listing(out) == sorted(before)
    recon.save(out, overwrite=True)  # and a good overwrite still works
    assert _listing(out) == sorted(before)


def test_ptychodus_save_leaves_no_orphan_product(scan, tmp_path):
    bad = PtychoData(scan.diffraction, scan.xcoords, scan.ycoords, scan.probe, scan.object,
                     metadata={"detector_pixel_size_m": -1.0})  # diffraction writer refuses it
    with pytest.raises(ValueError, match="detector_pixel_size_m"):
        save(bad, tmp_path / "product.h5", format="ptychodus")
    assert _listing(tmp_path) == []
    save(scan, tmp_path / "product.h5", format="ptychodus")
    assert _listing(tmp_path) == ["diffraction.h5", "product.h5"]


_FSIZE_SCRIPT = r"""
import resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import ptycho_nb
from ptycho_nb.data import save
scan = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=200, step=3.0, seed=0,
                          noise=None)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # a 20 kB "disk"
try:
    save(scan, sys.argv[1] + "/scan.npz")
except OSError as exc:
    print("ERR1", exc)
try:
    save(scan, sys.argv[1] + "/product.h5", format="ptychodus")
except OSError as exc:
    print("ERR2", exc)
"""


def test_disk_full_is_a_clear_error_naming_the_file(tmp_path):
    r = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(tmp_path)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert "ERR1" in r.stdout and "scan.npz: no space left" in r.stdout, r.stdout + r.stderr
    assert "ERR2" in r.stdout and "product.h5: no space left" in r.stdout, r.stdout + r.stderr
    assert _listing(tmp_path) == []  # neither a partial file nor a temporary one


# ------------------------------------------------------------------ 12. modes follow the umask
_UMASK_SCRIPT = r"""
import os, stat, sys, torch
os.umask(0o027)
from ptycho_nb.model.archive import write_archive
p = write_archive(sys.argv[1] + "/wts.h5.zip", state_dict={"w": torch.zeros(2)}, configs={},
                  params={}, scaling={}, model_name="Toy")
print(oct(stat.S_IMODE(os.stat(p).st_mode)))
"""


def test_new_archive_mode_follows_umask(tmp_path):
    r = subprocess.run([sys.executable, "-c", _UMASK_SCRIPT, str(tmp_path)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.stdout.strip() == "0o640", r.stdout + r.stderr


def test_overwrite_keeps_existing_mode(tmp_path):
    p = _small_archive(tmp_path / "wts.h5.zip")
    assert stat.S_IMODE(p.stat().st_mode) == new_file_mode()
    os.chmod(p, 0o644)
    _small_archive(p, overwrite=True)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    os.chmod(p, 0o600)
    _small_archive(p, overwrite=True)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_atomic_files_modes_and_refusal(tmp_path):
    (tmp_path / "b.txt").write_text("old")
    with pytest.raises(FileExistsError, match="b.txt"):
        with atomic_files({"a": tmp_path / "a.txt", "b": tmp_path / "b.txt"}) as t:
            raise AssertionError("must not be reached")  # pragma: no cover
    with atomic_files({"a": tmp_path / "a.txt", "b": tmp_path / "b.txt"}, overwrite=True) as t:
        t["a"].write_text("A")
        t["b"].write_text("B")
    assert (tmp_path / "a.txt").read_text() == "A" and (tmp_path / "b.txt").read_text() == "B"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == new_file_mode()
    assert _listing(tmp_path) == ["a.txt", "b.txt"]


# ------------------------------------------------------------------ 3. hang / memory
_FIFO_SCRIPT = r"""
import os, sys
from ptycho_nb.data import load
from ptycho_nb.model.archive import read_archive
p = sys.argv[1] + "/pipe.npz"
os.mkfifo(p)
for f in (load, read_archive):
    try:
        f(p)
    except ValueError as exc:
        print("REFUSED", exc)
"""


def test_fifo_is_refused_not_opened(tmp_path):
    r = subprocess.run([sys.executable, "-c", _FIFO_SCRIPT, str(tmp_path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.stdout.count("REFUSED") == 2 and "not a regular file" in r.stdout, r.stdout + r.stderr


def test_unbounded_n_groups_is_refused_at_once(scan):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_groups: 10000000 is more than the \d+ distinct"):
        group_neighbors(scan.xcoords, scan.ycoords, 2, n_groups=10**7)
    assert time.perf_counter() - t0 < 2.0


def test_zip_bomb_member_is_refused_before_decompressing(tmp_path):
    src = _small_archive(tmp_path / "a.zip")
    bomb = b'{"x": "' + b"0" * (40 * 2**20) + b'"}'  # 40 MiB that deflates to ~40 kB
    bad = _rebuild(src, tmp_path / "bomb.zip", {"configs.json": bomb})
    assert bad.stat().st_size < 2**20
    with pytest.raises(ValueError, match="configs.json.*declares .* more than"):
        read_archive(bad)
    # weights larger than the manifest's tensors allow
    big = _h5_bytes({"w": np.zeros((2, 3), np.float32), "n": np.array(3)},
                    ) + b"\0" * (8 * 2**20)
    bad = _rebuild(src, tmp_path / "bomb2.zip", {"wts.h5": big})
    with pytest.raises(ValueError, match="wts.h5.*more than"):
        read_archive(bad)


# ------------------------------------------------------------------ 4. finite floats
FLOAT_FIELDS = [(cls, f.name) for cls in (ModelConfig, TrainingConfig, InferenceConfig,
                                          PyTorchExecutionConfig)
                for f in config_fields(cls) if f.metadata["kind"] == "float"]


@pytest.mark.parametrize("cls,name", FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FLOAT_FIELDS])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e300, 10**400])
def test_every_float_field_refuses_non_finite_and_absurd(cls, name, value):
    with pytest.raises(ConfigError, match=name) as info:
        cls(**{name: value})
    assert info.value.fields == (name,)


def test_non_finite_training_loss_stops_and_writes_no_archive(scan, tmp_path):
    import lightning as L

    class Poison(L.Callback):  # a real NaN in a real weight, as a diverging run makes
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with torch.no_grad():
                self.param.fill_(math.nan)

    poison = Poison()
    for name in ("net.amp_head.out.bias", "log_intensity_scale"):  # NaN loss; NaN weight only
        poison.param = None
        class Pick(L.Callback):
            def on_fit_start(self, trainer, module, name=name):
                poison.param = dict(module.named_parameters())[name]

        with pytest.raises(FloatingPointError, match="no model archive was written"):
            ptycho_nb.train(scan, output_dir=tmp_path, callbacks=[Pick(), poison], **FAST)
        assert not (tmp_path / "wts.h5.zip").exists()


def test_archive_with_non_finite_weights_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"state_dict\['w'\].*NaN/inf"):
        write_archive(tmp_path / "x.zip", state_dict={"w": torch.tensor([1.0, math.inf])},
                      configs={}, params={}, scaling={}, model_name="Toy")
    assert not (tmp_path / "x.zip").exists()
    src = _small_archive(tmp_path / "a.zip")
    w = np.array([[0, 1, np.nan], [3, 4, 5]], np.float32)
    h5 = _h5_bytes({"w": w, "n": np.array(3)}, {"w": {"torch_dtype": "torch.float32"},
                                                "n": {"torch_dtype": "torch.int64"}})
    with pytest.raises(ValueError, match="weight 'w' holds 1 NaN/inf"):
        read_archive(_rebuild(src, tmp_path / "nan.zip", {"wts.h5": h5}))


# ------------------------------------------------------------------ 5. precision said as run
def test_precision_reports_what_runs_on_cpu():
    from ptycho_nb.engine.trainer import trainer_kwargs

    kw = trainer_kwargs(PyTorchExecutionConfig(accelerator="cpu", precision="16-mixed"))
    assert kw["precision"] == "bf16-mixed"
    with pytest.raises(ValueError, match="precision='16-true' cannot run on the CPU"):
        trainer_kwargs(PyTorchExecutionConfig(accelerator="cpu", precision="16-true"))


def test_unavailable_accelerator_names_the_field():
    from ptycho_nb.engine.trainer import build_trainer

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="accelerator='gpu'.*cannot run on this machine"):
        build_trainer(PyTorchExecutionConfig(accelerator="gpu"), mode="infer")


# ------------------------------------------------------------------ 7. dtype families
@pytest.mark.parametrize("field,value,match", [
    ("xcoords", lambda s: s.xcoords > 40, "xcoords: has dtype bool"),
    ("ycoords", lambda s: np.array(s.ycoords, dtype="datetime64[ns]"), "ycoords: has dtype datetime64"),
    ("scan_index", lambda s: np.full(s.n_patterns, np.nan), "scan_index: holds NaN"),
    ("scan_index", lambda s: np.full(s.n_patterns, 2.5), "non-integer"),
    ("diffraction", lambda s: s.diffraction.astype(object), "diffraction: has dtype object"),
    ("probe", lambda s: s.probe.astype(bool), "probe: has dtype bool"),
])
def test_container_refuses_wrong_dtype_family(scan, field, value, match):
    kw = dict(diffraction=scan.diffraction, xcoords=scan.xcoords, ycoords=scan.ycoords,
              probe=scan.probe)
    kw[field] = value(scan)
    with pytest.raises(ValueError, match=match):
        PtychoData(**kw)


def test_npz_bool_coordinates_named_by_file_and_key(scan, tmp_path):
    p = tmp_path / "s.npz"
    np.savez(p, diffraction=scan.diffraction, probeGuess=scan.probe, xcoords=scan.xcoords > 40,
             ycoords=scan.ycoords)
    with pytest.raises(ValueError, match=r"s\.npz.*xcoords.*bool"):
        load(p)


def test_ptychodus_fractional_indexes_refused(scan, tmp_path):
    save(scan, tmp_path / "product.h5", format="ptychodus")
    with h5py.File(tmp_path / "product.h5", "r+") as f:
        idx = f["probe_position_indexes"][()].astype(np.float64)
        del f["probe_position_indexes"]
        f["probe_position_indexes"] = idx + 0.5
    with pytest.raises(ValueError, match="probe_position_indexes.*integer"):
        load(tmp_path / "product.h5")


@pytest.mark.parametrize("version", [0, -1, True, 0.5, "1"])
def test_hdf5_format_version_must_be_a_known_integer(scan, tmp_path, version):
    p = save(scan, tmp_path / "s.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = version
    with pytest.raises(ValueError, match="format_version"):
        load(p)


def test_int_weights_refused_for_float_parameters(tmp_path):
    m = torch.nn.Linear(2, 2)
    state = {k: v.to(torch.int32) if k == "weight" else v for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=r"state_dict\['weight'\]: expected a float tensor"):
        load_state_dict_strict(m, state)


def test_archive_bool_format_version_refused(tmp_path):
    src = _small_archive(tmp_path / "a.zip")

    def edit(m):
        m["format_version"] = True

    with pytest.raises(ValueError, match="format_version True"):
        read_archive(_rebuild(src, tmp_path / "b.zip", {}, manifest_edit=edit))


# ------------------------------------------------------------------ 9. unclear errors
@pytest.mark.parametrize("kind", ["string", "compound", "vlen"])
def test_hdf5_non_numeric_dtypes_named(scan, tmp_path, kind):
    p = save(scan, tmp_path / "s.h5")
    with h5py.File(p, "r+") as f:
        del f["xcoords"]
        n = scan.n_patterns
        if kind == "string":
            f["xcoords"] = np.array([b"1.0"] * n)
        elif kind == "compound":
            f["xcoords"] = np.zeros(n, dtype=[("a", "f8"), ("b", "f8")])
        else:
            ds = f.create_dataset("xcoords", (n,), dtype=h5py.vlen_dtype(np.float64))
            for i in range(n):
                ds[i] = np.arange(2.0)
        f["xcoords"].attrs["units"] = "pixel"
    with pytest.raises(ValueError, match=r"s\.h5: dataset '/xcoords' has a"):
        load(p)


@pytest.mark.parametrize("link", ["soft", "external"])
def test_hdf5_links_refused(scan, tmp_path, link):
    p = save(scan, tmp_path / "s.h5")
    other = save(scan, tmp_path / "other.h5")
    with h5py.File(p, "r+") as f:
        del f["probe"]
        f["probe"] = (h5py.SoftLink("/nowhere") if link == "soft"
                      else h5py.ExternalLink(str(other), "/probe"))
    with pytest.raises(ValueError, match="'/probe' is an HDF5 (SoftLink|ExternalLink)"):
        load(p)


def test_absurd_declared_dataset_size_refused(scan, tmp_path):
    p = save(scan, tmp_path / "s.h5")
    with h5py.File(p, "r+") as f:
        del f["diffraction"]
        f.create_dataset("diffraction", shape=(2**20, 1024, 1024), dtype="f4", chunks=(1, 32, 32))
        f["diffraction"].attrs["units"] = "sqrt(photons)"
    assert p.stat().st_size < 2**20
    with pytest.raises(ValueError, match="declares shape .* GiB"):
        load(p)


def test_positions_far_apart_refused(scan):
    x = scan.xcoords.copy()
    x[0] = 1e6
    with pytest.raises(ValueError, match="xcoords: positions span"):
        PtychoData(scan.diffraction, x, scan.ycoords, scan.probe)


def test_zip_member_encrypted_or_unknown_compression(tmp_path):
    src = _small_archive(tmp_path / "a.zip")
    bz = _rebuild(src, tmp_path / "bz.zip", {}, compress={"configs.json": zipfile.ZIP_BZIP2})
    with pytest.raises(ValueError, match="configs.json.*compression method 12"):
        read_archive(bz)
    raw = bytearray(src.read_bytes())
    i = raw.index(b"PK\x01\x02")  # first central-directory entry: set its 'encrypted' flag
    raw[i + 8] |= 0x1
    enc = tmp_path / "enc.zip"
    enc.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is encrypted"):
        read_archive(enc)


def test_malformed_but_checksummed_members(tmp_path, trained):
    src = _small_archive(tmp_path / "a.zip")

    def edit(m):
        m["weights"] = ["w", "n"]

    with pytest.raises(ValueError, match="manifest weight entry 'w' is malformed"):
        read_archive(_rebuild(src, tmp_path / "b.zip", {}, manifest_edit=edit))
    good = trained.archive_path
    with zipfile.ZipFile(good) as zf:
        extra = json.loads(zf.read("extra.json"))
    extra["network"] = {"no_such_argument": 1}
    bad = _rebuild(good, tmp_path / "c.zip", {"extra.json": json.dumps(extra).encode()})
    with pytest.raises(ValueError, match="does not describe a loadable model"):
        ptycho_nb.load_model(bad)


# ------------------------------------------------------------------ 10. misleading messages
def test_lightning_checkpoint_is_named_and_convertible(trained, tmp_path, scan):
    ckpt = trained.best_checkpoint
    with pytest.raises(ValueError, match="PyTorch/Lightning checkpoint") as info:
        read_archive(ckpt)
    assert "TensorFlow" not in str(info.value) and "model_from_checkpoint" in str(info.value)
    from ptycho_nb.model.io import model_from_checkpoint

    p = ptycho_nb.save_model(model_from_checkpoint(ckpt), tmp_path / "wts.h5.zip")
    loaded = ptycho_nb.load_model(p)
    for k, v in trained.module.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_load_messages(tmp_path):
    with pytest.raises(ValueError, match="path is empty"):
        load("")
    t = tmp_path / "notes.npz"
    t.write_text("hello, this is text\n")
    with pytest.raises(ValueError, match="holds text") as info:
        load(t)
    assert "pickled" not in str(info.value)


def test_config_file_messages(tmp_path):
    p = tmp_path / "c.json"
    p.write_bytes(b'{"nepochs": 3, "x": "\xff"}')
    with pytest.raises(ConfigError, match="c.json: is not UTF-8"):
        read_config_file(p)
    p.write_text('{"execution": {"learning_rate": 0.01}, "nepochs": 3}')
    with pytest.raises(ConfigError, match="mixes sections .* top-level entries .*nepochs"):
        read_config_file(p)
    p.write_text('{"nepochs": 3, "learning_rate": 0.01, "n_groups": 5}')
    assert read_config_file(p) == {"training": {"nepochs": 3, "n_groups": 5},
                                   "execution": {"learning_rate": 0.01},
                                   "inference": {"n_groups": 5}}
    p.write_text('{"nepochs": 0}')
    with pytest.raises(ConfigError, match=r"config file .*c\.json: TrainingConfig\.nepochs"):
        TrainingConfig.from_json(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match=r"c\.json is not valid JSON"):
        TrainingConfig.from_json(p)
    p.write_text("[" * 200000 + "]" * 200000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_config_file(p)


def test_save_model_to_existing_extensionless_file(trained, tmp_path):
    p = tmp_path / "mymodel"
    p.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        ptycho_nb.save_model(trained, p)
    out = ptycho_nb.save_model(trained, p, overwrite=True)
    assert out == p and zipfile.is_zipfile(p)
    ptycho_nb.load_model(p)


# ------------------------------------------------------------------ 2. demo checks first
def test_demo_refuses_existing_output_before_any_work(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    t0 = time.perf_counter()
    with pytest.raises(FileExistsError, match="metrics.json.*--output-dir"):
        run_demo(tmp_path, quick=True)
    assert time.perf_counter() - t0 < 2.0
    assert _listing(tmp_path) == ["metrics.json"]


# ------------------------------------------------------------------ metrics.json is JSON
def test_metrics_json_writes_null_for_non_finite():
    text = metrics_json({"metrics": {"ssim": math.nan, "psnr": math.inf, "ok": 1.5}, "n": 2})

    def refuse(name):
        raise AssertionError(f"non-JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)
    assert data["metrics"] == {"ssim": None, "psnr": None, "ok": 1.5}
    assert "null" in data["note"]
    assert "note" not in json.loads(metrics_json({"a": 1.0}))


# ------------------------------------------------------------------ 9. the CLI: one line, exit code
def _cli(argv, capsys):
    from ptycho_nb.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_cli_recursion_and_value_errors_are_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200000 + "]" * 200000)
    rc, err = _cli(["train", "--config", str(deep), "--train-data", str(deep)], capsys)
    assert rc == 2 and "nested too deeply" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


_PERM_SCRIPT = r"""
import os, sys
from ptycho_nb.cli import main
import ptycho_nb.workflows.payload, ptycho_nb.workflows.training  # before dropping privileges
os.setgid(65534); os.setuid(65534)
sys.exit(main(["train", "--config", sys.argv[1], "--train-data", sys.argv[1]]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_cli_permission_error_is_one_line(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.chmod(secret, 0o000)
    os.chmod(tmp_path, 0o755)
    env = {**os.environ, "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    r = subprocess.run([sys.executable, "-c", _PERM_SCRIPT, str(secret)], capture_output=True,
                       text=True, timeout=300, cwd="/", env=env)
    if "Traceback" in r.stderr and "setuid" in r.stderr:
        pytest.skip("cannot drop privileges here")
    assert r.returncode == 1, r.stderr
    assert "PermissionError" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_interrupted_training_saves_and_exits_130(scan, tmp_path):
    import signal

    data = save(scan, tmp_path / "scan.npz")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptycho_nb.cli", "train", "--train-data", str(data),
         "--output-dir", str(out), "--nepochs", "100000", "--n-filters-scale", "1",
         "--batch-size", "8", "--quiet", "--accelerator", "cpu"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list((out / "checkpoints").glob("*.ckpt")) and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stdout and (out / "wts.h5.zip").exists()
    assert "Traceback" not in stderr


_EARLY_SIGINT = r"""
import os, signal, sys, threading
import ptycho_nb.cli as cli
main_id = threading.main_thread().ident


def ctrl_c():
    # Ctrl+C as soon as the command runs: long before training starts (imports, data loading)
    while True:
        f = sys._current_frames().get(main_id)
        while f is not None and f.f_code.co_name != "_main":
            f = f.f_back
        if f is not None:
            os.kill(os.getpid(), signal.SIGINT)
            return


threading.Thread(target=ctrl_c, daemon=True).start()
sys.exit(cli.main(["train", "--train-data", sys.argv[1], "--output-dir", sys.argv[2],
                   "--nepochs", "1", "--quiet", "--accelerator", "cpu"]))
"""


def test_cli_sigint_before_training_says_nothing_saved(scan, tmp_path):
    data = save(scan, tmp_path / "scan.npz")
    r = subprocess.run([sys.executable, "-c", _EARLY_SIGINT, str(data), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 130, r.stdout + r.stderr
    assert "interrupted (Ctrl+C); nothing was saved" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "wts.h5.zip").exists()


def test_archive_with_non_finite_scaling_is_refused(trained, tmp_path):
    good = trained.archive_path
    with zipfile.ZipFile(good) as zf:
        scaling = json.loads(zf.read("scaling.json"))
    key = next(iter(scaling))
    scaling[key] = math.nan
    bad = _rebuild(good, tmp_path / "s.zip", {"scaling.json": json.dumps(scaling).encode()})
    with pytest.raises(ValueError, match=rf"scaling.json\['{key}'\] is nan"):
        ptycho_nb.load_model(bad)


def test_in_memory_data_with_a_data_file_is_refused(tmp_path):
    """Issue 14 item 8: the file would be recorded as the training data while the in-memory scan trains."""
    scan = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=20, step=6.0, seed=1)
    path = ptycho_nb.data.save(scan, tmp_path / "other.npz")
    with pytest.raises(ValueError, match="train_data_file"):
        ptycho_nb.train(scan, train_data_file=path, output_dir=tmp_path / "out", nepochs=1)
    with pytest.raises(ValueError, match="test_data_file"):
        ptycho_nb.train(scan, test_data=scan, test_data_file=path, output_dir=tmp_path / "out", nepochs=1)


# ------------------------------------------------------------------------------------------------
# issue 14, item 2: `ptycho-nb simulate` checks both of its outputs before any work
# ------------------------------------------------------------------------------------------------
def test_simulate_refuses_an_existing_png_beside_its_output(tmp_path, capsys):
    from ptycho_nb import cli

    out = tmp_path / "scan.npz"
    png = tmp_path / "scan.png"
    png.write_bytes(b"the user's picture")
    argv = ["simulate", "--output", str(out), "--N", "32", "--n-positions", "12", "--seed", "3"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "scan.png" in err and "--overwrite" in err and "Traceback" not in err
    # nothing written, the picture kept
    assert png.read_bytes() == b"the user's picture" and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.png"]
    # --overwrite replaces both, together
    assert cli.main(argv + ["--overwrite"]) == 0
    assert out.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npz", "scan.png"]


# ------------------------------------------------------------------------------------------------
# issue 14, item 11: the CLI takes N from the data, as the API does
# ------------------------------------------------------------------------------------------------
def test_cli_takes_n_from_the_data(tmp_path, capsys):
    from ptycho_nb import cli
    from ptycho_nb.model.io import load_model

    scan = tmp_path / "s32.npz"
    assert cli.main(["simulate", "--output", str(scan), "--N", "32", "--n-positions", "40",
                     "--seed", "1"]) == 0
    # no --N typed: a valid 32x32 scan trains, infers and reconstructs
    assert cli.main(["train", "--train-data", str(scan), "--output-dir", str(tmp_path / "run"),
                     "--nepochs", "1", "--batch-size", "8", "--n-filters-scale", "1", "--quiet"]) == 0
    model = load_model(tmp_path / "run" / "wts.h5.zip")
    assert model.model_config.N == 32
    assert cli.main(["infer", "--model-path", str(tmp_path / "run" / "wts.h5.zip"), "--test-data",
                     str(scan), "--output-dir", str(tmp_path / "inf"), "--quiet"]) == 0
    capsys.readouterr()
    # an N typed against the data is refused by name
    assert cli.main(["train", "--train-data", str(scan), "--output-dir", str(tmp_path / "run2"),
                     "--N", "64", "--nepochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "N" in err and "32" in err and "64" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# issue 14, item 9: values inside a rule that failed downstream; wrong argument types
# ------------------------------------------------------------------------------------------------
def test_seed_beyond_32_bits_is_refused_by_name():
    with pytest.raises(ValueError, match=r"TrainingConfig\.seed=4294967296 .*4294967295"):
        TrainingConfig(seed=2**32)
    assert TrainingConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_validation_fraction_leaving_no_training_samples(scan, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"validation_fraction=0\.99 leaves no training samples"):
        ptycho_nb.train(scan, output_dir=out, validation_fraction=0.99, **FAST)
    assert _listing(out) == []


@pytest.mark.parametrize("call, needle", [
    (lambda s, m: ptycho_nb.train(5, **FAST), r"train_data: expected a PtychoData .* got int"),
    (lambda s, m: ptycho_nb.train({"diffraction": 1}, **FAST), r"train_data: expected .* got dict"),
    (lambda s, m: ptycho_nb.train(s, test_data=[1, 2], **FAST), r"test_data: expected .* got list"),
    (lambda s, m: ptycho_nb.infer(5, s), r"model: expected a trained model .* got int"),
    (lambda s, m: ptycho_nb.infer(m, np.zeros((3, 32, 32))), r"test_data: expected .* got ndarray"),
    (lambda s, m: ptycho_nb.reconstruct(s, model=object()), r"model: expected .* got object"),
    (lambda s, m: ptycho_nb.reconstruct(3.0), r"test_data: expected .* got float"),
])
def test_wrong_argument_types_are_named(scan, trained, call, needle):
    with pytest.raises(TypeError, match=needle):
        call(scan, trained)


def test_inference_reports_the_precision_that_ran(trained, scan):
    # '16-mixed' on a CPU runs as bf16-mixed: the result says what ran, not what was asked
    rec = ptycho_nb.infer(trained, scan, refine_epochs=0, precision="16-mixed", accelerator="cpu")
    assert rec.run.precision == "bf16-mixed"
    assert ptycho_nb.infer(trained, scan, refine_epochs=0).run.precision == "32-true"


def test_interrupt_while_a_checkpoint_is_written_keeps_the_model_so_far(scan, tmp_path):
    # Ctrl+C can land while Lightning writes the new best checkpoint: its path is already the
    # "best" but the file is not there. The run must still end as an interrupted run with the
    # model so far (the weights in memory), not fail on the missing file (seen in CI).
    import lightning as L

    class CtrlCWhileSaving(L.Callback):
        def on_save_checkpoint(self, trainer, module, checkpoint):
            if trainer.current_epoch >= 1:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    res = ptycho_nb.train(scan, output_dir=out, nepochs=5, batch_size=8, n_filters_scale=1,
                          enable_checkpointing=True, callbacks=[CtrlCWhileSaving()])
    assert res.interrupted and res.best_checkpoint is None
    assert res.archive_path is not None and res.archive_path.exists()
    ptycho_nb.infer(res.archive_path, scan, refine_epochs=0)  # the archive is whole and usable
