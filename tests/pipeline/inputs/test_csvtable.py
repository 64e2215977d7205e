"""CSV structure (issue 15, items 3 and 14): shifted rows and doubled columns are never read silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import ClinicalValueError, CohortError
from pipeline.inputs.clinical import ClinicalValues, read_clinical_csv
from pipeline.inputs.cohort import discover_cases
from pipeline.inputs.csvtable import read_table


def _csv(tmp_path: Path, text: str, name: str = "clinical.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unquoted_decimal_comma_fails_its_row_only(tmp_path: Path) -> None:
    """``P1,4,1,18,66`` used to give CEA 4, CA125 1, age 18 and drop the 66."""
    values = read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\nP1,4,1,18,66\nP2,\"4,1\",18,66\n"))
    assert isinstance(values["P1"], ClinicalValueError)
    assert "the clinical CSV row of this case (line 2) has 5 fields for 4 columns (a decimal comma without quotes?)" \
        in str(values["P1"])
    assert values["P2"] == ClinicalValues(4.1, 18.0, 66.0), "a quoted decimal comma is fine"


def test_a_required_column_twice_refuses_the_file(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match=r"has the column age more than once \(age and Age\)"):
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age,Age\nP1,3,10,60,61\n"))
    with pytest.raises(CohortError, match="has the column CEA more than once"):
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age, cea \nP1,3,10,60,4\n"))


def test_semicolon_separated_files_keep_their_decimal_commas(tmp_path: Path) -> None:
    """A spreadsheet saved with a European locale: ``;`` between fields, ``,`` in numbers."""
    values = read_clinical_csv(_csv(tmp_path, "case_id;CEA;CA125;age\nP1;4,1;18;66\n"))
    assert values["P1"] == ClinicalValues(4.1, 18.0, 66.0)


def test_extra_unnamed_trailing_fields_and_blank_lines(tmp_path: Path) -> None:
    table = read_table(_csv(tmp_path, "case_id,CEA\n\nP1,3\n,\n"), what="clinical CSV", required=("case_id",))
    assert [(r.line, r.values, r.problem) for r in table.rows] == [(3, {"case_id": "P1", "cea": "3"}, None)]


def test_a_manifest_row_with_shifted_fields_fails_in_its_row(tmp_path: Path) -> None:
    (tmp_path / "a_ct.nii.gz").write_bytes(b"x")
    (tmp_path / "a_roi.nii.gz").write_bytes(b"x")
    manifest = _csv(tmp_path, "case_id,ct_path,roi_path,CEA,CA125,age\n"
                              "P1,a_ct.nii.gz,a_roi.nii.gz,4,1,18,66\nP2,a_ct.nii.gz,a_roi.nii.gz,4.1,18,66\n",
                    name="cases.csv")
    by_id = {c.case_id: c for c in discover_cases(manifest)}
    assert by_id["P1"].problem is not None and "7 fields for 6 columns" in by_id["P1"].problem
    assert by_id["P2"].problem is None and by_id["P2"].clinical == ClinicalValues(4.1, 18.0, 66.0)
