"""Read a small user CSV (clinical values, case manifest) without silent misreads.

* UTF-8 (a byte-order mark is fine); the separator is ``,``, or ``;`` / tab when the header line
  holds no comma (a spreadsheet saved with a European locale, where ``4,1`` is a decimal);
* column names are matched case-insensitively and without surrounding blanks; a required column
  present twice (``age`` and ``Age``) is refused, since either copy could be the right one;
* a row with more fields than the header has columns (``P1,4,1,18,66``: an unquoted decimal
  comma shifts every value after it) is returned with a problem for that row only.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.csv")
    >>> _ = open(p, "w").write("case_id,CEA\\nP1,4,1\\nP2,3.5\\n")
    >>> table = read_table(p, what="clinical CSV", required=("case_id", "CEA"))
    >>> [(r.line, r.values["cea"], r.problem is not None) for r in table.rows]
    [(2, '4', True), (3, '3.5', False)]
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import CohortError


@dataclass(frozen=True)
class Row:
    """One data row: ``values`` by lower-case column name; ``problem`` says why the row as a
    whole cannot be trusted (``None`` if it can)."""

    line: int
    values: dict[str, str]
    problem: str | None = None


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]  # lower-case, stripped, in file order
    rows: list[Row]


def _delimiter(first_line: str) -> str:
    if "," not in first_line:
        for candidate in (";", "\t"):
            if candidate in first_line:
                return candidate
    return ","


def read_table(path: str | os.PathLike[str], *, what: str, required: tuple[str, ...]) -> Table:
    """Rows of the CSV at ``path`` (see module rules); ``what`` names it in messages.

    Raises:
        CohortError: not UTF-8, malformed, a required column missing or present twice.
    """
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            fh.seek(0)
            reader = csv.reader(fh, delimiter=_delimiter(first))
            header = next(reader, [])
            columns = tuple(h.strip().lower() for h in header)
            missing = [c for c in required if c.lower() not in columns]
            if missing:
                raise CohortError(f"{what} lacks column(s) {', '.join(missing)}; required: {', '.join(required)}")
            twice = [c for c in required if columns.count(c.lower()) > 1]
            if twice:
                names = [h.strip() for h in header if h.strip().lower() == twice[0].lower()]
                raise CohortError(f"{what} has the column {twice[0]} more than once ({' and '.join(names)}); "
                                  "keep one")
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue  # a blank line
                problem = None
                if len(fields) > len(columns):
                    problem = (f"the {what} row of this case (line {reader.line_num}) has {len(fields)} fields for "
                               f"{len(columns)} columns (a decimal comma without quotes?); quote such values or "
                               "use a decimal point")
                values = {}
                for name, value in zip(columns, fields):
                    if name and name not in values:
                        values[name] = value
                rows.append(Row(reader.line_num, values, problem))
    except UnicodeDecodeError:
        raise CohortError(f"{what} is not UTF-8 text") from None
    except csv.Error as exc:
        raise CohortError(f"{what} is malformed: {exc}") from None
    return Table(columns, rows)
