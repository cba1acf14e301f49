"""ptychodus product/diffraction files: our reader/writer, and interop with ptychodus's own code."""

import json

import h5py
import numpy as np
import pytest

from ptycho_nb.data import (PtychoData, load, read_ptychodus, read_ptychodus_diffraction,
                            read_ptychodus_product, save, write_ptychodus_diffraction,
                            write_ptychodus_product)
from ptycho_nb.data.ptychodus import (PLACEHOLDER_PIXEL_SIZE_M, pixel_to_world,
                                      sibling_diffraction_path, world_to_pixel)

M, N, H, W = 5, 8, 30, 26


def make_data(counts=True, **meta):
    rng = np.random.default_rng(3)
    c = rng.poisson(20.0, (M, N, N)).astype(np.float64)
    diff = np.sqrt(c) if counts else rng.random((M, N, N)) * 3
    return PtychoData(
        diffraction=diff.astype(np.float32),
        xcoords=np.array([4.0, 9.5, 12.0, 20.0, 22.0]), ycoords=np.array([4.0, 6.0, 15.25, 20.0, 26.0]),
        probe=(rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        object=(rng.random((H, W)) * np.exp(1j * rng.random((H, W)))).astype(np.complex64),
        scan_index=np.array([0, 0, 0, 1, 1]), metadata={"photons_per_pattern": 1e3, **meta})


def _assert_same(r, d, exact_diffraction=True):
    np.testing.assert_allclose(r.xcoords, d.xcoords, atol=1e-9)
    np.testing.assert_allclose(r.ycoords, d.ycoords, atol=1e-9)
    np.testing.assert_array_equal(r.probe, d.probe)
    np.testing.assert_array_equal(r.object, d.object)
    if exact_diffraction:
        np.testing.assert_array_equal(r.diffraction, d.diffraction)
    else:
        np.testing.assert_allclose(r.diffraction, d.diffraction, rtol=1e-6)


# ------------------------------------------------------------------ conventions
def test_world_pixel_conversion_and_half_pixel():
    x = np.array([0.0, 13.0, 25.5])
    xm = pixel_to_world(x, 1e-6, 2e-8, W)
    np.testing.assert_allclose(world_to_pixel(xm, 1e-6, 2e-8, W), x, atol=1e-9)
    # our pixel W/2 is the object centre; ptychodus's pixel coordinate is ours − 0.5
    assert pixel_to_world(np.array([W / 2]), 1e-6, 2e-8, W)[0] == pytest.approx(1e-6)
    ptychodus_px = (xm - 1e-6) / 2e-8 + (W - 1) / 2
    np.testing.assert_allclose(ptychodus_px, x - 0.5, atol=1e-9)


@pytest.mark.parametrize("counts,dtype", [(True, np.uint32), (False, np.float32)])
def test_round_trip(tmp_path, counts, dtype):
    d = make_data(counts=counts, pixel_size_m=5e-9, photon_energy_eV=8000.0, object_center_x_m=1e-6)
    pp = write_ptychodus_product(d, tmp_path / "prod.h5")
    dp = write_ptychodus_diffraction(d, tmp_path / "diff.h5")
    with h5py.File(dp) as f:
        assert f["patterns"].dtype == dtype
        assert f["patterns"].shape == (M, N, N) and f["bad_pixels"].shape == (N, N)
    r = read_ptychodus(pp, dp)
    _assert_same(r, d, exact_diffraction=counts)
    np.testing.assert_array_equal(r.scan_index, d.scan_index)
    assert r.metadata["pixel_size_m"] == 5e-9 and r.metadata["photon_energy_eV"] == 8000.0
    assert r.metadata["object_center_x_m"] == 1e-6
    assert "detector_distance_m" not in r.metadata  # placeholder, not reported as measured


def test_placeholders_recorded(tmp_path):
    d = make_data()
    pp = write_ptychodus_product(d, tmp_path / "prod.h5")
    with h5py.File(pp) as f:
        assert f["object"].attrs["pixel_width_m"] == PLACEHOLDER_PIXEL_SIZE_M
        names = json.loads(f.attrs["ptycho_nb_placeholders"])
        assert {"pixel_size_m", "photon_energy_eV", "detector_distance_m"} <= set(names)
        assert "PLACEHOLDER" in f.attrs["comments"]
    prod = read_ptychodus_product(pp)
    assert prod.photon_energy_eV is None and "pixel_size_m" in prod.placeholders


def test_reconstruction_parts_and_indexes(tmp_path):
    d = make_data()
    rec = (d.object * 2).astype(np.complex64)
    pp = write_ptychodus_product(None, tmp_path / "rec.h5", object=rec, probe=d.probe,
                                 xcoords=d.xcoords, ycoords=d.ycoords, pixel_size_m=1e-8,
                                 loss_values=[3.0, 2.0])
    prod = read_ptychodus_product(pp)
    np.testing.assert_array_equal(prod.object, rec)
    np.testing.assert_array_equal(prod.indexes, np.arange(M))
    with pytest.raises(ValueError, match="object is required"):
        write_ptychodus_product(None, tmp_path / "x.h5", probe=d.probe, xcoords=d.xcoords, ycoords=d.ycoords)
    with pytest.raises(ValueError, match="pixel_size_m"):
        write_ptychodus_product(d, tmp_path / "y.h5", pixel_size_m=-1.0)


def test_patterns_matched_by_index(tmp_path):
    d = make_data()
    pp = write_ptychodus_product(d, tmp_path / "prod.h5", indexes=[4, 3, 2, 1, 0])
    dp = write_ptychodus_diffraction(d, tmp_path / "diff.h5")
    r = read_ptychodus(pp, dp)
    np.testing.assert_array_equal(r.diffraction, d.diffraction[::-1])
    pq = write_ptychodus_product(d, tmp_path / "prod2.h5", indexes=[0, 1, 2, 3, 99])
    with pytest.raises(ValueError, match=r"prod2\.h5.*probe_position_indexes.*99"):
        read_ptychodus(pq, dp)


def test_bad_diffraction_files(tmp_path):
    d = make_data()
    pp = write_ptychodus_product(d, tmp_path / "prod.h5")
    dp = write_ptychodus_diffraction(d, tmp_path / "diff.h5")
    with h5py.File(dp, "r+") as f:
        pat = f["patterns"][()].astype(np.float32)
        pat[0, 0, 0] = -1
        del f["patterns"]
        f["patterns"] = pat
        f["bad_pixels"][0, 1] = True
    with pytest.raises(ValueError, match=r"diff\.h5.*'patterns'.*negative"):
        read_ptychodus(pp, dp)
    with h5py.File(dp, "r+") as f:
        del f["indexes"]
        f["indexes"] = np.arange(M + 1)
    with pytest.raises(ValueError, match=r"diff\.h5.*'/indexes'"):
        read_ptychodus_diffraction(dp)
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        read_ptychodus(pp, tmp_path / "nothere.h5")


def test_bad_pixels_become_the_mask_values_left_alone(tmp_path):
    d = make_data()
    pp = write_ptychodus_product(d, tmp_path / "prod.h5")
    dp = write_ptychodus_diffraction(d, tmp_path / "diff.h5")
    assert read_ptychodus(pp, dp).mask is None  # ptychodus's all-False /bad_pixels: no mask
    with h5py.File(dp, "r+") as f:
        f["bad_pixels"][2, 3] = True
    r = read_ptychodus(pp, dp)
    assert r.mask.shape == (N, N) and r.mask.sum() == 1 and r.mask[2, 3]
    np.testing.assert_array_equal(r.diffraction, d.diffraction)  # not zeroed: the mask says it


def test_product_missing_attrs_and_truncated(tmp_path):
    pp = write_ptychodus_product(make_data(), tmp_path / "prod.h5")
    with h5py.File(pp, "r+") as f:
        del f["object"].attrs["center_x_m"]
    with pytest.raises(ValueError, match=r"prod\.h5.*'center_x_m'.*'/object'"):
        read_ptychodus_product(pp)
    qq = write_ptychodus_product(make_data(), tmp_path / "t.h5")
    b = qq.read_bytes()
    qq.write_bytes(b[: len(b) // 2])
    with pytest.raises(ValueError, match=r"t\.h5"):
        read_ptychodus_product(qq)


def test_load_save_dispatch(tmp_path):
    d = make_data()
    p = save(d, tmp_path / "product.h5", format="ptychodus")
    assert sibling_diffraction_path(p) == tmp_path / "diffraction.h5"
    _assert_same(load(p), d)
    q = save(d, tmp_path / "scan.h5", format="ptychodus")
    _assert_same(load(q, diffraction_path=tmp_path / "scan_diffraction.h5"), d)
    with pytest.raises(FileExistsError, match="diffraction.h5"):
        (tmp_path / "product.h5").unlink()
        save(d, tmp_path / "product.h5", format="ptychodus")
    assert not (tmp_path / "product.h5").exists()  # refused before writing anything
    (tmp_path / "scan_diffraction.h5").unlink()
    with pytest.raises(ValueError, match=r"scan\.h5.*diffraction_path"):
        load(q)
    with pytest.raises(ValueError, match=r"diffraction\.h5.*product"):
        load(tmp_path / "diffraction.h5")
    with pytest.raises(ValueError, match="object is required"):
        save(PtychoData(d.diffraction, d.xcoords, d.ycoords, d.probe), tmp_path / "o.h5", format="ptychodus")


# ------------------------------------------------------------------ ptychodus's own code
@pytest.fixture
def pio():
    return pytest.importorskip("ptychodus.api.io", reason="ptychodus (and scikit-image) not installed")


def test_ptychodus_reads_ours(tmp_path, pio):
    from ptychodus.api.probe import ProbeGeometry

    d = make_data(pixel_size_m=7e-9, photon_energy_eV=9000.0, object_center_x_m=2e-6, object_center_y_m=-1e-6)
    pp = write_ptychodus_product(d, tmp_path / "prod.h5")
    dp = write_ptychodus_diffraction(d, tmp_path / "diff.h5")
    prod = pio.load_product(pp)
    np.testing.assert_array_equal(prod.object_.get_layer(0), d.object)
    np.testing.assert_array_equal(prod.probes.get_array()[0, 0], d.probe)
    assert prod.metadata.photon_energy_eV == 9000.0
    geo = prod.object_.get_geometry()
    cx = geo.map_probe_positions_to_object_x_px(prod.probe_positions)
    cy = geo.map_probe_positions_to_object_y_px(prod.probe_positions)
    np.testing.assert_allclose(cx, d.xcoords - 0.5, atol=1e-9)
    np.testing.assert_allclose(cy, d.ycoords - 0.5, atol=1e-9)
    # half-pixel check: ptychodus's own patch bounds select exactly our patch for integer positions
    pg = ProbeGeometry(width_px=N, height_px=N, pixel_width_m=7e-9, pixel_height_m=7e-9)
    for j in range(M):
        b = pg.resolve_patch_bounds(float(cx[j]), float(cy[j]))
        # ptychodus's patch = integer slice + sub-pixel Fourier shift (dx, dy); its effective lower
        # edge must be ours: x - N//2 (a sign or half-pixel error would be off by 0.5 or 1).
        assert b.x_slice.start + b.dx == pytest.approx(d.xcoords[j] - N // 2, abs=1e-6)
        assert b.y_slice.start + b.dy == pytest.approx(d.ycoords[j] - N // 2, abs=1e-6)
    b = pg.resolve_patch_bounds(float(cx[0]), float(cy[0]))  # exact for position (4, 4)
    assert abs(b.dx) < 1e-9 and abs(b.dy) < 1e-9
    np.testing.assert_array_equal(d.object[b.y_slice, b.x_slice], d.object[0:N, 0:N])
    ad = pio.load_diffraction_data(dp)
    np.testing.assert_array_equal(ad.get_indexes(), np.arange(M))
    np.testing.assert_allclose(np.sqrt(ad.get_patterns().astype(np.float64)), d.diffraction, rtol=1e-6)


def test_we_read_ptychodus_files(tmp_path, pio):
    from ptychodus.api.assemble import AssembledDiffractionData
    from ptychodus.api.geometry import PixelGeometry
    from ptychodus.api.object import Object, ObjectCenter
    from ptychodus.api.probe import ProbeSequence
    from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
    from ptychodus.api.product import Product, ProductMetadata

    d = make_data()
    px, cxm, cym = 1.2e-8, 3e-6, -2e-6
    xm = pixel_to_world(d.xcoords, cxm, px, W)
    ym = pixel_to_world(d.ycoords, cym, px, H)
    positions = ProbePositionSequence([ProbePosition(i, float(a), float(b)) for i, (a, b) in enumerate(zip(xm, ym))])
    product = Product(
        metadata=ProductMetadata(name="ptychodus-made", comments="", detector_distance_m=2.0,
                                 photon_energy_eV=7000.0, probe_photon_count=0.0, exposure_time_s=0.0,
                                 mass_attenuation_m2_per_kg=0.0, tomography_angle_deg=0.0),
        probe_positions=positions,
        probes=ProbeSequence(d.probe[None, None].astype(np.complex128), None, PixelGeometry(px, px)),
        object_=Object(d.object[None].astype(np.complex128), PixelGeometry(px, px), ObjectCenter(cxm, cym)),
        losses=[])
    pp = tmp_path / "product.h5"
    pio.save_product(pp, product)
    counts = np.round(d.diffraction.astype(np.float64) ** 2).astype(np.uint32)
    pio.save_diffraction_data(tmp_path / "diffraction.h5", AssembledDiffractionData(
        np.arange(M), counts, PixelGeometry(75e-6, 75e-6), np.zeros((N, N), bool)))
    r = load(pp)  # finds the sibling diffraction.h5 of ptychodus's standard layout
    _assert_same(r, d, exact_diffraction=False)
    assert r.metadata["pixel_size_m"] == px and r.metadata["photon_energy_eV"] == 7000.0
    assert r.metadata["detector_distance_m"] == 2.0 and r.metadata["detector_pixel_size_m"] == 75e-6
    assert r.metadata["object_center_x_m"] == cxm
