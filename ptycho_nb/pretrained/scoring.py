"""Model-card scores of a pretrained model: how it does on what it never saw, and whether it
reads its input at all.

The shipped generalist's recipe (``recipes/generalist_n64.py``, outside the installed package)
scores its model with :func:`evaluate` and writes :func:`model_card` into the archive; the tests
and ``bench/generalist_targets.py`` use the same functions. Scores are of the network alone (no
refinement), beside their controls: a flat object, and for a network that reads per-pattern
physics estimates those estimates stitched alone (:func:`estimate_object`).
"""

from __future__ import annotations

import platform
import time
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch

from ..config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ..engine.predict import context_dataset
from ..metrics import compare
from ..model.lightning_module import AMPLITUDE_REFERENCE, PINNModule
from ..model.stitching import StitchedObject, stitch_patches
from ..physics import extract_patches, simulate
from ..physics.varied import VariedSpec
from ..version import __version__
from ..workflows.inference import infer

__all__ = ["evaluate", "output_variation", "estimate_object", "model_card", "collapsed",
           "COLLAPSED_BELOW", "HELD_OUT_OBJECTS", "HELD_OUT_PROBES", "TRAINED_PROBE_FOR_SCORES",
           "TrainingRecipe"]

#: Object kinds and the probe family the generalist never sees in training: its model card
#: scores are measured on them (``lines`` is also the never-seen object of bench/compare_iterative.py).
HELD_OUT_OBJECTS = ("lines", "siemens")
HELD_OUT_PROBES = ("zone_plate",)
TRAINED_PROBE_FOR_SCORES = "disc"
#: A model whose median :func:`output_variation` over the scored scans lies below this has
#: collapsed to one output (measured: networks trained on one scan 0.73–1.08 on never-seen
#: scans, the CPU-trained generalists 0.05–0.19); its card says so and it must not ship.
COLLAPSED_BELOW = 0.3


class TrainingRecipe(Protocol):
    """What a model card records of the recipe that trained the model."""

    @property
    def spec(self) -> VariedSpec: ...

    @property
    def model(self) -> ModelConfig: ...

    @property
    def training(self) -> TrainingConfig: ...

    @property
    def execution(self) -> PyTorchExecutionConfig: ...

    @property
    def network(self) -> Mapping[str, Any]: ...

    @property
    def truth_weight(self) -> float: ...


def output_variation(module: PINNModule, scan: Any, *, n: int = 256) -> float:
    """How much the network's patches change from pattern to pattern, relative to the truth's.

    The phase of each of the first ``n`` patterns' patches (the network alone, each pattern on
    its own, no overlap merge), its standard deviation across patterns at every pixel the probe
    lights (intensity above a tenth of its peak), averaged over those pixels; divided by the
    same of the true object's patches at the scan's positions. About 1 for a network that reads
    its input; near 0 for one that has collapsed to a constant output (the "predict the mean"
    minimum of the self-supervised loss), whatever its SSIM. ``module`` adopts the scan's probe
    when it is a ``probe_input`` model.
    """
    if scan.object is None:
        raise ValueError("output_variation: the scan has no ground-truth object")
    if module.model_config.probe_input:
        module.adopt_scan(scan)
    n = min(int(n), len(scan.diffraction))
    d = torch.from_numpy(np.ascontiguousarray(scan.diffraction[:n], dtype=np.float32)).unsqueeze(1)
    was = module.training
    module.eval()
    with torch.no_grad():
        if module.net.context_patterns > 1:  # each pattern with the group seeded at it, as infer
            t = module.training_config
            ds = context_dataset(module, scan.diffraction, scan.xcoords, scan.ycoords, np.arange(n),
                                 neighbor_count=t.neighbor_count, seed=t.seed)
            b = torch.utils.data.default_collate([ds[i] for i in range(n)])
            net = module.network_patches(b["diffraction"], offset_x=b["offset_x"], offset_y=b["offset_y"],
                                         estimates=b["estimates"], own_only=True)[:, 0].numpy()
        else:
            net = module.network_patches(d)[:, 0].numpy()
    module.train(was)
    truth = extract_patches(torch.from_numpy(np.asarray(scan.object)),
                            torch.as_tensor(np.asarray(scan.xcoords[:n], dtype=np.float32)),
                            torch.as_tensor(np.asarray(scan.ycoords[:n], dtype=np.float32)),
                            net.shape[-1]).numpy()
    lit = np.abs(np.asarray(scan.probe)) ** 2
    lit = lit.sum(axis=0) if lit.ndim == 3 else lit
    lit = lit > 0.1 * lit.max()
    spread_truth = float(np.angle(truth)[:, lit].std(axis=0).mean())
    if not spread_truth > 0:
        raise ValueError("output_variation: the true object's phase does not vary over the scan")
    return float(np.angle(net)[:, lit].std(axis=0).mean()) / spread_truth


def evaluate(module: PINNModule, *, n_positions: int = 1000, doses: Sequence[float] = (1e6, 1e4, 1e3),
             seed: int = 7) -> list[dict[str, Any]]:
    """Network-alone scores on scans of object kinds (and a probe family) training never drew.

    For each held-out object kind × {a trained probe family, an unseen one} × dose: a scan of
    ``n_positions`` patterns of the module's N×N (``ptycho_nb.simulate``), reconstructed with
    ``refine_epochs=0``; aligned phase and amplitude SSIM against the ground truth, beside the
    same scores of a flat object in the same frame (the control: what a network that learned
    nothing scores), for a ``physics_steps`` network the same of its input's physics estimates
    stitched (:func:`estimate_object`: what the network adds to what it is fed), and the
    network's :func:`output_variation` (whether it reads its input at all).

    Parameters
    ----------
    module : PINNModule
        The model scored (it adopts each scan's probe when it is a ``probe_input`` model).
    n_positions : int
        Patterns per scored scan.
    doses : sequence of float
        Photons per pattern of the scored scans.
    seed : int
        Seed of every scored scan.

    Returns
    -------
    list of dict
        One row per object kind × probe × dose: ``object``, ``probe``, ``probe_seen``,
        ``photons``, ``phase_ssim``, ``amplitude_ssim``, ``flat_phase_ssim``,
        ``flat_amplitude_ssim``, ``seconds`` (of the ``infer`` call), for a ``physics_steps``
        network ``estimate_phase_ssim`` and ``estimate_amplitude_ssim``, and
        ``output_variation``.
    """
    rows = []
    for kind in HELD_OUT_OBJECTS:
        for probe_kind in (TRAINED_PROBE_FOR_SCORES, *HELD_OUT_PROBES):
            for dose in doses:
                scan = simulate(N=module.model_config.N, object_kind=kind, probe_kind=probe_kind,
                                n_positions=n_positions, photons_per_pattern=dose, seed=seed)
                module.adopt_scan(scan)
                t0 = time.perf_counter()
                rec = infer(module, scan, refine_epochs=0)
                m = compare(rec.object, scan.object, offset=rec.offset, xcoords=rec.xcoords,
                            ycoords=rec.ycoords, probe=rec.probe)
                # a faint seeded texture keeps SSIM defined (a constant image has no variance)
                flat = np.exp(1e-3j * np.random.default_rng(0).standard_normal(rec.object.shape))
                f = compare(flat.astype(np.complex64), scan.object, offset=rec.offset,
                            xcoords=rec.xcoords, ycoords=rec.ycoords, probe=rec.probe)
                rows.append({"object": kind, "probe": probe_kind,
                             "probe_seen": probe_kind not in HELD_OUT_PROBES, "photons": dose,
                             "phase_ssim": round(float(m["phase_ssim"]), 4),
                             "amplitude_ssim": round(float(m["amplitude_ssim"]), 4),
                             "flat_phase_ssim": round(float(f["phase_ssim"]), 4),
                             "flat_amplitude_ssim": round(float(f["amplitude_ssim"]), 4),
                             "seconds": round(time.perf_counter() - t0, 2)})
                if module.net.physics_steps:
                    est = estimate_object(module, scan)
                    e = compare(est.object, scan.object, offset=est.offset,
                                xcoords=rec.xcoords, ycoords=rec.ycoords, probe=rec.probe)
                    rows[-1]["estimate_phase_ssim"] = round(float(e["phase_ssim"]), 4)
                    rows[-1]["estimate_amplitude_ssim"] = round(float(e["amplitude_ssim"]), 4)
                rows[-1]["output_variation"] = round(output_variation(module, scan), 4)
    return rows


def estimate_object(module: PINNModule, scan: Any, *, batch: int = 256) -> StitchedObject:
    """The control of a ``physics_steps`` network: its input's per-pattern physics estimates,
    stitched as :func:`~ptycho_nb.infer` stitches the network's patches (probe-weighted, the
    frame of the scan positions), so the network's contribution over what it is fed is a number."""
    if not module.net.physics_steps:
        raise ValueError("estimate_object: this network reads no physics estimate (physics_steps 0)")
    if module.model_config.probe_input:
        module.adopt_scan(scan)
    d = torch.from_numpy(np.ascontiguousarray(scan.diffraction, dtype=np.float32)).unsqueeze(1)
    est = torch.cat([module.pattern_estimates(d[i:i + batch])[:, 0] for i in range(0, len(d), batch)])
    probe = module.effective_probe.detach().cpu()
    return stitch_patches(est * AMPLITUDE_REFERENCE, scan.xcoords, scan.ycoords, probe)


def model_card(r: TrainingRecipe, facts: Mapping[str, Any], scores: Sequence[dict[str, Any]], *,
               name: str, command: str, commit: str | None, minutes: float, seed: int,
               threads: int | None) -> dict[str, Any]:
    """The card stored in the archive (``save_model(..., card=...)``) and repeated in the docs.

    Parameters
    ----------
    r : TrainingRecipe
        What defined the run (``recipes/generalist_n64.py``'s ``Recipe``).
    facts : mapping
        What the training run recorded (device, epochs, steps, samples seen, ...).
    scores : sequence of dict
        The rows of :func:`evaluate`.
    name : str
        The model's name.
    command : str
        The command line that retrains it.
    commit : str or None
        The commit of the code that scored it (None outside a git checkout).
    minutes : float
        The run's training budget, minutes.
    seed : int
    threads : int or None
        torch threads of the run.
    """
    return {
        "name": name,
        "what": f"probe-conditioned PtychoPINN-style network (ModelConfig.probe_input), gridsize "
                f"{r.model.gridsize}, reading each pattern with the {r.network.get('physics_steps', 0)}-step "
                f"per-pattern physics estimates of {r.network.get('context_patterns', 1)} pattern(s) "
                "(its own and its group's, on its frame), "
                "trained on varied simulated scans with the Poisson NLL through the forward model"
                + (f" plus {r.truth_weight:g} x the true patches' unexplained variation (supervised)"
                   if r.truth_weight > 0 else " alone (self-supervised)"),
        "recipe": command,
        "package_version": __version__, "commit": commit, "seed": seed,
        "hardware": {"device": facts.get("device", "cpu"), "threads": threads, "machine": platform.machine(),
                     "processor": platform.processor() or None, "torch": torch.__version__},
        "training": {**facts, "minutes_budget": minutes},
        "trained_on": {"spec": r.spec.to_dict(), "model": r.model.to_dict(), "network": dict(r.network),
                       "truth_weight": r.truth_weight, "batch_size": r.training.batch_size,
                       "learning_rate": r.execution.learning_rate},
        "held_out": {"objects": list(HELD_OUT_OBJECTS), "probes": list(HELD_OUT_PROBES)},
        "scores_network_alone": list(scores),
        "collapsed": collapsed(scores),
    }


def collapsed(scores: Sequence[dict[str, Any]]) -> bool:
    """Whether the scored model has collapsed to one output: the median
    :func:`output_variation` of its score rows below :data:`COLLAPSED_BELOW`."""
    values = [r["output_variation"] for r in scores if "output_variation" in r]
    return bool(values) and float(np.median(values)) < COLLAPSED_BELOW
