"""binder/ (repo2docker) files: consistent with pyproject.toml, and they install a working package.

The install test builds a real fresh virtual environment (no system site-packages): the local CPU
torch wheel first (PyTorch's CPU index is unreachable here), then binder/requirements.txt without
its index line, then binder/postBuild itself, run on a copy of the package sources.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _requirements() -> dict[str, Requirement]:
    reqs = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        r = Requirement(line)
        reqs[r.name.lower()] = r
    return reqs


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_runtime_is_python_311():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_requirements_match_pyproject_dependencies():
    reqs = _requirements()
    project = _pyproject()["project"]
    deps = {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}
    missing = sorted(set(deps) - set(reqs))
    assert not missing, f"binder/requirements.txt lacks runtime dependencies {missing}"
    for name, dep in deps.items():
        pinned = reqs[name]
        if name == "torch":
            # CPU torch through PyTorch's CPU index: an exact "+cpu" pin our specifier accepts.
            text = (BINDER / "requirements.txt").read_text()
            assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
            version = str(pinned.specifier).lstrip("=")
            assert version.endswith("+cpu"), pinned
            assert dep.specifier.contains(version.split("+")[0]), (dep, pinned)
        else:
            assert pinned.specifier == dep.specifier, (
                f"{name}: binder pins {pinned.specifier}, pyproject says {dep.specifier}")
    # Extra lines are only the notebook front end (the `notebook` extra), with its specifiers.
    notebook = {Requirement(d).name.lower(): Requirement(d)
                for d in project["optional-dependencies"]["notebook"]}
    for name in set(reqs) - set(deps):
        assert name in notebook, f"binder/requirements.txt has {name}, not a dependency"
        assert reqs[name].specifier == notebook[name].specifier


def test_postbuild_installs_the_package():
    text = (BINDER / "postBuild").read_text()
    assert text.startswith("#!/bin/bash")
    assert re.search(r"pip install .*(-e \.|\s\.)\s*$", text, re.M)
    assert (BINDER / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_fresh_venv_install_works(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    reqs = tmp_path / "requirements.txt"
    # Drop the index line (unreachable here) and the +cpu pin (satisfied by the local CPU wheel).
    kept = [line for line in (BINDER / "requirements.txt").read_text().splitlines()
            if not line.startswith("--extra-index-url") and not line.startswith("torch==")]
    reqs.write_text("\n".join(kept) + "\n")
    subprocess.run(pip + ["-r", str(reqs)], check=True)
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "ptycho_nb", repo / "ptycho_nb",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(BINDER, repo / "binder")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["bash", "binder/postBuild"], cwd=repo, check=True, env={**env})
    out = subprocess.run(
        [str(py), "-c", "import ptycho_nb, torch; d = ptycho_nb.simulate(n_positions=10, N=32, "
         "object_shape=(64, 64)); print(torch.__version__, d.n_patterns)"],
        cwd=tmp_path, check=True, capture_output=True, text=True)
    version, n = out.stdout.split()[-2:]
    assert version.startswith("2.13.0") and n == "10"
