"""The recipe of ptycho_nb's pretrained generalist: retrain it from scratch, score it, ship it.

    python -m ptycho_nb.pretrained.recipe --out runs/generalist --minutes 60 [--resume] [--toy]

A ``probe_input`` network (it sees each scan's probe, its input is normalised per scan, and it
reads each pattern with the 10-step per-pattern ePIE estimates of its own and its group's
patterns on its frame, ``PtychoNet(physics_steps=..., context_patterns=...)``) is
trained — Poisson likelihood through the same forward model, plus a supervised term on the
simulated truth (``TRUTH_WEIGHT``; self-supervised alone it did not add to the estimate it reads) —
on a stream of varied simulated scans (:class:`~ptycho_nb.physics.varied.VariedSpec`: many
object kinds, probe families, scan geometries and doses, each scan drawn once), on a GPU
when Lightning finds one (``accelerator='auto'``; the card records the device). Lightning
checkpoints every epoch into ``OUT/checkpoints`` (``--resume`` continues from ``latest.ckpt``).
At the end the model is scored on a fixed suite of object kinds and a probe family it never saw
(network alone, no refinement) and written as ``OUT/<name>.wts.h5.zip`` with its model card.

``--toy`` runs the same code at toy size in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..config import ModelConfig, PyTorchExecutionConfig, TrainingConfig
from ..engine.trainer import quiet_lightning, trainer_kwargs
from ..engine.varied_data import VariedScanDataset
from ..metrics import compare
from ..model.lightning_module import AMPLITUDE_REFERENCE, PINNModule, scaling_statistics
from ..model.stitching import StitchedObject, stitch_patches
from ..physics import extract_patches, simulate
from ..physics.varied import VariedSpec, draw_scan
from ..version import __version__
from ..workflows.inference import infer
from ..model.io import save_model

__all__ = ["NAME", "Recipe", "recipe", "train_generalist", "evaluate", "output_variation", "estimate_object",
           "collapsed", "COLLAPSED_BELOW", "TRUTH_WEIGHT", "CONTEXT_PATTERNS", "main"]

NAME = "generalist-n64"
#: Object kinds and the probe family the generalist never sees in training: its model card
#: scores are measured on them (``lines`` is also the never-seen object of bench/compare_iterative.py).
HELD_OUT_OBJECTS = ("lines", "siemens")
HELD_OUT_PROBES = ("zone_plate",)
TRAINED_PROBE_FOR_SCORES = "disc"
#: A model whose median :func:`output_variation` over the scored scans lies below this has
#: collapsed to one output (measured: networks trained on one scan 0.73–1.08 on never-seen
#: scans, the CPU-trained generalists 0.05–0.19); its card says so and it must not ship.
COLLAPSED_BELOW = 0.3
#: ePIE steps of the per-pattern physics estimate the generalist reads (PtychoNet physics_steps).
PHYSICS_STEPS = 10
#: Patterns whose estimates each pattern reads: its own and its group's (PtychoNet
#: context_patterns; gridsize² of the recipe's groups).
CONTEXT_PATTERNS = 4
#: Weight of the supervised term (the true patches' unexplained variation) beside the Poisson
#: deviance in pretraining (PINNModule truth_weight).
TRUTH_WEIGHT = 1.0


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that defines a generalist's training run."""

    spec: VariedSpec
    model: ModelConfig
    training: TrainingConfig
    execution: PyTorchExecutionConfig
    network: dict[str, Any]
    truth_weight: float
    steps_per_epoch: int
    buffer_scans: int
    val_scans: int
    score_positions: int
    score_doses: tuple[float, ...]


def recipe(toy: bool = False) -> Recipe:
    """The shipped recipe (``toy=True``: the same at toy size, for tests)."""
    n = 32 if toy else 64
    spec = VariedSpec(
        N=n,
        object_kinds={"dead_leaves": 0.3, "grf": 0.2, "polygons": 0.2, "blobs": 0.2, "texture": 0.1},
        probe_families={"disc": 1.0, "defocused_pupil": 1.0, "gaussian": 1.0},
        n_positions=(16, 32) if toy else (64, 256),
        # Scans that scatter: with VariedSpec's default spans (0.1–π rad) and doses (10³–10⁷) the
        # median scan departs from the probe's own far field by 0.019 (physics.scattering_strength;
        # simulate's objects 0.06–0.66) and the network collapsed to one output; 1–π rad gives 0.067.
        phase_span=(1.0, math.pi),
        photons=(1e4, 1e7),
    )
    # gridsize 2: the overlap constraint carries PINN quality (upstream's ablation); the network
    # itself stays per-pattern, so inference passes each pattern once.
    model = ModelConfig(N=n, gridsize=2, probe_input=True, probe_big=False,
                        n_filters_scale=1 if toy else 2)
    training = TrainingConfig(batch_size=4 if toy else 8, nepochs=2 if toy else 10_000,
                              intensity_scale_trainable=False, probe_trainable=False, seed=0,
                              validation_fraction=0.0)
    # 'auto': a GPU when Lightning finds one (the card records which device trained the model)
    execution = PyTorchExecutionConfig(accelerator="auto", learning_rate=1e-3,
                                       checkpoint_monitor_metric="val_loss", checkpoint_save_top_k=1,
                                       early_stop_patience=10_000)
    # The network reads each pattern's departure from the probe's far field and a per-pattern
    # physics estimate (PtychoNet departure, physics_steps): fed the pattern alone it stayed at
    # one output on varied objects, even trained against the true patches (README).
    # It also reads its group's estimates moved onto its frame (context_patterns): supervised,
    # that explained more of a never-seen scan's patches than its own estimate alone (README).
    network = {"departure": True, "physics_steps": PHYSICS_STEPS, "context_patterns": CONTEXT_PATTERNS}
    # The simulated stream knows its objects: a supervised term beside the Poisson deviance
    # (PINNModule truth_weight). Self-supervised alone a network reading one pattern and its
    # estimate did not add to the estimate; supervised it did (README).
    return Recipe(spec=spec, model=model, training=training, execution=execution, network=network,
                  truth_weight=TRUTH_WEIGHT,
                  steps_per_epoch=4 if toy else 200, buffer_scans=2 if toy else 8,
                  val_scans=1 if toy else 6, score_positions=60 if toy else 1000,
                  score_doses=(1e6,) if toy else (1e6, 1e4, 1e3))


class _FreshScans(torch.utils.data.IterableDataset):
    """A new stretch of the scan stream every epoch (Lightning restarts the iterator per epoch;
    without a new seed every epoch would replay the same first scans)."""

    def __init__(self, spec: VariedSpec, seed: int, buffer_scans: int, gridsize: int,
                 truth: bool = False) -> None:
        super().__init__()
        self.spec, self.seed, self.buffer_scans = spec, int(seed), int(buffer_scans)
        self.gridsize = int(gridsize)
        self.truth = bool(truth)
        self.epoch = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        ds = VariedScanDataset(self.spec, np.random.SeedSequence([self.seed, self.epoch]),
                               buffer_scans=self.buffer_scans, gridsize=self.gridsize, truth=self.truth)
        return iter(ds)


def _val_samples(r: Recipe, seed: int) -> list[dict[str, torch.Tensor]]:
    """In-distribution validation: every pattern of a few scans drawn apart from the stream."""
    ds = VariedScanDataset(r.spec, np.random.SeedSequence([seed, 999_999]), n_scans=r.val_scans,
                           buffer_scans=r.val_scans, shuffle=False, gridsize=r.model.gridsize,
                           truth=r.truth_weight > 0)
    return list(ds)


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=pathlib.Path(__file__).resolve().parents[2])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train_generalist(out_dir: str | os.PathLike, *, minutes: float = 60.0, toy: bool = False,
                     resume: bool = False, seed: int = 0, threads: int | None = 1,
                     verbose: bool = False) -> tuple[PINNModule, dict[str, Any]]:
    """Train the generalist; returns the module (best validation checkpoint) and run facts."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    r = recipe(toy)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    L.seed_everything(seed, workers=True, verbose=False)
    first = draw_scan(r.spec, np.random.SeedSequence([seed, 424_242]))
    module = PINNModule(model=r.model, training=r.training, execution=r.execution, probe=first.probe,
                        scaling=scaling_statistics(first), network=r.network, truth_weight=r.truth_weight)
    module.has_validation = True
    stream = _FreshScans(r.spec, seed, r.buffer_scans, r.model.gridsize, truth=r.truth_weight > 0)
    train_dl = torch.utils.data.DataLoader(stream, batch_size=r.training.batch_size)
    val_dl = torch.utils.data.DataLoader(_val_samples(r, seed), batch_size=16)

    class _Epoch(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            stream.epoch = trainer.current_epoch  # also right after a resume

    # The newest epoch, whatever the monitor says, for --resume (save_top_k=0 would save nothing).
    latest = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="latest", save_top_k=1,
                             every_n_epochs=1, enable_version_counter=False)
    kw = trainer_kwargs(r.execution, mode="train", max_epochs=r.training.nepochs, default_root_dir=out,
                        has_validation=True, checkpoint_dir=out / "checkpoints",
                        extra_callbacks=[_Epoch(), latest], verbose=verbose)
    kw.update(limit_train_batches=r.steps_per_epoch, max_time={"minutes": float(minutes)},
              logger=L.pytorch.loggers.CSVLogger(str(out), name="logs"), log_every_n_steps=50,
              enable_progress_bar=verbose)
    ckpt = out / "checkpoints" / "latest.ckpt"
    commit = _commit()  # the code that trains (the card's "commit" is the one that scores)
    t0 = time.perf_counter()
    with quiet_lightning(verbose):
        trainer = L.Trainer(**kw)
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(ckpt) if resume and ckpt.exists() else None)
    elapsed = time.perf_counter() - t0
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    device = trainer.strategy.root_device
    module.cpu().eval()  # scored and saved on the CPU, wherever it trained
    facts = {"commit_trained": commit, "train_seconds_this_run": round(elapsed, 1),
             "device": device.type + (f" ({torch.cuda.get_device_name(device)})"
                                      if device.type == "cuda" else ""),
             "epochs": int(trainer.current_epoch),
             "steps": int(trainer.global_step),
             "samples_seen": int(trainer.global_step) * r.training.batch_size,
             "val_loss": float(trainer.callback_metrics.get("val_loss", float("nan"))),
             "best_checkpoint": pathlib.Path(best).name if best else None}
    (out / "trained.json").write_text(json.dumps(facts, indent=2) + "\n")
    return module, facts


def load_trained(out_dir: str | os.PathLike, *, toy: bool = False) -> tuple[PINNModule, dict[str, Any]]:
    """The trained generalist of a run folder (its best checkpoint, else ``last.ckpt``) and the
    facts ``train_generalist`` recorded — to score and ship a run without training again."""
    r = recipe(toy)
    out = pathlib.Path(out_dir)
    facts_file = out / "trained.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    folder = out / "checkpoints"
    best = facts.get("best_checkpoint")
    # the best validation checkpoint (the monitor keeps one), else the newest epoch
    candidates = sorted((c for c in folder.glob("*.ckpt") if c.name != "latest.ckpt"),
                        key=lambda c: c.stat().st_mtime) + [folder / "latest.ckpt"]
    ckpt = folder / best if best and (folder / best).exists() else next(
        (c for c in candidates if c.exists()), None)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint of a trained generalist in {folder}")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = saved["state_dict"]
    module = PINNModule(model=r.model, training=r.training, execution=r.execution,
                        network=saved.get("hyper_parameters", {}).get("network", r.network),
                        probe=state["probe"].numpy(),
                        scaling={"input_scale": float(state["net.input_scale"]), "intensity_scale": 1.0})
    module.load_state_dict(state)
    module.eval()
    facts.setdefault("steps", int(saved.get("global_step", 0)))
    facts.setdefault("epochs", int(saved.get("epoch", 0)) + 1)
    facts.setdefault("samples_seen", facts["steps"] * r.training.batch_size)
    facts["checkpoint_scored"] = ckpt.name
    return module, facts


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
            ds = module.context_dataset(scan.diffraction, scan.xcoords, scan.ycoords, np.arange(n),
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


def evaluate(module: PINNModule, *, toy: bool = False, seed: int = 7) -> list[dict[str, Any]]:
    """Network-alone scores on scans of object kinds (and a probe family) training never drew.

    For each held-out object kind × {a trained probe family, an unseen one} × dose: a 1,000-pattern
    scan (``ptycho_nb.simulate``), reconstructed with ``refine_epochs=0``; aligned phase and
    amplitude SSIM against the ground truth, beside the same scores of a flat object in the same
    frame (the control: what a network that learned nothing scores), for a ``physics_steps``
    network the same of its input's physics estimates stitched (:func:`estimate_object`: what
    the network adds to what it is fed), and the network's :func:`output_variation` (whether it
    reads its input at all).
    """
    r = recipe(toy)
    rows = []
    for kind in HELD_OUT_OBJECTS:
        for probe_kind in (TRAINED_PROBE_FOR_SCORES, *HELD_OUT_PROBES):
            for dose in r.score_doses:
                scan = simulate(N=r.model.N, object_kind=kind, probe_kind=probe_kind,
                                n_positions=r.score_positions, photons_per_pattern=dose, seed=seed)
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


def model_card(r: Recipe, facts: dict[str, Any], scores: Sequence[dict[str, Any]], *, minutes: float,
               seed: int, threads: int | None, toy: bool) -> dict[str, Any]:
    """The card stored in the archive and printed for the docs."""
    return {
        "name": NAME + ("-toy" if toy else ""),
        "what": f"probe-conditioned PtychoPINN-style network (ModelConfig.probe_input), gridsize "
                f"{r.model.gridsize}, reading each pattern with the {r.network.get('physics_steps', 0)}-step "
                f"per-pattern physics estimates of {r.network.get('context_patterns', 1)} pattern(s) "
                "(its own and its group's, on its frame), "
                "trained on varied simulated scans with the Poisson NLL through the forward model"
                + (f" plus {r.truth_weight:g} x the true patches' unexplained variation (supervised)"
                   if r.truth_weight > 0 else " alone (self-supervised)"),
        "recipe": f"python -m ptycho_nb.pretrained.recipe --minutes {minutes:g} --seed {seed}"
                  + (f" --threads {threads}" if threads else "") + (" --toy" if toy else ""),
        "package_version": __version__, "commit": _commit(), "seed": seed,
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ptycho_nb.pretrained.recipe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="Run folder (checkpoints, logs, the archive).")
    p.add_argument("--minutes", type=float, default=60.0, help="Training time budget (default 60).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    p.add_argument("--resume", action="store_true", help="Continue from OUT/checkpoints/latest.ckpt.")
    p.add_argument("--toy", action="store_true", help="Toy sizes: the same code in seconds.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing archive in OUT.")
    p.add_argument("--score-only", action="store_true",
                   help="Do not train: score and ship the run's best checkpoint (after an interruption).")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    archive = pathlib.Path(args.out) / f"{NAME}{'-toy' if args.toy else ''}.wts.h5.zip"
    if archive.exists() and not args.overwrite:
        print(f"{archive} exists: pass --overwrite", file=sys.stderr)
        return 2
    if args.score_only:
        if args.threads:
            torch.set_num_threads(args.threads)
        module, facts = load_trained(args.out, toy=args.toy)
    else:
        module, facts = train_generalist(args.out, minutes=args.minutes, toy=args.toy, resume=args.resume,
                                         seed=args.seed, threads=args.threads, verbose=args.verbose)
    print(f"trained: {json.dumps(facts)}", flush=True)
    scores = evaluate(module, toy=args.toy)
    for row in scores:
        print(json.dumps(row), flush=True)
    card = model_card(recipe(args.toy), facts, scores, minutes=args.minutes, seed=args.seed,
                      threads=args.threads, toy=args.toy)
    (pathlib.Path(args.out) / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    save_model(module, archive, overwrite=args.overwrite, card=card)
    print(f"wrote {archive}")
    if card["collapsed"]:
        print(f"this model has collapsed to one output (median output variation below "
              f"{COLLAPSED_BELOW}: it ignores its input); do not ship it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
