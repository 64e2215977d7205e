"""``pleura batch`` killed with SIGKILL at any moment loses nothing and repeats nothing.

The batch is started as a subprocess, killed (its whole process group, i.e. the workers too)
once 1, 3 and then 6 rows have reached the journal ``<out>.journal.jsonl``, and finally re-run
to completion. At every kill point the results CSV must parse (it is replaced atomically, never
truncated) and hold only rows the journal also has; a torn last journal line (a crash in the
middle of a write) is simulated and must be tolerated. In the end there is exactly one row per
case, identical to an uninterrupted run (same probabilities), and the journal holds a finished
row for every case, so a further re-run has nothing left to do.

One worker by default (about a minute and a half); two worker processes is marked slow.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core.journal import read_journal
from pipeline.serving.batch import RESULT_COLUMNS

REPO = Path(__file__).resolve().parents[2]
N_CASES = 8
KILL_AFTER_ROWS = (1, 3, 6)
COMPARED = ("status", "probability", "risk_band", "tree_p05", "tree_p95", "top_features", "warnings", "error",
            "model_id", "ct_sha256", "roi_sha256", "input_key")


@pytest.fixture(scope="module")
def cases(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """8 phantom cases in a flat folder and their clinical CSV (beside the folder)."""
    src = phantom_cohort.parent
    root = tmp_path_factory.mktemp("crash")
    folder = root / "cases"
    folder.mkdir()
    rows = list(csv.DictReader(phantom_cohort.open()))[:N_CASES]
    with (root / "clinical.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "CEA", "CA125", "age"])
        for row in rows:
            shutil.copy(src / row["ct_path"], folder / row["ct_path"])
            shutil.copy(src / row["roi_path"], folder / row["roi_path"])
            writer.writerow([row["case_id"], row["CEA"], row["CA125"], row["age"]])
    return folder, root / "clinical.csv"


def _args(cases: tuple[Path, Path], out: Path, bundle: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", "batch", str(cases[0]), "--clinical", str(cases[1]),
            "--out", str(out), "--bundle", str(bundle), "--workers", str(workers), "--threads", "1", "--quiet"]


def _journal_rows(path: Path) -> int:
    return len(read_journal(path)) if path.exists() else 0


def _kill_after(args: list[str], journal: Path, n_rows: int, *, timeout: float = 300.0) -> int:
    """Start the batch in its own process group, SIGKILL the group as soon as the journal holds
    ``n_rows`` rows; return the number of rows at the kill."""
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(args, cwd=REPO, stdout=devnull, stderr=devnull, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while _journal_rows(journal) < n_rows:
            assert proc.poll() is None, f"the batch ended (exit {proc.returncode}) before {n_rows} rows"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group had already exited
            pass
        proc.wait(timeout=60)
    return _journal_rows(journal)


def _csv_rows(out: Path) -> list[dict[str, str]]:
    """The results CSV, checked to be complete: the full header, every field of every row."""
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
        rows = list(reader)
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), f"truncated row {row}"
    ids = [row["case_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a case appears twice"
    return rows


def _by_case(rows: list[dict[str, str]]) -> dict[str, tuple[str, ...]]:
    return {row["case_id"]: tuple(row[c] for c in COMPARED) for row in rows}


@pytest.fixture(scope="module")
def reference(cases: tuple[Path, Path], tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("reference") / "results.csv"
    r = subprocess.run(_args(cases, out, tiny_bundle, 1), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    rows = _by_case(_csv_rows(out))
    assert len(rows) == N_CASES and all(v[0] == "ok" for v in rows.values())
    return rows


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_killed_batch_resumes_to_the_uninterrupted_results(cases: tuple[Path, Path], tiny_bundle: Path,
                                                           reference: dict, tmp_path: Path, workers: int,
                                                           capsys: pytest.CaptureFixture):
    out = tmp_path / "results.csv"
    journal = out.with_name(out.name + ".journal.jsonl")
    args = _args(cases, out, tiny_bundle, workers)
    seen, kills = 0, []
    for n_rows in KILL_AFTER_ROWS:
        at_kill = _kill_after(args, journal, n_rows)
        assert at_kill >= max(n_rows, seen), "journal rows were lost across a kill"
        seen = at_kill
        kills.append(at_kill)
        if out.exists():  # the CSV is rewritten at most once a second: it may lag, never break
            rows = _csv_rows(out)
            assert len(rows) <= at_kill
            assert {row["input_key"] for row in rows} <= set(read_journal(journal))
    # a crash in the middle of a journal write leaves a torn last line
    with journal.open("a", encoding="utf-8") as fh:
        fh.write('{"case_id": "case_0007", "status": "ok", "probabil')

    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert f"{N_CASES} of {N_CASES} cases scored, 0 failed, {seen} already done (resumed)" in r.stdout
    final = _by_case(_csv_rows(out))
    assert final == reference, "resumed results differ from an uninterrupted run"

    # nothing was lost from the journal either (the row written after the torn line included):
    # every case has a finished row, so one more run would have nothing left to score
    journal_rows = read_journal(journal)
    assert set(journal_rows) == {v[-1] for v in reference.values()}
    assert all(row["status"] == "ok" for row in journal_rows.values())
    with capsys.disabled():
        print(f"\n[crash] workers={workers}: SIGKILLed with {kills} journal rows, resumed to {N_CASES}/{N_CASES} "
              "rows identical to the uninterrupted run; 0 lost, 0 repeated")
