"""Clinical values (CEA ng/mL, CA125 U/mL, age years): parsing, ranges, and the clinical CSV."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pipeline.inputs.clinical import ClinicalValues, parse_clinical, read_clinical_csv
from pipeline.core.errors import ClinicalValueError, CohortError

VALID = {"cea": "3.2", "ca125": 12, "age": 67}
UNITS = {"cea": ("CEA", "ng/mL"), "ca125": ("CA125", "U/mL"), "age": ("age", "years")}


def test_valid_values_become_features():
    values = parse_clinical(cea="3.2", ca125=12, age=67.0)
    assert values == ClinicalValues(3.2, 12.0, 67.0)
    assert values.as_features() == {"CEA_ng_mL": 3.2, "CA125_U_mL": 12.0, "age_years": 67.0}


@pytest.mark.parametrize("text, number", [("3,5", 3.5), (" 7.25 ", 7.25), ("0", 0.0), ("2000", 2000.0), ("1e1", 10.0)])
def test_numbers_as_text_including_decimal_comma(text: str, number: float):
    assert parse_clinical(cea=text, ca125="35", age="18").cea_ng_ml == number


def test_range_limits_are_inclusive():
    values = parse_clinical(cea=0, ca125=10000, age=110)
    assert (values.cea_ng_ml, values.ca125_u_ml, values.age_years) == (0.0, 10000.0, 110.0)


BAD = [
    (None, "is missing; enter it in {unit}"),
    ("", "is missing; enter it in {unit}"),
    ("   ", "is missing; enter it in {unit}"),
    (math.nan, "is missing; enter it in {unit}"),
    ("nan", "is missing; enter it in {unit}"),
    ("abc", "must be a number in {unit} (got 'abc')"),
    ("3.2 ng/mL", "must be a number in {unit}"),
    (True, "must be a number in {unit}"),
    ([3.2], "must be a number in {unit}"),
    (math.inf, "must be a finite number in {unit}"),
    ("-inf", "must be a finite number in {unit}"),
    (-1, "must be ≥ 0 {unit} (got -1)"),
    ("-0,5", "must be ≥ 0 {unit}"),
]


@pytest.mark.parametrize("field", ["cea", "ca125", "age"])
@pytest.mark.parametrize("value, expected", BAD)
def test_bad_value_names_field_and_unit(field: str, value: object, expected: str):
    name, unit = UNITS[field]
    with pytest.raises(ClinicalValueError) as err:
        parse_clinical(**{**VALID, field: value})
    message = str(err.value)
    assert message.startswith(name + " "), message
    assert expected.format(unit=unit) in message
    assert err.value.code == "clinical"


@pytest.mark.parametrize("field, value, expected", [
    ("cea", 2500, "CEA = 2500 ng/mL is outside the plausible range 0–2000 ng/mL"),
    ("ca125", "10001", "CA125 = 10001 U/mL is outside the plausible range 0–10000 U/mL"),
    ("age", 12, "age = 12 years is outside the plausible range 18–110 years"),
    ("age", "130", "age = 130 years is outside the plausible range 18–110 years"),
    ("age", 0, "age = 0 years is outside the plausible range 18–110 years"),
])
def test_implausible_values_refused_with_range_and_unit_hint(field: str, value: object, expected: str):
    with pytest.raises(ClinicalValueError) as err:
        parse_clinical(**{**VALID, field: value})
    assert str(err.value).startswith(expected)
    assert "check the value and its unit" in str(err.value)


def test_first_bad_field_is_reported():
    with pytest.raises(ClinicalValueError, match=r"^CEA "):
        parse_clinical(cea="x", ca125="y", age=5)


# -- CSV ---------------------------------------------------------------------------------------
def _csv(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "clinical.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_csv_with_extra_columns_any_header_case_and_bom(tmp_path: Path):
    path = _csv(tmp_path, "Case_ID,cea,Ca125, AGE ,smoker\nP01,3.2,12,67,yes\nP02,\"4,5\",40,71,no\n",
                encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = read_clinical_csv(path)
    assert rows == {"P01": ClinicalValues(3.2, 12.0, 67.0), "P02": ClinicalValues(4.5, 40.0, 71.0)}


def test_csv_bad_row_is_that_case_error_only(tmp_path: Path):
    rows = read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\nA,3,12,67\nB,-2,12,67\nC,3,,70\nD,1,2,50\n"))
    assert isinstance(rows["A"], ClinicalValues) and isinstance(rows["D"], ClinicalValues)
    assert isinstance(rows["B"], ClinicalValueError) and str(rows["B"]) == "CEA must be ≥ 0 ng/mL (got -2)"
    assert isinstance(rows["C"], ClinicalValueError) and "CA125 is missing" in str(rows["C"])
    assert list(rows) == ["A", "B", "C", "D"]


def test_csv_short_row_reports_missing_values(tmp_path: Path):
    rows = read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\nA,3\n"))
    assert isinstance(rows["A"], ClinicalValueError) and "CA125 is missing" in str(rows["A"])


def test_csv_missing_column(tmp_path: Path):
    with pytest.raises(CohortError) as err:
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,age\nA,3,67\n"))
    assert "lacks column(s) CA125" in str(err.value) and "required: case_id, CEA, CA125, age" in str(err.value)


def test_csv_duplicate_case_id(tmp_path: Path):
    with pytest.raises(CohortError, match=r"case_id 'A' more than once \(line 3\)"):
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\nA,3,12,67\nA,4,12,67\n"))


def test_csv_empty_case_id(tmp_path: Path):
    with pytest.raises(CohortError, match=r"line 3 has an empty case_id"):
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\nA,3,12,67\n  ,4,12,67\n"))


def test_csv_without_rows(tmp_path: Path):
    with pytest.raises(CohortError, match=r"no rows"):
        read_clinical_csv(_csv(tmp_path, "case_id,CEA,CA125,age\n"))


def test_csv_empty_file(tmp_path: Path):
    with pytest.raises(CohortError, match=r"lacks column\(s\) case_id, CEA, CA125, age"):
        read_clinical_csv(_csv(tmp_path, ""))


def test_csv_not_utf8(tmp_path: Path):
    path = tmp_path / "clinical.csv"
    path.write_bytes("case_id,CEA,CA125,age\nMüller,3,12,67\n".encode("utf-16"))
    with pytest.raises(CohortError, match=r"not UTF-8"):
        read_clinical_csv(path)


def test_csv_not_found(tmp_path: Path):
    with pytest.raises(CohortError) as err:
        read_clinical_csv(tmp_path / "DOE_JANE.csv")
    assert "not found" in str(err.value) and "DOE_JANE" not in str(err.value)


# ------------------------------------------------------------------------------------------------
# number formats (issue 15, item 2): a thousands separator is never read as a decimal point
@pytest.mark.parametrize("text, why", [
    ("1,000", "'1,000' is ambiguous: the comma may separate thousands (1000) or decimals (1)"),
    ("10,500", "'10,500' is ambiguous"),
    ("1,000.5", "seems to contain a thousands separator"),
    ("1.000.000", "seems to contain a thousands separator"),
    ("12 500", "seems to contain a thousands separator"),
    ("1'000", "seems to contain a thousands separator"),
    ("1,2,3", "seems to contain a thousands separator"),
    ("1_000", "must be a number"),
])
def test_ambiguous_or_grouped_numbers_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ClinicalValueError) as err:
        parse_clinical(cea="3", ca125=text, age="60")
    assert str(err.value).startswith("CA125 ") and why in str(err.value)


@pytest.mark.parametrize("text, number", [("4,1", 4.1), ("0,25", 0.25), ("100,5", 100.5), ("1,0001", 1.0001),
                                          ("1000", 1000.0), ("1.000", 1.0)])
def test_a_decimal_comma_is_read_where_nothing_else_can_be_meant(text: str, number: float) -> None:
    assert parse_clinical(cea="3", ca125=text, age="60").ca125_u_ml == number


def test_a_thousands_separator_in_the_clinical_csv_fails_its_row(tmp_path: Path) -> None:
    path = tmp_path / "clinical.csv"
    path.write_text('case_id,CEA,CA125,age\nP1,3,"1,000",60\nP2,3,1000,60\n', encoding="utf-8")
    values = read_clinical_csv(path)
    assert isinstance(values["P1"], ClinicalValueError) and "ambiguous" in str(values["P1"])
    assert values["P2"] == ClinicalValues(3.0, 1000.0, 60.0)
