"""Where a training run's progress bars and live figure go when a widget hosts them.

By default the progress widget and the live figure are *displayed* into the output of the cell
that is running. A run started by a widget (the Panel's Train button) has no such cell: a button
callback's outputs go nowhere visible, and a background thread's outputs follow the request that
started it. A :class:`TrainingView` is a plain widget the host places in its own layout; while it
is active in a thread (:func:`training_view`), :class:`~ptycho_nb.engine.callbacks.PtychoProgressBar`
adds its bars to it and :class:`~ptycho_nb.engine.callbacks.LivePlot` draws into it. Widget state
syncs from any thread, so this works for a run in a background thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["TrainingView", "current_view", "training_view"]

_local = threading.local()


class TrainingView:
    """A box of progress bars above the live figure (a PNG in an ``ipywidgets.Image``).

    Attributes
    ----------
    widget : ipywidgets.VBox
        What the host shows.
    bars : ipywidgets.VBox
        The progress bars of the current run (one per Lightning loop).
    image : ipywidgets.Image
        The live figure; hidden until the first redraw.
    """

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.bars = widgets.VBox()
        self.image = widgets.Image(format="png", layout=widgets.Layout(display="none",
                                                                       max_width="100%"))
        self.widget = widgets.VBox([self.bars, self.image])
        self.widget.add_class("ptycho-nb-training-view")
        self.image.add_class("ptycho-nb-live-figure")

    def clear(self) -> None:
        """Remove the bars and the figure of an earlier run."""
        self.bars.children = ()
        self.image.layout.display = "none"

    def add_bar(self, container: Any) -> None:
        self.bars.children = (*self.bars.children, container)

    def remove_bar(self, container: Any) -> None:
        self.bars.children = tuple(c for c in self.bars.children if c is not container)

    def show_png(self, png: bytes) -> None:
        """Show (or replace) the live figure."""
        self.image.value = png
        self.image.layout.display = None


def current_view() -> TrainingView | None:
    """The view active in this thread, or None (then bars and figures go to the cell output)."""
    return getattr(_local, "view", None)


@contextlib.contextmanager
def training_view(view: TrainingView | None) -> Iterator[TrainingView | None]:
    """Make ``view`` this thread's target for progress bars and the live figure."""
    saved = current_view()
    _local.view = view
    try:
        yield view
    finally:
        _local.view = saved
