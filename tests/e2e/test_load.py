"""Load on the app in a real browser: `streamlit run app.py` + Debian's Chromium via Playwright.

* five browser sessions upload different phantom cases and press Predict at the same moment: all
  five get a probability and no error, and the server's memory (process tree RSS, sampled every
  0.5 s) stays bounded; the sessions' upload folders are removed once they have gone;
* one session predicts 50 times (a different age each time, so every click recomputes): the
  server's RSS after each prediction does not keep growing.

Both run the server with ``MALLOC_ARENA_MAX=2``, as ``pleura app`` and the Docker image do (RSS then
tracks what the process keeps rather than glibc's per-thread arenas).

Prints the numbers (run with ``-s``): peak RSS, per-session click → result times, the RSS curve.
Part of the default run (about 4–5 minutes for both; issue #6 asks for them in CI when they fit);
skipped when ``/usr/bin/chromium`` is missing. Never downloads a browser.

    .venv/bin/python -m pytest tests/e2e/test_load.py -s -q
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    LAB_LABELS,
    MB,
    UPLOADS_DONE_AND_IDLE_JS,
    AppServer,
    PhantomCase,
    RssSampler,
    enter_labs,
    launch_chromium,
    open_predict_page,
    phantom_cases,
    running_app,
    set_number,
    tree_rss_bytes,
    upload_case,
    wait_uploads_done_and_idle,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]

N_SESSIONS = 5
PEAK_RSS_LIMIT_MB = 4096  # generous: the server holds one model; five small phantom cases add little
N_PREDICTIONS = 50
GROWTH_LIMIT_MB = 300  # RSS after prediction 50 minus RSS after prediction 10
WINDOW_GROWTH_LIMIT_MB = 150  # median RSS of predictions 41–50 minus median of predictions 11–20
RESULT_TIMEOUT_MS = 600_000  # predictions are serialised, so the fifth waits for four others
SESSION_TTL_S = 2  # disconnected sessions are dropped after this (Streamlit's default is 120 s)
VIEWPORT = {"width": 1400, "height": 1000}


@contextmanager
def _fresh_app(bundle: Path, tmp_path: Path, **env: str) -> Iterator[tuple[AppServer, Path]]:
    """``(AppServer, tmpdir)``: a fresh app (each memory curve starts from a cold server) whose
    temporary files, hence the sessions' upload folders, go to ``tmpdir``."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(SESSION_TTL_S), **env}
    with running_app(bundle=bundle, workdir=tmp_path, extra_env=env) as server:
        yield server, tmpdir


@pytest.fixture()
def app(tiny_bundle: Path, tmp_path: Path):
    """A fresh app with the allocator setting it is deployed with: ``MALLOC_ARENA_MAX=2`` (set by
    ``pleura app`` and the Docker image; these tests start ``streamlit run`` directly, so it is set
    here). With glibc's default (up to 8 arenas per core, one per thread that allocates: Streamlit
    runs every script run on a new thread) the RSS creeps up for ~30 predictions and then
    saw-tooths by ±150 MB whatever Python holds; with two arenas it follows what the process
    actually keeps, so a leak stands out."""
    with _fresh_app(tiny_bundle, tmp_path, MALLOC_ARENA_MAX="2") as server_and_tmpdir:
        yield server_and_tmpdir


def _upload_folders(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("pleura-upload-*"))


def _mb(n_bytes: int) -> float:
    return n_bytes / MB


# ------------------------------------------------------------------------------------------------ 5 sessions
async def _prepare_session(page, url: str, case: PhantomCase) -> None:  # noqa: ANN001
    """Predict page → case uploaded, labs entered, app idle (nothing clicked yet); the async
    twin of browser_helpers' open_predict_page + upload_case + enter_labs."""
    await page.goto(f"{url}/predict", wait_until="domcontentloaded")
    await page.get_by_role("heading", name="Predict one case").wait_for(timeout=120_000)
    await _uploads_done_and_idle(page)
    uploader = page.get_by_test_id("stFileUploader")
    for label, path in (("CT scan", case.ct), ("Tumour ROI mask", case.roi)):
        await uploader.filter(has_text=label).locator("input[type=file]").set_input_files(str(path))
        await page.get_by_text(path.name).wait_for(timeout=300_000)
        await _uploads_done_and_idle(page)
    for key, value in case.labs.items():
        box = page.get_by_role("textbox", name=LAB_LABELS[key], exact=True)
        await box.fill(str(value), timeout=300_000)  # five tabs rendering their CT viewers share the CPU
        await box.press("Enter")
    await _uploads_done_and_idle(page)


async def _uploads_done_and_idle(page) -> None:  # noqa: ANN001
    for _ in range(2):  # as browser_helpers.wait_uploads_done_and_idle
        await page.wait_for_function(UPLOADS_DONE_AND_IDLE_JS, timeout=300_000, polling=200)
        await page.wait_for_timeout(500)


async def _click_predict(page) -> tuple[float, float]:  # noqa: ANN001
    """Press Predict, wait for the result; returns (probability, click → result seconds)."""
    t_click = time.perf_counter()
    await page.get_by_role("button", name="Predict").click()
    await page.get_by_text("Done in").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    metric = page.get_by_test_id("stMetricValue").first
    await metric.wait_for(timeout=60_000)
    seconds = time.perf_counter() - t_click
    probability = float((await metric.inner_text()).rstrip(" %")) / 100
    await page.get_by_role("button", name="Download PDF report").wait_for(timeout=120_000)
    return probability, seconds


async def _five_sessions(server: AppServer, cases: list[PhantomCase], tmpdir: Path) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            contexts = [await browser.new_context(viewport=VIEWPORT) for _ in cases]
            pages = [await c.new_page() for c in contexts]
            try:
                await asyncio.gather(*(_prepare_session(p, server.url, c) for p, c in zip(pages, cases, strict=True)))
                t0 = time.perf_counter()
                outcomes = await asyncio.gather(*(_click_predict(p) for p in pages))
                wall_s = time.perf_counter() - t0
                errors = [await p.get_by_test_id("stAlertContentError").count() for p in pages]
                stale = [await p.get_by_text("The inputs changed since the last result").count() for p in pages]
                folders_open = len(_upload_folders(tmpdir))
            except Exception:
                ARTIFACTS.mkdir(exist_ok=True)
                for i, p in enumerate(pages):
                    await p.screenshot(path=str(ARTIFACTS / f"load-session-{i}-failure.png"), full_page=True)
                raise
            for context in contexts:
                await context.close()
            folders_after = await _reap_expired_sessions(browser, server.url, tmpdir)
        finally:
            await browser.close()
    return {"outcomes": outcomes, "wall_s": wall_s, "errors": errors, "stale": stale,
            "folders_open": folders_open, "folders_after": folders_after}


async def _reap_expired_sessions(browser, url: str, tmpdir: Path) -> int:  # noqa: ANN001
    """Upload folders left once the closed sessions have expired.

    Streamlit keeps a disconnected session for ``server.disconnectedSessionTTL`` seconds and
    drops expired ones lazily, when another session disconnects; dropping the session state
    removes its upload folder. So: wait past the TTL, open and close one more session, and
    poll (up to 30 s) until only that session's own folder is left."""
    await asyncio.sleep(SESSION_TTL_S + 1)
    deadline = time.monotonic() + 30
    while True:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await context.new_page()
        await page.goto(f"{url}/predict", wait_until="domcontentloaded")
        await page.get_by_role("heading", name="Predict one case").wait_for(timeout=120_000)
        await context.close()
        await asyncio.sleep(SESSION_TTL_S + 1)
        left = len(_upload_folders(tmpdir))
        if left <= 1 or time.monotonic() > deadline:
            return left


def test_five_concurrent_sessions(app, phantom_cohort: Path) -> None:
    """Five sessions, five different cases, Predict pressed together: every session shows a
    probability in [0, 1] and no error; the server's peak RSS (process tree, sampled every 0.5 s)
    stays under 4 GiB; five upload folders exist while the sessions are open and are removed once
    the closed sessions have expired (TTL 2 s here instead of Streamlit's 120 s)."""
    server, tmpdir = app
    cases = phantom_cases(phantom_cohort)[:N_SESSIONS]
    assert len({c.row["case_id"] for c in cases}) == N_SESSIONS
    idle_mb = _mb(tree_rss_bytes(server.pid))
    try:
        with RssSampler(server.pid, interval_s=0.5) as sampler:
            result = asyncio.run(asyncio.wait_for(_five_sessions(server, cases, tmpdir), timeout=900))
        expired_mb = _mb(tree_rss_bytes(server.pid))
    except Exception:
        sys.stderr.write(server.log_tail())
        raise

    probabilities = [p for p, _ in result["outcomes"]]
    times = [s for _, s in result["outcomes"]]
    peak_mb = _mb(sampler.peak_bytes)
    print(f"\n[load] {N_SESSIONS} concurrent sessions: server RSS idle {idle_mb:.0f} MB → peak {peak_mb:.0f} MB "
          f"({len(sampler.samples)} samples); all results after {result['wall_s']:.1f} s")
    for i, (case, p, s) in enumerate(zip(cases, probabilities, times, strict=True)):
        print(f"[load]   session {i + 1} ({case.row['case_id']}): probability {p:.2f}, click → result {s:.1f} s")

    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert result["errors"] == [0] * N_SESSIONS, f"error alerts per session: {result['errors']}"
    assert result["stale"] == [0] * N_SESSIONS
    assert server.audit_lines() == N_SESSIONS
    assert peak_mb < PEAK_RSS_LIMIT_MB
    # the sessions' private upload folders go away once the sessions have expired
    print(f"[load] upload folders: {result['folders_open']} while the sessions were open, "
          f"{result['folders_after']} after they expired (the probe session's own); server RSS then {expired_mb:.0f} MB")
    assert result["folders_open"] == N_SESSIONS
    assert result["folders_after"] <= 1


# ------------------------------------------------------------------------------------------------ 50 predictions
def test_fifty_predictions_one_session(app, phantom_cohort: Path) -> None:
    """One session predicts 50 times (age 30, 31, … so each click recomputes) on a server with
    ``MALLOC_ARENA_MAX=2`` as deployed (see the fixture). Bounds, from measured curves:

    * median RSS of predictions 41–50 minus median of predictions 11–20 < 150 MB. Measured:
      +48 MB (a plateau of 0.97–1.07 GB from prediction 10 on); a leak of 5 MB per prediction
      (e.g. one resampled phantom CT plus its viewer copy kept per click) would add 150 MB.
    * RSS after prediction 50 minus after prediction 10 < 300 MB (the issue's wording). The first
      10 predictions are left out because they carry the one-off growth (model load, lazy
      imports, caches warming up).

    With glibc's default arenas the same session measured 858 MB after prediction 1, 1185 MB
    after 10, and a plateau of 1.4–1.6 GB from about prediction 30 on (a tracemalloc comparison of
    predictions 10 and 40 showed no Python-level growth: 339 MB → 325 MB traced).
    """
    from playwright.sync_api import sync_playwright

    server, tmpdir = app
    case = phantom_cases(phantom_cohort)[0]
    rss_mb: list[float] = []
    times: list[float] = []
    with sync_playwright() as pw, RssSampler(server.pid, interval_s=0.5) as sampler:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            open_predict_page(page, server.url)
            upload_case(page, case)
            enter_labs(page, {k: v for k, v in case.labs.items() if k != "age"})
            for i in range(N_PREDICTIONS):
                set_number(page, LAB_LABELS["age"], 30 + i)
                if i == 0:
                    wait_uploads_done_and_idle(page)
                else:  # the rerun after the age change has finished and marks the result as outdated
                    page.get_by_text("The inputs changed since the last result").wait_for(timeout=120_000)
                t_click = time.perf_counter()
                page.get_by_role("button", name="Predict").click()
                page.get_by_text("Done in").first.wait_for(timeout=300_000)
                probability = float(page.get_by_test_id("stMetricValue").first.inner_text(timeout=60_000).rstrip(" %")) / 100
                page.get_by_role("button", name="Download PDF report").wait_for(timeout=120_000)
                times.append(time.perf_counter() - t_click)
                assert 0.0 <= probability <= 1.0
                assert page.get_by_test_id("stAlertContentError").count() == 0
                # once the click's script run is over, the previous run's "inputs changed" notice is gone
                wait_uploads_done_and_idle(page)
                assert page.get_by_text("The inputs changed since the last result").count() == 0
                rss_mb.append(_mb(tree_rss_bytes(server.pid)))
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "load-fifty-failure.png"), full_page=True)
            sys.stderr.write(server.log_tail())
            raise
        finally:
            browser.close()

    print(f"\n[load] {N_PREDICTIONS} predictions in one session; server RSS (MB) after prediction n:")
    for n in (1, *range(5, N_PREDICTIONS + 1, 5)):
        print(f"[load]   n={n:2d}: {rss_mb[n - 1]:7.1f} MB   click → result {times[n - 1]:5.1f} s")
    growth = rss_mb[N_PREDICTIONS - 1] - rss_mb[9]
    window_growth = statistics.median(rss_mb[-10:]) - statistics.median(rss_mb[10:20])
    print(f"[load] growth 10 → {N_PREDICTIONS}: {growth:+.1f} MB; median of the last 10 − median of 11–20: "
          f"{window_growth:+.1f} MB; peak (0.5 s samples) {_mb(sampler.peak_bytes):.0f} MB; "
          f"click → result median {statistics.median(times):.1f} s, max {max(times):.1f} s")
    assert server.audit_lines() == N_PREDICTIONS
    assert len(_upload_folders(tmpdir)) <= 1  # the one session's folder, re-used by every prediction
    assert growth < GROWTH_LIMIT_MB
    assert window_growth < WINDOW_GROWTH_LIMIT_MB
