"""Command line: ``ptycho-nb simulate|train|infer|reconstruct|demo`` (one parser per command, built from metadata).

Errors a user can cause (bad values, missing files, outputs that exist) print one line to
stderr and exit with status 2; any other error prints one line too and exits with status 1;
Ctrl+C exits with status 130. Never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import pathlib
import sys
import warnings
from typing import Any, Sequence

from .config.cli_args import add_common_arguments, add_config_arguments, cli_layers, typed_values
from .config.fields import ConfigError, config_field, validate_fields
from .physics import OBJECT_KINDS, PROBE_KINDS

__all__ = ["main", "build_parser", "SimulateOptions"]

S = ("simulate",)


@dataclasses.dataclass(frozen=True)
class SimulateOptions:
    """Options of ``ptycho-nb simulate`` (passed to :func:`ptycho_nb.physics.simulate`, whose
    argument names the flags follow; ``photons`` is its ``photons_per_pattern``)."""

    N: int = config_field(64, category="data", kind="int", min=16, flags=("--N",), modes=S,
                          units="pixels", help="Pattern/probe size N×N.")
    object_kind: str = config_field("image", category="data", kind="str",
                                    choices=tuple(sorted(OBJECT_KINDS)), flags=("--object-kind",),
                                    modes=S, help="Kind of object (ptycho_nb.physics.make_object).")
    object_shape: str | None = config_field(None, category="data", kind="str", optional=True,
                                            flags=("--object-shape",), modes=S, units="pixels",
                                            help="Object size 'H,W' (None = just large enough "
                                                 "for the scan).")
    probe_kind: str = config_field("disc", category="data", kind="str",
                                   choices=tuple(sorted(PROBE_KINDS)), flags=("--probe-kind",),
                                   modes=S, help="Kind of probe (ptycho_nb.physics.make_probe).")
    n_positions: int = config_field(1000, category="data", kind="int", min=1,
                                    flags=("--n-positions",), modes=S, help="Number of scan positions.")
    photons: float = config_field(1e6, category="data", kind="float", min=0.0, min_exclusive=True,
                                  flags=("--photons",), modes=S, units="photons/pattern",
                                  help="Mean total counts per pattern.")
    overlap: float | None = config_field(None, category="data", kind="float", optional=True,
                                         min=0.0, max=1.0, max_exclusive=True, flags=("--overlap",),
                                         modes=S, help="Probe overlap 1 − step/diameter (None = 8 px step).")
    scan: str = config_field("spiral", category="data", kind="str",
                             choices=("spiral", "raster", "random"), flags=("--scan",), modes=S,
                             help="Scan pattern.")
    noise: bool = config_field(True, category="data", kind="bool", flags=("--noise",),
                               neg_flags=("--no-noise",), modes=S, help="Add Poisson noise.")
    seed: int = config_field(0, category="data", kind="int", min=0, flags=("--seed",), modes=S,
                             help="Seed of object, scan and noise.")

    def __post_init__(self) -> None:
        validate_fields(self)
        self.shape()  # 'H,W' is checked here, with the other rules

    def shape(self) -> tuple[int, int] | None:
        """``object_shape`` as (H, W) pixels, or None."""
        if self.object_shape is None:
            return None
        parts = str(self.object_shape).replace("x", ",").split(",")
        try:
            h, w = (int(p) for p in parts)
            if min(h, w) < 4:
                raise ValueError
        except ValueError:
            raise ConfigError(f"SimulateOptions.object_shape={self.object_shape!r} is invalid: rule "
                              "is 'H,W' (two integers ≥ 4)", fields=("object_shape",),
                              value=self.object_shape) from None
        return h, w

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`ptycho_nb.physics.simulate`."""
        kw: dict[str, Any] = {
            "N": self.N, "object_kind": self.object_kind, "object_shape": self.shape(),
            "probe_kind": self.probe_kind,
            "n_positions": self.n_positions, "photons_per_pattern": self.photons,
            "scan": self.scan, "noise": "poisson" if self.noise else None, "seed": self.seed,
        }
        if self.overlap is not None:
            kw["overlap"] = self.overlap
        return kw


def build_parser() -> argparse.ArgumentParser:
    """The ``ptycho-nb`` parser with the simulate, train and infer sub-commands."""
    parser = argparse.ArgumentParser(
        prog="ptycho-nb",
        description="Physics-informed neural-network ptychography (PyTorch + Lightning).",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Log every applied config value (INFO). (default: False)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("simulate", help="Simulate a scan with ground truth and save it.",
                       description="Simulate a scan (ptycho_nb.physics.simulate), save it and a PNG.")
    p.add_argument("--output", required=True, metavar="FILE",
                   help="Output data file (.npz or .h5); a PNG is written beside it. (required)")
    add_config_arguments(p, SimulateOptions, "simulate")
    _add_overwrite(p, "the output file and the PNG beside it")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="Train a model on a scan.",
                       description="Train a PtychoPINN-style model. Flags typed here win over "
                                   "--config, which wins over the CLI defaults.")
    add_common_arguments(p, "train")
    _add_overwrite(p, "the model archive in --output-dir")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("infer", help="Reconstruct a scan with a trained model.",
                       description="Reconstruct a scan with a trained model (wts.h5.zip).")
    add_common_arguments(p, "infer")
    _add_overwrite(p, "reconstruction.npz, product.h5 and reconstruction.png in --output-dir")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("reconstruct", help="One call: the best reconstruction of a scan.",
                       description="Reconstruct a scan: the model's single pass (--model-path, else "
                                   "the packaged pretrained model for the scan's pattern size, else a "
                                   "flat start with the scan's probe), then physics refinement to convergence "
                                   "(--refine-* flags). The object covers the whole lit field "
                                   "(--no-pad-eval: the box of the scan positions, as infer). "
                                   "Without --test-data: the embedded default "
                                   "scan (simulated, the demo's unseen scan).")
    add_common_arguments(p, "infer", command="reconstruct")
    _add_overwrite(p, "reconstruction.npz, product.h5 and reconstruction.png in --output-dir")
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("demo", help="The main job: simulate, train, reconstruct an unseen scan, score.",
                       description="Simulate the embedded default, train, reconstruct a second, unseen "
                                   "scan of the same kind, print its metrics and write the model, the "
                                   "reconstruction (NPZ, ptychodus product) and a figure.")
    p.add_argument("--output-dir", default="ptycho_nb_demo", metavar="DIR",
                   help="Folder for the outputs. (default: ptycho_nb_demo)")
    p.add_argument("--quick", action="store_true",
                   help="Seconds-long run with small sizes (also PTYCHO_NB_QUICK=1). (default: False)")
    p.add_argument("--quiet", action="store_true", help="No progress bar. (default: False)")
    _add_overwrite(p, "earlier demo outputs in --output-dir")
    p.set_defaults(func=_cmd_demo)
    return parser


def _add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", dest="_overwrite", action="store_true",
                   help=f"Replace {what} (refused otherwise). (default: False)")


def _cmd_simulate(args: argparse.Namespace) -> int:
    opts = SimulateOptions(**typed_values(args, SimulateOptions, "simulate"))
    out = pathlib.Path(args.output)
    from .atomic import atomic_files
    from .data import save
    from .physics import simulate
    from .plots import plot_dataset

    png = out.with_suffix(".png")
    if png == out:
        raise ValueError(f"--output {out}: expected a .npz or .h5 data file (a PNG is written beside it)")
    # Both outputs are checked before simulating, and appear together or not at all.
    with atomic_files({"data": out, "png": png}, overwrite=args._overwrite) as tmp:
        data = simulate(**opts.simulate_kwargs())
        save(data, tmp["data"])
        plot_dataset(data, tmp["png"])
    print(f"wrote {out} ({data.diffraction.shape[0]} patterns) and {png}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .workflows.payload import create_training_payload
    from .workflows.training import history_table, run_training

    payload = create_training_payload(front_end="cli", layers=cli_layers(args, "train"))
    result = run_training(payload, overwrite=args._overwrite, verbose=args.verbose)
    run = result.run
    if not run.global_zero:
        return 0  # DDP: the other processes stay quiet; rank 0 reports
    print(history_table(result.history))
    print(f"trained {run.epochs_run} epoch(s) in {result.elapsed_s:.1f} s on accelerator "
          f"{run.accelerator!r} (requested {payload.execution.accelerator!r}), "
          f"strategy {run.strategy!r}, {run.devices_used} device(s)"
          + (" — interrupted" if result.interrupted else ""))
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint} (monitor {run.monitor})")
    if result.archive_path is not None:
        print(f"model archive: {result.archive_path}")
    # interrupted: the model so far was saved, but scripts must be able to tell
    return EXIT_INTERRUPTED if result.interrupted else 0


def _cmd_infer(args: argparse.Namespace) -> int:
    from .workflows.inference import run_inference
    from .workflows.payload import create_inference_payload

    payload = create_inference_payload(front_end="cli", layers=cli_layers(args, "infer"))
    recon = run_inference(payload, verbose=args.verbose)
    paths = recon.save(payload.inference.output_dir, overwrite=args._overwrite)
    t = recon.timings
    print(f"reconstructed {recon.patches.shape[0]} patterns in {t.total_s:.2f} s "
          f"({t.patterns_per_s:.0f} patterns/s, accelerator {recon.run.accelerator!r}); "
          f"object {recon.object.shape[0]}x{recon.object.shape[1]} at offset {recon.offset}")
    ref = recon.run.refinement
    if ref is not None:
        print(f"refinement: {ref.epochs_run} epochs in {t.refine_s:.1f} s on {ref.device} from the "
              f"{ref.start} start (stopped: {ref.stopped})")
    return _report(recon, paths)


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from .workflows.demo import demo_recipe
    from .workflows.payload import create_inference_payload
    from .workflows.inference import OUTPUT_FILES
    from .workflows.reconstruct import run_reconstruct
    from .atomic import check_writable_target

    layers = cli_layers(args, "infer")
    data = None
    if getattr(args, "test_data_file", None) is None and getattr(args, "_config", None) is None:
        from .physics import simulate

        recipe = demo_recipe()
        data = simulate(seed=recipe.test_seed, **recipe.simulate)
        print(f"no --test-data: reconstructing the embedded default scan ({data.n_patterns} "
              f"simulated patterns, seed {recipe.test_seed})")
    payload = create_inference_payload(test_data=data, front_end="cli", layers=layers, require_model=False,
                                       command="reconstruct")
    for name in OUTPUT_FILES:  # before any work: a clash is found now, not after the refinement
        check_writable_target(payload.inference.output_dir / name, args._overwrite)
    recon = run_reconstruct(payload, verbose=args.verbose)
    paths = recon.save(payload.inference.output_dir, overwrite=args._overwrite)
    t, run, ref = recon.timings, recon.run, recon.run.refinement
    refined = ("no refinement" if ref is None else f"{ref.epochs_run} epochs on {ref.device} from the "
               f"{ref.start} start, stopped: {ref.stopped}")
    print(f"reconstructed {run.n_patterns} patterns in {t.total_s:.2f} s: single pass "
          f"{t.forward_s + t.stitch_s:.2f} s, refinement {t.refine_s:.2f} s ({refined}); object "
          f"{recon.object.shape[0]}x{recon.object.shape[1]} at offset {recon.offset}")
    return _report(recon, paths)


def _report(recon: Any, paths: dict[str, pathlib.Path]) -> int:
    """The metrics (when the scan has a ground truth) and the files written; exit status 0."""
    if recon.truth is not None:
        _print_metrics(recon.compare())
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def _print_metrics(m: dict[str, Any], title: str = "metrics vs ground truth (after alignment)") -> None:
    print(f"{title}:")
    for ch in ("phase", "amplitude"):
        f = m[ch + "_frc_1_7"]
        # an FRC that never falls below 1/7 has no crossing: resolved up to Nyquist
        frc = f"{f:.3f} cycles/px" if math.isfinite(f) else "resolved to Nyquist (0.5 cycles/px)"
        print(f"  {ch:9s} SSIM {m[ch + '_ssim']:.3f}  PSNR {m[ch + '_psnr']:.2f} dB  "
              f"MAE {m[ch + '_mae']:.4f}  FRC(1/7) {frc}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .workflows.demo import run_demo

    overrides = {"enable_progress_bar": False} if args.quiet else {}
    out = run_demo(args.output_dir, quick=args.quick or None, overwrite=args._overwrite,
                   verbose=args.verbose, **overrides)
    t = out.timings
    ref = out.reconstruction.run.refinement
    n_ref = 0 if ref is None else ref.epochs_run
    print(f"simulated in {t.simulate_s:.1f} s, trained in {t.train_s:.1f} s; the network "
          f"reconstructed the unseen scan in {t.network_reconstruct_s:.2f} s "
          f"({t.network_patterns_per_s:.0f} patterns/s), {n_ref} refinement epochs "
          f"(stopped: {'none' if ref is None else ref.stopped}) took "
          f"{t.refine_s:.1f} s; total {t.total_s:.1f} s")
    _print_metrics(out.metrics_network_only, "unseen scan, network only (single pass)")
    _print_metrics(out.metrics, f"unseen scan, network + {n_ref} physics-refinement epochs")
    for p in out.paths.values():
        print(f"wrote {p}")
    return 0


#: Exit status of a command stopped by Ctrl+C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error, 1 any other error, 130
    interrupted). Errors print one line to stderr, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while parsing or setting up, before any command ran
        print("ptycho-nb: interrupted (Ctrl+C); nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    prog = f"ptycho-nb {args.command}"
    with warnings.catch_warnings():
        warnings.simplefilter("default", DeprecationWarning)
        warnings.showwarning = (
            lambda message, category, *a, **k: print(f"{prog}: {category.__name__}: {message}",
                                                     file=sys.stderr)
        )
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            # An interrupt during training is handled there (the model so far is saved and the
            # command exits 130); one that gets here came before or after it: every write is
            # atomic, so nothing partial exists.
            what = ("files completed before it are kept, none is partial" if args.command == "demo"
                    else "nothing was saved")
            print(f"{prog}: interrupted (Ctrl+C); {what}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            message = _one_line(exc)
            if isinstance(exc, FileExistsError) and hasattr(args, "_overwrite"):
                # the API's words are overwrite=True; the person at the shell typed flags
                message = (message.replace("overwrite=True (CLI: --overwrite)", "--overwrite")
                           .replace("overwrite=True", "--overwrite"))
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback
            # PermissionError, disk full, RecursionError, FloatingPointError, library errors
            print(f"{prog}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
            return 1


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
