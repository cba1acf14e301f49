"""simulate() and draw_scan() give the same scans for the same seeds as before the scan assembly
they share was factored out.

``tests/data/scan_pins.json`` holds, per case below, checksums of the arrays and the metadata
(less the timing and the echoed VariedSpec) as the code produced them at commit 18af0d7, before
the refactor. A failure here means a change altered the physics, the random streams or the
record of a scan: if that is intended, say so in the commit and update the pins by hand, key by
key, so the diff shows what changed.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import pytest

from ptycho_nb import PtychoData
from ptycho_nb.physics import disc_probe, simulate
from ptycho_nb.physics.varied import VariedSpec, draw_scan, scan_seed

PINS = json.loads((pathlib.Path(__file__).parent / "data" / "scan_pins.json").read_text())

_USER_PROBE = dict(radius=7.0, curvature=0.02)

SIMULATE_CASES: dict[str, dict[str, Any]] = {
    "spiral_image_disc": dict(N=32, n_positions=20, seed=3),
    "grid_siemens_gaussian_overlap": dict(N=32, grid=(3, 4), probe_kind="gaussian", overlap=0.5,
                                          object_kind="siemens", seed=1),
    "random_grf_zone_plate_noise_free": dict(N=32, scan="random", probe_kind="zone_plate",
                                             n_positions=15, noise=None, object_shape=(80, 80),
                                             jitter=0.5, object_kind="grf",
                                             photons_per_pattern=1e4, seed=2),
    "raster_lines_user_probe": dict(N=32, scan="raster", n_positions=10, object_kind="lines",
                                    seed=4, step=5.0),
    "grid_in_given_shape": dict(N=32, grid=(2, 3), object_shape=(96, 96), step=6.0, seed=0),
}

_SPEC = dict(N=32, n_positions=(10, 20))
VARIED_CASES: dict[str, tuple[dict[str, Any], Any]] = {
    **{f"varied_{k}": (dict(_SPEC, probe_families={k: 1.0}), 5)
       for k in ("disc", "defocused_pupil", "zone_plate", "gaussian")},
    "varied_default_seed0": (dict(_SPEC), 0),
    "varied_stream_7_2_fixed_size": (dict(_SPEC, object_size=80), (7, 2)),
    "varied_noise_free": (dict(_SPEC, noise=None, scan_kinds=["raster"]), 3),
}


def _summary(d: PtychoData) -> dict[str, Any]:
    """Checksums that move when any pattern, position, probe or object value moves."""
    n = d.N
    counts = d.diffraction.astype(np.float64) ** 2
    # position-weighted sum: a permutation of pixels or patterns changes it
    w = np.arange(1, counts[0].size + 1, dtype=np.float64)
    probe, obj = d.probe.astype(np.complex128), d.object.astype(np.complex128)
    return {
        "diffraction_shape": list(d.diffraction.shape), "object_shape": list(d.object.shape),
        "counts_total": float(counts.sum()),
        "counts_weighted": float((counts.reshape(counts.shape[0], -1) * w).sum()),
        "first_pattern_amplitude": float(d.diffraction[0].astype(np.float64).sum()),
        "last_centre_amplitude": float(d.diffraction[-1, n // 2, n // 2]),
        "x_sum": float(d.xcoords.sum()), "y_sum": float(d.ycoords.sum()),
        "x0": float(d.xcoords[0]), "y_last": float(d.ycoords[-1]),
        "probe_power": float(np.sum(np.abs(probe) ** 2)),
        "probe_centre": [float(probe[n // 2, n // 2].real), float(probe[n // 2, n // 2].imag)],
        "object_sum": [float(obj.sum().real), float(obj.sum().imag)],
        "scan_index_sum": int(d.scan_index.sum()),
    }


def _assert_close(got: Any, want: Any, where: str) -> None:
    """Equal, floats to 1e-6 relative (FFT rounding may differ between builds)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), \
            f"{where}: keys {sorted(got) if isinstance(got, dict) else got} != {sorted(want)}"
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), \
            f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def _check(name: str, d: PtychoData) -> None:
    # the probe's digest follows the probe, which the summary pins
    meta = {k: v for k, v in d.metadata.items() if k not in ("simulate_seconds", "varied_spec", "probe_checksum")}
    _assert_close(_summary(d), PINS[name]["summary"], f"{name}.summary")
    _assert_close(json.loads(json.dumps(meta)), PINS[name]["metadata"], f"{name}.metadata")


@pytest.mark.parametrize("name", sorted(SIMULATE_CASES))
def test_simulate_unchanged(name):
    kw = dict(SIMULATE_CASES[name])
    if name == "raster_lines_user_probe":
        kw["probe"] = disc_probe(32, **_USER_PROBE) * 3.0  # any scale: simulate normalises it
    _check(name, simulate(**kw))


@pytest.mark.parametrize("name", sorted(VARIED_CASES))
def test_draw_scan_unchanged(name):
    spec_kw, seed = VARIED_CASES[name]
    if isinstance(seed, tuple):
        seed = scan_seed(*seed)
    d = draw_scan(VariedSpec(**spec_kw), seed)
    _check(name, d)
    assert d.metadata["varied_spec"] == VariedSpec(**spec_kw).to_dict()


def test_every_case_is_pinned():
    assert sorted(PINS) == sorted({**SIMULATE_CASES, **VARIED_CASES})
