"""Crop (margin in mm), HU window, isotropic resampling and the CNN cube on a tiny chest."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import MaskError
from pipeline.preprocess import cnn_cube, hu_window, resample_isotropic, roi_bbox, roi_crop
from pipeline.core.volume import Volume

SPACING = (0.5, 0.75, 2.5)  # x, y, z mm: a different spacing on every axis
ORIGIN = (-12.0, 30.5, -100.0)
ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90° about z


def _chest(*, centre_zyx: tuple[int, int, int] = (12, 24, 24), radius_mm: float = 5.0,
           direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) -> tuple[Volume, Volume]:
    """24×48×48 int16 chest: air −1000 HU, body 40 HU, lung −850 HU, a 40 HU tumour sphere
    (radius in mm) centred on voxel ``centre_zyx``; the ROI is the sphere (uint8)."""
    shape = (24, 48, 48)
    zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    z = (zz - 12) * SPACING[2]
    y = (yy - 24) * SPACING[1]
    x = (xx - 24) * SPACING[0]
    ct = np.full(shape, -1000, np.int16)
    ct[(y / 17) ** 2 + (x / 11) ** 2 < 1] = 40
    ct[(y / 14) ** 2 + (x / 9) ** 2 + (z / 28) ** 2 < 1] = -850
    cz, cy, cx = centre_zyx
    tumour = ((zz - cz) * SPACING[2]) ** 2 + ((yy - cy) * SPACING[1]) ** 2 + ((xx - cx) * SPACING[0]) ** 2 <= radius_mm**2
    ct[tumour] = 40
    geometry = dict(spacing_xyz=SPACING, origin_xyz=ORIGIN, direction=direction)
    return Volume(ct, **geometry), Volume(tumour.astype(np.uint8), **geometry)


# -- roi_bbox / roi_crop -----------------------------------------------------------------------
def test_roi_bbox_is_start_and_exclusive_stop():
    mask = np.zeros((5, 6, 7), np.uint8)
    mask[1, 2, 3] = mask[3, 4, 5] = 1
    assert roi_bbox(mask) == ((1, 2, 3), (4, 5, 6))
    with pytest.raises(MaskError, match="empty"):
        roi_bbox(np.zeros((5, 6, 7), np.uint8))


def test_margin_in_mm_becomes_voxels_per_axis():
    ct, roi = _chest()
    start, stop = roi_bbox(roi.array)
    ct_c, roi_c, rec = roi_crop(ct, roi, margin_mm=3.0)
    # 3 mm = 1.2 slices (→ 2), 4 rows of 0.75 mm, 6 columns of 0.5 mm
    assert rec.margin_voxels_zyx == (2, 4, 6)
    assert rec.start_zyx == tuple(s - m for s, m in zip(start, (2, 4, 6)))
    assert rec.stop_zyx == tuple(e + m for e, m in zip(stop, (2, 4, 6)))
    assert not rec.clipped_at_border and rec.source_shape_zyx == (24, 48, 48)
    assert ct_c.shape_zyx == roi_c.shape_zyx == tuple(b - a for a, b in zip(rec.start_zyx, rec.stop_zyx))
    assert roi_c.array.sum() == roi.array.sum()  # the whole tumour is inside
    assert ct_c.spacing_xyz == SPACING and roi_c.spacing_xyz == SPACING


def test_min_margin_voxels_respected_on_thick_slices():
    ct, roi = _chest()
    _, _, rec = roi_crop(ct, roi, margin_mm=3.0, min_margin_voxels=3)
    assert rec.margin_voxels_zyx == (3, 4, 6)


def test_crop_is_clipped_at_the_volume_border():
    ct, roi = _chest(centre_zyx=(2, 24, 44), radius_mm=2.0)
    ct_c, _, rec = roi_crop(ct, roi, margin_mm=10.0)
    assert rec.clipped_at_border
    assert rec.start_zyx[0] == 0 and rec.stop_zyx[2] == 48
    assert rec.margin_voxels_zyx == (4, 14, 20)
    assert ct_c.shape_zyx[0] <= 24 and ct_c.shape_zyx[2] < 48


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), ROTATED])
def test_crop_keeps_physical_position(direction: tuple[float, ...]):
    ct, roi = _chest(centre_zyx=(10, 20, 30), direction=direction)
    ct_c, roi_c, rec = roi_crop(ct, roi, margin_mm=4.0)
    np.testing.assert_allclose(ct_c.index_to_physical(np.zeros(3)), ct.index_to_physical(np.asarray(rec.start_zyx, float)))
    assert ct_c.direction == ct.direction and roi_c.origin_xyz == ct_c.origin_xyz
    # any crop voxel sits at the same physical point, with the same value, as in the full CT
    k = np.array([3, 5, 7])
    full = np.asarray(rec.start_zyx) + k
    np.testing.assert_allclose(ct_c.index_to_physical(k), ct.index_to_physical(full))
    assert ct_c.array[tuple(k)] == ct.array[tuple(full)]
    # and the crop is a copy: the full volume can be freed
    assert not np.shares_memory(ct_c.array, ct.array)


def test_negative_margin_refused():
    ct, roi = _chest()
    with pytest.raises(ValueError, match="margin_mm must be >= 0 mm"):
        roi_crop(ct, roi, margin_mm=-1.0)


# -- hu_window ---------------------------------------------------------------------------------
def test_hu_window_values():
    hu = np.array([[-2000, -160, -60], [40, 140, 240]], np.int16)
    out = hu_window(hu, level=40, width=400)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.25], [0.5, 0.75, 1.0]])
    lung = hu_window(np.array([-1350.0, -600.0, 150.0]), level=-600, width=1500)
    np.testing.assert_allclose(lung, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="width must be > 0 HU"):
        hu_window(hu, level=40, width=0)


# -- resample_isotropic ------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), ROTATED])
def test_resample_isotropic_keeps_extent_and_centre(direction: tuple[float, ...]):
    ct, roi = _chest(direction=direction)
    iso = resample_isotropic(ct, spacing_mm=1.0, interpolator="linear", default_value=-1024)
    assert iso.spacing_xyz == (1.0, 1.0, 1.0)
    assert iso.shape_zyx == (60, 36, 24)  # 24×2.5, 48×0.75, 48×0.5 mm
    assert iso.direction == ct.direction
    for a, b in zip(iso.physical_extent(), ct.physical_extent()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the tumour stays where it was: centre of mass of the resampled mask ≈ original centre
    roi_iso = resample_isotropic(roi, spacing_mm=1.0, interpolator="nearest")
    assert roi_iso.array.dtype == np.uint8
    centre_iso = roi_iso.index_to_physical(np.argwhere(roi_iso.array).mean(axis=0))
    centre = roi.index_to_physical(np.argwhere(roi.array).mean(axis=0))
    np.testing.assert_allclose(centre_iso, centre, atol=0.6)
    assert roi_iso.array.sum() == pytest.approx(roi.array.sum() * np.prod(SPACING), rel=0.2)


def test_resample_isotropic_refuses_bad_arguments():
    ct, _ = _chest()
    with pytest.raises(ValueError, match="spacing_mm must be > 0"):
        resample_isotropic(ct, spacing_mm=0)
    with pytest.raises(ValueError, match="interpolator must be one of"):
        resample_isotropic(ct, interpolator="cubic")


# -- cnn_cube ----------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), ROTATED])
def test_cnn_cube_is_centred_on_the_tumour(direction: tuple[float, ...]):
    # tumour off the volume centre, small enough that the 10 mm cube around it holds only lung
    ct, roi = _chest(centre_zyx=(11, 22, 26), radius_mm=3.0, direction=direction)
    cube, rec = cnn_cube(ct, roi, size=10, spacing_mm=1.0, level=40, width=400)
    assert cube.shape == (10, 10, 10) and cube.dtype == np.float32
    assert 0.0 <= cube.min() and cube.max() <= 1.0
    np.testing.assert_allclose(rec.centre_xyz_mm, ct.index_to_physical(np.array([11.0, 22.0, 26.0])))
    assert rec.size_voxels == 10 and rec.spacing_mm == 1.0 and (rec.window_level_hu, rec.window_width_hu) == (40.0, 400.0)
    # the 40 HU tumour (→ 0.5) fills the centre; lung (−850 HU → 0) surrounds it
    np.testing.assert_allclose(cube[4:6, 4:6, 4:6], 0.5, atol=0.02)
    assert cube[0].max() == 0.0 and cube[:, :, 0].max() == 0.0 and cube[:, -1].max() == 0.0
    bright = np.argwhere(cube > 0.25).mean(axis=0)
    np.testing.assert_allclose(bright, [4.5, 4.5, 4.5], atol=0.5)


def test_cnn_cube_outside_the_volume_reads_as_air():
    ct, roi = _chest(centre_zyx=(1, 24, 24), radius_mm=2.0)
    cube, _ = cnn_cube(ct, roi, size=16, spacing_mm=1.0)
    # the cube's slices run from 7.5 mm below to 7.5 mm above slice 1, which is 3.75 mm above
    # the volume's lower face: the first slices lie outside the CT
    lower_face = ct.index_to_physical(np.array([-0.5, 0.0, 0.0]))[2]
    z_mm = ct.index_to_physical(np.array([1.0, 0.0, 0.0]))[2] + (np.arange(16) - 7.5)
    outside = z_mm < lower_face
    assert outside.sum() == 4
    assert np.all(cube[outside] == 0.0)
    assert np.all(cube[~outside].max(axis=(1, 2)) >= 0.5)  # inside: the 40 HU body is there
