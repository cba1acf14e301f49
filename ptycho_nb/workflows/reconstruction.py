"""The :class:`Reconstruction` a scan's reconstruction returns, and the one place it is assembled.

``infer`` (the network's single pass, then the refinement) and ``reconstruct`` (the same, or the
refinement alone from a flat start) both end in :func:`assemble`: the object in the frame that
holds every full patch, cropped to the frame the execution config asks for (``pad_eval``: the
lit field, else the box of the scan centres; :mod:`ptycho_nb.workflows.frames`), its weight map,
the patches, the probe, the timings and the run record. :meth:`Reconstruction.crop` re-frames a
reconstruction afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings
from typing import Any

import numpy as np

from ..atomic import atomic_files
from ..config.execution import PyTorchExecutionConfig
from ..config.precedence import AuditEntry
from ..data.container import PtychoData
from ..data.ptychodus import write_ptychodus_product
from ..engine.run_info import InferenceRunInfo, InferenceTimings
from ..metrics import compare, lit_mask
from ..plots import plot_reconstruction
from ..refine.start import Frame
from .frames import centre_frame, frame_of_box, lit_frame, slices_in

__all__ = ["Reconstruction", "assemble", "OUTPUT_FILES", "CROP_REGIONS"]

#: Files :meth:`Reconstruction.save` writes into its folder.
OUTPUT_FILES = ("reconstruction.npz", "product.h5", "reconstruction.png")
#: The regions :meth:`Reconstruction.crop` knows by name.
CROP_REGIONS = ("scan", "lit")


@dataclasses.dataclass(eq=False)
class Reconstruction:
    """A reconstructed object and how it was made.

    Attributes
    ----------
    object : (H, W) complex64
        The stitched object transmission in the frame described by ``offset``.
    offset : (int, int)
        (row0, col0): frame pixel (r, c) is pixel (r + row0, c + col0) of the scan's coordinates
        (for simulated data, of the ground truth).
    weight : (H, W) float32
        How well the scan lit each pixel: the summed stitching weights, Σ over patterns of
        |P|²/max|P|² (probe modes summed; the ``middle_trim`` edges of each patch count 0), so 1
        is one pattern's brightest pixel; 0 where nothing was reconstructed. :attr:`lit` is the
        part above :data:`~ptycho_nb.metrics.LIT_FRACTION` of its maximum.
    patches : (M, N, N) complex64
        Each pattern's patch of the object: the refined object's after a refinement, the
        network's predictions that were stitched without one.
    xcoords, ycoords : (M,) float64
        Their patch centres (scan coordinates): after a refinement that corrected them
        (``run.refinement.positions``), the corrected positions.
    probe : (N, N) or (K, N, N) complex64
        The probe the model used (refined when it was trainable, and by the physics
        refinement when ``refine_probe``).
    truth : (H0, W0) complex64 or None
        The scan's ground truth, when it had one (for plots and :meth:`compare`).
    timings : InferenceTimings
        Seconds per phase (load, forward, stitch, refine, total) and patterns per second.
        ``forward_s`` is the network's single pass over the distinct patterns the groups use;
        ``stitch_s`` includes the gridsize > 1 group merge that follows it.
    run : InferenceRunInfo
        Resolved accelerator, batch size, middle_trim, pad_eval, refinement epochs and losses.
    audit : tuple of AuditEntry
    """

    object: np.ndarray
    offset: tuple[int, int]
    weight: np.ndarray
    patches: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    probe: np.ndarray
    truth: np.ndarray | None
    timings: InferenceTimings
    run: InferenceRunInfo
    audit: tuple[AuditEntry, ...] = ()

    @property
    def settings(self) -> dict[str, Any]:
        """Deprecated dict form of :attr:`run`."""
        warnings.warn("Reconstruction.settings is deprecated: use Reconstruction.run "
                      "(an InferenceRunInfo)", DeprecationWarning, stacklevel=2)
        return self.run.as_dict()

    @property
    def lit(self) -> np.ndarray:
        """(H, W) bool: the pixels lit with a meaningful weight, :attr:`weight` above
        :data:`~ptycho_nb.metrics.LIT_FRACTION` (5 %) of its maximum
        (:func:`ptycho_nb.metrics.lit_mask`). The figures show these pixels only."""
        return lit_mask(self.weight)

    @property
    def frame(self) -> Frame:
        """Where :attr:`object` lies in the scan's coordinates (:attr:`offset` and its shape)."""
        return Frame(row0=int(self.offset[0]), col0=int(self.offset[1]), h=int(self.object.shape[0]),
                     w=int(self.object.shape[1]))

    def crop(self, region: str | tuple[int, int, int, int]) -> Reconstruction:
        """The same reconstruction in a smaller frame, ``offset`` adjusted.

        Parameters
        ----------
        region : {'scan', 'lit'} or (row0, row1, col0, col1)
            ``'scan'``: the box of the scan centres (the frame ``pad_eval=False`` returns);
            ``'lit'``: the bounding box of :attr:`lit`, joined with the scan centres' box (the
            frame ``pad_eval=True`` returns); or a box, half-open, in the scan's coordinates
            (those of :attr:`offset`; for simulated data the ground truth's pixels).

        Returns
        -------
        Reconstruction
            ``object`` and ``weight`` cut to the region (copies); everything else shared
            (``run.pad_eval`` still records the frame the run returned).

        Raises
        ------
        ValueError
            An unknown region name, a malformed box, or a region not inside this frame (crop
            the reconstruction as returned, not an earlier crop of it).
        """
        n = int(np.shape(self.probe)[-1])
        if isinstance(region, str):
            if region not in CROP_REGIONS:
                raise ValueError(f"region={region!r} is invalid: rule is one of {CROP_REGIONS} or a "
                                 "box (row0, row1, col0, col1)")
            centres = centre_frame(self.xcoords, self.ycoords, n)
            target = centres if region == "scan" else lit_frame(self.weight, self.frame, centres)
        else:
            target = frame_of_box(region, "region")
        sl = slices_in(target, self.frame, f"region={region!r}")
        return dataclasses.replace(self, object=self.object[sl].copy(), weight=self.weight[sl].copy(),
                                   offset=target.offset)

    @property
    def amplitude(self) -> np.ndarray:
        """|object|, (H, W) float32."""
        return np.abs(self.object).astype(np.float32)

    @property
    def phase(self) -> np.ndarray:
        """angle(object) in radians, (H, W) float32."""
        return np.angle(self.object).astype(np.float32)

    def compare(self, truth: np.ndarray | None = None, **kwargs: Any) -> dict[str, Any]:
        """Aligned amplitude/phase metrics against ``truth`` (default: the scan's ground truth)."""
        truth = self.truth if truth is None else truth
        if truth is None:
            raise ValueError("truth: this scan has no ground truth; pass one")
        kwargs.setdefault("xcoords", self.xcoords)
        kwargs.setdefault("ycoords", self.ycoords)
        kwargs.setdefault("probe", self.probe)
        return compare(self.object, truth, offset=self.offset, **kwargs)

    def diagnose(self, scan: PtychoData, *, mask: Any = None, scale: float | None = None,
                 split: Any = None) -> Any:
        """How well this reconstruction explains ``scan``, judged from the data alone.

        Delegates to :func:`ptycho_nb.diagnostics.residuals` (arguments as there) and
        :func:`ptycho_nb.diagnostics.report`; ``split`` is a
        :func:`ptycho_nb.diagnostics.split_half` result to include. Returns a
        :class:`~ptycho_nb.diagnostics.DiagnosticsReport` (``ratio``: deviance / noise floor).
        """
        # imported here: the diagnostics read Reconstructions, and this module must not need them
        from ..diagnostics.fit import residuals
        from ..diagnostics.summary import report

        mask = scan.mask if mask is None else mask  # the scan's own detector mask, by default
        return report(residuals(self, scan, mask=mask, scale=scale), split)

    def plot(self, path: str | pathlib.Path | None = None, *, show: bool | None = None) -> Any:
        """Figure of amplitude and phase (and ground truth and error when known).

        In a notebook cell the figure is shown when the cell ends, also after ``recon.plot();``
        (``show=False``: never; see :func:`ptycho_nb.plots.show_figure`).
        """
        return plot_reconstruction(self, path, show=show)

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        # show=False: this *is* the display; queueing the figure again would show it twice
        plot_reconstruction(self, show=False).savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    def __repr__(self) -> str:
        t = self.timings
        return (f"Reconstruction(object {self.object.shape[0]}x{self.object.shape[1]} at offset "
                f"{self.offset}, {self.patches.shape[0]} patterns, {t.patterns_per_s:.0f} "
                f"patterns/s)")

    def save(self, output_dir: str | pathlib.Path, *, overwrite: bool = False) -> dict[str, pathlib.Path]:
        """Write reconstruction.npz, product.h5 (ptychodus) and reconstruction.png into a folder.

        The three files appear together or not at all (written into a staging folder beside
        them, then moved into place; see :func:`ptycho_nb.atomic.atomic_files`): a failure, a
        full disk included, leaves neither a partial set nor, with ``overwrite=True``, a mix of
        new and old files. Refuses to replace existing files unless ``overwrite=True`` (checked
        for all three before any is written).
        """
        out = pathlib.Path(output_dir)
        paths = {name: out / name for name in OUTPUT_FILES}
        with atomic_files(paths, overwrite=overwrite) as tmp:
            with open(tmp["reconstruction.npz"], "wb") as fh:
                np.savez_compressed(
                    fh, object=self.object, amplitude=self.amplitude, phase=self.phase,
                    offset=np.asarray(self.offset, dtype=np.int64), weight=self.weight,
                    xcoords=self.xcoords, ycoords=self.ycoords, probe=self.probe,
                    metadata_json=np.asarray(json.dumps({"timings": self.timings.as_dict(),
                                                         "run": self.run.as_dict()}, default=str)))
            write_ptychodus_product(
                None, tmp["product.h5"], object=self.object, probe=self.probe,
                xcoords=self.xcoords - self.offset[1], ycoords=self.ycoords - self.offset[0])
            # show=False: the PNG it writes is not a figure to show in the cell
            self.plot(show=False).savefig(tmp["reconstruction.png"], format="png", dpi=100)
        return paths


def assemble(*, data: PtychoData, frame: Frame, obj: np.ndarray, weight: np.ndarray,
             patches: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray, probe: np.ndarray,
             execution: PyTorchExecutionConfig, timings: InferenceTimings, run: InferenceRunInfo,
             audit: tuple[AuditEntry, ...] = ()) -> Reconstruction:
    """The :class:`Reconstruction` of an object made in ``frame`` (every full patch inside it:
    :func:`ptycho_nb.refine.start.scan_frame`), cropped to the frame ``execution`` asks for.

    Parameters
    ----------
    data : PtychoData
        The scan (its ground truth, when it has one, rides along for plots and metrics).
    frame : Frame
        Where ``obj`` and ``weight`` lie in the scan's coordinates.
    obj : (H, W) complex
        The object over ``frame``.
    weight : (H, W) float
        Its summed stitching weights (:func:`ptycho_nb.model.stitching.coverage`).
    patches : (M, N, N) complex
        The per-pattern patches (the refined object's, or the network's without a refinement).
    xcoords, ycoords : (M,) float
        Their centres in scan coordinates.
    probe : (N, N) or (K, N, N) complex
    execution : PyTorchExecutionConfig
        ``pad_eval`` keeps the whole lit field: the bounding box of the pixels whose ``weight``
        exceeds :data:`~ptycho_nb.metrics.LIT_FRACTION` of its maximum (``middle_trim`` edges
        are unlit), joined with the positions' bounding box; otherwise that bounding box alone
        (:mod:`ptycho_nb.workflows.frames`).
    timings, run, audit : what the run measured, resolved and was given
    """
    n = int(np.shape(probe)[-1])
    if tuple(np.shape(obj)) != frame.shape or tuple(np.shape(weight)) != frame.shape:
        raise ValueError(f"obj/weight: expected the frame's shape {frame.shape}, got "
                         f"{tuple(np.shape(obj))} and {tuple(np.shape(weight))}")
    weight = np.asarray(weight, dtype=np.float32)
    centres = centre_frame(xcoords, ycoords, n)
    target = lit_frame(weight, frame, centres) if execution.pad_eval else centres
    sl = slices_in(target, frame, "the reconstruction's frame")
    return Reconstruction(
        object=np.asarray(obj)[sl].astype(np.complex64), offset=target.offset,
        weight=weight[sl].copy(), patches=np.asarray(patches).astype(np.complex64),
        xcoords=np.array(xcoords, dtype=np.float64), ycoords=np.array(ycoords, dtype=np.float64),
        probe=np.asarray(probe).astype(np.complex64), truth=data.object, timings=timings, run=run,
        audit=tuple(audit))
