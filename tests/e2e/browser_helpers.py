"""Shared by the browser tests (``test_browser.py``, ``test_load.py``): start ``streamlit run app.py``
on a free port, launch Debian's Chromium through Playwright, drive the Predict page, and measure
the server's memory.

Never downloads a browser: :data:`CHROMIUM` is ``/usr/bin/chromium``; the tests skip when it is
missing. Page helpers use Playwright's sync API (one thread per ``sync_playwright()``).
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts"
LAB_LABELS = {"CEA": "CEA (ng/mL)", "CA125": "CA125 (U/mL)", "age": "Age (years)"}
MB = 1024 * 1024
# True once no file is still uploading (its chip shows a spinner until the server has the bytes)
# and Streamlit's "running" indicator is gone. A click before an upload has finished is answered
# by a run without that file, and the rerun the finished upload triggers then wipes the answer.
# The "Running…" widget is hidden in this app's toolbar mode, so the script state on the app root
# (``data-test-script-state``) is checked as well.
UPLOADS_DONE_AND_IDLE_JS = """() => !document.querySelector('[data-testid="stFileChipIconSpinner"]')
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !['running', 'rerunRequested'].includes(
        (document.querySelector('[data-testid="stApp"]') || {getAttribute: () => null})
            .getAttribute('data-test-script-state'))"""


# ------------------------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, *, timeout_s: float) -> None:
    """Poll ``/_stcore/health`` until it answers 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit did not become healthy within {timeout_s:.0f} s")


@dataclass(frozen=True)
class AppServer:
    """A running app: its URL, server process id, start time (``time.perf_counter``), seconds until
    healthy, and the audit log / server log it writes."""

    url: str
    pid: int
    t0: float
    health_s: float
    audit: Path
    log: Path

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n_chars:] if self.log.exists() else ""

    def audit_lines(self) -> int:
        return len(self.audit.read_text().splitlines()) if self.audit.exists() else 0


@contextmanager
def running_app(*, bundle: Path, workdir: Path, threads: int = 2,
                extra_env: dict[str, str] | None = None) -> Iterator[AppServer]:
    """``streamlit run app.py`` with ``PLEURA_BUNDLE=bundle`` (repo root as working directory so
    ``.streamlit/config.toml`` applies); audit and server logs go to ``workdir``; ``extra_env``
    is added to the server's environment. The whole process group is stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    audit = workdir / "audit.jsonl"
    env = {**os.environ, "PLEURA_BUNDLE": str(bundle), "PLEURA_AUDIT_LOG": str(audit),
           "PLEURA_THREADS": str(threads), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log_path = workdir / "streamlit.log"
    log = log_path.open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_healthy(url, proc, timeout_s=120)
        yield AppServer(url=url, pid=proc.pid, t0=t0, health_s=time.perf_counter() - t0, audit=audit, log=log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def launch_chromium(playwright):  # noqa: ANN001, ANN201 - playwright's sync or async API object
    """Debian's Chromium (never a downloaded one); with the async API, ``await`` the result."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


# ------------------------------------------------------------------------------------------------ memory
def tree_rss_bytes(pid: int) -> int:
    """Resident memory (bytes) of process ``pid`` plus all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class RssSampler:
    """Samples :func:`tree_rss_bytes` every ``interval_s`` seconds in a background thread.

    Example:
        >>> with RssSampler(os.getpid(), interval_s=0.05) as s:
        ...     time.sleep(0.2)
        >>> s.peak_bytes > 0 and len(s.samples) >= 1
        True
    """

    def __init__(self, pid: int, *, interval_s: float = 0.5) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while True:
            self.samples.append((time.perf_counter() - t0, tree_rss_bytes(self.pid)))
            if self._stop.wait(self.interval_s):
                return

    @property
    def peak_bytes(self) -> int:
        return max((b for _, b in self.samples), default=0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class PhantomCase:
    """One phantom case of the test cohort: image paths and its clinical-CSV row (strings)."""

    ct: Path
    roi: Path
    row: dict[str, str]

    @property
    def labs(self) -> dict[str, str]:
        return {k: self.row[k] for k in LAB_LABELS}


def phantom_cases(phantom_cohort: Path) -> list[PhantomCase]:
    """Every case of the cohort whose ``clinical.csv`` is ``phantom_cohort``, in file order."""
    folder = phantom_cohort.parent
    with phantom_cohort.open(newline="") as fh:
        return [PhantomCase(folder / r["ct_path"], folder / r["roi_path"], r) for r in csv.DictReader(fh)]


# ------------------------------------------------------------------------------------------------ sync page helpers
def open_predict_page(page, url: str) -> None:  # noqa: ANN001
    """Go to the Predict page; returns once its first script run has finished."""
    page.goto(f"{url}/predict", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Predict one case").wait_for(timeout=120_000)
    wait_uploads_done_and_idle(page)


def upload_case(page, case: PhantomCase, *, timeout_ms: float = 120_000) -> None:  # noqa: ANN001
    """Put the CT, then the ROI, into their uploaders; returns once both uploads have reached the
    server and the reruns they trigger have finished."""
    uploader = page.get_by_test_id("stFileUploader")
    for label, path in (("CT scan", case.ct), ("Tumour ROI mask", case.roi)):
        uploader.filter(has_text=label).locator("input[type=file]").set_input_files(str(path))
        page.get_by_text(path.name).wait_for(timeout=timeout_ms)  # the chip appears at once …
        wait_uploads_done_and_idle(page, timeout_ms=timeout_ms)  # … its spinner goes once uploaded


def wait_uploads_done_and_idle(page, *, timeout_ms: float = 120_000) -> None:  # noqa: ANN001
    """Wait until no upload is in flight and no script run is in progress (see
    :data:`UPLOADS_DONE_AND_IDLE_JS`); twice, 0.5 s apart, to catch a rerun about to start."""
    for _ in range(2):
        page.wait_for_function(UPLOADS_DONE_AND_IDLE_JS, timeout=timeout_ms, polling=200)
        page.wait_for_timeout(500)


def set_number(page, label: str, value: object) -> None:  # noqa: ANN001
    """Type ``value`` into the lab text box ``label`` and commit it (Enter)."""
    box = page.get_by_role("textbox", name=label, exact=True)
    # generous: with software WebGL (no GPU), the CT viewer keeps the page busy while it builds its texture
    box.fill(str(value), timeout=180_000)
    box.press("Enter", timeout=180_000)


def read_probability(page, *, timeout_ms: float = 300_000) -> float:  # noqa: ANN001
    """The VPI probability shown on the Predict page ("42 %") as a fraction (0.42)."""
    metric = page.get_by_test_id("stMetricValue").first
    metric.wait_for(timeout=timeout_ms)
    return float(metric.inner_text().replace("%", "").strip()) / 100.0


def enter_labs(page, labs: dict[str, object]) -> None:  # noqa: ANN001
    """Type CEA / CA125 / age (keys as in :data:`LAB_LABELS`) into the number inputs."""
    for key, value in labs.items():
        set_number(page, LAB_LABELS[key], value)
