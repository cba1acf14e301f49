"""The 'adam' update: Adam on the Poisson negative log-likelihood, a fixed-rate gradient method.

Kept as the measured alternative to :mod:`ptycho_nb.refine.rules.pie` (slower per unit of
quality: bench/refine_policies.py). ``RefineSettings.step`` is its learning rate. A batch
larger than a chunk accumulates its gradient chunk by chunk before the one optimizer step.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...physics.forward import forward_amplitude, gather_patches
from ..deviance import poisson_deviance
from ..scan import EPS, PreparedScan
from ..settings import RefineSettings
from ..state import RefineState, Updates

__all__ = ["adam_update"]


def adam_update(state: RefineState, scan: PreparedScan,
                settings: RefineSettings) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The 'adam' rule: a function updating ``state`` in place from one batch of patterns
    (``step(idx, updates)`` → the batch's summed deviance before the update, 0-d)."""
    state.object = torch.nn.Parameter(state.object)
    params = [state.object]
    if settings.refine_probe:
        state.probe = torch.nn.Parameter(state.probe)
        params.append(state.probe)
    opt = torch.optim.Adam(params, lr=settings.step)
    chunk = scan.chunk_size(state.modes, settings.chunk_patterns)
    npix = scan.n * scan.n

    def step(idx: torch.Tensor, updates: Updates) -> torch.Tensor:
        if settings.refine_probe:
            state.probe.requires_grad_(updates.probe)
        opt.zero_grad()
        dev = torch.zeros((), dtype=scan.accumulate, device=scan.device)
        with torch.enable_grad():
            for part in scan.chunks(idx, chunk):
                amp = forward_amplitude(state.probe,
                                        gather_patches(state.object, scan.taps(part, state.x, state.y)),
                                        scale=state.scale)
                meas = scan.amplitudes[part]
                lam, k = amp.square(), meas.square()
                weight = scan.weights(part)
                nll = lam - k * torch.log(lam + EPS)
                if weight is None:
                    # the mean NLL over the whole batch, accumulated chunk by chunk
                    loss = nll.sum() / (len(idx) * npix)
                else:  # over its measured pixels
                    loss = (nll * weight).sum() / scan.pixels[idx].sum().to(nll.dtype)
                loss.backward()
                with torch.no_grad():
                    dev += poisson_deviance(amp.detach().double().square(), k, weight).to(scan.accumulate)
        opt.step()
        return dev

    return step
