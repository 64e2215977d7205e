"""Batch case discovery with DICOM inputs: a manifest's roi_name column, an empty roi_path when the
CT's DICOM folder holds the structure set, and per-case folders holding an RTSTRUCT/SEG."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from dicom_factory import phantom, write_ct_series, write_rtstruct, write_seg  # noqa: E402

from pipeline.inputs.cohort import discover_cases


@pytest.fixture(scope="module")
def dicom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ph = phantom()
    root = tmp_path_factory.mktemp("cases")
    a = write_ct_series(ph.ct, root / "A" / "ct")
    write_rtstruct(a, {"GTV-1": ph.roi.array.astype(np.uint8)}, root / "A" / "ct" / "rs.dcm")
    b = write_ct_series(ph.ct, root / "B" / "ct")
    write_seg(b, {"GTV-1": ph.roi.array.astype(np.uint8)}, root / "B" / "tumour.dcm")
    (root / "C").mkdir()
    (root / "C" / "notes.txt").write_text("no images")
    return root


def test_folder_layout_finds_the_structure_set_beside_or_inside_the_ct(dicom_root: Path, tmp_path: Path):
    csv = tmp_path / "clinical.csv"
    csv.write_text("case_id,CEA,CA125,age\nA,4,18,66\nB,4,18,66\n")
    cases = {c.case_id: c for c in discover_cases(dicom_root, clinical_csv=csv, roi_name="GTV-1")}
    assert set(cases) == {"A", "B"}
    assert cases["A"].roi_path is None and cases["A"].problem is None  # the RTSTRUCT is inside ct/
    assert cases["B"].roi_path == str(dicom_root / "B" / "tumour.dcm") and cases["B"].problem is None
    assert cases["A"].roi_name == cases["B"].roi_name == "GTV-1"


def test_manifest_roi_name_column_overrides_the_default(dicom_root: Path, tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id,ct_path,roi_path,roi_name,CEA,CA125,age\n"
                        f"A,{dicom_root / 'A' / 'ct'},,GTV-1,4,18,66\n"
                        f"B,{dicom_root / 'B' / 'ct'},{dicom_root / 'B' / 'tumour.dcm'},,4,18,66\n")
    cases = {c.case_id: c for c in discover_cases(manifest, roi_name="Other")}
    assert cases["A"].roi_name == "GTV-1" and cases["A"].roi_path is None and cases["A"].problem is None
    assert cases["B"].roi_name == "Other"
