"""The Docker image, built from this repository's Dockerfile and run with podman as a hospital would.

Opt-in (marker ``container``): ``bash scripts/test-container.sh`` builds the image in a scratch
podman store and runs this file with ``PLEURA_CONTAINER_IMAGE`` set; without it every test skips.
Every container runs without a network (``--network none``; the app, which needs its port
published, runs on a bridge inside the test's own network namespace that has only loopback) and,
unless a test says otherwise, hardened: read-only root file system with a tmpfs on /tmp, all
capabilities dropped, no new privileges. Cases are made on the host (``pleura synth``), mounted
read-only at /data; results and the audit log go to writable mounts owned by uid 10001.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from browser_helpers import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM,
    enter_labs,
    free_port,
    launch_chromium,
    open_predict_page,
    phantom_cases,
    upload_case,
)

IMAGE = os.environ.get("PLEURA_CONTAINER_IMAGE", "")
UID = 10001
# what the README's run lines use; podman's --read-only also adds tmpfs mounts of its own unless told not to
# (Docker does not), so --read-only-tmpfs=false makes podman behave like Docker here
HARDENED = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(not IMAGE or shutil.which("podman") is None,
                       reason="opt-in: bash scripts/test-container.sh builds the image and runs these"),
]


def podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``; podman's own log lines (``time="…" level=…``, e.g. that it cannot add a
    systemd timer for the image's HEALTHCHECK on a machine without systemd) are taken out of
    stderr, so what remains is the container's."""
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    r.stderr = "".join(line for line in r.stderr.splitlines(keepends=True)
                       if not (line.startswith('time="') and " level=" in line))
    return r


def run_in_image(*command: str, mounts: tuple[str, ...] = (), hardened: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``podman run --rm --network none`` [hardened flags] [-v mounts] [-e env] IMAGE command…"""
    opts = ["run", "--rm", "--network", "none", *(HARDENED if hardened else [])]
    for m in mounts:
        opts += ["-v", m]
    for k, v in (env or {}).items():
        opts += ["-e", f"{k}={v}"]
    return podman(*opts, IMAGE, *command)


def writable_for_image(path: Path) -> Path:
    """A host folder the image's user (uid 10001) can write, as an administrator would prepare it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, UID)
    return path


def host_pleura(*args: str, audit: Path) -> subprocess.CompletedProcess[str]:
    """The host's ``pleura`` command (beside this Python) on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLEURA_AUDIT_LOG": str(audit)}
    return subprocess.run([str(Path(sys.executable).parent / "pleura"), *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=900)


def score_args(case, ct: str, roi: str) -> list[str]:  # noqa: ANN001 - browser_helpers.PhantomCase
    return ["score", ct, roi, "--cea", case.row["CEA"], "--ca125", case.row["CA125"], "--age", case.row["age"], "--json"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small synthetic cases made on the host (``pleura synth``); returns their clinical.csv."""
    folder = tmp_path_factory.mktemp("cases")
    r = host_pleura("synth", str(folder), "--n", "3", "--seed", "21", "--size", "small", audit=folder / "unused.jsonl")
    assert r.returncode == 0, r.stderr
    (folder / "unused.jsonl").unlink(missing_ok=True)
    for p in folder.rglob("*"):  # readable by anyone, as cases on a share usually are
        p.chmod(0o755 if p.is_dir() else 0o644)
    folder.chmod(0o755)
    return folder / "clinical.csv"


@pytest.fixture(scope="module")
def host_probabilities(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """case_id → probability from the host's ``pleura score`` (same demo bundle as the image)."""
    audit = tmp_path_factory.mktemp("host-audit") / "audit.jsonl"
    out = {}
    for case in phantom_cases(cohort):
        r = host_pleura(*score_args(case, str(case.ct), str(case.roi)), "--bundle", str(REPO / "weights" / "demo"),
                        audit=audit)
        assert r.returncode == 0, r.stderr
        out[case.row["case_id"]] = json.loads(r.stdout)["probability"]
    return out


def in_data(cohort: Path, path: Path) -> str:
    return "/data/" + path.relative_to(cohort.parent).as_posix()


# ------------------------------------------------------------------------------------------------ tests
def test_runs_as_uid_10001_and_verifies_its_model_offline() -> None:
    r = run_in_image("id", "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(UID)
    r = run_in_image("pleura", "verify", "/app/weights/demo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: demo") and "files verified" in r.stdout
    assert "not a writable directory" not in r.stderr and "Warning" not in r.stderr, r.stderr


def test_image_keeps_no_build_inputs_and_no_root_owned_tmp() -> None:
    r = run_in_image("sh", "-c", "ls -A /tmp /mnt /run; python -c 'import torch; print(torch.__version__, "
                     "torch.cuda.is_available())'", hardened=False)
    assert r.returncode == 0, r.stderr
    listing, torch_line = r.stdout.rsplit("\n", 2)[0], r.stdout.strip().splitlines()[-1]
    assert "matplotlib" not in listing and "numba" not in listing  # nothing left in /tmp by the build
    assert "build" not in listing and "wheel" not in listing  # the build's mounts left no trace
    assert torch_line.endswith("+cpu False")  # the CPU build of torch


def test_score_with_read_only_cases_equals_the_host(cohort: Path, host_probabilities: dict[str, float],
                                                    tmp_path: Path) -> None:
    case = phantom_cases(cohort)[0]
    audit = writable_for_image(tmp_path / "audit")
    r = run_in_image("pleura", *score_args(case, in_data(cohort, case.ct), in_data(cohort, case.roi)),
                     mounts=(f"{cohort.parent}:/data:ro", f"{audit}:/audit"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # no warnings (matplotlib cache, audit log, …)
    probability = json.loads(r.stdout)["probability"]
    print(f"\nprobability in the image {probability!r}, on the host {host_probabilities[case.row['case_id']]!r}")
    assert probability == host_probabilities[case.row["case_id"]]
    lines = (audit / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["source"] == "cli"


def test_an_audit_log_on_the_read_only_cases_is_refused_before_scoring(cohort: Path) -> None:
    case = phantom_cases(cohort)[0]
    r = run_in_image("pleura", *score_args(case, in_data(cohort, case.ct), in_data(cohort, case.roi)),
                     mounts=(f"{cohort.parent}:/data:ro",), env={"PLEURA_AUDIT_LOG": "/data/audit/audit.jsonl"})
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().startswith("error: the audit log /data/audit/audit.jsonl cannot be written "
                                       "(Read-only file system): set PLEURA_AUDIT_LOG"), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_batch_reads_read_only_cases_and_writes_results_to_its_mount(cohort: Path, host_probabilities: dict[str, float],
                                                                    tmp_path: Path) -> None:
    results = writable_for_image(tmp_path / "results")
    audit = writable_for_image(tmp_path / "audit")
    r = run_in_image("pleura", "batch", "/data", "--clinical", "/data/clinical.csv", "--out", "/results/results.csv",
                     "--quiet", mounts=(f"{cohort.parent}:/data:ro", f"{results}:/results", f"{audit}:/audit"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 of 3 cases scored, 0 failed" in r.stdout
    with (results / "results.csv").open(newline="") as fh:
        rows = {row["case_id"]: row for row in csv.DictReader(fh)}
    assert set(rows) == set(host_probabilities)
    for case_id, p in host_probabilities.items():
        assert rows[case_id]["status"] == "ok"
        assert float(rows[case_id]["probability"]) == pytest.approx(p, abs=1e-6)
    assert len((audit / "audit.jsonl").read_text().splitlines()) == 3


@pytest.fixture(scope="module")
def app_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The image's default command (the app), hardened, its port published on 127.0.0.1."""
    audit = writable_for_image(tmp_path_factory.mktemp("app") / "audit")
    port = free_port()
    name = f"pleurarisk-test-app-{port}"
    r = podman("run", "-d", "--name", name, *HARDENED, "-p", f"127.0.0.1:{port}:8501", "-v", f"{audit}:/audit",
               IMAGE, timeout=120)
    assert r.returncode == 0, r.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                raise AssertionError(f"app not healthy (container {state}):\n{podman('logs', name).stderr[-4000:]}")
            time.sleep(1)
        yield {"url": url, "name": name, "audit": audit / "audit.jsonl"}
    finally:
        logs = podman("logs", name)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "container-app.log").write_text(logs.stdout + logs.stderr)
        podman("rm", "-f", "-t", "5", name, timeout=120)


def test_app_health_check_answers_on_the_published_port(app_container: dict) -> None:
    with urllib.request.urlopen(f"{app_container['url']}/_stcore/health", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"ok"
    r = podman("healthcheck", "run", app_container["name"])  # the image's own HEALTHCHECK, run inside it
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_predict_through_the_browser(app_container: dict, cohort: Path, host_probabilities: dict[str, float]) -> None:
    from playwright.sync_api import sync_playwright

    case = phantom_cases(cohort)[0]
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_predict_page(page, app_container["url"])
            upload_case(page, case)
            enter_labs(page, case.labs)
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Predict").click()
            metric = page.get_by_test_id("stMetricValue").first
            metric.wait_for(timeout=300_000)
            shown = metric.inner_text().strip()
            assert shown == f"{100 * host_probabilities[case.row['case_id']]:.0f} %"  # the page shows percent
            assert page.get_by_test_id("stAlert").filter(has_text="Prediction failed").count() == 0
            assert page.get_by_test_id("stAlert").filter(has_text="audit log").count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "container-predict.png"))
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "container-predict-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    records = [json.loads(line) for line in app_container["audit"].read_text().splitlines()]
    assert [r["source"] for r in records] == ["app"]
