"""Optional physics refinement of a stitched reconstruction (a separate inference step).

Gradient descent (Adam) on the complex object through
:func:`ptycho_nb.physics.forward.forward_from_object` with the known probe, minimising the Poisson
NLL of the scan's own counts, initialised from the network's stitched object. This is an
iterative engine seeded by the network: it needs the scan's data and costs a few seconds per
epoch; the network alone is the single-pass reconstruction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..physics.forward import forward_from_object, poisson_nll

__all__ = ["refine_object"]


def refine_object(obj: torch.Tensor | np.ndarray, diffraction: Any, xcoords: Any, ycoords: Any,
                  probe: torch.Tensor | np.ndarray, intensity_scale: float | torch.Tensor = 1.0, *,
                  epochs: int = 20, lr: float = 0.02, batch_size: int = 100, seed: int = 0,
                  callback: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Refine a complex object against measured amplitudes through the forward model.

    Parameters
    ----------
    obj : complex (H, W)
        Initial object (e.g. the network's stitched reconstruction). Pixels never covered (0)
        start from the mean amplitude of the covered ones.
    diffraction : (M, N, N) measured amplitudes (sqrt counts)
    xcoords, ycoords : (M,) patch centres (column, row), object pixels
    probe : complex (N, N) or (K, N, N), in the units the model was trained with
    intensity_scale : float
        Scale of the model's physics (``PINNModule.intensity_scale``), so the object keeps the
        network's amplitude units.
    epochs, lr, batch_size, seed : Adam epochs over the scan, step size, patterns per step, order.
    callback : callable(epoch, loss), optional

    Returns
    -------
    (object, info)
        The refined complex64 object (H, W) and ``{'seconds', 'loss_history'}``.
    """
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs/batch_size/lr: expected epochs >= 0, batch_size >= 1, lr > 0; got "
                         f"{epochs!r}, {batch_size!r}, {lr!r}")
    t0 = time.perf_counter()
    o = torch.as_tensor(obj).detach().to(torch.complex64).clone()
    cover = o.abs() > 0
    if not bool(cover.any()):
        raise ValueError("obj: expected a non-zero initial object")
    fill = float(o[cover].abs().mean())
    o = torch.nn.Parameter(torch.where(cover, o, torch.full_like(o, complex(fill, 0.0))))
    p = torch.as_tensor(probe).detach().to(torch.complex64)
    meas = torch.as_tensor(np.asarray(diffraction, dtype=np.float32))
    x = torch.as_tensor(np.asarray(xcoords, dtype=np.float64))
    y = torch.as_tensor(np.asarray(ycoords, dtype=np.float64))
    scale = torch.as_tensor(intensity_scale).detach().float()
    opt = torch.optim.Adam([o], lr=lr)
    rng = np.random.default_rng(seed)
    m = meas.shape[0]
    hist = []
    for ep in range(int(epochs)):
        perm = rng.permutation(m)
        # Summed on the device in float64 and read once per epoch: no host sync per step.
        tot = torch.zeros((), dtype=torch.float64)
        for i in range(0, m, batch_size):
            idx = torch.from_numpy(perm[i:i + batch_size])
            loss = poisson_nll(forward_from_object(p, o, x[idx], y[idx], scale=scale), meas[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.detach().double() * len(idx)
        hist.append(float(tot) / m)
        if callback is not None:
            callback(ep, hist[-1])
    return o.detach(), {"seconds": time.perf_counter() - t0, "loss_history": hist}
