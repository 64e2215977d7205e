"""The Predict page's lab fields (CEA, CA125, age) as typed text: each field checked on its own
(so every error is reported at once, range errors before Predict), a decimal comma read as a
decimal point, and the value used shown exactly as the model receives it.

Example:
    >>> check = check_labs({"CEA": "3,2", "CA125": "5.14", "age": "64.7"})
    >>> check.values.as_features()
    {'CEA_ng_mL': 3.2, 'CA125_U_mL': 5.14, 'age_years': 64.7}
    >>> check_labs({"CEA": "-3", "CA125": "", "age": "15"}).problems()  # doctest: +NORMALIZE_WHITESPACE
    ['CEA must be ≥ 0 ng/mL (got -3)', 'CA125 is missing; enter it in U/mL',
     'age = 15 years is outside the plausible range 18–110 years; check the value and its unit']
    >>> exact_number(64.7), exact_number(3.0), exact_number(1e-7)
    ('64.7', '3', '1e-07')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.core.errors import ClinicalValueError
from pipeline.inputs.clinical import FIELDS, ClinicalValues, parse_field

LAB_NAMES = tuple(f.name for f in FIELDS)  # ("CEA", "CA125", "age")
LAB_LABELS = {f.name: f"{'Age' if f.name == 'age' else f.name} ({f.unit})" for f in FIELDS}
LAB_UNITS = {f.name: f.unit for f in FIELDS}
LAB_KEYS = {"CEA": "cea", "CA125": "ca125", "age": "age"}  # widget keys on the Predict page
LAB_PLACEHOLDERS = {"CEA": "e.g. 3.2", "CA125": "e.g. 18", "age": "e.g. 64"}


def exact_number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (Python's ``repr``), without a
    trailing ``.0``: what is shown is what the model uses, never a rounded copy."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class LabCheck:
    """Each lab field's parsed value (``parsed``) or its error sentence (``errors``); empty
    fields are listed in ``missing`` (not an error while the user is still typing)."""

    parsed: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    @property
    def values(self) -> ClinicalValues | None:
        """The three values once every field is valid, else ``None``."""
        if self.errors or self.missing:
            return None
        return ClinicalValues(*(self.parsed[n] for n in LAB_NAMES))

    def problems(self) -> list[str]:
        """Every problem, in field order (missing fields included): shown together at Predict."""
        out = []
        for name in LAB_NAMES:
            if name in self.errors:
                out.append(self.errors[name])
            elif name in self.missing:
                out.append(f"{name} is missing; enter it in {LAB_UNITS[name]}")
        return out

    def used_text(self, name: str) -> str | None:
        """``"3.2 ng/mL"``: the value the model will use for a valid field, else ``None``."""
        if name not in self.parsed:
            return None
        return f"{exact_number(self.parsed[name])} {LAB_UNITS[name]}"


def check_labs(texts: Mapping[str, object]) -> LabCheck:
    """Check each of CEA / CA125 / age (``texts[name]``: the typed text, ``None`` or ``""`` = empty)."""
    parsed: dict[str, float] = {}
    errors: dict[str, str] = {}
    missing: list[str] = []
    for name in LAB_NAMES:
        raw = texts.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            missing.append(name)
            continue
        try:
            parsed[name] = parse_field(raw, name)
        except ClinicalValueError as err:
            errors[name] = str(err)
    return LabCheck(parsed=parsed, errors=errors, missing=tuple(missing))
