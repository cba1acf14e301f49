"""Subprocess script that runs ptychi (``python .../ptycho_nb/_ptychi_worker.py IN.npz OUT.npz``).

Run as a plain script, never imported through the package (which would import lightning: seconds
of start-up for nothing). Runs in its own interpreter because ptychi changes torch's global
default device, dtype and random seeds when it builds a task. Imports nothing from ptycho_nb (so the parent's package state
never matters) and applies the torchvision shim first (see ``_torchvision_compat.py``, imported
as a sibling script module): PyPI's torchvision is a CUDA build whose compiled operators cannot
load beside a CPU torch.

Input ``.npz`` (ptychi's conventions, prepared by :func:`ptycho_nb.iterative.export_for_ptychi`):
``counts`` (M, N, N) float32 intensities, DC-centred; ``probe`` (1, K, N, N) complex64 for the
unnormalised FFT; ``pos_y``, ``pos_x`` (M,) probe-window centres in object pixels relative to
``origin`` (row, col); ``object`` (1, H, W) complex64 initial guess; ``options_json``.
Output ``.npz``: ``object`` (H, W), ``probe``, ``seconds``, ``loss`` and, for the forward check,
``intensities`` (M, N, N) predicted by ptychi's forward model (DC-centred).
"""

from __future__ import annotations

import json
import sys
import time

# Run as a script, this file's folder is sys.path[0]: the shim module needs only torch.
from _torchvision_compat import apply_torchvision_shim




def _options(api, algorithm: str, opts: dict, inp) -> object:
    import numpy as np
    import torch

    algorithm = algorithm.upper()
    if algorithm == "LSQML":
        options = api.LSQMLOptions()
        options.reconstructor_options.noise_model = (
            api.NoiseModels.POISSON if opts.get("noise_model", "gaussian") == "poisson"
            else api.NoiseModels.GAUSSIAN)
    elif algorithm == "EPIE":
        options = api.EPIEOptions()
    else:
        raise ValueError(f"algorithm: expected 'LSQML' or 'EPIE', got {algorithm!r}")
    options.data_options.data = torch.from_numpy(inp["counts"])
    options.data_options.fft_shift = True  # our patterns are DC-centred
    options.object_options.initial_guess = torch.from_numpy(inp["object"])
    options.object_options.pixel_size_m = 1.0
    options.object_options.optimizable = True
    options.object_options.optimizer = api.Optimizers.SGD
    options.object_options.step_size = float(opts.get("object_step_size", 1.0))
    options.object_options.determine_position_origin_coords_by = (
        api.ObjectPosOriginCoordsMethods.SPECIFIED)
    options.object_options.position_origin_coords = np.asarray(inp["origin"], dtype=np.float64)
    interp = opts.get("patch_interpolation", "fourier").upper()
    options.object_options.patch_interpolation_method = getattr(api.PatchInterpolationMethods, interp)
    options.probe_options.initial_guess = torch.from_numpy(inp["probe"])
    # Same pixel grid for probe and object: otherwise ptychi resamples the object onto the
    # probe's grid (Fourier resize), which is not our forward model.
    options.probe_options.pixel_size_m = 1.0
    options.probe_options.optimizable = bool(opts.get("refine_probe", False))
    options.probe_options.optimizer = api.Optimizers.SGD
    options.probe_options.step_size = float(opts.get("probe_step_size", 1.0))
    options.probe_position_options.position_y_px = torch.from_numpy(inp["pos_y"])
    options.probe_position_options.position_x_px = torch.from_numpy(inp["pos_x"])
    options.probe_position_options.optimizable = False
    options.reconstructor_options.num_epochs = int(opts.get("epochs", 50))
    options.reconstructor_options.batch_size = int(opts.get("batch_size", 96))
    options.reconstructor_options.default_device = api.Devices.CPU
    options.reconstructor_options.random_seed = int(opts.get("seed", 0))
    return options


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python _ptychi_worker.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    import numpy as np

    with np.load(argv[0], allow_pickle=False) as f:
        inp = {k: f[k] for k in f.files}
    opts = json.loads(str(inp.pop("options_json")))
    import torch

    threads = opts.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    apply_torchvision_shim()
    import logging

    logging.getLogger("ptychi").setLevel(logging.WARNING)
    import ptychi.api as api
    from ptychi.api.task import PtychographyTask

    t0 = time.perf_counter()
    options = _options(api, opts.get("algorithm", "LSQML"), opts, inp)
    task = PtychographyTask(options)
    out: dict[str, np.ndarray] = {}
    paused = 0.0  # seconds spent copying snapshots, not reconstructing
    if opts.get("mode") == "forward":
        with torch.no_grad():
            fm = task.reconstructor.forward_model
            m = inp["counts"].shape[0]
            y = fm.forward(torch.arange(m))
            out["intensities"] = torch.fft.fftshift(y, dim=(-2, -1)).cpu().numpy().astype(np.float32)
    else:
        # Snapshots: run in chunks (ptychi's task.run(n) continues where it stopped) and copy the
        # object at each requested epoch; the copies' time is not counted.
        marks = sorted({int(e) for e in opts.get("snapshot_epochs") or [] if 0 < int(e) < opts["epochs"]})
        snaps, snap_s, done = [], [], 0
        for mark in marks:
            task.run(n_epochs=mark - done)
            done = mark
            t_copy = time.perf_counter()
            obj = task.get_data_to_cpu("object", as_numpy=True)
            snaps.append(np.asarray(obj[0] if obj.ndim == 3 else obj).astype(np.complex64))
            paused += time.perf_counter() - t_copy
            snap_s.append(time.perf_counter() - t0 - paused)
        task.run(n_epochs=int(opts["epochs"]) - done)
        if marks:
            out["snapshots"] = np.stack(snaps)
            out["snapshot_epochs"] = np.asarray(marks)
            out["snapshot_seconds"] = np.asarray(snap_s)
    seconds = time.perf_counter() - t0 - paused
    obj = task.get_data_to_cpu("object", as_numpy=True)
    out["object"] = np.asarray(obj[0] if obj.ndim == 3 else obj).astype(np.complex64)
    out["probe"] = task.get_data_to_cpu("probe", as_numpy=True).astype(np.complex64)
    loss = getattr(task.reconstructor, "loss_tracker", None)
    try:
        table = loss.table  # pandas DataFrame (epoch, loss)
        out["loss"] = np.asarray(table["loss"], dtype=np.float64)
    except Exception:  # noqa: BLE001 - the loss history is a nicety
        out["loss"] = np.zeros(0)
    out["seconds"] = np.asarray(seconds)
    np.savez(argv[1], **out)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    sys.exit(main(sys.argv[1:]))
