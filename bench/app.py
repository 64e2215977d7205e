"""Benchmark: the clinician app's cold start and Predict time, in a real browser.

Usage (from the repository root, in the project's venv; needs ``/usr/bin/chromium``)::

    python bench/app.py                               # 3 cold starts + 1 warm-up and 3 cases of 512×512×300
    nice -n 5 python bench/app.py --cases 3 --cold 3 --out app-bench.json
    python bench/app.py --size 256 --slices 120 --cases 2 --cold 1    # quick look

What it does:

1. **Cold start**, ``--cold`` times, a fresh server each time, started exactly as the product starts
   it: ``pleura app --port <free port> --address 127.0.0.1`` (``pipeline/cli/app.py`` → ``pipeline.app.launch``,
   also behind ``scripts/run_app.sh`` and the Docker entrypoint: ``MALLOC_ARENA_MAX=2``, then
   ``exec python -m streamlit run app.py`` with the server flags, repo root as working directory
   so ``.streamlit/config.toml`` applies; the bundle is ``$PLEURA_BUNDLE``/``--bundle`` or
   ``weights/demo``). Times since the launch: the CLI's ``exec`` of Streamlit, ``/_stcore/health``
   answering 200, the home page in Chromium showing the model's research-use notice, the home page
   complete (model card, script run over), then a click on *Predict* in the sidebar until the
   Predict page is rendered. The model is **not** loaded by that render: ``pages/predict.py`` calls
   ``session.warm_up_scorer``, which loads the ``Scorer`` (``st.cache_resource``) in a
   background thread. To time that first use, a small *probe* case (``--probe-size``) is uploaded
   at once and Predict is clicked: the time the page shows "Loading the model…" before "Reading
   and checking the images…" is the wait for the model, and the latter's time is when the model
   was ready. Finally ``Scorer()`` is timed in a fresh Python process (imports vs loading).
2. **Predict** on ``--cases`` + 1 phantoms of (``--slices``, ``--size``, ``--size``) voxels,
   reused from or written to ``bench/pipeline.py``'s folder (its ``make_bench_cases``: same seed,
   same files), one fresh server for all of them. One tab opens Predict and, case after case,
   uploads the CT and then the ROI (timed until the upload chip's spinner goes, and until the
   rerun that stores the file is over), enters the labs and clicks Predict; then times, from the
   click: each progress step the page shows, "Done in … s" (the server's own figure), the
   probability, the gauge, the SHAP charts and the slice viewer drawn by plotly
   (``plotly_afterplot``), the PDF button and the page idle, plus when the server's elements
   arrive and the browser's long main-thread tasks. The first case is the warm-up (model cache,
   first plotly chart of the tab), reported on its own; the others give the medians. Last, the
   warm-up case again in a **new tab** (warm server, new browser session).
3. The server's process-tree RSS is sampled every 0.5 s throughout (``RssSampler``).

Every browser timestamp is taken *in the page* (a MutationObserver plus a 50 ms timer record the
first moment each condition holds, on the epoch clock), so polling from Python adds no delay.
Elements left from a previous result (Streamlit marks them ``data-stale``) are never counted.
"Idle" is Streamlit's script state on the app root (``data-test-script-state``): the "Running…"
status widget that ``browser_helpers.wait_uploads_done_and_idle`` looks for never appears in this
app (Streamlit 1.67 with ``toolbarMode = "minimal"``), so that helper only sees uploads.
The benchmark writes only under ``--workdir`` (server logs, the audit log via
``PLEURA_AUDIT_LOG``, screenshots); the repository's ``audit/`` is not touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/app.py`` puts bench/ first on sys.path, where bench/pipeline.py would shadow the
# ``pipeline`` package. Put the repository root there instead (as bench/pipeline.py does).
_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402


def _load_by_path(name: str, path: Path):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bh = _load_by_path("browser_helpers", REPO / "tests" / "e2e" / "browser_helpers.py")
bp = _load_by_path("bench_pipeline", _HERE / "pipeline.py")  # phantoms: make_bench_cases

MB = 1024 * 1024
SERVER_TIMEOUT_S = 180
PREDICT_STEPS: tuple[str, ...] = ()  # filled from pipeline.app.prediction.StepProgress in main()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def step_label(step: str) -> str:
    """How ``pages/predict.py`` writes a progress step into its status box."""
    return f"{step[0].upper()}{step[1:]}…"


# ------------------------------------------------------------------------------------------------
# in-page recorder
# ------------------------------------------------------------------------------------------------
RECORDER_JS = r"""
(() => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const B = window.__bench = {t: {}, preds: {}, status: [], changes: [], armed: false};
  B.vis = (e) => !!e && (e.checkVisibility ? e.checkVisibility() : e.offsetParent !== null);
  B.all = (sel) => Array.from(document.querySelectorAll(sel));
  B.hasText = (sel, text, visible = true) =>
    B.all(sel).some((e) => (e.textContent || '').includes(text) && (!visible || B.vis(e)));
  // Streamlit's script state on the app root (the "Running…" widget is not shown in toolbarMode minimal)
  B.scriptState = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app ? app.getAttribute('data-test-script-state') : null;
  };
  B.running = () => ['running', 'rerunRequested'].includes(B.scriptState())
    || !!document.querySelector('[data-testid="stStatusWidget"]');
  B.spinning = () => !!document.querySelector('[data-testid="stFileChipIconSpinner"]');
  // an element of the current script run (Streamlit marks the previous run's elements stale)
  B.fresh = (e) => !!e && B.vis(e) && !e.closest('[data-stale="true"]');
  B.watch = (name, src) => { if (!(name in B.t)) { B.preds[name] = new Function(src); B.check(); } };
  // plotly charts: when each last finished drawing ('plotly_afterplot'); charts that existed
  // before a click are flagged old, so a redraw in place counts only after that
  B.drawn = (key, after) => {
    const gd = document.querySelector('.st-key-' + key + ' .js-plotly-plot');
    if (!B.fresh(gd) || !gd.querySelector('.main-svg')) return false;
    return gd.__benchOld ? (gd.__benchDrawn || 0) > after : true;
  };
  B.markOld = () => B.all('.js-plotly-plot').forEach((gd) => { gd.__benchOld = true; });
  B.longtasks = [];
  try {
    new PerformanceObserver((list) => list.getEntries().forEach((e) =>
      B.longtasks.push([performance.timeOrigin + e.startTime, e.duration])))
      .observe({type: 'longtask', buffered: true});
  } catch (e) { /* not supported */ }
  let lastRunning = false;
  B.check = () => {
    const t = now();
    const running = B.running();
    if (running !== lastRunning) { B.status.push([t, running]); lastRunning = running; }
    B.all('.js-plotly-plot').forEach((gd) => {
      if (!gd.__benchHooked && typeof gd.on === 'function') {
        gd.__benchHooked = true;
        gd.on('plotly_afterplot', () => { gd.__benchDrawn = now(); schedule(); });
      }
    });
    for (const [name, fn] of Object.entries(B.preds)) {
      let ok = false;
      try { ok = fn(); } catch (e) { ok = false; }
      if (ok) { B.t[name] = t; delete B.preds[name]; }
    }
  };
  var scheduled = false;
  function schedule() {
    if (!scheduled) { scheduled = true; setTimeout(() => { scheduled = false; B.check(); }, 0); }
  }
  new MutationObserver(schedule).observe(document, {subtree: true, childList: true, attributes: true,
                                                    characterData: true});
  setInterval(B.check, 50);
  // the Predict page's form is on screen (heading, both uploaders, the Predict button)
  B.watch('predict_form', "const B = window.__bench; return B.hasText('h1', 'Predict one case') "
          + "&& B.all('[data-testid=\"stFileUploader\"]').filter(B.vis).length >= 2 "
          + "&& B.hasText('button', 'Predict');");
  document.addEventListener('click', () => {
    if (B.armed && !('click' in B.t)) { B.t.click = now(); B.armed = false; }
  }, true);
  document.addEventListener('change', (e) => {
    const f = e.target && e.target.files;
    if (f && f.length) B.changes.push([now(), f[0].name]);
  }, true);
})();
"""


def watch(page, name: str, js_body: str) -> None:  # noqa: ANN001
    """Record (epoch ms, in the page) the first moment from now on that ``js_body`` (a function
    body using ``B``) returns true (an earlier mark of that name is forgotten)."""
    page.evaluate("([n, s]) => { delete window.__bench.t[n]; "
                  "window.__bench.watch(n, 'const B = window.__bench; ' + s); }", [name, js_body])


def wait_marks(page, names: Sequence[str], *, timeout_s: float,  # noqa: ANN001
               fail: str | None = None) -> dict[str, float]:
    """Wait until every mark in ``names`` (or the ``fail`` mark) is recorded; returns all marks."""
    names_js = json.dumps(list(names))
    fail_js = json.dumps(fail)
    try:
        page.wait_for_function(
            f"() => {{ const t = window.__bench.t; return ({fail_js} !== null && {fail_js} in t) "
            f"|| {names_js}.every((n) => n in t); }}", timeout=timeout_s * 1000, polling=200)
    except Exception as exc:
        seen = sorted(page.evaluate("() => Object.keys(window.__bench.t)"))
        raise TimeoutError(f"waited {timeout_s:.0f} s for {list(names)}; seen only {seen}") from exc
    marks = page.evaluate("() => window.__bench.t")
    if fail and fail in marks:
        raise RuntimeError(f"the page reached {fail!r}")
    return marks


RESULT_MARKS = ("click", "done", "failed", "probability", "gauge", "waterfall", "groups", "viewer", "pdf",
                "h_shap", "h_viewer", "h_report", "waterfall_el", "groups_el", "viewer_el")


def reset_result_marks(page) -> None:  # noqa: ANN001
    """Forget the marks of a previous prediction (call before :func:`watch_result`) and flag the
    charts on screen old, so that a redraw in place counts only after the new "Done in"."""
    page.evaluate("""(names) => { const B = window.__bench;
        Object.keys(B.t).concat(Object.keys(B.preds)).filter((n) => names.includes(n) || /^step\\d+$/.test(n))
          .forEach((n) => { delete B.t[n]; delete B.preds[n]; });
        B.markOld(); }""", [*RESULT_MARKS])


def arm_click(page) -> None:  # noqa: ANN001
    """The next click is recorded as the mark ``click``."""
    page.evaluate("() => { const B = window.__bench; delete B.t.click; B.armed = true; }")


def wait_idle(page, *, timeout_s: float) -> None:  # noqa: ANN001
    """No upload in flight and no script run (Streamlit's script state on the app root), twice
    0.5 s apart. (``browser_helpers.wait_uploads_done_and_idle`` looks for the "Running…" status
    widget, which never appears in this app, so it only sees uploads.)"""
    for _ in range(2):
        page.wait_for_function("() => !window.__bench.running() && !window.__bench.spinning()",
                               timeout=timeout_s * 1000, polling=100)
        page.wait_for_timeout(500)


def last_idle_after(page, t_ms: float) -> float:  # noqa: ANN001
    """Epoch ms at which the page last became idle (Streamlit's running indicator gone) at or
    after ``t_ms``; ``t_ms`` itself when the indicator did not show since."""
    status = page.evaluate("() => window.__bench.status")
    ends = [t for t, running in status if not running and t >= t_ms]
    return max(ends) if ends else t_ms


def js_str(s: str) -> str:
    return json.dumps(s)


# ------------------------------------------------------------------------------------------------
# server, started as the product starts it
# ------------------------------------------------------------------------------------------------
@dataclass
class ProductServer:
    url: str
    pid: int
    t_launch: float  # epoch seconds
    exec_s: float | None  # launch → the CLI exec'd streamlit
    health_s: float
    log: Path
    rss: Any = None

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def pleura_command(port: int) -> list[str]:
    """``pleura app`` from this venv (the console script), else the same entry point via ``-c``."""
    script = Path(sys.executable).parent / "pleura"
    base = [str(script)] if script.exists() else [sys.executable, "-c", "from pipeline.cli.main import main; main()"]
    return [*base, "app", "--port", str(port), "--address", "127.0.0.1"]


HELLO_APP = 'import streamlit as st\n\nst.title("Hello")\nst.file_uploader("File")\n'
"""The baseline of section 1: the smallest Streamlit app with an uploader, started as the product is."""


def hello_command(port: int, script: Path) -> list[str]:
    """``streamlit run`` of :data:`HELLO_APP` with the server flags ``pleura app`` passes."""
    from pipeline.cli.app import streamlit_command

    cmd = streamlit_command(port=port, address="127.0.0.1", max_upload_mb=1024)
    cmd[cmd.index("run") + 1] = str(script)
    return cmd


@contextmanager
def product_app(*, run_dir: Path, name: str, bundle: str | None, threads: int | None,
                command: Callable[[int], list[str]] = pleura_command) -> Iterator[ProductServer]:
    """Start ``pleura app`` (or ``command(port)``) on a free port and wait for ``/_stcore/health``;
    the server's RSS is sampled from launch to exit (``server.rss``). Its process group is stopped
    on exit."""
    port = bh.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PLEURA_AUDIT_LOG": str(run_dir / "audit.jsonl"), "PYTHONUNBUFFERED": "1"}
    if bundle:
        env["PLEURA_BUNDLE"] = bundle
    if threads:
        env["PLEURA_THREADS"] = str(threads)
    log_path = run_dir / f"{name}.log"
    with log_path.open("wb") as log:
        t_launch = time.time()
        proc = subprocess.Popen(command(port), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        sampler = bh.RssSampler(proc.pid, interval_s=0.5).__enter__()
        try:
            exec_s = None
            deadline = time.monotonic() + SERVER_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited early with code {proc.returncode}:\n"
                                       f"{log_path.read_text(errors='replace')[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the app did not become healthy within {SERVER_TIMEOUT_S} s")
                if exec_s is None:
                    try:
                        if b"streamlit" in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                            exec_s = time.time() - t_launch
                    except OSError:
                        pass
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                        if resp.status == 200:
                            health_s = time.time() - t_launch
                            break
                except OSError:
                    pass
                time.sleep(0.05)
            yield ProductServer(url=url, pid=proc.pid, t_launch=t_launch, exec_s=exec_s, health_s=health_s,
                                log=log_path, rss=sampler)
        finally:
            sampler.__exit__(None, None, None)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)


# ------------------------------------------------------------------------------------------------
# page steps
# ------------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    ct: Path
    roi: Path
    labs: dict[str, float]
    ct_mb: float = field(init=False)

    def __post_init__(self) -> None:
        self.ct_mb = self.ct.stat().st_size / 1e6


def as_case(c: Any) -> Case:  # bench/pipeline.py's BenchCase
    return Case(c.case_id, Path(c.ct_path), Path(c.roi_path),
                {"CEA": c.cea_ng_ml, "CA125": c.ca125_u_ml, "age": c.age_years})


def timed_upload(page, case: Case, *, timeout_s: float) -> dict[str, float]:  # noqa: ANN001
    """Upload CT, then ROI; per file: seconds from the file being put into the input (its
    ``change`` event) until its chip's spinner is gone (bytes at the server), and until the rerun
    that stores the file is over (page idle)."""
    out: dict[str, float] = {}
    uploader = page.get_by_test_id("stFileUploader")
    for role, label, path in (("ct", "CT scan", case.ct), ("roi", "Tumour ROI mask", case.roi)):
        watch(page, f"{role}_sent", f"return B.hasText('[data-testid=\"stFileUploader\"]', {js_str(path.name)}) "
                                    "&& !B.spinning();")
        uploader.filter(has_text=label).locator("input[type=file]").set_input_files(str(path))
        marks = wait_marks(page, [f"{role}_sent"], timeout_s=timeout_s)
        wait_idle(page, timeout_s=timeout_s)
        changes = page.evaluate("() => window.__bench.changes")
        t0 = max(t for t, n in changes if n == path.name)
        sent = marks[f"{role}_sent"]
        out[f"upload_{role}_s"] = (sent - t0) / 1000
        out[f"upload_{role}_settled_s"] = (last_idle_after(page, sent) - t0) / 1000
        status = page.evaluate("() => window.__bench.status")
        out[f"upload_{role}_running_s"] = [[round((t - t0) / 1000, 3), r] for t, r in status if t >= t0]
    return out


def click_predict(page) -> None:  # noqa: ANN001
    arm_click(page)
    page.get_by_role("button", name="Predict").click()


def watch_result(page, *, steps: Sequence[str]) -> None:  # noqa: ANN001
    """Marks after the Predict click: every progress step, "Done in", the probability, the charts
    drawn, the PDF button; and when the server's elements arrive (headings, chart containers).
    Everything after "Done in" must belong to the current script run (not a stale element of the
    previous result)."""
    reset_result_marks(page)
    gate = "if (!('click' in B.t)) return false; "
    after = "if (!('done' in B.t)) return false; "
    status = "'[data-testid=\"stExpander\"]'"
    for i, step in enumerate(steps):
        watch(page, f"step{i}", gate + f"return B.hasText({status}, {js_str(step_label(step))}, false);")
    watch(page, "done", gate + f"return B.hasText({status}, 'Done in', false);")
    watch(page, "failed", gate + f"return B.hasText({status}, 'Prediction failed', false) "
                                 "|| B.all('[data-testid=\"stAlertContentError\"]').some((e) => B.fresh(e) "
                                 "&& !e.textContent.includes('Outside the model'));")  # a result, not a failure
    watch(page, "probability", after + "return B.all('[data-testid=\"stMetricValue\"]').some("
                                       "(e) => B.fresh(e) && /\\d/.test(e.textContent));")
    for key in ("gauge", "waterfall", "groups", "viewer"):
        watch(page, key, after + f"return B.drawn('{key}', B.t.done);")
    watch(page, "pdf", after + "return B.all('button').some((e) => B.fresh(e) "
                               "&& e.textContent.includes('Download PDF')) "
                               "|| B.all('[data-testid=\"stAlert\"]').some((e) => B.fresh(e) "
                               "&& e.textContent.includes('could not be created'));")
    for key, heading in (("h_shap", "Why this probability?"), ("h_viewer", "CT and tumour outline"),
                         ("h_report", "Report")):
        watch(page, key, after + "return B.all('h3').some((e) => B.fresh(e) "
                                 f"&& e.textContent.includes({js_str(heading)}));")
    for key in ("waterfall", "groups", "viewer"):
        watch(page, f"{key}_el", after + f"return B.fresh(document.querySelector('.st-key-{key}'));")


def read_done_seconds(page) -> float | None:  # noqa: ANN001
    import re

    text = page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=\"stExpander\"]'))"
                         ".map((e) => e.textContent).join(' ')")
    m = re.search(r"Done in ([0-9.]+) s", text)
    return float(m.group(1)) if m else None


def result_timeline(page, marks: dict[str, float], steps: Sequence[str]) -> dict[str, Any]:  # noqa: ANN001
    """Seconds from the click to every mark, and the page's step-by-step split."""
    c = marks["click"]
    rel = {k: (v - c) / 1000 for k, v in marks.items() if k != "click"}
    idle = last_idle_after(page, marks["pdf"])
    shap = [rel.get("waterfall"), rel.get("groups")]
    longtasks = page.evaluate("() => window.__bench.longtasks")
    in_run = [d / 1000 for t, d in longtasks if c <= t <= idle]
    after_done = [d / 1000 for t, d in longtasks if marks["done"] <= t <= idle]
    out: dict[str, Any] = {
        "click_to_probability_s": rel["probability"],
        "click_to_shap_s": None if None in shap else max(shap),
        "click_to_viewer_s": rel.get("viewer"),
        "browser_longtasks_s": sum(in_run), "browser_longtasks_after_done_s": sum(after_done),
        "browser_longest_task_s": max(in_run, default=0.0),
        "click_to_pdf_button_s": rel["pdf"],
        "click_to_idle_s": (idle - c) / 1000,
        "server_done_in_s": read_done_seconds(page),
        "marks_s": {**rel, "idle": (idle - c) / 1000},
    }
    # click → "Done in" by progress step: each step lasts until the next one (or "Done in") shows
    seq = [("click", 0.0)] + [(f"step:{s}", rel.get(f"step{i}")) for i, s in enumerate(steps)] + [("done", rel["done"])]
    seq = [(n, t) for n, t in seq if t is not None]
    split: dict[str, float] = {}
    for (name, t), (_nxt, t_next) in zip(seq, seq[1:], strict=False):
        split[name] = t_next - t
    out["split_s"] = split  # "click": until the first step shows
    return out


# ------------------------------------------------------------------------------------------------
# 1. cold start
# ------------------------------------------------------------------------------------------------
def scorer_load_in_fresh_process(env_bundle: str | None, threads: int | None) -> dict[str, float]:
    """``Scorer()`` in a new Python process that has already imported what the server has when
    the Predict page first opens (streamlit, pipeline.app.session)."""
    code = (
        "import json, time; t0 = time.perf_counter()\n"
        "import streamlit, pipeline.app.session\n"
        "t1 = time.perf_counter()\n"
        "from pipeline.serving.score import Scorer\n"
        "t2 = time.perf_counter()\n"
        "s = Scorer(None)\n"
        "t3 = time.perf_counter()\n"
        "print(json.dumps({'import_streamlit_app_support_s': t1 - t0, 'import_pipeline_score_s': t2 - t1, "
        "'scorer_init_s': t3 - t2}))\n"
    )
    env = dict(os.environ)
    if env_bundle:
        env["PLEURA_BUNDLE"] = env_bundle
    if threads:
        env["PLEURA_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PREDICT_READY_JS = ("return B.hasText('h1', 'Predict one case') "
                    "&& B.all('[data-testid=\"stFileUploader\"]').filter(B.vis).length >= 2 "
                    "&& B.hasText('button', 'Predict');")
HELLO_READY_JS = ("return B.hasText('h1', 'Hello') "
                  "&& B.all('[data-testid=\"stFileUploader\"]').filter(B.vis).length >= 1;")


def direct_cold_run(browser, *, run_dir: Path, name: str, args: argparse.Namespace,  # noqa: ANN001
                    path: str, ready_js: str, hello: bool) -> dict[str, float]:
    """A fresh server, and the browser opening ``path`` as soon as the server answers: seconds
    since the launch until health and until ``ready_js`` holds (the page usable). ``hello``: the
    server is :data:`HELLO_APP` (the floor any Streamlit app pays here), else ``pleura app``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORDER_JS)
    context.add_init_script("window.__bench.watch('ready', " + js_str("const B = window.__bench; " + ready_js) + ");")
    page = context.new_page()
    script = run_dir / "hello_app.py"
    script.write_text(HELLO_APP, encoding="utf-8")
    command = (lambda port: hello_command(port, script)) if hello else pleura_command
    try:
        with product_app(run_dir=run_dir, name=name, bundle=args.bundle, threads=args.threads, command=command) as srv:
            page.goto(srv.url + path, wait_until="commit")
            marks = wait_marks(page, ["ready"], timeout_s=args.timeout)
            return {"health_s": srv.health_s, "ready_s": (marks["ready"] - srv.t_launch * 1000) / 1000}
    except Exception:
        page.screenshot(path=str(run_dir / f"{name}-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def cold_run(browser, *, run_dir: Path, index: int, args: argparse.Namespace, notice: str,  # noqa: ANN001
             probe: Case | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"run": index}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORDER_JS)
    # the home page's marks are watched from the document's creation
    notice_js = "B.hasText('[data-testid=\"stAlert\"]', " + js_str(notice[:40]) + ")"
    home_js = notice_js + " && B.hasText('h1', 'PleuraRisk') && B.all('[data-testid=\"stDataFrame\"]').some(B.vis)"
    context.add_init_script(
        "window.__bench.watch('notice', " + js_str("const B = window.__bench; return " + notice_js + ";") + ");\n"
        "window.__bench.watch('home', " + js_str("const B = window.__bench; return " + home_js + ";") + ");")
    page = context.new_page()
    try:
        with product_app(run_dir=run_dir, name=f"cold{index}", bundle=args.bundle, threads=args.threads) as srv:
            t0 = srv.t_launch * 1000
            rec["exec_s"], rec["health_s"] = srv.exec_s, srv.health_s
            page.goto(srv.url, wait_until="commit")
            marks = wait_marks(page, ["notice", "home"], timeout_s=args.timeout)
            wait_idle(page, timeout_s=args.timeout)
            rec["home_notice_s"] = (marks["notice"] - t0) / 1000
            rec["home_complete_s"] = (last_idle_after(page, marks["home"]) - t0) / 1000

            # a click on Predict in the sidebar (Streamlit's navigation: same session, no reload)
            watch(page, "predict_page", "if (!('click' in B.t)) return false; "
                                        "return B.hasText('h1', 'Predict one case') "
                                        "&& B.all('[data-testid=\"stFileUploader\"]').filter(B.vis).length >= 2 "
                                        "&& B.hasText('button', 'Predict');")
            arm_click(page)
            link = page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predict")
            if link.count() == 0:
                link = page.get_by_role("link", name="Predict one case")
            link.first.click()
            marks = wait_marks(page, ["predict_page"], timeout_s=args.timeout)
            rec["predict_page_s"] = (marks["predict_page"] - t0) / 1000
            rec["predict_page_after_click_s"] = (marks["predict_page"] - marks["click"]) / 1000
            t_predict_page = marks["predict_page"]

            if probe is not None:
                # the model loads in the background from here; upload a small case and click at once
                up = timed_upload(page, probe, timeout_s=args.timeout)
                bh.enter_labs(page, probe.labs)
                wait_idle(page, timeout_s=args.timeout)
                watch_result(page, steps=PREDICT_STEPS)
                click_predict(page)
                marks = wait_marks(page, ["probability", "step0", "step1"], timeout_s=args.timeout, fail="failed")
                loading, reading = marks["step0"], marks["step1"]
                rec["probe"] = {
                    **up,
                    "click_after_predict_page_s": (marks["click"] - t_predict_page) / 1000,
                    "model_wait_at_click_s": (reading - loading) / 1000,
                    "click_to_probability_s": (marks["probability"] - marks["click"]) / 1000,
                }
                # when the model was ready: the step after "loading the model" (an upper bound
                # when the click came after the load had finished: then the wait is ≈ 0)
                rec["model_ready_s"] = (reading - t0) / 1000
                rec["model_ready_after_predict_page_s"] = (reading - t_predict_page) / 1000
                rec["model_ready_is_upper_bound"] = rec["probe"]["model_wait_at_click_s"] < 0.2
            rec["peak_rss_mb"] = srv.rss.peak_bytes / MB
        rec["scorer_fresh_process"] = scorer_load_in_fresh_process(args.bundle, args.threads)
    except Exception:
        page.screenshot(path=str(run_dir / f"cold{index}-failure.png"), full_page=True)
        raise
    finally:
        context.close()
    return rec


# ------------------------------------------------------------------------------------------------
# 2. Predict on clinical-size cases
# ------------------------------------------------------------------------------------------------
def predict_case(page, case: Case, *, args: argparse.Namespace) -> dict[str, Any]:  # noqa: ANN001
    """Upload, labs, click Predict; everything timed in the page."""
    rec: dict[str, Any] = {"case": case.name, "ct_mb": case.ct_mb}
    rec.update(timed_upload(page, case, timeout_s=args.timeout))
    bh.enter_labs(page, case.labs)
    wait_idle(page, timeout_s=args.timeout)
    # the previous result's status box ("Done in …") is gone once a rerun without a click is over
    page.wait_for_function("() => !window.__bench.hasText('[data-testid=\"stExpander\"]', 'Done in', false)",
                           timeout=args.timeout * 1000, polling=200)
    watch_result(page, steps=PREDICT_STEPS)
    click_predict(page)
    marks = wait_marks(page, ["done", "probability", "pdf"], timeout_s=args.timeout, fail="failed")
    try:  # the charts are drawn in the browser, usually before the PDF button shows
        # (the CT viewer is no longer a plotly chart of the result: bench/viewer.py times it)
        marks = wait_marks(page, ["gauge", "waterfall", "groups"], timeout_s=60)
    except Exception:  # noqa: BLE001 - reported as missing
        marks = page.evaluate("() => window.__bench.t")
        say(f"  {case.name}: not every chart was seen drawn within 60 s")
    wait_idle(page, timeout_s=args.timeout)
    rec.update(result_timeline(page, marks, PREDICT_STEPS))
    shown = page.get_by_test_id("stMetricValue").first.inner_text()  # "38 %", "< 1 %", "> 99 %"
    rec["probability"] = float(re.sub(r"[^0-9.]", "", shown)) / 100
    return rec


def predict_session(browser, cases: Sequence[Case], *, run_dir: Path,  # noqa: ANN001
                    args: argparse.Namespace) -> dict[str, Any]:
    """One fresh server. Tab 1 opens Predict and scores ``cases`` one after the other (the first is
    the warm-up: model cache, the browser's first plotly chart); then tab 1 is closed and a new tab
    scores the warm-up case again (warm server, new browser session)."""
    out: dict[str, Any] = {"cases": []}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORDER_JS)
    with product_app(run_dir=run_dir, name="predict", bundle=args.bundle, threads=args.threads) as srv:
        out["server_health_s"] = srv.health_s
        plan = [(case, "warm-up" if i == 0 else "counted", 1) for i, case in enumerate(cases)]
        plan.append((cases[0], "new tab", 2))
        page = None
        tab = 0
        try:
            for case, kind, want_tab in plan:
                if want_tab != tab:
                    if page is not None:
                        page.close()
                    page, tab = context.new_page(), want_tab
                    bh.open_predict_page(page, srv.url)  # goto /predict; returns once its form is shown
                    wait_idle(page, timeout_s=args.timeout)
                    nav0, form = page.evaluate("() => [performance.timeOrigin, window.__bench.t.predict_form]")
                    opened = {"open_predict_s": (form - nav0) / 1000,
                              "open_predict_idle_s": (last_idle_after(page, form) - nav0) / 1000}
                else:
                    opened = {}
                say(f"predict: {case.name} ({case.ct_mb:.0f} MB CT), {kind}, tab {tab}")
                try:
                    rec = {"kind": kind, "warm_up": kind == "warm-up", "tab": tab, **opened,
                           **predict_case(page, case, args=args)}
                except Exception:
                    page.screenshot(path=str(run_dir / f"predict-{case.name}-{kind}-failure.png"), full_page=True)
                    say("server log tail:\n" + srv.log_tail())
                    raise
                rec["rss_after_mb"] = bh.tree_rss_bytes(srv.pid) / MB
                out["cases"].append(rec)
                say(f"  probability {rec['probability']:.2f}; "
                    f"click → probability {rec['click_to_probability_s']:.1f} s, "
                    f"→ idle {rec['click_to_idle_s']:.1f} s")
            if args.screenshot and page is not None:
                page.set_viewport_size({"width": 1400, "height": 3400})
                page.wait_for_timeout(1000)
                page.screenshot(path=str(run_dir / "predict-result.png"))
        finally:
            context.close()
        out["peak_rss_mb"] = srv.rss.peak_bytes / MB
        out["rss_samples"] = [(round(t, 1), round(b / MB)) for t, b in srv.rss.samples]
    return out


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    import streamlit

    return {"cpu": model or platform.processor(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "streamlit": streamlit.__version__, "platform": platform.platform(), "niceness": os.nice(0),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()]}


def _f(v: float | None, width: int = 7) -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width}.2f}"


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    cold = result.get("cold", [])
    for key in ("exec_s", "health_s", "home_notice_s", "home_complete_s", "predict_page_s",
                "predict_page_after_click_s", "model_ready_s", "model_ready_after_predict_page_s"):
        s[f"cold_{key}"] = _median([r.get(key) for r in cold])
    for key in ("model_wait_at_click_s", "click_to_probability_s", "click_after_predict_page_s"):
        s[f"cold_probe_{key}"] = _median([r.get("probe", {}).get(key) for r in cold])
    for key in ("import_streamlit_app_support_s", "import_pipeline_score_s", "scorer_init_s"):
        s[f"fresh_{key}"] = _median([r["scorer_fresh_process"][key] for r in cold if "scorer_fresh_process" in r])
    s["cold_peak_rss_mb"] = max((r["peak_rss_mb"] for r in cold), default=None)
    direct = result.get("cold_direct", [])
    for kind in ("predict", "hello"):
        for key in ("health_s", "ready_s"):
            s[f"direct_{kind}_{key}"] = _median([r[kind][key] for r in direct])
    counted = [c for c in result.get("predict", {}).get("cases", []) if c["kind"] == "counted"]
    keys = ("open_predict_s", "upload_ct_s", "upload_ct_settled_s", "upload_roi_s", "upload_roi_settled_s",
            "click_to_probability_s", "click_to_shap_s", "click_to_viewer_s", "click_to_pdf_button_s",
            "click_to_idle_s", "server_done_in_s", "browser_longtasks_s", "browser_longtasks_after_done_s",
            "browser_longest_task_s")
    s["predict"] = {k: _median([c.get(k) for c in counted]) for k in keys}
    all_cases = result.get("predict", {}).get("cases", [])
    split_names: list[str] = []
    for c in all_cases:
        split_names += [n for n in c["split_s"] if n not in split_names and (n == "click" or n.startswith("step:"))]
    s["predict_steps"] = {n: _median([c["split_s"].get(n) for c in counted]) for n in split_names}
    mark_names: list[str] = []
    for c in all_cases:
        mark_names += [n for n in c["marks_s"] if n not in mark_names and not n.startswith("step")]
    s["predict_marks"] = {n: _median([c["marks_s"].get(n) for c in counted]) for n in mark_names}
    return s


MARK_LABELS = {
    "done": "status box says \"Done in …\"", "probability": "probability (metric) visible",
    "gauge": "gauge drawn", "h_shap": "\"Why this probability?\" heading",
    "waterfall_el": "SHAP waterfall: element arrives", "waterfall": "SHAP waterfall: drawn",
    "groups_el": "SHAP group totals: element arrives", "groups": "SHAP group totals: drawn",
    "h_viewer": "\"CT and tumour outline\" heading", "viewer_el": "slice viewer: element arrives",
    "viewer": "slice viewer: drawn (CT image)", "h_report": "\"Report\" heading",
    "pdf": "PDF button (report built)", "idle": "page idle (script run over)",
}


def format_report(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["summary"]
    cases = result.get("predict", {}).get("cases", [])
    warm = next((c for c in cases if c["kind"] == "warm-up"), None)
    newtab = next((c for c in cases if c["kind"] == "new tab"), None)
    counted = [c for c in cases if c["kind"] == "counted"]
    la0, la1 = m["load_avg_start"], m.get("load_avg_end", [None] * 3)
    L = [
        "",
        f"PleuraRisk app benchmark — {result['date']}",
        f"machine: {m['cpu']}, {m['cpu_count']} cores, {m['memory_gb']} GiB; Python {m['python']}, Streamlit "
        f"{m['streamlit']}, Chromium {result.get('chromium', '?')}; nice {m['niceness']}",
        f"load average (1/5/15 min) at start {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f}, at end "
        f"{la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f}",
        f"server: {result['server_command']} (bundle {result['bundle']})",
    ]
    cold = result.get("cold", [])
    if cold:
        n = len(cold)
        L += ["", f"1. Cold start: seconds since `pleura app` was launched (median of {n} fresh servers; "
                  f"each run: {', '.join(_f(r['health_s'], 0).strip() for r in cold)} s to health)",
              f"   CLI exec'd streamlit                       {_f(s['cold_exec_s'])}",
              f"   /_stcore/health answers 200                {_f(s['cold_health_s'])}",
              f"   home page: research-use notice visible     {_f(s['cold_home_notice_s'])}",
              f"   home page complete (model card, idle)      {_f(s['cold_home_complete_s'])}",
              f"   Predict page rendered (sidebar click)      {_f(s['cold_predict_page_s'])}   "
              f"({_f(s['cold_predict_page_after_click_s'], 0).strip()} s after the click)"]
        if s["cold_model_ready_s"] is not None:
            ub = any(r.get("model_ready_is_upper_bound") for r in cold)
            L += [f"   model loaded (first use, background)       {_f(s['cold_model_ready_s'])}   "
                  f"({_f(s['cold_model_ready_after_predict_page_s'], 0).strip()} s after the Predict page"
                  f"{'; some runs: upper bound' if ub else ''})",
                  f"   probe case ({result['probe']['shape']}): Predict clicked "
                  f"{_f(s['cold_probe_click_after_predict_page_s'], 0).strip()} s after the page, waited "
                  f"{_f(s['cold_probe_model_wait_at_click_s'], 0).strip()} s for the model; click → probability "
                  f"{_f(s['cold_probe_click_to_probability_s'], 0).strip()} s"]
        L += [f"   Scorer() in a fresh process: import streamlit + pipeline.app "
              f"{_f(s['fresh_import_streamlit_app_support_s'], 0).strip()} s, import pipeline.serving.score "
              f"{_f(s['fresh_import_pipeline_score_s'], 0).strip()} s, Scorer(bundle) "
              f"{_f(s['fresh_scorer_init_s'], 0).strip()} s",
              f"   server peak RSS during a cold run: {s['cold_peak_rss_mb']:.0f} MiB"]
    if result.get("cold_direct"):
        L += [f"   /predict opened directly on a fresh server: usable (uploaders + Predict button) "
              f"{_f(s['direct_predict_ready_s'], 0).strip()} s (health {_f(s['direct_predict_health_s'], 0).strip()} s)",
              f"   baseline, an empty Streamlit app with one uploader, same flags: usable "
              f"{_f(s['direct_hello_ready_s'], 0).strip()} s (health {_f(s['direct_hello_health_s'], 0).strip()} s)"]
    if cases:
        p = s["predict"]
        shape = result["phantom_shape"]
        L += ["", f"2. Predict on {shape[0]}×{shape[1]}×{shape[2]} phantoms, one fresh server: warm-up = first case "
                  f"(fresh server, first tab); median of {len(counted)} more in the same tab "
                  f"({', '.join(c['case'] for c in counted)}); new tab = the warm-up case again in a new tab",
              f"   {'':46}{'warm-up':>8}{'median':>8}{'new tab':>8}   each"]

        def row(label: str, get, med: float | None) -> str:  # noqa: ANN001
            each = " ".join(_f(get(c), 0).strip() for c in counted)
            return (f"   {label:46}{_f(get(warm) if warm else None, 8)}{_f(med, 8)}"
                    f"{_f(get(newtab) if newtab else None, 8)}   {each}")

        def krow(label: str, key: str) -> str:
            return row(label, lambda c: c.get(key), p.get(key))

        ct_mb = _median([c["ct_mb"] for c in cases])
        L += [krow("open Predict: form shown (new tab only)", "open_predict_s"),
              krow(f"upload CT ({ct_mb:.0f} MB): chip done", "upload_ct_s"),
              krow("upload CT: + the rerun storing it (idle)", "upload_ct_settled_s"),
              krow("upload ROI: chip done", "upload_roi_s"),
              krow("upload ROI: + the rerun (idle)", "upload_roi_settled_s"),
              krow("click → probability visible", "click_to_probability_s"),
              krow("click → SHAP charts drawn", "click_to_shap_s"),
              krow("click → slice viewer drawn", "click_to_viewer_s"),
              krow("click → PDF button (report built)", "click_to_pdf_button_s"),
              krow("click → page idle (script run over)", "click_to_idle_s"),
              krow("server's own \"Done in\" (run_prediction)", "server_done_in_s"),
              "   click → \"Done in\", by the progress step the page shows (seconds each is shown):"]
        for name, med in s["predict_steps"].items():
            label = "(click → first step: rerun up to the button)" if name == "click" else "  " + name[5:]
            L.append(row(label, lambda c, n=name: c["split_s"].get(n), med))
        L.append("   after that, seconds since the click when each shows:")
        marks = s["predict_marks"]
        for name in sorted(marks, key=lambda n: (marks[n] is None, marks[n] or 0.0)):
            if name in MARK_LABELS:
                L.append(row("  " + MARK_LABELS[name], lambda c, n=name: c["marks_s"].get(n), marks[name]))
        L += [krow("browser main thread: long tasks click → idle", "browser_longtasks_s"),
              krow("  of which after \"Done in\"", "browser_longtasks_after_done_s"),
              krow("  longest single task", "browser_longest_task_s")]
        pr = result["predict"]
        L += [f"   server peak RSS during the Predict session: {pr['peak_rss_mb']:.0f} MiB "
              f"(after each case: {', '.join(format(c['rss_after_mb'], '.0f') for c in cases)} MiB)"]
    L.append(f"\n(benchmark wall time {result['benchmark_wall_s'] / 60:.1f} min)")
    return "\n".join(L)


# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cold", type=int, default=3, help="cold starts, each with a fresh server (default 3; 0 skips)")
    p.add_argument("--cases", type=int, default=3,
                   help="counted Predict cases (default 3; one more is a warm-up; 0 skips)")
    p.add_argument("--size", type=int, default=512, help="in-plane matrix of the Predict phantoms (default 512)")
    p.add_argument("--slices", type=int, default=300, help="slices of the Predict phantoms (default 300)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0, as bench/pipeline.py)")
    p.add_argument("--probe-size", type=int, default=256, help="matrix of the cold-start probe case (default 256)")
    p.add_argument("--probe-slices", type=int, default=120, help="slices of the probe case (default 120)")
    p.add_argument("--no-probe", action="store_true", help="cold start without the probe prediction")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pleurarisk-bench"),
                   help="phantoms (shared with bench/pipeline.py) and run logs (default $TMPDIR/pleurarisk-bench)")
    p.add_argument("--bundle", default=None, help="model bundle (sets PLEURA_BUNDLE; default as the app: weights/demo)")
    p.add_argument("--threads", type=int, default=None, help="sets PLEURA_THREADS (default: unset, as the app)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for any one page event (default 600)")
    p.add_argument("--screenshot", action="store_true", help="save the last result page as predict-result.png")
    p.add_argument("--out", default=None, help="write everything as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    global PREDICT_STEPS
    args = build_parser().parse_args(argv)
    if not bh.CHROMIUM.exists():
        raise SystemExit(f"error: {bh.CHROMIUM} is missing (this benchmark never downloads a browser)")
    if args.bundle:
        args.bundle = str(Path(args.bundle).resolve())
        os.environ["PLEURA_BUNDLE"] = args.bundle  # for the notice lookup below
    t_start = time.perf_counter()
    from pipeline.app import bundles, prediction, session

    PREDICT_STEPS = tuple(name for name, _ in prediction.StepProgress.STEPS)
    bundle_path = bundles.initial_bundle_path()
    info = bundles.describe_bundle(bundle_path)
    if not info.ok:
        raise SystemExit(f"error: no usable model bundle ({info.error})")

    workdir = Path(args.workdir)
    run_dir = workdir / f"app-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
        "args": vars(args), "machine": machine_info(),
        "server_command": "pleura app --port <free> --address 127.0.0.1",
        "bundle": str(bundle_path.relative_to(REPO) if bundle_path.is_relative_to(REPO) else bundle_path),
        "run_dir": str(run_dir),
    }
    say(f"logs in {run_dir}")

    predict_cases: list[Case] = []
    if args.cases > 0:
        folder = workdir / f"phantoms-{args.slices}x{args.size}x{args.size}-seed{args.seed}"
        say(f"phantoms in {folder} (written if missing)")
        predict_cases = [as_case(c) for c in bp.make_bench_cases(folder, n=args.cases + 1, size=args.size,
                                                                  slices=args.slices, seed=args.seed)]
        result["phantom_shape"] = [args.slices, args.size, args.size]
    probe = None
    if args.cold > 0 and not args.no_probe:
        folder = workdir / f"phantoms-{args.probe_slices}x{args.probe_size}x{args.probe_size}-seed{args.seed}"
        probe = as_case(bp.make_bench_cases(folder, n=1, size=args.probe_size, slices=args.probe_slices,
                                            seed=args.seed)[0])
        result["probe"] = {"case": probe.name, "shape": f"{args.probe_slices}×{args.probe_size}×{args.probe_size}",
                           "ct_mb": probe.ct_mb}

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = bh.launch_chromium(pw)
        result["chromium"] = browser.version
        try:
            result["cold"] = []
            for i in range(args.cold):
                say(f"cold start {i + 1}/{args.cold}")
                rec = cold_run(browser, run_dir=run_dir, index=i, args=args, notice=info.notice, probe=probe)
                say(f"  health {rec['health_s']:.1f} s, notice {rec['home_notice_s']:.1f} s, Predict page "
                    f"{rec['predict_page_s']:.1f} s" + (f", model ready {rec['model_ready_s']:.1f} s"
                                                        if "model_ready_s" in rec else ""))
                result["cold"].append(rec)
            result["cold_direct"] = []
            for i in range(args.cold):  # the same, opening /predict directly; and an empty Streamlit app
                rec = {"predict": direct_cold_run(browser, run_dir=run_dir, name=f"direct{i}", args=args,
                                                  path="/predict", ready_js=PREDICT_READY_JS, hello=False),
                       "hello": direct_cold_run(browser, run_dir=run_dir, name=f"hello{i}", args=args,
                                                path="/", ready_js=HELLO_READY_JS, hello=True)}
                say(f"  /predict opened directly on a fresh server: usable at {rec['predict']['ready_s']:.2f} s "
                    f"(health {rec['predict']['health_s']:.2f} s); an empty Streamlit app with an uploader: "
                    f"{rec['hello']['ready_s']:.2f} s (health {rec['hello']['health_s']:.2f} s)")
                result["cold_direct"].append(rec)
            if predict_cases:
                result["predict"] = predict_session(browser, predict_cases, run_dir=run_dir, args=args)
        finally:
            browser.close()

    result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["benchmark_wall_s"] = time.perf_counter() - t_start
    result["summary"] = summarise(result)
    print(format_report(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
