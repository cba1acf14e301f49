"""Fast tests of ptycho_nb.model: network, overlap constraint, PINNModule (tiny sizes)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from ptycho_nb.config.canonical import ModelConfig, TrainingConfig
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.model import PINNModule, PtychoNet, merge_group_patches, scaling_statistics
from ptycho_nb.physics.forward import extract_patches, forward_amplitude
from ptycho_nb.physics.simulate import simulate

N = 16


@pytest.fixture(scope="module")
def tiny():
    return simulate(N=N, object_kind="grf", n_positions=24, step=3, seed=1, photons_per_pattern=1e4)


def _module(tiny, gridsize=1, probe_trainable=False, scale_trainable=True, **mkw):
    torch.manual_seed(0)
    return PINNModule(ModelConfig(N=N, gridsize=gridsize, n_filters_scale=1, **mkw),
                      TrainingConfig(probe_trainable=probe_trainable,
                                     intensity_scale_trainable=scale_trainable, nepochs=3),
                      PyTorchExecutionConfig(learning_rate=3e-3), probe=tiny.probe,
                      scaling=scaling_statistics(tiny))


def _batch(tiny, b=4, c=1):
    d = torch.from_numpy(tiny.diffraction[: b * c]).reshape(b, c, N, N)
    return {"diffraction": d, "offset_x": torch.zeros(b, c), "offset_y": torch.zeros(b, c)}


def test_network_shapes_dtypes_and_bounds():
    net = PtychoNet(N=N, n_filters_scale=1, input_scale=3.0)
    x = torch.rand(2, 4, N, N) * 10
    out = net(x)
    assert out.shape == (2, 4, N, N) and out.dtype == torch.complex64
    amp = out.abs()
    assert torch.all(amp > 0) and torch.all(amp < 1)  # sigmoid
    assert torch.all(out.angle().abs() <= np.pi)
    for act in ("softplus", "swish", "relu"):
        a = PtychoNet(N=N, n_filters_scale=1, amp_activation=act)(x).abs()
        assert torch.all(a >= 0) and torch.all(a <= 2 + 1e-6)
    with pytest.raises(ValueError, match="diffraction"):
        net(torch.rand(2, N, N))


def test_physics_layer_is_forward_amplitude(tiny):
    m = _module(tiny)
    batch = _batch(tiny)
    patches = m(batch["diffraction"], batch["offset_x"], batch["offset_y"])
    ref = forward_amplitude(torch.from_numpy(tiny.probe), patches, scale=float(m.intensity_scale.detach()))
    assert torch.allclose(m.predict_amplitude(patches), ref, rtol=1e-5, atol=1e-5)


def test_overlap_merge_consistent_patches_unchanged():
    g = torch.Generator().manual_seed(0)
    obj = torch.polar(torch.rand(40, 40, generator=g) + 0.5, torch.rand(40, 40, generator=g))
    # two groups of 4 integer positions; offsets relative to the (fractional) group centre
    pos = torch.tensor([[[18., 18.], [21., 18.], [18., 22.], [21., 23.]],
                        [[20., 20.], [17., 21.], [22., 19.], [19., 24.]]])
    x, y = pos[..., 0], pos[..., 1]
    patches = extract_patches(obj, x.reshape(-1), y.reshape(-1), N).reshape(2, 4, N, N)
    ox, oy = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    merged = merge_group_patches(patches, ox, oy)
    assert torch.allclose(merged, patches, atol=1e-5)


def test_overlap_merge_zero_offsets_averages():
    p = torch.randn(3, 4, N, N, dtype=torch.complex64)
    z = torch.zeros(3, 4)
    merged = merge_group_patches(p, z, z)
    assert torch.allclose(merged, p.mean(1, keepdim=True).expand_as(p), atol=1e-5)
    assert merge_group_patches(p[:, :1], z[:, :1], z[:, :1]) is not None


def test_gridsize2_module_forward_and_grad(tiny):
    m = _module(tiny, gridsize=2)
    batch = _batch(tiny, b=2, c=4)
    batch["offset_x"] = torch.tensor([[-1.5, 1.5, -1.5, 1.5]] * 2)
    batch["offset_y"] = torch.tensor([[-1.5, -1.5, 1.5, 1.5]] * 2)
    loss = m.compute_loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.net.parameters() if p.requires_grad)


def test_optimisation_reduces_loss(tiny):
    m = _module(tiny)
    opt = m.configure_optimizers()["optimizer"]
    batch = _batch(tiny, b=8)
    first = float(m.compute_loss(batch)["loss"])
    for _ in range(15):
        loss = m.compute_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(m.compute_loss(batch)["loss"]) < first


@pytest.mark.parametrize("probe_trainable,scale_trainable", [(False, False), (True, True)])
def test_gradient_to_probe_and_scale_only_when_trainable(tiny, probe_trainable, scale_trainable):
    m = _module(tiny, probe_trainable=probe_trainable, scale_trainable=scale_trainable)
    m.compute_loss(_batch(tiny))["loss"].backward()
    names = {n for n, p in m.named_parameters()}
    assert ("probe" in names) == probe_trainable
    assert ("log_intensity_scale" in names) == scale_trainable
    if probe_trainable:
        assert m.probe.grad is not None and m.probe.grad.abs().sum() > 0
        assert m.log_intensity_scale.grad is not None
    else:
        assert not m.probe.requires_grad and not m.log_intensity_scale.requires_grad


def test_mae_weight_changes_loss(tiny):
    m = _module(tiny)
    batch = _batch(tiny)
    parts = m.compute_loss(batch)
    assert torch.allclose(parts["loss"], parts["nll"])
    m2 = PINNModule(m.hparams["model"], dict(m.hparams["training"], mae_weight=2.0, nll_weight=0.5),
                    m.hparams["execution"], probe=tiny.probe, scaling=m.scaling)
    m2.load_state_dict(m.state_dict())
    p2 = m2.compute_loss(batch)
    assert torch.allclose(p2["loss"], 0.5 * p2["nll"] + 2.0 * p2["mae"])


def _plain(v):
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    return v is None or isinstance(v, (bool, int, float, str))


def test_checkpoint_hparams_plain_and_weights_only_load(tiny, tmp_path):
    import lightning as L

    m = _module(tiny, gridsize=1, probe_mask=True, probe_trainable=True)
    assert _plain(dict(m.hparams))
    probe0 = m.probe.detach().clone()
    loader = torch.utils.data.DataLoader(
        [{"diffraction": torch.from_numpy(tiny.diffraction[i:i + 1]), "offset_x": torch.zeros(1),
          "offset_y": torch.zeros(1)} for i in range(8)], batch_size=4)
    # automatic optimisation: clipping and accumulation are Lightning's, also with a complex probe
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, accumulate_grad_batches=2)
    trainer.fit(m, loader)
    assert not torch.equal(m.probe.detach(), probe0)  # the trainable probe was updated
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ck = torch.load(path, weights_only=True)
    assert _plain(ck["hyper_parameters"])
    m2 = PINNModule.load_from_checkpoint(path, weights_only=True)
    assert torch.equal(m2.probe, m.probe)
    x = torch.from_numpy(tiny.diffraction[:2])[:, None]
    m.eval(), m2.eval()
    assert torch.equal(m(x), m2(x))


def test_scaling_statistics(tiny):
    s = scaling_statistics(tiny)
    assert set(s) >= {"input_scale", "intensity_scale", "mean_counts", "probe_power"}
    assert all(isinstance(v, float) and v > 0 for v in s.values())
    assert s["mean_counts"] == pytest.approx(float((tiny.diffraction.astype(np.float64) ** 2).sum((1, 2)).mean()))
    with pytest.raises(ValueError, match="scaling"):
        PINNModule(ModelConfig(N=N), probe=tiny.probe, scaling={})


def test_probe_big_false_predicts_core_with_replicated_border(tiny):
    m = _module(tiny, probe_big=False)
    assert m.net.core and m.net.input_bin == 2
    with torch.no_grad():
        m.net.amp_head.out.bias.fill_(0.3)  # make the output non-constant-free: bias only
        out = m(torch.from_numpy(tiny.diffraction[:2])[:, None])
    q = N // 4
    core = out[..., q:N - q, q:N - q]
    assert out.shape == (2, 1, N, N)
    assert torch.allclose(out[..., :q, q:N - q], core[..., :1, :].expand(-1, -1, q, -1))


def test_refine_object_lowers_nll(tiny):
    from ptycho_nb.refine import refine_object
    from ptycho_nb.physics.forward import forward_from_object, poisson_nll

    x, y = tiny.xcoords, tiny.ycoords
    obj0 = torch.ones(tiny.object.shape, dtype=torch.complex64) * 0.7
    meas = torch.from_numpy(tiny.diffraction)
    probe = torch.from_numpy(tiny.probe)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    before = float(poisson_nll(forward_from_object(probe, obj0, xt, yt), meas))
    obj, info = refine_object(obj0, tiny.diffraction, x, y, tiny.probe, 1.0, epochs=3, batch_size=8)
    after = float(poisson_nll(forward_from_object(probe, obj, xt, yt), meas))
    assert after < before and len(info["loss_history"]) == 3 and obj.dtype == torch.complex64


@pytest.mark.parametrize("scheduler,with_val", [("Exponential", False), ("Cosine", True), ("Plateau", False)])
def test_schedulers_step_through_lightning(tiny, scheduler, with_val):
    import lightning as L

    torch.manual_seed(0)
    m = PINNModule(ModelConfig(N=N, n_filters_scale=1), TrainingConfig(nepochs=2),
                   PyTorchExecutionConfig(learning_rate=1e-3, scheduler=scheduler), probe=tiny.probe,
                   scaling=scaling_statistics(tiny))
    items = [{"diffraction": torch.from_numpy(tiny.diffraction[i:i + 1]), "offset_x": torch.zeros(1),
              "offset_y": torch.zeros(1)} for i in range(4)]
    loader = torch.utils.data.DataLoader(items, batch_size=4)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, loader, loader if with_val else None)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    if scheduler == "Exponential":
        assert lr == pytest.approx(1e-3 * 0.95 ** 2)
    elif scheduler == "Cosine":
        assert lr < 1e-3
    assert "train_loss" in trainer.callback_metrics
    assert ("val_loss" in trainer.callback_metrics) == with_val


def test_overlap_merge_equals_stitch_then_extract():
    # The merge shares one set of bilinear taps between stitch and re-extraction; pin it to the
    # two public calls it replaces (sub-pixel offsets, a weight map, gradients included).
    from ptycho_nb.physics.forward import stitch

    g = torch.Generator().manual_seed(3)
    b, c = 3, 4
    p = torch.randn(b, c, N, N, dtype=torch.complex64, generator=g)
    ox = torch.randn(b, c, generator=g) * 2.5
    oy = torch.randn(b, c, generator=g) * 2.5
    wmap = torch.rand(N, N, generator=g)

    def reference(q):
        rx, ry = ox - ox[:, :1], oy - oy[:, :1]
        half = N // 2 + int(np.ceil(float(torch.cat([rx, ry]).abs().max()))) + 2
        x = (torch.arange(b)[:, None] * 2 * half + half + rx).reshape(-1)
        y = (half + ry).reshape(-1)
        canvas = stitch(q.reshape(b * c, N, N), x, y, (2 * half, 2 * half * b), weight_map=wmap)
        return extract_patches(canvas, x, y, N).reshape(b, c, N, N)

    q1, q2 = p.clone().requires_grad_(), p.clone().requires_grad_()
    got, ref = merge_group_patches(q1, ox, oy, weight_map=wmap), reference(q2)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    (got.abs() ** 2).sum().backward()
    (ref.abs() ** 2).sum().backward()
    torch.testing.assert_close(q1.grad, q2.grad, rtol=0, atol=1e-5)


def test_mae_with_zero_weight_is_logged_but_outside_the_graph(tiny):
    m = _module(tiny)
    batch = _batch(tiny)
    parts = m.compute_loss(batch)
    assert not parts["mae"].requires_grad and torch.isfinite(parts["mae"])
    parts["loss"].backward()
    got = [p.grad.clone() for p in m.parameters() if p.grad is not None]
    m.zero_grad()
    m.compute_loss(batch)["nll"].backward()  # the same gradient as the NLL alone
    for a, b in zip(got, [p.grad for p in m.parameters() if p.grad is not None]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_departure_feeds_the_pattern_minus_the_probe_far_field(tmp_path):
    """A probe-conditioned network reads each pattern's departure from the first conditioning
    channel (the probe's far field): the encoder's data channel is normalise(d) − cond[0]. New
    probe_input modules use it and their archives say so; an archive without it keeps the
    plain input."""
    from ptycho_nb.model.io import load_model, save_model

    torch.manual_seed(0)
    net = PtychoNet(N=32, n_filters_scale=1, cond_channels=3, departure=True)
    d = torch.rand(2, 4, 32, 32) * 5
    cond = torch.rand(2, 3, 32, 32)
    seen = {}
    net.encoder.register_forward_hook(lambda mod, i, o: seen.__setitem__("x", i[0]))
    net(d, cond)
    x = seen["x"]
    assert x.shape == (8, 4, 32, 32)
    expected = net.normalise(d.reshape(8, 1, 32, 32)) - cond.repeat_interleave(4, dim=0)[:, :1]
    torch.testing.assert_close(x[:, :1], expected)
    torch.testing.assert_close(x[:, 1:], cond.repeat_interleave(4, dim=0))
    with pytest.raises(ValueError, match="departure: needs cond_channels > 0"):
        PtychoNet(N=32, departure=True)

    scan = simulate(N=32, object_shape=(80, 80), n_positions=12, step=5.0, seed=1)
    kw = dict(training=TrainingConfig(), execution=PyTorchExecutionConfig(), probe=scan.probe,
              scaling=scaling_statistics(scan))
    fresh = PINNModule(ModelConfig(N=32, n_filters_scale=1, probe_input=True), **kw)
    assert fresh.net.departure and fresh.network_kwargs == {"departure": True}
    assert not PINNModule(ModelConfig(N=32, n_filters_scale=1), **kw).net.departure
    old = PINNModule(ModelConfig(N=32, n_filters_scale=1, probe_input=True), network={}, **kw)
    assert not old.net.departure  # what loading an archive written before departure passes
    path = save_model(fresh, tmp_path / "m.wts.h5.zip")
    assert load_model(path).net.departure
    assert not load_model(save_model(old, tmp_path / "old.wts.h5.zip")).net.departure


def test_physics_steps_feed_a_per_pattern_estimate(tmp_path):
    """A ``physics_steps`` network reads each pattern's physics estimate as two more channels
    (real part − 1, imaginary part; the central N/2 for a core network on 2×-binned patterns);
    the module computes it with its own probe and scale, or each sample's; archives keep it and
    a loaded model gives the same patches; infer runs it."""
    from ptycho_nb.physics.single_pattern import pattern_estimate
    from ptycho_nb.workflows.inference import infer
    from ptycho_nb.model.io import load_model, save_model

    torch.manual_seed(0)
    net = PtychoNet(N=32, n_filters_scale=1, physics_steps=3, core=True, input_bin=2)
    d = torch.rand(2, 4, 32, 32) * 5
    est = torch.randn(2, 4, 32, 32, dtype=torch.complex64)
    seen = {}
    net.encoder.register_forward_hook(lambda mod, i, o: seen.__setitem__("x", i[0]))
    net(d, estimate=est)
    x = seen["x"]
    assert x.shape == (8, 3, 16, 16)
    core = est.reshape(8, 32, 32)[:, 8:24, 8:24]
    torch.testing.assert_close(x[:, 1], core.real - 1)
    torch.testing.assert_close(x[:, 2], core.imag)
    with pytest.raises(ValueError, match="estimate: expected complex .2, 4, 32, 32. .this network reads"):
        net(d)
    with pytest.raises(ValueError, match="physics_steps: expected a non-negative int"):
        PtychoNet(N=32, physics_steps=-2)

    scan = simulate(N=32, object_shape=(80, 80), n_positions=12, step=5.0, seed=1)
    module = PINNModule(ModelConfig(N=32, n_filters_scale=1, probe_input=True, probe_big=False),
                        TrainingConfig(), PyTorchExecutionConfig(), probe=scan.probe,
                        scaling=scaling_statistics(scan), network={"departure": True, "physics_steps": 4})
    amp = torch.from_numpy(np.asarray(scan.diffraction, np.float32))
    want = pattern_estimate(amp, torch.from_numpy(scan.probe), 4,
                            scale=float(module.intensity_scale), start=0.5) / 0.5
    torch.testing.assert_close(module.pattern_estimates(amp[:, None])[:, 0], want)
    # per-sample probes and scales (the varied stream): each sample's own
    other = torch.from_numpy(scan.probe) * 2
    per = module.pattern_estimates(amp[:3, None], other.expand(3, 32, 32), torch.full((3,), 0.25))
    torch.testing.assert_close(per[:, 0], pattern_estimate(amp[:3], other, 4, scale=0.25, start=0.5) / 0.5)
    path = save_model(module, tmp_path / "m.wts.h5.zip")
    loaded = load_model(path)
    assert loaded.net.physics_steps == 4
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.network_patches(amp[:5, None]), module.network_patches(amp[:5, None]))
    rec = infer(loaded, scan, refine_epochs=0, enable_progress_bar=False)
    assert np.all(np.isfinite(rec.object))


def test_unexplained_variation_is_blind_to_scale_and_tells_flat_from_right():
    """0 for the truth times any complex number, about 1 for a flat patch, more for a wrong one;
    the probe weight decides which pixels count."""
    from ptycho_nb.model.supervision import probe_weight, unexplained_variation

    g = torch.Generator().manual_seed(0)
    t = torch.polar(0.5 + 0.3 * torch.rand(2, 3, N, N, generator=g), torch.randn(2, 3, N, N, generator=g))
    w = probe_weight(torch.from_numpy(simulate(N=N, n_positions=4, seed=0).probe))
    assert w.shape == (N, N) and float(w.max()) == pytest.approx(1.0)
    assert float(unexplained_variation(t * (0.3 - 2j), t, w)) < 1e-4
    flat = torch.ones_like(t)
    assert float(unexplained_variation(flat, t, w)) == pytest.approx(1.0, abs=0.05)
    other = torch.polar(torch.ones_like(t.real), torch.randn(2, 3, N, N, generator=g))
    assert float(unexplained_variation(other, t, w)) > 1.0
    # per-sample weights (B, N, N): a sample judged only where its probe lights it
    ws = torch.zeros(2, N, N)
    ws[:, 4:8, 4:8] = 1.0
    right_there = t.clone()
    right_there[..., 10:, 10:] = 0  # wrong outside the lit square only
    assert float(unexplained_variation(right_there, t, ws)) < 1e-4
    assert probe_weight(torch.ones(2, 3, N, N, dtype=torch.complex64)).shape == (2, N, N)
    with pytest.raises(ValueError, match="truth"):
        unexplained_variation(t, t[:, :1], w)
    with pytest.raises(ValueError, match="probe"):
        probe_weight(torch.ones(N))


def test_truth_weight_adds_a_supervised_term(tiny):
    """``truth_weight`` > 0 adds the true patches' unexplained variation to the loss, needs them in
    the batch (a clear error otherwise), and its gradient reaches the network; 0 (the default)
    leaves the loss the Poisson deviance alone."""
    batch = _batch(tiny, b=4, c=1)
    truth = extract_patches(torch.from_numpy(tiny.object), torch.as_tensor(tiny.xcoords[:4]),
                            torch.as_tensor(tiny.ycoords[:4]), N)[:, None]
    plain = _module(tiny)
    parts = plain.compute_loss(batch)
    assert "truth" not in parts and torch.allclose(parts["loss"], parts["nll"])
    torch.manual_seed(0)
    sup = PINNModule(ModelConfig(N=N, n_filters_scale=1), TrainingConfig(nepochs=3),
                     PyTorchExecutionConfig(learning_rate=3e-3), probe=tiny.probe,
                     scaling=scaling_statistics(tiny), truth_weight=2.0)
    assert sup.hparams["truth_weight"] == 2.0
    with pytest.raises(ValueError, match="truth"):
        sup.compute_loss(batch)
    parts = sup.compute_loss({**batch, "truth": truth})
    assert 0.5 < float(parts["truth"].detach()) < 1.5  # an untrained (flat-start) network explains ~nothing
    assert torch.allclose(parts["loss"], parts["nll"] + 2.0 * parts["truth"])
    parts["truth"].backward()
    assert float(sup.net.phase_head.out.weight.grad.abs().sum()) > 0
    # per-sample probes (B, N, N) weigh each sample by its own probe
    per = sup.compute_loss({**batch, "truth": truth,
                            "probe": torch.from_numpy(tiny.probe).expand(4, N, N).clone()})
    assert torch.allclose(per["truth"], parts["truth"], atol=1e-5)
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="truth_weight"):
            PINNModule(ModelConfig(N=N), probe=tiny.probe, scaling=scaling_statistics(tiny), truth_weight=bad)


def test_context_network_reads_its_groups_estimates_on_its_frame(tmp_path):
    """``context_patterns`` S = 4: each pattern reads its own and three neighbours' estimates,
    moved by the position difference onto its frame (3 channels each: weighted real − 1 and
    imaginary parts, the weight); training groups give every member its context, inference
    serves each pattern once with the group seeded at it, and gives the same patch as the
    grouped pass; archives keep the setting."""
    from ptycho_nb.model.context import context_order, group_context, shift_patches
    from ptycho_nb.workflows.inference import infer
    from ptycho_nb.model.io import load_model, save_model

    # the shift: out[y, x] = in[y - dy, x - dx]; member i's context puts member i first
    x = torch.arange(36.0).reshape(1, 6, 6)
    moved = shift_patches(x, torch.tensor([1]), torch.tensor([2]))
    assert float(moved[0, 3, 4]) == float(x[0, 2, 2])
    assert context_order(3).tolist() == [[0, 1, 2], [1, 0, 2], [2, 0, 1]]
    # one object cut at four positions: on member i's frame every member shows i's patch
    obj = torch.polar(torch.rand(40, 40) + 0.5, torch.randn(40, 40))
    xs, ys = torch.tensor([[20.0, 23.0, 20.0, 24.0]]), torch.tensor([[20.0, 20.0, 22.0, 21.0]])
    patches = extract_patches(obj, xs[0], ys[0], N)[None]
    ctx, w = group_context(patches, xs, ys, torch.ones(N, N))
    assert ctx.shape == w.shape == (1, 4, 4, N, N)
    for i in range(4):
        for k in range(4):
            j = int(context_order(4)[i, k])
            dx, dy = int(xs[0, j] - xs[0, i]), int(ys[0, j] - ys[0, i])
            inner = (slice(max(dy, 0), N + min(dy, 0)), slice(max(dx, 0), N + min(dx, 0)))
            torch.testing.assert_close(ctx[0, i, k][inner], patches[0, i][inner])
    with pytest.raises(ValueError, match="context_patterns: expected a square"):
        PtychoNet(N=32, physics_steps=2, context_patterns=3)
    with pytest.raises(ValueError, match="needs physics_steps"):
        PtychoNet(N=32, context_patterns=4)

    torch.manual_seed(0)
    net = PtychoNet(N=32, n_filters_scale=1, physics_steps=3, core=True, input_bin=2, context_patterns=4)
    seen = {}
    net.encoder.register_forward_hook(lambda mod, i, o: seen.__setitem__("x", i[0]))
    est = torch.randn(2, 1, 4, 32, 32, dtype=torch.complex64)
    wt = torch.rand(2, 1, 4, 32, 32)
    net(torch.rand(2, 1, 32, 32), estimate=est, estimate_weight=wt)
    assert seen["x"].shape == (2, 1 + 12, 16, 16)
    torch.testing.assert_close(seen["x"][:, 1 + 3 * 2], ((est.real - 1) * wt)[:, 0, 2, 8:24, 8:24])
    torch.testing.assert_close(seen["x"][:, 3 + 3 * 2], wt[:, 0, 2, 8:24, 8:24])
    with pytest.raises(ValueError, match="estimate_weight"):
        net(torch.rand(2, 1, 32, 32), estimate=est)

    scan = simulate(N=32, object_shape=(80, 80), n_positions=16, step=5.0, seed=1)
    module = PINNModule(ModelConfig(N=32, gridsize=2, n_filters_scale=1, probe_input=True, probe_big=False),
                        TrainingConfig(), PyTorchExecutionConfig(), probe=scan.probe,
                        scaling=scaling_statistics(scan),
                        network={"departure": True, "physics_steps": 2, "context_patterns": 4})
    with torch.no_grad():  # a non-flat network, so that a wrong context would show
        for prm in module.net.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    module.eval()
    from ptycho_nb.engine.predict import context_dataset

    ds = context_dataset(module, scan.diffraction, scan.xcoords, scan.ycoords, seed=0)
    sample = ds[5]
    assert sample["diffraction"].shape == (1, 32, 32) and sample["estimates"].shape == (4, 32, 32)
    assert float(sample["offset_x"][0]) == pytest.approx(scan.xcoords[5])
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        own = module.network_patches(batch["diffraction"], offset_x=batch["offset_x"], offset_y=batch["offset_y"],
                                     estimates=batch["estimates"], own_only=True)
        members = ds.members
        d = torch.from_numpy(scan.diffraction[members.numpy()]).float()
        grouped = module.network_patches(d, offset_x=batch["offset_x"], offset_y=batch["offset_y"])
    assert own.shape == (16, 1, 32, 32) and grouped.shape == (16, 4, 32, 32)
    torch.testing.assert_close(own[:, 0], grouped[:, 0], atol=1e-4, rtol=1e-4)
    # training: groups of four give every member its context, and the loss has a gradient
    parts = module.compute_loss({"diffraction": d[:3], "offset_x": batch["offset_x"][:3],
                                 "offset_y": batch["offset_y"][:3]})
    parts["loss"].backward()
    assert float(module.net.encoder[0][0].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="groups of 4 patterns"):
        module.network_patches(d[:, :1], offset_x=batch["offset_x"][:, :1], offset_y=batch["offset_y"][:, :1])
    path = save_model(module, tmp_path / "ctx.wts.h5.zip")
    loaded = load_model(path)
    assert loaded.net.context_patterns == 4
    rec = infer(loaded, scan, refine_epochs=0, enable_progress_bar=False)
    assert np.all(np.isfinite(rec.object))
