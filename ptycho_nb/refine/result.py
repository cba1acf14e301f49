"""What a refinement hands back: :class:`RefineResult` at the end, :class:`RefineProgress` per epoch.

Their tensors stay on the refinement's device; :meth:`RefineProgress.object_array` and
:meth:`RefineResult.object_array` (and the probe's) copy to the host only when a caller asks, so
a live view on a GPU run costs one copy per redraw, not one per epoch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["RefineResult", "RefineProgress", "ModeChoice"]


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.complex64).numpy().copy()


@dataclasses.dataclass(frozen=True)
class ModeChoice:
    """What a probe-modes trial chose (:func:`ptycho_nb.refine.probe_start.choose_modes`):
    ``modes`` (1 or the count tried), each count's mean deviance per pixel (the single mode's
    converged, the trial's after its ``epochs``; no trial when the single mode was at the
    noise ``floor``, also per pixel), and the trial's wall ``seconds``."""

    modes: int
    deviance: dict[int, float]
    epochs: int
    seconds: float = 0.0
    floor: float = float("nan")


@dataclasses.dataclass(frozen=True)
class RefineResult:
    """What :func:`ptycho_nb.refine.refine` returns.

    Attributes
    ----------
    object : complex64 tensor, (H, W), on :attr:`device`
        The refined object (the best held-out epoch's with a holdout).
    probe : complex64 tensor, (N, N) or (K, N, N), on :attr:`device`
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
    device : str
        Where it ran ('cpu', 'cuda:0', ...).
    positions : float64 tensor (M, 2) or None
        The patterns' positions [x, y] in the frame's pixels as refined, on :attr:`device`
        (None without position correction: the scan's own).
    modes : ModeChoice or None
        How many incoherent probe modes the data chose (None: no choice was made).
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
    device: str = "cpu"
    positions: torch.Tensor | None = None
    modes: ModeChoice | None = None

    def object_array(self) -> np.ndarray:
        """The object as a host array, (H, W) complex64 (a copy)."""
        return _host(self.object)

    def probe_array(self) -> np.ndarray:
        """The probe as a host array, (N, N) or (K, N, N) complex64 (a copy)."""
        return _host(self.probe)


@dataclasses.dataclass(frozen=True)
class RefineProgress:
    """What a refinement callback sees after each epoch.

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
    object : complex64 tensor, (H, W), on the refinement's device
        The current object (a live view: copy it to keep it; :meth:`object_array` for the host).
    probe : complex64 tensor, (N, N) or (K, N, N), on the refinement's device
    stage : str
        '' for the refinement itself; ``'probe start k/n (NAME)'`` while the probe's starts are
        tried (:mod:`ptycho_nb.refine.probe_start`): ``epoch`` and ``max_epochs`` then count the
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

    def object_array(self) -> np.ndarray:
        """The current object as a host array, (H, W) complex64 (a copy)."""
        return _host(self.object)

    def probe_array(self) -> np.ndarray:
        """The current probe as a host array (a copy)."""
        return _host(self.probe)
