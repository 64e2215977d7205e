"""What the Streamlit pages need, kept out of the pages so it can be tested without a browser.

The pages (``pages/*.py``) only lay out widgets and call these functions:

* bundles — which model bundles exist, a verified description of one (no model loaded), the
  message shown when there is none;
* prediction — clinical values from the form, uploads → paths (:class:`~pipeline.io.archive.UploadFolder`),
  :func:`run_prediction` (scores through :class:`~pipeline.serving.score.Scorer`, keeps what the result
  view needs, writes the audit line), progress fractions for the Scorer's steps;
* batch — uploads → cases (same layouts as ``pleura batch``), :func:`run_app_batch`;
* Streamlit glue (imported lazily): model cache keyed by bundle path, the session's upload
  folder and chosen bundle, the notice banner.

Example:
    >>> tracker = StepProgress()
    >>> tracker.fraction("reading and checking the images"), tracker.fraction("scoring")
    (0.02, 0.84)
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.io.archive import UploadFolder
from pipeline.serving.bundle import MANIFEST, ManifestFacts, default_bundle_path, list_bundles, package_versions, verify_bundle
from pipeline.inputs.clinical import FIELDS, ClinicalValues, parse_clinical
from pipeline.core.errors import BundleError, CohortError, PleuraRiskError

ENV_BUNDLE = "PLEURA_BUNDLE"

NO_BUNDLE_HELP = (
    "No model bundle was found. PleuraRisk looks at `$PLEURA_BUNDLE` and then `weights/demo`. "
    "Put a bundle folder (with `manifest.json`) into `weights/`, or start the app with "
    "`PLEURA_BUNDLE=/path/to/bundle pleura app`. The demo bundle is rebuilt from synthetic phantoms by "
    "`bash scripts/build_demo_model.sh`."
)
GENERIC_ERROR = "Something went wrong while processing this request; nothing was saved. Please try again, and report it if it persists."


# ------------------------------------------------------------------------------------------------
# bundles
def bundle_choices(weights_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Bundles the user can pick: ``$PLEURA_BUNDLE`` (if it has a manifest) first, then every
    bundle in ``weights/`` (sorted), without duplicates."""
    out: list[Path] = []
    env = os.environ.get(ENV_BUNDLE)
    if env and (Path(env) / MANIFEST).is_file():
        out.append(Path(env))
    for p in list_bundles(Path(weights_dir) if weights_dir else None):
        if all(p.resolve() != q.resolve() for q in out):
            out.append(p)
    return out


def initial_bundle_path(weights_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The bundle a new session starts with: the default (``$PLEURA_BUNDLE`` or ``weights/demo``)
    when it exists, else the first available one, else ``None``."""
    default = default_bundle_path()
    if (default / MANIFEST).is_file():
        return default
    choices = bundle_choices(weights_dir)
    return choices[0] if choices else None


def bundle_stamp(path: str | os.PathLike[str]) -> tuple:
    """Cheap change detector for cache keys: (name, size, mtime_ns) of the bundle's top-level files."""
    root = Path(path)
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()))
    except OSError:
        return ()


@dataclass(frozen=True, eq=False)
class BundleInfo(ManifestFacts):
    """A bundle described for display (verified by sha256, model not loaded).

    ``error`` holds the refusal message when the bundle is missing or fails verification; the
    other fields are then empty.
    """

    path: Path
    error: str | None = None
    bundle_id: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    model_card: str | None = None
    report_files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def short_id(self) -> str:
        return self.bundle_id[:12]

    def summary_rows(self) -> list[tuple[str, str]]:
        """(field, value) rows of the model card summary shown on Home and Model."""
        m = self.manifest
        training = m.get("training") or {}
        features = m.get("feature_names") or []
        from pipeline.core.groups import group_columns

        try:
            groups = ", ".join(f"{g} {len(c)}" for g, c in group_columns(features).items())
        except ValueError:
            groups = f"{len(features)} features"
        rows = [
            ("Model", self.name),
            ("Bundle id", self.bundle_id),
            ("Created", str(m.get("created", "unknown"))),
            ("Trained on", "synthetic phantoms (demo)" if self.synthetic else "real data (see model card)"),
            ("Intended use", str(m.get("intended_use", ""))),
            ("Features", f"{len(features)} ({groups})"),
            ("Method", str(training.get("method", "not recorded"))),
            ("Operating threshold", f"{float(training.get('threshold', 0.5)):.2f}"),
        ]
        if "n_cases" in training:
            rows.append(("Training cases", f"{training['n_cases']} ({training.get('n_positive', '?')} with VPI)"))
        backbone = m.get("backbone") or {}
        if backbone:
            rows.append(("CNN backbone", f"{backbone.get('architecture', '')}; weights: {backbone.get('source', 'not recorded')}"))
        return rows


def describe_bundle(path: str | os.PathLike[str] | None) -> BundleInfo:
    """Verify a bundle's files (sha256) and read its manifest, model card and report file list.

    Never raises for a bad bundle: the refusal is in :attr:`BundleInfo.error`.
    """
    if path is None:
        return BundleInfo(Path(default_bundle_path()), error=NO_BUNDLE_HELP)
    root = Path(path)
    if not (root / MANIFEST).is_file():
        return BundleInfo(root, error=f"No model bundle at `{root}`. {NO_BUNDLE_HELP}")
    try:
        manifest, bundle_id = verify_bundle(root)
    except BundleError as err:
        return BundleInfo(root, error=str(err))
    card_path = root / "MODEL_CARD.md"
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else None
    listed = manifest.get("files") or {}
    reports = tuple(sorted(rel for rel in listed if rel.startswith("report/") and rel.lower().endswith((".png", ".html", ".htm", ".json", ".csv", ".svg"))))
    return BundleInfo(root, None, bundle_id, manifest, card, reports)


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def training_rows(manifest: dict[str, Any], *, max_depth: int = 3) -> list[tuple[str, str]]:
    """Scalar entries of ``manifest['training']`` flattened to ``a.b.c`` keys (lists left out)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any, depth: int) -> None:
        if _scalar(value):
            rows.append((prefix, f"{value:.4g}" if isinstance(value, float) else str(value)))
        elif isinstance(value, dict) and depth < max_depth:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)

    walk("", manifest.get("training") or {}, 0)
    return rows


def version_rows(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Package versions the bundle was built with next to the ones installed now."""
    built = manifest.get("package_versions") or {}
    now = package_versions()
    return [{"package": k, "bundle": str(built.get(k, "")), "installed": str(now.get(k, "")),
             "same": "yes" if str(built.get(k, "")) == str(now.get(k, "")) else "NO"}
            for k in sorted(set(built) | set(now))]


# ------------------------------------------------------------------------------------------------
# prediction
CLINICAL_HELP = {
    f.name: f"{f.name} in {f.unit}; accepted {f.low:g}–{f.high:g} {f.unit}." for f in FIELDS
}
CLINICAL_HELP["CEA"] += " Reference < 5 ng/mL (µg/L is the same number)."
CLINICAL_HELP["CA125"] += " Reference < 35 U/mL (kU/L is the same number)."
CLINICAL_HELP["age"] += " Adults only."


def clinical_from_form(*, cea: object, ca125: object, age: object) -> ClinicalValues:
    """Parse the three form fields (``None`` = left empty); raises ClinicalValueError naming the field."""
    return parse_clinical(cea=cea, ca125=ca125, age=age)


def roi_label_from_form(value: object) -> int | None:
    """The optional ROI label: empty → ``None``; otherwise a positive whole number.

    Raises:
        PleuraRiskError (MaskError) with a clear sentence for 0, negatives or fractions.
    """
    from pipeline.core.errors import MaskError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MaskError(f"ROI label must be a whole number ≥ 1 (got {str(value)[:20]!r})") from None
    if number != int(number) or number < 1:
        raise MaskError(f"ROI label must be a whole number ≥ 1 (got {value})")
    return int(number)


class StepProgress:
    """Maps the Scorer's progress messages to a 0–1 fraction (share of a typical case's time)."""

    STEPS = (
        ("loading the model", 0.0),
        ("reading and checking the images", 0.02),
        ("deep features (MedicalNet ResNet-10)", 0.15),
        ("radiomics features (PyRadiomics)", 0.30),
        ("pleura features", 0.72),
        ("scoring", 0.84),
        ("explaining (SHAP)", 0.88),
        ("preparing the result view", 0.96),
    )

    def __init__(self) -> None:
        self._last = 0.0

    def fraction(self, step: str) -> float:
        for name, start in self.STEPS:
            if step == name:
                self._last = max(self._last, start)
                break
        return self._last


SCORING_LOCK = threading.Lock()
"""One prediction at a time per app process (the machine's cores go to that case)."""


@dataclass(eq=False)
class PredictionOutcome:
    """What the result view shows; kept in the session so widget changes never recompute.

    Attributes:
        result: the CaseResult without its (large) PreparedCase.
        viewer: LPS volumes for the slice viewer (``None`` when the CT could not be kept).
        clinical, roi_label: the inputs scored.
        signature: identity of the inputs (to say when the form no longer matches the result).
        created: UTC time of the prediction.
        seconds: wall time from click to result.
        json_bytes: the JSON report; ``pdf_bytes`` is filled on first request (it takes ~1–3 s),
            once per outcome even when several script runs ask for it at the same time (see :meth:`pdf`).
        audit_error: why the audit line could not be written, if it could not.
        uid: distinguishes results (keys of per-result widgets such as the slice slider).
    """

    result: Any
    viewer: Any
    clinical: ClinicalValues
    roi_label: int | None
    signature: str
    created: _dt.datetime
    seconds: float
    json_bytes: bytes
    pdf_bytes: bytes | None = None
    audit_error: str | None = None
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _pdf_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def pdf(self) -> bytes:
        """The PDF report (built once, then kept).

        Several script runs can ask at once: Streamlit's fast reruns start a new run on a new
        thread as soon as the user changes a widget, while the previous run (which cannot be
        interrupted inside this call) carries on building the report. Without the lock each of
        those runs built its own copy of the same report; the builds queue on matplotlib's
        process-wide render lock, so a user who keeps changing inputs piled up threads that each
        held a report in the making (measured in ``tests/e2e/test_load.py``: 14 script threads
        and 0.3 → 0.5 GB of malloc'd memory in use after ~30 predictions). With the lock the
        later runs wait for the one build and then use its bytes.
        """
        with self._pdf_lock:
            if self.pdf_bytes is None:
                from pipeline.serving.report import report_pdf

                self.pdf_bytes = report_pdf(self.result, clinical=self.clinical, roi_label=self.roi_label,
                                            viewer=self.viewer, created=self.created)
            return self.pdf_bytes

    def file_stem(self) -> str:
        """Download name without identifiers: ``pleurarisk_<UTC time>_<ct hash prefix>``."""
        return f"pleurarisk_{self.created:%Y%m%dT%H%M%SZ}_{self.result.ct_sha256[:8]}"


def input_signature(*, ct_token: str, roi_token: str, clinical: ClinicalValues | None, roi_label: int | None,
                    model_id: str) -> str:
    """A string that changes whenever anything that affects the prediction changes."""
    clin = None if clinical is None else (clinical.cea_ng_ml, clinical.ca125_u_ml, clinical.age_years)
    return json.dumps([ct_token, roi_token, clin, roi_label, model_id])


def run_prediction(scorer, *, ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str],  # noqa: ANN001
                   clinical: ClinicalValues, roi_label: int | None = None,
                   progress: Callable[[str], None] | None = None, signature: str = "",
                   audit: bool = True, audit_path: str | os.PathLike[str] | None = None,
                   source: str = "app") -> PredictionOutcome:
    """Score one case with ``scorer`` and build everything the result view needs.

    Writes one audit line (unless ``audit=False``); an unwritable audit log does not lose the
    result but is reported in :attr:`PredictionOutcome.audit_error`.

    Raises:
        PleuraRiskError subclasses for inputs the user must fix (nothing is kept).
    """
    from pipeline.serving.audit import log_prediction
    from pipeline.serving.figures import viewer_volumes
    from pipeline.serving.report import report_json

    say = progress or (lambda _s: None)
    t0 = time.perf_counter()
    if not SCORING_LOCK.acquire(blocking=False):
        say("waiting for another prediction to finish")
        SCORING_LOCK.acquire()
    try:
        result = scorer.score(ct_path, roi_path, clinical, label=roi_label, progress=say, keep_case=True)
    finally:
        SCORING_LOCK.release()
    say("preparing the result view")
    viewer = None
    case = result.case
    if case is not None and case.ct_full is not None and case.roi_full is not None:
        viewer = viewer_volumes(case.ct_full, case.roi_full)
    result = replace(result, case=None)
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    outcome = PredictionOutcome(
        result=result, viewer=viewer, clinical=clinical, roi_label=roi_label, signature=signature,
        created=created, seconds=0.0,
        json_bytes=report_json(result, clinical=clinical, roi_label=roi_label, created=created),
    )
    if audit:
        try:
            log_prediction(result, source=source, path=audit_path)
        except OSError as exc:
            outcome.audit_error = f"the audit log could not be written ({exc.strerror or type(exc).__name__})"
    outcome.seconds = time.perf_counter() - t0
    return outcome


def tree_spread_text(result) -> str | None:  # noqa: ANN001
    """One sentence describing the tree spread, or ``None`` when the model has no trees."""
    if result.tree_p05 is None or result.tree_p95 is None:
        return None
    sd = f" (SD {result.tree_sd:.2f})" if result.tree_sd is not None else ""
    return (f"Tree spread {result.tree_p05:.2f}–{result.tree_p95:.2f}{sd}: the 5th–95th percentile of the "
            "probabilities of the forest's individual trees. It shows how much the trees disagree; it is "
            "not a calibrated confidence interval.")


# ------------------------------------------------------------------------------------------------
# batch
def batch_root(folder: str | os.PathLike[str]) -> Path:
    """The folder holding the cases: ``folder`` itself, or its single sub-folder when the zip
    wrapped everything in one top-level folder."""
    root = Path(folder)
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        dirs = [p for p in entries if p.is_dir()]
        files = [p for p in entries if p.is_file()]
        if len(dirs) == 1 and not files:
            inner = dirs[0]
            # a folder-per-case batch with one case also has one sub-folder: keep it as a case
            if any((inner / n).exists() for n in ("ct", "roi")) or any(
                    p.name.startswith(("ct.", "roi.")) for p in inner.iterdir()):
                return root
            root = inner
        else:
            break
    return root


def _find_clinical_csv(root: Path) -> Path | None:
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name.lower() in ("clinical.csv", "clinical_values.csv"):
            return p
    return None


def prepare_batch(uploads: UploadFolder, *, zip_bytes: bytes, zip_token: str | None = None,
                  csv_bytes: bytes | None = None, csv_token: str | None = None) -> list:
    """Batch uploads → cases (:class:`~pipeline.inputs.cohort.CaseInput`), same layouts as ``pleura batch``.

    The clinical CSV may be uploaded separately or sit in the zip as ``clinical.csv``.

    Raises:
        ArchiveError: unsafe/invalid zip. CohortError: no clinical CSV, bad CSV, no cases.
    """
    from pipeline.inputs.cohort import discover_cases

    folder = uploads.store_archive("batch", data=zip_bytes, token=zip_token, what="the batch zip")
    root = batch_root(folder)
    if csv_bytes is not None:
        csv_path = uploads.store_file("clinical", suffix=".csv", data=csv_bytes, token=csv_token)
    else:
        csv_path = _find_clinical_csv(root)
        if csv_path is None:
            raise CohortError("no clinical values: upload a clinical CSV (columns case_id, CEA, CA125, age) "
                              "or put clinical.csv in the zip")
    return discover_cases(root, clinical_csv=csv_path)


DISPLAY_COLUMNS = ("case_id", "status", "probability", "risk_band", "tree_p05", "tree_p95", "warnings", "error_type", "error")


@dataclass(frozen=True, eq=False)
class AppBatchResult:
    """A finished in-app batch: display table, the results CSV bytes, the BatchSummary, and why
    audit lines could not be written (if so)."""

    table: Any
    csv_bytes: bytes
    summary: Any
    audit_error: str | None = None


def run_app_batch(cases: list, *, bundle: BundleInfo, out_path: str | os.PathLike[str],
                  progress: Callable[[int, int, dict | None], None] | None = None, audit: bool = True,
                  audit_path: str | os.PathLike[str] | None = None) -> AppBatchResult:
    """Score cases in this process (``run_batch`` with one worker; resumes from ``out_path``'s
    journal) and write one audit line per newly scored case.

    Raises:
        BundleError: ``bundle`` is not usable.
    """
    import pandas as pd

    from pipeline.serving.audit import append_audit, entry_from_batch_row
    from pipeline.serving.batch import run_batch

    if not bundle.ok:
        raise BundleError(bundle.error or "no usable model bundle")
    audit_problems: list[str] = []

    def on_progress(done: int, total: int, row: dict | None) -> None:
        if audit and row is not None:
            entry = entry_from_batch_row(row, model_name=bundle.name)
            if entry is not None:
                try:
                    append_audit(entry, path=audit_path)
                except OSError as exc:
                    audit_problems.append(exc.strerror or type(exc).__name__)
        if progress:
            progress(done, total, row)

    threads = int(os.environ["PLEURA_THREADS"]) if os.environ.get("PLEURA_THREADS") else None
    with SCORING_LOCK:
        summary = run_batch(cases, out_path=out_path, bundle_path=str(bundle.path), model_id=bundle.bundle_id,
                            notice=bundle.notice, workers=1, num_threads=threads, progress=on_progress)
    csv_bytes = Path(summary.out_path).read_bytes()
    table = pd.read_csv(io.BytesIO(csv_bytes), dtype={"case_id": str}, keep_default_na=False)
    table = table[[c for c in DISPLAY_COLUMNS if c in table.columns]]
    problem = f"the audit log could not be written ({audit_problems[0]})" if audit_problems else None
    return AppBatchResult(table, csv_bytes, summary, problem)


# ------------------------------------------------------------------------------------------------
# Streamlit glue (streamlit imported lazily so the helpers above stay importable without it)
_SCORER_CACHE: Callable[..., Any] | None = None
_INFO_CACHE: Callable[..., Any] | None = None


def cached_scorer(path: str | os.PathLike[str]):  # noqa: ANN201
    """The Scorer of a bundle, loaded once per process (``st.cache_resource``), keyed by the
    bundle path and its files' size/mtime."""
    import streamlit as st

    global _SCORER_CACHE
    if _SCORER_CACHE is None:
        @st.cache_resource(show_spinner=False, max_entries=2)
        def _load(path_str: str, _stamp: tuple):  # noqa: ANN202
            from pipeline.serving.score import Scorer

            return Scorer(path_str)

        _SCORER_CACHE = _load
    return _SCORER_CACHE(str(Path(path).resolve()), bundle_stamp(path))


_WARMING: set[tuple] = set()
_WARMING_LOCK = threading.Lock()


def warm_up_scorer(path: str | os.PathLike[str]) -> None:
    """Start loading a bundle's Scorer in a background thread (once per bundle version), so the
    first Predict click does not wait for the model while the user is still uploading files.
    A click during loading waits for the same load (``st.cache_resource`` locks per key); a
    failed load is not cached and is reported by the click."""
    import logging

    key = (str(Path(path).resolve()), bundle_stamp(path))
    with _WARMING_LOCK:
        if key in _WARMING:
            return
        _WARMING.add(key)

    def load() -> None:
        try:
            cached_scorer(path)
        except Exception:  # noqa: BLE001 - the Predict click reports it to the user
            logging.getLogger("pleurarisk.app").warning("background model load failed", exc_info=True)
            with _WARMING_LOCK:
                _WARMING.discard(key)

    threading.Thread(target=load, name="pleura-model-warm-up", daemon=True).start()


def cached_bundle_info(path: str | os.PathLike[str] | None) -> BundleInfo:
    """:func:`describe_bundle`, cached per process by path and file stamps."""
    import streamlit as st

    global _INFO_CACHE
    if _INFO_CACHE is None:
        @st.cache_resource(show_spinner=False, max_entries=16)
        def _describe(path_str: str | None, _stamp: tuple) -> BundleInfo:
            return describe_bundle(path_str)

        _INFO_CACHE = _describe
    if path is None:
        return describe_bundle(None)
    return _INFO_CACHE(str(Path(path).resolve()), bundle_stamp(path))


def session_bundle_path() -> Path | None:
    """The bundle this session uses (chosen on the Model page; default :func:`initial_bundle_path`)."""
    import streamlit as st

    if "bundle_path" not in st.session_state:
        first = initial_bundle_path()
        st.session_state["bundle_path"] = str(first) if first else None
    value = st.session_state["bundle_path"]
    return Path(value) if value else None


def session_uploads() -> UploadFolder:
    """This session's private upload folder (deleted when the session ends)."""
    import streamlit as st

    uploads = st.session_state.get("_uploads")
    if not isinstance(uploads, UploadFolder) or not uploads.alive:
        uploads = UploadFolder()
        st.session_state["_uploads"] = uploads
    return uploads


def page_header() -> BundleInfo:
    """Top of every page: the model's notice as a banner and the model in use in the sidebar.

    Returns the session's :class:`BundleInfo` (check ``.ok`` before predicting).
    """
    import streamlit as st

    info = cached_bundle_info(session_bundle_path())
    st.warning(f"**{info.notice}**", icon=":material/info:")
    with st.sidebar:
        st.markdown("**PleuraRisk**: visceral pleural invasion risk from CT, tumour ROI and labs.")
        st.caption(f"Model: **{info.name}** (`{info.short_id}`)" if info.ok else "Model: none loaded (see the Model page)")
        st.caption(info.notice)
    return info


def show_error(err: BaseException) -> None:
    """``st.error`` with the user-facing message (PleuraRiskError) or a short generic one."""
    import streamlit as st

    if isinstance(err, PleuraRiskError):
        st.error(str(err), icon=":material/error:")
    else:
        st.error(f"{GENERIC_ERROR} ({type(err).__name__})", icon=":material/error:")
