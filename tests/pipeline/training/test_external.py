"""Parts of evaluate_bundle that need no scoring: oracle and quality bar, attached report files.
(Scoring a cohort and attaching it end to end: tests/e2e/test_train_cli.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.training.external import cohort_slug, oracle_metrics, report_files


def test_oracle_and_quality_bar():
    rng = np.random.default_rng(0)
    p_true = rng.uniform(0.05, 0.95, 400)
    y = (rng.uniform(size=400) < p_true).astype(int)
    oracle, bar = oracle_metrics(p_true, y, {"auc": 0.99, "brier": 0.5, "calibration_slope": 1.0})
    assert 0.7 < oracle["auc"] < 0.9 and oracle["calibration_slope"] == pytest.approx(1.0, abs=0.3)
    assert bar == {"auc_within_0.03_of_oracle": True, "calibration_slope_0.8_to_1.2": True,
                   "brier_within_0.02_of_oracle": False}
    _, bar = oracle_metrics(p_true, y, {"auc": 0.5, "brier": 0.0, "calibration_slope": None})
    assert bar["auc_within_0.03_of_oracle"] is False and bar["calibration_slope_0.8_to_1.2"] is False


def _pages(folder: Path, js: bytes) -> None:
    folder.mkdir(parents=True)
    (folder / "plotly.min.js").write_bytes(js)
    (folder / "roc.html").write_text('<script charset="utf-8" src="plotly.min.js"></script>')
    (folder / "evaluation.json").write_text("{}")


def test_report_files_share_the_training_reports_plotly(tmp_path: Path):
    bundle, ev = tmp_path / "bundle", tmp_path / "ev"
    (bundle / "report/training").mkdir(parents=True)
    (bundle / "report/training/plotly.min.js").write_bytes(b"js")
    _pages(ev, b"js")
    files = report_files(ev, bundle, "report/external/site_b")
    assert set(files) == {"report/external/site_b/roc.html", "report/external/site_b/evaluation.json"}
    assert b'src="../../../report/training/plotly.min.js"' in files["report/external/site_b/roc.html"]


def test_report_files_keep_their_own_plotly_when_the_bundle_has_another(tmp_path: Path):
    bundle, ev = tmp_path / "bundle", tmp_path / "ev"
    (bundle / "report/training").mkdir(parents=True)
    (bundle / "report/training/plotly.min.js").write_bytes(b"older js")
    _pages(ev, b"js")
    files = report_files(ev, bundle, "report/external/x")
    assert files["report/external/x/plotly.min.js"] == b"js"
    assert b'src="plotly.min.js"' in files["report/external/x/roc.html"]


def test_cohort_slug():
    assert cohort_slug("Site B (2024)") == "site_b__2024" and cohort_slug("") == "external"
    assert len(cohort_slug("x" * 100)) == 40
