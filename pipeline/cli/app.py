"""``pleura app``: replace this process with the Streamlit server running the repository's ``app.py``
(headless, XSRF protection, no usage statistics, upload limit ``PLEURA_MAX_UPLOAD_MB``).

Example:
    >>> cmd = streamlit_command(port=8501, address="localhost", max_upload_mb=1024)
    >>> cmd[1:4], cmd[cmd.index("--server.port") + 1]
    (['-m', 'streamlit', 'run'], '8501')
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.cli._common import EXIT_OK
from pipeline.core.env import REPO_ROOT, Settings


def streamlit_command(*, port: int, address: str, max_upload_mb: int) -> list[str]:
    """The command line serving the app on ``address:port`` (argv, the Python executable first)."""
    return [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.enableXsrfProtection", "true", "--server.maxUploadSize", str(max_upload_mb)]


def cmd_app(args: argparse.Namespace) -> int:
    cmd = streamlit_command(port=args.port, address=args.address, max_upload_mb=args.max_upload_mb)
    os.chdir(REPO_ROOT)  # Streamlit reads .streamlit/config.toml from the working directory
    # Two glibc arenas: a long session stays at ~1.0 GB RSS, not 1.4-1.6 GB (Streamlit runs each rerun on a new thread).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.execv(sys.executable, cmd)
    return EXIT_OK  # pragma: no cover - only reached when the exec is replaced (tests)


def add_app(sub: argparse._SubParsersAction, settings: Settings) -> None:
    a = sub.add_parser("app", help="start the Streamlit app")
    a.add_argument("--port", type=int, default=settings.port)
    a.add_argument("--address", default=settings.address)
    a.set_defaults(func=cmd_app, max_upload_mb=settings.max_upload_mb)
