"""The Predict page's PACS source (``streamlit.testing.v1.AppTest``, no browser) against the real
Orthanc of the conftest: hidden without ``PLEURA_DICOMWEB_URL``; with it, search by patient ID,
retrieve the study, score it like an uploaded DICOM folder, "Send to PACS" stores the SEG, SR and
PDF into the study, and sending again stores nothing twice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from app_helpers import clinical_bundle, errors, fill_labs, open_page  # noqa: E402
from orthanc_helpers import upload_phantom_study  # noqa: E402


@pytest.fixture(scope="module")
def app_study(orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return upload_phantom_study(orthanc, tmp_path_factory.mktemp("pacs-app"), patient_id="PH-APP", seed=5)


@pytest.fixture()
def app_env(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bundle = clinical_bundle(tmp_path_factory.mktemp("pacs-app-weights") / "alpha", "alpha")
    monkeypatch.setenv("PLEURA_WEIGHTS_DIR", str(bundle.parent))
    monkeypatch.setenv("PLEURA_BUNDLE", str(bundle))
    monkeypatch.setenv("PLEURA_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return tmp_path / "audit.jsonl"


def _button(at, label: str):  # noqa: ANN001, ANN202
    return next(b for b in at.button if b.label.startswith(label))


def test_no_pacs_panel_without_a_configured_pacs(app_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PLEURA_DICOMWEB_URL", raising=False)
    at = open_page("pages/predict.py")
    assert not any(b.label.startswith("Search the PACS") for b in at.button)


def test_search_retrieve_score_and_send_to_pacs(app_env: Path, pacs_env, app_study: dict[str, str]):
    study = app_study["study"]
    before = pacs_env.instance_count(study)
    at = open_page("pages/predict.py")
    at.text_input(key="pacs_patient_id").set_value("PH-APP")
    _button(at, "Search the PACS").click().run()
    assert not errors(at), errors(at)
    at.selectbox(key="pacs_study").set_value(study).run()
    at.button(key="pacs_retrieve").click().run()
    assert not errors(at), errors(at)
    assert any("Retrieved: CT phantom CT (64 images)" in c.value for c in at.caption)
    assert at.selectbox(key="dicom_roi_name").value == "GTV-1"
    fill_labs(at)
    at.button(key="predict").click().run()
    assert not at.exception and not errors(at), errors(at)
    _button(at, "Send to PACS").click().run()
    assert not errors(at), errors(at)
    assert [s.value for s in at.success if s.value.startswith("PACS:")] == ["PACS: stored SEG, SR, PDF (in the study)"]
    assert pacs_env.instance_count(study) == before + 3
    _button(at, "Send to PACS").click().run()
    assert any(s.value.startswith("PACS: already on the PACS: SEG, SR, PDF") for s in at.success)
    assert pacs_env.instance_count(study) == before + 3
    assert study not in app_env.read_text()  # the audit line holds hashes only
    import hashlib
    import json

    (line,) = [json.loads(x) for x in app_env.read_text().splitlines()]
    assert line["source"] == "app-pacs"
    assert line["study_uid_sha256"] == hashlib.sha256(study.encode()).hexdigest()
    assert len(line["series_uid_sha256"]) == 64


def test_wrong_password_is_one_message_on_the_page(app_env: Path, pacs_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLEURA_DICOMWEB_PASSWORD", "wrong")
    at = open_page("pages/predict.py")
    at.text_input(key="pacs_patient_id").set_value("PH-APP")
    _button(at, "Search the PACS").click().run()
    assert not at.exception
    assert [e for e in errors(at) if "refused the credentials" in e]
