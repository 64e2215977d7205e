"""PSOForestClassifier: real pyswarms search on small generated tables (tiny budgets)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.forest import DEFAULT_BOUNDS, PSOForestClassifier, decode_particle, resolve_bounds

TINY = {"n_estimators": (10, 25), "max_depth": (2, 6)}


def _table(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({
        "pleura_contact_mm": 1.5 * y + rng.normal(0, 1, n),
        "CEA_ng_mL": np.exp(0.8 * y + rng.normal(0, 0.6, n)),
        "age_years": rng.normal(65, 9, n),
        **{f"dl_{i:03d}": rng.normal(size=n) for i in range(5)},
    })
    return X, y


def _tiny(**kwargs) -> PSOForestClassifier:
    params = {"n_particles": 3, "n_iterations": 2, "cv_folds": 3, "bounds": TINY, "random_state": 0}
    params.update(kwargs)
    return PSOForestClassifier(**params)


def test_fit_learns_attributes_and_separates_informative_cases():
    X, y = _table()
    train, test = slice(0, 110), slice(110, None)
    clf = _tiny(n_iterations=3).fit(X.iloc[train], y[train])

    assert clf.fit(X.iloc[train], y[train]) is clf
    assert len(clf.pso_history_) == 3
    assert [h["iteration"] for h in clf.pso_history_] == [1, 2, 3]
    best_so_far = [h["best_cv_auc"] for h in clf.pso_history_]
    assert best_so_far == sorted(best_so_far)  # a global best never gets worse
    assert clf.pso_history_[-1]["best_cv_auc"] == pytest.approx(clf.best_cv_auc_)
    assert clf.pso_history_[-1]["best_cost"] == pytest.approx(1 - clf.best_cv_auc_)
    assert set(clf.best_params_) == set(DEFAULT_BOUNDS)
    assert 10 <= clf.best_params_["n_estimators"] <= 25
    assert 2 <= clf.best_params_["max_depth"] <= 6
    assert clf.best_params_["class_weight"] in (None, "balanced")
    assert clf.estimator_.n_estimators == clf.best_params_["n_estimators"]
    assert list(clf.classes_) == [0, 1]
    assert clf.n_features_in_ == X.shape[1]
    assert list(clf.feature_names_in_) == list(X.columns)
    assert clf.feature_importances_.shape == (X.shape[1],)
    assert clf.feature_importances_.sum() == pytest.approx(1.0)

    proba = clf.predict_proba(X.iloc[test])
    assert proba.shape == (50, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y[test], proba[:, 1]) > 0.75
    assert set(clf.predict(X.iloc[test])) <= {0, 1}


def test_same_seed_same_model_and_caller_random_state_untouched():
    X, y = _table()
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = _tiny(random_state=7).fit(X, y)
    assert np.random.rand() == expected_next  # pyswarms' global-state use is sealed off

    second = _tiny(random_state=7).fit(X, y)
    assert first.best_params_ == second.best_params_
    assert first.pso_history_ == second.pso_history_
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_sklearn_compatibility_clone_pipeline_cross_val_score():
    X, y = _table()
    clf = _tiny(n_particles=2)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "estimator_")

    scores = cross_val_score(Pipeline([("scale", StandardScaler()), ("forest", clf)]), X, y, cv=3,
                             scoring="roc_auc")
    assert scores.shape == (3,) and scores.mean() > 0.7

    fitted = clone(clf).fit(X.to_numpy(), y)  # arrays work too, without feature names
    assert not hasattr(fitted, "feature_names_in_")
    assert fitted.predict_proba(X.to_numpy()).shape == (len(y), 2)


def test_string_labels_and_fixed_params_fast_path():
    X, y = _table(n=80)
    labels = np.where(y == 1, "VPI", "no VPI")
    params = {"n_estimators": 12, "max_depth": 3, "min_samples_leaf": 2, "max_features": 0.5,
              "class_weight": "balanced"}
    clf = _tiny(fixed_params=params).fit(X, labels)
    assert list(clf.classes_) == ["VPI", "no VPI"]
    assert clf.pso_history_ == [] and np.isnan(clf.best_cv_auc_)
    assert clf.best_params_ == params
    assert clf.estimator_.get_params()["max_depth"] == 3
    assert set(clf.predict(X)) <= {"VPI", "no VPI"}


def test_pyswarms_leaves_logging_and_working_directory_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    X, y = _table(n=60)
    _tiny(n_particles=2, n_iterations=1).fit(X, y)
    assert list(tmp_path.iterdir()) == []  # no report.log
    assert root.handlers == handlers and root.level == level


def test_decode_particle_stays_within_bounds():
    bounds = resolve_bounds({"n_estimators": (10, 20), "max_features": (0.1, 0.3)})
    rng = np.random.default_rng(1)
    for position in rng.uniform(-5, 300, size=(50, 5)):
        params = decode_particle(position, bounds)
        assert 10 <= params["n_estimators"] <= 20 and isinstance(params["n_estimators"], int)
        assert 2 <= params["max_depth"] <= 12
        assert 1 <= params["min_samples_leaf"] <= 10
        assert 0.1 <= params["max_features"] <= 0.3
    assert decode_particle([50, 3, 1, 0.2, 0.49], bounds)["class_weight"] is None
    assert decode_particle([50, 3, 1, 0.2, 0.5], bounds)["class_weight"] == "balanced"


@pytest.mark.parametrize("bounds, message", [
    ({"trees": (1, 2)}, "unknown parameters"),
    ({"max_depth": (8, 2)}, "low <= high"),
    ({"max_features": (0.1, 1.5)}, "must lie within"),
    ({"n_estimators": 5}, "must be \\(low, high\\)"),
])
def test_bad_bounds_are_refused(bounds, message):
    X, y = _table(n=40)
    with pytest.raises(ValueError, match=message):
        PSOForestClassifier(bounds=bounds).fit(X, y)


def test_bad_settings_and_labels_are_refused():
    X, y = _table(n=40)
    with pytest.raises(ValueError, match="n_particles"):
        _tiny(n_particles=0).fit(X, y)
    with pytest.raises(ValueError, match="cv_folds"):
        _tiny(cv_folds=1).fit(X, y)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        _tiny().fit(X, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="exactly 2 classes"):
        _tiny().fit(X, np.arange(len(y)) % 3)
    with pytest.raises(ValueError, match="at least 2 cases"):
        _tiny().fit(X, np.r_[1, np.zeros(len(y) - 1, dtype=int)])
