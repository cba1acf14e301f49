"""Canonical configs: the model, training and inference settings that define a reconstruction.

These are the physics/data/training settings (spec §5). Runtime knobs live in
:class:`~ptycho_nb.config.execution.PyTorchExecutionConfig`. The legacy flat dict
(``ptycho_nb.params.cfg``) is filled from these configs only, by
:func:`~ptycho_nb.config.legacy.update_legacy_dict`.
"""

from __future__ import annotations

import dataclasses
import pathlib

from .fields import ConfigError, config_field, validate_fields
from .serialize import ConfigBase

__all__ = ["ModelConfig", "TrainingConfig", "InferenceConfig", "BACKENDS", "AMP_ACTIVATIONS"]

BACKENDS = ("pytorch", "tensorflow")
AMP_ACTIVATIONS = ("sigmoid", "softplus", "swish", "relu")
_TRAIN, _INFER, _TRAIN_INFER = ("train",), ("infer",), ("train", "infer")


def _check_backend(owner: str, backend: str) -> None:
    if backend == "tensorflow":
        raise ConfigError(
            f"{owner}.backend='tensorflow' is not supported: ptycho_nb implements the PyTorch path "
            "only (backend='pytorch'); use upstream PtychoPINN for the TensorFlow backend",
            fields=("backend",), value=backend,
        )


@dataclasses.dataclass(frozen=True)
class ModelConfig(ConfigBase):
    """Network and physics-model settings (what a trained model *is*)."""

    SECTION = "model"

    N: int = config_field(
        64, category="model", kind="int", min=16, units="pixels", flags=("--N",), modes=_TRAIN,
        rule="even", lands="network + physics",
        help="Diffraction pattern / object patch size N×N.",
    )
    gridsize: int = config_field(
        1, category="model", kind="int", min=1, max=4, flags=("--gridsize",), modes=_TRAIN,
        lands="grouping + network channels",
        help="Group gridsize×gridsize neighbouring patterns per sample (overlap constraint).",
    )
    n_filters_scale: int = config_field(
        2, category="model", kind="int", min=1, flags=("--n-filters-scale",), modes=_TRAIN,
        lands="network width", help="Multiplier of the number of convolution filters.",
    )
    amp_activation: str = config_field(
        "sigmoid", category="model", kind="str", choices=AMP_ACTIVATIONS,
        flags=("--amp-activation",), modes=_TRAIN, lands="network output",
        help="Activation of the amplitude output.",
    )
    object_big: bool = config_field(
        True, category="model", kind="bool", flags=("--object-big",), neg_flags=("--no-object-big",),
        modes=_TRAIN, lands="network (merge patches in real space)",
        help="Reconstruct one object region per group (merged patches) rather than per pattern.",
    )
    probe_big: bool = config_field(
        True, category="model", kind="bool", flags=("--probe-big",), neg_flags=("--no-probe-big",),
        modes=_TRAIN, lands="network output size",
        help="Predict the full N×N patch (True) or only its central N/2×N/2 from the 2×2-binned "
             "pattern (False: ~3× cheaper; right when the probe lights only the central half).",
    )
    probe_mask: bool = config_field(
        False, category="model", kind="bool", flags=("--probe-mask",), neg_flags=("--no-probe-mask",),
        modes=_TRAIN, lands="physics", help="Apply a circular mask to the probe.",
    )
    probe_input: bool = config_field(
        False, category="model", kind="bool", flags=("--probe-input",), neg_flags=("--no-probe-input",),
        modes=_TRAIN, lands="network input + physics",
        help="Condition the network on the probe (its far field, amplitude and phase enter as extra "
             "input channels, and each pattern enters as its departure from that far field) and "
             "normalise the input per scan, so one model can serve scans made with other probes "
             "and doses; samples may carry their own probe.",
    )
    gaussian_smoothing_sigma: float = config_field(
        0.0, category="model", kind="float", min=0.0, max=100.0, flags=("--gaussian-smoothing-sigma",),
        modes=_TRAIN, units="pixels", lands="network output",
        help="Gaussian smoothing of the predicted object (0 = none).",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.N % 2:
            raise ConfigError(
                f"ModelConfig.N={self.N!r} is invalid: rule is an even integer ≥ 16",
                fields=("N",), value=self.N,
            )


@dataclasses.dataclass(frozen=True)
class TrainingConfig(ConfigBase):
    """What to train on, for how long, and with which loss."""

    SECTION = "training"

    train_data_file: pathlib.Path | None = config_field(
        None, category="data", kind="path", optional=True, flags=("--train-data", "--train_data_file"),
        modes=_TRAIN, lands="data loading",
        help="Training scan (.npz or .h5); None when the data are passed in memory.",
    )
    test_data_file: pathlib.Path | None = config_field(
        None, category="data", kind="path", optional=True, flags=("--test-data", "--test_data_file"),
        modes=_TRAIN, lands="data loading (validation / final reconstruction)",
        help="Held-out scan for validation and the final reconstruction.",
    )
    n_groups: int | None = config_field(
        None, category="data", kind="int", optional=True, min=1, flags=("--n-groups",), modes=_TRAIN,
        lands="grouping", help="Number of groups (samples) drawn from the scan (None = all).",
    )
    neighbor_count: int = config_field(
        4, category="data", kind="int", min=1, flags=("--neighbor-count",), modes=_TRAIN,
        lands="grouping", rule="≥ gridsize² (checked by check_compatible)",
        help="Nearest neighbours considered when grouping patterns.",
    )
    validation_fraction: float = config_field(
        0.1, category="data", kind="float", min=0.0, max=1.0, max_exclusive=True,
        flags=("--validation-fraction",), modes=_TRAIN, lands="data split",
        help="Fraction of training groups held out for val_* metrics when no test data are given (0 = none).",
    )
    # Kept as written (a path, or "pretrained:NAME" which pathlib leaves intact); the workflows
    # resolve it when the model is loaded, so a saved config still says which model it started from.
    init_model: pathlib.Path | None = config_field(
        None, category="training", kind="path", optional=True, flags=("--init", "--init-model"),
        modes=_TRAIN, lands="model weights before training",
        rule="or pretrained:NAME; ModelConfig fields other than gridsize and object_big must "
             "agree with that model's",
        help="Start from this model's weights — a wts.h5.zip archive, a training output folder or "
             "pretrained:NAME — instead of random ones (fine-tuning); the model settings "
             "(ModelConfig) come from that model, and a ModelConfig that contradicts it is an error "
             "naming the field (gridsize and object_big may differ: the network is per pattern).",
    )
    batch_size: int = config_field(
        16, category="training", kind="int", min=1, flags=("--batch-size",), modes=_TRAIN,
        lands="DataLoader(batch_size)", help="Training batch size.",
    )
    nepochs: int = config_field(
        50, category="training", kind="int", min=1, flags=("--nepochs", "--max-epochs"), modes=_TRAIN,
        lands="Trainer(max_epochs)", help="Number of training epochs.",
    )
    seed: int | None = config_field(
        # seed_everything takes unsigned 32-bit seeds only
        0, category="training", kind="int", optional=True, min=0, max=2**32 - 1, flags=("--seed",),
        modes=_TRAIN, lands="lightning.seed_everything", help="Random seed (None = not seeded).",
    )
    probe_trainable: bool = config_field(
        False, category="training", kind="bool", flags=("--probe-trainable",),
        neg_flags=("--no-probe-trainable",), modes=_TRAIN, lands="LightningModule (probe parameter)",
        help="Refine the probe during training.",
    )
    intensity_scale_trainable: bool = config_field(
        True, category="training", kind="bool", flags=("--intensity-scale-trainable",),
        neg_flags=("--no-intensity-scale-trainable",), modes=_TRAIN,
        lands="LightningModule (intensity scale parameter)",
        help="Learn the intensity scale during training.",
    )
    mae_weight: float = config_field(
        0.0, category="loss", kind="float", min=0.0, max=1e6, flags=("--mae-weight",), modes=_TRAIN,
        lands="loss", rule="mae_weight + nll_weight > 0",
        help="Weight of the amplitude MAE loss term.",
    )
    nll_weight: float = config_field(
        1.0, category="loss", kind="float", min=0.0, max=1e6, flags=("--nll-weight",), modes=_TRAIN,
        lands="loss", rule="mae_weight + nll_weight > 0",
        help="Weight of the Poisson negative log-likelihood loss term.",
    )
    output_dir: pathlib.Path = config_field(
        pathlib.Path("training_outputs"), category="output", kind="path",
        flags=("--output-dir", "--output_dir"), modes=_TRAIN, lands="archive, checkpoints, logs",
        help="Folder for the model archive, checkpoints and logs.",
    )
    backend: str = config_field(
        "pytorch", category="output", kind="str", choices=BACKENDS, flags=("--backend",), modes=_TRAIN,
        rule="'tensorflow' is refused (upstream PtychoPINN implements it)", lands="dispatch",
        help="Reconstruction backend.",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        _check_backend("TrainingConfig", self.backend)
        if self.mae_weight + self.nll_weight <= 0:
            raise ConfigError(
                f"TrainingConfig.mae_weight={self.mae_weight!r} and nll_weight={self.nll_weight!r} "
                "are invalid together: rule is mae_weight + nll_weight > 0",
                fields=("mae_weight", "nll_weight"), value=self.mae_weight,
            )


@dataclasses.dataclass(frozen=True)
class InferenceConfig(ConfigBase):
    """What to reconstruct, with which trained model, and where to write the results."""

    SECTION = "inference"

    model_path: pathlib.Path | None = config_field(
        None, category="data", kind="path", optional=True, flags=("--model-path", "--model_path"),
        modes=_INFER, lands="archive loading",
        help="Trained model: a wts.h5.zip archive, the training output folder holding one, or "
             "pretrained:NAME (a model shipped with the package).",
    )
    test_data_file: pathlib.Path | None = config_field(
        None, category="data", kind="path", optional=True, flags=("--test-data", "--test_data_file"),
        modes=_INFER, lands="data loading", help="Scan to reconstruct (.npz or .h5).",
    )
    n_groups: int | None = config_field(
        None, category="data", kind="int", optional=True, min=1, flags=("--n-groups",), modes=_INFER,
        lands="grouping", help="Number of groups to reconstruct (None = all).",
    )
    fine_tune_epochs: int = config_field(
        0, category="training", kind="int", min=0, max=10_000, flags=("--fine-tune-epochs",),
        modes=_INFER, lands="reconstruct: self-supervised epochs on the scan before inference",
        help="reconstruct only: epochs of self-supervised fine-tuning of the model on the scan "
             "itself before its single pass (0 = none; needs a model).",
    )
    refine_epochs: int = config_field(
        200, category="refinement", kind="int", min=0, max=100_000, flags=("--refine-epochs",),
        modes=_INFER, lands="physics refinement after stitching (a cap: it stops on a plateau)",
        help="Most epochs of physics refinement of the stitched object against the scan's own "
             "diffraction (Poisson likelihood); the run stops earlier when the data stop "
             "improving (refine_tolerance); 0 = the network's single-pass reconstruction only. "
             "When a converged single probe mode leaves the data above the noise floor and more "
             "modes explain them (refine_probe_modes='auto'), the modes' refinement has this cap "
             "of its own.",
    )
    refine_step: float = config_field(
        1.0, category="refinement", kind="float", min=0.0, min_exclusive=True, max=2.0,
        flags=("--refine-step",), modes=_INFER, lands="physics refinement (update step)",
        help="Relative step of each refinement update: 1 = the full step of the likelihood "
             "per pixel (refine_poisson_step), divided by the illumination.",
    )
    refine_alpha: float = config_field(
        0.3, category="refinement", kind="float", min=0.0, min_exclusive=True, max=1.0,
        flags=("--refine-alpha",), modes=_INFER, lands="physics refinement (update denominator)",
        help="Weight of the brightest illumination in each update's denominator, as in "
             "regularised PIE: (1-alpha)·|P|² + alpha·max|P|²; larger = steadier steps where "
             "the probe is dim (0.3 measured best at 10³ photons, equal elsewhere).",
    )
    refine_momentum: float | None = config_field(
        None, category="refinement", kind="float", optional=True, min=0.0, max=0.99,
        flags=("--refine-momentum",), modes=_INFER, lands="physics refinement (acceleration)",
        help="Fraction of the accumulated past epochs' change added to the object after every "
             "epoch (momentum-accelerated updates); 0 = off; None = 0.85 for the object alone, "
             "0 with refine_probe (measured best for each).",
    )
    refine_batch_size: int = config_field(
        64, category="refinement", kind="int", min=1, max=1_000_000, flags=("--refine-batch-size",),
        modes=_INFER, lands="physics refinement (patterns per update)",
        help="Patterns per refinement update at the start; doubled on every plateau up to the "
             "whole scan (small batches move fast, large ones average the noise).",
    )
    refine_tolerance: float = config_field(
        1e-3, category="refinement", kind="float", min=0.0, max=1.0,
        flags=("--refine-tolerance",), modes=_INFER, lands="physics refinement (stopping rule)",
        help="Plateau: the deviance improved by less than this fraction over refine_patience "
             "epochs; at the whole-scan batch it ends the refinement.",
    )
    refine_patience: int = config_field(
        3, category="refinement", kind="int", min=1, max=1000, flags=("--refine-patience",),
        modes=_INFER, lands="physics refinement (stopping rule)",
        help="Epochs over which the plateau rule (and the holdout guard) looks back.",
    )
    refine_probe: bool | str = config_field(
        "auto", category="refinement", kind="bool_or_auto", choices=("auto", True, False),
        flags=("--refine-probe",), neg_flags=("--no-refine-probe",), modes=_INFER,
        lands="physics refinement (probe updates)",
        help="Refine the probe too (from the third epoch on), starting from the model's probe or "
             "the scan's own when the model reads it, or from the mean pattern "
             "(refine_probe_init). 'auto' = refine unless the probe is known exact (a simulated "
             "scan's record says so and the refinement lights the object with that probe).",
    )
    refine_probe_modes: int | str = config_field(
        "auto", category="refinement", kind="int_or_auto", min=1, max=6,
        flags=("--refine-probe-modes",), modes=_INFER, lands="physics refinement (partial coherence)",
        help="With probe refinement: incoherent probe modes refined (a partially coherent beam); "
             "more than the probe has are made from it. 'auto' = a single-mode probe gets 3 "
             "modes when a short trial shows they explain the data better than one "
             "(deviance 10 % lower), else stays one.",
    )
    refine_positions: bool | str = config_field(
        "auto", category="refinement", kind="bool_or_auto", choices=("auto", True, False),
        flags=("--refine-positions",), neg_flags=("--no-refine-positions",), modes=_INFER,
        lands="physics refinement (position correction)",
        help="Correct each pattern's scan position from the data (after the object settles, the "
             "mean shift held at zero); the corrected positions come back in the reconstruction. "
             "'auto' = correct unless the positions are known exact (a simulated scan's record "
             "says so).",
    )
    refine_probe_init: str = config_field(
        "auto", category="refinement", kind="str", choices=("auto", "given", "patterns"),
        flags=("--refine-probe-init",), modes=_INFER, lands="physics refinement (probe start)",
        help="With refine_probe: the probe's start. 'given' = the probe as given; 'patterns' = "
             "the far-field amplitude of the scan's mean diffraction pattern with a defocus of "
             "either sign that gives the given probe's size; 'auto' = all three. Each runs 8 "
             "joint epochs and the best data fit (lowest deviance) continues.",
    )
    refine_poisson_step: str = config_field(
        "auto", category="refinement", kind="str", choices=("auto", "fisher", "newton"),
        flags=("--refine-poisson-step",), modes=_INFER, lands="physics refinement (update rule)",
        help="Far-field step of the Poisson likelihood: 'fisher' (Fisher scoring: converges to "
             "the maximum-likelihood object), 'newton' (the per-pixel Newton factor 2k/(λ+k): "
             "damped, stops short of it at low counts), 'auto' = fisher for the object alone, "
             "newton with refine_probe (measured best for each). Used when the likelihood "
             "(refine_noise_model) is Poisson.",
    )
    refine_noise_model: str = config_field(
        "auto", category="refinement", kind="str", choices=("auto", "poisson", "gaussian"),
        flags=("--refine-noise-model",), modes=_INFER, lands="physics refinement (likelihood)",
        help="Likelihood the refinement steps along: Poisson counts, Gaussian amplitudes (the "
             "modulus projection), or 'auto' = Poisson for the object alone, Gaussian with "
             "refine_probe (measured best for each: README \"One call for a new scan\").",
    )
    refine_holdout: float = config_field(
        0.0, category="refinement", kind="float", min=0.0, max=0.49,
        flags=("--refine-holdout",), modes=_INFER, lands="physics refinement (noise guard)",
        help="Fraction of the patterns held out of the updates; the refinement stops when their "
             "deviance stops improving and returns the best such epoch (0 = off).",
    )
    refine_start: str = config_field(
        "network", category="refinement", kind="str", choices=("network", "flat"),
        flags=("--refine-start",), modes=_INFER, lands="physics refinement (starting object)",
        help="Start from the network's reconstruction, or from a flat object (the control that "
             "measures what the network contributes).",
    )
    refine_probe_source: str = config_field(
        "auto", category="refinement", kind="str", choices=("auto", "model", "scan"),
        flags=("--refine-probe-source",), modes=_INFER, lands="physics refinement (probe)",
        help="Probe the refinement lights the object with: the model's, the scan's own, or "
             "'auto': the scan's when it is not the model's (another probe than the model was "
             "trained with), the model's otherwise (training may have refined it). The start is "
             "rescaled to the scan's counts under that probe.",
    )
    output_dir: pathlib.Path = config_field(
        pathlib.Path("inference_outputs"), category="output", kind="path",
        flags=("--output-dir", "--output_dir"), modes=_INFER,
        lands="reconstruction.npz, product.h5, PNG",
        help="Folder for reconstruction.npz, product.h5 and the figure.",
    )
    backend: str = config_field(
        "pytorch", category="output", kind="str", choices=BACKENDS, flags=("--backend",), modes=_INFER,
        rule="'tensorflow' is refused (upstream PtychoPINN implements it)", lands="dispatch",
        help="Reconstruction backend.",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        _check_backend("InferenceConfig", self.backend)
