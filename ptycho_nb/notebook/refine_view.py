"""A live view of the physics refinement: the object's phase and the deviance, updated in place.

Pass one as ``refine_callback`` (``ptycho_nb.reconstruct(scan, model, refine_callback=view)``);
display it in a cell (``view`` as the cell's last expression) before or after the call. It draws
every ``every`` epochs into one ``ipywidgets.Image`` (PNG rendered with matplotlib's Agg canvas,
no pyplot figure left behind), so a long refinement shows its progress without filling the cell.
"""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as widgets
import numpy as np

__all__ = ["RefineView"]


class RefineView(widgets.VBox):
    """A ``refine`` callback that shows the object's phase and the deviance curve.

    Parameters
    ----------
    every : int
        Epochs between redraws (the last epoch is always drawn by :meth:`finish` or the caller's
        next display).

    Attributes
    ----------
    phase : ndarray (H, W) or None
        The phase last drawn (rad), NaN where the scan never lit the object (left blank in the
        picture: there the object is only its start).
    """

    def __init__(self, every: int = 5) -> None:
        self.every = max(1, int(every))
        self.label = widgets.Label("refinement: waiting for the first epoch")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="640px"))
        self.deviance: list[float] = []
        self.epochs: list[int] = []
        self.epoch = 0
        self.stage = ""
        self.phase: np.ndarray | None = None
        self._last: Any = None
        super().__init__([self.label, self.image])
        self.add_class("ptycho-nb-refine-view")

    def __call__(self, progress: Any) -> bool:
        self._last = progress
        self.epoch = int(progress.epoch)
        self.stage = str(getattr(progress, "stage", ""))
        if self.stage:  # a probe-start trial: its epochs are not the run's
            self.label.value = (f"refinement, {self.stage}: epoch {progress.epoch}/"
                                f"{progress.max_epochs}, deviance {progress.deviance:.4g} "
                                f"({progress.seconds:.1f} s)")
            if progress.epoch == progress.max_epochs:
                self._draw()
            return False
        self.deviance.append(float(progress.deviance))
        self.epochs.append(self.epoch)
        self.label.value = (f"refinement epoch {progress.epoch}/{progress.max_epochs}: deviance "
                            f"{progress.deviance:.4g} ({progress.seconds:.1f} s)")
        if len(self.epochs) == 1 or progress.epoch % self.every == 0:
            self._draw()
        return False

    def finish(self, stopped: str = "") -> None:
        """Draw the last epoch seen and say why the run ended (``stopped``)."""
        if self._last is None:
            return
        self._draw()
        if stopped:
            self.label.value += f", {stopped}"

    def _draw(self) -> None:
        if self._last is not None:
            phase = np.angle(self._last.object_array())  # a host copy, on any device
            lit = getattr(self._last, "lit", None)
            if lit is not None and lit.shape == phase.shape:
                phase = np.where(lit, phase, np.nan)
            self.phase = phase
            self.image.value = self._png(phase)

    def _png(self, phase: np.ndarray) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.2), dpi=80)
        FigureCanvasAgg(fig)
        ax_img, ax_dev = fig.subplots(1, 2)
        im = ax_img.imshow(phase, cmap="twilight", vmin=-np.pi, vmax=np.pi)
        ax_img.set_title(f"phase, {self.stage + ', ' if self.stage else ''}epoch {self.epoch}",
                         fontsize=9)
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        fig.colorbar(im, ax=ax_img, fraction=0.046)
        if self.deviance:
            ax_dev.semilogy(self.epochs, self.deviance)
        ax_dev.set_xlabel("epoch")
        ax_dev.set_ylabel("deviance per pixel")
        ax_dev.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
