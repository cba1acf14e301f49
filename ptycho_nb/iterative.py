"""Run an iterative engine (ptychi's LSQML or ePIE) on a :class:`~ptycho_nb.PtychoData` scan.

ptychi is an optional dependency (the ``iterative`` extra). Install it without letting pip swap
the CPU torch for a CUDA build::

    pip install 'ptycho-nb[iterative]' torch==2.13.0

ptychi runs in a **subprocess** (the script ``ptycho_nb/_ptychi_worker.py``): building a ptychi task
sets torch's global default device, dtype and random seeds, which must not leak into the caller's
kernel; the worker also applies the torchvision import shim (see :mod:`ptycho_nb._ptychi_worker`).
Arrays travel through an ``.npz`` in a temporary folder.

Conventions translated here (ours → ptychi's):

- diffraction amplitudes → intensities in counts (amplitude²), still DC-centred (ptychi's
  ``fft_shift=True`` moves DC to the corner itself);
- our ortho-normalised FFT → ptychi's unnormalised FFT: the probe is divided by ``sqrt(N·N)`` so
  that ``|FFT(P/N · O)|² == |FFT_ortho(P · O)|²``;
- patch centres (x = column, y = row, in the object frame) → probe-window centres in pixels
  relative to the object buffer's centre, axis 0 = y, with the buffer's origin given explicitly.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from .data.container import PtychoData

__all__ = ["ptychi_available", "run_ptychi", "export_for_ptychi", "ptychi_forward_check",
           "INSTALL_HINT"]

INSTALL_HINT = ("ptychi is not installed. Install the `iterative` extra without letting pip swap "
                "your CPU torch: pip install 'ptycho-nb[iterative]' torch==2.13.0")

#: Pixels of free buffer around the scanned area (ptychi needs scan span + probe + 2 px).
MARGIN = 2


def ptychi_available() -> bool:
    """True when ptychi is importable in this environment (checked without importing it)."""
    return importlib.util.find_spec("ptychi") is not None


def _frame(data: PtychoData, margin: int) -> tuple[int, int, int, int]:
    """(row0, col0, H, W) of the object buffer in the data's frame."""
    n = data.N
    if data.object is not None:
        h, w = data.object.shape
        return 0, 0, int(h), int(w)
    row0 = int(math.floor(data.ycoords.min() - n / 2)) - margin
    col0 = int(math.floor(data.xcoords.min() - n / 2)) - margin
    h = int(math.ceil(data.ycoords.max() + n / 2)) + margin - row0
    w = int(math.ceil(data.xcoords.max() + n / 2)) + margin - col0
    return row0, col0, h, w


def export_for_ptychi(data: PtychoData, *, initial_object: np.ndarray | None = None,
                      margin: int = MARGIN) -> dict[str, Any]:
    """The scan in ptychi's conventions.

    Returns
    -------
    dict
        ``counts`` (M, N, N) float32 (DC-centred), ``probe`` (1, K, N, N) complex64 scaled for the
        unnormalised FFT, ``pos_y``/``pos_x`` (M,) float32 probe-window centres relative to
        ``origin`` (row, col) of the (H, W) buffer, ``object`` (1, H, W) complex64 initial guess
        (ones unless given), and ``offset`` (row0, col0): the buffer's pixel (0, 0) in the data's
        frame. When the data carry a ground-truth object the buffer is its frame (offset (0, 0)).
    """
    if not isinstance(data, PtychoData):
        raise TypeError(f"data: expected a PtychoData, got {type(data).__name__}")
    n = data.N
    row0, col0, h, w = _frame(data, margin)
    if initial_object is None:
        obj = np.ones((h, w), dtype=np.complex64)
    else:
        obj = np.asarray(initial_object, dtype=np.complex64)
        if obj.shape != (h, w):
            raise ValueError(f"initial_object: expected shape {(h, w)}, got {obj.shape}")
    # Our patch of centre y covers rows [y - N/2, y + N/2). ptychi (probe and object on the same
    # pixel grid, see the worker) snaps a position p to round(p) + origin, takes the object window
    # starting at round(round(p) + origin - (N - 1)/2), and shifts the probe by the sub-pixel
    # rest p - round(p). For even N it expects the snapped centre on a half pixel ("positions %
    # 1 == 0.5"): so the origin is an integer minus 0.5 and p = y - row0 - that integer, which
    # makes the window start at y - N/2 exactly. Verified by ptychi_forward_check.
    centre = np.array([h // 2, w // 2], dtype=np.float64)
    origin = centre - 0.5
    pos_y = (data.ycoords - row0 - centre[0]).astype(np.float32)
    pos_x = (data.xcoords - col0 - centre[1]).astype(np.float32)
    probe = (data.probe_modes / np.sqrt(n * n)).astype(np.complex64)[None]  # (1, K, N, N)
    return {"counts": data.intensities.astype(np.float32), "probe": probe, "pos_y": pos_y,
            "pos_x": pos_x, "origin": origin, "object": obj[None], "offset": (row0, col0)}


def _run_worker(payload: dict[str, Any], options: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    if not ptychi_available():
        raise ModuleNotFoundError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="ptycho_nb_ptychi_") as tmp:
        src = pathlib.Path(tmp) / "in.npz"
        dst = pathlib.Path(tmp) / "out.npz"
        arrays = {k: v for k, v in payload.items() if k != "offset"}
        np.savez(src, options_json=np.asarray(json.dumps(options)), **arrays)
        # Run the worker as a plain script, NOT ``-m ptycho_nb._ptychi_worker``: importing the
        # package would import lightning, which may import (and break) torchvision before the
        # shim is in place.
        worker = pathlib.Path(__file__).resolve().with_name("_ptychi_worker.py")
        try:
            proc = subprocess.run([sys.executable, str(worker), str(src), str(dst)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"ptychi did not finish within {timeout} s; lower `epochs` or raise "
                               f"`timeout`") from exc
        if proc.returncode != 0 or not dst.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"ptychi failed (exit code {proc.returncode}):\n{tail}")
        with np.load(dst, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}


def run_ptychi(data: PtychoData, *, algorithm: str = "LSQML", epochs: int = 50,
               refine_probe: bool = False, batch_size: int = 96, noise_model: str = "gaussian",
               initial_object: np.ndarray | None = None, threads: int | None = None,
               seed: int = 0, snapshot_epochs: list[int] | None = None,
               timeout: float | None = 900.0) -> dict[str, Any]:
    """Reconstruct ``data`` with ptychi, isolated in a subprocess.

    Parameters
    ----------
    data : PtychoData
        The scan (amplitudes, positions, probe). Its probe is the initial (or, with
        ``refine_probe=False``, the known) probe.
    algorithm : {'LSQML', 'EPIE'}
    epochs : int
        Iterative epochs (passes over all patterns).
    refine_probe : bool
        Let ptychi update the probe.
    batch_size : int
        Patterns per ptychi update.
    noise_model : {'gaussian', 'poisson'}
        LSQML's noise model.
    initial_object : (H, W) complex, optional
        Start from this object (e.g. a network reconstruction) instead of ones.
    threads : int, optional
        torch threads in the worker (default: torch's default).
    snapshot_epochs : list of int, optional
        Also return the object after each of these epochs (those in ``1 … epochs-1``), with the
        ptychi time spent up to it: how quality grows with iterations, from one run.
    timeout : float, optional
        Seconds before the worker is killed (``TimeoutError``).

    Returns
    -------
    dict
        ``object`` (H, W) complex64, ``offset`` (row0, col0) of its pixel (0, 0) in the data's
        frame (the ground truth's frame for simulations), ``probe`` (K, N, N) complex64 in OUR
        convention (ortho FFT), ``seconds`` (ptychi's task build + run, inside the worker),
        ``wall_seconds`` (including the subprocess start and transfers), ``loss`` (per epoch),
        ``algorithm``, ``epochs``; with ``snapshot_epochs``: ``snapshots`` (S, H, W) complex64,
        ``snapshot_epochs`` (S,) and ``snapshot_seconds`` (S,).

    Raises
    ------
    ModuleNotFoundError
        ptychi is not installed (the message says how to install it).
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    if str(algorithm).upper() not in ("LSQML", "EPIE"):
        raise ValueError(f"algorithm: expected 'LSQML' or 'EPIE', got {algorithm!r}")
    if noise_model not in ("gaussian", "poisson"):
        raise ValueError(f"noise_model: expected 'gaussian' or 'poisson', got {noise_model!r}")
    if not ptychi_available():
        raise ModuleNotFoundError(INSTALL_HINT)
    t0 = time.perf_counter()
    payload = export_for_ptychi(data, initial_object=initial_object)
    options = {"mode": "run", "algorithm": str(algorithm).upper(), "epochs": int(epochs),
               "refine_probe": bool(refine_probe), "batch_size": int(batch_size),
               "noise_model": noise_model, "threads": threads, "seed": int(seed),
               "snapshot_epochs": [int(e) for e in (snapshot_epochs or [])]}
    out = _run_worker(payload, options, timeout)
    n = data.N
    probe = out["probe"]
    probe = probe.reshape(-1, n, n)[: data.probe_modes.shape[0]] * np.sqrt(n * n)
    result = {"object": out["object"].astype(np.complex64), "offset": tuple(int(v) for v in payload["offset"]),
              "probe": (probe[0] if data.probe.ndim == 2 else probe).astype(np.complex64),
              "seconds": float(out["seconds"]), "wall_seconds": time.perf_counter() - t0,
              "loss": out["loss"], "algorithm": str(algorithm).upper(), "epochs": int(epochs)}
    if "snapshots" in out:
        result.update(snapshots=out["snapshots"], snapshot_epochs=out["snapshot_epochs"].astype(int),
                      snapshot_seconds=out["snapshot_seconds"].astype(float))
    return result


def ptychi_forward_check(data: PtychoData, *, patch_interpolation: str = "fourier",
                         timeout: float | None = 300.0) -> dict[str, Any]:
    """Compare ptychi's forward model on the TRUE object with ours (convention check).

    Needs ``data.object``. Returns ``relative_error`` = ‖I_ptychi − I_ours‖ / ‖I_ours‖ over all
    noise-free intensities (counts), and both intensity stacks.
    """
    import torch

    from .physics.forward import forward_from_object

    if data.object is None:
        raise ValueError("data: the forward check needs the ground-truth object")
    payload = export_for_ptychi(data, initial_object=data.object)
    out = _run_worker(payload, {"mode": "forward", "patch_interpolation": patch_interpolation,
                                "epochs": 1}, timeout)
    with torch.no_grad():
        amp = forward_from_object(torch.from_numpy(data.probe), torch.from_numpy(data.object),
                                  torch.from_numpy(data.xcoords), torch.from_numpy(data.ycoords))
    ours = amp.double().numpy() ** 2
    theirs = out["intensities"].astype(np.float64)
    rel = float(np.linalg.norm(theirs - ours) / np.linalg.norm(ours))
    return {"relative_error": rel, "ptychi": theirs, "ours": ours}
