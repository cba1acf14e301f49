"""Split-half resolution of a scan: its even and odd patterns reconstructed apart, then compared.

Each half sees the same field at half the dose and overlap, with independent noise; how far the
two agree (:func:`~ptycho_nb.diagnostics.halves.compare_halves`) is the resolution the data
support. This module runs the reconstructions (:func:`ptycho_nb.reconstruct`), which is why it
sits at the orchestration layer; comparing two given reconstructions needs none of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.container import PtychoData
from ..workflows.reconstruct import reconstruct
from .halves import LIT_THRESHOLD, SplitHalf, compare_halves, pixel_size_of

__all__ = ["split_half"]


def split_half(scan: PtychoData, *, lit_threshold: float = LIT_THRESHOLD, remove_ramp: bool = False,
               **reconstruct_kwargs: Any) -> SplitHalf:
    """Split-half resolution of a scan: reconstruct its even and odd patterns apart, compare.

    Parameters
    ----------
    scan : PtychoData
        The scan (at least 4 patterns). Its ``metadata['pixel_size_m']``, when present, gives
        the resolution in metres.
    lit_threshold, remove_ramp : see :func:`compare_halves`.
    **reconstruct_kwargs
        Passed to both :func:`ptycho_nb.reconstruct` calls (``model=``, ``refine_probe=True``,
        ``refine_epochs=...``, an ``execution`` config, ...): the halves are made as the whole
        scan would be.

    Returns
    -------
    SplitHalf
        ``phase_half_bit`` (cycles/px) is the headline number; higher is finer.

    Example
    -------
    At 1000 photons per pattern the halves agree up to 0.3 cycles/px (at 10⁶, up to Nyquist):

    >>> import ptycho_nb
    >>> from ptycho_nb.diagnostics import split_half
    >>> low = ptycho_nb.simulate(N=32, object_shape=(96, 96), step=4, n_positions=200,
    ...                          photons_per_pattern=1e3)
    >>> round(split_half(low).phase_half_bit, 2)   # cycles/px; NaN: up to Nyquist
    0.3
    """
    if not isinstance(scan, PtychoData):
        raise ValueError(f"scan: expected a PtychoData, got {type(scan).__name__}")
    if scan.n_patterns < 4:
        raise ValueError(f"scan: {scan.n_patterns} patterns cannot be split into two halves that "
                         "each overlap; need at least 4")
    index = np.arange(scan.n_patterns)
    # alternate patterns: both halves cover the whole field, each at half the dose and overlap
    a = reconstruct(scan.subset(index[0::2]), **reconstruct_kwargs)
    b = reconstruct(scan.subset(index[1::2]), **reconstruct_kwargs)
    return compare_halves(a, b, pixel_size_m=pixel_size_of(scan), lit_threshold=lit_threshold,
                          remove_ramp=remove_ramp)
