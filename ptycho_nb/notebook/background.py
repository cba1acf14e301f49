"""Training in a background thread, stoppable within a batch: :func:`start_training`.

A Stop button cannot be clicked while ``trainer.fit`` blocks the kernel; running
:func:`ptycho_nb.train` in a thread keeps the kernel responsive, and
:class:`~ptycho_nb.engine.callbacks.StopCallback` turns :meth:`TrainingHandle.stop` into
``trainer.should_stop = True`` at the next batch. Lightning then ends the fit as usual, so the
best checkpoint so far is kept and the :class:`~ptycho_nb.workflows.training.TrainResult` is
returned. This is the one way to train in the background (README "In a notebook").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine.callbacks.stop import StopCallback
from ..engine.callbacks.view import TrainingView, training_view
from ..workflows.training import TrainResult, train

__all__ = ["StopCallback", "TrainingHandle", "start_training"]


class TrainingHandle:
    """A training run in a background thread.

    Attributes
    ----------
    result : TrainResult or None
        Set when training finished (also after :meth:`stop`).
    error : BaseException or None
        The exception training raised, if any.
    view : TrainingView or None
        Where the progress bars and the live figure go (None: the output of the cell that
        started the run).

    Displayed in a notebook, the handle is a one-line label that follows the run (running,
    stopping, done, failed), not a snapshot of the moment it was displayed.
    """

    def __init__(self, train_kwargs: dict[str, Any],
                 on_done: Callable[[TrainingHandle], None] | None = None,
                 view: TrainingView | None = None) -> None:
        self._stop_event = threading.Event()
        self.callback = StopCallback(self._stop_event)
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._on_done = on_done
        self.view = view
        self._label: Any = None  # the widget shown by _ipython_display_, created on demand
        kw = dict(train_kwargs)
        kw["callbacks"] = [*kw.get("callbacks", ()), self.callback]
        self._kwargs = kw
        self._thread = threading.Thread(target=self._run, name="ptycho_nb-train", daemon=True)

    def _run(self) -> None:
        self.started_at = time.perf_counter()
        try:
            with training_view(self.view):
                self.result = train(**self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported through .error / join()
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            self._update_label(ended=True)
            if self._on_done is not None:
                try:
                    self._on_done(self)
                except Exception:
                    import logging

                    logging.getLogger(__name__).exception("on_done callback failed")

    def start(self) -> TrainingHandle:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask training to stop at the next batch end (best checkpoint kept)."""
        self._stop_event.set()
        self._update_label()

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    @property
    def done(self) -> bool:
        """True once the thread has finished (successfully or not)."""
        return self.finished_at is not None and not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> TrainResult | None:
        """Wait for training; return the :class:`TrainResult` (None if still running after
        ``timeout``). Re-raises the exception training raised."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end, without re-raising what training raised (that stays in
        :attr:`error`). Returns whether it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _state(self, ended: bool = False) -> str:
        if ended or self.done:
            return "failed" if self.error is not None else (
                "stopped" if self.stop_requested else "done")
        return "stopping" if self.stop_requested else "running"

    def __repr__(self) -> str:
        return f"<TrainingHandle {self._state()}, {self.callback.batches} batches>"

    def _label_text(self, ended: bool = False) -> str:
        text = f"TrainingHandle: {self._state(ended)}"
        if ended or self.done:
            if self.error is not None:
                text += f" ({type(self.error).__name__}: {self.error})"
            elif self.result is not None:
                text += f" after {self.result.run.epochs_run} epoch(s), {self.result.elapsed_s:.1f} s"
        return text

    def _update_label(self, ended: bool = False) -> None:
        if self._label is not None:
            self._label.value = self._label_text(ended)

    def _ipython_display_(self) -> None:
        # A live label: the text repr would stay "running" forever in the cell's output.
        import ipywidgets as widgets
        from IPython.display import display

        if self._label is None:
            self._label = widgets.Label(self._label_text())
        display(self._label)


def start_training(data: Any = None, *, on_done: Callable[[TrainingHandle], None] | None = None,
                   view: TrainingView | None = None, **train_kwargs: Any) -> TrainingHandle:
    """Start :func:`ptycho_nb.train` in a background thread and return at once.

    Parameters
    ----------
    data : PtychoData or path, optional
        The training scan, as for :func:`ptycho_nb.train`.
    on_done : callable, optional
        ``on_done(handle)`` runs in the thread when training ends (also on error).
    view : TrainingView, optional
        Draw the progress bars and the live figure into this widget (what the Panel does)
        instead of the output of the cell that called this.
    **train_kwargs
        Everything else :func:`ptycho_nb.train` takes (configs, ``test_data``, ``callbacks``,
        overrides such as ``nepochs=5``).

    Returns
    -------
    TrainingHandle
        ``.stop()`` ends training within a batch (best checkpoint kept), ``.join()`` waits and
        returns the :class:`~ptycho_nb.workflows.training.TrainResult`, ``.result`` holds it.
    """
    return TrainingHandle({"data": data, **train_kwargs}, on_done=on_done, view=view).start()
