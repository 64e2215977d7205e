"""ROI plausibility, the memory guard, swapped inputs and the strict geometry policy, on phantoms
as a user would meet them: the wrong mask is refused with the measured numbers, before the work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import PipelineConfig
from pipeline.core.errors import GeometryError, RoiPlausibilityError, SwappedInputsError
from pipeline.core.volume import Volume
from pipeline.inputs.case import load_case
from pipeline.inputs.roi_checks import WORKER_MEMORY_MIB, assess_roi, check_roi_size
from pipeline.io.readers import write_image
from pipeline.synth import TISSUE_LABELS, PhantomSpec, TumourSpec, make_phantom

CONFIG = PipelineConfig()


@pytest.fixture(scope="module")
def patients():
    """Two small phantom patients on the same grid (128×128×64) with different anatomy/tumours."""
    a = make_phantom(PhantomSpec.for_size("small", seed=11, tumour=TumourSpec(diameter_mm=28.0,
                                                                             distance_to_pleura_mm=4.0)))
    b = make_phantom(PhantomSpec.for_size("small", seed=12, tumour=TumourSpec(diameter_mm=30.0,
                                                                             distance_to_pleura_mm=12.0, side="left")))
    return a, b


def _write(tmp: Path, ct: Volume, roi: Volume, name: str = "case") -> tuple[Path, Path]:
    return write_image(ct, tmp / f"{name}_ct.nii.gz"), write_image(roi, tmp / f"{name}_roi.nii.gz")


def _sphere(vol: Volume, centre_zyx: tuple[int, int, int], radius_mm: float) -> np.ndarray:
    z, y, x = np.indices(vol.shape_zyx)
    sz, sy, sx = vol.spacing_zyx
    c = centre_zyx
    return ((((z - c[0]) * sz) ** 2 + ((y - c[1]) * sy) ** 2 + ((x - c[2]) * sx) ** 2) <= radius_mm**2).astype(np.uint8)


def test_the_phantom_tumour_passes_without_warning(patients, tmp_path: Path):
    a, _ = patients
    case = load_case(*_write(tmp_path, a.ct, a.roi), config=CONFIG)
    assert case.warnings == ()


def test_both_lungs_as_roi_are_refused_from_the_mask_alone(patients, tmp_path: Path):
    a, _ = patients
    lungs = a.roi.with_array((a.tissue.array == TISSUE_LABELS["lung"]).astype(np.uint8))
    with pytest.raises(RoiPlausibilityError) as err:
        load_case(*_write(tmp_path, a.ct, lungs), config=CONFIG)
    message = str(err.value)
    assert "mL, far above a lung tumour's (at most 1000 mL" in message and "lung or organ mask" in message
    volume_ml = float(lungs.array.sum()) * float(np.prod(a.ct.spacing_xyz)) / 1000
    assert f"{volume_ml:.0f} mL" in message


def test_an_roi_too_large_for_a_worker_is_refused_before_the_work():
    # a 90 mm sphere (382 mL: a plausible volume) on a 0.7 × 0.7 × 1.5 mm grid
    n = int(4 / 3 * np.pi * 45**3 / (0.7 * 0.7 * 1.5))
    with pytest.raises(RoiPlausibilityError, match=rf"would need about \d+ MiB, more than the {WORKER_MEMORY_MIB:.0f} MiB"):
        check_roi_size(n_voxels=n, bbox_shape_zyx=(60, 129, 129), spacing_zyx=(1.5, 0.7, 0.7), target_spacing_mm=1.0)
    # a 35 mm tumour (the demo model's largest) passes without a word
    assert check_roi_size(n_voxels=int(4 / 3 * np.pi * 17.5**3 / 0.735), bbox_shape_zyx=(24, 50, 50),
                          spacing_zyx=(1.5, 0.7, 0.7), target_spacing_mm=1.0) == []


def test_a_mask_copied_onto_an_air_region_is_refused_with_its_composition(patients, tmp_path: Path):
    a, _ = patients
    outside = a.roi.with_array(_sphere(a.ct, (32, 8, 64), 12.0))  # in front of the chest: air
    with pytest.raises(RoiPlausibilityError, match=r"mostly air or aerated lung \(median -\d+ HU, \d+ % below -800 HU"):
        load_case(*_write(tmp_path, a.ct, outside), config=CONFIG)


def test_an_roi_in_the_mediastinum_is_not_in_or_against_the_lung(patients, tmp_path: Path):
    a, _ = patients
    soft = np.argwhere(a.tissue.array == TISSUE_LABELS["soft_tissue"])
    # the heart: soft tissue near the centre of the chest
    centre = soft[np.argmin(np.abs(soft - np.array(a.ct.shape_zyx) / 2).sum(axis=1))]
    heart = a.roi.with_array(_sphere(a.ct, tuple(int(c) for c in centre), 6.0))
    with pytest.raises(RoiPlausibilityError, match=r"not in or against the lung: only \d+ % of the 3 mm around it"):
        load_case(*_write(tmp_path, a.ct, heart), config=CONFIG)


def test_another_patients_mask_on_the_same_grid_is_not_scored_silently(patients, tmp_path: Path):
    a, b = patients
    # b's mask copied with a's header: its outline lies on a's lung, chest wall or mediastinum
    copied = a.roi.with_array(b.roi.array)
    with pytest.raises(RoiPlausibilityError, match=r"was the mask drawn on this CT\?"):
        load_case(*_write(tmp_path, a.ct, copied), config=CONFIG)


def test_another_patients_mask_on_another_grid(patients, tmp_path: Path):
    a, b = patients
    lo, hi = a.ct.physical_extent()
    # full overlap: b's mask stored on a 1 % coarser grid covering the same extent
    full = a.roi.with_array(b.roi.array, spacing_xyz=tuple(s * 1.01 for s in a.roi.spacing_xyz))
    ct_path, roi_path = _write(tmp_path, a.ct, full)
    with pytest.raises(GeometryError, match=r"not on the CT's voxel grid.*--allow-resample"):
        load_case(ct_path, roi_path, config=CONFIG)
    with pytest.raises(RoiPlausibilityError, match=r"was the mask drawn on this CT\?"):
        load_case(ct_path, roi_path, config=CONFIG, allow_resample=True)
    # partial overlap: the same mask moved by 40 % of the field of view
    shift = 0.4 * float(hi[0] - lo[0])
    partial = full.with_array(full.array, origin_xyz=(full.origin_xyz[0] + shift, *full.origin_xyz[1:]))
    with pytest.raises(GeometryError, match=r"only \d+ % of the mask's extent lies inside the CT"):
        load_case(*_write(tmp_path, a.ct, partial, "partial"), config=CONFIG, allow_resample=True)


def test_swapped_ct_and_mask_are_named_as_such(patients, tmp_path: Path):
    a, _ = patients
    ct_path, roi_path = _write(tmp_path, a.ct, a.roi)
    with pytest.raises(SwappedInputsError) as err:
        load_case(roi_path, ct_path, config=CONFIG)
    assert "were the CT and the ROI mask swapped?" in str(err.value)
    assert "RescaleSlope" not in str(err.value)
    with pytest.raises(SwappedInputsError, match=r"like a CT in Hounsfield units: were the CT and the ROI mask swapped"):
        load_case(ct_path, ct_path, config=CONFIG)


def test_two_separate_parts_are_scored_with_a_warning(patients):
    a, _ = patients
    second = a.roi.array | np.roll(a.roi.array, 40, axis=2)  # the same nodule again, 40 voxels away
    ct = a.ct.with_array(np.where(second > a.roi.array, 40, a.ct.array).astype(np.int16))  # a second nodule
    warnings = assess_roi(ct, a.roi.with_array(second))
    assert any("2 separate parts of similar size" in w for w in warnings), warnings


def test_shell_dilation_near_the_mask_equals_the_whole_array():
    """measure_roi dilates only the mask's box grown by the ball's reach: the same voxels as
    dilating the whole crop (random blobs and scattered voxels, anisotropic spacings)."""
    from scipy import ndimage as ndi

    from pipeline.inputs.roi_checks import SHELL_MM, _dilated_near

    rng = np.random.default_rng(1)
    for _ in range(120):
        shape = tuple(int(n) for n in rng.integers(1, 30, size=3))
        if rng.random() < 0.3:
            mask = rng.random(shape) < 0.02
        else:
            mask = ndi.gaussian_filter(rng.normal(size=shape), 2) > rng.uniform(0, 0.1)
        spacing = tuple(float(s) for s in rng.choice([0.5, 0.7, 1.0, 1.25, 2.5, 5.0], size=3))
        radius = [max(1, int(np.ceil(SHELL_MM / s))) for s in spacing]
        zz, yy, xx = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
        ball = (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= SHELL_MM ** 2
        assert np.array_equal(_dilated_near(mask, ball, radius), ndi.binary_dilation(mask, structure=ball))
