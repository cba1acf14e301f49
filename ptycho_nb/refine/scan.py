"""The scan as the refinement holds it: the measured data once, on the refinement's device.

:class:`PreparedScan` keeps the measured amplitudes as given (on the CPU a view of the caller's
float32 array, no copy; elsewhere one copy on the device), the positions and each pattern's
constant of the Poisson deviance. Everything a batch needs — its counts, its bilinear taps — is
made per batch from those, so the refinement of a scan holds the data plus a few object-sized
buffers, whatever the number of patterns: no second copy of the data in counts or in another
order, and no table of every pattern's (N+1)² tap indices (10,000 patterns of 128×128 would need
1.3 GB for that table alone).

Detector pixels that were not measured (module gaps, dead or hot pixels, a beamstop: a mask,
True = not measured, shared (N, N) or per pattern (M, N, N)) leave the likelihood: they add
nothing to the deviance and the updates leave the predicted far field there as it is.

The data stay in their DC-centred order: for an even N, ``fft2(c·ψ) = fftshift(fft2(ψ))`` with
the checkerboard ``c = (−1)^(i+j)`` (:attr:`PreparedScan.checker`), so an update that lights the
object with ``c·P`` predicts far fields in the data's own order, and never shifts either.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import torch

from ..physics.forward import PatchTaps, check_positions, patch_taps

__all__ = ["PreparedScan", "CHUNK_BYTES", "EPS"]

#: Bytes of one complex exit-wave buffer a chunk of patterns may fill (the update holds a few such
#: buffers at once): batches larger than that are accumulated chunk by chunk.
CHUNK_BYTES = 32 * 2**20
#: Keeps the Poisson log finite where a prediction is exactly 0 (counts).
EPS = 1e-6
#: Patterns per step of the set-up passes over the whole scan (checks, constants).
_SETUP_CHUNK = 256


def _accumulator(device: torch.device) -> torch.dtype:
    # sums of a whole scan's deviance need float64; MPS has none
    return torch.float32 if device.type == "mps" else torch.float64


@dataclasses.dataclass(frozen=True)
class PreparedScan:
    """A scan's measured data on the refinement's device.

    Build with :meth:`build`. Attributes: ``amplitudes`` (M, N, N) float32 measured amplitudes
    (sqrt counts, DC at the centre); ``x``, ``y`` (M,) float64 patch centres (column, row) in the
    object frame's pixels; ``klogk`` (M,) each pattern's ``Σ k·log k − k``, the deviance's
    constant; ``pattern_counts`` (M,) each pattern's total counts; ``pixels`` (M,) each pattern's
    measured pixels; ``shape`` (H, W) the object frame; ``n`` the pattern side; ``device``;
    ``accumulate`` the dtype sums over patterns are kept in; ``checker`` (N, N) float32, the ±1
    checkerboard that moves a far field's DC to the centre (module docstring); ``measured``
    None (every pixel measured) or bool (N, N) / (M, N, N), True where measured; ``measured_fraction``
    (N, N) float32, the fraction of patterns that measured each detector pixel. Sums over pixels
    (counts, the deviance's constant) count measured pixels only.
    """

    amplitudes: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    klogk: torch.Tensor
    pattern_counts: torch.Tensor
    shape: tuple[int, int]
    n: int
    device: torch.device
    accumulate: torch.dtype
    checker: torch.Tensor
    pixels: torch.Tensor
    measured: torch.Tensor | None = None
    measured_fraction: torch.Tensor | None = None

    @property
    def m(self) -> int:
        """Number of patterns M."""
        return int(self.amplitudes.shape[0])

    @classmethod
    def build(cls, diffraction: Any, xcoords: Any, ycoords: Any, n: int, shape: tuple[int, int],
              device: torch.device | str = "cpu", *, mask: Any = None) -> PreparedScan:
        """Check a scan once and place it on ``device``.

        Parameters
        ----------
        diffraction : (M, N, N) measured amplitudes (sqrt counts), array or tensor
        xcoords, ycoords : (M,) patch centres (column, row), object pixels
        n : int
            Pattern side N (the probe's).
        shape : (H, W)
            The object frame; every patch must lie inside it.
        device : torch device
        mask : bool array (N, N) or (M, N, N), optional
            True where a detector pixel was not measured. Values there may be anything (a flag,
            NaN): they are never read (a copy of the data is made with them zeroed if any is not a
            finite, non-negative amplitude).
        """
        device = torch.device(device)
        if torch.is_tensor(diffraction):
            meas = diffraction.detach().to(device=device, dtype=torch.float32)
        else:
            meas = torch.from_numpy(np.asarray(diffraction, dtype=np.float32)).to(device)
        if n % 2:
            raise ValueError(f"diffraction: expected patterns of an even side N, got N={n}")
        if meas.ndim != 3 or tuple(meas.shape[-2:]) != (n, n):
            raise ValueError(f"diffraction: expected (M, {n}, {n}) amplitudes to match the probe, got "
                             f"shape {tuple(meas.shape)}")
        m = int(meas.shape[0])
        x = torch.as_tensor(np.asarray(xcoords, dtype=np.float64)).to(device)
        y = torch.as_tensor(np.asarray(ycoords, dtype=np.float64)).to(device)
        if x.shape != (m,) or y.shape != (m,):
            raise ValueError(f"xcoords/ycoords: expected ({m},) positions, one per pattern, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        measured = _measured(mask, m, n, device)
        if measured is not None and not bool(measured.any()):
            raise ValueError("mask: every detector pixel is masked; there is nothing to refine against")
        meas = _zero_unmeasured(meas, measured)
        acc = _accumulator(device)
        klogk = torch.empty(m, dtype=acc, device=device)
        totals = torch.empty(m, dtype=acc, device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        for i in range(0, m, _SETUP_CHUNK):  # chunks: no whole-scan temporaries
            a = meas[i:i + _SETUP_CHUNK]
            bad |= ~torch.isfinite(a).all() | (a < 0).any()
            k = a.square().to(acc)  # counts as the update sees them (float32), summed in acc
            kl = torch.where(k > 0, k * torch.log(k.clamp_min(EPS)),
                             torch.zeros((), dtype=acc, device=device)).sub(k)
            if measured is not None:  # the sums count measured pixels only
                w = (measured if measured.ndim == 2 else measured[i:i + _SETUP_CHUNK]).to(acc)
                kl, k = kl * w, k * w
            klogk[i:i + _SETUP_CHUNK] = kl.sum(dim=(-2, -1))
            totals[i:i + _SETUP_CHUNK] = k.sum(dim=(-2, -1))
        if bool(bad):
            raise ValueError("diffraction: expected finite, non-negative amplitudes (mask the "
                             "detector's flag values: mask=..., True where not measured)")
        h, w = int(shape[0]), int(shape[1])
        check_positions(x, y, n, (h, w))  # once: batches skip it
        ar = torch.arange(n, device=device)
        checker = 1.0 - 2.0 * ((ar[:, None] + ar[None, :]) % 2).to(torch.float32)
        if measured is None:
            pixels = torch.full((m,), float(n * n), dtype=acc, device=device)
            fraction = None
        elif measured.ndim == 2:
            pixels = torch.full((m,), float(measured.sum()), dtype=acc, device=device)
            fraction = measured.to(torch.float32)
        else:
            pixels = measured.sum(dim=(-2, -1)).to(acc)
            fraction = measured.to(torch.float32).mean(dim=0)
        return cls(amplitudes=meas, x=x, y=y, klogk=klogk, pattern_counts=totals, shape=(h, w),
                   n=int(n), device=device, accumulate=acc, checker=checker, pixels=pixels,
                   measured=measured, measured_fraction=fraction)

    def mean_counts(self) -> float:
        """Mean total counts per pattern (measured pixels)."""
        return float(self.pattern_counts.mean())

    def weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """1 where the patterns ``idx`` were measured, 0 elsewhere: float32 (N, N) shared or
        (B, N, N); None when every pixel was measured."""
        if self.measured is None:
            return None
        return (self.measured if self.measured.ndim == 2 else self.measured[idx]).to(torch.float32)

    def mean_pattern(self) -> np.ndarray:
        """The scan's mean diffraction pattern in counts, (N, N) float64 on the host (DC at the
        centre), summed on the device chunk by chunk; at a detector pixel measured by no
        pattern, the mean of its measured neighbours."""
        total = torch.zeros(self.n, self.n, dtype=self.accumulate, device=self.device)
        for i in range(0, self.m, _SETUP_CHUNK):
            total += self.amplitudes[i:i + _SETUP_CHUNK].square().to(self.accumulate).sum(dim=0)
        mean = total.cpu().numpy().astype(np.float64) / max(self.m, 1)
        if self.measured_fraction is None:
            return mean
        frac = self.measured_fraction.cpu().numpy().astype(np.float64)
        mean = np.divide(mean, frac, out=np.zeros_like(mean), where=frac > 0)
        return _fill_holes(mean, frac > 0)

    def taps(self, idx: torch.Tensor, x: torch.Tensor | None = None,
             y: torch.Tensor | None = None) -> PatchTaps:
        """Bilinear taps of the patterns ``idx`` at the scan's positions, or at ``x``, ``y`` (M,)
        (positions a refinement corrects; they are kept inside the frame)."""
        x = self.x if x is None else x
        y = self.y if y is None else y
        return patch_taps(x[idx], y[idx], self.n, self.shape, torch.float32, self.device, check=False)

    def counts(self, idx: torch.Tensor) -> torch.Tensor:
        """The measured counts of the patterns ``idx``, (B, N, N), DC at the centre."""
        return self.amplitudes[idx].square()

    def chunk_size(self, modes: int, chunk_patterns: int | None = None) -> int:
        """Patterns per chunk: ``chunk_patterns``, else what fits :data:`CHUNK_BYTES`."""
        if chunk_patterns is not None:
            return int(chunk_patterns)
        return max(1, CHUNK_BYTES // (8 * modes * self.n * self.n))

    def chunks(self, idx: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
        """``idx`` in consecutive pieces of at most ``size`` patterns."""
        for i in range(0, int(idx.shape[0]), size):
            yield idx[i:i + size]


def _measured(mask: Any, m: int, n: int, device: torch.device) -> torch.Tensor | None:
    """The measured pixels, bool (N, N) or (M, N, N) on ``device``, from a mask (True = not
    measured); None when there is no mask or it masks nothing."""
    if mask is None:
        return None
    t = torch.as_tensor(np.asarray(mask.cpu() if torch.is_tensor(mask) else mask))
    if t.dtype != torch.bool:
        if t.is_floating_point() or t.is_complex() or not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"mask: expected booleans (or 0/1), True where a pixel was not measured, "
                             f"got dtype {t.dtype}")
        t = t.bool()
    if tuple(t.shape) not in ((n, n), (m, n, n)):
        raise ValueError(f"mask: expected shape ({n}, {n}) or ({m}, {n}, {n}), got {tuple(t.shape)}")
    if not bool(t.any()):
        return None
    return (~t).to(device)


def _zero_unmeasured(meas: torch.Tensor, measured: torch.Tensor | None) -> torch.Tensor:
    """The amplitudes with 0 at unmeasured pixels: the same tensor when they already hold
    finite, non-negative values there (they are multiplied by 0 then), else a copy."""
    if measured is None:
        return meas
    unmeasured = ~measured
    for i in range(0, meas.shape[0], _SETUP_CHUNK):
        part = meas[i:i + _SETUP_CHUNK]
        um = unmeasured if unmeasured.ndim == 2 else unmeasured[i:i + _SETUP_CHUNK]
        if bool((~torch.isfinite(part) | (part < 0)).logical_and(um).any()):
            # a flag value (NaN, a negative marker) under the mask: never read, but it would
            # poison the products that weight it by 0; the caller's array is left as it was
            return meas.masked_fill(unmeasured, 0.0)
    return meas


def _fill_holes(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` with each unknown pixel set to the mean of its known 8-neighbours, repeated
    until every pixel is known (a detector gap fills from both edges inward)."""
    out, known = values.copy(), known.copy()
    while not known.all():
        pad_v = np.pad(np.where(known, out, 0.0), 1)
        pad_k = np.pad(known.astype(np.float64), 1)
        h, w = out.shape
        total = sum(pad_v[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        count = sum(pad_k[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        new = ~known & (count > 0)
        out[new] = total[new] / count[new]
        known = known | new
    return out
