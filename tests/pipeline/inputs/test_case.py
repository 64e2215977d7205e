"""load_case: a tiny chest CT + ROI on disk → validated crops, content hashes and user warnings."""

from __future__ import annotations

import hashlib
import locale
from pathlib import Path

import numpy as np
import pytest

from pipeline.inputs.case import load_case
from pipeline.core.config import PipelineConfig, PreprocessConfig, ValidationConfig
from pipeline.core.errors import GeometryError, ImageReadError, ImageTooLargeError, IntensityError, MaskError
from pipeline.io.readers import read_image, write_image
from pipeline.core.volume import Volume

SPACING = (0.75, 0.75, 2.5)
ORIGIN = (-18.0, -18.0, -30.0)
SMALL_CROP = PipelineConfig(preprocess=PreprocessConfig(crop_margin_mm=3.0, crop_min_margin_voxels=1),
                            feature_groups=("deep", "radiomics", "clinical"))


def _chest(tmp_path: Path, *, tumour_zyx: tuple[int, int, int] = (12, 24, 24), roi_suffix: str = ".nii.gz",
           roi_labels: int = 1) -> tuple[Path, Path, np.ndarray]:
    """Writes a 24×48×48 int16 chest (air −1000, body 40, lung −850, 40 HU tumour sphere of
    radius 5 mm at ``tumour_zyx``) and its uint8 ROI; returns both paths and the ROI array."""
    shape = (24, 48, 48)
    zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    z, y, x = (zz - 12) * SPACING[2], (yy - 24) * SPACING[1], (xx - 24) * SPACING[0]
    ct = np.full(shape, -1000, np.int16)
    ct[(y / 16) ** 2 + (x / 16) ** 2 < 1] = 40
    ct[(y / 12) ** 2 + (x / 12) ** 2 + (z / 25) ** 2 < 1] = -850
    tz, ty, tx = tumour_zyx
    tumour = ((zz - tz) * SPACING[2]) ** 2 + ((yy - ty) * SPACING[1]) ** 2 + ((xx - tx) * SPACING[0]) ** 2 <= 25.0
    ct[tumour] = 40
    roi = tumour.astype(np.uint8)
    if roi_labels == 2:  # a second structure labelled 2 (e.g. a lymph node) far from the tumour
        roi[2:4, 30:33, 30:33] = 2
    geometry = dict(spacing_xyz=SPACING, origin_xyz=ORIGIN)
    ct_path = write_image(Volume(ct, **geometry), tmp_path / "ct.nii.gz")
    roi_path = write_image(Volume(roi, **geometry), tmp_path / f"roi{roi_suffix}")
    return ct_path, roi_path, roi


def test_happy_path_returns_crops_hashes_and_geometry(tmp_path: Path):
    ct_path, roi_path, roi = _chest(tmp_path)
    case = load_case(ct_path, roi_path, config=SMALL_CROP)
    assert case.warnings == ()
    assert case.ct_sha256 == hashlib.sha256(ct_path.read_bytes()).hexdigest()
    assert case.roi_sha256 == hashlib.sha256(roi_path.read_bytes()).hexdigest()
    assert case.ct_shape_zyx == (24, 48, 48) and case.ct_spacing_xyz == SPACING
    assert case.roi_voxels == int(roi.sum()) == int(case.roi_crop.array.sum())
    assert case.ct_crop.shape_zyx == case.roi_crop.shape_zyx
    assert case.crop.margin_voxels_zyx == (2, 4, 4) and not case.crop.clipped_at_border
    assert case.ct_crop.shape_zyx == (9, 21, 21)  # tumour 5 × 13 × 13 voxels + margins
    assert case.roi_crop.array.dtype == np.uint8 and set(np.unique(case.roi_crop.array)) == {0, 1}
    assert np.all(case.ct_crop.array[case.roi_crop.array == 1] == 40)
    start = np.asarray(case.crop.start_zyx, float)
    np.testing.assert_allclose(case.ct_crop.origin_xyz, np.asarray(ORIGIN) + start[::-1] * np.asarray(SPACING))
    assert case.ct_full is None and case.roi_full is None


def test_default_config_crop_is_clipped_on_a_tiny_chest(tmp_path: Path):
    ct_path, roi_path, _ = _chest(tmp_path)
    case = load_case(ct_path, roi_path, config=PipelineConfig(), keep_full=True, hash_inputs=False)
    assert case.crop.clipped_at_border and case.ct_crop.shape_zyx == (24, 48, 48)
    assert case.ct_sha256 == case.roi_sha256 == ""
    assert case.ct_full is not None and case.ct_full.shape_zyx == (24, 48, 48)
    assert case.roi_full is not None and case.roi_full.array.dtype == np.uint8


def test_mask_on_another_grid_refused_by_default_resampled_when_allowed(tmp_path: Path):
    ct_path, _, roi = _chest(tmp_path)
    # the same ROI saved with 1 % larger in-plane spacing: overlapping but different geometry
    shifted = Volume(roi, spacing_xyz=(0.7575, 0.7575, 2.5), origin_xyz=ORIGIN)
    roi_path = write_image(shifted, tmp_path / "roi_resampled.nrrd")
    with pytest.raises(GeometryError, match=r"spacing \(0.7575, 0.7575, 2.5\) vs CT \(0.75, 0.75, 2.5\) mm.*--allow-resample"):
        load_case(ct_path, roi_path, config=SMALL_CROP)
    case = load_case(ct_path, roi_path, config=SMALL_CROP, allow_resample=True)
    assert len(case.warnings) == 1
    assert "spacing (0.7575, 0.7575, 2.5) vs CT (0.75, 0.75, 2.5) mm" in case.warnings[0]
    assert "resampled onto the CT grid" in case.warnings[0]
    assert case.roi_voxels == pytest.approx(roi.sum(), rel=0.1)


def test_roi_touching_the_volume_edge_warns(tmp_path: Path):
    ct_path, roi_path, _ = _chest(tmp_path, tumour_zyx=(1, 24, 24))
    case = load_case(ct_path, roi_path, config=SMALL_CROP)
    assert any("touches the edge of the CT volume" in w for w in case.warnings)
    assert case.crop.clipped_at_border


def test_label_choice_passes_through(tmp_path: Path):
    ct_path, roi_path, roi = _chest(tmp_path, roi_labels=2)
    with pytest.raises(MaskError, match=r"2 labels \(1, 2\)"):
        load_case(ct_path, roi_path, config=SMALL_CROP)
    case = load_case(ct_path, roi_path, config=SMALL_CROP, label=1)
    assert case.roi_voxels == int((roi == 1).sum())


def test_dicom_ct_folder_with_nifti_roi(tmp_path: Path):
    import SimpleITK as sitk

    ct_path, roi_path, roi = _chest(tmp_path)
    ct = read_image(ct_path)
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.5"
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to "C"
    for k in range(ct.shape_zyx[0]):
        image = sitk.GetImageFromArray(ct.array[k])
        image.SetSpacing(SPACING[:2])
        for tag, value in {"0008|0060": "CT", "0020|000e": uid, "0008|0018": f"{uid}.{k + 1}",
                           "0020|0032": f"{ORIGIN[0]}\\{ORIGIN[1]}\\{ORIGIN[2] + 2.5 * k}",
                           "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0013": str(k + 1),
                           "0028|1052": "-1024", "0028|1053": "1"}.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(image)
    locale.setlocale(locale.LC_ALL, saved_locale)
    case = load_case(folder, roi_path, config=SMALL_CROP)
    assert case.warnings == ()
    assert case.roi_voxels == int(roi.sum())
    assert len(case.ct_sha256) == 64 and case.ct_sha256 == load_case(folder, roi_path, config=SMALL_CROP).ct_sha256


def test_errors_surface_in_order(tmp_path: Path):
    ct_path, roi_path, _ = _chest(tmp_path)
    with pytest.raises(ImageReadError, match=r"^ROI mask file not found"):
        load_case(ct_path, tmp_path / "missing.nii.gz", config=SMALL_CROP)
    tiny_limit = PipelineConfig(validation=ValidationConfig(max_voxels=1000))
    with pytest.raises(ImageTooLargeError, match=r"^CT declares"):
        load_case(ct_path, roi_path, config=tiny_limit)
    raw = read_image(ct_path)
    raw_path = write_image(raw.with_array((raw.array + 1024).astype(np.int16)), tmp_path / "raw.nii.gz")
    with pytest.raises(IntensityError, match=r"raw scanner values"):
        load_case(raw_path, roi_path, config=SMALL_CROP)
    empty_path = write_image(raw.with_array(np.zeros(raw.shape_zyx, np.uint8)), tmp_path / "empty.nii.gz")
    with pytest.raises(MaskError, match=r"empty"):
        load_case(ct_path, empty_path, config=SMALL_CROP)


def test_settings_load_after_the_process_switched_to_the_c_locale(tmp_path: Path):
    # GDCM's DICOM writer sets the process locale to "C" (ASCII): packaged text must still load
    saved = locale.setlocale(locale.LC_ALL)
    try:
        locale.setlocale(locale.LC_ALL, "C")
        config = PipelineConfig()
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert "featureClass" in config.radiomics.params_yaml
    assert not config.radiomics.params_yaml.isascii()  # the file holds UTF-8 text (e.g. "≥")


# --- the streamed path (NIfTI pairs on one grid): same case, whole volumes never held --------

from pipeline.inputs.case import _load_streamed  # noqa: E402


def _same_case(a, b) -> None:  # noqa: ANN001
    for name in ("ct_crop", "roi_crop"):
        va, vb = getattr(a, name), getattr(b, name)
        assert va.array.dtype == vb.array.dtype and np.array_equal(va.array, vb.array)
        assert (va.spacing_xyz, va.origin_xyz, va.direction) == (vb.spacing_xyz, vb.origin_xyz, vb.direction)
    assert (a.crop, a.warnings, a.ct_sha256, a.roi_sha256, a.roi_voxels, a.ct_shape_zyx, a.ct_spacing_xyz) == (
        b.crop, b.warnings, b.ct_sha256, b.roi_sha256, b.roi_voxels, b.ct_shape_zyx, b.ct_spacing_xyz)


@pytest.mark.parametrize("kind", ["centre", "edge", "two_labels", "plain_nii_roi", "default_margin"])
def test_streamed_case_equals_the_general_path(tmp_path: Path, kind: str):
    """keep_full=True always takes the general path (whole volumes): the streamed case is identical."""
    ct_path, roi_path, roi = _chest(tmp_path, tumour_zyx=(1, 24, 24) if kind == "edge" else (12, 24, 24),
                                    roi_labels=2 if kind == "two_labels" else 1,
                                    roi_suffix=".nii" if kind == "plain_nii_roi" else ".nii.gz")
    config = PipelineConfig() if kind == "default_margin" else SMALL_CROP
    label = 1 if kind == "two_labels" else None
    streamed = _load_streamed(ct_path, roi_path, config=config, label=label, hash_inputs=True)
    assert streamed is not None and streamed.ct_full is None
    general = load_case(ct_path, roi_path, config=config, label=label, keep_full=True)
    _same_case(streamed, general)
    _same_case(load_case(ct_path, roi_path, config=config, label=label), general)
    assert np.array_equal(general.roi_full.array, (roi == 1).astype(np.uint8))  # pasted from the box


def test_cases_the_streamed_path_leaves_to_the_general_one(tmp_path: Path):
    """A mask on another grid, an empty or ambiguous mask, another format: the general path
    answers (warnings and errors as documented, CT errors first)."""
    ct_path, roi_path, roi = _chest(tmp_path, roi_labels=2)
    ok_roi = write_image(Volume(roi.clip(0, 1), spacing_xyz=SPACING, origin_xyz=ORIGIN), tmp_path / "ok.nii.gz")
    other_grid = write_image(Volume(roi.clip(0, 1), spacing_xyz=(0.7575, 0.7575, 2.5), origin_xyz=ORIGIN),
                             tmp_path / "other.nii.gz")
    empty = write_image(Volume(np.zeros_like(roi), spacing_xyz=SPACING, origin_xyz=ORIGIN), tmp_path / "empty.nii.gz")
    nrrd_roi = write_image(Volume(roi.clip(0, 1), spacing_xyz=SPACING, origin_xyz=ORIGIN), tmp_path / "roi.nrrd")
    for mask in (other_grid, empty, roi_path, nrrd_roi, tmp_path / "missing.nii.gz"):
        assert _load_streamed(ct_path, mask, config=SMALL_CROP, label=None, hash_inputs=True) is None
    assert _load_streamed(ct_path, ok_roi, config=SMALL_CROP, label=None, hash_inputs=True) is not None
    # a raw-scanner CT with an empty mask: the CT's problem is still the one reported
    raw = read_image(ct_path)
    raw_path = write_image(raw.with_array((raw.array + 1024).astype(np.int16)), tmp_path / "raw.nii.gz")
    with pytest.raises(IntensityError, match="raw scanner values"):
        load_case(raw_path, empty, config=SMALL_CROP)
    with pytest.raises(IntensityError, match="raw scanner values"):
        load_case(raw_path, ok_roi, config=SMALL_CROP)  # streamed: the summary sees the whole CT
