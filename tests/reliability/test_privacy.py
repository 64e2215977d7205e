"""No patient identifier ever leaves the pipeline: not in output, results, journal or audit log.

A DICOM CT series is written carrying a (fake) PatientName, PatientID and birth date, in a
folder — next to a ROI file — whose names also carry them. It is scored through ``pleura score
--json``, through ``pleura batch`` (a manifest with neutral case ids, the progress bar on, plus
two cases that fail inside identifiable folders) and in-process with the :class:`Scorer` (and
the app's ``run_prediction``, which writes the audit line and the report JSON). None of the
identifiers, nor the folder or file names, may appear in stdout, stderr, the JSON, the results
CSV, the journal or the audit JSONL (``$PLEURA_AUDIT_LOG``).
"""

from __future__ import annotations

import csv
import json
import locale
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.inputs.clinical import parse_clinical
from pipeline.io.readers import read_image, write_image

REPO = Path(__file__).resolve().parents[2]
PATIENT_NAME, PATIENT_ID, BIRTH_DATE = "DOE^JANE^FAKE", "FAKE-ID-123", "19520101"
CASE_FOLDER = f"{PATIENT_NAME}_{PATIENT_ID}_{BIRTH_DATE}"
ROI_NAME = f"{PATIENT_NAME}_roi.nii.gz"
# Every string that must never be shown or stored (checked case-sensitively; the date also as ISO).
SECRETS = (PATIENT_NAME, "DOE^JANE", "JANE", PATIENT_ID, BIRTH_DATE, "1952-01-01", CASE_FOLDER, ROI_NAME)
CLINICAL = {"CEA": "4.2", "CA125": "15", "age": "63"}


def _assert_no_identifier(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    return f"{value:.6f}"[:16]


def _write_identified_dicom(folder: Path, hu: np.ndarray, *, spacing_xyz, origin_xyz, skip: tuple[int, ...] = (),
                            uid: str = "1.2.826.0.1.3680043.2.1125.555") -> Path:
    """A CT series of ``hu`` (z, y, x), one file per slice named after the patient, with the
    patient's name, id and birth date in every file (stored as HU + 1024, intercept −1024)."""
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to "C"
    try:
        for k in range(hu.shape[0]):
            if k in skip:
                continue
            image = sitk.GetImageFromArray(np.ascontiguousarray(hu[k]))
            image.SetSpacing(spacing_xyz[:2])
            z = origin_xyz[2] + k * spacing_xyz[2]
            tags = {
                "0010|0010": PATIENT_NAME, "0010|0020": PATIENT_ID, "0010|0030": BIRTH_DATE,
                "0008|103e": f"CT {PATIENT_NAME}", "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
                "0008|0018": f"{uid}.{k + 1}", "0020|000d": f"{uid}.0", "0020|000e": uid,
                "0020|0032": "\\".join(_ds(v) for v in (origin_xyz[0], origin_xyz[1], z)),
                "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0013": str(k + 1),
                "0028|0030": f"{_ds(spacing_xyz[1])}\\{_ds(spacing_xyz[0])}",
                "0028|1052": "-1024", "0028|1053": "1", "0018|0050": _ds(spacing_xyz[2]),
            }
            for tag, value in tags.items():
                image.SetMetaData(tag, value)
            writer.SetFileName(str(folder / f"{PATIENT_NAME}_{k:03d}.dcm"))
            writer.Execute(image)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return folder


@pytest.fixture(scope="module")
def identified(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Cases under identifiable names: a good DICOM CT + ROI, a DICOM CT with a missing slice, a
    good CT whose ROI file is absent or has a name too long to open; a manifest with neutral ids."""
    src = phantom_cohort.parent
    ct, roi = read_image(src / "case_0000_ct.nii.gz"), read_image(src / "case_0000_roi.nii.gz")
    root = tmp_path_factory.mktemp("privacy")
    case_dir = root / "data" / CASE_FOLDER
    geometry = dict(spacing_xyz=ct.spacing_xyz, origin_xyz=ct.origin_xyz)
    locale_before = locale.setlocale(locale.LC_ALL)
    _write_identified_dicom(case_dir / "CT", ct.array, **geometry)
    _write_identified_dicom(root / "data" / f"{CASE_FOLDER}_2" / "CT", ct.array, skip=(20,),
                            uid="1.2.826.0.1.3680043.2.1125.556", **geometry)
    assert locale.setlocale(locale.LC_ALL) == locale_before
    write_image(roi, case_dir / ROI_NAME)
    dicom_bytes = next((case_dir / "CT").iterdir()).read_bytes()
    assert PATIENT_NAME.encode() in dicom_bytes and PATIENT_ID.encode() in dicom_bytes  # the input does carry them
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "ct_path", "roi_path", "CEA", "CA125", "age"])
        writer.writerow(["case01", f"data/{CASE_FOLDER}/CT", f"data/{CASE_FOLDER}/{ROI_NAME}", *CLINICAL.values()])
        writer.writerow(["case02", f"data/{CASE_FOLDER}_2/CT", f"data/{CASE_FOLDER}/{ROI_NAME}", *CLINICAL.values()])
        writer.writerow(["case03", f"data/{CASE_FOLDER}/CT", f"data/{CASE_FOLDER}_3/{ROI_NAME}", *CLINICAL.values()])
        # a name too long for the file system: the OSError it raises quotes the whole path
        writer.writerow(["case04", f"data/{CASE_FOLDER}/CT", f"data/{CASE_FOLDER}_{'x' * 300}/{ROI_NAME}",
                         *CLINICAL.values()])
    return {"ct": case_dir / "CT", "roi": case_dir / ROI_NAME, "manifest": manifest, "root": root}


@pytest.fixture()
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit" / "audit.jsonl"
    monkeypatch.setenv("PLEURA_AUDIT_LOG", str(path))
    return path


def _check_audit(audit_log: Path) -> None:
    if (REPO / "pipeline" / "audit.py").is_file() and audit_log.exists():
        _assert_no_identifier(audit_log.read_text(encoding="utf-8"), "the audit log")


def _pleura(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=900, env=dict(os.environ))


def test_score_json_carries_no_identifier(identified: dict[str, Path], tiny_bundle: Path, audit_log: Path):
    r = _pleura("score", str(identified["ct"]), str(identified["roi"]), "--cea", CLINICAL["CEA"], "--ca125",
                CLINICAL["CA125"], "--age", CLINICAL["age"], "--bundle", str(tiny_bundle), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert 0 <= result["probability"] <= 1  # the DICOM case was really scored
    _assert_no_identifier(r.stdout, "score --json stdout")
    _assert_no_identifier(r.stderr, "score stderr")
    _check_audit(audit_log)


def test_batch_results_journal_and_output_carry_no_identifier(identified: dict[str, Path], tiny_bundle: Path,
                                                              audit_log: Path, tmp_path: Path):
    out = tmp_path / "out" / "results.csv"
    r = _pleura("batch", str(identified["manifest"]), "--out", str(out), "--bundle", str(tiny_bundle))
    assert r.returncode == 1, r.stderr  # case02–04 fail, inside identifiable folders
    rows = {row["case_id"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["case01"]["status"] == "ok"
    assert rows["case02"]["error_type"] == "dicom" and "not uniform" in rows["case02"]["error"]
    assert rows["case03"]["error"] == "ROI mask file not found"
    assert rows["case04"]["error"] == "ROI mask file cannot be opened (File name too long)"
    _assert_no_identifier(r.stdout, "batch stdout")
    _assert_no_identifier(r.stderr, "batch stderr (progress bar and failure lines)")
    _assert_no_identifier(out.read_text(encoding="utf-8"), "the results CSV")
    _assert_no_identifier(out.with_name(out.name + ".journal.jsonl").read_text(encoding="utf-8"), "the journal")
    _check_audit(audit_log)


def test_scorer_result_report_and_audit_carry_no_identifier(identified: dict[str, Path], tiny_bundle: Path,
                                                            audit_log: Path):
    from pipeline.serving.score import Scorer

    scorer = Scorer(tiny_bundle)
    clinical = parse_clinical(cea=CLINICAL["CEA"], ca125=CLINICAL["CA125"], age=CLINICAL["age"])
    result = scorer.score(identified["ct"], identified["roi"], clinical)
    _assert_no_identifier(json.dumps(result.to_dict()), "CaseResult.to_dict()")
    _assert_no_identifier(" ".join(result.warnings), "the warnings")
    try:
        from pipeline.app.prediction import run_prediction
    except ImportError:  # the app layer is optional here
        return
    outcome = run_prediction(scorer, ct_path=identified["ct"], roi_path=identified["roi"], clinical=clinical)
    assert outcome.audit_error is None and audit_log.is_file()
    _assert_no_identifier(outcome.json_bytes.decode("utf-8"), "the report JSON")
    _assert_no_identifier(outcome.file_stem(), "the download file name")
    _assert_no_identifier(outcome.pdf().decode("latin-1"), "the PDF report")
    _check_audit(audit_log)
    entry = json.loads(audit_log.read_text(encoding="utf-8").splitlines()[-1])
    assert entry["ct_sha256"] == result.ct_sha256  # identity by content hash only
