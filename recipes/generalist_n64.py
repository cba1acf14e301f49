"""The recipe of ptycho_nb's pretrained generalist: retrain it from scratch, score it, ship it.

    python recipes/generalist_n64.py --out runs/generalist --minutes 45 --threads 2 [--resume] [--toy]

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
(network alone, no refinement; :mod:`ptycho_nb.pretrained.scoring`) and written as
``OUT/<name>.wts.h5.zip`` with its model card.

This file is not part of the installed package (as torchvision keeps its training references
outside its wheel): it runs from a checkout, with that checkout's ptycho_nb, and records the
checkout's commit in the card. The Trainer, the scan stream and its callbacks come from
:mod:`ptycho_nb.engine`. ``--toy`` runs the same code at toy size in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from typing import Any, Sequence

# This checkout's ptycho_nb, whatever the installation points at: the card records this
# checkout's commit, so the code that trains must be this checkout's too.
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ptycho_nb.config import ModelConfig, PyTorchExecutionConfig, TrainingConfig  # noqa: E402
from ptycho_nb.engine.callbacks import LATEST, DatasetEpoch, latest_checkpoint  # noqa: E402
from ptycho_nb.engine.trainer import build_trainer, quiet_lightning, seed_everything  # noqa: E402
from ptycho_nb.engine.varied_data import FreshScans, VariedScanDataset  # noqa: E402
from ptycho_nb.model.io import save_model  # noqa: E402
from ptycho_nb.model.lightning_module import PINNModule, scaling_statistics  # noqa: E402
from ptycho_nb.model.weights import load_checkpoint_weights  # noqa: E402
from ptycho_nb.physics.varied import VariedSpec, draw_scan  # noqa: E402
from ptycho_nb.pretrained.scoring import COLLAPSED_BELOW, evaluate, model_card  # noqa: E402

__all__ = ["NAME", "Recipe", "recipe", "train_generalist", "load_trained", "command", "TRUTH_WEIGHT",
           "CONTEXT_PATTERNS", "PHYSICS_STEPS", "main"]

#: How the card and ``--help`` spell the command that runs this file.
PROG = "python recipes/generalist_n64.py"
#: The model's name: it ships as ``ptycho_nb/pretrained/models/NAME.wts.h5.zip``.
NAME = "generalist-n64"
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
    # 'auto': a GPU when Lightning finds one (the card records which device trained the model);
    # 'csv': the loss curves land in OUT/logs
    execution = PyTorchExecutionConfig(accelerator="auto", learning_rate=1e-3,
                                       checkpoint_monitor_metric="val_loss", checkpoint_save_top_k=1,
                                       early_stop_patience=10_000, logger_backend="csv")
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


def _val_samples(r: Recipe, seed: int) -> list[dict[str, torch.Tensor]]:
    """In-distribution validation: every pattern of a few scans drawn apart from the stream."""
    ds = VariedScanDataset(r.spec, np.random.SeedSequence([seed, 999_999]), n_scans=r.val_scans,
                           buffer_scans=r.val_scans, shuffle=False, gridsize=r.model.gridsize,
                           truth=r.truth_weight > 0)
    return list(ds)


def _commit() -> str | None:
    """This checkout's git commit (None outside a git checkout or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=REPO)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train_generalist(out_dir: str | os.PathLike, *, minutes: float = 60.0, toy: bool = False,
                     resume: bool = False, seed: int = 0, threads: int | None = 1,
                     verbose: bool = False, batch_size: int | None = None,
                     precision: str | None = None, num_workers: int = 0,
                     steps_per_epoch: int | None = None) -> tuple[PINNModule, dict[str, Any]]:
    """Train the generalist; returns the module (best validation checkpoint) and run facts.

    Parameters
    ----------
    out_dir : path-like
        Run folder: ``checkpoints/`` (the best epoch and ``latest.ckpt``), ``logs/`` (CSV),
        ``trained.json`` (the facts returned).
    minutes : float
        Training time budget, minutes.
    toy : bool
        The recipe at toy size (seconds).
    resume : bool
        Continue from ``OUT/checkpoints/latest.ckpt`` when it exists.
    seed : int
    threads : int or None
        torch threads (None: torch's default).
    verbose : bool
        Progress bar and Lightning's messages.
    batch_size, precision, num_workers, steps_per_epoch : optional
        What a larger device changes (bench/device_check.py): samples per step (the recipe's
        otherwise), the Trainer's precision, DataLoader workers drawing the scan stream (each
        draws its own scans), optimizer steps per epoch (an epoch ends with a checkpoint). The
        facts record them.
    """
    r = recipe(toy)
    if batch_size is not None:
        r = dataclasses.replace(r, training=r.training.replace(batch_size=int(batch_size)))
    if precision is not None:
        r = dataclasses.replace(r, execution=r.execution.replace(precision=precision))
    if steps_per_epoch is not None:
        r = dataclasses.replace(r, steps_per_epoch=int(steps_per_epoch))
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(seed)
    first = draw_scan(r.spec, np.random.SeedSequence([seed, 424_242]))
    module = PINNModule(model=r.model, training=r.training, execution=r.execution, probe=first.probe,
                        scaling=scaling_statistics(first), network=r.network, truth_weight=r.truth_weight)
    module.has_validation = True
    stream = FreshScans(r.spec, seed, r.buffer_scans, r.model.gridsize, truth=r.truth_weight > 0)
    train_dl = torch.utils.data.DataLoader(stream, batch_size=r.training.batch_size,
                                           num_workers=int(num_workers))
    val_dl = torch.utils.data.DataLoader(_val_samples(r, seed), batch_size=16)
    folder = out / "checkpoints"
    ckpt = folder / f"{LATEST}.ckpt"
    commit = _commit()  # the code that trains (the card's "commit" is the one that scores)
    t0 = time.perf_counter()
    with quiet_lightning(verbose):
        # The epoch goes to the stream (a new stretch of scans each epoch, also after a resume);
        # the newest epoch is kept beside the best one, for --resume.
        trainer = build_trainer(r.execution.replace(enable_progress_bar=verbose), mode="train",
                                max_epochs=r.training.nepochs, default_root_dir=out, has_validation=True,
                                checkpoint_dir=folder,
                                extra_callbacks=[DatasetEpoch(stream), latest_checkpoint(folder)],
                                verbose=verbose, limit_train_batches=r.steps_per_epoch,
                                max_minutes=float(minutes))
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(ckpt) if resume and ckpt.exists() else None)
    elapsed = time.perf_counter() - t0
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        module.load_state_dict(load_checkpoint_weights(best)["state_dict"])
    device = trainer.strategy.root_device
    module.cpu().eval()  # scored and saved on the CPU, wherever it trained
    facts = {"commit_trained": commit, "train_seconds_this_run": round(elapsed, 1),
             "device": device.type + (f" ({torch.cuda.get_device_name(device)})"
                                      if device.type == "cuda" else ""),
             "epochs": int(trainer.current_epoch),
             "steps": int(trainer.global_step),
             "samples_seen": int(trainer.global_step) * r.training.batch_size,
             "batch_size": r.training.batch_size, "precision": str(trainer.precision),
             "num_workers": int(num_workers), "steps_per_epoch": r.steps_per_epoch,
             "val_loss": float(trainer.callback_metrics.get("val_loss", float("nan"))),
             "best_checkpoint": pathlib.Path(best).name if best else None}
    (out / "trained.json").write_text(json.dumps(facts, indent=2) + "\n")
    return module, facts


def load_trained(out_dir: str | os.PathLike, *, toy: bool = False) -> tuple[PINNModule, dict[str, Any]]:
    """The trained generalist of a run folder (its best checkpoint, else ``latest.ckpt``) and the
    facts ``train_generalist`` recorded — to score and ship a run without training again."""
    r = recipe(toy)
    out = pathlib.Path(out_dir)
    facts_file = out / "trained.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    folder = out / "checkpoints"
    best = facts.get("best_checkpoint")
    # the best validation checkpoint (the monitor keeps one), else the newest epoch
    candidates = sorted((c for c in folder.glob("*.ckpt") if c.name != f"{LATEST}.ckpt"),
                        key=lambda c: c.stat().st_mtime) + [folder / f"{LATEST}.ckpt"]
    ckpt = folder / best if best and (folder / best).exists() else next(
        (c for c in candidates if c.exists()), None)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint of a trained generalist in {folder}")
    saved = load_checkpoint_weights(ckpt)
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


def command(*, minutes: float, seed: int, threads: int | None, toy: bool) -> str:
    """The command line a model card records: how to retrain the model (``--out`` aside)."""
    return (f"{PROG} --minutes {minutes:g} --seed {seed}" + (f" --threads {threads}" if threads else "")
            + (" --toy" if toy else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or with ``--score-only`` reload), score, and write the archive with its card.

    Returns the exit status: 0, or 2 when the archive exists and ``--overwrite`` was not given.
    """
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
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
    r = recipe(args.toy)
    scores = evaluate(module, n_positions=r.score_positions, doses=r.score_doses)
    for row in scores:
        print(json.dumps(row), flush=True)
    card = model_card(r, facts, scores, name=NAME + ("-toy" if args.toy else ""),
                      command=command(minutes=args.minutes, seed=args.seed, threads=args.threads,
                                      toy=args.toy),
                      commit=_commit(), minutes=args.minutes, seed=args.seed, threads=args.threads)
    (pathlib.Path(args.out) / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    save_model(module, archive, overwrite=args.overwrite, card=card)
    print(f"wrote {archive}")
    if card["collapsed"]:
        print(f"this model has collapsed to one output (median output variation below "
              f"{COLLAPSED_BELOW}: it ignores its input); do not ship it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
