"""Tests of the model archive (spec §6): round trip, atomicity and refusal of bad input."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ptycho_nb.model import archive as A
from ptycho_nb.model import weights as W


class TinyNet(torch.nn.Module):
    """Conv2d + Linear, a trainable complex probe and a buffer: the kinds of state we must keep."""

    def __init__(self, n: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.fc = torch.nn.Linear(2 * n * n, 3)
        gen = torch.Generator().manual_seed(1)
        self.probe = torch.nn.Parameter(
            torch.randn(n, n, generator=gen, dtype=torch.complex64))
        self.register_buffer("scale", torch.tensor([2.5]))
        self.register_buffer("steps", torch.tensor(7, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x * self.scale) * self.probe.abs()
        return self.fc(y.flatten(1))


def _write(path: Path, model: torch.nn.Module, **kw) -> Path:
    args = dict(state_dict=model.state_dict(),
                configs={"model": {"N": 4, "gridsize": 1}, "training": {"lr": 1e-3}},
                params={"N": 4, "nphotons": np.float64(1e6), "offsets": (1, 2)},
                scaling={"intensity_scale": 3.5}, model_name="tiny")
    args.update(kw)
    return A.write_archive(path, **args)


def _rebuild(src: Path, dst: Path, change: dict[str, bytes | None] | None = None,
             add: dict[str, bytes] | None = None) -> None:
    """Copy the zip ``src`` to ``dst`` replacing (bytes) or dropping (None) some members."""
    change = change or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    zout.writestr(info.filename, change[info.filename])
            else:
                zout.writestr(info.filename, zin.read(info.filename))
        for name, data in (add or {}).items():
            zout.writestr(name, data)


@pytest.fixture()
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


def test_round_trip_bit_identical(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model, extra={"note": "hi"})
    arc = A.read_archive(path)
    sd = model.state_dict()
    assert list(arc.state_dict) == list(sd)
    for k, v in sd.items():
        got = arc.state_dict[k]
        assert got.dtype == v.dtype and got.shape == v.shape, k
        assert got.numpy().tobytes() == v.numpy().tobytes(), k
    assert arc.state_dict["probe"].dtype == torch.complex64
    assert arc.manifest["format"] == "ptycho_nb-model" and arc.manifest["backend"] == "pytorch"
    assert arc.manifest["format_version"] == 1 and arc.manifest["model_name"] == "tiny"
    assert arc.configs["model"]["N"] == 4 and arc.params["offsets"] == [1, 2]
    assert arc.params["nphotons"] == 1e6 and arc.scaling == {"intensity_scale": 3.5}
    assert arc.extra == {"note": "hi"}
    other = W.load_state_dict_strict(TinyNet(), arc.state_dict)
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(model(x), other(x))


def test_refuses_overwrite_and_overwrites_when_asked(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    with pytest.raises(FileExistsError):
        _write(path, model)
    _write(path, model, model_name="second", overwrite=True)
    assert A.read_archive(path).manifest["model_name"] == "second"


def test_atomic_write_failure_leaves_old_file(tmp_path: Path, model: TinyNet,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    fresh = tmp_path / "new.h5.zip"
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(OSError, match="simulated"):
        _write(fresh, model)
    assert not fresh.exists()
    monkeypatch.undo()
    old = _write(tmp_path / "wts.h5.zip", model)
    before = old.read_bytes()
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(OSError, match="simulated"):
        _write(old, model, overwrite=True)
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wts.h5.zip"]  # no temp left behind


def test_truncated_archive(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.zip.*not a valid zip"):
        A.read_archive(cut)


def test_damaged_version_field_is_a_corrupt_archive(tmp_path: Path, model: TinyNet) -> None:
    """A flipped "version needed to extract" in the central directory makes zipfile raise
    NotImplementedError (an unknown zip feature): the reader names it a corrupt file instead."""
    data = bytearray(_write(tmp_path / "wts.h5.zip", model).read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[at + 6:at + 8] = (99).to_bytes(2, "little")  # version needed: 9.9
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.zip.*not a valid zip"):
        A.read_archive(bad)


def test_tampered_member(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    with zipfile.ZipFile(path) as z:
        blob = bytearray(z.read("wts.h5"))
    blob[-20] ^= 0xFF
    bad = tmp_path / "bad.zip"
    _rebuild(path, bad, {"wts.h5": bytes(blob)})
    with pytest.raises(ValueError, match=r"'wts\.h5'.*sha256"):
        A.read_archive(bad)


def test_path_escaping_entry(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    bad = tmp_path / "bad.zip"
    _rebuild(path, bad, add={"../evil.json": b"{}"})
    with pytest.raises(ValueError, match=r"\.\./evil\.json"):
        A.read_archive(bad, extract_to=tmp_path / "out")
    assert not (tmp_path / "evil.json").exists()
    for name in ("/abs.json", "dir\\x.json"):
        bad2 = tmp_path / "bad2.zip"
        _rebuild(path, bad2, add={name: b"{}"})
        with pytest.raises(ValueError, match="unsafe"):
            A.read_archive(bad2)


def test_extract_writes_members(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    A.read_archive(path, extract_to=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["model_name"] == "tiny"
    assert (tmp_path / "out" / "wts.h5").is_file()


def test_missing_member(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    bad = tmp_path / "bad.zip"
    _rebuild(path, bad, {"scaling.json": None})
    with pytest.raises(ValueError, match=r"'scaling\.json' is missing"):
        A.read_archive(bad)


def test_foreign_tf_archive_is_never_unpickled(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tf = tmp_path / "wts.h5.zip"
    with zipfile.ZipFile(tf, "w") as z:
        z.writestr("manifest.dill", pickle.dumps({"models": ["autoencoder"]}))
        z.writestr("autoencoder/params.dill", pickle.dumps({"N": 64}))
        z.writestr("autoencoder/model.keras", b"PK-not-really")

    def forbidden(*args, **kwargs):
        raise AssertionError("read_archive must never unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(ValueError, match="TensorFlow/PtychoPINN.*will not unpickle"):
        A.read_archive(tf)
    # a pickled manifest.json is refused the same way
    tf2 = tmp_path / "pickled_manifest.zip"
    with zipfile.ZipFile(tf2, "w") as z:
        z.writestr("manifest.json", pickle.dumps({"backend": "tensorflow"}, protocol=4))
    with pytest.raises(ValueError, match="another backend"):
        A.read_archive(tf2)


def test_manifest_version_and_backend_checked(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    with zipfile.ZipFile(path) as z:
        man = json.loads(z.read("manifest.json"))
    for key, value, pattern in (("format_version", 2, "format_version"),
                                ("backend", "tensorflow", "another backend"),
                                ("format", "other", "format")):
        bad = tmp_path / f"bad_{key}.zip"
        _rebuild(path, bad, {"manifest.json": json.dumps({**man, key: value}).encode()})
        with pytest.raises(ValueError, match=pattern):
            A.read_archive(bad)


def test_manifest_shape_mismatch_names_key(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    with zipfile.ZipFile(path) as z:
        man = json.loads(z.read("manifest.json"))
    for entry in man["weights"]:
        if entry["name"] == "fc.weight":
            entry["shape"] = [3, 99]
    bad = tmp_path / "bad.zip"
    _rebuild(path, bad, {"manifest.json": json.dumps(man).encode()})
    with pytest.raises(ValueError, match=r"fc\.weight"):
        A.read_archive(bad)


def test_load_strict_shape_mismatch_names_key(tmp_path: Path, model: TinyNet) -> None:
    arc = A.read_archive(_write(tmp_path / "wts.h5.zip", model))
    sd = dict(arc.state_dict)
    sd["fc.weight"] = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r"fc\.weight.*expected shape \(3, 32\).*found \(3, 5\)"):
        W.load_state_dict_strict(TinyNet(), sd)
    with pytest.raises(ValueError, match=r"probe.*expected shape \(3, 3\).*found \(4, 4\)"):
        W.load_state_dict_strict(TinyNet(n=3), arc.state_dict)
    sd = dict(arc.state_dict)
    sd.pop("scale")
    with pytest.raises(ValueError, match="missing.*scale"):
        W.load_state_dict_strict(TinyNet(), sd)


def test_load_checkpoint_weights(tmp_path: Path, model: TinyNet) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, good)
    ck = W.load_checkpoint_weights(good)
    assert ck["epoch"] == 3 and torch.equal(ck["state_dict"]["probe"], model.probe.detach())
    bad = tmp_path / "bad.ckpt"
    torch.save({"obj": io.StringIO("custom object")}, bad)
    with pytest.raises(ValueError, match=r"bad\.ckpt.*weights-only"):
        W.load_checkpoint_weights(bad)


def test_round_trip_other_dtypes(tmp_path: Path) -> None:
    sd = {"bf": torch.randn(3, 2).to(torch.bfloat16), "flag": torch.tensor([True, False]),
          "half": torch.randn(2).half(), "z128": torch.randn(2, 2, dtype=torch.complex128),
          "scalar": torch.tensor(1.5)}
    path = A.write_archive(tmp_path / "w.zip", state_dict=sd, configs={}, params={}, scaling={},
                           model_name="dtypes")
    got = A.read_archive(path).state_dict
    for k, v in sd.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].view(-1).view(torch.uint8).numpy().tobytes() == \
            v.view(-1).view(torch.uint8).numpy().tobytes(), k


def test_tampered_json_member(tmp_path: Path, model: TinyNet) -> None:
    path = _write(tmp_path / "wts.h5.zip", model)
    bad = tmp_path / "bad.zip"
    _rebuild(path, bad, {"params.json": b'{"N": 128}'})
    with pytest.raises(ValueError, match=r"'params\.json'.*sha256"):
        A.read_archive(bad)
