"""Training and reconstruction in a background thread, stoppable: :func:`start_training`,
:func:`start_reconstruction`.

A Stop button cannot be clicked while ``trainer.fit`` (or a long refinement) blocks the kernel;
running :func:`ptycho_nb.train` / :func:`ptycho_nb.reconstruct` in a thread keeps the kernel
responsive. For training, :class:`~ptycho_nb.engine.callbacks.StopCallback` turns
:meth:`TrainingHandle.stop` into ``trainer.should_stop = True`` at the next batch; Lightning then
ends the fit as usual, so the best checkpoint so far is kept and the
:class:`~ptycho_nb.workflows.training.TrainResult` is returned. For a reconstruction,
:meth:`ReconstructionHandle.stop` ends the refinement after its current epoch (its ``refine``
callback asks to stop) and the reconstruction so far is returned (``run.refinement.stopped``
is 'callback'). This is the one way to run either in the background (README "In a notebook").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine.callbacks.stop import StopCallback
from ..engine.callbacks.view import TrainingView, training_view
from ..refine.progress import chain_callbacks
from ..workflows.training import TrainResult, train

__all__ = ["ReconstructionHandle", "StopCallback", "TrainingHandle", "start_reconstruction",
           "start_training"]


class _BackgroundRun:
    """One call in a daemon thread: its result or error, a stop request, a live label."""

    kind = "run"

    def __init__(self, on_done: Callable[[Any], None] | None) -> None:
        self._stop_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._on_done = on_done
        self._label: Any = None  # the widget shown by _ipython_display_, created on demand
        self._thread = threading.Thread(target=self._run, name=f"ptycho_nb-{self.kind}", daemon=True)

    def _work(self) -> Any:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def _run(self) -> None:
        self.started_at = time.perf_counter()
        try:
            self.result = self._work()
        except BaseException as exc:  # noqa: BLE001 - reported through .error / join()
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            self._update_label(ended=True)
            if self._on_done is not None:
                try:
                    self._on_done(self)
                except Exception:
                    logging.getLogger(__name__).exception("on_done callback failed")

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop at its next chance (see the subclass)."""
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

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the run; return its result (None if still running after ``timeout``).
        Re-raises the exception the run raised."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end, without re-raising what the run raised (that stays in
        :attr:`error`). Returns whether it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _state(self, ended: bool = False) -> str:
        if ended or self.done:
            return "failed" if self.error is not None else (
                "stopped" if self.stop_requested else "done")
        return "stopping" if self.stop_requested else "running"

    def _summary(self) -> str:
        return ""

    def _label_text(self, ended: bool = False) -> str:
        text = f"{type(self).__name__}: {self._state(ended)}"
        if ended or self.done:
            if self.error is not None:
                text += f" ({type(self.error).__name__}: {self.error})"
            elif self.result is not None:
                text += self._summary()
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


class TrainingHandle(_BackgroundRun):
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

    :meth:`stop` ends training at the next batch (best checkpoint kept). Displayed in a
    notebook, the handle is a one-line label that follows the run (running, stopping, done,
    failed), not a snapshot of the moment it was displayed.
    """

    kind = "train"

    def __init__(self, train_kwargs: dict[str, Any],
                 on_done: Callable[[TrainingHandle], None] | None = None,
                 view: TrainingView | None = None) -> None:
        super().__init__(on_done)
        self.callback = StopCallback(self._stop_event)
        self.view = view
        kw = dict(train_kwargs)
        kw["callbacks"] = [*kw.get("callbacks", ()), self.callback]
        self._kwargs = kw

    def _work(self) -> TrainResult:
        with training_view(self.view):
            return train(**self._kwargs)

    def join(self, timeout: float | None = None) -> TrainResult | None:
        """Wait for training; return the :class:`TrainResult` (None if still running after
        ``timeout``). Re-raises the exception training raised."""
        return super().join(timeout)

    def __repr__(self) -> str:
        return f"<TrainingHandle {self._state()}, {self.callback.batches} batches>"

    def _summary(self) -> str:
        return f" after {self.result.run.epochs_run} epoch(s), {self.result.elapsed_s:.1f} s"


class ReconstructionHandle(_BackgroundRun):
    """A :func:`ptycho_nb.reconstruct` run in a background thread.

    Attributes
    ----------
    result : Reconstruction or None
        Set when the reconstruction finished (also after :meth:`stop`).
    error : BaseException or None
        The exception it raised, if any.
    view : callable or None
        A ``refine`` callback that shows the progress (a
        :class:`~ptycho_nb.notebook.RefineView`); its ``finish(stopped)`` is called at the end
        when it has one.

    :meth:`stop` ends the refinement after its current epoch (also during the probe-start
    trials); the reconstruction so far is returned.
    """

    kind = "reconstruct"

    def __init__(self, reconstruct_kwargs: dict[str, Any],
                 on_done: Callable[[ReconstructionHandle], None] | None = None,
                 view: Any = None) -> None:
        super().__init__(on_done)
        self.view = view
        self._kwargs = dict(reconstruct_kwargs)
        self.epochs_seen = 0

    def _stop_check(self, progress: Any) -> bool:
        self.epochs_seen += 1
        return self._stop_event.is_set()

    def _work(self) -> Any:
        from ..workflows.reconstruct import reconstruct

        kw = dict(self._kwargs)
        kw["refine_callback"] = chain_callbacks(kw.get("refine_callback"), self.view, self._stop_check)
        rec = reconstruct(**kw)
        finish = getattr(self.view, "finish", None)
        if finish is not None:
            finish(rec.run.refinement.stopped if rec.run.refinement else "")
        return rec

    def __repr__(self) -> str:
        return f"<ReconstructionHandle {self._state()}, {self.epochs_seen} epochs>"

    def _summary(self) -> str:
        ref = self.result.run.refinement
        if ref is None:
            return " (no refinement)"
        return f" after {ref.epochs_run} refinement epoch(s) ({ref.stopped})"


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


def start_reconstruction(data: Any = None, model: Any = None, *,
                         on_done: Callable[[ReconstructionHandle], None] | None = None,
                         view: Any = None, **reconstruct_kwargs: Any) -> ReconstructionHandle:
    """Start :func:`ptycho_nb.reconstruct` in a background thread and return at once (its
    defaults too: the whole lit field unless ``pad_eval=False`` or an execution config says no).

    Parameters
    ----------
    data, model
        As for :func:`ptycho_nb.reconstruct` (the scan, and the model start or None).
    on_done : callable, optional
        ``on_done(handle)`` runs in the thread when the reconstruction ends (also on error).
    view : callable, optional
        A ``refine`` callback showing the progress, e.g. a
        :class:`~ptycho_nb.notebook.RefineView` displayed in a cell (what the Panel does).
    **reconstruct_kwargs
        Everything else :func:`ptycho_nb.reconstruct` takes (configs, ``refine_callback``,
        overrides such as ``refine_probe=True``).

    Returns
    -------
    ReconstructionHandle
        ``.stop()`` ends the refinement after its current epoch, ``.join()`` waits and returns
        the :class:`~ptycho_nb.workflows.inference.Reconstruction`, ``.result`` holds it.
    """
    return ReconstructionHandle({"data": data, "model": model, **reconstruct_kwargs},
                                on_done=on_done, view=view).start()
