"""Where a refinement starts: its frame, its object and whose probe lights it.

A refinement refines an object in a frame that holds every full patch of the scan
(:func:`scan_frame`), from a flat object scaled to the scan's counts (:func:`flat_start`) or from
a network's stitched object, rescaled to the scan's counts when the probe that lights it is not
the one the start was made with (:func:`match_counts`). :func:`probe_mismatch` compares two
probes (whose probe lights the start is a setting: :func:`ptycho_nb.refine.settings.probe_source_for`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from ..physics.forward import gather_patches
from .deviance import predicted_counts
from .scan import PreparedScan

__all__ = ["Frame", "scan_frame", "flat_amplitude", "flat_start", "match_counts", "probe_mismatch"]

@dataclasses.dataclass(frozen=True)
class Frame:
    """An object frame in the scan's coordinates: pixel (r, c) of the frame is pixel
    (r + row0, c + col0) of the scan's; (h, w) its shape."""

    row0: int
    col0: int
    h: int
    w: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w)

    @property
    def offset(self) -> tuple[int, int]:
        return (self.row0, self.col0)


def scan_frame(xcoords: np.ndarray, ycoords: np.ndarray, n: int) -> Frame:
    """The frame that holds every full N×N patch of the positions (column x, row y, px): their
    bounding box padded by N/2."""
    x, y = np.asarray(xcoords, np.float64), np.asarray(ycoords, np.float64)
    row0, col0 = math.floor(y.min() - n / 2), math.floor(x.min() - n / 2)
    return Frame(row0=row0, col0=col0, h=math.ceil(y.max() + n / 2) - row0 + 1,
                 w=math.ceil(x.max() + n / 2) - col0 + 1)


def _probe_power(probe: torch.Tensor, scan: PreparedScan) -> float:
    """What a flat object of amplitude 1 under ``probe`` puts on the detector's measured pixels,
    per pattern (at scale 1): Σ|P|², the orthonormal FFT keeping energy (modes add in
    intensity); with a mask, the probe's far field on the measured pixels."""
    p = torch.as_tensor(probe)
    if scan.measured_fraction is None:
        return float(torch.sum(p.abs() ** 2))
    far = torch.fft.fft2(p.to(scan.device) * scan.checker, norm="ortho")  # DC-centred, as the data
    inten = far.real.square() + far.imag.square()
    if inten.ndim == 3:
        inten = inten.sum(dim=0)
    return float((inten * scan.measured_fraction).sum(dtype=scan.accumulate))


def flat_amplitude(scan: PreparedScan, probe: torch.Tensor, scale: Any) -> float:
    """The flat object's amplitude that predicts the scan's mean counts per pattern.

    A flat object c under probe P predicts ``scale · c² · sum|P|²`` counts per pattern (the
    orthonormal FFT keeps energy; with a detector mask, the sum over the measured pixels), so the
    control's start uses only the data and the probe.
    """
    counts = scan.mean_counts()
    power = _probe_power(torch.as_tensor(probe), scan) * float(scale)
    if not (counts > 0 and power > 0):
        raise ValueError("refine_start='flat': the scan's patterns hold no counts (or the probe "
                         "no power); a flat start cannot be scaled")
    return math.sqrt(counts / power)


def flat_start(scan: PreparedScan, probe: torch.Tensor, scale: Any) -> torch.Tensor:
    """A flat object over the scan's frame, (H, W) complex64 on the scan's device, predicting
    the scan's mean counts under ``probe`` (:func:`flat_amplitude`)."""
    return torch.full(scan.shape, complex(flat_amplitude(scan, probe, scale), 0.0),
                      dtype=torch.complex64, device=scan.device)


def match_counts(start: Any, scan: PreparedScan, probe: torch.Tensor, scale: Any,
                 *, chunk: int = 256) -> torch.Tensor:
    """``start`` times the one factor that makes its predicted counts the scan's, on average.

    The orthonormal FFT keeps energy, so a pattern's predicted counts are
    ``scale · Σ|P|²·|O_patch|²`` (modes summed). Used when the refinement's probe is not the one
    the start was made with. Returns the start on the scan's device (unchanged when either side
    holds no counts).
    """
    obj = torch.as_tensor(start).to(device=scan.device, dtype=torch.complex64)
    p = torch.as_tensor(probe).to(scan.device)
    p_int = (p.abs() ** 2).reshape(-1, scan.n, scan.n).sum(dim=0)
    total = torch.zeros((), dtype=scan.accumulate, device=scan.device)
    idx = torch.arange(scan.m, device=scan.device)
    for part in scan.chunks(idx, chunk):  # chunks: a whole scan's patches need not fit in memory
        patches = gather_patches(obj, scan.taps(part))
        weight = scan.weights(part)
        if weight is None:
            total += (p_int * patches.abs() ** 2).sum(dtype=scan.accumulate)
        else:  # the predicted counts on the measured pixels: the far field itself
            _, lam = predicted_counts(p * scan.checker, patches, torch.ones((), device=scan.device))
            total += (lam * weight).sum(dtype=scan.accumulate)
    predicted = float(total) * float(scale) / max(scan.m, 1)
    counts = scan.mean_counts()
    if not (predicted > 0 and counts > 0):
        return obj
    return obj * math.sqrt(counts / predicted)


def probe_mismatch(a: np.ndarray, b: np.ndarray | None) -> float | None:
    """``1 - |<a, b>| / (|a| |b|)`` of two probes (first modes): 0 when they are the same up to
    scale and a global phase, 1 when orthogonal; None when ``b`` is None or the sizes differ."""
    if b is None:
        return None
    a = np.asarray(a).reshape(-1, *np.shape(a)[-2:])[0]
    b = np.asarray(b).reshape(-1, *np.shape(b)[-2:])[0]
    if a.shape != b.shape:
        return None
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if not (na > 0 and nb > 0):
        return None
    return float(1.0 - abs(np.vdot(a, b)) / (na * nb))
