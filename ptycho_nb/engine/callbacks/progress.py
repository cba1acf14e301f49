"""The progress bar ptycho_nb uses, chosen explicitly (never Lightning's implicit default).

:class:`PtychoProgressBar` is Lightning's ``TQDMProgressBar`` with the bar class fixed here:

* inside a Jupyter kernel (with ipywidgets): ``tqdm.notebook`` — a native progress *widget*, one
  per loop, no text written to the cell's streams (so nothing for nbval to compare and no escape
  codes in a saved notebook);
* on a terminal (a TTY): ``tqdm.std`` text bars, the validation bar on the line below the
  training bar as Lightning draws it;
* when stdout is not a TTY (a file, a pipe, CI logs, a kernel without ipywidgets): no bar at all
  but one plain line per epoch (``epoch k/M: train_loss …, val_loss … (s)``) and one per phase
  (training start and end, each network pass) — no carriage returns, no ANSI escape codes.

Epochs are numbered from 1 of M everywhere (bar, lines and the live figure: :func:`epoch_label`).
When a :class:`~ptycho_nb.engine.callbacks.view.TrainingView` is active in the thread (the Panel),
the widget bars go into it instead of the cell's output.

Installing ``rich`` cannot change it (Lightning would otherwise switch to its Rich bar, which
redraws an Output widget dozens of times per epoch). Add it only when
``enable_progress_bar=True``: Lightning refuses a progress-bar callback otherwise.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm as _LightningTqdm
from tqdm.std import tqdm as _std_tqdm

from ... import kernel
from .view import current_view

__all__ = ["PtychoProgressBar", "notebook_bars_available", "epoch_label"]


def epoch_label(epoch: int, max_epochs: int | None) -> str:
    """``'epoch k/M'`` for the 0-based Lightning ``epoch``: 1-based, with the total when known."""
    total = f"/{max_epochs}" if max_epochs is not None and max_epochs > 0 else ""
    return f"epoch {epoch + 1}{total}"


class _TextBar(_std_tqdm):
    """Plain text tqdm with Lightning's padded number format (no flicker of the postfix)."""

    format_num = staticmethod(_LightningTqdm.format_num)


def _notebook_bar_class() -> type | None:
    """``tqdm.notebook.tqdm`` (with Lightning's number format), or None without ipywidgets."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.notebook import tqdm as nb_tqdm
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return None

    class _NotebookBar(nb_tqdm):
        format_num = staticmethod(_LightningTqdm.format_num)
        _view: Any = None

        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            # Lightning creates the bar without a total (tqdm draws a 20 px "unknown" square) and
            # assigns .total later, which tqdm.notebook never passes on to the widget.
            if name == "total" and value and "container" in self.__dict__:
                pbar = self.container.children[1]
                pbar.max = value
                pbar.layout.width = None
                if pbar.bar_style == "info":
                    pbar.bar_style = ""

        def close(self) -> None:
            super().close()
            if self._view is not None and not self.leave:
                self._view.remove_bar(self.container)

    return _NotebookBar


_NOTEBOOK_BAR: type | None | bool = False  # False: not looked up yet


def notebook_bars_available() -> bool:
    """True inside a notebook kernel where the widget bar can be shown."""
    global _NOTEBOOK_BAR
    if not kernel.in_notebook_kernel():
        return False
    if _NOTEBOOK_BAR is False:
        _NOTEBOOK_BAR = _notebook_bar_class()
    return _NOTEBOOK_BAR is not None


class PtychoProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bar, as a widget in a notebook kernel and escape-free text elsewhere.

    Parameters
    ----------
    refresh_rate : int
        Update every this many batches (Lightning's meaning).
    mode : {'auto', 'widget', 'text'}
        'auto' (default) picks the widget inside a notebook kernel, text elsewhere.
    """

    def __init__(self, refresh_rate: int = 1, *, mode: str = "auto") -> None:
        if mode not in ("auto", "widget", "text"):
            raise ValueError(f"PtychoProgressBar: mode={mode!r} is invalid: rule is one of 'auto', 'widget', 'text'")
        super().__init__(refresh_rate=refresh_rate)
        self.mode = mode

    # ------------------------------------------------------------------ choice of bar
    def _widget(self) -> bool:
        if self.mode == "text":
            return False
        if current_view() is not None or self.mode == "widget":
            return _notebook_bar_class() is not None
        return notebook_bars_available()

    def _plain(self) -> bool:
        """Plain lines instead of bars: text mode and stdout is not a terminal."""
        if self._widget():
            return False
        isatty = getattr(sys.stdout, "isatty", None)
        return not (bool(isatty()) if callable(isatty) else False)

    def _bar(self, *, desc: str, position: int, leave: bool, **kwargs: Any) -> Any:
        if self._widget():
            cls = _NOTEBOOK_BAR if isinstance(_NOTEBOOK_BAR, type) else _notebook_bar_class()
            view = current_view()
            bar = cls(desc=desc, disable=self.is_disabled, leave=leave, file=sys.stdout,
                      bar_format=self.BAR_FORMAT, display=view is None, **kwargs)
            if view is not None and not bar.disable:
                bar._view = view
                view.add_bar(bar.container)
            return bar
        if self._plain():
            # a disabled bar keeps Lightning's bookkeeping; the lines come from the hooks below
            return _TextBar(desc=desc, disable=True, file=sys.stdout, **kwargs)
        return _TextBar(desc=desc, position=position, disable=self.is_disabled, leave=leave,
                        dynamic_ncols=True, file=sys.stdout, bar_format=self.BAR_FORMAT, **kwargs)

    def _line(self, text: str) -> None:
        if self._plain() and not self.is_disabled:
            print(text, file=sys.stdout, flush=True)

    # ------------------------------------------------------------------ Lightning's hooks
    def init_sanity_tqdm(self) -> Any:
        return self._bar(desc=self.sanity_check_description, position=2 * self.process_position,
                         leave=False)

    def init_train_tqdm(self) -> Any:
        return self._bar(desc=self.train_description, position=2 * self.process_position,
                         leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Any:
        return self._bar(desc=self.predict_description, position=2 * self.process_position,
                         leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Any:
        has_main_bar = self.trainer.state.fn != "validate"
        return self._bar(desc=self.validation_description,
                         position=2 * self.process_position + has_main_bar, leave=not has_main_bar)

    def init_test_tqdm(self) -> Any:
        return self._bar(desc="Testing", position=2 * self.process_position, leave=True)

    @property
    def predict_description(self) -> str:
        # inference predicts patches once per pattern; say so rather than Lightning's bare word,
        # and by purpose where the module names it (a run may make more than one pass)
        module = self.trainer.lightning_module if self._trainer is not None else None
        return str(getattr(module, "progress_label", "Network pass"))

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_start(trainer, pl_module)
        self._t_fit = time.perf_counter()
        batches = self.total_train_batches
        per_epoch = f", {batches} batches per epoch" if batches != float("inf") else ""
        self._line(f"training: {trainer.max_epochs} epochs{per_epoch}")

    def on_train_epoch_start(self, trainer: Any, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._t_epoch = time.perf_counter()
        self.train_progress_bar.set_description(
            epoch_label(trainer.current_epoch, trainer.max_epochs).capitalize())

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if trainer.sanity_checking:
            return
        losses = []
        for key in sorted(trainer.callback_metrics):
            if key.endswith("loss"):
                try:
                    losses.append(f"{key} {float(trainer.callback_metrics[key]):.5g}")
                except (TypeError, ValueError):
                    continue
        dt = time.perf_counter() - getattr(self, "_t_epoch", time.perf_counter())
        self._line(f"{epoch_label(trainer.current_epoch, trainer.max_epochs)}: "
                   f"{', '.join(losses) or 'no loss logged'} ({dt:.1f} s)")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_end(trainer, pl_module)
        dt = time.perf_counter() - getattr(self, "_t_fit", time.perf_counter())
        self._line(f"training: done after {trainer.current_epoch} epoch(s), {dt:.1f} s")

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_predict_start(trainer, pl_module)
        self._t_predict = time.perf_counter()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        super().on_predict_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        if batch_idx == 0:
            n = _n_samples(trainer)
            desc = f"{self.predict_description} ({n} patterns)" if n else self.predict_description
            self.predict_progress_bar.set_description(desc)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_predict_end(trainer, pl_module)
        n = _n_samples(trainer)
        dt = time.perf_counter() - getattr(self, "_t_predict", time.perf_counter())
        self._line(f"{self.predict_description.lower()}: {n or '?'} patterns in {dt:.2f} s")


def _n_samples(trainer: Any) -> int | None:
    """How many samples the predict loop's data holds (None when unknown)."""
    try:
        loaders = trainer.predict_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        return sum(len(dl.dataset) for dl in loaders)
    except Exception:  # noqa: BLE001 - only a label
        return None
