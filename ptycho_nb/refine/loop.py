"""The epoch loop of the refinement: batches, momentum, batch growth, holdout and stopping rules.

The loop is the same for every update rule (:mod:`ptycho_nb.refine.rules`):

* **Batches**: every epoch visits the (non-held-out) patterns in a new random order, in batches
  of ``batch_size``; the rule updates the object (and probe) from each batch.
* **Momentum and growing batches**: after every epoch the object also moves by ``momentum``
  times the running sum of past epochs' changes; on every plateau the batch doubles (up to all
  patterns), so early epochs move fast and later ones average the noise of more patterns.
* **Stopping rule**: after every epoch the Poisson deviance of the updated patterns (0 for a
  perfect fit; at the noise floor 0.5 per pixel where counts are high, less where they are low);
  when it improved by less than ``tol``
  (relative) over the last ``patience`` epochs at the whole-scan batch, the run stops; at
  ``max_epochs`` in any case.
* **Noise guard** (``holdout`` > 0): a random fraction of the patterns is never used for updates;
  their deviance is tracked, and the run stops when it has not improved for ``patience``
  epochs, returning the object (and probe) of the best held-out epoch. At low dose this stops
  the refinement from fitting the noise; at high dose it costs the held-out patterns'
  information only (they still overlap their neighbours).

Every tensor lives on ``settings.device``; the loop reads one value back from it per epoch (the
epoch's deviance), never per batch.

The forward model is :mod:`ptycho_nb.physics.forward` (bilinear patches, ``norm='ortho'`` FFT,
incoherent probe modes), so the refined object is in the units of the given probe and scale.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch

from ..metrics import illuminated_mask
from .deviance import scan_deviance
from .result import RefineProgress, RefineResult
from .rules import rule_for
from .scan import PreparedScan
from .settings import RefineSettings
from .modes import orthogonalize, with_modes
from .positions import constrain
from .state import RefineState, Updates

__all__ = ["refine", "refine_scan", "refine_object"]

Callback = Callable[[RefineProgress], "bool | None"]


def refine(obj: torch.Tensor | np.ndarray, diffraction: Any, xcoords: Any, ycoords: Any,
           probe: torch.Tensor | np.ndarray, intensity_scale: float | torch.Tensor = 1.0, *,
           max_epochs: int = 200, method: str = "pie", noise: str = "auto",
           step: float = 1.0, alpha: float = 0.3, batch_size: int = 64,
           refine_probe: bool = False, probe_start: int = 2, tol: float = 1e-3,
           patience: int = 5, holdout: float = 0.0, seed: int = 0,
           momentum: float = 0.0, grow_batch: bool = True, poisson_step: str = "auto",
           device: torch.device | str = "cpu", chunk_patterns: int | None = None,
           mask: Any = None, correct_positions: bool = False, position_start: int = 10,
           probe_modes: int = 0,
           callback: Callback | None = None) -> RefineResult:
    """Refine an object (and optionally the probe) against measured amplitudes until converged.

    Parameters
    ----------
    obj : complex (H, W)
        Start (the network's stitched object, or a constant for the flat-start control). Pixels
        exactly 0 (never covered) start from the mean amplitude of the others.
    diffraction : (M, N, N) measured amplitudes (sqrt counts)
    xcoords, ycoords : (M,) patch centres (column, row), object pixels
    probe : complex (N, N) or (K, N, N) incoherent modes, in the units of ``intensity_scale``
    intensity_scale : float
        Photons per unit of |F{P·O}|² (``PINNModule.intensity_scale`` for a model's units; 1 when
        the probe is in counts units).
    max_epochs : int
        Cap on passes over the scan (0 returns the start).
    method : {'pie', 'adam'}
        The update rule (:data:`ptycho_nb.refine.rules.UPDATE_RULES`): 'pie'
        (:mod:`ptycho_nb.refine.rules.pie`) or Adam on the Poisson NLL with learning rate
        ``step`` (a measured alternative: slower per unit of quality).
    noise : {'auto', 'poisson', 'gaussian'}
        Likelihood the 'pie' update steps along; 'auto' = Poisson for the object alone, Gaussian
        amplitudes with ``refine_probe`` (:func:`~ptycho_nb.refine.settings.noise_model_for`).
    step : float
        Relative step of the 'pie' update (1 = the full Fisher-scoring, Newton or projection
        step); Adam's learning rate for 'adam'.
    alpha : float
        In [0, 1]: weight of the illumination maximum in the update's denominator (larger =
        smaller, steadier steps where illumination is weak).
    batch_size : int
        Patterns per update at the start (doubled on each plateau with ``grow_batch``).
    refine_probe : bool
        Also update the probe, from epoch ``probe_start`` on (the object settles first).
    tol, patience : float, int
        Plateau rule: stop when the deviance improved by less than ``tol`` (relative) over the
        last ``patience`` epochs.
    holdout : float
        In [0, 0.5): fraction of patterns held out as the noise guard (0 = none).
    seed : int
        Order of the patterns and choice of the held-out ones.
    momentum : float
        In [0, 0.99]: after every epoch the object also moves by this fraction of a running sum
        of past epochs' changes (momentum-accelerated PIE); 0 = off. The probe never gets
        momentum (a rough probe guess measured unstable with it).
    grow_batch : bool
        On a plateau, double the batch (up to all patterns) and go on; stop on a plateau at the
        full batch. Small batches make fast early progress; large ones average the noise.
    poisson_step : {'auto', 'fisher', 'newton'}
        The Poisson likelihood's far-field step (:mod:`ptycho_nb.refine.rules.pie`;
        :func:`~ptycho_nb.refine.settings.poisson_step_for`).
    device : torch device or str
        Where the refinement runs (the data are copied there once).
    chunk_patterns : int, optional
        Patterns whose exit waves are held at once (default: what fits 32 MiB per buffer).
    mask : bool array (N, N) or (M, N, N), optional
        True where a detector pixel was not measured (a gap, a dead pixel): left out of the
        likelihood (:mod:`ptycho_nb.refine.scan`).
    correct_positions : bool
        Refine each pattern's position too, after epoch ``position_start``
        (:mod:`ptycho_nb.refine.positions`); ``RefineResult.positions`` holds them.
    position_start : int
    probe_modes : int
        With ``refine_probe``: incoherent modes to refine, made from the probe when it has fewer
        (:mod:`ptycho_nb.refine.modes`); 0 = as given.
    callback : callable(RefineProgress) -> bool, optional
        Called after every epoch; returning True stops the run.

    Returns
    -------
    RefineResult
        Its tensors on ``device``.

    Example
    -------
    >>> import numpy as np, ptycho_nb
    >>> from ptycho_nb.refine import refine
    >>> scan = ptycho_nb.simulate(N=32, object_kind="lines", object_shape=(96, 96), n_positions=60)
    >>> res = refine(np.ones_like(scan.object), scan.diffraction, scan.xcoords, scan.ycoords,
    ...              scan.probe, max_epochs=20)
    >>> res.deviance[-1] < res.deviance[0]
    True
    """
    settings = RefineSettings.of(
        noise=noise, poisson_step=poisson_step, device=device, max_epochs=max_epochs,
        method=method, step=step, alpha=alpha, batch_size=batch_size, refine_probe=refine_probe,
        probe_start=probe_start, tol=tol, patience=patience, holdout=holdout, seed=seed,
        momentum=momentum, grow_batch=grow_batch, chunk_patterns=chunk_patterns,
        correct_positions=correct_positions, position_start=position_start, probe_modes=probe_modes)
    rule_for(settings.method)  # an unknown method fails before any work
    p = torch.as_tensor(probe)
    if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"probe: expected (N, N) or (K, N, N), got shape {tuple(p.shape)}")
    shape = tuple(torch.as_tensor(obj).shape)
    if len(shape) != 2:
        raise ValueError(f"obj: expected a 2-D complex object (H, W), got shape {shape}")
    scan = PreparedScan.build(diffraction, xcoords, ycoords, int(p.shape[-1]), shape, settings.device,
                              mask=mask)
    return refine_scan(scan, obj, probe, intensity_scale, settings, callback=callback)


def refine_scan(scan: PreparedScan, obj: Any, probe: Any, intensity_scale: Any,
                settings: RefineSettings, *, callback: Callback | None = None,
                positions: torch.Tensor | None = None) -> RefineResult:
    """:func:`refine` on a scan already placed on its device (several runs share one copy).

    ``obj`` must have ``scan.shape`` and the probe ``scan.n``; ``settings.device`` must be the
    scan's device. ``positions`` (M, 2) [x, y], frame pixels, start a position-correcting run
    from corrected positions (a previous run's ``RefineResult.positions``) instead of the scan's.
    """
    t0 = time.perf_counter()
    update = rule_for(settings.method)
    if torch.device(settings.device) != scan.device:
        raise ValueError(f"settings.device: {settings.device} is not the scan's device {scan.device}")
    state = RefineState.build(obj, probe, intensity_scale, scan.device)
    if tuple(state.object.shape) != scan.shape:
        raise ValueError(f"obj: expected the scan's frame {scan.shape}, got {tuple(state.object.shape)}")
    if state.probe.shape[-1] != scan.n:
        raise ValueError(f"probe: expected {scan.n}x{scan.n} to match the patterns, got "
                         f"{tuple(state.probe.shape)}")
    if settings.refine_probe and settings.probe_modes:
        state.probe = with_modes(state.probe, settings.probe_modes)
    if settings.correct_positions:  # corrected in the state; the scan keeps the nominal ones
        start = torch.stack([scan.x, scan.y], 1) if positions is None else torch.as_tensor(positions)
        if tuple(start.shape) != (scan.m, 2):
            raise ValueError(f"positions: expected ({scan.m}, 2) [x, y], got {tuple(start.shape)}")
        start = start.to(device=scan.device, dtype=torch.float64)
        state.x, state.y = start[:, 0].clone(), start[:, 1].clone()
    lit = None
    if callback is not None:  # for a live view: computed once, from the starting probe
        p = state.probe
        p_amp = p.abs() if p.ndim == 2 else p.abs().square().sum(dim=0).sqrt()
        lit = illuminated_mask(scan.shape, scan.x.cpu().numpy(), scan.y.cpu().numpy(),
                               p_amp.cpu().numpy())
    m = scan.m
    rng = np.random.default_rng(settings.seed)
    n_hold = int(round(settings.holdout * m)) if settings.holdout > 0 else 0
    order = rng.permutation(m)
    train = order[n_hold:]
    if train.size == 0:
        raise ValueError(f"holdout: {settings.holdout} of {m} patterns leaves none to refine with")
    held_t = torch.from_numpy(np.sort(order[:n_hold])).to(scan.device)
    train_t = torch.from_numpy(train).to(scan.device)
    chunk = scan.chunk_size(state.modes, settings.chunk_patterns)
    # the deviance per measured pixel: its normalisation, read once
    train_pixels = float(scan.pixels[train_t].sum())
    held_pixels = float(scan.pixels[held_t].sum()) if n_hold else 0.0

    def mean_deviance(idx: torch.Tensor, pixels: float) -> float:
        return float(scan_deviance(state, scan, idx, chunk)) / pixels

    dev_hist = [mean_deviance(train_t, train_pixels)]
    hold_hist = [mean_deviance(held_t, held_pixels)] if n_hold else []
    def positions_now() -> torch.Tensor | None:
        return None if state.x is None else torch.stack([state.x, state.y], 1)

    best = (0, state.object.detach().clone(), state.probe.detach().clone(),
            hold_hist[0] if n_hold else math.inf, positions_now())
    step = update(state, scan, settings)
    epoch_s: list[float] = []
    stopped = "max_epochs"
    ep = since = 0
    batch = settings.batch_size
    batch_sizes = [(0, batch)]
    momentum = settings.momentum
    vel_o = torch.zeros_like(state.object.detach()) if momentum > 0 else None
    for ep in range(1, settings.max_epochs + 1):
        perm = torch.from_numpy(rng.permutation(train)).to(scan.device)
        updates = Updates(probe=settings.refine_probe and ep > settings.probe_start,
                          positions=settings.correct_positions and ep > settings.position_start)
        with torch.no_grad():
            o_prev = state.object.detach().clone() if vel_o is not None else None
            tot = torch.zeros((), dtype=scan.accumulate, device=scan.device)
            for i in range(0, len(perm), batch):
                tot += step(perm[i:i + batch], updates)
            if vel_o is not None:
                vel_o.mul_(momentum).add_(state.object - o_prev)
                state.object.add_(vel_o, alpha=momentum)
            if updates.positions:
                constrain(state.x, state.y, scan.x, scan.y, train_t, scan.n, scan.shape)
            if updates.probe and state.modes > 1:  # orthogonal modes, strongest first
                state.probe.copy_(orthogonalize(state.probe))
        # The deviance accumulated during the pass (each batch before its own update) is the
        # cheap per-epoch estimate, and the one value read back from the device per epoch.
        dev = float(tot) / train_pixels
        if not math.isfinite(dev):
            raise FloatingPointError(f"refinement: the deviance became {dev} at epoch {ep}; lower "
                                     f"the step (step={settings.step}) or raise alpha "
                                     f"(alpha={settings.alpha})")
        dev_hist.append(dev)
        hd = None
        if n_hold:
            hd = mean_deviance(held_t, held_pixels)
            hold_hist.append(hd)
            if hd < best[3]:
                best = (ep, state.object.detach().clone(), state.probe.detach().clone(), hd, positions_now())
        epoch_s.append(time.perf_counter() - t0)
        if callback is not None and callback(RefineProgress(
                epoch=ep, max_epochs=settings.max_epochs, deviance=dev, holdout_deviance=hd,
                seconds=epoch_s[-1], object=state.object.detach(), probe=state.probe.detach(),
                lit=lit)):
            stopped = "callback"
            break
        if n_hold and ep - best[0] >= settings.patience:
            stopped = "holdout"
            break
        if ep - since >= settings.patience:
            old = dev_hist[-1 - settings.patience]
            if old - dev < settings.tol * dev:
                if not settings.grow_batch or batch >= len(train):
                    stopped = "plateau"
                    break
                # Noise, not the step, now limits progress: average more patterns per update.
                batch, since = min(2 * batch, len(train)), ep
                batch_sizes.append((ep, batch))
    epochs_run = ep if settings.max_epochs else 0
    if n_hold and epochs_run:
        best_epoch, o_out, p_out, pos_out = best[0], best[1], best[2], best[4]
    else:
        best_epoch, o_out, p_out, pos_out = epochs_run, state.object.detach(), state.probe.detach(), positions_now()
    return RefineResult(object=o_out.detach().to(torch.complex64), probe=p_out.detach().to(torch.complex64),
                        deviance=tuple(dev_hist), holdout_deviance=tuple(hold_hist),
                        epochs_run=epochs_run, best_epoch=best_epoch, stopped=stopped,
                        seconds=time.perf_counter() - t0, epoch_seconds=tuple(epoch_s),
                        batch_schedule=tuple(batch_sizes),
                        step_rule=settings.rule if settings.method == "pie" else "",
                        device=str(scan.device), positions=pos_out)


def refine_object(obj: torch.Tensor | np.ndarray, diffraction: Any, xcoords: Any, ycoords: Any,
                  probe: torch.Tensor | np.ndarray, intensity_scale: float | torch.Tensor = 1.0, *,
                  epochs: int = 20, lr: float = 0.02, batch_size: int = 100, seed: int = 0,
                  callback: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Adam on the object for a fixed number of epochs (the former refinement; see :func:`refine`).

    Returns ``(object, {'seconds', 'loss_history'})`` with the deviance per epoch as the history.
    """
    cb = None if callback is None else (lambda pr: bool(callback(pr.epoch - 1, pr.deviance)))
    res = refine(obj, diffraction, xcoords, ycoords, probe, intensity_scale, max_epochs=epochs,
                 method="adam", step=lr, batch_size=batch_size, seed=seed, tol=0.0,
                 patience=epochs + 1, grow_batch=False, callback=cb)  # no plateau stop: a fixed epoch count
    return res.object, {"seconds": res.seconds, "loss_history": list(res.deviance[1:])}
