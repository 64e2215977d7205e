"""PDF/JSON report: one page, the notice, inputs without names, Unicode or transliteration."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from pypdf import PdfReader

from pipeline import SYNTHETIC_NOTICE

from pipeline.serving import report
from pipeline.inputs.case import load_case
from pipeline.inputs.clinical import parse_clinical
from pipeline.core.config import PipelineConfig
from pipeline.serving.explain import Explanation
from pipeline.features.extract import FeatureVector
from pipeline.io.readers import write_image
from pipeline.synth import PhantomSpec, make_phantom
from pipeline.serving.score import CaseResult, risk_band

CLINICAL = parse_clinical(cea=4.7, ca125=31, age=68)
WHEN = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> CaseResult:
    """A CaseResult around a real phantom case (read, validated and cropped by the pipeline)."""
    tmp = tmp_path_factory.mktemp("report")
    ph = make_phantom(PhantomSpec(seed=5))
    ct_path = write_image(ph.ct, tmp / "Doe_Jane_ct.nii.gz")
    roi_path = write_image(ph.roi, tmp / "Doe_Jane_roi.nii.gz")
    case = load_case(ct_path, roi_path, config=PipelineConfig(), keep_full=True)
    names = tuple([f"dl_{i:03d}" for i in range(12)] + ["original_shape_Sphericity", "pleura_distance_mm",
                                                          "CEA_ng_mL", "CA125_U_mL", "age_years"])
    rng = np.random.default_rng(3)
    values = rng.normal(0, 0.02, len(names))
    values[-3] = 0.15
    base = 0.3
    p = float(base + values.sum())
    expl = Explanation(names, values, rng.normal(size=len(names)), base)
    return CaseResult(
        probability=p, risk_band=risk_band(p), tree_sd=0.11, tree_p05=p - 0.18, tree_p95=min(1.0, p + 0.17),
        features=FeatureVector(names, expl.feature_values), explanation=expl,
        warnings=("ROI touches the edge of the CT volume: the tumour may be cut off – check σ ≥ 2",),
        model_name="tiny", model_id="f0" * 32, notice=SYNTHETIC_NOTICE, threshold=0.5,
        ct_sha256=case.ct_sha256, roi_sha256=case.roi_sha256, case=case,
    )


def _text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(p.extract_text() for p in reader.pages)


def test_pdf_is_one_page_with_notice_result_inputs_and_no_names(result: CaseResult) -> None:
    pdf = report.report_pdf(result, clinical=CLINICAL, created=WHEN)
    assert pdf.startswith(b"%PDF")
    pages, text = _text(pdf)
    assert pages == 1
    assert text.count(SYNTHETIC_NOTICE) == 2  # top and bottom of the page
    assert f"VPI probability {round(100 * result.probability)} %" in text  # percent, as the app shows it
    assert f"Model output {result.probability:.3f}" in text
    assert f"{result.risk_band.capitalize()} risk band" in text
    assert "not a calibrated confidence interval" in text
    assert "4.7 ng/mL" in text and "31 U/mL" in text and "68 years" in text
    assert result.ct_sha256[:16] in text and result.ct_sha256 not in text  # a prefix only
    assert "Doe" not in text and "Jane" not in text and ".nii" not in text
    assert "2026-11-23 09:30 UTC" in text and "tiny" in text and "f0f0f0f0f0f0" in text
    assert "ROI touches the edge" in text


def test_pdf_and_json_name_the_models_signer(result: CaseResult) -> None:
    from pipeline.serving.signing import SignatureCheck

    signed = replace(result, model_signature=SignatureCheck("trusted", signer="PleuraRisk maintainers (release key)",
                                                            key_id="ab" * 32, trusted_as="release-ed25519, built-in"))
    pages, text = _text(report.report_pdf(signed, clinical=CLINICAL, created=WHEN))
    assert pages == 1 and "Model signed by PleuraRisk maintainers (release key) (key abababababababab" in text
    data = json.loads(report.report_json(signed, clinical=CLINICAL, created=WHEN))
    assert data["model"]["signature"]["signer"] == "PleuraRisk maintainers (release key)"
    assert data["model"]["signature"]["trusted"] is True
    pages, text = _text(report.report_pdf(result, clinical=CLINICAL, created=WHEN))  # loaded with the allowance
    assert pages == 1 and "Model unsigned model (no signature" in " ".join(text.split())
    assert json.loads(report.report_json(result, clinical=CLINICAL, created=WHEN))["model"]["signature"]["trusted"] is False


def test_pdf_keeps_unicode_with_dejavu(result: CaseResult) -> None:
    if report.find_unicode_font() is None:
        pytest.skip("no DejaVu Sans font on this system")
    _pages, text = _text(report.report_pdf(result, clinical=CLINICAL, created=WHEN))
    assert "σ ≥ 2" in text and "–" in text


def test_pdf_falls_back_to_latin1_without_a_unicode_font(result: CaseResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "find_unicode_font", lambda: None)
    pages, text = _text(report.report_pdf(result, clinical=CLINICAL, created=WHEN))
    assert pages == 1 and SYNTHETIC_NOTICE in text
    assert "sigma >= 2" in text
    assert report.transliterate("5–95 % · σ ≥ 1 → µg") == "5-95 % - sigma >= 1 -> ug"


def test_many_warnings_and_no_images_still_fit_one_page(result: CaseResult) -> None:
    noisy = replace(result, warnings=tuple(f"warning number {i}" for i in range(20)), case=None)
    pages, text = _text(report.report_pdf(noisy, clinical=CLINICAL, created=WHEN, max_warnings=6))
    assert pages == 1
    assert "warning number 5" in text and "warning number 6" not in text and "14 more" in text
    assert "CT through the tumour centre" not in text


def test_json_has_the_same_content_plus_inputs(result: CaseResult) -> None:
    data = json.loads(report.report_json(result, clinical=CLINICAL, roi_label=2, created=WHEN))
    assert data["probability"] == pytest.approx(result.probability)
    assert data["notice"] == SYNTHETIC_NOTICE
    assert data["inputs"] == {"ct_sha256": result.ct_sha256, "roi_sha256": result.roi_sha256, "CEA_ng_mL": 4.7,
                              "CA125_U_mL": 31.0, "age_years": 68.0, "roi_label": 2}
    assert data["report"]["created_utc"] == "2026-11-23T09:30:00Z"
    assert data["explanation"]["top_features"][0]["label"] == "CEA (ng/mL)"
    assert "Doe" not in json.dumps(data)


def test_building_a_pdf_pins_no_caller_frames(result: CaseResult) -> None:
    """fpdf2 keeps the ImportError of its optional ``cryptography`` import; its traceback would
    keep the first app session that built a PDF (its uploaded CT included) alive forever."""
    import sys

    report.report_pdf(result, clinical=CLINICAL, created=WHEN)
    error = getattr(sys.modules["fpdf.encryption"], "import_error", None)
    assert error is None or error.__traceback__ is None
