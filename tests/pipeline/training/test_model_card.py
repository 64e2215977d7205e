"""The model card text and the external-validation line."""

from __future__ import annotations

from pipeline.training.model_card import external_validation_line, format_metric, model_card

METRICS = dict(auc=0.81, auc_ci_low=0.7, auc_ci_high=0.9, sensitivity=0.8, specificity=0.7, ppv=0.6, npv=0.85,
               brier=0.16, calibration_slope=1.05, calibration_intercept=-0.02, threshold=0.41)


def _report(mode: str = "early") -> dict:
    return {"mode": mode, "metrics": {mode: METRICS}, "n_cases": 200, "n_positive": 60, "groups": ["pleura", "clinical"],
            "n_features": 20, "nested_cv_auc": {mode: 0.81}, "threshold": 0.4, "threshold_recalibrated": 0.42,
            "fusion_note": f"{mode} fusion chosen by nested CV", "ablation": {"pleura": 0.75, "all": 0.81}}


def test_card_of_an_early_fusion_model():
    card = model_card(name="demo", synthetic=True, report=_report(), n_features=9, backbone_source="",
                      recalibration=(0.1, 1.8), stacker_folds=5)
    assert card.startswith("# Model card — demo\n")
    assert "**Research use only; not a medical device.** **Demo model trained on synthetic data**" in card
    assert "- 200 training cases, 60 with VPI (30.0%)" in card
    assert "intercept 0.100, slope 1.800" in card and "Operating threshold 0.420 on the recalibrated" in card
    assert "- AUC 0.810 (95% CI 0.700–0.900)" in card and "| pleura | 0.750 |" in card
    assert "- Backbone: none." in card and "External validation" not in card


def test_card_of_a_late_fusion_model_with_external_validation():
    external = {"site B": dict(METRICS, oracle_auc=0.84, oracle_brier=0.15)}
    card = model_card(name="late", synthetic=False, report=_report("late"), n_features=12, backbone_source="seed:0",
                      recalibration=(0.0, 1.0), stacker_folds=5, external=external)
    assert "internal 5-fold out-of-fold group probabilities" in card and "No recalibration" in card
    assert "- site B: AUC 0.810 (95% CI 0.700–0.900), Brier 0.1600, calibration slope 1.050; oracle AUC 0.840" in card
    assert "Validated only on the cohorts listed above." in card and "synthetic" not in card


def test_external_validation_line_with_oracle_and_quality_bar():
    line = external_validation_line(label="phantoms", n_scored=16, metrics=dict(METRICS, auc_ci_low=float("nan")),
                                    oracle={"auc": 0.83, "brier": 0.15, "calibration_slope": None},
                                    quality_bar={"a": True, "b": False, "c": True})
    assert line.startswith("- phantoms: 16 cases, AUC 0.810 (95% CI n/a–0.900), Brier 0.1600")
    assert line.endswith("oracle calibration slope n/a; quality bar (AUC ≥ oracle − 0.03, slope 0.8–1.2, "
                         "Brier ≤ oracle + 0.02): met, NOT met, met")


def test_format_metric():
    assert [format_metric(v) for v in (0.5, None, float("inf"), 1)] == ["0.500", "n/a", "n/a", "1.000"]
