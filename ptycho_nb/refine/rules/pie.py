"""The 'pie' update: per-pixel far-field steps back-projected and divided by the illumination.

For each mini-batch the exit waves' far fields are corrected pixel by pixel along the amplitude
(k measured counts, λ predicted), by the step :attr:`RefineSettings.rule` names:

* ``'fisher'`` — Fisher scoring of the Poisson likelihood, ``1 + min((k/λ − 1)/2, FISHER_CAP)``:
  the Poisson information of an amplitude is the same at every pixel, so this is the likelihood's
  own gradient, and its fixed point is the maximum-likelihood object;
* ``'newton'`` — the per-pixel Newton factor ``2k / (λ + k)`` in [0, 2], whose per-pixel weights
  λ/(λ + k) move the fixed point off the maximum likelihood where counts are low (measured: it
  stalls at a deviance far above the true object's at 10³–10⁴ photons per pattern, while damping
  the noise-fitting of a free probe);
* ``'gaussian'`` — the modulus projection ``sqrt(k / λ)`` of the Gaussian amplitude likelihood.

The exit-wave changes are back-projected onto the object (and probe) and divided by the batch's
illumination, blended with its maximum (``alpha``, as in regularised PIE), so every object pixel
moves by the step it would take under its own illumination: this is what lets a handful of
epochs converge where a fixed-rate gradient method (:mod:`ptycho_nb.refine.rules.adam`) crawls.
When the probe moves too, the object and probe steps of each batch are scaled by the least-squares
pair of :func:`joint_steps` (as LSQML does).

Numerators and denominators are sums over the batch's patterns, so a batch larger than a chunk
(:meth:`PreparedScan.chunk_size`) is accumulated chunk by chunk: the same update in bounded memory.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...physics.forward import PatchTaps, gather_patches, scatter_patches
from ..deviance import batch_deviance, predicted_counts
from ..scan import PreparedScan
from ..settings import RefineSettings
from ..positions import shift_estimates
from ..state import RefineState, Updates

__all__ = ["pie_update", "joint_steps", "FAR_FIELD_STEPS", "FISHER_CAP", "MAX_JOINT_STEP"]

#: Largest relative amplitude increase of one Fisher-scoring step, (k/λ − 1)/2 ≤ FISHER_CAP: keeps a
#: pixel predicted near 0 that caught photons from jumping (measured stable; uncapped converges slower).
FISHER_CAP = 4.0
#: Bound of the least-squares steps of a joint object+probe update (a few full steps at most).
MAX_JOINT_STEP = 3.0


def _fisher(counts: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return counts.div(lam).sub_(1).mul_(0.5).clamp_(max=FISHER_CAP)


def _newton(counts: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return (2 * counts).div_(lam.add_(counts)).sub_(1)  # lam is not needed after this


def _gaussian(counts: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return counts.div(lam).sqrt_().sub_(1)


#: The far-field steps, ``factor(counts, lam) − 1`` per pixel (``lam`` may be overwritten).
FAR_FIELD_STEPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "fisher": _fisher, "newton": _newton, "gaussian": _gaussian}


def joint_steps(probe: torch.Tensor, patches: torch.Tensor, d_patches: torch.Tensor,
                d_probe: torch.Tensor, d_psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    Returns
    -------
    (a_o, a_p) : 0-d float64 tensors on the probe's device (no value read back from it)
    """
    return _solve_steps(_step_terms(probe, patches, d_patches, d_probe, d_psi))


def _step_terms(probe: torch.Tensor, patches: torch.Tensor, d_patches: torch.Tensor,
                d_probe: torch.Tensor, d_psi: torch.Tensor,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The five sums of the 2×2 least-squares system, (5,) ``dtype`` (summable over chunks)."""
    multi = probe.ndim == 3
    u = probe[None] * d_patches[:, None] if multi else probe * d_patches   # along ΔO
    v = d_probe[None] * patches[:, None] if multi else d_probe * patches   # along ΔP
    return torch.stack([
        (u.real.square() + u.imag.square()).sum(dtype=dtype),
        (v.real.square() + v.imag.square()).sum(dtype=dtype),
        (u.conj() * v).real.sum(dtype=dtype),
        (u.conj() * d_psi).real.sum(dtype=dtype),
        (v.conj() * d_psi).real.sum(dtype=dtype)])


def _solve_steps(terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a11, a22, a12, b1, b2 = terms.unbind()
    det = a11 * a22 - a12 * a12
    ok = torch.isfinite(det) & (det > 1e-12 * a11 * a22)
    one = torch.ones((), dtype=terms.dtype, device=terms.device)
    a_o = torch.where(ok, (b1 * a22 - b2 * a12) / det, one).clamp(0.0, MAX_JOINT_STEP)
    a_p = torch.where(ok, (a11 * b2 - a12 * b1) / det, one).clamp(0.0, MAX_JOINT_STEP)
    return a_o, a_p


class _Canvas:
    """The object-sized sums of one update (numerator, illumination), kept between batches:
    scattered into in place and cleared after each update, so a batch allocates and copies no
    frame-sized buffer (``scatter_patches`` alone would make and copy one per call)."""

    def __init__(self, shape: tuple[int, int], device: torch.device) -> None:
        self.num = torch.zeros(shape, dtype=torch.complex64, device=device)
        self.den = torch.zeros(shape, dtype=torch.float32, device=device)

    def add(self, back: torch.Tensor, weight: torch.Tensor, taps: PatchTaps) -> None:
        scatter_patches(back, taps, out=self.num)
        scatter_patches(weight, taps, out=self.den)

    def step(self, alpha: float, acc: torch.dtype) -> torch.Tensor:
        """The update ``num / ((1 − α)·den + α·max den)`` over the frame; the sums are cleared."""
        # Blend with the illumination's maximum (in float64, as a scalar would be): steady where
        # the probe is dim.
        floor = self.den.max().to(acc).mul(alpha).add(1e-12)
        d_o = self.num.div(self.den.mul_(1 - alpha).add_(floor))
        self.num.zero_()
        self.den.zero_()
        return d_o


def pie_update(state: RefineState, scan: PreparedScan,
               settings: RefineSettings) -> Callable[[torch.Tensor, Updates], torch.Tensor]:
    """The 'pie' rule: a function updating ``state`` in place from one batch of patterns.

    The returned ``step(idx, updates)`` takes the batch's pattern indices (a long tensor on the
    scan's device) and what to update besides the object (the probe; the positions:
    :mod:`ptycho_nb.refine.positions`), and returns the batch's summed deviance before the
    update, a 0-d tensor.
    """
    far_field_step = FAR_FIELD_STEPS[settings.rule]
    alpha, step_size = settings.alpha, settings.step
    chunk = scan.chunk_size(state.modes, settings.chunk_patterns)
    canvas = _Canvas(scan.shape, scan.device)
    acc = scan.accumulate
    c = scan.checker

    def correction(idx: torch.Tensor, pm: torch.Tensor) -> tuple[PatchTaps, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The taps, the patches, the wanted exit-wave change (times the checkerboard) and the
        deviance of ``idx`` under the checkerboarded probe ``pm``."""
        taps = scan.taps(idx, state.x, state.y)
        patches = gather_patches(state.object, taps)                      # (B, N, N)
        far, lam = predicted_counts(pm, patches, state.scale)             # DC-centred, as the data
        counts = scan.counts(idx)
        weight = scan.weights(idx)
        dev = batch_deviance(lam, counts, scan.klogk[idx], acc, weight)
        factor = far_field_step(counts, lam)
        if weight is not None:  # an unmeasured pixel keeps its predicted amplitude
            factor.mul_(weight)
        # The far-field correction, back in real space (ifft2 is fft2's exact inverse here).
        d_psi = torch.fft.ifft2(far.mul_(factor[:, None] if pm.ndim == 3 else factor), norm="ortho")
        return taps, patches, d_psi, dev

    def step(idx: torch.Tensor, updates: Updates) -> torch.Tensor:
        update_probe = updates.probe
        pm = state.probe * c   # the checkerboard is ±1: |pm| = |P|, and pm* · (c·Δψ) = P* · Δψ
        multi = pm.ndim == 3
        p_int = pm.real.square() + pm.imag.square()
        if multi:
            p_int = p_int.sum(dim=0)
        parts = list(scan.chunks(idx, chunk))
        dev = num_p = o_int = None
        kept: tuple[PatchTaps, torch.Tensor, torch.Tensor] | None = None
        for part in parts:
            taps, patches, d_psi, d = correction(part, pm)
            # Object: back-project, divided below by the batch's illumination.
            back = (pm.conj()[None] * d_psi).sum(dim=1) if multi else pm.conj() * d_psi
            canvas.add(back, p_int.expand(patches.shape).contiguous(), taps)
            dev = d if dev is None else dev + d
            if updates.positions:  # from the exit waves of the object before this batch moves it
                dx, dy = shift_estimates(pm, patches, d_psi, step=settings.position_step,
                                         max_shift=settings.max_position_shift, dtype=acc)
                state.x.index_add_(0, part, dx.to(state.x.dtype))
                state.y.index_add_(0, part, dy.to(state.y.dtype))
            if update_probe:
                n_p = (patches.conj()[:, None] * d_psi if multi else patches.conj() * d_psi).sum(dim=0)
                i_p = (patches.real.square() + patches.imag.square()).sum(dim=0)   # (N, N)
                num_p, o_int = (n_p, i_p) if num_p is None else (num_p.add_(n_p), o_int.add_(i_p))
                if len(parts) == 1:
                    kept = (taps, patches, d_psi)
        d_o = canvas.step(alpha, acc)
        if not update_probe:
            state.object.add_(d_o, alpha=step_size)
            return dev
        floor = o_int.max().to(acc).mul(alpha).add(1e-12)
        d_p = num_p.div_(o_int.mul_(1 - alpha).add_(floor))                # the checkerboarded probe's
        if kept is not None:
            terms = _step_terms(pm, kept[1], gather_patches(d_o, kept[0]), d_p, kept[2], acc)
        else:
            terms = torch.zeros(5, dtype=acc, device=scan.device)
            for part in parts:  # the exit waves of every chunk again: the object has not moved yet
                taps, patches, d_psi, _ = correction(part, pm)
                terms += _step_terms(pm, patches, gather_patches(d_o, taps), d_p, d_psi, acc)
        a_o, a_p = _solve_steps(terms)
        state.object.add_(d_o * (step_size * a_o).to(d_o.dtype))
        state.probe.add_((d_p * c) * (step_size * a_p).to(d_p.dtype))
        return dev

    return step
