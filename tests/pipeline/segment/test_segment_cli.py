"""``pleura segment`` and ``pleura score --seed-mm`` / a batch manifest with ``seed_mm``, end to end
through the real command (demo bundle), on a phantom with a tumour touching the pleura."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.readers import read_image, write_image
from pipeline.synth import PhantomSpec, TumourSpec, make_phantom

PLEURA = [sys.executable, "-m", "pipeline.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLEURA, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):
    ph = make_phantom(PhantomSpec.for_size("medium", tumour=TumourSpec(diameter_mm=28.0, distance_to_pleura_mm=0.0),
                                           seed=3))
    d = tmp_path_factory.mktemp("semiauto")
    write_image(ph.ct, d / "ct.nii.gz")
    write_image(ph.roi, d / "roi.nii.gz")
    return d, ph


def mm(ph) -> str:
    return ",".join(f"{v:.2f}" for v in ph.truth.tumour_centre_xyz_mm)


def test_segment_writes_the_roi_and_says_how(case):
    d, ph = case
    r = run("segment", str(d / "ct.nii.gz"), f"--seed-mm={mm(ph)}", "--out", str(d / "auto.nii.gz"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "semi-automatic" and info["capped"] is False and info["volume_ml"] > 1
    roi = read_image(d / "auto.nii.gz", role="ROI mask")
    a, b = roi.array > 0, ph.roi.array > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8
    assert roi.spacing_xyz == pytest.approx(ph.ct.spacing_xyz) and roi.origin_xyz == pytest.approx(ph.ct.origin_xyz)
    # the same click as a voxel index (ITK i, j, k), in plain text
    ijk = ",".join(str(v) for v in info["seed_ijk"])
    r = run("segment", str(d / "ct.nii.gz"), "--seed-voxel", ijk, "--out", str(d / "auto2.nii.gz"))
    assert r.returncode == 0 and "semi-automatic" in r.stdout and "mL" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--seed-mm=1,2"], "three numbers X,Y,Z"),
    (["--seed-voxel", "0,0,0"], "outside the body"),
    (["--seed-mm=0,0,0", "--sensitivity", "3"], "sensitivity must be within"),
])
def test_segment_bad_click_is_one_error_line(case, args, words):
    d, _ph = case
    r = run("segment", str(d / "ct.nii.gz"), *args, "--out", str(d / "bad.nii.gz"))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert not (d / "bad.nii.gz").exists()


def test_score_with_a_click_instead_of_a_mask(case):
    d, ph = case
    r = run("score", str(d / "ct.nii.gz"), f"--seed-mm={mm(ph)}", "--cea", "4", "--ca125", "15", "--age", "66",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0.0 <= out["probability"] <= 1.0
    assert out["roi_source"]["kind"] == "semi-automatic"
    assert out["roi_source"]["seed_xyz_mm"] == pytest.approx(list(ph.truth.tumour_centre_xyz_mm), abs=0.01)
    r2 = run("score", str(d / "ct.nii.gz"), str(d / "roi.nii.gz"), f"--seed-mm={mm(ph)}", "--cea", "4",
             "--ca125", "15", "--age", "66")
    assert r2.returncode == 2 and "not both" in r2.stderr


def test_batch_manifest_with_seed_mm(case):
    d, ph = case
    with (d / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "ct_path", "roi_path", "seed_mm", "CEA", "CA125", "age"])
        w.writerow(["clicked", "ct.nii.gz", "", mm(ph), 4, 15, 66])
        w.writerow(["in_air", "ct.nii.gz", "", ",".join(str(v) for v in np.asarray(ph.ct.origin_xyz) + 1), 4, 15, 66])
        w.writerow(["garbled", "ct.nii.gz", "", "left lung", 4, 15, 66])
    r = run("batch", str(d / "manifest.csv"), "--out", str(d / "results.csv"), "--quiet")
    assert r.returncode == 1, r.stderr
    rows = {row["case_id"]: row for row in csv.DictReader((d / "results.csv").open())}
    assert rows["clicked"]["status"] == "ok" and rows["clicked"]["roi_source"].startswith("semi-automatic from click")
    assert rows["in_air"]["status"] == "error" and "outside the body" in rows["in_air"]["error"]
    assert rows["garbled"]["error_type"] == "seed" and "three numbers" in rows["garbled"]["error"]
