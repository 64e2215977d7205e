"""RTSTRUCT / SEG ROIs on the CT grid, and DICOM folder handling, on real DICOM files: a phantom
written as a CT series with an rt-utils RTSTRUCT and highdicom SEGs, and the shared LUNG1-001
planning export (CT + RTSTRUCT + RTPLAN + RTDOSE in one folder) when present."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from pipeline.core.errors import DicomError, InputError, MaskError
from pipeline.io.dicom_folder import choose_series, scan_dicom_folder, series_geometry
from pipeline.io.dicom_roi import roi_mask, roi_names, rtstruct_mask, seg_mask

from dicom_factory import phantom, write_ct_series, write_rtstruct, write_seg

LUNG1 = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "real_ct" / "nsclc_lung1_001" / "dicom"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a > 0, b > 0).sum() / ((a > 0).sum() + (b > 0).sum()))


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A phantom CT series with an RTSTRUCT (GTV-1 = the phantom tumour, 'Box' = a block)
    inside its folder, and the phantom objects."""
    ph = phantom()
    root = tmp_path_factory.mktemp("dicom_case")
    case = write_ct_series(ph.ct, root / "export")
    tumour = ph.roi.array.astype(np.uint8)
    box = np.zeros_like(tumour)
    box[20:30, 30:60, 30:60] = 1
    write_rtstruct(case, {"GTV-1": tumour, "Box": box}, root / "export" / "rtstruct.dcm")
    return case, ph, tumour, box


def _series(folder: Path):  # noqa: ANN202
    inv = scan_dicom_folder(folder)
    series, _ = choose_series(inv)
    return inv, series, series_geometry(series)


def test_rtstruct_gtv_matches_the_mask_it_was_drawn_from(dicom_case):
    case, ph, tumour, _box = dicom_case
    inv, series, grid = _series(case.folder)
    assert len(inv.structure_sets) == 1 and roi_names(inv.structure_sets[0]) == ["GTV-1", "Box"]
    mask = rtstruct_mask(inv.structure_sets[0], series=series, grid=grid, roi_name="GTV-1")
    assert mask.shape_zyx == tumour.shape
    np.testing.assert_allclose(mask.origin_xyz, ph.ct.origin_xyz, atol=1e-3)
    np.testing.assert_allclose(mask.spacing_xyz, ph.ct.spacing_xyz, rtol=1e-4)
    # rt-utils puts the contour through the centres of the boundary voxels; a voxel centre exactly on
    # the polygon may fall either side, so only the in-plane boundary ring may differ
    interior = ndimage.binary_erosion(tumour, structure=np.ones((1, 3, 3)))
    assert not np.logical_and(mask.array > 0, tumour == 0).any()
    assert np.array_equal(mask.array[interior], np.ones(int(interior.sum()), np.uint8))
    assert dice(mask.array, tumour) > 0.8


def test_box_roi_and_case_insensitive_name(dicom_case):
    case, _ph, _tumour, box = dicom_case
    inv, series, grid = _series(case.folder)
    mask = rtstruct_mask(inv.structure_sets[0], series=series, grid=grid, roi_name="box")
    inner = np.zeros_like(box)
    inner[20:30, 31:59, 31:59] = 1  # the block minus its in-plane boundary ring
    assert np.array_equal(mask.array & inner, inner) and not (mask.array & (1 - box)).any()


def test_holes_and_several_islands_per_slice(dicom_case, tmp_path: Path):
    """A ring (outer contour + inner contour on the same slice) keeps its hole; two separate
    islands on one slice both count (contours on a slice combine by exclusive or)."""
    case, *_ = dicom_case
    ring = np.zeros((64, 128, 128), np.uint8)
    ring[30:33, 40:80, 40:80] = 1
    ring[30:33, 52:68, 52:68] = 0
    islands = np.zeros_like(ring)
    islands[10:12, 20:30, 20:30] = 1
    islands[10:12, 60:75, 90:110] = 1
    path = write_rtstruct(case, {"Ring": ring, "Islands": islands}, tmp_path / "shapes.dcm")
    _, series, grid = _series(case.folder)
    got = rtstruct_mask(path, series=series, grid=grid, roi_name="Ring").array
    hole = np.zeros_like(ring)
    hole[30:33, 53:67, 53:67] = 1  # the hole minus its boundary ring (the inner contour runs through it)
    assert not (got & hole).any() and got[31, 45, 45] == 1 and got[31, 60, 45] == 1
    assert not (got & (1 - ring)).any() and got.sum() > 0.8 * ring.sum()
    got = rtstruct_mask(path, series=series, grid=grid, roi_name="Islands").array
    assert got[10, 25, 25] == 1 and got[11, 67, 100] == 1 and not (got & (1 - islands)).any()


def test_missing_roi_name_lists_the_volume_rois(dicom_case):
    case, *_ = dicom_case
    inv, series, grid = _series(case.folder)
    with pytest.raises(MaskError, match=r"has no ROI named 'Tumour'; its volume ROIs are: 'GTV-1', 'Box'"):
        rtstruct_mask(inv.structure_sets[0], series=series, grid=grid, roi_name="Tumour")
    with pytest.raises(MaskError, match="holds 2 volume ROIs; choose one with --roi-name"):
        rtstruct_mask(inv.structure_sets[0], series=series, grid=grid)


def _edited_rtstruct(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    ds = pydicom.dcmread(src)
    edit(ds)
    ds.save_as(dst)
    return dst


def test_contours_outside_the_ct_or_off_its_slices_are_refused(dicom_case, tmp_path: Path):
    case, *_ = dicom_case
    inv, series, grid = _series(case.folder)

    def shift(dx: float, dz: float):  # noqa: ANN202
        def edit(ds) -> None:  # noqa: ANN001
            for c in ds.ROIContourSequence[0].ContourSequence:
                p = np.asarray(c.ContourData, float).reshape(-1, 3) + [dx, 0, dz]
                c.ContourData = [f"{v:.3f}" for v in p.ravel()]
        return edit

    outside = _edited_rtstruct(inv.structure_sets[0], tmp_path / "out.dcm", shift(400.0, 0.0))
    with pytest.raises(DicomError, match="has contours outside the CT"):
        rtstruct_mask(outside, series=series, grid=grid, roi_name="GTV-1")
    off_plane = _edited_rtstruct(inv.structure_sets[0], tmp_path / "off.dcm", shift(0.0, grid.spacing_xyz[2] / 2))
    with pytest.raises(DicomError, match="do not lie on the CT's slice planes"):
        rtstruct_mask(off_plane, series=series, grid=grid, roi_name="GTV-1")


def test_empty_roi_is_refused(dicom_case, tmp_path: Path):
    case, *_ = dicom_case
    inv, series, grid = _series(case.folder)

    def empty(ds) -> None:  # noqa: ANN001
        del ds.ROIContourSequence[0].ContourSequence

    path = _edited_rtstruct(inv.structure_sets[0], tmp_path / "empty.dcm", empty)
    assert roi_names(path) == ["Box"]  # an ROI without contours is not offered
    with pytest.raises(MaskError, match="'GTV-1' is a point or marker, not a volume"):
        rtstruct_mask(path, series=series, grid=grid, roi_name="GTV-1")


def test_structure_set_of_another_series_is_refused_saying_what_differs(dicom_case, tmp_path: Path):
    case, ph, tumour, _box = dicom_case
    other = write_ct_series(ph.ct, tmp_path / "other", study_uid=case.study_uid)  # same images, new series + frame
    _, series, grid = _series(other.folder)
    rs = case.folder / "rtstruct.dcm"
    with pytest.raises(DicomError, match=f"frame of reference .* differs from the CT's {other.frame_uid}"):
        rtstruct_mask(rs, series=series, grid=grid, roi_name="GTV-1")
    same_frame = write_ct_series(ph.ct, tmp_path / "same_frame", study_uid=case.study_uid, frame_uid=case.frame_uid)
    _, series, grid = _series(same_frame.folder)
    with pytest.raises(DicomError, match=f"drawn on series {case.series_uid}, not on the CT series "
                                         f"{same_frame.series_uid}"):
        rtstruct_mask(rs, series=series, grid=grid, roi_name="GTV-1")


def test_truncated_and_non_dicom_files_named_dcm(dicom_case, tmp_path: Path):
    case, *_ = dicom_case
    _, series, grid = _series(case.folder)
    data = (case.folder / "rtstruct.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.dcm").write_text("patient notes, not DICOM\n")
    with pytest.raises(DicomError, match=r"the ROI structure set \(RTSTRUCT\) is a damaged DICOM file \(element"):
        roi_mask(tmp_path / "cut.dcm", series=series, grid=grid, roi_name="GTV-1")
    with pytest.raises(DicomError, match=r"the ROI \(RTSTRUCT or SEG\) is not a DICOM file"):
        roi_mask(tmp_path / "text.dcm", series=series, grid=grid, roi_name="GTV-1")


def test_seg_segment_is_placed_exactly(dicom_case, tmp_path: Path):
    case, _ph, tumour, box = dicom_case
    _, series, grid = _series(case.folder)
    path = write_seg(case, {"Tumour": tumour, "Block": box}, tmp_path / "seg.dcm")
    assert roi_names(path) == ["Tumour", "Block"]
    assert np.array_equal(seg_mask(path, series=series, grid=grid, roi_name="Tumour").array, tumour)
    assert np.array_equal(roi_mask(path, series=series, grid=grid, roi_name="Block").array, box)
    with pytest.raises(MaskError, match="has no ROI named 'GTV'; its volume ROIs are: 'Tumour', 'Block'"):
        seg_mask(path, series=series, grid=grid, roi_name="GTV")


def test_seg_with_overlapping_segments_and_fractional_seg(dicom_case, tmp_path: Path):
    case, _ph, tumour, _box = dicom_case
    _, series, grid = _series(case.folder)
    grown = tumour.copy()
    grown[:, :, 1:] |= tumour[:, :, :-1]
    overlapping = write_seg(case, {"Tumour": tumour, "Tumour+1": grown}, tmp_path / "overlap.dcm")
    with pytest.raises(MaskError, match="overlapping segments .* choose the tumour segment with --roi-name"):
        roi_mask(overlapping, series=series, grid=grid)
    assert np.array_equal(roi_mask(overlapping, series=series, grid=grid, roi_name="Tumour").array, tumour)
    fractional = write_seg(case, {"Tumour": tumour}, tmp_path / "fractional.dcm", fractional=True)
    with pytest.raises(MaskError, match="is FRACTIONAL"):
        roi_mask(fractional, series=series, grid=grid, roi_name="Tumour")


def test_several_series_the_choice_is_named_and_can_be_overridden(dicom_case, tmp_path: Path):
    case, ph, *_ = dicom_case
    folder = tmp_path / "two"
    shutil.copytree(case.folder, folder)
    half = ph.ct.with_array(ph.ct.array[::2].copy(), spacing_xyz=(*ph.ct.spacing_xyz[:2], ph.ct.spacing_xyz[2] * 2))
    thick = write_ct_series(half, folder, study_uid=case.study_uid, description="thick", prefix="thick")
    inv = scan_dicom_folder(folder)
    series, note = choose_series(inv)
    assert series.series_uid == case.series_uid  # the one the RTSTRUCT references
    assert f"UID {case.series_uid}, 64 slices" in note and f"UID {thick.series_uid}, 32 slices" in note
    assert "--series UID" in note
    chosen, _ = choose_series(inv, series_uid=thick.series_uid)
    assert chosen.n_slices == 32
    with pytest.raises(DicomError, match="no image series with UID 1.2.3; it holds: CT \\(UID"):
        choose_series(inv, series_uid="1.2.3")


@pytest.fixture(scope="module")
def lung1() -> Path:
    if not LUNG1.is_dir():
        pytest.skip("../shared/fixtures/real_ct/nsclc_lung1_001 is not present")
    return LUNG1


def test_planning_export_ct_found_rtplan_rtdose_skipped(lung1: Path):
    inv = scan_dicom_folder(lung1)
    series, note = choose_series(inv)
    assert series.n_slices == 134 and series.modality == "CT"
    assert "1 RTDOSE (RT Dose Storage) object skipped" in note and "1 RTPLAN (RT Plan Storage) object skipped" in note
    names = roi_names(inv.structure_sets[0])
    assert names[:2] == ["Patient", "GTV-1"] and "Lung L" in names and "I1" not in names and "Isocenter 6" not in names


def test_planning_export_gtv_volume_and_point_roi(lung1: Path):
    inv, series, grid = _series(lung1)
    rs = inv.structure_sets[0]
    gtv = rtstruct_mask(rs, series=series, grid=grid, roi_name="GTV-1")
    assert gtv.array.sum() * np.prod(grid.spacing_xyz) / 1000 == pytest.approx(155.8, abs=0.3)  # README: ≈ 155.8 mL
    with pytest.raises(MaskError, match="ROI 'I1' is a point or marker, not a volume; choose a volume ROI "
                                        r"\('Patient', 'GTV-1'"):
        rtstruct_mask(rs, series=series, grid=grid, roi_name="I1")


def test_errors_are_input_errors():
    assert issubclass(DicomError, InputError) and issubclass(MaskError, InputError)
