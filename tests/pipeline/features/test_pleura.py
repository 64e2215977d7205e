"""Pleura-aware features on synthetic chests with known geometry and on a real CT."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import PleuraConfig
from pipeline.core.errors import GeometryError, InputError, MaskError
from pipeline.features.pleura import PLEURA_FEATURE_NAMES, lung_mask, pleura_features
from pipeline.core.volume import Volume

CONFIG = PleuraConfig()
SPACING_XYZ = (0.7, 0.7, 2.5)
LUNG_SEMI_AXES_MM = (30.0, 25.0, 25.0)  # z, y, x
BODY_HALF_MM = 33.0  # soft-tissue body (y, x); outside air beyond it
REAL_CT = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "real_ct" / "pyradiomics_lung1"


def _chest(*, gap_mm: float, radius_mm: float = 5.0, halo_mm: float = 0.0, strand: bool = False,
           spacing_xyz: tuple[float, float, float] = SPACING_XYZ, shape_zyx: tuple[int, int, int] = (32, 110, 110),
           seed: int = 0) -> tuple[Volume, Volume]:
    """A soft-tissue body (40 HU) in outside air (−1000 HU) holding an ellipsoidal lung (−850 HU)
    and a spherical tumour (40 HU core, −500 HU halo out to ``radius_mm + halo_mm``) whose
    surface lies ``gap_mm`` inside the lung's +x boundary (negative: the tumour crosses it)."""
    sz, sy, sx = spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid((np.arange(nz) - nz // 2) * sz, (np.arange(ny) - ny // 2) * sy,
                          (np.arange(nx) - nx // 2) * sx, indexing="ij")
    rng = np.random.default_rng(seed)
    ct = np.full(shape_zyx, -1000.0)
    ct[(np.abs(y) < BODY_HALF_MM) & (np.abs(x) < BODY_HALF_MM)] = 40.0
    az, ay, ax = LUNG_SEMI_AXES_MM
    ct[(z / az) ** 2 + (y / ay) ** 2 + (x / ax) ** 2 < 1] = -850.0
    outer = radius_mm + halo_mm
    cx = round((ax - gap_mm - outer) / sx) * sx  # on a voxel centre
    r = np.sqrt(z**2 + y**2 + (x - cx) ** 2)
    if strand:  # a 40 HU strand from the tumour to the chest wall along +x
        ct[(np.abs(z) < 1.0) & (np.abs(y) < 0.8) & (x > cx) & (x < ax + 1)] = 40.0
    ct[r <= outer] = -500.0
    ct[r <= radius_mm] = 40.0
    ct += rng.normal(0, 15, shape_zyx)
    roi = (r <= outer).astype(np.uint8)
    expected_gap = ax - (cx + outer)
    geometry = dict(spacing_xyz=spacing_xyz, origin_xyz=(-12.0, 40.0, -300.0))
    vol = Volume(np.round(ct).astype(np.int16), **geometry)
    return vol, Volume(roi, **geometry), expected_gap  # type: ignore[return-value]


def _assert_well_formed(features: dict[str, float]) -> None:
    assert tuple(features) == PLEURA_FEATURE_NAMES
    assert all(isinstance(v, float) and math.isfinite(v) for v in features.values())
    for name in ("pleura_contact_fraction", "pleura_crossing_fraction", "pleura_ring_solid_fraction",
                 "pleura_ring_wall_fraction", "tumour_solid_fraction", "tumour_ctr"):
        assert 0.0 <= features[name] <= 1.0, name


@pytest.mark.parametrize("gap_mm", [3.0, 8.0, 14.0])
def test_distance_to_pleura_matches_the_built_gap(gap_mm: float) -> None:
    ct, roi, expected = _chest(gap_mm=gap_mm)
    f = pleura_features(ct, roi, config=CONFIG)
    _assert_well_formed(f)
    assert f["pleura_lung_found"] == 1.0
    assert abs(f["pleura_distance_mm"] - expected) <= 1.5 * SPACING_XYZ[0]
    assert f["pleura_contact_area_mm2"] == 0.0
    assert f["pleura_contact_length_mm"] == 0.0
    assert f["pleura_crossing_fraction"] == 0.0


def test_distance_is_capped_far_from_the_pleura() -> None:
    ct, roi, expected = _chest(gap_mm=22.0, radius_mm=2.0)
    assert expected > CONFIG.max_distance_mm
    f = pleura_features(ct, roi, config=CONFIG)
    assert f["pleura_distance_mm"] == CONFIG.max_distance_mm
    assert f["pleura_contact_area_mm2"] == 0.0


def test_touching_tumour_has_contact_and_no_crossing() -> None:
    ct, roi, _ = _chest(gap_mm=0.0)
    f = pleura_features(ct, roi, config=CONFIG)
    _assert_well_formed(f)
    assert f["pleura_distance_mm"] <= 1.5 * SPACING_XYZ[0]
    assert f["pleura_contact_area_mm2"] > 0.0
    assert 0.0 < f["pleura_contact_fraction"] < 0.5
    assert f["pleura_contact_length_mm"] > 0.0
    assert f["pleura_crossing_fraction"] < 0.05
    assert f["pleura_ring_wall_fraction"] > 0.0


def test_tumour_straddling_the_pleura_crosses_it() -> None:
    ct, roi, _ = _chest(gap_mm=-5.0)  # centre on the lung boundary: half in the chest wall
    f = pleura_features(ct, roi, config=CONFIG)
    _assert_well_formed(f)
    assert f["pleura_distance_mm"] == 0.0
    assert 0.3 < f["pleura_crossing_fraction"] < 0.7
    assert 0.3 < f["pleura_contact_fraction"] < 0.8
    assert 8.0 < f["pleura_contact_length_mm"] < 13.0  # the contact cap spans the 10 mm sphere


def test_contact_grows_as_the_tumour_moves_into_the_wall() -> None:
    areas = [pleura_features(*_chest(gap_mm=g)[:2], config=CONFIG)["pleura_contact_area_mm2"]
             for g in (4.0, 0.0, -5.0)]
    assert areas[0] == 0.0 < areas[1] < areas[2]


def test_part_solid_tumour_solid_fraction_and_ctr() -> None:
    ct, roi, _ = _chest(gap_mm=6.0, radius_mm=3.0, halo_mm=4.0)
    f = pleura_features(ct, roi, config=CONFIG)
    _assert_well_formed(f)
    tumour = roi.array > 0
    core = tumour & (ct.array > CONFIG.solid_threshold_hu)
    voxel = float(np.prod(SPACING_XYZ))
    assert f["tumour_volume_mm3"] == pytest.approx(tumour.sum() * voxel)
    assert f["tumour_solid_volume_mm3"] == pytest.approx(core.sum() * voxel)
    assert f["tumour_solid_fraction"] == pytest.approx(core.sum() / tumour.sum())
    assert f["tumour_solid_fraction"] == pytest.approx((3 / 7) ** 3, abs=0.05)
    assert f["tumour_diameter_mm"] == pytest.approx(14.0, abs=1.5)
    assert f["tumour_solid_diameter_mm"] == pytest.approx(6.0, abs=1.5)
    assert f["tumour_ctr"] == pytest.approx(3 / 7, abs=0.1)


def test_pleural_tag_is_counted() -> None:
    plain = pleura_features(*_chest(gap_mm=6.0)[:2], config=CONFIG)
    tagged = pleura_features(*_chest(gap_mm=6.0, strand=True)[:2], config=CONFIG)
    assert plain["pleura_tag_count"] == 0.0
    assert tagged["pleura_tag_count"] == 1.0
    # The tag lies on the lung side: the pleural surface stays put (within a voxel where they join).
    assert abs(tagged["pleura_distance_mm"] - plain["pleura_distance_mm"]) <= SPACING_XYZ[0] + 1e-9


def test_other_anisotropic_spacing() -> None:
    spacing = (0.57, 0.57, 5.0)
    ct, roi, expected = _chest(gap_mm=5.0, spacing_xyz=spacing, shape_zyx=(18, 134, 134))
    f = pleura_features(ct, roi, config=CONFIG)
    _assert_well_formed(f)
    assert abs(f["pleura_distance_mm"] - expected) <= 1.5 * spacing[0]


def test_tumour_outside_the_lung_is_flagged_not_raised() -> None:
    ct, roi, _ = _chest(gap_mm=3.0)
    # A 3 mm-radius "tumour" in the soft tissue of the body's corner, ~9 mm from the lung.
    nz, ny, nx = roi.shape_zyx
    z, y, x = np.meshgrid((np.arange(nz) - nz // 2) * 2.5, (np.arange(ny) - ny // 2) * 0.7,
                          (np.arange(nx) - nx // 2) * 0.7, indexing="ij")
    corner = (np.sqrt(z**2 + (y - 26) ** 2 + (x - 26) ** 2) <= 3.0).astype(np.uint8)
    assert (ct.array[corner > 0] > -200).all()
    f = pleura_features(ct, roi.with_array(corner), config=CONFIG)
    _assert_well_formed(f)
    assert f["pleura_lung_found"] == 0.0
    assert f["pleura_distance_mm"] == CONFIG.max_distance_mm
    assert f["pleura_contact_area_mm2"] == 0.0 and f["pleura_crossing_fraction"] == 0.0


def test_lung_mask_covers_lung_and_tumour_not_body_or_outside_air() -> None:
    ct, roi, _ = _chest(gap_mm=3.0)
    mask = lung_mask(ct, roi, config=CONFIG)
    assert mask.array.dtype == np.uint8 and mask.shape_zyx == ct.shape_zyx
    assert mask.spacing_xyz == ct.spacing_xyz
    lung = mask.array > 0
    assert lung[roi.array > 0].all()
    assert (ct.array[lung] < -400).mean() > 0.8
    assert not lung[ct.array < -990].any()  # no outside air
    assert not lung[:, 55, 107].any() and not lung[:, 55, 105].any()  # chest wall / skin column


def test_bad_inputs_raise_clear_input_errors() -> None:
    ct, roi, _ = _chest(gap_mm=3.0)
    with pytest.raises(MaskError, match="empty"):
        pleura_features(ct, roi.with_array(np.zeros_like(roi.array)), config=CONFIG)
    with pytest.raises(MaskError, match="binary"):
        pleura_features(ct, roi.with_array(roi.array * 2), config=CONFIG)
    with pytest.raises(GeometryError):
        pleura_features(ct, roi.with_array(roi.array[:-1]), config=CONFIG)
    with pytest.raises(InputError):
        pleura_features(ct, roi.with_array(roi.array, spacing_xyz=(1.0, 1.0, 1.0)), config=CONFIG)
    with pytest.raises(ValueError, match="PleuraConfig"):
        pleura_features(ct, roi, config={"ring_mm": 10})  # type: ignore[arg-type]


def test_config_validates_new_fields() -> None:
    with pytest.raises(ValueError, match="max_distance_mm"):
        PleuraConfig(max_distance_mm=0)
    with pytest.raises(ValueError, match="pure_air_hu"):
        PleuraConfig(pure_air_hu=-300)
    cfg = PleuraConfig(ring_mm=12.0)
    assert PleuraConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.search_margin_mm == 25.0


def test_fast_on_a_typical_crop() -> None:
    ct, roi, _ = _chest(gap_mm=3.0, shape_zyx=(40, 100, 100))
    pleura_features(ct, roi, config=CONFIG)  # warm-up (imports, caches)
    start = time.perf_counter()
    pleura_features(ct, roi, config=CONFIG)
    elapsed = time.perf_counter() - start
    print(f"pleura_features on a 40x100x100 crop: {elapsed:.3f} s")
    assert elapsed < 1.5  # target 0.3 s; generous bound for a shared 2-core machine


@pytest.fixture(scope="module")
def real_ct() -> tuple[Volume, Volume]:
    image, label = REAL_CT / "lung1_image.nrrd", REAL_CT / "lung1_label.nrrd"
    if not (image.exists() and label.exists()):
        pytest.skip(f"real CT fixture not found under {REAL_CT}")
    import SimpleITK as sitk

    ct = Volume.from_sitk(sitk.ReadImage(str(image)))
    roi = Volume.from_sitk(sitk.ReadImage(str(label)))
    return ct, roi.with_array((roi.array == 1).astype(np.uint8))


def test_real_scan_full_volume_is_finite_stable_and_crop_invariant(real_ct) -> None:
    from pipeline.preprocess.crop import roi_crop

    ct, roi = real_ct
    start = time.perf_counter()
    first = pleura_features(ct, roi, config=CONFIG)
    elapsed_full = time.perf_counter() - start
    second = pleura_features(ct, roi, config=CONFIG)
    ct_c, roi_c, _ = roi_crop(ct, roi, margin_mm=CONFIG.search_margin_mm)
    start = time.perf_counter()
    cropped = pleura_features(ct_c, roi_c, config=CONFIG)
    elapsed_crop = time.perf_counter() - start
    print(f"lung1 512x512x48 full volume: {elapsed_full:.3f} s; crop {ct_c.shape_zyx}: {elapsed_crop:.3f} s")
    print({k: round(v, 3) for k, v in first.items()})
    _assert_well_formed(first)
    assert first["pleura_lung_found"] == 1.0
    assert first == second
    assert cropped == first
    # A ~15 mm mostly solid nodule a few mm from the mediastinal pleura.
    assert 12.0 < first["tumour_diameter_mm"] < 22.0
    assert first["tumour_solid_fraction"] > 0.8
    assert 0.0 < first["pleura_distance_mm"] < CONFIG.max_distance_mm
    assert elapsed_full < 3.0


def _painted_nodule(ct: Volume, centre_zyx: tuple[int, int, int], radius_mm: float = 6.0) -> tuple[Volume, Volume]:
    """The real CT with a solid (40 HU) sphere painted in, and its ROI."""
    nz, ny, nx = ct.shape_zyx
    sz, sy, sx = ct.spacing_zyx
    z, y, x = np.ogrid[:nz, :ny, :nx]
    cz, cy, cx = centre_zyx
    roi = ((((z - cz) * sz) ** 2 + ((y - cy) * sy) ** 2 + ((x - cx) * sx) ** 2) <= radius_mm**2).astype(np.uint8)
    arr = ct.array.copy()
    arr[roi > 0] = 40
    return ct.with_array(arr), ct.with_array(roi)


def test_real_anatomy_costal_contact_versus_mid_lung(real_ct) -> None:
    ct, _ = real_ct
    costal = pleura_features(*_painted_nodule(ct, (24, 330, 92)), config=CONFIG)  # against the ribs
    central = pleura_features(*_painted_nodule(ct, (24, 330, 150)), config=CONFIG)  # ~3 cm inside
    _assert_well_formed(costal)
    _assert_well_formed(central)
    assert costal["pleura_lung_found"] == central["pleura_lung_found"] == 1.0
    assert costal["pleura_distance_mm"] == 0.0 and costal["pleura_contact_area_mm2"] > 20.0
    assert costal["pleura_ring_wall_fraction"] > 0.1
    assert central["pleura_distance_mm"] >= 15.0 and central["pleura_contact_area_mm2"] == 0.0
    assert central["pleura_ring_wall_fraction"] == 0.0


def test_phantom_contact_versus_far_and_lung_mask_matches_truth() -> None:
    phantom = pytest.importorskip("pipeline.synth")

    def render(gap_mm: float):
        spec = phantom.PhantomSpec.for_size(
            "small", tumour=phantom.TumourSpec(diameter_mm=25.0, distance_to_pleura_mm=gap_mm), seed=7)
        return phantom.make_phantom(spec)

    results = {}
    for gap in (-2.0, 0.0, 4.0, 10.0):
        ph = render(gap)
        results[gap] = f = pleura_features(ph.ct, ph.roi, config=CONFIG)
        _assert_well_formed(f)
        assert f["pleura_lung_found"] == 1.0
        pixel = ph.ct.spacing_xyz[0]
        assert abs(f["pleura_distance_mm"] - max(gap, 0.0)) <= 1.5 * pixel, gap
        assert (f["pleura_contact_area_mm2"] > 0.0) == (gap <= 0.0), gap
    assert results[-2.0]["pleura_contact_area_mm2"] > results[0.0]["pleura_contact_area_mm2"]

    from pipeline.preprocess.crop import roi_crop

    ph = render(4.0)
    _, _, record = roi_crop(ph.ct, ph.roi, margin_mm=CONFIG.search_margin_mm)  # the work box
    box = tuple(slice(a, b) for a, b in zip(record.start_zyx, record.stop_zyx))
    mask = lung_mask(ph.ct, ph.roi, config=CONFIG).array[box] > 0
    tissue = ph.tissue.array[box]
    labels = phantom.TISSUE_LABELS
    lung_truth = np.isin(tissue, [labels["lung"], labels["tumour"]])
    print(f"phantom lung covered {mask[lung_truth].mean():.3f}, mask outside lung/vessels/strands "
          f"{mask[~np.isin(tissue, [labels['lung'], labels['tumour'], labels['vessel'], labels['strand']])].mean():.4f}")
    assert mask[lung_truth].mean() > 0.95
    assert mask[np.isin(tissue, [labels["air"], labels["bone"], labels["fat"]])].mean() < 0.02


def test_distance_transform_agrees_with_scipy_on_anisotropic_masks() -> None:
    """The fast EDT used for every distance here gives scipy's exact distances (mm) to float32
    precision, with the box border not counting as background, as before."""
    from scipy import ndimage

    from pipeline.features.pleura import _edt

    rng = np.random.default_rng(0)
    for spacing in [(1.0, 0.6021, 0.6021), (2.5, 0.75, 0.75), (0.5, 1.3, 0.9)]:
        mask = ndimage.binary_opening(rng.random((30, 41, 37)) > 0.35)
        ours, ref = _edt(mask, spacing), ndimage.distance_transform_edt(mask, sampling=spacing)
        assert ours.dtype == np.float64 and np.abs(ours - ref).max() < 1e-4
    assert np.isinf(_edt(np.ones((3, 4, 5), bool), (1, 1, 1))).all() and not _edt(np.zeros((3, 4, 5), bool), (1, 1, 1)).any()


def test_axial_diameter_from_edge_pixels_equals_all_pixels():
    """Only the edge pixels' corners go into the hull: the diameter is exactly that of every
    pixel's corners (random blobs, noise with holes, lines, single voxels; anisotropic grids)."""
    from scipy import ndimage as ndi

    from pipeline.features import pleura as P

    def every_pixel(mask, spacing):  # the former computation
        _, sy, sx = spacing
        offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
        best = 0.0
        for z in np.flatnonzero(mask.any(axis=(1, 2))):
            corners = (np.argwhere(mask[z]).astype(float)[:, None, :] + offsets[None]).reshape(-1, 2) * (sy, sx)
            best = max(best, P._feret_diameter(corners))
        return best

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        shape = tuple(int(n) for n in rng.integers(1, 20, size=3))
        if rng.random() < 0.3:
            mask = rng.random(shape) < rng.uniform(0.05, 0.9)
        else:
            mask = ndi.gaussian_filter(rng.normal(size=shape), rng.uniform(0.3, 3)) > rng.uniform(-0.05, 0.08)
        if not mask.any():
            continue
        spacing = tuple(float(s) for s in rng.choice([0.5, 0.625, 0.7, 0.8163700103759766, 1.0, 1.25, 2.5], size=3))
        assert P._max_axial_diameter(mask, spacing) == every_pixel(mask, spacing)
        checked += 1
    assert checked > 100
