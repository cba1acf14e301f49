"""Physics-informed LightningModule: network → (overlap merge) → probe · patch → far field → Poisson NLL.

Units (README "Units and conventions"): the batch holds raw diffraction *amplitudes* (sqrt counts); the probe is in
the data's units; the predicted counts are ``intensity_scale · |F{P · O}|²`` (ortho FFT) from
:func:`ptycho_nb.physics.forward.forward_amplitude` — no second forward model. The intensity
scale starts from the data (:func:`scaling_statistics`: mean total counts / Σ|P|², divided by
``AMPLITUDE_REFERENCE²`` so the mean object amplitude sits mid-range of the amplitude
activation) and is optionally trained (as a log). Optimisation is automatic, so Lightning's
gradient accumulation, clipping and the execution config's schedulers all apply.

Batch format: ``{'diffraction': (B, C, N, N) float amplitudes, 'offset_x': (B, C) float,
'offset_y': (B, C) float}`` (offsets = member − group centre, column / row, pixels; zeros for
gridsize 1).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import lightning as L
import numpy as np
import torch

from ..config.canonical import ModelConfig, TrainingConfig
from ..config.execution import PyTorchExecutionConfig
from ..physics.forward import forward_amplitude, poisson_nll
from .network import PtychoNet
from .optim import configure_optimizers as _configure_optimizers
from .overlap import merge_group_patches

__all__ = ["PINNModule", "scaling_statistics", "AMPLITUDE_REFERENCE", "EPOCHS_METRIC"]

#: Object amplitude that the initial intensity scale maps to the data's mean counts (the
#: midpoint of the sigmoid amplitude head); the trainable log scale refines it.
AMPLITUDE_REFERENCE = 0.5

#: Callback-metric name of the number of completed training epochs (bookkeeping, not history).
EPOCHS_METRIC = "epochs_completed"


def scaling_statistics(data: Any) -> dict[str, float]:
    """Fixed scaling statistics of a scan (plain floats, stored with the model).

    Parameters
    ----------
    data : PtychoData (or anything with ``diffraction`` (M, N, N) amplitudes and ``probe``)

    Returns
    -------
    dict
        ``input_scale``: mean diffraction amplitude (network input normalisation);
        ``mean_counts``: mean total counts per pattern;
        ``probe_power``: Σ|P|² over all probe modes;
        ``intensity_scale``: ``mean_counts / (probe_power · AMPLITUDE_REFERENCE²)``, the initial
        photons per unit of ``|F{P·O}|²``.
    """
    d = np.asarray(data.diffraction, dtype=np.float64)
    if d.ndim != 3 or d.shape[0] == 0:
        raise ValueError(f"data.diffraction: expected (M, N, N) amplitudes, got {d.shape}")
    p = np.asarray(data.probe)
    input_scale = float(d.mean())
    mean_counts = float((d ** 2).sum(axis=(1, 2)).mean())
    probe_power = float(np.sum(np.abs(p) ** 2))
    if not (input_scale > 0 and mean_counts > 0 and probe_power > 0):
        raise ValueError("data: diffraction and probe must be non-zero to derive scaling statistics "
                         f"(mean amplitude {input_scale}, mean counts {mean_counts}, Σ|P|² {probe_power})")
    return {
        "input_scale": input_scale,
        "mean_counts": mean_counts,
        "probe_power": probe_power,
        "intensity_scale": mean_counts / (probe_power * AMPLITUDE_REFERENCE ** 2),
    }


def _as_config(cls: type, value: Any) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(dict(value))
    raise TypeError(f"expected {cls.__name__}, a dict or None, got {type(value).__name__}")


def _circular_mask(n: int) -> torch.Tensor:
    r = torch.arange(n, dtype=torch.float32) - n / 2 + 0.5
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= (n / 2) ** 2).to(torch.float32)


class PINNModule(L.LightningModule):
    """Self-supervised PtychoPINN-style reconstruction model.

    Parameters
    ----------
    model : ModelConfig or dict
        N, gridsize, n_filters_scale, amp_activation, object_big (overlap merge for gridsize > 1),
        probe_big (True: predict the full N×N patch; False: predict the central N/2×N/2 from the
        2×-binned pattern), probe_mask (circular mask on the probe), gaussian_smoothing_sigma
        (smoothing of the predicted patches).
    training : TrainingConfig or dict
        probe_trainable, intensity_scale_trainable, nll_weight, mae_weight; nepochs (scheduler
        horizon).
    execution : PyTorchExecutionConfig or dict
        learning_rate and scheduler (via :func:`ptycho_nb.model.optim.configure_optimizers`).
    probe : ndarray (N, N) or (K, N, N) complex, optional
        The probe in the data's units (sqrt counts). None only when loading a checkpoint (the
        state dict then provides it; ``probe_shape`` gives its shape).
    scaling : dict
        :func:`scaling_statistics` of the training data (``input_scale``, ``intensity_scale``).
    network : dict, optional
        Extra :class:`~ptycho_nb.model.network.PtychoNet` keywords (depth, bottleneck_fc,
        input_bin, core), overriding what ModelConfig implies.
    probe_shape : sequence of int, optional
        Shape of the probe when ``probe`` is None.
    """

    def __init__(self, model: Any = None, training: Any = None, execution: Any = None,
                 probe: np.ndarray | None = None, scaling: Mapping[str, float] | None = None,
                 network: Mapping[str, Any] | None = None,
                 probe_shape: tuple[int, ...] | list[int] | None = None) -> None:
        super().__init__()
        mcfg = _as_config(ModelConfig, model)
        tcfg = _as_config(TrainingConfig, training)
        ecfg = _as_config(PyTorchExecutionConfig, execution)
        if scaling is None or "input_scale" not in scaling or "intensity_scale" not in scaling:
            raise ValueError("scaling: expected a dict with 'input_scale' and 'intensity_scale' "
                             "(see ptycho_nb.model.scaling_statistics)")
        scaling = {k: float(v) for k, v in dict(scaling).items()}
        n = mcfg.N
        if probe is None:
            if probe_shape is None:
                raise ValueError("probe: expected an (N, N) or (K, N, N) complex array (or probe_shape "
                                 "when loading from a checkpoint)")
            p = torch.zeros(tuple(int(s) for s in probe_shape), dtype=torch.complex64)
        else:
            p = torch.as_tensor(np.asarray(probe, dtype=np.complex64))
        if p.ndim not in (2, 3) or p.shape[-2:] != (n, n):
            raise ValueError(f"probe: expected ({n}, {n}) or (K, {n}, {n}) to match ModelConfig.N, "
                             f"got {tuple(p.shape)}")
        self.model_config, self.training_config, self.execution_config = mcfg, tcfg, ecfg
        self.scaling = scaling
        self.network_kwargs = dict(network or {})
        self.save_hyperparameters({
            "model": mcfg.to_dict(), "training": tcfg.to_dict(), "execution": ecfg.to_dict(),
            "scaling": scaling, "network": self.network_kwargs, "probe_shape": list(p.shape),
        }, ignore=["probe"])  # the probe lives in the state dict, not in the hyperparameters
        # probe_big=False: the probe lights only the central N/2, so the network predicts that
        # core (border continued) and reads the 2× oversampled pattern binned by 2 — ~3× faster.
        net_kw = {"core": not mcfg.probe_big, "input_bin": 1 if mcfg.probe_big else 2}
        net_kw.update(self.network_kwargs)
        self.net = PtychoNet(N=n, n_filters_scale=mcfg.n_filters_scale,
                             input_scale=scaling["input_scale"], amp_activation=mcfg.amp_activation,
                             smoothing_sigma=mcfg.gaussian_smoothing_sigma, **net_kw)
        if tcfg.probe_trainable:
            self.probe = torch.nn.Parameter(p.clone())
        else:
            self.register_buffer("probe", p.clone())
        self.register_buffer("probe_mask", _circular_mask(n) if mcfg.probe_mask else torch.ones(n, n))
        log_s = torch.tensor(math.log(scaling["intensity_scale"]), dtype=torch.float32)
        if tcfg.intensity_scale_trainable:
            self.log_intensity_scale = torch.nn.Parameter(log_s)
        else:
            self.register_buffer("log_intensity_scale", log_s)
        #: Whether validation data exist (for the Plateau monitor); None → asked of the trainer.
        self.has_validation: bool | None = None

    # ---------------------------------------------------------------- model
    @property
    def effective_probe(self) -> torch.Tensor:
        """The probe used by the physics (masked when ModelConfig.probe_mask)."""
        return self.probe * self.probe_mask

    @property
    def intensity_scale(self) -> torch.Tensor:
        return torch.exp(self.log_intensity_scale)

    def forward(self, diffraction: torch.Tensor, offset_x: torch.Tensor | None = None,
                offset_y: torch.Tensor | None = None) -> torch.Tensor:
        """Complex object patches (B, C, N, N), overlap-merged for gridsize > 1 (object_big)."""
        patches = self.net(diffraction)
        b, c = patches.shape[:2]
        if c > 1 and self.model_config.object_big:
            if offset_x is None or offset_y is None:
                raise ValueError("offset_x/offset_y: required for groups of C > 1 patterns")
            patches = merge_group_patches(patches, offset_x.to(patches.device), offset_y.to(patches.device))
        return patches

    def predict_amplitude(self, patches: torch.Tensor) -> torch.Tensor:
        """Predicted diffraction amplitudes (sqrt expected counts) of complex patches."""
        return forward_amplitude(self.effective_probe, patches, scale=self.intensity_scale)

    # ---------------------------------------------------------------- loss
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{'loss', 'nll', 'mae'}`` for a batch (nll is the Poisson deviance/2 per pixel, ≥ 0)."""
        meas = batch["diffraction"]
        if not meas.is_floating_point():
            meas = meas.float()
        patches = self(meas, batch.get("offset_x"), batch.get("offset_y"))
        pred = self.predict_amplitude(patches)
        out: dict[str, torch.Tensor] = {}
        eps = 1e-6
        k = meas ** 2
        # poisson_nll drops the k-only constant; subtracting its value at lam = k makes the logged
        # number the (half) Poisson deviance, 0 for a perfect fit. Gradients are unchanged.
        with torch.no_grad():
            floor = torch.mean(k - k * torch.log(k + eps))
        nll = poisson_nll(pred, meas, eps=eps) - floor
        t = self.training_config
        # With weight 0 (the default) the MAE is only logged: keep it out of the autograd graph,
        # so backward does not run through a term that contributes exactly nothing.
        with torch.set_grad_enabled(torch.is_grad_enabled() and t.mae_weight != 0):
            mae = torch.mean(torch.abs(pred - meas))
        out["nll"], out["mae"] = nll, mae
        out["loss"] = t.nll_weight * nll + t.mae_weight * mae
        return out

    def _log_parts(self, stage: str, parts: Mapping[str, torch.Tensor], batch_size: int) -> None:
        # Epoch means, synced across DDP ranks; only the total loss goes to the progress bar.
        for name, value in parts.items():
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True, prog_bar=name == "loss",
                     batch_size=batch_size, sync_dist=True)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.compute_loss(batch)
        bs = batch["diffraction"].shape[0]
        self._log_parts("train", parts, bs)
        self.log("intensity_scale", self.intensity_scale.detach(), on_step=False, on_epoch=True,
                 batch_size=bs, sync_dist=True)
        return parts["loss"]

    def on_train_epoch_end(self) -> None:
        # The epoch count as a metric: callback metrics are all that process-launching strategies
        # (ddp_spawn, ddp_notebook) hand back to the parent, whose own trainer never ran an epoch.
        self.log(EPOCHS_METRIC, float(self.current_epoch + 1), on_step=False, on_epoch=True,
                 logger=False, batch_size=1, sync_dist=True)  # the same on every rank

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.compute_loss(batch)
        self._log_parts("val", parts, batch["diffraction"].shape[0])
        return parts["loss"]

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch["diffraction"], batch.get("offset_x"), batch.get("offset_y"))

    def _has_validation(self) -> bool:
        if self.has_validation is not None:
            return bool(self.has_validation)
        # Not told (a module fitted by hand): ask the datamodule, else monitor train_* metrics,
        # which every epoch logs — a val_* monitor without validation data would fail the fit.
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached (an optimizer built by hand)
            return False
        return bool(getattr(trainer.datamodule, "has_validation", False)) and trainer.limit_val_batches != 0

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        return _configure_optimizers(self.execution_config, params,
                                     max_epochs=self.training_config.nepochs,
                                     has_validation=self._has_validation())
