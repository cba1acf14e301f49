"""atomic_path: all-or-nothing writes, no silent overwrite."""

import os

import pytest

from ptycho_nb.atomic import atomic_path


def _listing(d):
    return sorted(os.listdir(d))


def test_write_creates_file_and_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"hello")
    assert target.read_bytes() == b"hello"
    assert _listing(target.parent) == ["out.bin"]


def test_failing_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["out.bin"]


def test_failing_new_write_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyError("x")
    assert _listing(tmp_path) == []


def test_refuses_overwrite_naming_path(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="out.bin"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
    assert target.read_bytes() == b"old"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["out.bin"]


def test_file_appearing_during_write_is_not_clobbered(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(FileExistsError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs"
    assert _listing(tmp_path) == ["out.bin"]
