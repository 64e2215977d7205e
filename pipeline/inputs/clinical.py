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

import csv
import math
import os
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


def _parse_one(value: object, f: ClinicalField) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise ClinicalValueError(f"{f.name} is missing; enter it in {f.unit}")
    if isinstance(value, bool):
        raise ClinicalValueError(f"{f.name} must be a number in {f.unit} (got {value!r})")
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
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


def parse_clinical(*, cea: object, ca125: object, age: object) -> ClinicalValues:
    """Validate CEA (ng/mL), CA125 (U/mL) and age (years); raise ClinicalValueError naming the field."""
    return ClinicalValues(*(_parse_one(v, f) for v, f in zip((cea, ca125, age), FIELDS)))


REQUIRED_COLUMNS = ("case_id", "CEA", "CA125", "age")


def read_clinical_csv(path: str | os.PathLike[str]) -> dict[str, ClinicalValues | ClinicalValueError]:
    """Read a clinical CSV (columns ``case_id, CEA, CA125, age``; more allowed; header names are
    matched case-insensitively).

    Returns {case_id: ClinicalValues or the ClinicalValueError of that row}, so a batch can report
    a bad row in that case's result instead of stopping. File-level problems (missing file or
    columns, empty or duplicate case ids) raise :class:`CohortError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CohortError("clinical CSV not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            lookup = {h.strip().lower(): h for h in header if h}
            missing = [c for c in REQUIRED_COLUMNS if c.lower() not in lookup]
            if missing:
                raise CohortError(
                    f"clinical CSV lacks column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}"
                )
            rows = list(reader)
    except UnicodeDecodeError:
        raise CohortError("clinical CSV is not UTF-8 text") from None
    except csv.Error as exc:
        raise CohortError(f"clinical CSV is malformed: {exc}") from None
    out: dict[str, ClinicalValues | ClinicalValueError] = {}
    for line_no, row in enumerate(rows, start=2):
        case_id = (row.get(lookup["case_id"]) or "").strip()
        if not case_id:
            raise CohortError(f"clinical CSV line {line_no} has an empty case_id")
        if case_id in out:
            raise CohortError(f"clinical CSV lists case_id {case_id!r} more than once (line {line_no})")
        try:
            out[case_id] = parse_clinical(
                cea=row.get(lookup["cea"]), ca125=row.get(lookup["ca125"]), age=row.get(lookup["age"])
            )
        except ClinicalValueError as err:
            out[case_id] = err
    if not out:
        raise CohortError("clinical CSV has no rows")
    return out
