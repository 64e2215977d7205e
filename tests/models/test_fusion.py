"""LateFusionClassifier: per-group forests stacked by logistic regression (tiny budgets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from models.fusion import LateFusionClassifier
from models.forest import PSOForestClassifier
from pipeline.training.selection import FeatureSelector


def _table(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pd.DataFrame({
        "pleura_contact_mm": 1.8 * y + rng.normal(0, 1, n),
        "CEA_ng_mL": np.exp(0.6 * y + rng.normal(0, 0.7, n)),
        "age_years": rng.normal(66, 8, n),
        **{f"dl_{i:03d}": rng.normal(size=n) for i in range(6)},
    }), y


def _late(**kwargs) -> LateFusionClassifier:
    forest = PSOForestClassifier(n_particles=2, n_iterations=1, cv_folds=2, bounds={"n_estimators": (8, 12)},
                                 random_state=0)
    params = {"selector": FeatureSelector(k=3), "forest": forest, "cv": 3, "random_state": 0}
    params.update(kwargs)
    return LateFusionClassifier(**params)


def test_stacks_groups_and_weights_the_informative_ones():
    X, y = _table()
    clf = _late().fit(X.iloc[:60], y[:60])
    assert clf.groups_ == ["deep", "pleura", "clinical"]
    assert clf.group_columns_["clinical"] == ["CEA_ng_mL", "age_years"]
    assert clf.oof_proba_.shape == (60, 3)
    assert clf.group_oof_auc_["pleura"] > clf.group_oof_auc_["deep"]
    assert clf.stacker_weights_["pleura"] > 0  # higher pleura-model probability → higher VPI risk
    assert clf.group_estimators_["pleura"][-1].pso_history_  # tuned by PSO on all training cases
    proba = clf.predict_proba(X.iloc[60:])
    assert proba.shape == (30, 2) and np.allclose(proba.sum(axis=1), 1)
    assert roc_auc_score(y[60:], proba[:, 1]) > 0.75
    assert clf.group_proba(X.iloc[60:]).shape == (30, 3)
    assert not hasattr(clone(clf), "stacker_")


def test_retune_runs_pso_inside_inner_folds_and_is_deterministic():
    X, y = _table(n=60, seed=1)
    reuse = _late().fit(X, y)
    retune = _late(inner_tuning="retune").fit(X, y)
    assert not np.array_equal(reuse.oof_proba_, retune.oof_proba_)
    np.testing.assert_array_equal(retune.predict_proba(X), _late(inner_tuning="retune").fit(X, y).predict_proba(X))


def test_refuses_arrays_missing_columns_and_bad_settings():
    X, y = _table(n=40)
    with pytest.raises(ValueError, match="DataFrame"):
        _late().fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="inner_tuning"):
        _late(inner_tuning="sometimes").fit(X, y)
    with pytest.raises(ValueError, match="cv"):
        _late(cv=1).fit(X, y)
    fitted = _late().fit(X, y)
    with pytest.raises(ValueError, match="lacks"):
        fitted.predict_proba(X.drop(columns=["CEA_ng_mL"]))
