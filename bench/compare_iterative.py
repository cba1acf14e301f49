"""ptycho_nb side by side with ptychi (LSQML and ePIE) on the same simulated scans.

For each condition (photon dose per pattern × scan overlap) this script

1. simulates a training scan and a separate test scan of the same kind (ptycho_nb's simulator,
   different seeds: its own object draw — random lines by default, see ``--object-kind`` —,
   positions and Poisson noise), with the scan positions
   snapped to whole pixels (``--subpixel`` keeps them fractional): on whole pixels ptychi's
   forward model and ours are the same operator, so neither method is scored on data simulated
   with the other's interpolation;
2. checks the export to ptychi's conventions (counts, DC-centred, probe-centre positions relative
   to the object centre, probe divided by sqrt(N·N) for the unnormalised FFT) by running ptychi's
   forward model on the TRUE object: relative error against ours (target < 1e-5);
3. runs ptychi LSQML and ePIE in a subprocess (ptycho_nb.iterative.run_ptychi: isolated, because
   ptychi changes torch's global defaults, with the torchvision shim), each with the known probe
   and with probe refinement from a Gaussian guess of the same power and size;
4. trains ptycho_nb on the training scan (the demo's recipe) and reconstructs the test scan:
   network alone, and network + physics refinement (``refine_epochs``);
5. scores every reconstruction against the truth with the same alignment and illuminated-area
   mask (ptycho_nb.metrics.compare) and prints one table: phase/amplitude SSIM, PSNR, FRC(1/7),
   wall time to reconstruct the test scan, ptychi's time to converge (its time up to the first
   snapshot whose phase SSIM is within 0.01 of the run's final phase SSIM: snapshots are taken
   at a fixed list of epochs in the same run), ptycho_nb's training time, and how many times
   faster each method is than LSQML-to-convergence.

Writes ``table.md``, ``results.json`` and one ``recon_<condition>.png`` per condition into
``--out`` (refusing to overwrite unless ``--overwrite``). Times are wall-clock on this machine in
this run; ratios are the meaningful part (these machines are noisy).

Usage::

    python bench/compare_iterative.py                      # demo dose (1e6) and overlap
    python bench/compare_iterative.py --doses 1e3 1e4 1e6 --overlaps 0.73 0.5
    python bench/compare_iterative.py --quick              # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any

import numpy as np

import ptycho_nb  # before anything imports lightning (torchvision shim)
import torch
from ptycho_nb.atomic import write_text_atomic
from ptycho_nb.data.container import PtychoData
from ptycho_nb.iterative import ptychi_available, ptychi_forward_check, run_ptychi, INSTALL_HINT
from ptycho_nb.physics.forward import forward_from_object
from ptycho_nb.physics.probes import gaussian_guess, probe_from_patterns

#: (algorithm, probe refined from a rough guess, noise model) of the ptychi runs.
METHODS_ITERATIVE = [("LSQML", False, "gaussian"), ("LSQML", False, "poisson"),
                     ("LSQML", True, "gaussian"), ("LSQML", True, "poisson"),
                     ("EPIE", False, "gaussian"), ("EPIE", True, "gaussian")]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one run costs: scan sizes, training recipe and iteration budgets."""

    n_train: int
    n_test: int
    object_shape: tuple[int, int] | None
    train: dict[str, Any]
    refine_epochs: int  # the cap of ptycho_nb's refinement (it stops on a plateau)
    lsqml_epochs: int
    epie_epochs: int  # ePIE costs ~2.5x LSQML per epoch in ptychi on CPU

    def epochs(self, algorithm: str) -> int:
        return self.lsqml_epochs if algorithm == "LSQML" else self.epie_epochs


FULL = Sizes(n_train=500, n_test=1000, object_shape=None,
             train={"gridsize": 2, "probe_big": False, "nepochs": 30, "batch_size": 16},
             refine_epochs=200, lsqml_epochs=100, epie_epochs=50)
QUICK = Sizes(n_train=30, n_test=30, object_shape=(112, 112),
              train={"gridsize": 2, "probe_big": False, "nepochs": 1, "batch_size": 16,
                     "n_filters_scale": 1},
              refine_epochs=2, lsqml_epochs=3, epie_epochs=3)


def snap_to_pixels(scan: PtychoData, *, seed: int) -> PtychoData:
    """The same scan (object, probe, dose) with positions rounded to whole pixels.

    The noise-free counts are recomputed from the ground truth with ptycho_nb's forward model at
    the rounded positions and Poisson noise is drawn again (``seed``), at the scan's dose.
    """
    x = np.round(scan.xcoords).astype(np.float64)
    y = np.round(scan.ycoords).astype(np.float64)
    with torch.no_grad():
        amp = forward_from_object(torch.from_numpy(scan.probe), torch.from_numpy(scan.object),
                                  torch.from_numpy(x), torch.from_numpy(y))
    expected = amp.double().numpy() ** 2
    counts = np.random.default_rng(seed).poisson(expected)
    meta = {**scan.metadata, "positions": "snapped to whole pixels (bench/compare_iterative.py)"}
    return dataclasses.replace(scan, diffraction=np.sqrt(counts).astype(np.float32),
                               xcoords=x, ycoords=y, metadata=meta)


#: Epochs at which each ptychi run's object is snapshotted to trace quality against time.
SNAPSHOT_EPOCHS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 70]


def converged(ssim: list[float], epochs: list[int], seconds: list[float],
              tol: float = 0.01) -> tuple[int, float]:
    """(epoch, seconds) of the first snapshot whose phase SSIM is within ``tol`` of the last one.

    ``ssim``, ``epochs`` and ``seconds`` run over the snapshots and end with the final result.
    """
    final = ssim[-1]
    for q, e, t in zip(ssim, epochs, seconds):
        if q >= final - tol:
            return int(e), float(t)
    return int(epochs[-1]), float(seconds[-1])


def score(obj: np.ndarray, offset: tuple[int, int], scan: PtychoData) -> dict[str, float]:
    # A linear phase ramp shared out between probe and object leaves every pattern unchanged
    # (an ambiguity of probe refinement), so it is fitted and removed for every method alike.
    m = ptycho_nb.metrics.compare(obj, scan.object, offset=offset, xcoords=scan.xcoords,
                                  ycoords=scan.ycoords, probe=scan.probe, remove_ramp=True)
    keys = ("phase_ssim", "phase_psnr", "phase_frc_1_7", "amplitude_ssim", "amplitude_psnr",
            "amplitude_frc_1_7")
    return {k: float(m[k]) for k in keys}


def run_condition(dose: float, overlap: float, sizes: Sizes, *, subpixel: bool, workdir: pathlib.Path,
                  with_iterative: bool, object_kind: str = "lines", test_object_kind: str | None = None,
                  test_probe_kind: str | None = None, pretrained: str | None = None,
                  seed: int = 1) -> dict[str, Any]:
    """Everything for one (dose, overlap): the table rows, the images and the forward check."""
    sim = {"N": 64, "photons_per_pattern": dose, "overlap": overlap}
    if sizes.object_shape is not None:
        sim["object_shape"] = sizes.object_shape
    train_scan = ptycho_nb.simulate(seed=seed, n_positions=sizes.n_train, object_kind=object_kind, **sim)
    test_scan = ptycho_nb.simulate(seed=seed + 1, n_positions=sizes.n_test,
                                   object_kind=test_object_kind or object_kind,
                                   **({"probe_kind": test_probe_kind} if test_probe_kind else {}), **sim)
    if not subpixel:
        train_scan = snap_to_pixels(train_scan, seed=100 + seed)
        test_scan = snap_to_pixels(test_scan, seed=200 + seed)
    rows: list[dict[str, Any]] = []
    images: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
    cond = {"dose": dose, "overlap": overlap, "n_test": test_scan.n_patterns}

    forward_error = float("nan")
    if with_iterative:
        forward_error = ptychi_forward_check(test_scan)["relative_error"]
        print(f"  forward check (ptychi vs ptycho_nb on the true object): {forward_error:.2e}",
              flush=True)

    # ptycho_nb: train once on the training scan, then reconstruct the unseen test scan.
    t0 = time.perf_counter()
    result = ptycho_nb.train(train_scan, output_dir=workdir / f"model_{dose:g}_{overlap:g}",
                             enable_progress_bar=False, **sizes.train)
    train_s = time.perf_counter() - t0
    print(f"  ptycho_nb trained in {train_s:.1f} s", flush=True)
    # One throw-away call first: the timed calls then measure reconstruction, not first-call
    # start-up (lazy imports, allocator warm-up), as ptychi's time excludes its process start.
    ptycho_nb.infer(result, test_scan.subset(slice(0, 16)), refine_epochs=1, enable_progress_bar=False)
    guess = dataclasses.replace(test_scan, probe=gaussian_guess(test_scan.probe))
    # ptycho_nb's rows: the network alone; reconstruct() (network start, refinement to
    # convergence); the same refinement from a flat start (the control: what the network adds);
    # and the flat start with probe refinement from the rough guess LSQML gets.
    cap = {"refine_epochs": sizes.refine_epochs}
    runs = [("ptycho_nb network alone", result, test_scan, {"refine_epochs": 0}),
            ("ptycho_nb reconstruct", result, test_scan, cap)]
    if pretrained:
        # The packaged generalist: never trained on this scan or its kind, no training time.
        runs += [(f"{pretrained} network alone", f"pretrained:{pretrained}", test_scan, {"refine_epochs": 0}),
                 (f"ptycho_nb reconstruct, {pretrained} start", f"pretrained:{pretrained}", test_scan, cap)]
        ptycho_nb.infer(f"pretrained:{pretrained}", test_scan.subset(slice(0, 16)), refine_epochs=1,
                        enable_progress_bar=False)  # the first call's start-up, off the clock
    runs += [("refinement from flat start (control)", result, test_scan, {**cap, "refine_start": "flat"}),
             ("ptycho_nb refinement, probe refined", None, guess, {**cap, "refine_probe": True})]
    chosen_init = ""
    for name, model, data, kw in runs:
        trace: list[tuple[float, float]] = []
        t0 = time.perf_counter()

        def snap(pr, t0=t0, trace=trace):  # phase SSIM against wall time, outside the clock
            t_in = time.perf_counter()
            trace.append((t_in - t0, pr.object.numpy().copy()))
            return False

        rec = ptycho_nb.reconstruct(data, model if model is not None else None,
                                    enable_progress_bar=False, refine_callback=snap, **kw)
        seconds = time.perf_counter() - t0
        images[name] = (rec.object, rec.offset)
        final = score(rec.object, rec.offset, test_scan)
        curve = _trace_curve(trace, rec, test_scan, seconds, final["phase_ssim"])
        conv = next((t for t, q in curve if q >= final["phase_ssim"] - 0.01), seconds)
        ref = rec.run.refinement  # None for the network alone
        rows.append({**cond, "method": name, "seconds": seconds, "converged_seconds": conv,
                     "train_seconds": train_s if model is result else float("nan"),
                     "phase_ssim_curve": curve, "epochs": ref.epochs_run if ref else 0,
                     "stopped": ref.stopped if ref else "", "probe_init": ref.probe_init if ref else "",
                     **final})
        if kw.get("refine_probe"):
            chosen_init = ref.probe_init
        print(f"  {name}: {seconds:.2f} s, {ref.epochs_run if ref else 0} refinement epochs "
              f"({ref.stopped if ref else 'none'}), phase SSIM {final['phase_ssim']:.3f}", flush=True)

    if with_iterative:
        runs_it = [(a, rp, nm, guess, "") for a, rp, nm in METHODS_ITERATIVE]
        if chosen_init.startswith("patterns"):
            # The control for our probe start: LSQML from the same mean-pattern start, so the
            # table separates what the start gives from what the engine gives.
            plus, minus = probe_from_patterns(guess.diffraction, guess.probe)
            start = dataclasses.replace(guess, probe=plus if chosen_init == "patterns+" else minus)
            runs_it.append(("LSQML", True, "gaussian", start, ", ptycho_nb's mean-pattern start"))
        for algorithm, refine_probe, noise, rough, tag in runs_it:
            data = rough if refine_probe else test_scan
            name = (f"ptychi {algorithm}" + (f" {noise}" if algorithm == "LSQML" else "") + " "
                    + ("probe refined" if refine_probe else "known probe") + tag)
            epochs = sizes.epochs(algorithm)
            out = run_ptychi(data, algorithm=algorithm, epochs=epochs, refine_probe=refine_probe,
                             noise_model=noise, snapshot_epochs=SNAPSHOT_EPOCHS, timeout=None)
            final = score(out["object"], out["offset"], test_scan)
            trace = [score(o, out["offset"], test_scan)["phase_ssim"]
                     for o in out.get("snapshots", [])] + [final["phase_ssim"]]
            secs = list(out.get("snapshot_seconds", [])) + [out["seconds"]]
            epoch, conv_s = converged(trace, list(out.get("snapshot_epochs", [])) + [epochs], secs)
            images[name] = (out["object"], out["offset"])
            rows.append({**cond, "method": name, "seconds": out["seconds"],
                         "converged_seconds": conv_s, "converged_epoch": epoch,
                         "train_seconds": float("nan"), "phase_ssim_curve": list(zip(secs, trace)),
                         **final})
            print(f"  {name}: {out['seconds']:.1f} s ({epochs} epochs; "
                  f"converged at epoch {epoch}, {conv_s:.1f} s), phase SSIM {final['phase_ssim']:.3f}",
                  flush=True)

    # The reference is the better of LSQML's two noise models (known probe), as the targets say.
    lsqml = [r for r in rows if r["method"].startswith("ptychi LSQML") and "known probe" in r["method"]]
    ref = max(lsqml, key=lambda r: r["phase_ssim"]) if lsqml else None
    if ref is not None:
        ref["reference"] = True
    for r in rows:
        r["x_faster_than_lsqml"] = (ref["converged_seconds"] / r["converged_seconds"]
                                    if ref is not None else float("nan"))
    return {"condition": cond, "rows": rows, "images": images, "truth": test_scan.object,
            "forward_error": forward_error}


def _trace_curve(trace: list[tuple[float, np.ndarray]], rec: Any, scan: PtychoData, seconds: float,
                 final: float) -> list[tuple[float, float]]:
    """(seconds, phase SSIM) along a ptycho_nb run: the single pass (the refinement's start),
    every few refinement epochs (scored in the reconstruction's frame), and the end."""
    curve = [(rec.timings.total_s - rec.timings.refine_s, float("nan"))]
    keep = trace[:3] + trace[3::4]
    for t, obj in keep:
        cut = (obj.shape[0] - rec.object.shape[0]) // 2
        crop = obj[cut:cut + rec.object.shape[0], cut:cut + rec.object.shape[1]]
        curve.append((t, score(crop, rec.offset, scan)["phase_ssim"]))
    curve.append((seconds, final))
    return [(float(t), float(q)) for t, q in curve if not math.isnan(q)]


def save_curves(runs: list[dict[str, Any]], path: pathlib.Path) -> None:
    """One panel per dose: phase SSIM against wall seconds for every method, from one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4.2), squeeze=False)
    for ax, run in zip(axes[0], runs):
        for i, r in enumerate(run["rows"]):
            curve = r.get("phase_ssim_curve") or [(r["seconds"], r["phase_ssim"])]
            t, q = zip(*curve)
            # matplotlib's colour cycle has 10 colours: later methods are dashed to stay apart.
            ax.plot(t, q, marker="o", ms=3, ls="-" if i < 10 else "--", label=r["method"])
        c = run["condition"]
        ax.set_xscale("log")
        ax.set_xlabel("wall seconds (this machine, this run)")
        ax.set_ylabel("phase SSIM (unseen scan)")
        ax.set_title(f"{c['dose']:.0e} photons/pattern, {c['n_test']} patterns", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ("| dose (photons/pattern) | overlap | method | phase SSIM | phase PSNR (dB) | "
            "phase FRC 1/7 (cycles/px) | amp. SSIM | amp. PSNR (dB) | time (s) | time to converge (s) | "
            "training (s) | × faster than LSQML |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    f = lambda v, spec: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)  # noqa: E731
    # An FRC that never falls below 1/7 has no crossing: resolved up to Nyquist (0.5 cycles/px).
    frc = lambda v: "≥ 0.5" if isinstance(v, float) and math.isnan(v) else format(v, ".3f")  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['dose']:.0e} | {r['overlap']:.2f} | {r['method']} | {f(r['phase_ssim'], '.3f')} | "
            f"{f(r['phase_psnr'], '.1f')} | {frc(r['phase_frc_1_7'])} | "
            f"{f(r['amplitude_ssim'], '.3f')} | {f(r['amplitude_psnr'], '.1f')} | "
            f"{f(r['seconds'], '.2f')} | {f(r['converged_seconds'], '.2f')} | "
            f"{f(r['train_seconds'], '.0f')} | {f(r['x_faster_than_lsqml'], '.1f')} |")
    return "\n".join(lines)


def save_figure(run: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(run["images"])
    truth = run["truth"]
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.6 * (len(names) + 1), 5.4))
    axes[0, 0].imshow(np.angle(truth), cmap="twilight", vmin=-np.pi, vmax=np.pi)
    axes[0, 0].set_title("truth: phase", fontsize=8)
    axes[1, 0].imshow(np.abs(truth), cmap="gray")
    axes[1, 0].set_title("truth: amplitude", fontsize=8)
    for j, name in enumerate(names, start=1):
        obj, _ = run["images"][name]
        axes[0, j].imshow(np.angle(obj), cmap="twilight", vmin=-np.pi, vmax=np.pi)
        axes[0, j].set_title(name, fontsize=8)
        axes[1, j].imshow(np.abs(obj), cmap="gray")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    c = run["condition"]
    fig.suptitle(f"unseen test scan: {c['n_test']} patterns, {c['dose']:.0e} photons/pattern, "
                 f"overlap {c['overlap']:.2f}", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doses", type=float, nargs="+", default=[1e6],
                    help="photons per pattern (default: the demo's 1e6)")
    ap.add_argument("--overlaps", type=float, nargs="+", default=[0.73],
                    help="scan overlap, 1 - step/probe diameter (default: the demo's 0.73)")
    ap.add_argument("--iterative-epochs", type=int, default=None,
                    help="ptychi epochs per run, LSQML and ePIE alike (default 100 and 50)")
    ap.add_argument("--object-kind", default="lines",
                    help="object kind of both scans (ptycho_nb.physics.OBJECT_KINDS; default 'lines': "
                         "each seed draws a new object, so the test object is unseen, unlike 'image', "
                         "whose bundled picture is the same for every seed)")
    ap.add_argument("--test-object-kind", default=None,
                    help="a different object kind for the test scan (default: --object-kind)")
    ap.add_argument("--test-probe-kind", default=None,
                    help="a probe family the model never saw for the test scan "
                         "(ptycho_nb.physics.PROBE_KINDS; default: the training scan's, 'disc')")
    ap.add_argument("--pretrained", default=None,
                    help="also reconstruct from this packaged model (default: reconstruct()'s "
                         "default, generalist-n64, when it ships; 'none' to leave it out)")
    ap.add_argument("--subpixel", action="store_true", help="keep fractional scan positions")
    ap.add_argument("--skip-iterative", action="store_true", help="ptycho_nb only")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("compare_iterative_results"))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    if args.iterative_epochs is not None:
        sizes = dataclasses.replace(sizes, lsqml_epochs=args.iterative_epochs,
                                    epie_epochs=args.iterative_epochs)
    with_iterative = not args.skip_iterative
    if args.pretrained is None:
        from ptycho_nb.model.catalog import default_model

        default = default_model(64)
        pretrained = default.split(":", 1)[1] if default else None
    else:
        pretrained = None if args.pretrained == "none" else args.pretrained
    if with_iterative and not ptychi_available():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("table.md", "results.json"):
        if (args.out / name).exists() and not args.overwrite:
            print(f"{args.out / name} exists; pass --overwrite to replace it", file=sys.stderr)
            return 2

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "ptycho_nb": ptycho_nb.__version__, "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    try:
        import importlib.metadata as md

        versions["ptychi"] = md.version("ptychi")
        versions["lightning"] = md.version("lightning")
    except Exception:  # noqa: BLE001 - versions are context only
        pass
    print("versions:", json.dumps(versions), flush=True)

    all_rows, forward, runs_done = [], {}, []
    with tempfile.TemporaryDirectory(prefix="ptycho_nb_compare_") as tmp:
        for dose in args.doses:
            for overlap in args.overlaps:
                print(f"condition: dose {dose:.0e} photons/pattern, overlap {overlap:.2f}", flush=True)
                run = run_condition(dose, overlap, sizes, subpixel=args.subpixel,
                                    workdir=pathlib.Path(tmp), with_iterative=with_iterative,
                                    object_kind=args.object_kind,
                                    test_object_kind=args.test_object_kind,
                                    test_probe_kind=args.test_probe_kind, pretrained=pretrained)
                all_rows += run["rows"]
                forward[f"{dose:g}_{overlap:g}"] = run["forward_error"]
                save_figure(run, args.out / f"recon_dose{dose:.0e}_overlap{overlap:.2f}.png")
                runs_done.append(run)
        save_curves(runs_done, args.out / "ssim_vs_seconds.png")

    table = markdown_table(all_rows)
    cmd = "python bench/compare_iterative.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"Measured {versions['date']} on {os.cpu_count()} CPU cores ({versions['cpu']}), "
              f"torch {versions['torch']}, ptychi {versions.get('ptychi', '–')}, "
              f"lightning {versions.get('lightning', '–')}; command: `{cmd.strip()}`.\n"
              f"Objects: '{args.object_kind}' for training, '{args.test_object_kind or args.object_kind}' "
              "for testing (a new draw: the test object was never seen in training); probe: "
              + (f"'{args.test_probe_kind}' for the test scan, never seen in training ('disc')"
                 if args.test_probe_kind else "the same family ('disc') in both") + ".\n"
              f"Test scans: {sizes.n_test} patterns 64×64 (positions "
              f"{'sub-pixel' if args.subpixel else 'on whole pixels'}); ptycho_nb trained on a "
              f"separate {sizes.n_train}-pattern scan ({sizes.train['nepochs']} epochs); "
              "'ptycho_nb reconstruct' = ptycho_nb.reconstruct (network start, refinement until its "
              f"plateau rule, cap {sizes.refine_epochs} epochs); the control runs the same refinement "
              "from a flat start; "
              + (f"'{pretrained} network alone' and '..., {pretrained} start' use the packaged "
                 "model (trained on varied simulated scans, never on this scan or its kind; no "
                 "training time); " if pretrained else "")
              + "'ptycho_nb refinement, probe refined' starts flat with the rough "
              f"probe guess LSQML gets. ptychi LSQML {sizes.lsqml_epochs} epochs (Gaussian and Poisson "
              f"noise models), ePIE {sizes.epie_epochs} epochs; 'probe refined' starts from a "
              "Gaussian probe of the true probe's size and power (ptycho_nb's own rows choose, by "
              "the data, between it and two starts read from the mean pattern: "
              "refine_probe_init='auto'; the row ', ptycho_nb's mean-pattern start' gives LSQML "
              "the start ptycho_nb chose); phase scores after removing a linear phase ramp (an "
              "ambiguity of probe refinement), for every method; 'time to converge' is each run's "
              "time to the first snapshot whose phase SSIM is within 0.01 of its final one (ptychi: "
              "epochs " + ", ".join(map(str, SNAPSHOT_EPOCHS)) + "; ptycho_nb: every few refinement "
              "epochs); '× faster' divides the better LSQML (known probe)'s time to converge by each "
              "method's.\n"
              "Forward check (ptychi's model vs ours on the true object, relative error): "
              + ", ".join(f"{k}: {v:.1e}" for k, v in forward.items()) + "\n")
    print()
    print(header)
    print(table)
    write_text_atomic(args.out / "table.md", header + "\n" + table + "\n", overwrite=args.overwrite)
    write_text_atomic(args.out / "results.json",
           json.dumps({"versions": versions, "forward_check": forward, "rows": all_rows,
                       "command": cmd.strip()}, indent=2, default=float), overwrite=args.overwrite)
    print(f"\nwrote {args.out / 'table.md'}, results.json and the figures", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
