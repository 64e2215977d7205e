"""Hostile and careless use of ``pleura batch``/``score`` (issue 15), through the real command.

Signals (item 9: SIGTERM to ``--workers 2`` stops the workers, the batch resumes), output safety
(items 6, 15, 19, the read-only output folder: refused before any work, one writer at a time),
an unreadable CT (item 8: its row fails, the others are scored), a bad ``--threads`` (item 18),
formula and terminal-escape case ids (items 7, 22) and a FIFO in a DICOM folder (item 10).
Files a process must not read are made unreadable with ``chmod``; when the tests run as root
(who reads anything) the command runs as user ``nobody`` through ``setpriv`` (skipped if absent).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.core.hashing import path_sha256
from pipeline.serving.batch import read_journal

REPO = Path(__file__).resolve().parents[2]
PLEURA = [sys.executable, "-m", "pipeline.cli.main"]
N_CASES = 6


def _run(*args: str, env: dict[str, str] | None = None, user: bool = False,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [*PLEURA, *args]
    if user and os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or REPO, timeout=900, env=full_env)


@pytest.fixture()
def cases(phantom_cohort: Path, tiny_bundle: Path) -> Iterator[tuple[Path, Path, Path]]:
    """6 phantom cases (flat folder), their clinical CSV and a copy of the tiny bundle, in a
    folder every user may read and write (for the runs as ``nobody``)."""
    root = Path(tempfile.mkdtemp(prefix="pleura-hostile-"))
    os.chmod(root, 0o777)
    folder = root / "cases"
    folder.mkdir()
    rows = list(csv.DictReader(phantom_cohort.open()))[:N_CASES]
    with (root / "clinical.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "CEA", "CA125", "age"])
        for row in rows:
            for col in ("ct_path", "roi_path"):
                shutil.copy(phantom_cohort.parent / row[col], folder / row[col])
            writer.writerow([row["case_id"], row["CEA"], row["CA125"], row["age"]])
    shutil.copytree(tiny_bundle, root / "bundle")
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o777 if p.is_dir() else 0o644)
    yield folder, root / "clinical.csv", root / "bundle"
    shutil.rmtree(root, ignore_errors=True)


def _batch(cases: tuple[Path, Path, Path], out: Path, *extra: str) -> list[str]:
    folder, clinical, bundle = cases
    return ["batch", str(folder), "--clinical", str(clinical), "--out", str(out), "--bundle", str(bundle),
            "--threads", "1", *extra]


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {row["case_id"]: row for row in csv.DictReader(out.open(encoding="utf-8", newline=""))}


def _needs_unprivileged_user() -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")


# ------------------------------------------------------------------------------------------------
# signals
def test_sigterm_stops_the_workers_and_leaves_a_resumable_batch(cases: tuple[Path, Path, Path]) -> None:
    out = cases[0].parent / "results.csv"
    journal = out.with_name(out.name + ".journal.jsonl")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLEURA_AUDIT_LOG": str(out.parent / "audit.jsonl")}
    proc = subprocess.Popen([*PLEURA, *_batch(cases, out, "--workers", "2", "--quiet")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while (not journal.exists() or not read_journal(journal)) and proc.poll() is None:
            assert time.monotonic() < deadline, "no case finished"
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGTERM)  # the parent only, as `kill PID` or a container stop does
        _stdout, stderr = proc.communicate(timeout=120)
        gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, f"workers still running after SIGTERM: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().endswith("interrupted (finished cases are kept: run the same command again to resume)")
    done = len(read_journal(journal))
    assert 1 <= done and len(_rows(out)) == done, "the CSV holds what the journal holds"

    r = _run(*_batch(cases, out, "--workers", "2", "--quiet"), env={"PLEURA_AUDIT_LOG": str(out.parent / "audit.jsonl")})
    assert r.returncode == 0, r.stderr
    assert f"{N_CASES} of {N_CASES} cases scored, 0 failed" in r.stdout
    if done < N_CASES:
        assert f"{done} already done (resumed)" in r.stdout
    assert len(_rows(out)) == N_CASES and len(read_journal(journal)) == N_CASES


# ------------------------------------------------------------------------------------------------
# output safety
def test_a_second_batch_on_the_same_output_is_refused_naming_the_holder(cases: tuple[Path, Path, Path]) -> None:
    out = cases[0].parent / "results.csv"
    lock = out.with_name(out.name + ".lock")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLEURA_AUDIT_LOG": str(out.parent / "audit.jsonl")}
    first = subprocess.Popen([*PLEURA, *_batch(cases, out, "--quiet")], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (lock.exists() and lock.read_text().strip()) and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        holder = json.loads(lock.read_text())
        second = _run(*_batch(cases, out, "--quiet"), env={"PLEURA_AUDIT_LOG": str(out.parent / "audit.jsonl")})
        stdout, stderr = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip() == (f"error: another pleura batch is writing these results (pid {first.pid} on host "
                                     f"{holder['host']}, started {holder['started']}); wait for it to finish or "
                                     "choose another --out")
    assert first.returncode == 0, stderr
    journal_lines = out.with_name(out.name + ".journal.jsonl").read_text().splitlines()
    audit_lines = (out.parent / "audit.jsonl").read_text().splitlines()
    assert len(journal_lines) == len(audit_lines) == len(_rows(out)) == N_CASES, "every case scored once"


def test_outputs_that_are_inputs_folders_or_read_only_are_refused_before_any_work(
        cases: tuple[Path, Path, Path]) -> None:
    folder, clinical, bundle = cases
    before = clinical.read_bytes()
    r = _run(*_batch(cases, clinical, "--quiet"))
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --out would overwrite one of this run's inputs; choose another results file"), r.stderr
    assert clinical.read_bytes() == before
    r = _run(*_batch(cases, folder.parent, "--quiet"))
    assert r.returncode == 2 and "error: --out is an existing folder; give the results a file name" in r.stderr
    assert not list(folder.parent.glob("*.journal.jsonl")), "no stray journal"
    r = _run(*_batch(cases, bundle / "results.csv", "--quiet"))
    assert r.returncode == 2 and "--out lies inside an input folder" in r.stderr

    _needs_unprivileged_user()
    locked = folder.parent / "read_only"
    locked.mkdir()
    os.chmod(locked, 0o555)
    r = _run(*_batch(cases, locked / "results.csv", "--quiet"), user=True,
             env={"PLEURA_AUDIT_LOG": str(folder.parent / "audit.jsonl")})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("error: the results cannot be written where --out points: the folder is not writable "
                                "(Permission denied); choose another --out")


def test_features_refuses_an_output_that_is_its_cohort(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("case_id,ct_path,roi_path,CEA,CA125,age,label\n")
    r = _run("features", str(cohort), "--out", str(cohort))
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --out would overwrite one of this run's inputs; choose another results file")
    assert cohort.read_text() == "case_id,ct_path,roi_path,CEA,CA125,age,label\n"


def test_an_unreadable_ct_fails_its_row_and_the_others_are_scored(cases: tuple[Path, Path, Path]) -> None:
    _needs_unprivileged_user()
    folder = cases[0]
    victim = sorted(folder.glob("*_ct.nii.gz"))[1]
    os.chmod(victim, 0)
    out = folder.parent / "results.csv"
    r = _run(*_batch(cases, out, "--quiet"), user=True, env={"PLEURA_AUDIT_LOG": str(folder.parent / "audit.jsonl")})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and str(folder) not in r.stderr + r.stdout
    rows = _rows(out)
    bad = rows[victim.name.removesuffix("_ct.nii.gz")]
    assert (bad["status"], bad["error_type"], bad["error"]) == ("error", "read", "the CT cannot be opened (permission denied)")
    assert sum(row["status"] == "ok" for row in rows.values()) == N_CASES - 1


def test_a_negative_thread_count_is_a_usage_error() -> None:
    r = _run("batch", "cases", "--out", "x.csv", "--threads", "-1")
    assert r.returncode == 2 and "argument --threads: must be at least 1, got -1" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# hostile case ids
def test_formula_and_escape_case_ids_are_neutralised_in_the_csv_and_on_the_terminal(
        cases: tuple[Path, Path, Path]) -> None:
    folder, clinical, bundle = cases
    firsts = sorted(folder.glob("*_ct.nii.gz"))[:3]
    hostile = {"=SUM(1+2)": firsts[0], "-2+3": firsts[1], "P\x1b[2J\x1b]0;owned\x07": firsts[2]}
    lines = ["case_id,CEA,CA125,age"]
    for case_id, ct in hostile.items():
        stem = ct.name.removesuffix("_ct.nii.gz")
        ct.rename(folder / f"{case_id}_ct.nii.gz")
        (folder / f"{stem}_roi.nii.gz").rename(folder / f"{case_id}_roi.nii.gz")
        lines.append(f"{case_id},{'abc' if case_id.startswith('P') else '3'},10,60")
    for p in folder.glob("case_*"):
        p.unlink()
    clinical.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = folder.parent / "results.csv"
    r = _run(*_batch(cases, out), env={"PLEURA_AUDIT_LOG": str(folder.parent / "audit.jsonl")})
    assert r.returncode == 1, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "P\\x1b[2J\\x1b]0;owned\\x07: clinical" in r.stderr
    rows = _rows(out)
    assert set(rows) == {"'=SUM(1+2)", "'-2+3", "P\x1b[2J\x1b]0;owned\x07"}
    assert rows["'=SUM(1+2)"]["status"] == rows["'-2+3"]["status"] == "ok"


# ------------------------------------------------------------------------------------------------
# a FIFO in a DICOM folder (a read would block for ever): skipped
_READ_DICOM = """
import sys
from pipeline.io.readers import read_image
print(read_image(sys.argv[1], role='CT').shape_zyx)
"""


def test_a_fifo_in_a_dicom_folder_is_skipped_not_waited_for(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests" / "reliability"))
    from bad_input_corpus import UID, _small_hu, write_dicom_series

    folder = write_dicom_series(tmp_path / "ct", _small_hu(6), uid=UID)
    os.mkfifo(folder / "IM9999.dcm")
    assert stat.S_ISFIFO(os.stat(folder / "IM9999.dcm").st_mode)
    r = subprocess.run([sys.executable, "-c", _READ_DICOM, str(folder)], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "(6, 10, 12)", r.stderr
    assert len(path_sha256(folder)) == 64
    fifo_ct = tmp_path / "ct.nii.gz"
    os.mkfifo(fifo_ct)
    r = _run("score", str(fifo_ct), str(fifo_ct), "--cea", "3", "--ca125", "10", "--age", "60")
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: CT is not a regular file (a pipe, device or socket); give an image file")


# ------------------------------------------------------------------------------------------------
# two DICOM series in one CT folder (item 11): the series used is named; --series chooses
def test_score_names_the_dicom_series_it_read_and_series_chooses_another(phantom_cohort: Path, tiny_bundle: Path,
                                                                        tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests" / "reliability"))
    from bad_input_corpus import UID, write_dicom_series

    from pipeline.io.readers import read_image

    ct = read_image(phantom_cohort.parent / "case_0000_ct.nii.gz")
    hu = ct.array.astype("int16")
    write_dicom_series(tmp_path / "ct" / "a", hu, uid=UID + ".64", spacing_xyz=ct.spacing_xyz, origin_xyz=ct.origin_xyz)
    x, y, z = ct.origin_xyz
    write_dicom_series(tmp_path / "ct" / "b", hu[:30], uid=UID + ".30", spacing_xyz=ct.spacing_xyz,
                       origin_xyz=(x, y, z + 400.0), prefix="B")  # another scan, elsewhere
    args = ["score", str(tmp_path / "ct"), str(phantom_cohort.parent / "case_0000_roi.nii.gz"), "--cea", "3",
            "--ca125", "10", "--age", "60", "--bundle", str(tiny_bundle)]
    r = _run(*args)
    assert r.returncode == 0, r.stderr
    note = next(line for line in r.stderr.splitlines() if line.startswith("note:") and "other series" in line)
    assert f"{UID}.64, 64 slices" in note and f"{UID}.30, 30 slices" in note and "--series UID" in note, note
    r = _run(*args, "--series", f"{UID}.30")
    assert r.returncode == 2 and "ROI mask and CT do not overlap in space" in r.stderr, r.stderr
