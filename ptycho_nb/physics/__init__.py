"""Physics: forward model, probes, objects, scans and simulation (see ``forward`` for conventions)."""

from .forward import (FFT_NORM, exit_waves, extract_patches, far_field,
                      forward_amplitude, forward_from_object, place_patches, poisson_nll, stitch)
from .imperfections import Imperfections
from .objects import OBJECT_KINDS, make_object, object_maps
from .probes import (PROBE_KINDS, canonical_probe_kind, defocused_pupil_probe, disc_probe,
                     fresnel_propagate, gaussian_probe, make_probe, probe_diameter,
                     probe_from_patterns, gaussian_guess, twin_distance, zone_plate_probe)
from .scattering import scattering_strength
from .single_pattern import inverse_far_field, pattern_estimate
from .scan import (SCAN_KINDS, make_scan, overlap_from_step, random_scan, raster_scan,
                   spiral_scan, step_from_overlap)
from .simulate import simulate
from .varied import (AMPLITUDE_MODES, PROBE_FAMILIES, VariedSpec, draw_object, draw_probe, draw_scan,
                     iter_scans, scan_seed)

__all__ = [
    "FFT_NORM", "far_field", "extract_patches", "place_patches", "stitch",
    "exit_waves", "forward_amplitude", "forward_from_object", "poisson_nll",
    "make_object", "OBJECT_KINDS",
    "make_probe", "disc_probe", "defocused_pupil_probe", "gaussian_probe", "zone_plate_probe", "probe_diameter",
    "probe_from_patterns",
    "gaussian_guess", "twin_distance",
    "fresnel_propagate", "PROBE_KINDS", "canonical_probe_kind",
    "make_scan", "raster_scan", "spiral_scan", "random_scan", "step_from_overlap",
    "overlap_from_step", "SCAN_KINDS",
    "simulate", "Imperfections", "scattering_strength", "pattern_estimate", "inverse_far_field",
    "object_maps", "VariedSpec", "draw_scan", "iter_scans", "scan_seed",
    "draw_object", "draw_probe", "AMPLITUDE_MODES", "PROBE_FAMILIES",
]
