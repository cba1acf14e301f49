"""Progress of the physics refinement (:func:`ptycho_nb.refine.refine`), shown like training's.

:class:`RefineProgressBar` is a ``refine`` callback: inside a Jupyter kernel a ``tqdm.notebook``
widget bar (epoch k of the cap, the deviance); on a terminal a text bar; when stdout is neither
(a file, a pipe, CI logs) one plain line every ``every`` epochs and one at the end, so logs stay
readable. The bar's total is the cap: the stopping rule usually ends the run before it, and the
bar then closes at the epoch it stopped on. With probe refinement the probe-start trials
(:mod:`ptycho_nb.refine.probe_start`) show in the bar's description before the run's epochs.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from .. import kernel

__all__ = ["RefineProgressBar", "chain_callbacks"]


class RefineProgressBar:
    """A ``refine`` callback that shows its progress; call :meth:`close` when the run ends.

    Parameters
    ----------
    max_epochs : int
        The refinement's cap (the bar's total).
    every : int
        Epochs between plain lines when stdout is not a terminal.
    stream : file, optional
        Where text goes (default ``sys.stdout``).
    """

    def __init__(self, max_epochs: int, *, every: int = 10, stream: Any = None) -> None:
        self.max_epochs = int(max_epochs)
        self.every = max(1, int(every))
        self.stream = stream if stream is not None else sys.stdout
        self.bar: Any = None
        self.last: Any = None
        self._in_trial = False
        if kernel.in_notebook_kernel():
            try:
                from tqdm.notebook import tqdm as bar_cls
                self.bar = bar_cls(total=self.max_epochs, desc="refinement", unit="epoch")
            except ImportError:  # pragma: no cover - ipywidgets is a dependency
                self.bar = None
        elif getattr(self.stream, "isatty", lambda: False)():
            from tqdm.std import tqdm as bar_cls
            self.bar = bar_cls(total=self.max_epochs, desc="refinement", unit="epoch", file=self.stream)

    def __call__(self, progress: Any) -> bool:
        stage = getattr(progress, "stage", "")
        if stage:  # a probe-start trial: its own epoch count, before the run's
            self._in_trial = True
            if self.bar is not None:
                self.bar.set_description(f"refinement, {stage}", refresh=False)
                self.bar.set_postfix(epoch=f"{progress.epoch}/{progress.max_epochs}",
                                     deviance=f"{progress.deviance:.4g}")
            elif progress.epoch == progress.max_epochs:
                print(f"refinement, {stage}: deviance {progress.deviance:.4g} after "
                      f"{progress.epoch} epochs ({progress.seconds:.1f} s)", file=self.stream,
                      flush=True)
            return False
        self.last = progress
        if self.bar is not None:
            if self._in_trial:
                self.bar.set_description("refinement", refresh=False)
                self._in_trial = False
            self.bar.update(progress.epoch - self.bar.n)
            self.bar.set_postfix(deviance=f"{progress.deviance:.4g}", refresh=False)
        elif progress.epoch % self.every == 0:
            print(f"refinement epoch {progress.epoch}/{self.max_epochs}: deviance "
                  f"{progress.deviance:.4g} ({progress.seconds:.1f} s)", file=self.stream, flush=True)
        return False

    def close(self, stopped: str = "") -> None:
        """Close the bar (or print the last line)."""
        p = self.last
        if self.bar is not None:
            if stopped:
                self.bar.set_description(f"refinement ({stopped})")
            self.bar.close()
        elif p is not None and p.epoch % self.every:
            print(f"refinement epoch {p.epoch}/{self.max_epochs}: deviance {p.deviance:.4g} "
                  f"({p.seconds:.1f} s){', ' + stopped if stopped else ''}", file=self.stream, flush=True)


def chain_callbacks(*callbacks: Callable[[Any], Any] | None) -> Callable[[Any], bool] | None:
    """One ``refine`` callback calling each given one in order; True if any asks to stop."""
    cbs = [c for c in callbacks if c is not None]
    if not cbs:
        return None

    def run(progress: Any) -> bool:
        return any([bool(c(progress)) for c in cbs])  # a list: every callback sees every epoch

    return run
