"""End to end through the ``pleura`` command: score, batch with a broken case, resume, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLEURA = [sys.executable, "-m", "pipeline.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLEURA, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def batch_dir(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 phantom cases + 1 broken case (truncated CT) + clinical.csv."""
    src = phantom_cohort.parent
    dst = tmp_path_factory.mktemp("batch")
    rows = list(csv.DictReader(phantom_cohort.open()))[:4]
    for row in rows:
        for col in ("ct_path", "roi_path"):
            shutil.copy(src / row[col], dst / row[col])
    broken = dst / rows[3]["ct_path"]
    broken.write_bytes(broken.read_bytes()[:2000])
    with (dst / "clinical.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "CEA", "CA125", "age"])
        for row in rows:
            w.writerow([row["case_id"], row["CEA"], row["CA125"], row["age"]])
    return dst


def test_score_prints_probability_features_and_notice(tiny_bundle: Path, phantom_cohort: Path):
    d = phantom_cohort.parent
    r = run("score", str(d / "case_0000_ct.nii.gz"), str(d / "case_0000_roi.nii.gz"),
            "--cea", "4.2", "--ca125", "15", "--age", "63", "--bundle", str(tiny_bundle))
    assert r.returncode == 0, r.stderr
    assert "VPI probability:" in r.stdout and "Top contributing features" in r.stdout
    assert "Research use only; demo model trained on synthetic data." in r.stdout


def test_score_json(tiny_bundle: Path, phantom_cohort: Path):
    d = phantom_cohort.parent
    r = run("score", str(d / "case_0001_ct.nii.gz"), str(d / "case_0001_roi.nii.gz"),
            "--cea", "4.2", "--ca125", "15", "--age", "63", "--bundle", str(tiny_bundle), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 <= out["probability"] <= 1 and out["notice"].startswith("Research use only")


@pytest.mark.parametrize("args,message", [
    (("--cea", "-3", "--ca125", "15", "--age", "63"), "CEA must be ≥ 0 ng/mL"),
    (("--cea", "3", "--ca125", "abc", "--age", "63"), "CA125 must be a number in U/mL"),
    (("--cea", "3", "--ca125", "15", "--age", "250"), "age = 250 years is outside the plausible range"),
])
def test_bad_clinical_values_give_one_line_errors(tiny_bundle: Path, phantom_cohort: Path, args, message):
    d = phantom_cohort.parent
    r = run("score", str(d / "case_0000_ct.nii.gz"), str(d / "case_0000_roi.nii.gz"), *args, "--bundle", str(tiny_bundle))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {r.stderr.strip()[7:]}"]
    assert message in r.stderr and "Traceback" not in r.stderr


def test_missing_image_and_bundle_errors(tiny_bundle: Path, tmp_path: Path, phantom_cohort: Path):
    r = run("score", str(tmp_path / "nope.nii.gz"), str(tmp_path / "nope2.nii.gz"), "--cea", "1", "--ca125", "1",
            "--age", "50", "--bundle", str(tiny_bundle))
    assert r.returncode == 2 and r.stderr.strip() == "error: CT file not found"
    d = phantom_cohort.parent
    r = run("score", str(d / "case_0000_ct.nii.gz"), str(d / "case_0000_roi.nii.gz"), "--cea", "1", "--ca125", "1",
            "--age", "50", "--bundle", str(tmp_path))
    assert r.returncode == 2 and "no manifest.json" in r.stderr


def test_batch_reports_broken_case_in_its_row_and_resumes(tiny_bundle: Path, batch_dir: Path, tmp_path: Path):
    out = tmp_path / "results.csv"
    r = run("batch", str(batch_dir), "--clinical", str(batch_dir / "clinical.csv"), "--out", str(out),
            "--bundle", str(tiny_bundle), "--quiet")
    assert r.returncode == 1, r.stderr  # one case failed
    rows = list(csv.DictReader(out.open()))
    assert [row["case_id"] for row in rows] == ["case_0000", "case_0001", "case_0002", "case_0003"]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "error"]
    assert "truncated" in rows[3]["error"]
    assert all(0 <= float(row["probability"]) <= 1 for row in rows[:3])
    assert all(row["notice"] == "Research use only; demo model trained on synthetic data." for row in rows)
    assert "3 of 4 cases scored, 1 failed" in r.stdout
    # re-run: everything already done, identical file, no duplicates
    before = out.read_text()
    r2 = run("batch", str(batch_dir), "--clinical", str(batch_dir / "clinical.csv"), "--out", str(out),
             "--bundle", str(tiny_bundle), "--quiet")
    assert "4 already done" in r2.stdout
    assert out.read_text() == before


def test_batch_with_two_workers_matches_one(tiny_bundle: Path, batch_dir: Path, tmp_path: Path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out, workers in ((a, "1"), (b, "2")):
        run("batch", str(batch_dir), "--clinical", str(batch_dir / "clinical.csv"), "--out", str(out),
            "--bundle", str(tiny_bundle), "--workers", workers, "--quiet")
    pa = [(r["case_id"], r["status"], r["probability"]) for r in csv.DictReader(a.open())]
    pb = [(r["case_id"], r["status"], r["probability"]) for r in csv.DictReader(b.open())]
    assert pa == pb


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for command in ("score", "batch", "synth", "features", "verify"):
        assert command in r.stdout


def test_an_unusable_setting_stops_a_command_with_one_line_naming_it():
    import os

    env = {**os.environ, "PLEURA_WORKERS": "two"}
    r = subprocess.run([*PLEURA, "verify"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: PLEURA_WORKERS must be a whole number from 1 to 256 (got 'two')"
