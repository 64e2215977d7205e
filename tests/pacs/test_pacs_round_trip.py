"""``pleura pacs``: a real Orthanc PACS (see conftest) holding a phantom study written as DICOM
(CT + RTSTRUCT) and a study without CT; search, retrieve, score, store the SEG/SR/PDF and read them
back through DICOMweb; storing again does not duplicate; clear messages for a wrong password, a
server that is down, a study without CT, an unknown study and a study over the size limit."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pipeline" / "io"))
from dicom_factory import phantom, write_ct_series, write_rtstruct  # noqa: E402
from orthanc_helpers import free_port  # noqa: E402

DEMO = REPO / "weights" / "demo"
CLINICAL = ["--cea", "4", "--ca125", "18", "--age", "66"]


@pytest.fixture(scope="module")
def studies(orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The phantom study (CT + RTSTRUCT with GTV-1) and a study holding only a structure set, on the PACS."""
    ph = phantom()
    root = tmp_path_factory.mktemp("pacs-phantom")
    case = write_ct_series(ph.ct, root / "ct")
    write_rtstruct(case, {"GTV-1": ph.roi.array.astype(np.uint8)}, root / "ct" / "rtstruct.dcm")
    orthanc.upload(sorted((root / "ct").iterdir()))
    lone = pydicom.dcmread(root / "ct" / "rtstruct.dcm")
    lone.StudyInstanceUID, lone.SeriesInstanceUID, lone.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    lone.file_meta.MediaStorageSOPInstanceUID = lone.SOPInstanceUID
    lone.save_as(root / "lone.dcm")
    orthanc.upload([root / "lone.dcm"])
    return {"phantom": case.study_uid, "ct_series": case.series_uid, "no_ct": str(lone.StudyInstanceUID),
            "n_phantom": len(list((root / "ct").iterdir()))}


def _web(server):  # noqa: ANN001, ANN202 - a DICOMwebClient on the test server (the test's own reader)
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    return DICOMwebClient(url=server.dicomweb, session=create_session_from_user_pass(server.user, server.password))


def test_find_offers_only_the_enabled_fields(pacs_env, studies: dict, capsys, monkeypatch):
    assert main(["pacs", "find", "--patient-id", "PH-001", "--series"]) == 0
    out = capsys.readouterr().out
    assert studies["phantom"] in out and studies["ct_series"] in out and "RTSTRUCT" in out
    monkeypatch.setenv("PLEURA_PACS_SEARCH_FIELDS", "accession,study_date")
    assert main(["pacs", "find", "--patient-id", "PH-001"]) == 2
    assert "searching by patient ID is not enabled" in capsys.readouterr().err
    assert main(["pacs", "find", "--study-date", "20240102"]) == 0
    assert studies["phantom"] in capsys.readouterr().out


def test_score_store_read_back_and_store_again(pacs_env, studies: dict, capsys):
    import highdicom as hd

    study = studies["phantom"]
    before = pacs_env.instance_count(study)
    args = ["pacs", "score", "--study", study, "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO), "--store",
            "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert 0.0 <= first["probability"] <= 1.0
    assert [(s["object"], s["status"]) for s in first["pacs"]["stored"]] == [("SEG", "stored"), ("SR", "stored"),
                                                                           ("PDF", "stored")]
    assert pacs_env.instance_count(study) == before + 3

    # read back through DICOMweb: a SEG on the CT series, an SR with the probability, the PDF
    web = _web(pacs_env)
    uids = {s["object"]: s["sop_instance_uid"] for s in first["pacs"]["stored"]}
    got = {}
    for series in web.search_for_series(study_instance_uid=study):
        modality = series["00080060"]["Value"][0]
        if modality in ("SEG", "SR", "DOC"):
            series_uid = series["0020000E"]["Value"][0]
            got[modality] = web.retrieve_series(study_instance_uid=study, series_instance_uid=series_uid)
    assert sorted(got) == ["DOC", "SEG", "SR"] and all(len(v) == 1 for v in got.values())
    seg = hd.seg.Segmentation.from_dataset(got["SEG"][0])
    assert str(seg.SOPInstanceUID) == uids["SEG"]
    assert seg.get_source_image_uids()[0][1] == studies["ct_series"]
    assert int(np.asarray(seg.pixel_array).sum()) > 100  # the scored tumour
    assert any(abs(v - first["probability"]) < 1e-6 for v in _numeric_values(got["SR"][0]))
    doc = got["DOC"][0]
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf" and doc.EncapsulatedDocument[:5] == b"%PDF-"

    # the audit line keeps the study as a hash only
    from pipeline.serving.audit import read_audit

    line = read_audit()[-1]
    assert line["source"] == "cli-pacs"
    assert line["study_uid_sha256"] == hashlib.sha256(study.encode()).hexdigest()
    assert study not in json.dumps(line)

    # the same request again: nothing new on the PACS
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in second["pacs"]["stored"]} == {"already on the PACS"}
    assert {s["sop_instance_uid"] for s in second["pacs"]["stored"]} == set(uids.values())
    assert pacs_env.instance_count(study) == before + 3


def _numeric_values(sr) -> list[float]:  # noqa: ANN001
    out = []
    for ds in sr.ContentSequence:
        stack = [ds]
        while stack:
            item = stack.pop()
            for mv in item.get("MeasuredValueSequence", []):
                out.append(float(mv.NumericValue))
            stack.extend(item.get("ContentSequence", []))
    return out


@pytest.mark.parametrize("case, message", [
    ("no_ct", "the study holds no CT series (it holds: RTSTRUCT)"),
    ("unknown", "the PACS holds no study with this Study Instance UID"),
    ("not_a_uid", "the Study Instance UID must be a DICOM UID"),
])
def test_studies_that_cannot_be_scored(pacs_env, studies: dict, case: str, message: str, capsys):
    uid = {"unknown": "1.2.3.4.5.6.7", "not_a_uid": "LUNG1-001"}.get(case) or studies[case]
    assert main(["pacs", "score", "--study", uid, *CLINICAL, "--bundle", str(DEMO)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_wrong_password_server_down_and_size_limit(pacs_env, studies: dict, capsys, monkeypatch):
    score = ["pacs", "score", "--study", studies["phantom"], "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO)]
    monkeypatch.setenv("PLEURA_DICOMWEB_PASSWORD", "not-the-password")
    assert main(score) == 2
    err = capsys.readouterr().err
    assert "refused the credentials" in err and "not-the-password" not in err
    monkeypatch.setenv("PLEURA_DICOMWEB_PASSWORD", pacs_env.password)

    monkeypatch.setenv("PLEURA_DICOMWEB_URL", f"http://127.0.0.1:{free_port()}/dicom-web")
    assert main(score) == 2
    assert "cannot be reached" in capsys.readouterr().err
    monkeypatch.setenv("PLEURA_DICOMWEB_URL", pacs_env.dicomweb)

    monkeypatch.setenv("PLEURA_PACS_MAX_STUDY_MB", "1")  # the phantom CT is about 2 MB
    assert main(score) == 2
    assert "larger than the retrieval limit of 1 MB (PLEURA_PACS_MAX_STUDY_MB)" in capsys.readouterr().err


def test_no_pacs_configured(capsys, monkeypatch):
    monkeypatch.delenv("PLEURA_DICOMWEB_URL", raising=False)
    assert main(["pacs", "find", "--accession", "A1"]) == 2
    assert "no PACS is configured: set PLEURA_DICOMWEB_URL" in capsys.readouterr().err


def test_tls_is_verified_and_a_site_ca_bundle_is_used(orthanc_tls, capsys, monkeypatch):
    server, ca_bundle = orthanc_tls
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    assert main(["pacs", "find", "--accession", "NO-SUCH-ACCESSION"]) == 2  # a certificate the system does not trust
    assert "TLS certificate of the PACS (PLEURA_DICOMWEB_URL) could not be verified" in capsys.readouterr().err
    monkeypatch.setenv("PLEURA_DICOMWEB_CA_BUNDLE", str(ca_bundle))
    assert main(["pacs", "find", "--accession", "NO-SUCH-ACCESSION"]) == 0
    assert "no study found" in capsys.readouterr().out


def test_a_refused_object_is_named_and_a_retry_adds_no_duplicate(orthanc_refusing_sr, tmp_path: Path, capsys,
                                                                   monkeypatch):
    from orthanc_helpers import upload_phantom_study

    server = orthanc_refusing_sr
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    study = upload_phantom_study(server, tmp_path, patient_id="PH-STRICT", seed=9)["study"]
    before = server.instance_count(study)
    args = ["pacs", "score", "--study", study, "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO), "--store"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the PACS refused to store SR" in err and "storing again sends only what is missing" in err
    assert server.instance_count(study) == before + 2  # SEG and PDF; the SR was refused
    assert main(args) == 2  # still refused: nothing stored twice
    assert server.instance_count(study) == before + 2


def test_a_ct_series_missing_slices_is_refused(pacs_env, tmp_path: Path, capsys):
    """A series only partly on the PACS (4 slices not arrived): the gap is found before any scoring."""
    from orthanc_helpers import upload_phantom_study

    study = upload_phantom_study(pacs_env, tmp_path, patient_id="PH-PARTIAL", seed=13,
                                 leave_out=tuple(range(40, 44)))["study"]
    assert main(["pacs", "score", "--study", study, "--roi-name", "GTV-1", *CLINICAL, "--bundle", str(DEMO)]) == 2
    err = capsys.readouterr().err
    assert "DICOM slice spacing is not uniform" in err and "missing slices" in err and "Traceback" not in err
