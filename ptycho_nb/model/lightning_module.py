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
from ..physics.forward import far_field, forward_amplitude, forward_amplitude_per_sample, poisson_nll
from ..physics.single_pattern import pattern_estimate
from .context import group_context
from .network import PtychoNet
from .optim import configure_optimizers as _configure_optimizers
from .overlap import merge_group_patches
from .supervision import probe_weight, unexplained_variation

__all__ = ["PINNModule", "scaling_statistics", "probe_features", "AMPLITUDE_REFERENCE",
           "EPOCHS_METRIC", "PROBE_FEATURES"]

#: Object amplitude that the initial intensity scale maps to the data's mean counts (the
#: midpoint of the sigmoid amplitude head); the trainable log scale refines it.
AMPLITUDE_REFERENCE = 0.5

#: Callback-metric name of the number of completed training epochs (bookkeeping, not history).
EPOCHS_METRIC = "epochs_completed"

#: Conditioning channels of a ``probe_input`` network (see :func:`probe_features`).
PROBE_FEATURES = 3


def probe_features(probe: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
    """What a ``probe_input`` network sees of the probe: (B, 3, N, N) float.

    Channel 0 is the probe's far-field amplitude — the pattern of an empty object — normalised
    like the data (``log1p(|F{P}| / input_scale)``), so the network can compare the two in the
    detector plane; channels 1 and 2 are the probe's real-space amplitude (max 1) and its phase
    (rad / π) weighted by that amplitude, which says where and how the object is lit.

    Parameters
    ----------
    probe : complex tensor, (B, N, N) or (B, K, N, N) incoherent modes, sqrt(counts) units
    input_scale : tensor, (B,)
        Each sample's input statistic (its scan's mean diffraction amplitude).
    """
    modes = probe if probe.ndim == 4 else probe[:, None]
    far = torch.sqrt((far_field(modes).abs() ** 2).sum(dim=1))
    amp = torch.sqrt((modes.abs() ** 2).sum(dim=1))
    amp = amp / torch.clamp(amp.flatten(1).amax(dim=1), min=1e-12)[:, None, None]
    phase = torch.angle(modes[:, 0]) * amp / math.pi
    scale = input_scale.to(far.dtype).reshape(-1, 1, 1)
    return torch.stack([torch.log1p(far / scale), amp, phase], dim=1).to(torch.float32)


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
        input_bin, core, departure), overriding what ModelConfig implies. None (a new model):
        ``{'departure': True}`` for a ``probe_input`` model, else none; a loaded model passes
        what its archive recorded.
    probe_shape : sequence of int, optional
        Shape of the probe when ``probe`` is None.
    truth_weight : float
        > 0: training batches carry the true patches (``truth``, simulated scans only: e.g.
        :class:`~ptycho_nb.engine.varied_data.VariedScanDataset` with ``truth=True``) and the loss
        adds this times :func:`~ptycho_nb.model.supervision.unexplained_variation` of the
        (merged) patches. The pretrained recipe uses it; a scan being reconstructed has no truth
        (0, the default). Not written to model archives: a loaded model fine-tunes without it.
    """

    def __init__(self, model: Any = None, training: Any = None, execution: Any = None,
                 probe: np.ndarray | None = None, scaling: Mapping[str, float] | None = None,
                 network: Mapping[str, Any] | None = None,
                 probe_shape: tuple[int, ...] | list[int] | None = None,
                 truth_weight: float = 0.0) -> None:
        super().__init__()
        if isinstance(truth_weight, bool) or not isinstance(truth_weight, (int, float)) or not (
                math.isfinite(truth_weight) and truth_weight >= 0):
            raise ValueError(f"truth_weight: expected a finite float >= 0, got {truth_weight!r}")
        self.truth_weight = float(truth_weight)
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
        if network is None and mcfg.probe_input:
            # A new probe-conditioned network reads each pattern's departure from the probe's far
            # field (PtychoNet ``departure``); archives record it, and those written before it
            # existed (``network`` {} on load) keep reading the plain pattern.
            network = {"departure": True}
        self.network_kwargs = dict(network or {})
        self.save_hyperparameters({
            "model": mcfg.to_dict(), "training": tcfg.to_dict(), "execution": ecfg.to_dict(),
            "scaling": scaling, "network": self.network_kwargs, "probe_shape": list(p.shape),
            "truth_weight": self.truth_weight,
        }, ignore=["probe"])  # the probe lives in the state dict, not in the hyperparameters
        # probe_big=False: the probe lights only the central N/2, so the network predicts that
        # core (border continued) and reads the 2× oversampled pattern binned by 2 — ~3× faster.
        net_kw = {"core": not mcfg.probe_big, "input_bin": 1 if mcfg.probe_big else 2,
                  "cond_channels": PROBE_FEATURES if mcfg.probe_input else 0}
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

    def adopt_scan(self, data: Any) -> None:
        """Make a ``probe_input`` model serve a scan: its probe and its mean amplitude become the
        module's (a model trained on other probes and doses reads this scan through them)."""
        if not self.model_config.probe_input:
            raise ValueError("adopt_scan: only a ModelConfig(probe_input=True) model takes a scan's "
                             "probe; this model was trained for one probe")
        p = torch.as_tensor(np.asarray(data.probe, dtype=np.complex64))
        if tuple(p.shape[-2:]) != tuple(self.probe.shape[-2:]):
            raise ValueError(f"data.probe: expected (..., {self.probe.shape[-1]}, {self.probe.shape[-1]}) "
                             f"for this model, got {tuple(p.shape)}")
        stats = scaling_statistics(data)
        with torch.no_grad():
            if p.shape != self.probe.shape:
                self.probe = (torch.nn.Parameter(p.to(self.probe.device))
                              if isinstance(self.probe, torch.nn.Parameter) else p.to(self.probe.device))
            else:
                self.probe.copy_(p)
            self.net.input_scale.fill_(stats["input_scale"])
            # the scan's own count scale: amplitude AMPLITUDE_REFERENCE ↔ its mean counts
            self.log_intensity_scale.fill_(math.log(stats["intensity_scale"]))

    def network_patches(self, diffraction: torch.Tensor, probe: torch.Tensor | None = None,
                        input_scale: torch.Tensor | None = None,
                        count_scale: torch.Tensor | None = None, *,
                        offset_x: torch.Tensor | None = None, offset_y: torch.Tensor | None = None,
                        estimates: torch.Tensor | None = None, own_only: bool = False) -> torch.Tensor:
        """The network's patches (B, C, N, N) before any overlap merge: each pattern on its own
        (conditioned on the probe for ``probe_input`` models; default: the module's own).

        ``count_scale`` (B,) is each sample's intensity scale (default: the module's); a network
        with ``physics_steps`` reads each pattern's :func:`pattern_estimate` made with it. A
        ``context_patterns`` S > 1 network also reads the estimates of the pattern's group
        (:func:`~ptycho_nb.model.context.group_context`): ``diffraction`` is then (B, S, N, N)
        groups with positions ``offset_x``/``offset_y`` (B, S); ``estimates`` (B, S, N, N) may
        give the members' estimates (made once per scan); ``own_only`` returns member 0's patch
        alone (B, 1, N, N), and ``diffraction`` may then hold member 0's pattern alone.
        """
        estimate = weight = None
        d = diffraction
        if self.net.context_patterns > 1:
            d, estimate, weight = self._context_inputs(diffraction, probe, count_scale, offset_x,
                                                       offset_y, estimates, own_only)
        elif self.net.physics_steps:
            estimate = self.pattern_estimates(diffraction, probe, count_scale)
        if not self.model_config.probe_input:
            return self.net(d, estimate=estimate, estimate_weight=weight)
        b = diffraction.shape[0]
        if probe is None:
            probe = self.effective_probe.expand(b, *self.effective_probe.shape)
        else:
            probe = probe * self.probe_mask
        if input_scale is None:
            input_scale = self.net.input_scale.expand(b)
        return self.net(d, probe_features(probe, input_scale), input_scale, estimate=estimate,
                        estimate_weight=weight)

    def _lit(self, probe: torch.Tensor | None) -> torch.Tensor:
        """Where the probe lights a patch (:func:`probe_weight`): the module's (N, N), or each
        sample's (B, N, N) for per-sample probes (B, N, N) or (B, K, N, N)."""
        if probe is None:
            return probe_weight(self.effective_probe.detach())
        p = (probe * self.probe_mask).detach()
        return probe_weight(p[:, None] if p.ndim == 3 else p)

    def _context_inputs(self, diffraction: torch.Tensor, probe: torch.Tensor | None,
                        count_scale: torch.Tensor | None, offset_x: torch.Tensor | None,
                        offset_y: torch.Tensor | None, estimates: torch.Tensor | None,
                        own_only: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The patterns a context network maps and their contexts (see :meth:`network_patches`)."""
        s = self.net.context_patterns
        b, c, n, _ = diffraction.shape
        if offset_x is None or offset_y is None:
            raise ValueError(f"offset_x/offset_y: a network reading {s} patterns' estimates needs "
                             "the positions of each pattern's group")
        if c != s and (not own_only or estimates is None):
            raise ValueError(f"diffraction: expected groups of {s} patterns (gridsize {math.isqrt(s)}) "
                             f"for a network with context_patterns={s}, got {c} (own_only with the "
                             "members' estimates serves member 0 alone)")
        if estimates is None:
            estimates = self.pattern_estimates(diffraction, probe, count_scale)
        elif tuple(estimates.shape) != (b, s, n, n):
            raise ValueError(f"estimates: expected ({b}, {s}, {n}, {n}), got {tuple(estimates.shape)}")
        ctx, ctx_w = group_context(estimates, offset_x, offset_y, self._lit(probe), own_only=own_only)
        return (diffraction[:, :1] if own_only else diffraction), ctx, ctx_w

    def pattern_estimates(self, diffraction: torch.Tensor, probe: torch.Tensor | None = None,
                          count_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Each pattern's physics estimate (B, C, N, N) complex, divided by its flat start
        (:func:`~ptycho_nb.physics.single_pattern.pattern_estimate` with ``physics_steps`` steps,
        the module's probe and intensity scale unless per-sample ones are given)."""
        b, c, n, _ = diffraction.shape
        if probe is None:
            p = self.effective_probe.detach()
            scale = self.intensity_scale.detach()
        else:
            p = (probe * self.probe_mask).detach()
            p = p[:, None] if p.ndim == 3 else p  # (B, K, N, N)
            p = p.repeat_interleave(c, dim=0)
            scale = (self.intensity_scale.detach().expand(b) if count_scale is None
                     else count_scale.detach().to(torch.float32).reshape(b))
            scale = scale.repeat_interleave(c)
        amp = diffraction.detach().reshape(b * c, n, n).to(torch.float32)
        with torch.no_grad():
            est = pattern_estimate(amp, p, self.net.physics_steps, scale=scale, start=AMPLITUDE_REFERENCE)
        return (est / AMPLITUDE_REFERENCE).reshape(b, c, n, n)

    def forward(self, diffraction: torch.Tensor, offset_x: torch.Tensor | None = None,
                offset_y: torch.Tensor | None = None, probe: torch.Tensor | None = None,
                input_scale: torch.Tensor | None = None,
                count_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Complex object patches (B, C, N, N), overlap-merged for gridsize > 1 (object_big).

        ``probe`` (B, N, N), ``input_scale`` (B,) and ``count_scale`` (B,) give each sample its
        own probe, input statistic and intensity scale (``probe_input`` models; default: the
        module's own).
        """
        patches = self.network_patches(diffraction, probe, input_scale, count_scale,
                                       offset_x=offset_x, offset_y=offset_y)
        b, c = patches.shape[:2]
        if c > 1 and self.model_config.object_big:
            if offset_x is None or offset_y is None:
                raise ValueError("offset_x/offset_y: required for groups of C > 1 patterns")
            patches = merge_group_patches(patches, offset_x.to(patches.device), offset_y.to(patches.device))
        return patches

    def predict_amplitude(self, patches: torch.Tensor, probe: torch.Tensor | None = None,
                          count_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted diffraction amplitudes (sqrt expected counts) of complex patches (B, C, N, N);
        ``probe`` (B, N, N) lights each sample with its own probe, ``count_scale`` (B,) gives each
        its own intensity scale (default: the module's)."""
        if probe is not None:
            scale = (self.intensity_scale if count_scale is None
                     else count_scale.to(patches.real.dtype).reshape(-1, 1, 1, 1))
            return forward_amplitude_per_sample(probe * self.probe_mask, patches, scale=scale)
        return forward_amplitude(self.effective_probe, patches, scale=self.intensity_scale)

    # ---------------------------------------------------------------- loss
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{'loss', 'nll', 'mae'}`` for a batch (nll is the Poisson deviance/2 per pixel, ≥ 0),
        and ``'truth'`` with ``truth_weight`` > 0.

        Optional batch keys: ``probe`` (B, N, N) per-sample probes, ``input_scale`` (B,) per-sample
        input statistics, ``count_scale`` (B,) per-sample intensity scales (with ``probe``),
        ``loss_weight`` (B,) per-sample weights of the deviance, ``truth`` (B, C, N, N) complex
        true patches (needed exactly when ``truth_weight`` > 0).
        """
        meas = batch["diffraction"]
        if not meas.is_floating_point():
            meas = meas.float()
        probe = batch.get("probe")
        patches = self(meas, batch.get("offset_x"), batch.get("offset_y"), probe=probe,
                       input_scale=batch.get("input_scale"), count_scale=batch.get("count_scale"))
        pred = self.predict_amplitude(patches, probe, batch.get("count_scale"))
        out: dict[str, torch.Tensor] = {}
        eps = 1e-6
        k = meas ** 2
        # poisson_nll drops the k-only constant; subtracting its value at lam = k makes the logged
        # number the (half) Poisson deviance, 0 for a perfect fit. Gradients are unchanged.
        weight = batch.get("loss_weight")
        if weight is None:
            with torch.no_grad():
                floor = torch.mean(k - k * torch.log(k + eps))
            nll = poisson_nll(pred, meas, eps=eps) - floor
        else:
            # Samples of different doses: the deviance grows with the counts, so each sample's is
            # weighted (e.g. by 1 / its mean counts per pixel) lest the brightest scans dominate.
            lam = pred ** 2
            with torch.no_grad():
                floor_el = k - k * torch.log(k + eps)
            per_sample = (lam - k * torch.log(lam + eps) - floor_el).flatten(1).mean(dim=1)
            nll = torch.mean(weight.to(per_sample.dtype) * per_sample)
        t = self.training_config
        # With weight 0 (the default) the MAE is only logged: keep it out of the autograd graph,
        # so backward does not run through a term that contributes exactly nothing.
        with torch.set_grad_enabled(torch.is_grad_enabled() and t.mae_weight != 0):
            mae = torch.mean(torch.abs(pred - meas))
        out["nll"], out["mae"] = nll, mae
        out["loss"] = t.nll_weight * nll + t.mae_weight * mae
        if self.truth_weight > 0:
            truth = batch.get("truth")
            if truth is None:
                raise ValueError("batch: 'truth' (B, C, N, N) true patches are needed with truth_weight "
                                 f"{self.truth_weight} (simulated scans only; 0 trains without them)")
            out["truth"] = unexplained_variation(patches, truth, self._lit(probe))
            out["loss"] = out["loss"] + self.truth_weight * out["truth"]
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
