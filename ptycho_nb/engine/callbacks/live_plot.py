"""Live view of training in a notebook: one figure, redrawn in place every k epochs.

:class:`LivePlot` is a plain Lightning callback (separate from the progress bar, with its own
switch ``PyTorchExecutionConfig.plot_every_n_epochs``). Every k epochs it predicts a small fixed
set of training patterns near the scan centre, stitches them with the model's effective probe
and redraws amplitude, phase and the train/val loss curves into *one* matplotlib ``Figure``
(object-oriented API on an Agg canvas: no pyplot state, safe in threads). In a notebook kernel the
figure is shown once with ``display(..., display_id=True)`` and every later redraw updates that
same output (``update_display_data``), so the notebook holds exactly one live image — and one PNG
when saved. When a :class:`~ptycho_nb.engine.callbacks.view.TrainingView` is active in the thread
(the Panel), it draws into that widget instead. Outside a kernel it draws nothing unless ``path``
is given (then it rewrites that PNG). Epochs are numbered 1..M, as in the progress bar.
"""

from __future__ import annotations

import io
import logging
import os
import time
from typing import Any

import lightning as L
import numpy as np
import torch

from ...config.execution import LIVE_PLOT_BUDGET
from ... import kernel
from ...metrics import lit_mask
from ...model.stitching import stitch_patches
from .progress import epoch_label
from .view import current_view

__all__ = ["LivePlot", "resolve_plot_every", "LIVE_PLOT_BUDGET"]

log = logging.getLogger(__name__)

#: ``text/plain`` of the live figure's output (stable, so nbval has nothing to trip over).
TEXT_PLAIN = "<ptycho_nb live view>"


def resolve_plot_every(value: int | None) -> int | str:
    """``plot_every_n_epochs`` as used: None → ``'auto'`` in a notebook kernel (redraw as often as
    keeps the redraws under :data:`LIVE_PLOT_BUDGET` of training time), 0 (off) elsewhere; an int
    unchanged (0 = off, k = every k epochs)."""
    if value is None:
        return "auto" if kernel.in_notebook_kernel() else 0
    if int(value) < 0:
        raise ValueError(f"plot_every_n_epochs={value!r} is invalid: rule is None (auto), 0 (off) or >= 1")
    return int(value)


class LivePlot(L.Callback):
    """Redraw amplitude, phase (of a fixed region) and the loss curves every ``every_n_epochs``.

    Parameters
    ----------
    every_n_epochs : int or 'auto'
        Redraw after every k-th epoch (k >= 1); the last epoch is always drawn when training ends.
        0 disables the callback. 'auto' draws after the first epoch, then whenever the training
        time since the last redraw is at least ``redraw time / budget``.
    budget : float
        'auto' only: the largest fraction of training time the redraws may cost.
    n_positions : int
        How many scan positions (nearest the scan centre) make up the region shown.
    path : str or PathLike, optional
        Also (or, outside a notebook, only) write the figure to this PNG on every redraw.
    dpi : int
        Resolution of the displayed PNG.

    Attributes
    ----------
    n_draws : int
        Redraws done so far; ``draw_seconds`` holds the time each took (prediction + rendering).
    """

    def __init__(self, every_n_epochs: int | str = 1, *, n_positions: int = 64,
                 path: str | os.PathLike | None = None, dpi: int = 72,
                 budget: float = LIVE_PLOT_BUDGET) -> None:
        super().__init__()
        if every_n_epochs != "auto" and (isinstance(every_n_epochs, str) or int(every_n_epochs) < 0):
            raise ValueError(f"LivePlot: every_n_epochs={every_n_epochs!r} is invalid: rule is "
                             "'auto' or an integer >= 0 (0 = off)")
        if not 0 < float(budget) <= 1:
            raise ValueError(f"LivePlot: budget={budget!r} is invalid: rule is 0 < budget <= 1")
        if int(n_positions) < 1:
            raise ValueError(f"LivePlot: n_positions={n_positions!r} is invalid: rule is >= 1")
        self.every_n_epochs: int | str = every_n_epochs if every_n_epochs == "auto" else int(every_n_epochs)
        self.budget = float(budget)
        self.train_seconds = 0.0  # training time (without redraws) since fit started
        self._since_draw = 0.0
        self._epoch_t0: float | None = None
        self.n_positions = int(n_positions)
        self.path = None if path is None else os.fspath(path)
        self.dpi = int(dpi)
        self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        self.n_draws = 0
        self.draw_seconds: list[float] = []
        self.handle: Any = None
        self.figure: Any = None
        self._region: dict[str, Any] | None = None
        self._artists: dict[str, Any] = {}
        self._last_drawn_epoch: int | None = None
        self._max_epochs: int | None = None
        self._view: Any = None
        self._active = False

    # ------------------------------------------------------------------ lifecycle
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._view = current_view()  # fit runs in this thread: the view stays the same
        self._active = (self.every_n_epochs != 0 and trainer.is_global_zero
                        and (self.path is not None or self._view is not None
                             or kernel.in_notebook_kernel()))
        if not self._active:
            return
        self.history = {"train_loss": [], "val_loss": []}
        self._last_drawn_epoch = None
        self._max_epochs = trainer.max_epochs
        self.train_seconds = self._since_draw = 0.0
        self._region = self._select_region(trainer)
        if self._region is None:
            log.info("LivePlot: no training data found on the trainer; live view off")
            self._active = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        if self._epoch_t0 is not None:
            dt = time.perf_counter() - self._epoch_t0
            self.train_seconds += dt
            self._since_draw += dt
        metrics = trainer.callback_metrics
        for key in self.history:
            if key in metrics:
                try:
                    self.history[key].append(float(metrics[key]))
                except (TypeError, ValueError):
                    pass
        epoch = trainer.current_epoch
        if self._due(epoch):
            self.redraw(pl_module, epoch)

    def _due(self, epoch: int) -> bool:
        if self.every_n_epochs == "auto":
            # The first redraw pays one-off costs (figure, fonts); later ones are steadier.
            cost = self.draw_seconds[-1] if self.draw_seconds else 0.0
            return self.n_draws == 0 or self._since_draw * self.budget >= cost
        return (epoch + 1) % int(self.every_n_epochs) == 0

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._final(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # An interrupt still leaves the figure of the model so far.
        try:
            self._final(trainer, pl_module)
        except Exception:  # pragma: no cover - never mask the real exception
            log.debug("LivePlot: final redraw failed", exc_info=True)

    def _final(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        epoch = max(int(trainer.current_epoch) - 1, 0)  # current_epoch counts finished epochs here
        if self._last_drawn_epoch is None or self._last_drawn_epoch < epoch:
            self.redraw(pl_module, epoch)
        self._active = False

    # ------------------------------------------------------------------ region
    def _select_region(self, trainer: L.Trainer) -> dict[str, Any] | None:
        dm = getattr(trainer, "datamodule", None)
        dataset = getattr(dm, "train_set", None)
        data = getattr(dm, "train_data", None)
        while isinstance(dataset, torch.utils.data.Subset):
            dataset = dataset.dataset
        if dataset is None or data is None or not hasattr(dataset, "indices"):
            return None
        own = dataset.indices[:, 0].numpy()
        x = np.asarray(data.xcoords, dtype=np.float64)[own]
        y = np.asarray(data.ycoords, dtype=np.float64)[own]
        cx, cy = float(np.median(x)), float(np.median(y))
        sel = np.argsort((x - cx) ** 2 + (y - cy) ** 2, kind="stable")[: self.n_positions]
        sel_t = torch.from_numpy(sel.astype(np.int64))
        return {"diffraction": dataset.diffraction[dataset.indices[sel_t]],
                "offset_x": dataset.offset_x[sel_t], "offset_y": dataset.offset_y[sel_t],
                "x": x[sel], "y": y[sel], "truth": getattr(data, "object", None)}

    @torch.no_grad()
    def _reconstruct(self, pl_module: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        r = self._region
        assert r is not None
        was_training = pl_module.training
        pl_module.eval()
        try:
            dev = pl_module.device
            out = pl_module(r["diffraction"].to(dev), r["offset_x"].to(dev), r["offset_y"].to(dev))[:, 0]
            patches = out.detach().cpu().to(torch.complex64)
            probe = pl_module.effective_probe.detach().cpu()
        finally:
            pl_module.train(was_training)
        st = stitch_patches(patches, r["x"], r["y"], probe)
        obj = np.asarray(st.object)
        truth = None
        if r.get("truth") is not None:  # the ground truth of a simulated scan, in the same frame
            (r0, c0), (h, w) = st.offset, obj.shape
            crop = np.asarray(r["truth"])[max(r0, 0):r0 + h, max(c0, 0):c0 + w]
            truth = crop if crop.shape == obj.shape else None
        return obj, np.asarray(st.weight), truth

    # ------------------------------------------------------------------ drawing
    def _build_figure(self, obj: np.ndarray, with_truth: bool) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(14 if with_truth else 10.5, 3.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 4 if with_truth else 3)
        ax_a, ax_p, ax_l = axes[0], axes[1], axes[-1]
        blank = np.zeros(obj.shape, dtype=np.float32)
        im_a = ax_a.imshow(blank, cmap="gray")
        im_p = ax_p.imshow(blank, cmap="viridis")
        panels = [(ax_a, im_a, "amplitude"), (ax_p, im_p, "phase (rad)")]
        im_e = None
        if with_truth:
            im_e = axes[2].imshow(blank, cmap="RdBu_r", vmin=-1, vmax=1)
            panels.append((axes[2], im_e, "phase error vs truth (rad)"))
        for ax, im, title in panels:
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.8)
        (l_train,) = ax_l.plot([], [], "o-", ms=3, label="train_loss")
        (l_val,) = ax_l.plot([], [], "s-", ms=3, label="val_loss")
        ax_l.set_xlabel("epoch", fontsize=9)
        ax_l.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1..M, as in the bar
        ax_l.set_title("loss", fontsize=9)
        ax_l.legend(fontsize=8)
        self.figure = fig
        self._artists = {"amp": im_a, "phase": im_p, "error": im_e, "train_loss": l_train,
                         "val_loss": l_val, "ax_l": ax_l, "ax_a": ax_a, "ax_p": ax_p}

    def redraw(self, pl_module: Any, epoch: int) -> None:
        """Predict the region, update the figure and push it to the display (or ``path``)."""
        t0 = time.perf_counter()
        obj, weight, truth = self._reconstruct(pl_module)
        if self.figure is None or self._artists["amp"].get_array().shape != obj.shape:
            self._build_figure(obj, with_truth=truth is not None)
        lit = lit_mask(weight)  # the pixels a reconstruction's figure shows too
        if truth is not None and self._artists["error"] is not None:
            # remove the global phase (the one ambiguity) before showing the error
            z = np.sum((truth * np.conj(obj))[lit])
            aligned = obj * (z / abs(z) if abs(z) > 0 else 1.0)
            self._artists["error"].set_data(np.where(lit, np.angle(aligned * np.conj(truth)), np.nan))
        amp = np.where(lit, np.abs(obj), np.nan)
        phase = np.where(lit, np.angle(obj), np.nan)
        a = self._artists
        for key, img in (("amp", amp), ("phase", phase)):
            a[key].set_data(img)
            finite = img[np.isfinite(img)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
                a[key].set_clim(lo, hi if hi > lo else lo + 1e-6)
        label = epoch_label(epoch, self._max_epochs)
        a["ax_a"].set_title(f"amplitude, {label}", fontsize=9)
        a["ax_p"].set_title(f"phase (rad), {label}", fontsize=9)
        for key in ("train_loss", "val_loss"):
            vals = self.history.get(key, [])
            a[key].set_data(np.arange(1, len(vals) + 1), vals)
            a[key].set_visible(bool(vals))
        a["ax_l"].relim()
        a["ax_l"].autoscale_view()
        png = self.render_png()
        self._publish(png)
        self._last_drawn_epoch = epoch
        self._since_draw = 0.0
        self.n_draws += 1
        self.draw_seconds.append(time.perf_counter() - t0)

    def render_png(self) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    def _publish(self, png: bytes) -> None:
        if self.path is not None:
            with open(self.path, "wb") as fh:
                fh.write(png)
        if self._view is not None:
            self._view.show_png(png)
            return
        if not kernel.in_notebook_kernel():
            return
        from IPython import display as ipd

        bundle = {"image/png": png, "text/plain": TEXT_PLAIN}
        if self.handle is None:
            self.handle = ipd.display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)
