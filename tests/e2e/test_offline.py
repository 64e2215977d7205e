"""Nothing is fetched at run time: batch scoring works in a network namespace with no network.

Uses ``unshare --net`` (root) so sockets really cannot leave the machine; skipped otherwise.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.offline


def _unshare_available() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


needs_netns = pytest.mark.skipif(not _unshare_available(), reason="needs root and unshare --net")


@needs_netns
def test_network_is_really_gone_inside_the_namespace():
    code = "import socket\ntry:\n socket.create_connection(('1.1.1.1', 443), timeout=3)\n print('CONNECTED')\nexcept OSError as e:\n print('blocked', e)"
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "blocked" in r.stdout and "CONNECTED" not in r.stdout


@needs_netns
def test_batch_scores_offline(tiny_bundle: Path, phantom_cohort: Path, tmp_path: Path):
    src = phantom_cohort.parent
    cases = tmp_path / "cases"
    cases.mkdir()
    rows = list(csv.DictReader(phantom_cohort.open()))[:2]
    for row in rows:
        for col in ("ct_path", "roi_path"):
            shutil.copy(src / row[col], cases / row[col])
    with (tmp_path / "clinical.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "CEA", "CA125", "age"])
        for row in rows:
            w.writerow([row["case_id"], row["CEA"], row["CA125"], row["age"]])
    out = tmp_path / "results.csv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "*"}
    r = subprocess.run(["unshare", "--net", sys.executable, "-m", "pipeline.cli.main", "batch", str(cases),
                        "--clinical", str(tmp_path / "clinical.csv"), "--out", str(out), "--bundle", str(tiny_bundle),
                        "--quiet"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    statuses = [row["status"] for row in csv.DictReader(out.open())]
    assert statuses == ["ok", "ok"]


@pytest.mark.skipif(os.environ.get("PLEURA_TESTS_OFFLINE") != "1", reason="suite not started offline by scripts/test.sh")
def test_whole_suite_runs_without_network():
    """scripts/test.sh runs every test (CLI, batch, Dask, app in Chromium) in a namespace with
    only loopback: this checks the claim holds for this very run."""
    import socket

    with pytest.raises(OSError):
        socket.create_connection(("1.1.1.1", 443), timeout=3)
    with pytest.raises(OSError):
        socket.getaddrinfo("pypi.org", 443)
