"""The progress bar ptycho_nb uses, chosen explicitly (never Lightning's implicit default).

:class:`PtychoProgressBar` is Lightning's ``TQDMProgressBar`` with the bar class fixed here:

* inside a Jupyter kernel (with ipywidgets): ``tqdm.notebook`` — a native progress *widget*, one
  per loop, no text written to the cell's streams (so nothing for nbval to compare and no escape
  codes in a saved notebook);
* anywhere else: ``tqdm.std`` text bars. On a terminal (a TTY) the validation bar sits on the line
  below the training bar as Lightning draws it; when stdout is not a TTY (CI logs, pipes, a kernel
  without ipywidgets) every bar is drawn on one line with carriage returns only — no ANSI escape
  codes (``\\x1b[``) ever reach a log.

Installing ``rich`` cannot change it (Lightning would otherwise switch to its Rich bar, which
redraws an Output widget dozens of times per epoch). Add it only when
``enable_progress_bar=True``: Lightning refuses a progress-bar callback otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm as _LightningTqdm
from tqdm.std import tqdm as _std_tqdm

from ... import kernel

__all__ = ["PtychoProgressBar", "notebook_bars_available"]


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
        if self.mode == "widget":
            if _notebook_bar_class() is None:  # pragma: no cover
                return False
            return True
        return notebook_bars_available()

    def _bar(self, *, desc: str, position: int, leave: bool, **kwargs: Any) -> Any:
        if self._widget():
            cls = _NOTEBOOK_BAR if isinstance(_NOTEBOOK_BAR, type) else _notebook_bar_class()
            return cls(desc=desc, disable=self.is_disabled, leave=leave, file=sys.stdout,
                       bar_format=self.BAR_FORMAT, **kwargs)
        isatty = getattr(sys.stdout, "isatty", None)
        tty = bool(isatty()) if callable(isatty) else False
        return _TextBar(desc=desc, position=position if tty else 0, disable=self.is_disabled,
                        leave=leave, dynamic_ncols=tty, ncols=None if tty else 100, file=sys.stdout,
                        bar_format=self.BAR_FORMAT, ascii=None if tty else True, **kwargs)

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
