"""Scoring the test cohorts of a pre-registered plan (:mod:`pipeline.training.plan`) exactly once.

:func:`score_cohort` takes a cohort's ``predictions.csv`` (written by ``pleura evaluate``: case_id,
label, probability, p_true) and returns the AUC, Brier score and calibration slope of the model and
of the oracle (the generator's true probability), each with a bootstrap 95 % CI, plus the paired
gaps (model − oracle, resampling the same patients) and whether each goal is met.
:func:`paired_shift` does the same for the scanner-shift pair. :func:`record_once` keeps a ledger
next to the plan: a cohort scored with one bundle cannot be scored again with another (retire it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

__all__ = ["read_predictions", "score_cohort", "paired_shift", "record_once", "ledger_path"]


def read_predictions(path: str | os.PathLike[str]) -> dict[str, tuple[int, float, float]]:
    """case_id → (label, probability, p_true) from a ``predictions.csv``."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return {r["case_id"]: (int(r["label"]), float(r["probability"]),
                               float(r["p_true"]) if r.get("p_true") else float("nan"))
                for r in csv.DictReader(fh)}


def _metrics(p: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    from pipeline.training.evaluate import brier_score, calibration_slope_intercept

    slope, _ = calibration_slope_intercept(p, y)
    return float(roc_auc_score(y, p)), float(brier_score(p, y)), float(slope)


def _ci(values: list[float]) -> list[Optional[float]]:
    """2.5th and 97.5th percentiles, ignoring resamples where the statistic is undefined (a
    calibration slope on a separable resample); None when none is defined."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [None, None]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def score_cohort(preds: Mapping[str, tuple[int, float, float]], *, goals: Mapping[str, Any],
                 resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Model and oracle metrics with bootstrap CIs, paired gaps, goals met (module docstring)."""
    ids = sorted(preds)
    y = np.array([preds[i][0] for i in ids])
    p = np.array([preds[i][1] for i in ids])
    o = np.array([preds[i][2] for i in ids])
    if not np.all(np.isfinite(o)):
        raise ValueError("the predictions carry no p_true for every case: not a synthetic cohort")
    model, oracle = _metrics(p, y), _metrics(o, y)
    rng = np.random.default_rng(seed)
    boot_m, boot_o = [], []
    for _ in range(resamples):
        k = rng.integers(0, len(y), len(y))
        if y[k].min() != y[k].max():
            boot_m.append(_metrics(p[k], y[k]))
            boot_o.append(_metrics(o[k], y[k]))
    bm, bo = np.array(boot_m), np.array(boot_o)
    names = ("auc", "brier", "calibration_slope")
    out: dict[str, Any] = {"n_cases": len(ids), "prevalence": float(y.mean())}
    out["model"] = {n: {"value": model[j], "ci95": _ci(list(bm[:, j]))} for j, n in enumerate(names)}
    out["oracle"] = {n: {"value": oracle[j], "ci95": _ci(list(bo[:, j]))} for j, n in enumerate(names)}
    out["auc_gap"] = {"value": oracle[0] - model[0], "ci95": _ci(list(bo[:, 0] - bm[:, 0]))}
    out["brier_excess"] = {"value": model[1] - oracle[1], "ci95": _ci(list(bm[:, 1] - bo[:, 1]))}
    lo, hi = goals["calibration_slope_range"]
    out["goals_met"] = {
        "auc_gap": bool(out["auc_gap"]["value"] <= goals["auc_gap_max"]),
        "brier_excess": bool(out["brier_excess"]["value"] <= goals["brier_excess_max"]),
        "calibration_slope": bool(lo <= model[2] <= hi),
    }
    return out


def paired_shift(standard: Mapping[str, tuple[int, float, float]], shifted: Mapping[str, tuple[int, float, float]], *,
                 goal: float, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """AUC on the same patients on the standard and the shifted scanners; drop with a bootstrap CI."""
    from sklearn.metrics import roc_auc_score

    ids = sorted(set(standard) & set(shifted))
    if any(standard[i][0] != shifted[i][0] for i in ids):
        raise ValueError("the two cohorts give different labels for the same case id: not the same patients")
    y = np.array([standard[i][0] for i in ids])
    a = np.array([standard[i][1] for i in ids])
    b = np.array([shifted[i][1] for i in ids])
    rng = np.random.default_rng(seed)
    drops = []
    for _ in range(resamples):
        k = rng.integers(0, len(y), len(y))
        if y[k].min() != y[k].max():
            drops.append(roc_auc_score(y[k], a[k]) - roc_auc_score(y[k], b[k]))
    auc_a, auc_b = float(roc_auc_score(y, a)), float(roc_auc_score(y, b))
    return {"n_cases": len(ids), "auc_standard": auc_a, "auc_shifted": auc_b,
            "drop": {"value": auc_a - auc_b, "ci95": _ci(drops)}, "goal_met": bool(auc_a - auc_b <= goal)}


def ledger_path(plan_path: str | os.PathLike[str]) -> Path:
    """The ledger of scored cohorts kept next to the plan (``<plan>.scored.json``)."""
    p = Path(plan_path)
    return p.with_name(p.stem + ".scored.json")


def record_once(plan_path: str | os.PathLike[str], *, cohort: Mapping[str, Any], bundle_id: str,
                predictions: str | os.PathLike[str], result: Mapping[str, Any]) -> dict[str, Any]:
    """Record cohort ``cohort`` (name, seed) as scored by ``bundle_id``; the same bundle and the
    same predictions give back the recorded result, anything else raises ``ValueError`` (a test
    cohort is scored once; retire it to evaluate a changed model)."""
    ledger_file = ledger_path(plan_path)
    ledger = json.loads(ledger_file.read_text(encoding="utf-8")) if ledger_file.exists() else {}
    digest = hashlib.sha256(Path(predictions).read_bytes()).hexdigest()
    key = f"{cohort['name']}@{cohort['seed']}"
    if key in ledger:
        entry = ledger[key]
        if entry["bundle_id"] != bundle_id or entry["predictions_sha256"] != digest:
            raise ValueError(f"test cohort {cohort['name']} was already scored with bundle {entry['bundle_id']}; a "
                             "test cohort is scored once: retire it (scripts/evaluation_plan.py retire) to score "
                             "a changed model")
        return dict(entry["result"])
    ledger[key] = {"bundle_id": bundle_id, "predictions_sha256": digest, "result": dict(result)}
    tmp = ledger_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(ledger, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, ledger_file)
    return dict(result)
