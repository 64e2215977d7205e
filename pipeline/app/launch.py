"""Start the Streamlit app (``pleura app``) in place of the current process.

The app is ``app.py`` at the repository root, run headless with XSRF protection, no usage
statistics and an upload limit of ``PLEURA_MAX_UPLOAD_MB`` (default 1024 MB).

Example:
    >>> cmd = streamlit_command(port=8501, address="localhost")
    >>> cmd[1:4], cmd[cmd.index("--server.port") + 1]
    (['-m', 'streamlit', 'run'], '8501')
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

__all__ = ["APP_ROOT", "streamlit_command", "launch_app"]

APP_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``app.py``, ``pages/`` and ``.streamlit/`` (the repository root)."""


def streamlit_command(*, port: int, address: str) -> list[str]:
    """The command line that serves the app on ``address:port`` (argv, the Python executable first)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP_ROOT / "app.py"), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.enableXsrfProtection", "true",
            "--server.maxUploadSize", os.environ.get("PLEURA_MAX_UPLOAD_MB", "1024")]


def launch_app(*, port: int, address: str) -> NoReturn:
    """Replace this process with the Streamlit server (:func:`streamlit_command`); never returns."""
    cmd = streamlit_command(port=port, address=address)
    os.chdir(APP_ROOT)  # Streamlit reads .streamlit/config.toml from the working directory
    # Two glibc arenas: a long session stays at ~1.0 GB RSS, not 1.4-1.6 GB (Streamlit runs each rerun on a new thread).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.execv(sys.executable, cmd)
