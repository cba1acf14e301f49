"""The scan as the refinement holds it: the measured data once, on the refinement's device.

:class:`PreparedScan` keeps the measured amplitudes as given (on the CPU a view of the caller's
float32 array, no copy; elsewhere one copy on the device), the positions and each pattern's
constant of the Poisson deviance. Everything a batch needs — its counts, its bilinear taps — is
made per batch from those, so the refinement of a scan holds the data plus a few object-sized
buffers, whatever the number of patterns: no second copy of the data in counts or in another
order, and no table of every pattern's (N+1)² tap indices (10,000 patterns of 128×128 would need
1.3 GB for that table alone).

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
    constant; ``pattern_counts`` (M,) each pattern's total counts; ``shape`` (H, W) the object
    frame; ``n`` the pattern side; ``device``; ``accumulate`` the dtype sums over patterns are
    kept in; ``checker`` (N, N) float32, the ±1 checkerboard that moves a far field's DC to the
    centre (module docstring).
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

    @property
    def m(self) -> int:
        """Number of patterns M."""
        return int(self.amplitudes.shape[0])

    @classmethod
    def build(cls, diffraction: Any, xcoords: Any, ycoords: Any, n: int, shape: tuple[int, int],
              device: torch.device | str = "cpu") -> PreparedScan:
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
        acc = _accumulator(device)
        klogk = torch.empty(m, dtype=acc, device=device)
        totals = torch.empty(m, dtype=acc, device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        for i in range(0, m, _SETUP_CHUNK):  # chunks: no whole-scan temporaries
            a = meas[i:i + _SETUP_CHUNK]
            bad |= ~torch.isfinite(a).all() | (a < 0).any()
            k = a.square().to(acc)  # counts as the update sees them (float32), summed in acc
            klogk[i:i + _SETUP_CHUNK] = torch.where(k > 0, k * torch.log(k.clamp_min(EPS)),
                                                    torch.zeros((), dtype=acc, device=device)
                                                    ).sub(k).sum(dim=(-2, -1))
            totals[i:i + _SETUP_CHUNK] = k.sum(dim=(-2, -1))
        if bool(bad):
            raise ValueError("diffraction: expected finite, non-negative amplitudes")
        h, w = int(shape[0]), int(shape[1])
        check_positions(x, y, n, (h, w))  # once: batches skip it
        ar = torch.arange(n, device=device)
        checker = 1.0 - 2.0 * ((ar[:, None] + ar[None, :]) % 2).to(torch.float32)
        return cls(amplitudes=meas, x=x, y=y, klogk=klogk, pattern_counts=totals, shape=(h, w),
                   n=int(n), device=device, accumulate=acc, checker=checker)

    def mean_counts(self) -> float:
        """Mean total counts per pattern."""
        return float(self.pattern_counts.mean())

    def mean_pattern(self) -> np.ndarray:
        """The scan's mean diffraction pattern in counts, (N, N) float64 on the host (DC at the
        centre), summed on the device chunk by chunk."""
        total = torch.zeros(self.n, self.n, dtype=self.accumulate, device=self.device)
        for i in range(0, self.m, _SETUP_CHUNK):
            total += self.amplitudes[i:i + _SETUP_CHUNK].square().to(self.accumulate).sum(dim=0)
        return total.cpu().numpy().astype(np.float64) / max(self.m, 1)

    def taps(self, idx: torch.Tensor) -> PatchTaps:
        """Bilinear taps of the patterns ``idx`` (positions checked in :meth:`build`)."""
        return patch_taps(self.x[idx], self.y[idx], self.n, self.shape, torch.float32, self.device,
                          check=False)

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
