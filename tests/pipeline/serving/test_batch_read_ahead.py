"""The in-process batch reads the next case while it scores the current one (``ReadAhead``):
rows, errors and demo-bundle probabilities are exactly those of reading each case in turn."""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.inputs.clinical import parse_clinical
from pipeline.inputs.cohort import CaseInput
from pipeline.serving import batch

REPO = Path(__file__).resolve().parents[3]


def _cases(cohort_csv: Path, n: int) -> list[CaseInput]:
    folder = cohort_csv.parent
    rows = list(csv.DictReader(cohort_csv.open()))[:n]
    cases = [CaseInput(case_id=r["case_id"], ct_path=str(folder / r["ct_path"]), roi_path=str(folder / r["roi_path"]),
                       clinical=parse_clinical(cea=r["CEA"], ca125=r["CA125"], age=r["age"])) for r in rows]
    first = cases[0]
    # a CT given as the ROI (refused while reading) and a missing ROI file, between good cases
    cases.insert(1, CaseInput(case_id="ct-as-roi", ct_path=first.ct_path, roi_path=first.ct_path,
                              clinical=first.clinical))
    cases.insert(3, CaseInput(case_id="missing-roi", ct_path=first.ct_path, roi_path=str(folder / "nope.nii.gz"),
                              clinical=first.clinical))
    return cases


def _run(cases: list[CaseInput], *, read_ahead: bool) -> list[dict]:
    out = batch.run_pool(((c, c.case_id) for c in cases), fn=batch._score_in_worker, extra_args=(None,), workers=1,
                         initializer=batch._init_worker, initargs=(str(REPO / "weights" / "demo"), 1),
                         on_crash=batch._crash_row, prefetch=batch._read_ahead_hook(None) if read_ahead else None)
    return [{k: v for k, v in row.items() if k != "seconds"} for _key, row in out]


def test_read_ahead_gives_the_same_rows(phantom_cohort: Path, monkeypatch) -> None:  # noqa: ANN001
    cases = _cases(phantom_cohort, 4)
    reads: list[str] = []
    real_read = batch.ReadAhead._read.__func__

    def counting_read(cls, case, label, scorer):  # noqa: ANN001, ANN202
        reads.append(case.case_id)
        return real_read(cls, case, label, scorer)

    plain = _run(cases, read_ahead=False)
    monkeypatch.setattr(batch.ReadAhead, "_read", classmethod(counting_read))
    ahead = _run(cases, read_ahead=True)
    assert reads == [c.case_id for c in cases]  # every case was read by the helper thread
    assert ahead == plain  # same probabilities (bitwise), warnings, errors
    assert [r["status"] for r in plain] == ["ok", "error", "ok", "error", "ok", "ok"]
    assert not batch._READ_AHEAD.enabled and batch._READ_AHEAD._pool is None  # closed at the end
