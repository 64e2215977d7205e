"""Validation metrics, their JSON form and the saved plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from pipeline.training.evaluate import (
    ValidationMetrics,
    bootstrap_auc_ci,
    calibration_slope_intercept,
    confusion_at,
    decision_curve,
    evaluate_predictions,
    reliability_curve,
    save_plots,
    youden_threshold,
)


def _calibrated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are exactly right: y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    return p, (rng.uniform(size=n) < p).astype(int)


def test_auc_and_brier_match_scikit_learn_and_ci_brackets_auc():
    p, y = _calibrated(300)
    m = evaluate_predictions(p, y, threshold=0.5, n_bootstrap=300, seed=1)
    assert m.auc == pytest.approx(roc_auc_score(y, p))
    assert m.brier == pytest.approx(brier_score_loss(y, p))
    assert m.auc_ci_low < m.auc < m.auc_ci_high
    assert 0.05 < m.auc_ci_high - m.auc_ci_low < 0.2
    assert (m.n_cases, m.n_positive) == (300, int(y.sum()))
    assert bootstrap_auc_ci(p, y, n_bootstrap=300, seed=1) == (m.auc_ci_low, m.auc_ci_high)  # seeded
    assert bootstrap_auc_ci(p, y, n_bootstrap=300, seed=2) != (m.auc_ci_low, m.auc_ci_high)


def test_calibration_slope_is_one_for_calibrated_and_below_one_for_overconfident_models():
    p, y = _calibrated(20000, seed=3)
    slope, intercept = calibration_slope_intercept(p, y)
    assert slope == pytest.approx(1.0, abs=0.06)
    assert intercept == pytest.approx(0.0, abs=0.06)

    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))  # an overfitted model's extreme probabilities
    slope_over, _ = calibration_slope_intercept(overconfident, y)
    assert slope_over == pytest.approx(0.5, abs=0.05)

    curve = reliability_curve(p, y, n_bins=10)
    assert sum(curve.counts) == len(y) and len(curve.counts) == 10
    np.testing.assert_allclose(curve.mean_predicted, curve.observed_fraction, atol=0.04)


def test_threshold_choice_and_rates():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    t = youden_threshold(p, y)
    assert t == pytest.approx(0.7)  # J = 0.75 at 0.7 and at 0.4: ties keep the higher threshold
    rates = confusion_at(p, y, t)
    assert (rates["sensitivity"], rates["specificity"], rates["ppv"]) == (0.75, 1.0, 1.0)
    assert rates["npv"] == pytest.approx(4 / 5)

    separable_p = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    assert confusion_at(separable_p, y, youden_threshold(separable_p, y))["sensitivity"] == 1.0

    nothing_called = confusion_at(p, y, 0.95)
    assert np.isnan(nothing_called["ppv"]) and nothing_called["specificity"] == 1.0


def test_decision_curve_reference_strategies():
    p, y = _calibrated(500, seed=4)
    dc = decision_curve(p, y)
    assert len(dc.thresholds) == 99 and dc.thresholds[0] == 0.01 and dc.thresholds[-1] == 0.99
    assert set(dc.net_benefit_none) == {0.0}
    prevalence = y.mean()
    t = np.array(dc.thresholds)
    np.testing.assert_allclose(dc.net_benefit_all, prevalence - (1 - prevalence) * t / (1 - t))
    # a calibrated model is never worse than both reference strategies by more than noise
    best_reference = np.maximum(dc.net_benefit_all, 0)
    assert np.all(np.array(dc.net_benefit_model) >= best_reference - 0.03)

    perfect = decision_curve(y.astype(float), y, thresholds=[0.1, 0.5, 0.9])
    np.testing.assert_allclose(perfect.net_benefit_model, prevalence)


def test_metrics_json_round_trip_with_undefined_values():
    p, y = _calibrated(120, seed=5)
    m = evaluate_predictions(p, y, threshold=0.999, threshold_method="fixed (from training)", n_bootstrap=50)
    assert np.isnan(m.ppv)
    data = m.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: NaN became null
    assert json.loads(text)["ppv"] is None
    assert data["threshold_method"] == "fixed (from training)"
    back = ValidationMetrics.from_dict(json.loads(text))
    assert back.auc == m.auc and back.roc == m.roc and np.isnan(back.ppv)
    with pytest.raises(AttributeError):
        m.auc = 0.9  # frozen


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="only one class"):
        evaluate_predictions([0.2, 0.4], [1, 1], threshold=0.5)
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        evaluate_predictions([0.2, 1.4], [0, 1], threshold=0.5)
    with pytest.raises(ValueError, match="2 probabilities but 3 labels"):
        evaluate_predictions([0.2, 0.4], [0, 1, 1], threshold=0.5)
    with pytest.raises(ValueError, match="0/1"):
        evaluate_predictions([0.2, 0.4], [0, 2], threshold=0.5)
    with pytest.raises(ValueError, match="threshold"):
        evaluate_predictions([0.2, 0.4], [0, 1], threshold=1.5)
    with pytest.raises(ValueError, match="strictly between"):
        decision_curve([0.2, 0.4], [0, 1], thresholds=[0.0, 0.5])


def test_save_plots_writes_offline_html_and_png(tmp_path):
    p, y = _calibrated(200, seed=6)
    metrics = {"early": evaluate_predictions(p, y, threshold=0.5, n_bootstrap=50),
               "late": evaluate_predictions(np.sqrt(p), y, threshold=0.5, n_bootstrap=50)}
    history = {"early": [{"iteration": 1, "best_cv_auc": 0.61}, {"iteration": 2, "best_cv_auc": 0.66}]}
    written = save_plots(metrics, tmp_path / "plots", importances=[("pleura_contact_mm", 0.4), ("dl_000", 0.1)],
                         pso_history=history)
    names = sorted(path.name for path in written)
    stems = ["calibration", "decision_curve", "importance", "pso", "roc"]
    assert names == sorted([f"{s}.html" for s in stems] + [f"{s}.png" for s in stems])
    for path in written:
        assert path.stat().st_size > 1000
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            html = path.read_text()
            assert 'src="plotly.min.js"' in html and "cdn.plot.ly" not in html
    assert (tmp_path / "plots" / "plotly.min.js").stat().st_size > 1_000_000
    assert "AUC" in (tmp_path / "plots" / "roc.html").read_text()

    only_png = save_plots(metrics["early"], tmp_path / "png", formats=("png",))
    assert sorted(path.name for path in only_png) == ["calibration.png", "decision_curve.png", "roc.png"]
    with pytest.raises(ValueError, match="formats"):
        save_plots(metrics["early"], tmp_path, formats=("svg",))
