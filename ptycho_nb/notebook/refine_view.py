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
    """

    def __init__(self, every: int = 5) -> None:
        self.every = max(1, int(every))
        self.label = widgets.Label("refinement: waiting for the first epoch")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="640px"))
        self.deviance: list[float] = []
        self.epoch = 0
        super().__init__([self.label, self.image])

    def __call__(self, progress: Any) -> bool:
        self.deviance.append(float(progress.deviance))
        self.epoch = int(progress.epoch)
        self.label.value = (f"refinement epoch {progress.epoch}/{progress.max_epochs}: deviance "
                            f"{progress.deviance:.4g} ({progress.seconds:.1f} s)")
        if progress.epoch == 1 or progress.epoch % self.every == 0:
            self.image.value = self._png(np.angle(progress.object.numpy()))
        return False

    def _png(self, phase: np.ndarray) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.2), dpi=80)
        FigureCanvasAgg(fig)
        ax_img, ax_dev = fig.subplots(1, 2)
        im = ax_img.imshow(phase, cmap="twilight", vmin=-np.pi, vmax=np.pi)
        ax_img.set_title(f"phase, epoch {self.epoch}", fontsize=9)
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        fig.colorbar(im, ax=ax_img, fraction=0.046)
        ax_dev.semilogy(np.arange(1, len(self.deviance) + 1), self.deviance)
        ax_dev.set_xlabel("epoch")
        ax_dev.set_ylabel("deviance per pixel")
        ax_dev.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
