"""Writes refine_reference.npz: the refinement's results on a small scan, as a pinned reference.

The file in the repository was written by the refinement before it became the ``ptycho_nb.refine``
package (commit 18af0d7, ``ptycho_nb.model.refine.refine``, CPU, one thread);
tests/test_refine_package.py checks that today's refinement reproduces it. Re-running this script
against today's code rewrites the reference with today's results (only do that on purpose).

    python tests/data/make_refine_reference.py [SOURCE_TREE]
"""

from __future__ import annotations

import pathlib
import sys

if len(sys.argv) > 1:  # another checkout's ptycho_nb, e.g. a git worktree of an older commit
    sys.path.insert(0, sys.argv[1])
    # the editable install's finder would serve modules that checkout lacks from this one
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]

import numpy as np
import torch

import ptycho_nb

try:
    from ptycho_nb.refine import refine
except ImportError:
    from ptycho_nb.model.refine import refine
from ptycho_nb.physics.probes import gaussian_guess

#: name → (probe: 'true' | 'guess' | 'modes', refine keywords)
CASES = {
    "default": ("true", dict(max_epochs=12, batch_size=8)),
    "momentum_holdout": ("true", dict(max_epochs=12, batch_size=8, momentum=0.85, holdout=0.2, patience=3)),
    "joint_guess": ("guess", dict(max_epochs=12, batch_size=8, refine_probe=True)),
    "joint_modes": ("modes", dict(max_epochs=8, batch_size=8, refine_probe=True)),
    "newton": ("true", dict(max_epochs=8, batch_size=8, poisson_step="newton")),
    "adam": ("true", dict(max_epochs=6, method="adam", step=0.02, batch_size=10, grow_batch=False)),
}


def reference_scan():
    return ptycho_nb.simulate(N=16, object_kind="lines", object_shape=(48, 48), n_positions=40,
                              step=4.0, photons_per_pattern=1e4, seed=3, jitter=0.4)


def probe_for(scan, kind: str) -> np.ndarray:
    if kind == "guess":
        return gaussian_guess(scan.probe)
    if kind == "modes":
        return np.stack([scan.probe, 0.3 * np.roll(scan.probe, 2, axis=0)]).astype(np.complex64)
    return scan.probe


def main() -> None:
    torch.set_num_threads(1)
    scan = reference_scan()
    flat = np.ones_like(scan.object)
    # the scan rides along: the reference pins the refinement, not the simulator
    out = {"scan/diffraction": scan.diffraction, "scan/xcoords": scan.xcoords,
           "scan/ycoords": scan.ycoords, "scan/probe": scan.probe, "scan/object_shape": np.asarray(flat.shape)}
    for name, (kind, kw) in CASES.items():
        r = refine(flat, scan.diffraction, scan.xcoords, scan.ycoords, probe_for(scan, kind), 1.0, **kw)
        out[f"{name}/object"] = r.object.numpy()
        out[f"{name}/probe"] = r.probe.numpy()
        out[f"{name}/deviance"] = np.asarray(r.deviance)
        out[f"{name}/epochs"] = np.asarray([r.epochs_run, r.best_epoch])
    path = pathlib.Path(__file__).with_name("refine_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes) with {ptycho_nb.__file__}")


if __name__ == "__main__":
    main()
