"""Input checks on a tiny synthetic chest: implausible HU, CT/mask geometry, mask labels."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import ValidationConfig
from pipeline.core.errors import GeometryError, IntensityError, MaskError
from pipeline.inputs.validate import align_mask, binarise_mask, check_ct_intensities
from pipeline.core.volume import Volume

SPACING = (0.75, 0.75, 2.5)  # x, y, z mm
ORIGIN = (-18.0, -18.0, -30.0)


def _chest(shape_zyx: tuple[int, int, int] = (24, 48, 48)) -> tuple[Volume, Volume]:
    """Air (−1000 HU) around a soft-tissue body (40 HU) holding a lung (−850 HU) with a 40 HU
    tumour sphere of radius 5 mm at its centre; the ROI (uint8) is that sphere."""
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid((np.arange(nz) - nz / 2) * SPACING[2], (np.arange(ny) - ny / 2) * SPACING[1],
                          (np.arange(nx) - nx / 2) * SPACING[0], indexing="ij")
    ct = np.full(shape_zyx, -1000, np.int16)
    ct[(y / 16) ** 2 + (x / 16) ** 2 < 1] = 40
    ct[(y / 12) ** 2 + (x / 12) ** 2 + (z / 25) ** 2 < 1] = -850
    tumour = z**2 + y**2 + x**2 <= 5.0**2
    ct[tumour] = 40
    geometry = dict(spacing_xyz=SPACING, origin_xyz=ORIGIN)
    return Volume(ct, **geometry), Volume(tumour.astype(np.uint8), **geometry)


# -- CT intensities ----------------------------------------------------------------------------
def test_plausible_chest_passes():
    ct, _ = _chest()
    check_ct_intensities(ct)


def test_nan_voxels_refused():
    ct, _ = _chest()
    a = ct.array.astype(np.float32)
    a[3, 4, 5:8] = np.nan
    a[0, 0, 0] = np.inf
    with pytest.raises(IntensityError, match=r"4 NaN or infinite voxel"):
        check_ct_intensities(ct.with_array(a))


def test_raw_scanner_values_get_a_rescale_hint():
    ct, _ = _chest()
    raw = ct.with_array((ct.array + 1024).astype(np.uint16))
    with pytest.raises(IntensityError) as err:
        check_ct_intensities(raw)
    message = str(err.value)
    assert "raw scanner values" in message and "RescaleIntercept" in message
    assert "range 24 to 1064" in message


def test_constant_image_refused():
    ct, _ = _chest()
    with pytest.raises(IntensityError, match=r"constant \(-1000 everywhere\)"):
        check_ct_intensities(ct.with_array(np.full(ct.shape_zyx, -1000, np.int16)))


def test_image_without_air_refused():
    ct, _ = _chest()
    soft = np.random.default_rng(0).integers(-100, 100, ct.shape_zyx).astype(np.int16)
    with pytest.raises(IntensityError) as err:
        check_ct_intensities(ct.with_array(soft))
    assert "almost no air or lung" in str(err.value) and "-500 HU" in str(err.value)
    assert "raw scanner" not in str(err.value)


def test_values_below_physical_minimum_refused():
    ct, _ = _chest()
    a = ct.array.copy()
    a[0, 0, 0] = -4000
    with pytest.raises(IntensityError, match=r"below −3200"):
        check_ct_intensities(ct.with_array(a))


# -- geometry ----------------------------------------------------------------------------------
def test_equal_geometry_returns_mask_unchanged_without_warning():
    ct, roi = _chest()
    aligned, warnings = align_mask(ct, roi)
    assert warnings == []
    np.testing.assert_array_equal(aligned.array, roi.array)


def test_tiny_float_differences_are_ignored_and_snapped_to_the_ct():
    ct, roi = _chest()
    jittered = roi.with_array(roi.array, spacing_xyz=tuple(s * (1 + 2e-6) for s in SPACING),
                              origin_xyz=tuple(o + 1e-4 for o in ORIGIN),
                              direction=(1.0, 1e-6, 0.0, -1e-6, 1.0, 0.0, 0.0, 0.0, 1.0))
    aligned, warnings = align_mask(ct, jittered)
    assert warnings == []
    assert aligned.spacing_xyz == ct.spacing_xyz and aligned.origin_xyz == ct.origin_xyz
    assert aligned.direction == ct.direction


def _coarse_mask(ct: Volume) -> Volume:
    """The same tumour drawn on a grid with twice the in-plane spacing, over the same extent."""
    lo, hi = ct.physical_extent()
    spacing = (1.5, 1.5, 2.5)
    n = [int(round((h - l) / s)) for l, h, s in zip(lo, hi, spacing)]
    origin = tuple(float(l + s / 2) for l, s in zip(lo, spacing))
    z, y, x = np.meshgrid(origin[2] + np.arange(n[2]) * spacing[2], origin[1] + np.arange(n[1]) * spacing[1],
                          origin[0] + np.arange(n[0]) * spacing[0], indexing="ij")
    centre = ct.index_to_physical(np.array([12.0, 24.0, 24.0]))
    sphere = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= 5.0**2
    return Volume(sphere.astype(np.uint8), spacing_xyz=spacing, origin_xyz=origin)


def test_different_spacing_but_overlapping_is_resampled_with_a_warning():
    ct, roi = _chest()
    coarse = _coarse_mask(ct)
    with pytest.raises(GeometryError, match=r"not on the CT's voxel grid.*--allow-resample"):
        align_mask(ct, coarse)  # strict by default
    aligned, warnings = align_mask(ct, coarse, allow_resample=True)
    assert aligned.shape_zyx == ct.shape_zyx and aligned.spacing_xyz == ct.spacing_xyz
    assert aligned.array.dtype == np.uint8
    assert len(warnings) == 1
    assert "spacing (1.5, 1.5, 2.5) vs CT (0.75, 0.75, 2.5) mm" in warnings[0]
    assert "size (z, y, x) (24, 24, 24) vs CT (24, 48, 48)" in warnings[0]
    assert "resampled onto the CT grid" in warnings[0]
    # the tumour's physical volume (mm³) survives resampling, and it lands where it was drawn
    voxel_mm3 = np.prod(SPACING)
    coarse_mm3 = coarse.array.sum() * np.prod(coarse.spacing_xyz)
    assert aligned.array.sum() * voxel_mm3 == pytest.approx(coarse_mm3, rel=0.25)
    overlap = np.logical_and(aligned.array, roi.array).sum() / roi.array.sum()
    assert overlap > 0.8


def test_flipped_direction_describing_the_same_voxels_resamples_exactly():
    ct, roi = _chest()
    # the same grid stored with x and y running backwards (RAS-like): origin at the far corner
    far = ct.index_to_physical(np.array([0.0, 47.0, 47.0]))
    flipped = Volume(roi.array[:, ::-1, ::-1].copy(), spacing_xyz=SPACING, origin_xyz=tuple(far),
                     direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    aligned, warnings = align_mask(ct, flipped, allow_resample=True)
    assert "direction cosines differ" in warnings[0]
    np.testing.assert_array_equal(aligned.array, roi.array)


def test_direction_difference_refused_when_resampling_is_disabled():
    ct, roi = _chest()
    far = ct.index_to_physical(np.array([0.0, 47.0, 47.0]))
    flipped = roi.with_array(roi.array[:, ::-1, ::-1].copy(), origin_xyz=tuple(far),
                             direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(GeometryError, match=r"geometry differs from the CT \(.*direction cosines differ"):
        align_mask(ct, flipped, config=ValidationConfig(resample_mask_if_overlapping=False), allow_resample=True)


def test_partial_overlap_refused_even_when_resampling_is_allowed():
    ct, roi = _chest()
    # another scan's mask on another grid, reaching 40 % past the CT's edge along x
    lo, hi = ct.physical_extent()
    shifted = roi.with_array(roi.array, spacing_xyz=(0.8, 0.8, 2.5),
                             origin_xyz=(ORIGIN[0] + 0.4 * float(hi[0] - lo[0]), ORIGIN[1], ORIGIN[2]))
    with pytest.raises(GeometryError, match=r"only \d+ % of the mask's extent lies inside the CT"):
        align_mask(ct, shifted, allow_resample=True)


def test_mask_far_away_from_the_ct_refused():
    ct, roi = _chest()
    moved = roi.with_array(roi.array, origin_xyz=(ORIGIN[0] + 500.0, ORIGIN[1], ORIGIN[2]))
    with pytest.raises(GeometryError) as err:
        align_mask(ct, moved)
    message = str(err.value)
    assert "do not overlap" in message and "origin (482.0, -18.0, -30.0) vs CT (-18.0, -18.0, -30.0)" in message
    assert "drawn on this CT" in message


# -- labels ------------------------------------------------------------------------------------
def _labels(*values: int, dtype: type = np.uint8, n_each: int = 30) -> Volume:
    a = np.zeros((10, 12, 12), dtype)
    flat = a.reshape(-1)
    for k, v in enumerate(values):
        flat[k * n_each:(k + 1) * n_each] = v
    return Volume(a, spacing_xyz=SPACING)


def test_single_label_becomes_binary_uint8():
    out = binarise_mask(_labels(3), min_voxels=20)
    assert out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 1}
    assert out.array.sum() == 30 and out.spacing_xyz == SPACING


def test_empty_mask_refused():
    with pytest.raises(MaskError, match=r"ROI mask is empty"):
        binarise_mask(_labels())


def test_several_labels_listed_with_a_hint_to_choose():
    with pytest.raises(MaskError) as err:
        binarise_mask(_labels(1, 2, 5))
    message = str(err.value)
    assert "3 labels (1, 2, 5)" in message and "choose the tumour label" in message and "--label" in message


def test_chosen_label_is_the_only_one_kept():
    mask = _labels(1, 2, 5)
    out = binarise_mask(mask, label=2, min_voxels=20)
    np.testing.assert_array_equal(out.array, (mask.array == 2).astype(np.uint8))


def test_absent_label_refused_naming_the_present_ones():
    with pytest.raises(MaskError, match=r"no voxel with label 7 \(labels present: 1, 2\)"):
        binarise_mask(_labels(1, 2), label=7)


def test_float_mask_with_integer_values_is_accepted():
    out = binarise_mask(_labels(1, dtype=np.float32), min_voxels=20)
    assert out.array.dtype == np.uint8 and out.array.sum() == 30


def test_probability_map_refused():
    mask = _labels(1, dtype=np.float32)
    mask.array[mask.array > 0] = 0.7
    with pytest.raises(MaskError, match=r"non-integer values"):
        binarise_mask(mask)


def test_nan_in_mask_refused():
    mask = _labels(1, dtype=np.float32)
    mask.array[0, 0, 0] = np.nan
    with pytest.raises(MaskError, match=r"NaN"):
        binarise_mask(mask)


def test_negative_labels_refused():
    with pytest.raises(MaskError, match=r"negative values"):
        binarise_mask(_labels(1, -1, dtype=np.int16))


def test_too_few_voxels_refused():
    with pytest.raises(MaskError, match=r"only 5 labelled voxel\(s\); at least 20"):
        binarise_mask(_labels(1, n_each=5), min_voxels=20)


# --- IntensitySummariser: the check on a CT seen a block of slices at a time ----------------

from pipeline.inputs.validate import IntensitySummariser, IntensitySummary  # noqa: E402


@pytest.mark.parametrize("shape", [(7, 9, 11), (130, 130, 130)])  # sampling step 1 and 2
@pytest.mark.parametrize("cuts", [(1,), (3, 5), (64,)])
def test_summary_from_slice_blocks_equals_the_whole_array(shape: tuple[int, int, int], cuts: tuple[int, ...]):
    a = np.random.default_rng(0).integers(-1100, 400, shape).astype(np.int16)
    s = IntensitySummariser(a.shape, a.dtype)
    z, i = 0, 0
    while z < a.shape[0]:
        n = cuts[i % len(cuts)]
        s.add(z, a[z:z + n])
        z, i = z + n, i + 1
    whole, streamed = IntensitySummary.of(a), s.summary()
    assert np.array_equal(whole.sample, streamed.sample) and whole.sample.size > 0
    assert whole.full_min == streamed.full_min == float(a.min())
    assert (whole.non_finite, whole.n_voxels) == (streamed.non_finite, streamed.n_voxels) == (0, a.size)


def test_summary_counts_non_finite_voxels_and_the_check_says_so():
    a = np.full((6, 8, 8), -900.0, np.float32)
    a[0, 0, :3] = np.nan
    a[5, 7, 7] = np.inf
    s = IntensitySummariser(a.shape, a.dtype)
    s.add(0, a[:4])
    s.add(4, a[4:])
    for summary in (s.summary(), IntensitySummary.of(a)):
        with pytest.raises(IntensityError, match=r"^CT contains 4 NaN or infinite voxel value\(s\)$"):
            check_ct_intensities(summary)


def test_slice_blocks_must_come_in_order():
    s = IntensitySummariser((4, 2, 2), np.dtype(np.int16))
    with pytest.raises(ValueError, match="in order"):
        s.add(1, np.zeros((1, 2, 2), np.int16))
