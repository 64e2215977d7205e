"""``pleura pacs batch`` on the real Orthanc of the conftest: a CSV with a good phantom study, a study
without CT, an unknown study and a row with a bad CEA; the bad rows are reported in their rows and
the batch goes on; results are stored once; a re-run resumes (the scored study is not redone)."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest
from orthanc_helpers import upload_phantom_study
from pydicom.uid import generate_uid

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "weights" / "demo"


@pytest.fixture(scope="module")
def batch_studies(orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pacs-batch")
    good = upload_phantom_study(orthanc, root, patient_id="PH-BATCH", seed=11)["study"]
    lone = pydicom.dcmread(root / "ct" / "rtstruct.dcm")  # its structure set alone, as another study
    lone.StudyInstanceUID, lone.SeriesInstanceUID, lone.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    lone.file_meta.MediaStorageSOPInstanceUID = lone.SOPInstanceUID
    lone.save_as(root / "lone.dcm")
    orthanc.upload([root / "lone.dcm"])
    return {"good": good, "no_ct": str(lone.StudyInstanceUID)}


def test_batch_goes_on_past_bad_studies_and_resumes(pacs_env, batch_studies: dict, tmp_path: Path, capsys):
    table = tmp_path / "studies.csv"
    table.write_text("case_id,study_uid,roi_name,cea,ca125,age\n"
                     f"good,{batch_studies['good']},GTV-1,4,18,66\n"
                     f"noct,{batch_studies['no_ct']},,4,18,66\n"
                     "gone,1.2.3.4.5.6.7.8,,4,18,66\n"
                     f"badlab,{batch_studies['good']},GTV-1,four,18,66\n")
    out = tmp_path / "results.csv"
    before = pacs_env.instance_count(batch_studies["good"])
    args = ["pacs", "batch", str(table), "--out", str(out), "--store", "--bundle", str(DEMO), "--quiet"]
    assert main(args) == 1  # some rows failed
    assert "1 of 4 studies scored, 3 failed" in capsys.readouterr().out
    rows = {r["case_id"]: r for r in csv.DictReader(out.open())}
    assert rows["good"]["status"] == "ok" and 0 <= float(rows["good"]["probability"]) <= 1
    assert rows["good"]["stored"] == "stored"
    assert "holds no CT series" in rows["noct"]["error"]
    assert "holds no study with this Study Instance UID" in rows["gone"]["error"]
    assert rows["badlab"]["error_type"] == "clinical" and "CEA" in rows["badlab"]["error"]
    assert pacs_env.instance_count(batch_studies["good"]) == before + 3

    assert main(args) == 1  # the failed rows are tried again, the scored one is kept
    assert "1 already done (resumed)" in capsys.readouterr().out
    again = {r["case_id"]: r for r in csv.DictReader(out.open())}
    assert again["good"]["probability"] == rows["good"]["probability"]
    assert pacs_env.instance_count(batch_studies["good"]) == before + 3

    from pipeline.serving.audit import read_audit

    assert sum(1 for line in read_audit() if line["source"] == "cli-pacs-batch") >= 1
