"""Wall-clock marks of the viewer's server-side steps, for ``bench/viewer.py`` (off by default).

With ``PLEURA_VIEWER_TRACE=<file>`` in the server's environment, :func:`mark` appends one JSON
line ``{"t": <seconds since the epoch>, "name": ..., **fields}`` per call; without it, it does
nothing. The browser side keeps the same kind of marks in ``window.pleuraViewer.marks``
(``frontend/viewer.js``), so one clock orders both.

Example:
    >>> mark("read CT", seconds=0.8)   # nothing happens unless PLEURA_VIEWER_TRACE is set
"""

from __future__ import annotations

import json
import os
import threading
import time

_LOCK = threading.Lock()


def mark(name: str, **fields: object) -> None:
    """Append a mark named ``name`` (with ``fields``) to ``$PLEURA_VIEWER_TRACE``, if set."""
    path = os.environ.get("PLEURA_VIEWER_TRACE")
    if not path:
        return
    line = json.dumps({"t": time.time(), "name": name, "thread": threading.current_thread().name, **fields})
    with _LOCK, open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
