"""Dataset container, file readers/writers, detector masks and flag values, neighbour grouping."""

from .container import PtychoData
from .detector import SATURATION_MARKER, flag_values, mask_flagged
from .grouping import Groups, group_neighbors
from .hdf5 import read_hdf5, write_hdf5
from .io import load, save
from .npz import read_npz, write_npz
from .scan_record import SCAN_SOURCES, SimulatedScan
from .ptychodus import (PtychodusDiffraction, PtychodusProduct, read_ptychodus,
                        read_ptychodus_diffraction, read_ptychodus_product,
                        write_ptychodus_diffraction, write_ptychodus_product)

__all__ = [
    "PtychoData", "SimulatedScan", "SCAN_SOURCES", "load", "save",
    "mask_flagged", "flag_values", "SATURATION_MARKER",
    "read_npz", "write_npz", "read_hdf5", "write_hdf5",
    "read_ptychodus", "read_ptychodus_product", "write_ptychodus_product",
    "read_ptychodus_diffraction", "write_ptychodus_diffraction",
    "PtychodusProduct", "PtychodusDiffraction",
    "Groups", "group_neighbors",
]
