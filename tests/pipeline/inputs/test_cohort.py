"""Finding a batch's cases: every case id seen anywhere becomes exactly one CaseInput, in sorted
order, and a case that cannot be scored carries the reason in its own row."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.inputs.clinical import ClinicalValues
from pipeline.inputs.cohort import CaseInput, discover_cases
from pipeline.core.errors import CohortError
from pipeline.io.readers import read_image, write_image
from pipeline.core.volume import Volume

CLINICAL_HEADER = "case_id,CEA,CA125,age\n"


def _image(path: Path, value: int = 0) -> Path:
    return write_image(Volume(np.full((3, 4, 5), value, np.int16), spacing_xyz=(0.75, 0.75, 2.5)), path)


def _dicom_folder(folder: Path, n_slices: int = 3) -> Path:
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.99"
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to "C"
    for k in range(n_slices):
        image = sitk.GetImageFromArray(np.full((4, 5), -1000 + k, np.int16))
        for tag, value in {"0008|0060": "CT", "0020|000e": uid, "0008|0018": f"{uid}.{k + 1}",
                           "0020|0032": f"0\\0\\{2.5 * k}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0020|0013": str(k + 1), "0028|1052": "-1024", "0028|1053": "1"}.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k}.dcm"))
        writer.Execute(image)
    locale.setlocale(locale.LC_ALL, saved_locale)
    return folder


def _clinical(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "clinical.csv"
    path.write_text(CLINICAL_HEADER + rows)
    return path


def _by_id(cases: list[CaseInput]) -> dict[str, CaseInput]:
    ids = [c.case_id for c in cases]
    assert len(ids) == len(set(ids)), "a case id appears twice"
    assert ids == sorted(ids)
    return {c.case_id: c for c in cases}


def test_flat_folder(tmp_path: Path):
    src = tmp_path / "cases"
    for cid in ("P02", "P01", "P10"):
        _image(src / f"{cid}_ct.nii.gz")
        _image(src / f"{cid}_roi.nrrd")
    (src / "notes.txt").write_text("ignored")
    cases = discover_cases(src, clinical_csv=_clinical(tmp_path, "P01,3,12,67\nP02,4,20,70\nP10,5,30,80\n"))
    assert [c.case_id for c in cases] == ["P01", "P02", "P10"]
    p01 = cases[0]
    assert p01 == CaseInput("P01", str(src / "P01_ct.nii.gz"), str(src / "P01_roi.nrrd"), ClinicalValues(3.0, 12.0, 67.0))
    assert all(c.problem is None and c.problem_type is None for c in cases)


def test_one_folder_per_case_including_a_dicom_ct_folder(tmp_path: Path):
    src = tmp_path / "cases"
    _image(src / "A" / "ct.nrrd")
    _image(src / "A" / "roi.nii.gz")
    _dicom_folder(src / "B" / "ct")
    _image(src / "B" / "roi.nii.gz")
    (src / "empty_folder").mkdir()
    cases = _by_id(discover_cases(src, clinical_csv=_clinical(tmp_path, "A,1,2,50\nB,1,2,60\n")))
    assert set(cases) == {"A", "B"}
    assert cases["A"].ct_path == str(src / "A" / "ct.nrrd") and cases["A"].problem is None
    assert cases["B"].ct_path == str(src / "B" / "ct") and cases["B"].problem is None
    assert read_image(cases["B"].ct_path, role="CT").shape_zyx == (3, 4, 5)  # the folder is a usable CT


def test_every_kind_of_incomplete_case_becomes_one_row_with_its_problem(tmp_path: Path):
    src = tmp_path / "cases"
    _image(src / "ok_ct.nii.gz"), _image(src / "ok_roi.nii.gz")
    _image(src / "noclin_ct.nii.gz"), _image(src / "noclin_roi.nii.gz")
    _image(src / "noroi_ct.nii.gz")
    _image(src / "noct_roi.nii.gz")
    _image(src / "badlab_ct.nii.gz"), _image(src / "badlab_roi.nii.gz")
    clinical = _clinical(tmp_path, "ok,3,12,67\nnoroi,3,12,67\nnoct,3,12,67\nbadlab,abc,12,67\nghost,3,12,67\n")
    cases = _by_id(discover_cases(src, clinical_csv=clinical))
    assert list(cases) == ["badlab", "ghost", "noclin", "noct", "noroi", "ok"]
    problems = {cid: (c.problem, c.problem_type) for cid, c in cases.items()}
    assert problems["ok"] == (None, None)
    assert problems["noclin"] == ("no clinical values (CEA, CA125, age) for this case in the clinical CSV", "clinical")
    assert problems["noroi"] == ("no ROI mask found for this case", "cohort")
    assert problems["noct"] == ("no CT image found for this case", "cohort")
    assert problems["ghost"] == ("clinical CSV lists this case but no CT/ROI images were found for it", "cohort")
    assert problems["badlab"] == ("CEA must be a number in ng/mL (got 'abc')", "clinical")
    assert cases["ok"].clinical == ClinicalValues(3.0, 12.0, 67.0)
    assert cases["badlab"].clinical is None and cases["ghost"].ct_path is None


def test_manifest_with_relative_paths_and_clinical_columns(tmp_path: Path):
    _image(tmp_path / "img" / "a.nii.gz"), _image(tmp_path / "img" / "a_mask.nii.gz")
    _image(tmp_path / "img" / "b.nrrd")
    manifest = tmp_path / "lists" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "\ufeffCase_ID,CT_path,ROI_path,cea,CA125,Age\n"
        "A,../img/a.nii.gz,../img/a_mask.nii.gz,\"3,5\",12,67\n"
        "B,../img/b.nrrd,,1,2,50\n"
        "C,../img/a.nii.gz,../img/a_mask.nii.gz,1,2,\n",
        encoding="utf-8",
    )
    cases = _by_id(discover_cases(manifest))
    assert Path(cases["A"].ct_path).resolve() == (tmp_path / "img" / "a.nii.gz").resolve()
    assert Path(cases["A"].roi_path).resolve() == (tmp_path / "img" / "a_mask.nii.gz").resolve()
    assert cases["A"].clinical == ClinicalValues(3.5, 12.0, 67.0) and cases["A"].problem is None
    assert cases["B"].problem == "no ROI mask found for this case"
    assert cases["C"].problem == "age is missing; enter it in years" and cases["C"].problem_type == "clinical"


def test_manifest_with_separate_clinical_csv(tmp_path: Path):
    _image(tmp_path / "a_ct.nii.gz"), _image(tmp_path / "a_roi.nii.gz")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,ct_path,roi_path\nA,a_ct.nii.gz,a_roi.nii.gz\n")
    cases = discover_cases(manifest, clinical_csv=_clinical(tmp_path, "A,1,2,50\nZ,1,2,50\n"))
    assert [(c.case_id, c.problem_type) for c in cases] == [("A", None), ("Z", "cohort")]


def test_manifest_missing_columns(tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,ct\nA,a.nii.gz\n")
    with pytest.raises(CohortError, match=r"case manifest lacks column\(s\) ct_path, roi_path"):
        discover_cases(manifest)


def test_manifest_duplicate_and_empty_case_ids(tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,ct_path,roi_path\nA,a,b\nA,c,d\n")
    with pytest.raises(CohortError, match=r"case_id 'A' more than once"):
        discover_cases(manifest)
    manifest.write_text("case_id,ct_path,roi_path\nA,a,b\n,c,d\n")
    with pytest.raises(CohortError, match=r"line 3 has an empty case_id"):
        discover_cases(manifest)


def test_manifest_not_utf8(tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes("case_id,ct_path,roi_path\nMüller,a,b\n".encode("utf-16"))
    with pytest.raises(CohortError, match=r"case manifest is not UTF-8"):
        discover_cases(manifest)


def test_folder_without_clinical_csv_refused(tmp_path: Path):
    _image(tmp_path / "a_ct.nii.gz"), _image(tmp_path / "a_roi.nii.gz")
    with pytest.raises(CohortError, match=r"no clinical values: give --clinical"):
        discover_cases(tmp_path)


def test_missing_source_refused(tmp_path: Path):
    with pytest.raises(CohortError, match=r"folder of cases or a manifest \.csv"):
        discover_cases(tmp_path / "nowhere")


def test_empty_folder_and_empty_clinical_csv_refused(tmp_path: Path):
    src = tmp_path / "cases"
    src.mkdir()
    with pytest.raises(CohortError, match=r"no rows"):
        discover_cases(src, clinical_csv=_clinical(tmp_path, ""))


# ------------------------------------------------------------------------------------------------
# case discovery ambiguity (issue 15, item 4): two images for one role are refused in the row
def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_two_ct_files_for_one_case_are_refused_in_its_row(tmp_path: Path) -> None:
    for name in ("P1_ct.nii.gz", "P1_ct.nrrd", "P1_roi.nii.gz", "P2_ct.nii.gz", "P2_roi.nii.gz", "P2_roi.mha",
                 "P3_ct.nii.gz", "P3_roi.nii.gz"):
        _touch(tmp_path / "cases" / name)
    _touch(tmp_path / "cases" / "P4" / "ct.nii.gz")
    (tmp_path / "cases" / "P4" / "ct").mkdir()  # a DICOM folder and a file
    _touch(tmp_path / "cases" / "P4" / "roi.nii.gz")
    _touch(tmp_path / "cases" / "P3" / "ct.nii.gz")  # P3 both flat and as a folder
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("case_id,CEA,CA125,age\n" + "".join(f"P{i},3,10,60\n" for i in range(1, 5)))
    by_id = {c.case_id: c for c in discover_cases(tmp_path / "cases", clinical_csv=clinical)}
    assert by_id["P1"].problem == ("2 CT images found for this case (.nii.gz, .nrrd); it is unclear which one to use, "
                                   "keep only one")
    assert by_id["P2"].problem.startswith("2 ROI images found for this case (.mha, .nii.gz)")
    assert by_id["P3"].problem.startswith("2 CT images found")
    assert by_id["P4"].problem.startswith("2 CT images found for this case (.nii.gz, folder)")
    assert {c.problem_type for c in by_id.values()} == {"cohort"}
