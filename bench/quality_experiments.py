"""Research script: what moves unseen-scan reconstruction quality of the PINN model (issue 4 item 8).

Trains :class:`ptycho_nb.model.PINNModule` with a bare loop (its own ``compute_loss`` and
``configure_optimizers``) for a wall-clock budget on simulated scans, reconstructs an UNSEEN scan
(different seed: other scan positions and noise; for random object kinds also another object),
stitches the patches weighted by the probe intensity and scores with ``metrics.compare``.
Optionally refines the stitched object through the physics on the unseen scan's own data.

Example::

    python -u bench/quality_experiments.py --train-kind image --train-seeds 0 --budget 150
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ptycho_nb.config.canonical import ModelConfig, TrainingConfig
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.data.grouping import group_neighbors
from ptycho_nb.metrics import compare
from ptycho_nb.model import PINNModule, scaling_statistics
from ptycho_nb.refine import refine_object
from ptycho_nb.physics.forward import stitch
from ptycho_nb.physics.simulate import simulate


def build_batches(datas, gridsize, seed=0):
    xs, oxs, oys = [], [], []
    for d in datas:
        g = group_neighbors(d.xcoords, d.ycoords, gridsize, seed=seed)
        xs.append(torch.from_numpy(d.diffraction[g.indices]))
        oxs.append(torch.from_numpy(g.offset_x).float())
        oys.append(torch.from_numpy(g.offset_y).float())
    return torch.cat(xs), torch.cat(oxs), torch.cat(oys)


def reconstruct(module, d, batch=64):
    module.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        diff = torch.from_numpy(d.diffraction)[:, None]
        out = torch.cat([module.net(diff[i:i + batch]) for i in range(0, len(diff), batch)])[:, 0]
        w = (module.effective_probe.abs() ** 2)
        w = w.sum(0) if w.ndim == 3 else w
        obj = stitch(out, torch.from_numpy(d.xcoords), torch.from_numpy(d.ycoords), d.object.shape, weight_map=w)
    module.train()
    return obj, time.perf_counter() - t0


def score(obj, d):
    r = compare(obj.numpy(), d.object, xcoords=d.xcoords, ycoords=d.ycoords, probe=d.probe)
    return {k: round(float(r[k]), 4) for k in ("phase_ssim", "amplitude_ssim", "phase_psnr", "amplitude_psnr")}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-kind", default="image")
    ap.add_argument("--train-seeds", default="0")
    ap.add_argument("--test-kind", default=None)
    ap.add_argument("--test-seed", type=int, default=100)
    ap.add_argument("--n-positions", type=int, default=500)
    ap.add_argument("--test-positions", type=int, default=500)
    ap.add_argument("--photons", type=float, default=1e6)
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--filters", type=int, default=2)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--no-fc", action="store_true")
    ap.add_argument("--bin", type=int, default=1)
    ap.add_argument("--core", action="store_true")
    ap.add_argument("--max-steps", type=int, default=10 ** 9)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds")
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--mae", type=float, default=0.0)
    ap.add_argument("--scale-trainable", type=int, default=1)
    ap.add_argument("--refine", type=int, default=0, help="physics refinement epochs on the unseen scan")
    ap.add_argument("--refine-lr", type=float, default=0.02)
    ap.add_argument("--refine-batch", type=int, default=None)
    ap.add_argument("--refine-flat", action="store_true", help="also refine from a flat object (control)")
    ap.add_argument("--eval-every", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    t_start = time.perf_counter()

    seeds = [int(s) for s in a.train_seeds.split(",")]
    kinds = a.train_kind.split(",")
    train = [simulate(object_kind=kinds[i % len(kinds)], n_positions=a.n_positions, seed=s,
                      photons_per_pattern=a.photons) for i, s in enumerate(seeds)]
    test_kind = a.test_kind or kinds[0]
    test = simulate(object_kind=test_kind, n_positions=a.test_positions, seed=a.test_seed,
                    photons_per_pattern=a.photons)
    t_sim = time.perf_counter() - t_start

    mcfg = ModelConfig(gridsize=a.gridsize, n_filters_scale=a.filters)
    tcfg = TrainingConfig(batch_size=a.batch, nepochs=a.max_epochs, mae_weight=a.mae,
                          intensity_scale_trainable=bool(a.scale_trainable))
    ecfg = PyTorchExecutionConfig(learning_rate=a.lr)
    stats = scaling_statistics(train[0])
    module = PINNModule(mcfg, tcfg, ecfg, probe=train[0].probe, scaling=stats,
                        network={"depth": a.depth, "bottleneck_fc": not a.no_fc, "input_bin": a.bin,
                                 "core": a.core})
    nparam = sum(p.numel() for p in module.parameters())
    opt = module.configure_optimizers()["optimizer"]
    diff, ox, oy = build_batches(train, a.gridsize)
    g = len(diff)
    print(f"sim {t_sim:.1f}s  groups {g}  params {nparam}  stats {stats}", flush=True)

    t0 = time.perf_counter()
    seen = 0
    epoch = 0
    next_eval = a.eval_every
    hist = []
    steps = 0
    while time.perf_counter() - t0 < a.budget and epoch < a.max_epochs and steps < a.max_steps:
        perm = torch.randperm(g)
        tot = 0.0
        for i in range(0, g, a.batch):
            idx = perm[i:i + a.batch]
            parts = module.compute_loss({"diffraction": diff[idx], "offset_x": ox[idx], "offset_y": oy[idx]})
            opt.zero_grad()
            parts["loss"].backward()
            opt.step()
            tot += float(parts["loss"].detach()) * len(idx)
            seen += len(idx) * a.gridsize ** 2
            steps += 1
            if epoch == 0 and steps % 8 == 0:
                print(f"  step {steps} t={time.perf_counter() - t0:.1f}s", flush=True)
            if time.perf_counter() - t0 > a.budget or steps >= a.max_steps:
                break
        epoch += 1
        el = time.perf_counter() - t0
        print(f"epoch {epoch} step {steps} t={el:.0f}s loss {tot / g:.4f} scale {float(module.intensity_scale.detach()):.4g}", flush=True)
        if el > next_eval:
            next_eval += a.eval_every
            obj, _ = reconstruct(module, test)
            s = score(obj, test)
            hist.append((round(el), s["phase_ssim"], s["amplitude_ssim"]))
            print("  eval", hist[-1], flush=True)
    t_train = time.perf_counter() - t0
    obj, t_inf = reconstruct(module, test)
    res = {"tag": a.tag, "args": vars(a), "t_sim": round(t_sim, 1), "t_train": round(t_train, 1),
           "epochs": epoch, "steps": steps, "patterns_per_s": round(seen / t_train, 1), "t_infer": round(t_inf, 2),
           "nn": score(obj, test), "hist": hist}
    if a.refine:
        obj2, info = refine_object(obj, test.diffraction, test.xcoords, test.ycoords,
                                   module.effective_probe.detach(), module.intensity_scale.detach(),
                                   epochs=a.refine, lr=a.refine_lr, batch_size=a.refine_batch or 100)
        t_ref = info["seconds"]
        res["refined"] = score(obj2, test)
        res["t_refine"] = round(t_ref, 1)
        if a.refine_flat:
            flat = torch.where(obj.abs() > 0, torch.full_like(obj, complex(float(obj[obj.abs() > 0].abs().mean()), 0.0)), obj)
            obj3, _ = refine_object(flat, test.diffraction, test.xcoords, test.ycoords,
                                    module.effective_probe.detach(), module.intensity_scale.detach(),
                                    epochs=a.refine, lr=a.refine_lr, batch_size=a.refine_batch or 100)
            res["refined_from_flat"] = score(obj3, test)
    res["t_total"] = round(time.perf_counter() - t_start, 1)
    print("RESULT", json.dumps(res), flush=True)
    return res


if __name__ == "__main__":
    main()
