"""Physics refinement of a reconstruction against the scan's own diffraction (an iterative engine).

:func:`refine` runs mini-batch ptychographic updates of the complex object and, optionally, the
probe, starting from any object (the network's stitched reconstruction, or a flat one for the
control), until the data stop improving:

* **Update** (``method='pie'``, the default). For each mini-batch of patterns the exit waves'
  far fields are corrected pixel by pixel along the amplitude (k measured counts, λ predicted).
  For the Poisson likelihood (``noise='poisson'``) two steps are offered (``poisson_step``):
  ``'fisher'``, the Fisher-scoring step ``1 + min((k/λ − 1)/2, FISHER_CAP)`` — the Poisson
  information of an amplitude is the same at every pixel, so this is the likelihood's own
  gradient, and its fixed point is the maximum-likelihood object; and ``'newton'``, the
  per-pixel Newton factor ``2k / (λ + k)`` in [0, 2], whose per-pixel weights λ/(λ + k) move the
  fixed point off the maximum likelihood where counts are low (measured: it stalls at a
  deviance far above the true object's at 10³–10⁴ photons per pattern, while damping the
  noise-fitting of a free probe). ``'auto'`` takes Fisher scoring for the object alone and the
  Newton factor with ``refine_probe``, the better of the two in phase SSIM for each (README "One
  call for a new scan"). For the Gaussian amplitude likelihood (``noise='gaussian'``) the
  modulus projection ``sqrt(k / λ)``.
  The exit-wave changes are back-projected onto the object (and probe) and divided by the
  batch's illumination, blended with its maximum (``alpha``, as in regularised PIE), so every
  object pixel moves by the step it would take under its own illumination: this is what lets a
  handful of epochs converge where a fixed-rate gradient method (``method='adam'``, kept as a
  measured alternative) crawls. When the probe is refined too, the object and probe steps of
  each batch are scaled by the least-squares pair of :func:`joint_steps` (as LSQML does).
* **Momentum and growing batches**: after every epoch the object also moves by ``momentum``
  times the running sum of past epochs' changes; on every plateau the batch doubles (up to all
  patterns), so early epochs move fast and later ones average the noise of more patterns.
* **Stopping rule**: after every epoch the Poisson deviance of the updated patterns (0 for a
  perfect fit; about 0.5 per pixel at the noise floor); when it improved by less than ``tol``
  (relative) over the last ``patience`` epochs at the whole-scan batch, the run stops; at
  ``max_epochs`` in any case.
* **Noise guard** (``holdout`` > 0): a random fraction of the patterns is never used for updates;
  their deviance is tracked, and the run stops when it has not improved for ``patience``
  epochs, returning the object (and probe) of the best held-out epoch. At low dose this stops
  the engine from fitting the noise; at high dose it costs the held-out patterns' information
  only (they still overlap their neighbours).

The forward model is :mod:`ptycho_nb.physics.forward` (bilinear patches, ``norm='ortho'`` FFT,
incoherent probe modes), so the refined object is in the units of the given probe and scale.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np
import torch

from ..metrics import illuminated_mask
from ..physics.forward import (PatchTaps, forward_from_object, gather_patches, patch_taps,
                               poisson_nll, scatter_patches)

__all__ = ["refine", "RefineResult", "RefineProgress", "refine_object", "REFINE_METHODS", "NOISE_MODELS",
           "poisson_deviance", "joint_steps", "MAX_JOINT_STEP", "POISSON_STEPS", "FISHER_CAP",
           "poisson_step_for", "noise_model_for"]

#: Update rules of :func:`refine`.
REFINE_METHODS = ("pie", "adam")
#: Likelihoods the 'pie' update steps along: 'auto' resolves with :func:`noise_model_for`.
NOISE_MODELS = ("auto", "poisson", "gaussian")
#: Steps of the Poisson likelihood (module docstring): 'auto' resolves with :func:`poisson_step_for`.
POISSON_STEPS = ("auto", "fisher", "newton")
#: Largest relative amplitude increase of one Fisher-scoring step, (k/λ − 1)/2 ≤ FISHER_CAP: keeps a
#: pixel predicted near 0 that caught photons from jumping (measured stable; uncapped converges slower).
FISHER_CAP = 4.0
#: Keeps the Poisson log finite where a prediction is exactly 0 (counts).
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class RefineResult:
    """What :func:`refine` returns.

    Attributes
    ----------
    object : complex64 tensor, (H, W)
        The refined object (the best held-out epoch's with ``holdout`` > 0).
    probe : complex64 tensor, (N, N) or (K, N, N)
        The probe (refined when ``refine_probe``; the given one otherwise).
    deviance : tuple of float
        Mean Poisson deviance per pixel of the updated patterns, before each epoch's updates
        (index 0 = the start), so ``deviance[k]`` belongs to the object after k epochs.
    holdout_deviance : tuple of float
        The same for the held-out patterns (empty without a holdout).
    epochs_run : int
        Epochs of updates made.
    best_epoch : int
        The epoch whose object is returned (``epochs_run`` without a holdout).
    stopped : str
        ``'plateau'`` (the data stopped improving), ``'holdout'`` (the held-out patterns
        stopped improving), ``'max_epochs'`` (the cap) or ``'callback'`` (the callback said stop).
    seconds : float
        Wall time of the whole refinement.
    epoch_seconds : tuple of float
        Cumulative wall seconds at the end of each epoch.
    batch_schedule : tuple of (int, int)
        (epoch after which it took effect, batch size): the batch growth on plateaus.
    step_rule : str
        The far-field step that ran: 'fisher', 'newton' or 'gaussian' ('' for ``method='adam'``).
    """

    object: torch.Tensor
    probe: torch.Tensor
    deviance: tuple[float, ...]
    holdout_deviance: tuple[float, ...]
    epochs_run: int
    best_epoch: int
    stopped: str
    seconds: float
    epoch_seconds: tuple[float, ...]
    batch_schedule: tuple[tuple[int, int], ...] = ()
    step_rule: str = ""


@dataclasses.dataclass(frozen=True)
class RefineProgress:
    """What a :func:`refine` callback sees after each epoch.

    Attributes
    ----------
    epoch : int
        Epochs done (1-based).
    max_epochs : int
    deviance : float
        Mean Poisson deviance per pixel of the updated patterns during this epoch.
    holdout_deviance : float or None
        The held-out patterns' deviance after this epoch (None without a holdout).
    seconds : float
        Wall seconds since the refinement started.
    object : complex64 tensor, (H, W)
        The current object (a live view: copy it to keep it).
    probe : complex64 tensor, (N, N) or (K, N, N)
    stage : str
        '' for the refinement itself; ``'probe start k/n (NAME)'`` while the probe's starts are
        tried (:mod:`ptycho_nb.model.probe_start`): ``epoch`` and ``max_epochs`` then count the
        trial's epochs.
    lit : bool ndarray, (H, W), or None
        Object pixels the scan lights (:func:`ptycho_nb.metrics.illuminated_mask` of the starting
        probe): where the object means something; elsewhere it is only its start.
    """

    epoch: int
    max_epochs: int
    deviance: float
    holdout_deviance: float | None
    seconds: float
    object: torch.Tensor
    probe: torch.Tensor
    stage: str = ""
    lit: np.ndarray | None = None


def poisson_deviance(pred_counts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Poisson deviance per pixel, ``λ - k + k·log(k / λ)`` (≥ 0, 0 for a perfect fit), summed.

    Parameters
    ----------
    pred_counts, counts : real tensors of one shape (expected and measured counts)

    Returns
    -------
    scalar float64 tensor: the sum over all pixels.
    """
    lam = pred_counts.double().clamp_min(_EPS)
    k = counts.double()
    klog = torch.where(k > 0, k * torch.log(k.clamp_min(_EPS) / lam), torch.zeros_like(k))
    return (lam - k + klog).sum()


def _subset_taps(taps: PatchTaps, idx: torch.Tensor) -> PatchTaps:
    """The taps of the patches ``idx`` (a view of precomputed taps, no recomputation)."""
    win = (taps.n + 1) ** 2
    index = taps.index.reshape(taps.m, win).index_select(0, idx).reshape(-1)
    return dataclasses.replace(taps, index=index, weights=taps.weights.index_select(0, idx))


def _check_inputs(obj: Any, diffraction: Any, xcoords: Any, ycoords: Any, probe: Any,
                  intensity_scale: Any) -> tuple[torch.Tensor, ...]:
    o = torch.as_tensor(obj).detach().to(torch.complex64).clone()
    if o.ndim != 2:
        raise ValueError(f"obj: expected a 2-D complex object (H, W), got shape {tuple(o.shape)}")
    if not bool(torch.isfinite(torch.view_as_real(o)).all()):
        raise ValueError("obj: expected finite values, found NaN or inf")
    p = torch.as_tensor(probe).detach().to(torch.complex64).clone()
    if p.ndim not in (2, 3) or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"probe: expected (N, N) or (K, N, N), got shape {tuple(p.shape)}")
    meas = torch.as_tensor(np.asarray(diffraction, dtype=np.float32))
    n = int(p.shape[-1])
    if meas.ndim != 3 or tuple(meas.shape[-2:]) != (n, n):
        raise ValueError(f"diffraction: expected (M, {n}, {n}) amplitudes to match the probe, got "
                         f"shape {tuple(meas.shape)}")
    if not bool(torch.isfinite(meas).all()) or bool((meas < 0).any()):
        raise ValueError("diffraction: expected finite, non-negative amplitudes")
    x = torch.as_tensor(np.asarray(xcoords, dtype=np.float64))
    y = torch.as_tensor(np.asarray(ycoords, dtype=np.float64))
    if x.shape != (meas.shape[0],) or y.shape != (meas.shape[0],):
        raise ValueError(f"xcoords/ycoords: expected ({meas.shape[0]},) positions, one per pattern, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    scale = torch.as_tensor(intensity_scale).detach().float().reshape(())
    if not (math.isfinite(float(scale)) and float(scale) > 0):
        raise ValueError(f"intensity_scale: expected a finite positive number, got {float(scale)!r}")
    return o, p, meas, x, y, scale


def _pie_step(o: torch.Tensor, p: torch.Tensor, taps: PatchTaps, counts: torch.Tensor,
              klogk: torch.Tensor, scale: torch.Tensor, noise: str, alpha: float, step: float,
              update_probe: bool) -> float:
    """One mini-batch update in place of ``o`` (and ``p``); returns the batch's deviance sum
    before the update. ``noise`` is the far-field rule: 'fisher', 'newton' or 'gaussian'.

    ``counts`` (B, N, N) are in unshifted FFT order (DC at [0, 0]) so no fftshift is needed, and
    ``klogk`` (B,) is each pattern's constant ``sum(k·log k - k)`` of the deviance.
    """
    patches = gather_patches(o, taps)                        # (B, N, N)
    multi = p.ndim == 3                                      # incoherent modes (K, N, N)
    psi = p[None] * patches[:, None] if multi else p * patches
    far = torch.fft.fft2(psi, norm="ortho")                  # (B, [K,] N, N)
    lam = far.real.square() + far.imag.square()
    if multi:
        lam = lam.sum(dim=1)
    lam.mul_(scale).clamp_(min=_EPS)                        # expected counts (B, N, N)
    # deviance = sum(λ) - sum(k·log λ) + sum(k·log k - k), accumulated in float64
    dev = (lam.sum(dtype=torch.float64) - (counts * torch.log(lam)).sum(dtype=torch.float64)
           + klogk.sum(dtype=torch.float64))
    if noise == "fisher":
        factor = counts.div(lam).sub_(1).mul_(0.5).clamp_(max=FISHER_CAP)
    elif noise == "newton":
        factor = (2 * counts).div_(lam.add_(counts)).sub_(1)  # lam is not needed after this
    else:
        factor = counts.div(lam).sqrt_().sub_(1)
    # The far-field correction, back in real space (ifft2 is far_field's exact inverse here).
    d_psi = torch.fft.ifft2(far.mul_(factor[:, None] if multi else factor), norm="ortho")
    # Object: back-project, divide by the batch's illumination (blended with its maximum).
    back = (p.conj()[None] * d_psi).sum(dim=1) if multi else p.conj() * d_psi
    p_int = p.real.square() + p.imag.square()
    if multi:
        p_int = p_int.sum(dim=0)
    illum = scatter_patches(p_int.expand(patches.shape).contiguous(), taps)
    num_o = scatter_patches(back, taps)
    floor = alpha * float(illum.max()) + 1e-12
    d_o = num_o.div_(illum.mul_(1 - alpha).add_(floor))
    if not update_probe:
        o.add_(d_o, alpha=step)
        return float(dev)
    num_p = (patches.conj()[:, None] * d_psi if multi else patches.conj() * d_psi).sum(dim=0)
    o_int = (patches.real.square() + patches.imag.square()).sum(dim=0)  # (N, N)
    floor = alpha * float(o_int.max()) + 1e-12
    d_p = num_p.div_(o_int.mul_(1 - alpha).add_(floor))
    a_o, a_p = joint_steps(p, patches, gather_patches(d_o, taps), d_p, d_psi)
    o.add_(d_o, alpha=step * a_o)
    p.add_(d_p, alpha=step * a_p)
    return float(dev)


#: Bound of the least-squares steps of a joint object+probe update (a few full steps at most).
MAX_JOINT_STEP = 3.0


def joint_steps(probe: torch.Tensor, patches: torch.Tensor, d_patches: torch.Tensor,
                d_probe: torch.Tensor, d_psi: torch.Tensor) -> tuple[float, float]:
    """The object and probe steps ``(a_o, a_p)`` that best explain a wanted exit-wave change.

    Least squares, as LSQML does: to first order the exit waves change by
    ``a_o·P·ΔO_j + a_p·ΔP·O_j``; the two real steps minimising ``Σ_j |Δψ_j − that|²`` solve a
    2×2 system (one pair per batch). The probe and object then move by what the data support
    together, rather than both taking a full step from the same residual. Each step is bounded
    to [0, :data:`MAX_JOINT_STEP`]; a singular system gives full steps (1, 1).

    Parameters
    ----------
    probe : complex (N, N) or (K, N, N) incoherent modes
    patches, d_patches : complex (B, N, N)
        The object's patches and the object update's patches ΔO_j.
    d_probe : complex, shaped like ``probe``
        The probe update ΔP.
    d_psi : complex (B, N, N) or (B, K, N, N)
        The wanted exit-wave change.
    """
    multi = probe.ndim == 3
    u = probe[None] * d_patches[:, None] if multi else probe * d_patches   # along ΔO
    v = d_probe[None] * patches[:, None] if multi else d_probe * patches   # along ΔP
    terms = torch.stack([
        (u.real.square() + u.imag.square()).sum(dtype=torch.float64),
        (v.real.square() + v.imag.square()).sum(dtype=torch.float64),
        (u.conj() * v).real.sum(dtype=torch.float64),
        (u.conj() * d_psi).real.sum(dtype=torch.float64),
        (v.conj() * d_psi).real.sum(dtype=torch.float64)])
    a11, a22, a12, b1, b2 = terms.tolist()  # one host sync per batch
    det = a11 * a22 - a12 * a12
    if not (math.isfinite(det) and det > 1e-12 * a11 * a22):
        return 1.0, 1.0
    a_o = (b1 * a22 - b2 * a12) / det
    a_p = (a11 * b2 - a12 * b1) / det
    return min(max(a_o, 0.0), MAX_JOINT_STEP), min(max(a_p, 0.0), MAX_JOINT_STEP)


def noise_model_for(noise: str, refine_probe: bool) -> str:
    """The likelihood that runs: ``noise``, or for 'auto' the Poisson one for the object alone
    and the Gaussian amplitude one with ``refine_probe``.

    Measured with the probe refined from a rough guess (flat start, 1,000-pattern scans, 10
    scans: lines, blobs, dead leaves, smooth fields, a siemens star; disc, Gaussian and
    zone-plate probes; 10³–10⁶ photons): the Gaussian modulus step scored higher phase SSIM than
    the Poisson Newton step on 6 of them and on average (0.844 vs 0.804; dead leaves 10³ 0.56 vs
    0.33, the zone plate at 10³ 0.85 vs 0.77), lower on lines at 10⁶ (0.96 vs 0.99) and blobs at
    10³ (0.73 vs 0.76) (README "One call for a new scan").
    """
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {NOISE_MODELS}, got {noise!r}")
    if noise == "auto":
        return "gaussian" if refine_probe else "poisson"
    return noise


def poisson_step_for(poisson_step: str, refine_probe: bool) -> str:
    """The Poisson step that runs: ``poisson_step``, or for 'auto' Fisher scoring for the object
    alone and the Newton factor with ``refine_probe``."""
    if poisson_step not in POISSON_STEPS:
        raise ValueError(f"poisson_step: expected one of {POISSON_STEPS}, got {poisson_step!r}")
    if poisson_step == "auto":
        return "newton" if refine_probe else "fisher"
    return poisson_step


def refine(obj: torch.Tensor | np.ndarray, diffraction: Any, xcoords: Any, ycoords: Any,
           probe: torch.Tensor | np.ndarray, intensity_scale: float | torch.Tensor = 1.0, *,
           max_epochs: int = 200, method: str = "pie", noise: str = "auto",
           step: float = 1.0, alpha: float = 0.3, batch_size: int = 64,
           refine_probe: bool = False, probe_start: int = 2, tol: float = 1e-3,
           patience: int = 5, holdout: float = 0.0, seed: int = 0,
           momentum: float = 0.0, grow_batch: bool = True, poisson_step: str = "auto",
           callback: Callable[[RefineProgress], bool | None] | None = None) -> RefineResult:
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
        The update rule: 'pie' (module docstring) or Adam on the Poisson NLL with step ``step``
        (a measured alternative: slower per unit of quality).
    noise : {'auto', 'poisson', 'gaussian'}
        Likelihood the 'pie' update steps along; 'auto' = Poisson for the object alone, Gaussian
        amplitudes with ``refine_probe`` (:func:`noise_model_for`).
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
        In [0, 1): after every epoch the object also moves by this fraction of a running sum of
        past epochs' changes (momentum-accelerated PIE); 0 = off. The probe never gets momentum
        (a rough probe guess measured unstable with it), and with ``refine_probe`` 0 measured
        best (the InferenceConfig default picks 0 then).
    grow_batch : bool
        On a plateau, double the batch (up to all patterns) and go on; stop on a plateau at the
        full batch. Small batches make fast early progress; large ones average the noise.
    poisson_step : {'auto', 'fisher', 'newton'}
        The Poisson likelihood's far-field step (module docstring; :func:`poisson_step_for`).
    callback : callable(RefineProgress) -> bool, optional
        Called after every epoch; returning True stops the run.

    Returns
    -------
    RefineResult
    """
    if method not in REFINE_METHODS:
        raise ValueError(f"method: expected one of {REFINE_METHODS}, got {method!r}")
    noise = noise_model_for(noise, refine_probe)
    # Resolved (and so validated) whatever the noise model: a bad value is never silently ignored.
    rule = poisson_step_for(poisson_step, refine_probe)
    rule = rule if noise == "poisson" else noise
    if not (isinstance(max_epochs, int) and max_epochs >= 0):
        raise ValueError(f"max_epochs: expected an int >= 0, got {max_epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    for name, v, lo, hi in (("step", step, 0.0, 10.0), ("alpha", alpha, 0.0, 1.0),
                            ("momentum", momentum, 0.0, 0.99),
                            ("tol", tol, 0.0, 1.0), ("holdout", holdout, 0.0, 0.5)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name}: expected a finite number in [{lo}, {hi}], got {v!r}")
    if not step > 0:
        raise ValueError(f"step: expected > 0, got {step!r}")
    if holdout >= 0.5:
        raise ValueError(f"holdout: expected a fraction below 0.5, got {holdout!r}")
    if not (isinstance(patience, int) and patience >= 1):
        raise ValueError(f"patience: expected an int >= 1, got {patience!r}")
    t0 = time.perf_counter()
    o, p, meas, x, y, scale = _check_inputs(obj, diffraction, xcoords, ycoords, probe, intensity_scale)
    cover = o.abs() > 0
    if not bool(cover.any()):
        raise ValueError("obj: expected a non-zero initial object")
    o = torch.where(cover, o, torch.full_like(o, complex(float(o[cover].abs().mean()), 0.0)))
    n = int(p.shape[-1])
    counts = meas.double().square().float()
    # The 'pie' update works in unshifted FFT order: the counts are shifted once, here.
    counts_fft = torch.fft.ifftshift(counts, dim=(-2, -1)).contiguous()
    klogk = torch.where(counts > 0, counts.double() * torch.log(counts.double().clamp_min(_EPS)),
                        torch.zeros((), dtype=torch.float64)).sub(counts.double()).sum(dim=(-2, -1))
    taps = patch_taps(x, y, n, tuple(o.shape))
    lit = None
    if callback is not None:  # for a live view: computed once, from the starting probe
        p_amp = p.abs() if p.ndim == 2 else p.abs().square().sum(dim=0).sqrt()
        lit = illuminated_mask(tuple(o.shape), x.numpy(), y.numpy(), p_amp.numpy())
    m = int(meas.shape[0])
    rng = np.random.default_rng(seed)
    n_hold = int(round(holdout * m)) if holdout > 0 else 0
    order = rng.permutation(m)
    held = torch.from_numpy(np.sort(order[:n_hold]))
    train = order[n_hold:]
    if train.size == 0:
        raise ValueError(f"holdout: {holdout} of {m} patterns leaves none to refine with")
    npix = n * n

    def deviance_of(idx: np.ndarray | torch.Tensor) -> float:
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        tot = 0.0
        with torch.no_grad():
            for i in range(0, len(idx_t), 256):
                b = idx_t[i:i + 256]
                amp = forward_from_object(p, o, x[b], y[b], scale=scale)
                tot += float(poisson_deviance(amp.double().square(), counts[b]))
        return tot / (len(idx_t) * npix)

    dev_hist = [deviance_of(train)]
    hold_hist = [deviance_of(held)] if n_hold else []
    best = (0, o.clone(), p.clone(), hold_hist[0] if n_hold else math.inf)
    epoch_s: list[float] = []
    stopped = "max_epochs"
    opt = None
    if method == "adam":
        o = torch.nn.Parameter(o)
        params = [o] + ([torch.nn.Parameter(p)] if refine_probe else [])
        if refine_probe:
            p = params[1]
        opt = torch.optim.Adam(params, lr=step)
    ep = since = 0
    batch = batch_size
    batch_sizes = [(0, batch)]
    vel_o = torch.zeros_like(o) if momentum > 0 and opt is None else None
    for ep in range(1, max_epochs + 1):
        perm = torch.from_numpy(rng.permutation(train))
        if vel_o is not None:
            o_prev = o.clone()
        tot = 0.0
        for i in range(0, len(perm), batch):
            b = perm[i:i + batch]
            update_probe = refine_probe and ep > probe_start
            if opt is None:
                with torch.no_grad():
                    tot += _pie_step(o, p, _subset_taps(taps, b), counts_fft[b], klogk[b], scale,
                                     rule, alpha, step, update_probe)
            else:
                p.requires_grad_(update_probe)
                amp = forward_from_object(p, o, x[b], y[b], scale=scale)
                loss = poisson_nll(amp, meas[b], eps=_EPS)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    tot += float(poisson_deviance(amp.detach().double().square(), counts[b]))
        if vel_o is not None:
            with torch.no_grad():
                vel_o.mul_(momentum).add_(o - o_prev)
                o.add_(vel_o, alpha=momentum)
        # The deviance accumulated during the pass (each batch before its own update) is the
        # cheap per-epoch estimate; no extra forward pass over the scan.
        dev = tot / (len(train) * npix)
        if not math.isfinite(dev):
            raise FloatingPointError(f"refinement: the deviance became {dev} at epoch {ep}; lower "
                                     f"the step (step={step}) or raise alpha (alpha={alpha})")
        dev_hist.append(dev)
        hd = None
        if n_hold:
            with torch.no_grad():
                hd = deviance_of(held)
            hold_hist.append(hd)
            if hd < best[3]:
                best = (ep, o.detach().clone(), p.detach().clone(), hd)
        epoch_s.append(time.perf_counter() - t0)
        if callback is not None and callback(RefineProgress(
                epoch=ep, max_epochs=max_epochs, deviance=dev, holdout_deviance=hd,
                seconds=epoch_s[-1], object=o.detach(), probe=p.detach(), lit=lit)):
            stopped = "callback"
            break
        if n_hold and ep - best[0] >= patience:
            stopped = "holdout"
            break
        if ep - since >= patience:
            old = dev_hist[-1 - patience]
            if old - dev < tol * dev:
                if not grow_batch or batch >= len(train):
                    stopped = "plateau"
                    break
                # Noise, not the step, now limits progress: average more patterns per update.
                batch, since = min(2 * batch, len(train)), ep
                batch_sizes.append((ep, batch))
    epochs_run = ep if max_epochs else 0
    if n_hold and epochs_run:
        best_epoch, o_out, p_out = best[0], best[1], best[2]
    else:
        best_epoch, o_out, p_out = epochs_run, o.detach(), p.detach()
    return RefineResult(object=o_out.detach().to(torch.complex64), probe=p_out.detach().to(torch.complex64),
                        deviance=tuple(dev_hist), holdout_deviance=tuple(hold_hist),
                        epochs_run=epochs_run, best_epoch=best_epoch, stopped=stopped,
                        seconds=time.perf_counter() - t0, epoch_seconds=tuple(epoch_s),
                        batch_schedule=tuple(batch_sizes), step_rule=rule if method == "pie" else "")


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
