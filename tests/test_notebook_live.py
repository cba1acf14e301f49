"""Progress and live plots in the kernel: LivePlot (one display, updated in place), the explicit
progress bar, plot_every_n_epochs, and a real notebook executed with nbclient."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import ptycho_nb
from ptycho_nb import kernel as kernel_mod
from ptycho_nb.config.execution import PyTorchExecutionConfig
from ptycho_nb.engine.callbacks.live_plot import TEXT_PLAIN, LivePlot, resolve_plot_every
from ptycho_nb.engine.callbacks.progress import PtychoProgressBar
from ptycho_nb.engine.trainer import default_callbacks as callbacks

TINY = dict(N=32, object_shape=(80, 80), n_positions=30, step=5.0)
FAST = dict(batch_size=8, n_filters_scale=1)


@pytest.fixture(scope="module")
def scan():
    return ptycho_nb.simulate(seed=1, **TINY)


class _Handle:
    def __init__(self, log):
        self.log, self.display_id = log, "live-1"

    def update(self, obj, **kw):
        self.log.append(("update", obj, kw))


@pytest.fixture
def fake_kernel(monkeypatch):
    """Pretend to be inside a notebook kernel and record IPython display calls."""
    import IPython.display

    calls: list = []

    def display(obj, **kw):
        calls.append(("display", obj, kw))
        return _Handle(calls) if kw.get("display_id") else None

    monkeypatch.setattr(kernel_mod, "in_notebook_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    return calls


# --------------------------------------------------------------------------- the config field
def test_plot_every_n_epochs_field():
    assert PyTorchExecutionConfig().plot_every_n_epochs is None
    for ok in (None, 0, 1, 7):
        assert PyTorchExecutionConfig(plot_every_n_epochs=ok).plot_every_n_epochs == ok
    with pytest.raises(ValueError, match="plot_every_n_epochs"):
        PyTorchExecutionConfig(plot_every_n_epochs=-1)
    f = {f.name: f for f in __import__("dataclasses").fields(PyTorchExecutionConfig)}["plot_every_n_epochs"]
    assert f.metadata["category"] == "ux" and "--plot-every-n-epochs" in f.metadata["flags"]
    assert f.metadata["lands"] == "LivePlot callback"


def test_resolve_plot_every(monkeypatch):
    assert resolve_plot_every(None) == 0  # not in a kernel here
    assert resolve_plot_every(0) == 0 and resolve_plot_every(3) == 3
    monkeypatch.setattr(kernel_mod, "in_notebook_kernel", lambda: True)
    assert resolve_plot_every(None) == "auto"
    assert resolve_plot_every(0) == 0
    with pytest.raises(ValueError, match="plot_every_n_epochs"):
        resolve_plot_every(-2)


# --------------------------------------------------------------------------- LivePlot
def _images(calls):
    return [c for c in calls if isinstance(c[1], dict) and "image/png" in c[1]]


def test_live_plot_updates_one_display(scan, tmp_path, fake_kernel):
    r = ptycho_nb.train(scan, output_dir=tmp_path, nepochs=3, plot_every_n_epochs=1, **FAST)
    shown = _images(fake_kernel)
    assert [c[0] for c in shown] == ["display", "update", "update"]
    assert shown[0][2]["display_id"] is True and shown[0][2]["raw"] is True
    assert all(c[1]["text/plain"] == TEXT_PLAIN for c in shown)
    assert all(c[1]["image/png"].startswith(b"\x89PNG") for c in shown)
    assert shown[1][1]["image/png"] != shown[2][1]["image/png"]  # it really redraws
    assert r.run.plot_every_n_epochs == 1


def test_live_plot_every_k_and_final(scan, tmp_path, fake_kernel):
    # k=2 over 3 epochs: drawn after epoch 2, and the final state at the end of training.
    ptycho_nb.train(scan, output_dir=tmp_path / "a", nepochs=3, plot_every_n_epochs=2, **FAST)
    assert [c[0] for c in _images(fake_kernel)] == ["display", "update"]
    fake_kernel.clear()
    # k larger than the run: one figure, the final one.
    lp = LivePlot(10)
    ptycho_nb.train(scan, output_dir=tmp_path / "b", nepochs=2, callbacks=[lp], **FAST)
    assert [c[0] for c in _images(fake_kernel)] == ["display"]
    assert lp.n_draws == 1 and len(lp.draw_seconds) == 1
    fake_kernel.clear()
    # 0 = off
    r = ptycho_nb.train(scan, output_dir=tmp_path / "c", nepochs=2, plot_every_n_epochs=0, **FAST)
    assert _images(fake_kernel) == [] and r.run.plot_every_n_epochs == 0


def test_live_plot_auto_by_kernel_detection(scan, tmp_path, fake_kernel, monkeypatch):
    r = ptycho_nb.train(scan, output_dir=tmp_path / "a", nepochs=1, **FAST)  # None = auto, "in a kernel"
    assert [c[0] for c in _images(fake_kernel)] == ["display"]
    assert r.run.plot_every_n_epochs == "auto"
    fake_kernel.clear()
    monkeypatch.setattr(kernel_mod, "in_notebook_kernel", lambda: False)
    r = ptycho_nb.train(scan, output_dir=tmp_path / "b", nepochs=1, **FAST)  # auto outside: off
    assert fake_kernel == [] and r.run.plot_every_n_epochs == 0


def test_live_plot_outside_kernel_writes_path_only(scan, tmp_path, capsys):
    png = tmp_path / "live.png"
    lp = LivePlot(1, path=png)
    ptycho_nb.train(scan, output_dir=tmp_path / "o", nepochs=2, callbacks=[lp], **FAST)
    assert png.read_bytes().startswith(b"\x89PNG") and lp.n_draws == 2 and lp.handle is None
    with pytest.raises(ValueError, match="every_n_epochs"):
        LivePlot(-1)


def test_live_plot_auto_keeps_redraws_within_budget():
    """'auto': first epoch drawn, then only once the training time since covers cost / budget."""
    lp = LivePlot("auto", budget=0.1)
    lp.n_draws, lp.draw_seconds = 1, [2.0]
    lp._since_draw = 19.9
    assert not lp._due(5)
    lp._since_draw = 20.0
    assert lp._due(5)
    assert LivePlot("auto")._due(0)  # nothing drawn yet
    assert LivePlot(3)._due(2) and not LivePlot(3)._due(3)
    for bad in ("sometimes", -1):
        with pytest.raises(ValueError, match="every_n_epochs"):
            LivePlot(bad)


# --------------------------------------------------------------------------- progress bar
def test_progress_bar_explicit_and_text_without_escapes(scan, tmp_path, capsys):
    cbs = callbacks(PyTorchExecutionConfig(enable_progress_bar=True), has_validation=True)
    assert sum(isinstance(c, PtychoProgressBar) for c in cbs) == 1
    assert not any(isinstance(c, PtychoProgressBar) for c in
                   callbacks(PyTorchExecutionConfig(enable_progress_bar=False), has_validation=True))
    capsys.readouterr()
    ptycho_nb.train(scan, output_dir=tmp_path / "p", nepochs=2, enable_progress_bar=True, **FAST)
    out = capsys.readouterr()
    # stdout is not a terminal here: plain lines, one per epoch and per phase, numbered 1..M
    lines = out.out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["training", "epoch 1/2", "epoch 2/2", "training"]
    assert "train_loss" in lines[1] and lines[1].endswith(" s)")
    assert "\r" not in out.out and "\x1b[" not in out.out + out.err
    ptycho_nb.train(scan, output_dir=tmp_path / "q", nepochs=1, enable_progress_bar=False, **FAST)
    out = capsys.readouterr()
    assert "epoch" not in (out.out + out.err).lower()


# --------------------------------------------------------------------------- a real notebook
NOTEBOOK_CELLS = [
    "import ptycho_nb\n"
    "scan = ptycho_nb.simulate(seed=1, N=32, object_shape=(80, 80), n_positions=30, step=5.0)",
    "result = ptycho_nb.train(scan, output_dir=OUT, nepochs=2, batch_size=8, n_filters_scale=1,\n"
    "                         enable_progress_bar=True, plot_every_n_epochs=1)",
    "recon = ptycho_nb.infer(result, scan)",
    "recon",
]


def _ensure_python3_kernel():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:  # pragma: no cover - depends on the machine
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True)


def test_notebook_executes_with_widgets_one_live_figure_no_ansi(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _ensure_python3_kernel()
    out_dir = tmp_path / "run"
    cells = [nbformat.v4.new_code_cell(f"OUT = {str(out_dir)!r}")]
    cells += [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    messages: list[dict] = []

    class Recording(nbclient.NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg.get("msg_type") in ("display_data", "update_display_data"):
                messages.append(msg)
            return super().process_message(msg, cell, cell_index)

    t0 = time.perf_counter()
    Recording(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.perf_counter() - t0
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()

    # no escape codes anywhere in the saved notebook (JSON escapes ESC as \u001b)
    assert "\\u001b[" not in text and "\x1b[" not in text

    train_outputs = nb.cells[2].outputs
    views = [o for o in train_outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, f"no progress widget in {train_outputs}"
    assert not [o for o in train_outputs if o.output_type == "stream"], train_outputs  # no chatter
    live = [o for o in train_outputs if "image/png" in o.get("data", {})]
    assert len(live) == 1 and live[0]["data"]["text/plain"] == TEXT_PLAIN
    ids = {m["content"]["transient"]["display_id"] for m in messages
           if m["content"]["data"].get("text/plain") == TEXT_PLAIN}
    assert len(ids) == 1
    kinds = [m["msg_type"] for m in messages if m["content"]["data"].get("text/plain") == TEXT_PLAIN]
    assert kinds[0] == "display_data" and kinds.count("display_data") == 1
    assert kinds.count("update_display_data") >= 1  # updated in place (epoch 2)

    assert not nb.cells[3].outputs  # infer() shows nothing by itself
    recon_out = nb.cells[4].outputs
    assert len(recon_out) == 1 and "image/png" in recon_out[0]["data"]
    assert "Reconstruction(" in recon_out[0]["data"]["text/plain"]
    assert elapsed < 300
    json.loads(text)  # a valid notebook file


def test_live_plot_shows_phase_error_when_the_scan_has_ground_truth(tmp_path):
    import numpy as np

    from ptycho_nb.notebook import LivePlot

    data = ptycho_nb.simulate(N=32, object_shape=(80, 80), n_positions=30, step=5.0, seed=3)
    lp = LivePlot(1, path=tmp_path / "live.png")
    ptycho_nb.train(data, nepochs=1, batch_size=8, n_filters_scale=1, output_dir=tmp_path / "o",
                    callbacks=[lp])
    assert lp.n_draws >= 1 and (tmp_path / "live.png").stat().st_size > 1000
    err = lp._artists["error"]
    assert err is not None and np.isfinite(err.get_array()).any()
