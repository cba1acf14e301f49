"""One probe vocabulary: every kind of PROBE_KINDS works in simulate(), the CLI and VariedSpec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ptycho_nb import cli, physics
from ptycho_nb.physics import PROBE_KINDS, make_probe, simulate
from ptycho_nb.physics.varied import PROBE_FAMILIES, VariedSpec, draw_scan


def test_the_names_are_one_list():
    assert PROBE_FAMILIES == tuple(PROBE_KINDS) and physics.PROBE_FAMILIES is PROBE_FAMILIES
    assert VariedSpec().probe_families == tuple((k, 0.25) for k in PROBE_KINDS)
    field = {f.name: f for f in dataclasses.fields(cli.SimulateOptions)}["probe_kind"]
    assert field.metadata["choices"] == tuple(sorted(PROBE_KINDS))


def _unit_probe(d) -> np.ndarray:
    """The scan's probe with unit total intensity (the stored one is sqrt(s)·P)."""
    return d.probe / np.sqrt(d.record.intensity_scale)


@pytest.mark.parametrize("kind", list(PROBE_KINDS))
def test_every_kind_simulates(kind):
    d = simulate(N=32, probe_kind=kind, n_positions=8, object_shape=(64, 64), seed=1)
    assert d.record.probe_kind == kind and d.n_patterns == 8
    np.testing.assert_allclose(_unit_probe(d), make_probe(kind, 32), atol=1e-6)


@pytest.mark.parametrize("kind", list(PROBE_KINDS))
def test_every_kind_is_drawn_by_varied_spec_and_rebuilt_from_its_record(kind):
    spec = VariedSpec(N=32, probe_families={kind: 1.0}, n_positions=(4, 8))
    for seed in range(2):
        d = draw_scan(spec, seed)
        rec = d.record
        assert rec.probe_kind == kind
        # the recorded kind and parameters are the probe: make_probe rebuilds it
        np.testing.assert_allclose(_unit_probe(d), make_probe(rec.probe_kind, 32, **rec.probe_kwargs),
                                   atol=1e-6)
        # and simulate takes them too
        s = simulate(N=32, probe_kind=rec.probe_kind, probe_kwargs=rec.probe_kwargs, n_positions=4,
                     object_shape=(64, 64))
        np.testing.assert_allclose(_unit_probe(s), _unit_probe(d), atol=1e-6)


def test_the_cli_simulates_every_kind():
    for kind in PROBE_KINDS:
        args = cli.build_parser().parse_args(["simulate", "--output", "x.npz", "--probe-kind", kind])
        assert cli.SimulateOptions(probe_kind=args.probe_kind).simulate_kwargs()["probe_kind"] == kind
    with pytest.raises(ValueError, match="probe_kind"):
        cli.SimulateOptions(probe_kind="laser")


def test_an_alias_is_recorded_by_its_kind():
    d = simulate(N=32, probe_kind="FZP", n_positions=4, object_shape=(64, 64))
    assert d.record.probe_kind == "zone_plate"
    with pytest.raises(ValueError, match="unknown probe kind"):
        simulate(N=32, probe_kind="laser")


def test_defocused_pupil_is_a_disc_with_a_strong_defocus():
    disc, pupil = make_probe("disc", 64), make_probe("defocused_pupil", 64)
    lit = np.abs(pupil) > 0.3 * np.abs(pupil).max()
    assert np.ptp(np.angle(pupil[lit] * np.conj(pupil[32, 32]))) > np.ptp(
        np.angle(disc[np.abs(disc) > 0.3 * np.abs(disc).max()] * np.conj(disc[32, 32])))
    # a disc's parameters build the same probe under either name
    kw = dict(radius=10.0, curvature=0.03, softness=1.5, lam_z=20.0)
    np.testing.assert_array_equal(make_probe("defocused_pupil", 64, **kw), make_probe("disc", 64, **kw))
    with pytest.raises(ValueError, match="radius"):
        make_probe("defocused_pupil", 64, radius=0.0)
