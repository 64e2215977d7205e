"""The Predict page with DICOM uploads (``streamlit.testing.v1.AppTest``, no browser): a zipped CT
folder holding its RTSTRUCT offers the structure set's volume ROIs in a select box, scores the
chosen one, and offers the DICOM SEG / SR / PDF for download; an RTSTRUCT uploaded as the ROI
works the same way."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from app_helpers import errors, fill_labs, open_page, upload

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline" / "io"))
from dicom_factory import phantom, write_ct_series, write_rtstruct  # noqa: E402


@pytest.fixture(scope="module")
def dicom_zip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    ph = phantom()
    root = tmp_path_factory.mktemp("app_dicom")
    case = write_ct_series(ph.ct, root / "export")
    box = np.zeros(ph.roi.shape_zyx, np.uint8)
    box[20:30, 30:60, 30:60] = 1
    write_rtstruct(case, {"Box": box, "GTV-1": ph.roi.array}, root / "rtstruct.dcm")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in case.files:
            zf.write(f, f"export/{f.name}")
        zf.write(root / "rtstruct.dcm", "export/rtstruct.dcm")
    only_ct = io.BytesIO()
    with zipfile.ZipFile(only_ct, "w") as zf:
        for f in case.files:
            zf.write(f, f"export/{f.name}")
    return {"with_rtstruct": buf.getvalue(), "ct_only": only_ct.getvalue(),
            "rtstruct": (root / "rtstruct.dcm").read_bytes()}


def downloads(at) -> dict[str, bytes]:  # noqa: ANN001
    """Label → bytes of the page's download buttons (AppTest has no typed accessor for them)."""
    out = {}
    for element in at.get("download_button"):
        proto = element.proto
        out[proto.label] = proto
    return out


def test_ct_zip_with_rtstruct_offers_its_rois_and_dicom_downloads(env: Path, dicom_zip: dict[str, bytes]) -> None:
    at = open_page("pages/predict.py")
    upload(at, "ct_upload", "study.zip", dicom_zip["with_rtstruct"])
    at.run()
    assert not errors(at), errors(at)
    box = at.selectbox(key="dicom_roi_name")
    assert list(box.options) == ["Box", "GTV-1"] and box.value == "GTV-1"  # a GTV is preselected
    fill_labs(at)
    at.button(key="predict").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any("ROI: RTSTRUCT ROI 'GTV-1' rasterised onto the CT" in c.value for c in at.caption)
    labels = downloads(at)
    assert {"Download DICOM SEG (scored ROI)", "Download DICOM SR (measurements)",
            "Download DICOM PDF report"} <= set(labels)


def test_rtstruct_uploaded_as_the_roi(env: Path, dicom_zip: dict[str, bytes]) -> None:
    at = open_page("pages/predict.py")
    upload(at, "ct_upload", "ct.zip", dicom_zip["ct_only"])
    upload(at, "roi_upload", "rs.dcm", dicom_zip["rtstruct"])
    at.run()
    at.selectbox(key="dicom_roi_name").set_value("Box")
    fill_labs(at)
    at.button(key="predict").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any("ROI: RTSTRUCT ROI 'Box'" in c.value for c in at.caption)


def test_ct_zip_without_roi_says_what_is_missing(env: Path, dicom_zip: dict[str, bytes]) -> None:
    at = open_page("pages/predict.py")
    upload(at, "ct_upload", "ct.zip", dicom_zip["ct_only"])
    fill_labs(at)
    at.run()
    at.button(key="predict").click().run()
    assert any("Upload a tumour ROI mask, or click the tumour in the viewer" in e for e in errors(at))
