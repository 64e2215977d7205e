"""train_model: nested CV without leakage, early/late/auto fusion, determinism, report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

import pipeline.training.train as train_module
from pipeline.training.evaluate import ValidationMetrics
from models.fusion import LateFusionClassifier
from pipeline.training.selection import FeatureSelector
from pipeline.training.train import TrainConfig, evaluate_predictions, save_training_plots, train_model

FAST = dict(outer_folds=3, inner_folds=2, pso_particles=2, pso_iterations=2, n_estimators_range=(8, 16),
            max_depth_range=(2, 5), selection_k=6, n_bootstrap=50)


def _table(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Informative pleura + clinical columns, noise deep + radiomics columns, one constant, one copy."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.4).astype(int)
    cols = {
        "pleura_contact_mm": 1.6 * y + rng.normal(0, 1, n),
        "tumour_solid_fraction": 0.8 * y + rng.normal(0, 1, n),
        "CEA_ng_mL": np.exp(0.7 * y + rng.normal(0, 0.7, n)),
        "CA125_U_mL": np.exp(rng.normal(3, 0.5, n)),
        "age_years": rng.normal(66, 8, n),
        "original_shape_Sphericity": np.full(n, 0.7),
        "original_firstorder_Mean": rng.normal(size=n),
        "wavelet-LLH_glszm_ZoneEntropy": rng.normal(size=n),
        "ring_original_glcm_Idm": rng.normal(size=n),
        **{f"dl_{i:03d}": rng.normal(size=n) for i in range(24)},
    }
    cols["dl_023"] = cols["dl_000"].copy()
    return pd.DataFrame(cols), y


def test_auto_fusion_end_to_end_report_and_final_model(tmp_path):
    table, y = _table()
    events = []
    result = train_model(table, y, config=TrainConfig(**FAST), progress=lambda *e: events.append(e))

    assert set(result.metrics) == {"early", "late"} and set(result.oof_proba) == {"early", "late"}
    assert result.mode == max(("early", "late"), key=lambda m: result.metrics[m].auc)
    for mode, metrics in result.metrics.items():
        assert isinstance(metrics, ValidationMetrics)
        assert np.isfinite(result.oof_proba[mode]).all() and result.oof_proba[mode].shape == (len(y),)
        assert metrics.threshold_method.startswith("youden")
    assert result.metrics[result.mode].auc > 0.7  # pleura + CEA carry real signal
    assert result.threshold == result.metrics[result.mode].threshold and 0 <= result.threshold <= 1
    assert sorted(set(result.outer_fold)) == [1, 2, 3]
    assert result.groups == ("deep", "radiomics", "pleura", "clinical")

    proba = result.estimator.predict_proba(table)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(axis=1), 1)
    assert result.feature_importances and sum(r["importance"] for r in result.feature_importances) == \
        pytest.approx(1.0)
    assert result.selected_features[0] in {"pleura_contact_mm", "CEA_ng_mL", "tumour_solid_fraction"}
    assert "original_shape_Sphericity" not in result.selected_features
    assert all(len(h) == 2 for h in result.pso_history.values())

    report = json.loads(json.dumps(result.report, allow_nan=False))
    assert report["mode"] == result.mode and report["fusion_requested"] == "auto"
    assert set(report["nested_cv_auc"]) == {"early", "late"}
    assert report["ablation"] is None
    assert {"early_nested_cv", "late_nested_cv", "final_refit", "total"} <= set(report["timings_s"])
    assert len(report["fold_summaries"]["early"]) == 3
    assert TrainConfig.from_dict(report["config"]) == result.config

    pngs = save_training_plots(result, tmp_path, formats=("png",))
    assert sorted(p.name for p in pngs) == ["calibration.png", "decision_curve.png", "importance.png", "pso.png",
                                            "roc.png"]

    assert ("early: outer fold", 3, 3) in events and ("late: outer fold", 1, 3) in events
    assert events[-1] == ("final refit", 1, 1)


@pytest.mark.parametrize("fusion, kind", [("early", Pipeline), ("late", LateFusionClassifier)])
def test_single_fusion_modes(fusion, kind):
    table, y = _table(n=72, seed=1)
    result = train_model(table, y, config=TrainConfig(**FAST, fusion=fusion))
    assert result.mode == fusion and list(result.metrics) == [fusion]
    assert isinstance(result.estimator, kind)
    if fusion == "late":
        assert result.estimator.groups_ == ["deep", "radiomics", "pleura", "clinical"]
        assert set(result.pso_history) == {f"late:{g}" for g in result.estimator.groups_}
        assert {r["group"] for r in result.feature_importances} == set(result.estimator.groups_)


def test_same_seed_gives_identical_predictions():
    table, y = _table(n=60, seed=2)
    table = table.drop(columns=[c for c in table.columns if c.startswith(("original", "wavelet", "ring"))])
    config = TrainConfig(**FAST, seed=11)  # auto: both fusion modes and the choice between them
    first = train_model(table, y, config=config)
    second = train_model(table, y, config=config)
    for mode in first.oof_proba:
        np.testing.assert_array_equal(first.oof_proba[mode], second.oof_proba[mode])
    np.testing.assert_array_equal(first.estimator.predict_proba(table), second.estimator.predict_proba(table))
    assert first.threshold == second.threshold and first.pso_history == second.pso_history


class _RecordingSelector(FeatureSelector):
    """FeatureSelector that logs which rows (table index) every fit saw."""

    log: list = []

    def fit(self, X, y):
        _RecordingSelector.log.append(("fit", frozenset(X.index)))
        return super().fit(X, y)


def test_selection_and_tuning_never_see_outer_test_cases(monkeypatch):
    table, y = _table(n=60, seed=3)
    monkeypatch.setattr(train_module, "FeatureSelector", _RecordingSelector)
    _RecordingSelector.log = []
    log = _RecordingSelector.log
    result = train_model(table, y, config=TrainConfig(**FAST, ablation=True),
                         progress=lambda stage, step, total: log.append(("stage", (stage, step))))

    test_rows = {fold: set(np.flatnonzero(result.outer_fold == fold)) for fold in (1, 2, 3)}
    current, fits_per_stage = None, {}
    for kind, value in log:
        if kind == "stage":
            current = value
            fits_per_stage[current] = 0
            continue
        stage, step = current
        fits_per_stage[current] += 1
        if stage.endswith("outer fold"):
            assert not value & test_rows[step], f"{stage} {step}: selector saw outer-test cases"
        else:
            assert stage == "final refit"
    stages = {s for s, _ in fits_per_stage}
    assert {"early: outer fold", "late: outer fold", "final refit"} <= stages
    assert {f"ablation {g}: outer fold" for g in ("deep", "radiomics", "pleura", "clinical")} <= stages
    assert all(count >= 1 for count in fits_per_stage.values())
    # late fusion: per group, one tuned model + one refit per inner fold, all inside the fold
    assert fits_per_stage[("late: outer fold", 1)] == 4 * (1 + 2)
    assert set(result.ablation) == {"deep", "radiomics", "pleura", "clinical", "all"}
    assert result.ablation["all"] == result.metrics["early"].auc
    assert result.ablation["pleura"] > result.ablation["deep"]


def test_noise_labels_give_chance_level_nested_auc():
    """Selecting on all cases first would make pure noise look predictive; nested CV must not."""
    rng = np.random.default_rng(5)
    n = 120
    table = pd.DataFrame({f"dl_{i:03d}": rng.normal(size=n) for i in range(500)})
    y = rng.permutation(np.r_[np.ones(n // 2, dtype=int), np.zeros(n // 2, dtype=int)])
    config = TrainConfig(**{**FAST, "selection_k": 3}, fusion="early")

    leaky = FeatureSelector(k=3, always_keep=()).fit(table, y).selected_features_  # sees every case
    leaky_auc = train_model(table[leaky], y, config=config).metrics["early"].auc
    honest_auc = train_model(table, y, config=config).metrics["early"].auc
    assert leaky_auc > 0.62  # ≈ 0.69: selection bias
    assert honest_auc < 0.6  # ≈ 0.47: chance, as it should be


def test_external_evaluation_uses_the_training_threshold():
    table, y = _table(n=60, seed=4)
    result = train_model(table, y, config=TrainConfig(**FAST, fusion="early"))
    new_table, new_y = _table(n=50, seed=9)
    proba = result.estimator.predict_proba(new_table)[:, 1]
    metrics = evaluate_predictions(proba, new_y, threshold=result.threshold, n_bootstrap=50)
    assert metrics.threshold == result.threshold and metrics.threshold_method == "fixed (from training)"
    assert metrics.auc > 0.6 and len(metrics.decision_curve.thresholds) == 99


def test_bad_inputs_and_settings_are_refused():
    table, y = _table(n=40)
    config = TrainConfig(**FAST)
    with pytest.raises(ValueError, match="DataFrame"):
        train_model(table.to_numpy(), y, config=config)
    with pytest.raises(ValueError, match="belongs to no feature group"):
        train_model(table.rename(columns={"dl_000": "case_id"}), y, config=config)
    with pytest.raises(ValueError, match="0/1"):
        train_model(table, np.where(y == 1, 2, 0), config=config)
    with pytest.raises(ValueError, match="labels has 39"):
        train_model(table, y[:-1], config=config)
    with pytest.raises(ValueError, match="same index"):
        train_model(table, pd.Series(y, index=np.arange(len(y)) + 100), config=config)
    with pytest.raises(ValueError, match="at least 3 cases"):
        train_model(table, np.r_[1, 1, np.zeros(len(y) - 2, dtype=int)], config=config)
    with pytest.raises(ValueError, match="numeric"):
        train_model(table.assign(dl_000="x"), y, config=config)
    with pytest.raises(ValueError, match="fusion"):
        TrainConfig(fusion="middle")
    with pytest.raises(ValueError, match="outer_folds"):
        TrainConfig(outer_folds=1)
    assert TrainConfig.from_dict(TrainConfig(**FAST).to_dict()) == TrainConfig(**FAST)


def test_stack_folds_set_the_stacker_split_and_old_configs_keep_theirs():
    """The stacker's internal folds are their own setting; a config saved before the setting
    existed (no ``stack_folds`` key) is read back as trained: stacker folds = inner folds."""
    assert train_module.build_late_fusion(TrainConfig(inner_folds=3, stack_folds=5)).cv == 5
    old = TrainConfig().to_dict()
    del old["stack_folds"]
    restored = TrainConfig.from_dict(old)
    assert restored.stack_folds is None and train_module.build_late_fusion(restored).cv == restored.inner_folds
    with pytest.raises(ValueError, match="stack_folds must be None or >= 2"):
        TrainConfig(stack_folds=1)
