"""``pleura app``: the command that starts the Streamlit server (exec replaced by a recorder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


def _run_app(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], *args: str) -> tuple[list[str], dict[str, str]]:
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(os, "chdir", lambda _path: None)
    monkeypatch.setattr(os, "execv", lambda _exe, argv: calls.append((list(argv), dict(os.environ))))
    assert cli.main(["app", *args]) == 0
    ((argv, env),) = calls
    return argv, env


def test_pleura_app_starts_streamlit_with_two_malloc_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    """MALLOC_ARENA_MAX=2 keeps a long session's RSS flat (tests/e2e/test_load.py)."""
    argv, env = _run_app(monkeypatch, {"PATH": "/usr/bin"}, "--port", "8599", "--address", "127.0.0.1")
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py")]
    assert argv[argv.index("--server.port") + 1] == "8599"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert env["MALLOC_ARENA_MAX"] == "2"


def test_pleura_app_keeps_an_arena_setting_given_by_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    _, env = _run_app(monkeypatch, {"PATH": "/usr/bin", "MALLOC_ARENA_MAX": "4"})
    assert env["MALLOC_ARENA_MAX"] == "4"
