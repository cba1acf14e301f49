"""Matplotlib figures (object-oriented API only: no pyplot global state, safe in kernels/threads).

In a notebook the helpers show their figure the way pyplot does, whatever the caller does with
the return value: a figure made while a cell runs is displayed once when that cell ends (so
``plot_dataset(scan);`` shows it, and a bare ``plot_dataset(scan)`` does not show it twice).
"""

from __future__ import annotations

import base64
import io
import os
import threading
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .data.container import PtychoData
from .metrics import lit_mask

__all__ = ["plot_dataset", "plot_reconstruction", "show_figure", "figure_bundle"]

#: ``text/plain`` of a displayed figure; stable so nbval can check that a figure was shown.
FIGURE_TEXT = "<ptycho_nb figure: {}>"
#: Resolution of figures displayed in a notebook (the saved PNGs keep their own dpi).
DISPLAY_DPI = 72

# Figures made by the running cell, shown by the post_run_cell hook: [(figure, what), ...].
_pending: list[tuple[Figure, str]] = []
_hooked: set[int] = set()  # id() of the shells whose post_run_cell hook is registered


def figure_bundle(fig: Figure, what: str = "figure", dpi: int = DISPLAY_DPI) -> dict[str, str]:
    """A display bundle of ``fig``: base64 PNG and a stable text.

    Base64 text (not bytes) because an ``ipywidgets.Output`` syncs its outputs as JSON and would
    otherwise send the PNG as a binary buffer, which the browser turns into an invalid data URL.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "text/plain": FIGURE_TEXT.format(what)}


def _running_cell_shell() -> Any:
    """The IPython shell when called from a cell that is executing in a kernel's main thread,
    else None (a widget callback, a background thread, plain Python)."""
    from . import kernel

    if not kernel.in_notebook_kernel() or threading.current_thread() is not threading.main_thread():
        return None
    from IPython import get_ipython

    shell = get_ipython()
    try:
        parent = shell.kernel.get_parent()  # ipykernel >= 6: the request being handled
    except Exception:  # noqa: BLE001 - an unknown kernel: do not guess
        return None
    return shell if (parent or {}).get("header", {}).get("msg_type") == "execute_request" else None


def _flush_pending(result: Any = None) -> None:
    """post_run_cell hook: display the cell's figures, except one the displayhook already drew."""
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    shown = getattr(result, "result", None)
    figures, _pending[:] = list(_pending), []
    for fig, what in figures:
        if fig is shown and shell is not None:
            try:  # a PNG formatter for Figure (matplotlib-inline) has already shown it
                shell.display_formatter.formatters["image/png"].lookup(fig)
                continue
            except KeyError:
                pass
        display(figure_bundle(fig, what), raw=True)


def show_figure(fig: Figure, what: str = "figure", show: bool | None = None) -> bool:
    """Show ``fig`` in the notebook when the running cell ends (as pyplot does).

    Parameters
    ----------
    fig : Figure
    what : str
        Short name in the output's ``text/plain`` (:data:`FIGURE_TEXT`).
    show : bool or None
        None: show only when called from an executing notebook cell; True: also display at once
        from anywhere else in a kernel (a widget callback); False: never.

    Returns
    -------
    bool
        Whether the figure was (or will be) displayed.
    """
    if show is False:
        return False
    shell = _running_cell_shell()
    if shell is None:
        from . import kernel

        if show and kernel.in_notebook_kernel():
            from IPython.display import display

            display(figure_bundle(fig, what), raw=True)
            return True
        return False
    if id(shell) not in _hooked:
        shell.events.register("post_run_cell", _flush_pending)
        _hooked.add(id(shell))
    if all(f is not fig for f, _ in _pending):
        _pending.append((fig, what))
    return True


def _show(fig: Figure, ax, img, title: str, cmap: str, **kw):
    im = ax.imshow(img, cmap=cmap, **kw)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_reconstruction(recon, path: str | os.PathLike | None = None, *,
                        show: bool | None = None) -> Figure:
    """Amplitude and phase of a reconstruction; with ground truth, also truth and phase error.

    Parameters
    ----------
    recon : Reconstruction
        From :func:`ptycho_nb.infer` (``object``, ``offset``, ``weight``, ``truth``), in any frame
        (:meth:`~ptycho_nb.workflows.reconstruction.Reconstruction.crop`). Only its lit pixels
        are drawn (:func:`ptycho_nb.metrics.lit_mask` of ``weight``).
    path : str or PathLike, optional
        Where to save a PNG (100 dpi).
    show : bool or None
        In a notebook cell the figure is shown when the cell ends (None, default); False never
        shows it (see :func:`show_figure`).

    The truth is cropped to the reconstruction's frame and its global phase aligned (the one
    ambiguity every ptychographic reconstruction has) so the error panel shows real differences.
    """
    obj = np.asarray(recon.object)
    lit = lit_mask(recon.weight)  # Reconstruction.lit: what the frame was chosen to hold
    truth = getattr(recon, "truth", None)
    crop = None
    if truth is not None:
        r0, c0 = recon.offset
        h, w = obj.shape
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + h, truth.shape[0]), min(c0 + w, truth.shape[1])
        if re > rs and ce > cs:
            crop = np.zeros_like(obj)
            crop[rs - r0:re - r0, cs - c0:ce - c0] = truth[rs:re, cs:ce]
    ncols = 5 if crop is not None else 2
    fig = Figure(figsize=(3.2 * ncols, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, ncols))
    if crop is not None:
        # Remove the global phase offset over the lit region before showing phase and error.
        z = np.sum((crop * np.conj(obj))[lit])
        obj = obj * (z / abs(z) if abs(z) > 0 else 1.0)
    phase = np.where(lit, np.angle(obj), np.nan)
    _show(fig, axes[0], np.where(lit, np.abs(obj), np.nan), "reconstructed amplitude", "gray")
    _show(fig, axes[1], phase, "reconstructed phase (rad)", "viridis")
    if crop is not None:
        _show(fig, axes[2], np.where(lit, np.abs(crop), np.nan), "true amplitude", "gray")
        _show(fig, axes[3], np.where(lit, np.angle(crop), np.nan), "true phase (rad)", "viridis")
        err = np.where(lit, np.angle(obj * np.conj(crop)), np.nan)
        _show(fig, axes[4], err, "phase error (rad)", "RdBu_r", vmin=-1, vmax=1)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
    show_figure(fig, "reconstruction", show)
    return fig


def plot_dataset(data: PtychoData, path: str | os.PathLike | None = None, index: int = 0, *,
                 show: bool | None = None) -> Figure:
    """Overview of a dataset: object amplitude/phase with scan positions, probe, one pattern.

    Parameters
    ----------
    data : PtychoData
    path : str or PathLike, optional
        Where to save a PNG (150 dpi).
    index : int
        Which diffraction pattern to show (log scale).
    show : bool or None
        In a notebook cell the figure is shown when the cell ends (None, default); False never
        shows it (see :func:`show_figure`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(data, PtychoData):
        raise ValueError(f"data: expected a PtychoData, got {type(data).__name__}")
    if not (-data.n_patterns <= index < data.n_patterns):
        raise ValueError(f"index: expected within [0, {data.n_patterns}), got {index}")
    has_obj = data.object is not None
    ncols = 5 if has_obj else 3
    fig = Figure(figsize=(3.4 * ncols, 3.4), layout="constrained")
    FigureCanvasAgg(fig)  # attach an Agg canvas explicitly: works whatever pyplot backend is set
    axes = fig.subplots(1, ncols)
    k = 0

    def panel(ax, img, title, cmap, **kw):
        im = ax.imshow(img, cmap=cmap, **kw)
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        return im

    if has_obj:
        o = data.object
        for ax, img, title, cmap in ((axes[0], np.abs(o), "object amplitude", "gray"),
                                     (axes[1], np.angle(o), "object phase (rad)", "viridis")):
            panel(ax, img, title, cmap)
            # x = column, y = row: imshow puts columns on the horizontal axis.
            ax.plot(data.xcoords, data.ycoords, ".", color="tab:red", ms=1.5, alpha=0.6)
        k = 2
    modes = data.probe_modes
    p_int = np.sqrt(np.sum(np.abs(modes) ** 2, axis=0))
    panel(axes[k], p_int, f"probe amplitude ({modes.shape[0]} mode{'s' if modes.shape[0] > 1 else ''})", "viridis")
    # a cyclic map over the full [-π, π] for the wrapped probe phase
    panel(axes[k + 1], np.angle(modes[0]), "probe phase (rad)", "twilight", vmin=-np.pi, vmax=np.pi)
    counts = np.square(data.diffraction[index].astype(np.float64))
    pos = counts[counts > 0]
    vmin = float(pos.min()) if pos.size else 1.0
    panel(axes[k + 2], np.maximum(counts, vmin), f"pattern {index} counts (log)", "magma",
         norm=LogNorm(vmin=vmin, vmax=max(vmin * 10, float(counts.max()))))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if path is not None:
        fig.savefig(os.fspath(path), dpi=150)
    show_figure(fig, "dataset", show)
    return fig
