"""External validation of a bundle on a labelled cohort (``pleura evaluate``).

:func:`evaluate_bundle` scores every case of a cohort CSV (case_id, ct_path, roi_path, CEA,
CA125, age, label, optional p_true) with the bundle through :func:`pipeline.serving.batch.score_cases`
-- or, from a feature table (``pleura features`` / ``pleura synth --features-out``; labels and
p_true are in it), every ok row through :func:`pipeline.serving.score.model_probability`, the
function the Scorer computes each probability with (:func:`table_probabilities`: no image is
read, the table must have been extracted with the bundle's settings and backbone) -- measures discrimination and calibration of P(VPI) at the bundle's training threshold, and
writes ``evaluation.json``, ``predictions.csv`` and the plots into a folder. For synthetic
cohorts (``p_true``: the generator's true probability) it also reports the *oracle* (the same
metrics of the true probabilities) and the project's quality bar against it. With
``attach=True`` the folder's files, a summary and a line of the model card are stored in the
bundle (its manifest is re-sealed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from pipeline.training.evaluate import ValidationMetrics
from pipeline.training.model_card import external_validation_line

__all__ = ["ExternalEvaluation", "evaluate_bundle", "table_probabilities", "TableCase", "report_files", "oracle_metrics", "cohort_slug"]

_PLOTLY_JS, _SHARED_PLOTLY_JS = "plotly.min.js", "report/training/plotly.min.js"


@dataclass(frozen=True)
class ExternalEvaluation:
    """What :func:`evaluate_bundle` measured.

    Attributes:
        result: the content of ``evaluation.json`` (cohort, counts, failed cases, model, notice,
            metrics, and ``oracle`` / ``quality_bar`` for cohorts with ``p_true``).
        metrics: the bundle's metrics on the scored, labelled cases at its training threshold.
        notice: the bundle's notice (research use; synthetic training data).
        out: the folder written.
        probabilities: case_id → P(VPI) of every scored, labelled case, to 6 decimals as
            ``pleura batch`` rows give them (the values the metrics were computed from).
    """

    result: dict[str, Any]
    metrics: ValidationMetrics
    notice: str
    out: Path
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TableCase:
    """One row of a feature table as the evaluation needs it (like a cohort CSV's case)."""

    case_id: str
    label: float
    p_true: float


def table_probabilities(model: Any, features: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[TableCase]]:
    """Score every row of a feature table with a loaded bundle, without images.

    Args:
        model: a loaded :class:`~pipeline.serving.bundle.ModelBundle`.
        features: parquet feature table (``pleura features`` or ``pleura synth --features-out``).

    Returns:
        (rows like :func:`~pipeline.serving.batch.score_cases`'s: case_id, status ``ok``/``error``,
        probability (full precision; those rows round to 6 decimals), error; the table's cases with label and p_true), in table order. A row the
        extraction failed on keeps its error; one with a missing or non-finite feature the model
        uses is an error row too, as scoring its images would refuse it.

    Raises:
        CohortError: the table is unreadable, lacks bookkeeping or feature columns the model uses,
            or was extracted with another PipelineConfig or backbone than the bundle's.
    """
    import math

    from pipeline.core.errors import CohortError
    from pipeline.serving.score import model_probability
    from pipeline.training.dataset import read_table

    table, meta = read_table(features)
    need = [c for c in ("case_id", "status", "label") if c not in table.columns]
    if need:
        raise CohortError(f"feature table lacks column(s) {', '.join(need)}")
    if "config" not in meta:
        raise CohortError("feature table has no extraction settings in its metadata (not written by pleura features)")
    if json.dumps(meta["config"], sort_keys=True) != json.dumps(model.config.to_dict(), sort_keys=True):
        raise CohortError("feature table was extracted with other settings (PipelineConfig) than the model bundle "
                          "uses; extract it again with the bundle's settings")
    names = list(model.feature_names)
    if any(n.startswith("dl_") for n in names):
        _check_backbone(model, meta)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise CohortError(f"feature table lacks {len(missing)} feature(s) the model uses (e.g. {missing[0]!r})")
    X = table[names].to_numpy(dtype=np.float64)
    rows, cases = [], []
    for i, (cid, status, label) in enumerate(zip(table["case_id"], table["status"], table["label"])):
        p_true = table["p_true"].iloc[i] if "p_true" in table.columns else math.nan
        cases.append(TableCase(str(cid), float(label) if label is not None else math.nan,
                               float(p_true) if p_true is not None else math.nan))
        if status != "ok":
            error = str(table["error"].iloc[i]) if "error" in table.columns else "feature extraction failed"
            rows.append({"case_id": str(cid), "status": "error", "probability": None, "error": error})
        elif not np.all(np.isfinite(X[i])):
            bad = [n for n, v in zip(names, X[i]) if not np.isfinite(v)]
            rows.append({"case_id": str(cid), "status": "error", "probability": None,
                         "error": f"feature(s) not finite in the table: {', '.join(bad[:5])}"})
        else:
            probability, _ = model_probability(model.estimator, X[i:i + 1], spread=False)
            rows.append({"case_id": str(cid), "status": "ok", "probability": probability, "error": ""})
    return rows, cases


def _check_backbone(model: Any, meta: Mapping[str, Any]) -> None:
    """Refuse a table whose deep features come from another backbone than the bundle's."""
    from models.backbones import backbone_fingerprint
    from models.medicalnet import load_backbone_safetensors

    from pipeline.core.errors import CohortError
    from pipeline.serving.bundle import BACKBONE_FILE

    theirs = meta.get("backbone_fingerprint")
    path = model.path / BACKBONE_FILE
    if not theirs or not path.is_file():
        raise CohortError("feature table or model bundle does not identify its backbone, so deep features cannot "
                          "be matched")
    if backbone_fingerprint(load_backbone_safetensors(path)) != theirs:
        raise CohortError("feature table's deep features come from another backbone than the model bundle's")


def report_files(folder: Path, bundle_path: Path, prefix: str) -> dict[str, bytes]:
    """``{bundle-relative path: bytes}`` of an evaluation folder to attach under ``prefix``.

    The pages' plotly.min.js (4.8 MB) is not attached again when the bundle's training report
    already holds the same file: the pages then load that copy by a relative path, so each
    attached evaluation adds kilobytes, not megabytes, and the pages still work offline.
    """
    files = {f"{prefix}/{f.name}": f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
    shared, own = bundle_path / _SHARED_PLOTLY_JS, files.get(f"{prefix}/{_PLOTLY_JS}")
    if own is None or not shared.is_file() or shared.read_bytes() != own:
        return files
    up = "../" * (prefix.count("/") + 1) + _SHARED_PLOTLY_JS  # from the page folder to the bundle root
    del files[f"{prefix}/{_PLOTLY_JS}"]
    for name in [n for n in files if n.endswith(".html")]:
        files[name] = files[name].replace(f'src="{_PLOTLY_JS}"'.encode(), f'src="{up}"'.encode())
    return files


def cohort_slug(label: str) -> str:
    """Folder name for a cohort label inside a bundle (alphanumerics, ``_``, at most 40 characters).

    Example:
        >>> cohort_slug("Site B (2024)"), cohort_slug("%%")
        ('site_b__2024', 'external')
    """
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")[:40] or "external"


def oracle_metrics(p_true: np.ndarray, labels: np.ndarray, metrics: Mapping[str, Any]) -> tuple[dict, dict]:
    """(oracle, quality bar) of a synthetic cohort.

    Args:
        p_true: (n_cases,) the generator's true P(VPI) of each scored case.
        labels: (n_cases,) 0/1 labels.
        metrics: the model's :meth:`ValidationMetrics.to_dict` on the same cases.

    Returns:
        ``oracle``: AUC, Brier, calibration slope and intercept of ``p_true`` (None when
        undefined); ``quality_bar``: the project's three checks (issue #3) of the model against it.
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from pipeline.training.evaluate import calibration_slope_intercept

    o_slope, o_intercept = (v if np.isfinite(v) else None for v in calibration_slope_intercept(p_true, labels))
    oracle = {"auc": float(roc_auc_score(labels, p_true)), "brier": float(brier_score_loss(labels, p_true)),
              "calibration_slope": o_slope, "calibration_intercept": o_intercept}
    m = metrics
    bar = {
        "auc_within_0.03_of_oracle": bool(m["auc"] >= oracle["auc"] - 0.03),
        "calibration_slope_0.8_to_1.2": m["calibration_slope"] is not None and bool(0.8 <= m["calibration_slope"] <= 1.2),
        "brier_within_0.02_of_oracle": bool(m["brier"] <= oracle["brier"] + 0.02),
    }
    return oracle, bar


def _clinical_inputs(cases: Sequence[Any]) -> list[Any]:
    """Cohort rows → :class:`~pipeline.inputs.cohort.CaseInput` (bad clinical values: the case's problem)."""
    from pipeline.core.errors import ClinicalValueError
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.inputs.cohort import CaseInput

    inputs = []
    for c in cases:
        try:
            clin, problem = parse_clinical(cea=c.cea, ca125=c.ca125, age=c.age), None
        except ClinicalValueError as err:
            clin, problem = None, str(err)
        inputs.append(CaseInput(c.case_id, c.ct_path, c.roi_path or None, clin, problem, "clinical" if problem else None,
                                c.roi_name or None))
    return inputs


def evaluate_bundle(*, bundle: str | os.PathLike[str], cohort: str | os.PathLike[str] | None = None,
                    out: str | os.PathLike[str], features: str | os.PathLike[str] | None = None,
                    name: Optional[str] = None, workers: int = 1, attach: bool = False,
                    allow_unsigned: Optional[bool] = None,
                    on_note: Optional[Callable[[str], None]] = None) -> ExternalEvaluation:
    """Validate a bundle on a labelled cohort (module docstring) and write the results to ``out``.

    Args:
        bundle: bundle folder.
        cohort: cohort CSV with labels (images scored through the Scorer), or None with ``features``.
        features: a feature table with labels instead of ``cohort`` (:func:`table_probabilities`;
            ``workers`` is then unused: no image is read).
        out: folder for evaluation.json, predictions.csv and the plots (created).
        name: the cohort's label in the report and the bundle (default ``"external"``).
        workers: scoring processes (each gets cores / workers torch threads).
        attach: also store the results in the bundle (re-seals its manifest and removes its
            signature: the bundle must be signed again).
        allow_unsigned: load an unsigned / untrusted-key bundle (None: ``PLEURA_ALLOW_UNSIGNED``).
        on_note: receives user-facing notes (e.g. that attaching removed the signature).

    Raises:
        BundleError: the bundle does not verify. CohortError: the cohort CSV or feature table is
            unusable (or both or neither given).
    """
    from pipeline.core.env import threads_per_worker
    from pipeline.serving.batch import score_cases
    from pipeline.serving.bundle import load_bundle
    from pipeline.training.dataset import read_cohort
    from pipeline.training.evaluate import evaluate_predictions, save_plots

    from pipeline.core.errors import CohortError

    if (cohort is None) == (features is None):
        raise CohortError("give either a cohort CSV or a feature table to evaluate on, not both")
    workers = max(1, int(workers))
    label = name or "external"
    model = load_bundle(bundle, allow_unsigned=allow_unsigned)
    if features is not None:
        rows, cases = table_probabilities(model, features)
        for r in rows:  # as score_cases' rows (pleura batch's CSV precision), so the metrics are the same
            if r["probability"] is not None:
                r["probability"] = round(r["probability"], 6)
    else:
        cases = read_cohort(cohort)
        rows = score_cases(_clinical_inputs(cases), bundle_path=model.path, workers=workers,
                           num_threads=threads_per_worker(workers), allow_unsigned=allow_unsigned)
    ok = [(r, c) for r, c in zip(rows, cases) if r["status"] == "ok" and not np.isnan(c.label)]
    failed = [r for r in rows if r["status"] != "ok"]
    p = np.array([r["probability"] for r, _ in ok])
    y = np.array([int(c.label) for _, c in ok])
    metrics = evaluate_predictions(p, y, threshold=model.threshold, threshold_method="fixed (from training)")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    save_plots({label: metrics}, folder)
    result: dict[str, Any] = {
        "cohort": label, "n_scored": len(ok), "n_failed": len(failed),
        "failed": [{"case_id": r["case_id"], "error": r["error"]} for r in failed],
        "model": {"name": model.name, "id": model.bundle_id, "signature": model.signature.to_dict()},
        "notice": model.notice,
        "metrics": metrics.to_dict()}
    p_true = np.array([c.p_true for _, c in ok])
    if np.all(np.isfinite(p_true)) and len(p_true):
        # the project's quality bar for synthetic cohorts (issue #3), against the generator's truth
        result["oracle"], result["quality_bar"] = oracle_metrics(p_true, y, metrics.to_dict())
    (folder / "evaluation.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    with (folder / "predictions.csv").open("w") as fh:
        fh.write("case_id,label,probability,p_true\n")
        for r, c in ok:
            truth = "" if not np.isfinite(c.p_true) else f"{c.p_true:.6f}"
            fh.write(f"{c.case_id},{int(c.label)},{r['probability']:.6f},{truth}\n")
    if attach:
        if model.signature.state != "unsigned" and on_note is not None:
            on_note("attaching changes the bundle's manifest, so its signature is removed; sign it again with "
                    "`pleura sign`")
        _attach(model.path, folder, label=label, result=result, metrics=metrics.to_dict())
    return ExternalEvaluation(result=result, metrics=metrics, notice=model.notice, out=folder,
                              probabilities={c.case_id: float(r["probability"]) for r, c in ok})


def _attach(bundle_path: Path, folder: Path, *, label: str, result: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """Store an evaluation folder, its summary and its card line in the bundle."""
    from pipeline.serving.bundle import attach_files

    files = report_files(folder, bundle_path, f"report/external/{cohort_slug(label)}")
    d = metrics
    line = external_validation_line(label=label, n_scored=result["n_scored"], metrics=d, oracle=result.get("oracle"),
                                    quality_bar=result.get("quality_bar"))
    summary = {"n_scored": result["n_scored"], "n_failed": result["n_failed"], "auc": d["auc"],
               "auc_ci": [d["auc_ci_low"], d["auc_ci_high"]],
               "brier": d["brier"], "calibration_slope": d["calibration_slope"],
               "calibration_intercept": d["calibration_intercept"], "sensitivity": d["sensitivity"],
               "specificity": d["specificity"], "ppv": d["ppv"], "npv": d["npv"], "oracle": result.get("oracle")}
    card = (bundle_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    attach_files(bundle_path, files, manifest_updates={"external_validation": {label: summary}},
                 card_append=("## External validation\n\n" if "## External validation" not in card else "") + line)
