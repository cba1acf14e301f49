"""The old homes of the model files still import, warn that they moved, and forward the very
objects of the new homes (scripts written against them keep working)."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# old module → the modules that now hold its names
MOVED = {
    "ptycho_nb.workflows.archive": ("ptycho_nb.model.archive", "ptycho_nb.model.weights"),
    "ptycho_nb.workflows.model_io": ("ptycho_nb.model.io", "ptycho_nb.model.catalog",
                                     "ptycho_nb.model.archive"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_forwards_the_same_objects(old):
    sys.modules.pop(old, None)  # a module warns when it is executed, i.e. on its first import
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.") + " is deprecated"):
        forwarder = importlib.import_module(old)
    homes = [importlib.import_module(m) for m in MOVED[old]]
    assert forwarder.__all__
    for name in forwarder.__all__:
        owners = [h for h in homes if hasattr(h, name)]
        assert owners, f"{old}.{name}: in none of {MOVED[old]}"
        assert getattr(forwarder, name) is getattr(owners[0], name), name


def test_the_package_imports_no_old_path():
    # a fresh interpreter: this one's modules are shared with the other tests
    code = ("import sys, ptycho_nb, ptycho_nb.cli, ptycho_nb.notebook, ptycho_nb.pretrained; "
            f"print(sorted(set({sorted(MOVED)!r}) & set(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
