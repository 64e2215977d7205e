"""Clinical inputs: CEA (ng/mL), CA125 (U/mL) and age (years), parsed and range-checked.

Accepted ranges (values outside are refused as implausible, most likely a unit or typing error):

=========  ===========  ===================  ====================================================
field      unit         accepted range       note
=========  ===========  ===================  ====================================================
CEA        ng/mL        0 – 2000             reference < 5 ng/mL; µg/L is the same number
CA125      U/mL         0 – 10000            reference < 35 U/mL; kU/L is the same number
age        years        18 – 110             adults only (the model was not built for children)
=========  ===========  ===================  ====================================================

Example:
    >>> parse_clinical(cea="3.2", ca125=12, age=67).as_features()
    {'CEA_ng_mL': 3.2, 'CA125_U_mL': 12.0, 'age_years': 67.0}
    >>> parse_clinical(cea=-1, ca125=12, age=67)
    Traceback (most recent call last):
    ...
    pipeline.core.errors.ClinicalValueError: CEA must be ≥ 0 ng/mL (got -1)
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ClinicalValueError, CohortError

from pipeline.core.groups import CLINICAL_FEATURES as CLINICAL_FEATURE_NAMES


@dataclass(frozen=True)
class ClinicalField:
    name: str
    unit: str
    low: float
    high: float
    feature: str


FIELDS = (
    ClinicalField("CEA", "ng/mL", 0.0, 2000.0, "CEA_ng_mL"),
    ClinicalField("CA125", "U/mL", 0.0, 10000.0, "CA125_U_mL"),
    ClinicalField("age", "years", 18.0, 110.0, "age_years"),
)


@dataclass(frozen=True)
class ClinicalValues:
    """Validated clinical values: CEA (ng/mL), CA125 (U/mL), age (years)."""

    cea_ng_ml: float
    ca125_u_ml: float
    age_years: float

    def as_features(self) -> dict[str, float]:
        return dict(zip(CLINICAL_FEATURE_NAMES, (self.cea_ng_ml, self.ca125_u_ml, self.age_years)))


def _number_text(text: str, f: ClinicalField) -> float:
    """A number typed or exported as text. A decimal comma is read as a decimal point only where
    nothing else can be meant (``4,1`` → 4.1, ``0,25`` → 0.25); a number that may carry a
    thousands separator (``1,000`` is 1000 or 1.0; ``12 500``, ``1.000.000``, ``1,000.5``) is
    refused with the reason, never guessed. Python's ``1_000`` digit grouping is refused too.

    Raises:
        ClinicalValueError: ambiguous grouping. ValueError: not a number at all.
    """
    shown = text[:40]
    commas, dots = text.count(","), text.count(".")
    if "_" in text:
        raise ValueError(text)
    if commas == 1 and dots == 0 and re.fullmatch(r"[+-]?\d{1,3},\d{3}", text):
        whole, frac = text.replace(",", ""), text.replace(",", ".")
        raise ClinicalValueError(
            f"{f.name} {shown!r} is ambiguous: the comma may separate thousands ({float(whole):g}) or decimals "
            f"({float(frac):g}); write it without a thousands separator and with a decimal point ({f.unit})")
    if (commas and dots) or commas > 1 or dots > 1 or re.search(r"\d[ '\u00a0\u202f]\d{3}", text):
        raise ClinicalValueError(
            f"{f.name} {shown!r} seems to contain a thousands separator; write the number without separators "
            f"and with a decimal point, in {f.unit}")
    return float(text.replace(",", "."))


def _parse_one(value: object, f: ClinicalField) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise ClinicalValueError(f"{f.name} is missing; enter it in {f.unit}")
    if isinstance(value, bool):
        raise ClinicalValueError(f"{f.name} must be a number in {f.unit} (got {value!r})")
    try:
        number = _number_text(value.strip(), f) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ClinicalValueError(f"{f.name} must be a number in {f.unit} (got {str(value)[:40]!r})") from None
    except OverflowError:  # an integer or fraction beyond the float range
        raise ClinicalValueError(
            f"{f.name} is far outside the plausible range {f.low:g}–{f.high:g} {f.unit}; check the value and its unit"
        ) from None
    if math.isnan(number):
        raise ClinicalValueError(f"{f.name} is missing; enter it in {f.unit}")
    if not math.isfinite(number):
        raise ClinicalValueError(f"{f.name} must be a finite number in {f.unit} (got {str(value)[:40]})")
    if number < 0:
        raise ClinicalValueError(f"{f.name} must be ≥ 0 {f.unit} (got {str(value)[:40]})")
    if not f.low <= number <= f.high:
        raise ClinicalValueError(
            f"{f.name} = {number:g} {f.unit} is outside the plausible range {f.low:g}–{f.high:g} {f.unit}; check the value and its unit"
        )
    return number


def parse_field(value: object, name: str) -> float:
    """One clinical value (``name`` is ``"CEA"``, ``"CA125"`` or ``"age"``), parsed and
    range-checked as :func:`parse_clinical` does (a decimal comma is read as a decimal point).

    Example:
        >>> parse_field("3,2", "CEA")
        3.2

    Raises:
        ClinicalValueError: naming the field; KeyError: an unknown ``name``.
    """
    by_name = {f.name: f for f in FIELDS}
    return _parse_one(value, by_name[name])


def parse_clinical(*, cea: object, ca125: object, age: object) -> ClinicalValues:
    """Validate CEA (ng/mL), CA125 (U/mL) and age (years); raise ClinicalValueError naming the field."""
    return ClinicalValues(*(_parse_one(v, f) for v, f in zip((cea, ca125, age), FIELDS)))


REQUIRED_COLUMNS = ("case_id", "CEA", "CA125", "age")


def read_clinical_csv(path: str | os.PathLike[str]) -> dict[str, ClinicalValues | ClinicalValueError]:
    """Read a clinical CSV (columns ``case_id, CEA, CA125, age``; more allowed; header names are
    matched case-insensitively; rules of :mod:`pipeline.inputs.csvtable`).

    Returns {case_id: ClinicalValues or the ClinicalValueError of that row}, so a batch can report
    a bad row (a bad value, or more fields than columns) in that case's result instead of
    stopping. File-level problems (missing file or columns, a column twice, empty or duplicate
    case ids) raise :class:`CohortError`.
    """
    from pipeline.inputs.csvtable import read_table

    path = Path(path)
    if not path.is_file():
        raise CohortError("clinical CSV not found")
    table = read_table(path, what="clinical CSV", required=REQUIRED_COLUMNS)
    out: dict[str, ClinicalValues | ClinicalValueError] = {}
    for row in table.rows:
        case_id = (row.values.get("case_id") or "").strip()
        if not case_id:
            raise CohortError(f"clinical CSV line {row.line} has an empty case_id")
        if case_id in out:
            raise CohortError(f"clinical CSV lists case_id {case_id!r} more than once (line {row.line})")
        if row.problem:
            out[case_id] = ClinicalValueError(row.problem)
            continue
        try:
            out[case_id] = parse_clinical(cea=row.values.get("cea"), ca125=row.values.get("ca125"),
                                          age=row.values.get("age"))
        except ClinicalValueError as err:
            out[case_id] = err
    if not out:
        raise CohortError("clinical CSV has no rows")
    return out
