"""The main job, ``ptycho-nb demo``: simulate → train → reconstruct an unseen scan → score → save.

Training and test scans come from the same simulator settings with different seeds, so the test
scan has its own scan positions and Poisson noise: the model has never seen its patterns. Its
object is the same sample, though: the default ``object_kind='image'`` is the bundled picture for
every seed. A never-seen *object* is what ``bench/compare_iterative.py`` measures (random-line
objects, a new draw per seed). Quick mode (``quick=True`` or ``PTYCHO_NB_QUICK=1``) shrinks everything
for CI and tutorials.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any

from ..atomic import check_writable_target, write_text_atomic
from ..physics import simulate
from .inference import OUTPUT_FILES, Reconstruction, infer
from ..model.archive import ARCHIVE_NAME
from .reconstruct import reconstruct
from .training import TrainResult, train

__all__ = ["DemoRecipe", "DemoResult", "DemoTimings", "run_demo", "demo_recipe", "metrics_json",
           "DEMO_OUTPUTS"]

#: Files the demo writes into its output folder (all checked before any work starts).
DEMO_OUTPUTS = (ARCHIVE_NAME, *OUTPUT_FILES, "metrics.json")


@dataclasses.dataclass(frozen=True)
class DemoRecipe:
    """Sizes and training settings of the demo (the embedded default)."""

    simulate: dict[str, Any]
    train_seed: int
    test_seed: int
    overrides: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DemoTimings:
    """Wall times of the demo's phases, seconds, and the network's speed."""

    simulate_s: float
    train_s: float
    network_reconstruct_s: float
    refine_s: float
    total_s: float
    network_patterns_per_s: float


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes
    ----------
    metrics : dict
        Aligned phase/amplitude SSIM, PSNR, FRC of the unseen scan after the physics refinement.
    metrics_network_only : dict
        The same for the network's single pass alone.
    timings : DemoTimings
    paths : dict of str → Path
        Every file written (archive, reconstruction files, metrics.json, checkpoints).
    train : TrainResult
    reconstruction : Reconstruction
    """

    metrics: dict[str, Any]
    metrics_network_only: dict[str, Any]
    timings: DemoTimings
    paths: dict[str, pathlib.Path]
    train: TrainResult
    reconstruction: Reconstruction


#: Note stored in metrics.json when some value was not finite.
NULL_NOTE = "null stands for a value that was not finite (NaN or infinity), e.g. an undefined score"


def _finite_or_none(obj: Any) -> tuple[Any, bool]:
    """``obj`` with every non-finite float replaced by None; and whether any was."""
    if isinstance(obj, float):
        return (obj, False) if math.isfinite(obj) else (None, True)
    if isinstance(obj, dict):
        pairs = {k: _finite_or_none(v) for k, v in obj.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(b for _, b in pairs.values())
    if isinstance(obj, (list, tuple)):
        items = [_finite_or_none(v) for v in obj]
        return [v for v, _ in items], any(b for _, b in items)
    return obj, False


def metrics_json(payload: dict[str, Any]) -> str:
    """Strict JSON text of ``payload``: NaN/inf become null and a ``note`` key says so.

    Python's ``json`` writes NaN as the bare word ``NaN``, which is not JSON: other tools refuse
    the whole file.
    """
    clean, replaced = _finite_or_none(json.loads(json.dumps(payload, default=str)))
    if replaced:
        clean = {"note": NULL_NOTE, **clean}
    return json.dumps(clean, indent=2, allow_nan=False)


def demo_recipe(quick: bool | None = None) -> DemoRecipe:
    """The demo's recipe; ``quick`` (default: ``PTYCHO_NB_QUICK=1``) makes a seconds-long run."""
    if quick is None:
        quick = os.environ.get("PTYCHO_NB_QUICK", "") not in ("", "0")
    # gridsize 2 (overlap constraint) and probe_big=False (the demo's probe lights the central
    # half of the window) measured best per CPU-second in bench/quality_experiments.py.
    model = {"gridsize": 2, "probe_big": False}
    if quick:
        return DemoRecipe(
            simulate={"N": 64, "object_kind": "image", "object_shape": (128, 128), "n_positions": 60},
            train_seed=1, test_seed=2,
            overrides={**model, "nepochs": 2, "batch_size": 16, "n_filters_scale": 1},
        )
    return DemoRecipe(
        simulate={"N": 64, "object_kind": "image", "n_positions": 500},
        train_seed=1, test_seed=2,
        overrides={**model, "nepochs": 30, "batch_size": 16},
    )


def run_demo(output_dir: str | os.PathLike = "ptycho_nb_demo", *, quick: bool | None = None,
             overwrite: bool = False, front_end: str | None = "cli", verbose: bool = False,
             **overrides: Any) -> DemoResult:
    """Run the demo and write its outputs into ``output_dir``.

    Writes ``wts.h5.zip`` (the model), ``reconstruction.npz``, ``product.h5`` (ptychodus),
    ``reconstruction.png`` and ``metrics.json``.

    Returns
    -------
    DemoResult
    """
    recipe = demo_recipe(quick)
    out = pathlib.Path(output_dir)
    # Every output is checked before any work: a clash found after training would leave an
    # archive and checkpoints behind.
    for name in DEMO_OUTPUTS:
        try:
            check_writable_target(out / name, overwrite)
        except FileExistsError:
            raise FileExistsError(
                f"{out / name}: file exists; pass overwrite=True (CLI: --overwrite) or choose "
                "another output folder (CLI: --output-dir)") from None
    t0 = time.perf_counter()
    train_scan = simulate(seed=recipe.train_seed, **recipe.simulate)
    test_scan = simulate(seed=recipe.test_seed, **recipe.simulate)
    t1 = time.perf_counter()
    settings = {**recipe.overrides, **overrides, "output_dir": out}
    result = train(train_scan, front_end=front_end, overwrite=overwrite, verbose=verbose, **settings)
    t2 = time.perf_counter()
    shared = {k: v for k, v in overrides.items() if k in ("enable_progress_bar", "accelerator")}
    # scored over the field reconstruct returns (the lit field), so the two rows compare alike
    network_only = infer(result, test_scan, front_end=front_end, verbose=verbose, refine_epochs=0,
                         pad_eval=True, **shared)
    t3 = time.perf_counter()
    # The one call a user makes for a new scan: the network's pass, then refinement to convergence.
    recon = reconstruct(test_scan, result, front_end=front_end, verbose=verbose, **shared)
    metrics = recon.compare()
    metrics_network = network_only.compare()
    paths = recon.save(out, overwrite=overwrite)
    timings = DemoTimings(simulate_s=t1 - t0, train_s=t2 - t1, network_reconstruct_s=t3 - t2,
                          refine_s=recon.timings.refine_s, total_s=time.perf_counter() - t0,
                          network_patterns_per_s=network_only.timings.patterns_per_s)
    flat = lambda m: {k: v for k, v in m.items() if isinstance(v, (int, float))}  # noqa: E731
    write_text_atomic(out / "metrics.json", metrics_json(
        {"metrics": flat(metrics), "metrics_network_only": flat(metrics_network),
         "refine_epochs": recon.run.refinement.epochs_run if recon.run.refinement else 0,
         "refine_stopped": recon.run.refinement.stopped if recon.run.refinement else "",
         "timings": dataclasses.asdict(timings),
         "run": result.run.as_dict()}), overwrite=overwrite)
    paths = {"archive": result.archive_path, **paths, "metrics.json": out / "metrics.json"}
    # Every file the demo leaves behind, the training's checkpoints too (they are the largest).
    paths.update({f"checkpoint {p.name}": p for p in sorted((out / "checkpoints").glob("*.ckpt"))})
    return DemoResult(metrics=metrics, metrics_network_only=metrics_network, timings=timings,
                      paths=paths, train=result, reconstruction=recon)
