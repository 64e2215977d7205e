"""``pleura score`` on DICOM: a CT folder holding its RTSTRUCT, an RTSTRUCT/SEG given as the ROI, a
zipped CT, clear errors, and ``--dicom-out`` (SEG + Comprehensive 3D SR + Encapsulated PDF) checked
with dciodvfy, pydicom and highdicom. Runs on a synthetic phantom written as DICOM (fast) and,
marked slow, on the shared LUNG1-001 planning export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline" / "io"))
from dicom_factory import phantom, write_ct_series, write_rtstruct, write_seg  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "weights" / "demo"
LUNG1 = REPO.parent / "shared" / "fixtures" / "real_ct" / "nsclc_lung1_001" / "dicom"
CLINICAL = ("--cea", "4", "--ca125", "18", "--age", "66")
PLEURA = [sys.executable, "-m", "pipeline.cli.main"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PLEURA, *args], capture_output=True, text=True, timeout=900, cwd=REPO)


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines dciodvfy reports for ``path`` (warnings are not errors)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed: bash scripts/setup.sh --dev installs it")
    out = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A phantom CT series with an rt-utils RTSTRUCT (GTV-1 and a block) in the same folder."""
    ph = phantom()
    root = tmp_path_factory.mktemp("export")
    case = write_ct_series(ph.ct, root / "ct")
    tumour = ph.roi.array.astype(np.uint8)
    box = np.zeros_like(tumour)
    box[20:30, 30:60, 30:60] = 1
    write_rtstruct(case, {"GTV-1": tumour, "Box": box}, root / "ct" / "rtstruct.dcm")
    return {"root": root, "case": case, "tumour": tumour}


def scored_mask(folder: Path, roi_name: str) -> np.ndarray:
    from pipeline.io.dicom_folder import choose_series, scan_dicom_folder, series_geometry
    from pipeline.io.dicom_roi import roi_mask

    inv = scan_dicom_folder(folder)
    series, _ = choose_series(inv)
    return roi_mask(inv.roi_files[0], series=series, grid=series_geometry(series), roi_name=roi_name).array


def check_outputs(out: Path, *, ct_folder: Path, mask: np.ndarray, probability: float) -> None:
    """Every object valid (dciodvfy), readable by highdicom/pydicom, in the CT's study, with the
    scored mask, the probability and only the CT's identifiers."""
    files = {p.name for p in out.iterdir()}
    assert files == {"seg.dcm", "sr.dcm", "report.dcm"}
    ct = pydicom.dcmread(next(p for p in sorted(ct_folder.iterdir()) if p.name != "rtstruct.dcm"),
                         stop_before_pixels=True)
    for name in files:
        assert dciodvfy_errors(out / name) == [], name
        ds = pydicom.dcmread(out / name)
        assert ds.StudyInstanceUID == ct.StudyInstanceUID and ds.SeriesInstanceUID != ct.SeriesInstanceUID
        assert ds.PatientID == ct.PatientID and "PatientComments" not in ds
    seg = hd.seg.segread(out / "seg.dcm")
    assert seg.SegmentationType == "BINARY"
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in
            sorted(ct_folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).get(
                "ImagePositionPatient", [0, 0, 1e9])[2])) if p.name != "rtstruct.dcm"]
    back = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1],
                                             assert_missing_frames_are_empty=True)[..., 0]
    assert np.array_equal(back, mask)  # SEG → mask round trip == the scored mask, voxel for voxel
    sr = hd.sr.srread(out / "sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 1 and groups[0].referenced_segment is not None
    values = {m.name.meaning: m.value for m in groups[0].get_measurements()}
    assert values["Probability of visceral pleural invasion"] == pytest.approx(probability, abs=1e-6)
    assert {"Diameter", "Volume", "Shortest tumour to pleura distance", "Tumour-pleura contact length",
            "Model operating threshold for VPI"} <= set(values)
    band = [q.value.meaning for q in groups[0].get_qualitative_evaluations()]
    assert len(band) == 1 and band[0].endswith("risk of visceral pleural invasion")
    assert "Research use" in str(sr)
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    meanings = {str(e.value) for e in sr.iterall() if e.keyword == "CodeMeaning"}
    assert "Applicability domain" in meanings and any(re.match(r"(in|out|unknown): ", x) for x in texts), texts
    refs = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
            for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert str(seg.SOPInstanceUID) in refs and set(uids) <= refs
    pdf = pydicom.dcmread(out / "report.dcm")
    assert pdf.MIMETypeOfEncapsulatedDocument == "application/pdf" and pdf.EncapsulatedDocument.startswith(b"%PDF")


def test_ct_folder_with_its_rtstruct_scores_and_writes_valid_dicom(export: dict, tmp_path: Path):
    ct_folder = export["case"].folder
    before = sorted(p.name for p in ct_folder.iterdir())
    out = tmp_path / "dicom-out"
    r = run("score", str(ct_folder), "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO), "--json",
            "--dicom-out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"note: CT: used series CT (UID {export['case'].series_uid}, 64 slices)" in r.stderr
    assert "note: ROI: RTSTRUCT ROI 'GTV-1' rasterised onto the CT" in r.stderr
    probability = json.loads(r.stdout)["probability"]
    assert sorted(p.name for p in ct_folder.iterdir()) == before  # nothing written into the input folder
    check_outputs(out, ct_folder=ct_folder, mask=scored_mask(ct_folder, "GTV-1"), probability=probability)

    # the same case given as a zip of the folder, and with the RTSTRUCT named as the ROI: same score
    archive = tmp_path / "ct.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in ct_folder.iterdir():
            zf.write(p, f"export/{p.name}")
    z = run("score", str(archive), "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO), "--json")
    assert z.returncode == 0, z.stderr
    assert json.loads(z.stdout)["probability"] == pytest.approx(probability, abs=1e-9)


def test_rtstruct_and_seg_given_as_the_roi(export: dict, tmp_path: Path, capsys: pytest.CaptureFixture):
    from pipeline.cli.main import main
    from pipeline.io.readers import write_image

    ct_only = tmp_path / "ct_only"
    ct_only.mkdir()
    for f in export["case"].files:
        (ct_only / f.name).symlink_to(f)
    seg = write_seg(export["case"], {"Tumour": export["tumour"]}, tmp_path / "seg.dcm")
    probability = {}
    for roi, extra in ((export["case"].folder / "rtstruct.dcm", ["--roi-name", "GTV-1"]), (seg, [])):
        assert main(["score", str(ct_only), str(roi), *extra, *CLINICAL, "--bundle", str(DEMO), "--json"]) == 0
        probability[roi.name] = json.loads(capsys.readouterr().out)["probability"]
    # the SEG holds the phantom's tumour mask exactly: same score as the NIfTI pair it came from
    ph = phantom()
    write_image(ph.ct, tmp_path / "ct.nii.gz")
    write_image(ph.roi, tmp_path / "roi.nii.gz")
    assert main(["score", str(tmp_path / "ct.nii.gz"), str(tmp_path / "roi.nii.gz"), *CLINICAL,
                 "--bundle", str(DEMO), "--json"]) == 0
    assert probability["seg.dcm"] == pytest.approx(json.loads(capsys.readouterr().out)["probability"], abs=1e-6)
    assert 0 <= probability["rtstruct.dcm"] <= 1


@pytest.mark.parametrize("args,message", [
    (["--roi-name", "Tumour"], "error: the ROI structure set (RTSTRUCT) has no ROI named 'Tumour'; its volume ROIs "
                               "are: 'GTV-1', 'Box'"),
    ([], "error: the ROI structure set (RTSTRUCT) holds 2 volume ROIs; choose one with --roi-name"),
    (["--series", "1.2.3", "--roi-name", "GTV-1"], "error: CT: the folder holds no image series with UID 1.2.3"),
])
def test_clear_errors(export: dict, args: list[str], message: str, capsys: pytest.CaptureFixture):
    from pipeline.cli.main import main

    assert main(["score", str(export["case"].folder), *args, *CLINICAL, "--bundle", str(DEMO)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "rtstruct.dcm" not in err


def test_dicom_out_inside_the_input_folder_is_refused(export: dict, capsys: pytest.CaptureFixture):
    from pipeline.cli.main import main

    folder = export["case"].folder
    assert main(["score", str(folder), "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO),
                 "--dicom-out", str(folder / "out")]) == 2
    assert "--dicom-out must not be inside an input folder" in capsys.readouterr().err
    assert not (folder / "out").exists()


def test_batch_with_rtstruct_seg_and_a_broken_case(export: dict, tmp_path: Path):
    """Per-case folders: A's CT folder holds its RTSTRUCT, B has a SEG beside its CT folder, C's
    structure set lacks the ROI: A and B scored with DICOM output, C's row says why."""
    src = tmp_path / "cases"
    shutil.copytree(export["case"].folder, src / "A" / "ct")
    (src / "B").mkdir()
    (src / "B" / "ct").mkdir()
    for f in export["case"].files:
        (src / "B" / "ct" / f.name).symlink_to(f)
    write_seg(export["case"], {"GTV-1": export["tumour"]}, src / "B" / "tumour.dcm")
    shutil.copytree(export["case"].folder, src / "C" / "ct")
    write_rtstruct(export["case"], {"Box": export["tumour"]}, src / "C" / "ct" / "rtstruct.dcm")
    (tmp_path / "clinical.csv").write_text("case_id,CEA,CA125,age\nA,4,18,66\nB,4,18,66\nC,4,18,66\n")
    out = tmp_path / "dicom-out"
    r = run("batch", str(src), "--clinical", str(tmp_path / "clinical.csv"), "--out", str(tmp_path / "res.csv"),
            "--roi-name", "GTV-1", "--dicom-out", str(out), "--bundle", str(DEMO), "--quiet")
    assert r.returncode == 1, r.stderr  # one case failed
    rows = {row["case_id"]: row for row in __import__("csv").DictReader((tmp_path / "res.csv").open())}
    assert rows["A"]["status"] == rows["B"]["status"] == "ok"
    assert rows["C"]["status"] == "error" and "has no ROI named 'GTV-1'; its volume ROIs are: 'Box'" in rows["C"]["error"]
    for cid in ("A", "B"):
        assert {p.name for p in (out / cid).iterdir()} == {"seg.dcm", "sr.dcm", "report.dcm"}
    assert not (out / "C").exists()


def test_features_cohort_with_roi_name(export: dict, tmp_path: Path):
    """``pleura features``: a cohort row may give the CT's DICOM folder and an roi_name (roi_path
    empty); a wrong name fails in its own row."""
    import pandas as pd

    from pipeline.cli.main import main

    folder = export["case"].folder
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("case_id,ct_path,roi_path,roi_name,CEA,CA125,age,label\n"
                      f"good,{folder},,GTV-1,4,18,66,1\nwrong,{folder},,Tumour,4,18,66,0\n")
    assert main(["features", str(cohort), "--out", str(tmp_path / "f.parquet"), "--quiet", "--workers", "1"]) == 1
    table = pd.read_parquet(tmp_path / "f.parquet").set_index("case_id")
    assert table.loc["good", "status"] == "ok" and table.loc["good", "tumour_volume_mm3"] > 0
    assert "has no ROI named 'Tumour'; its volume ROIs are: 'GTV-1', 'Box'" in table.loc["wrong", "error"]


@pytest.mark.slow
def test_lung1_rtstruct_agrees_with_an_independent_rasteriser(tmp_path: Path):
    """LUNG1-001: scoring the folder with --roi-name GTV-1 agrees within 0.02 with scoring a NIfTI
    mask made by rt-utils (OpenCV fillPoly); outputs validate."""
    if not LUNG1.is_dir():
        pytest.skip("../shared/fixtures/real_ct/nsclc_lung1_001 is not present")
    sys.path.insert(0, str(REPO / "bench"))
    from rtstruct_rasterisers import repointed_rtstruct, rt_utils_mask

    from pipeline.io.dicom_folder import choose_series, scan_dicom_folder, series_geometry
    from pipeline.io.readers import read_image, write_image

    out = tmp_path / "out"
    r = run("score", str(LUNG1), "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO), "--json",
            "--dicom-out", str(out))
    assert r.returncode == 0, r.stderr
    p_rtstruct = json.loads(r.stdout)["probability"]

    inv = scan_dicom_folder(LUNG1)
    series, _ = choose_series(inv)
    grid = series_geometry(series)
    # rt-utils matches contours to slices by per-contour SOP references, which this anonymised export
    # left pointing at the original UIDs: re-point them (by z) in a copy, then let rt-utils rasterise
    other = rt_utils_mask(series, repointed_rtstruct(inv.structure_sets[0], series, grid, tmp_path / "rs.dcm"), "GTV-1")
    ct = read_image(LUNG1, role="CT")
    write_image(ct, tmp_path / "ct.nii.gz")
    write_image(ct.with_array(other), tmp_path / "gtv_rtutils.nii.gz")
    n = run("score", str(tmp_path / "ct.nii.gz"), str(tmp_path / "gtv_rtutils.nii.gz"), *CLINICAL,
            "--bundle", str(DEMO), "--json")
    assert n.returncode == 0, n.stderr
    assert json.loads(n.stdout)["probability"] == pytest.approx(p_rtstruct, abs=0.02)
    for name in ("seg.dcm", "sr.dcm", "report.dcm"):
        assert dciodvfy_errors(out / name) == [], name
