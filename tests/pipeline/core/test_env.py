"""Settings: every PLEURA_* variable read in one place, a bad value named, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.env import REPO_ROOT, settings, threads_per_worker
from pipeline.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_defaults_and_values() -> None:
    s = settings({})
    assert (s.workers, s.threads, s.port, s.address, s.max_upload_mb) == (1, None, 8501, "localhost", 1024)
    assert s.weights_dir == REPO_ROOT / "weights" and REPO_ROOT == REPO
    s = settings({"PLEURA_WORKERS": " 3 ", "PLEURA_THREADS": "2", "PLEURA_BUNDLE": "b", "PLEURA_PORT": ""})
    assert (s.workers, s.threads, str(s.bundle), s.port) == (3, 2, "b", 8501)
    assert (settings({}).allow_unsigned, settings({}).trusted_keys) == (False, ())
    s = settings({"PLEURA_ALLOW_UNSIGNED": "yes", "PLEURA_TRUSTED_KEYS": "/k/a.pem: /k/site"})
    assert s.allow_unsigned and s.trusted_keys == (Path("/k/a.pem"), Path("/k/site"))
    assert not settings({"PLEURA_ALLOW_UNSIGNED": "0"}).allow_unsigned


@pytest.mark.parametrize(("name", "value"), [("PLEURA_WORKERS", "two"), ("PLEURA_WORKERS", "0"),
                                             ("PLEURA_THREADS", "-1"), ("PLEURA_PORT", "abc"),
                                             ("PLEURA_PORT", "70000"), ("PLEURA_MAX_UPLOAD_MB", "1.5"),
                                             ("PLEURA_ALLOW_UNSIGNED", "maybe")])
def test_unusable_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        settings({name: value})


def test_threads_per_worker() -> None:
    assert threads_per_worker(2, cores=2) == 1 and threads_per_worker(1, cores=8) == 8
    with pytest.raises(ConfigError):
        threads_per_worker(0, cores=2)


@pytest.mark.parametrize("env", [{"PLEURA_WORKERS": "two"}, {"PLEURA_PORT": "abc"}])
def test_cli_reports_a_bad_setting_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    import os

    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "batch", str(tmp_path), "--out",
                           str(tmp_path / "r.csv")] if "PLEURA_WORKERS" in env else
                          [sys.executable, "-m", "pipeline.cli.main", "app", "--help"],
                          env={**os.environ, **env}, capture_output=True, text=True, cwd=REPO)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2 and next(iter(env)) in done.stderr
