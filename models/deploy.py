"""The fitted model a bundle stores: a random forest on the bundle's feature vector, optionally
followed by a logistic recalibration of its probability.

Random-forest probabilities are typically under-confident (squeezed towards the middle). The
recalibration ``p = sigmoid(a + b · logit(p_forest))`` is fitted on out-of-fold probabilities
from nested cross-validation, never on the cases' own in-sample predictions. It is monotone, so it
never changes the ranking (AUC) of cases.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = np.random.default_rng(0).normal(size=(80, 2)); y = (X[:, 0] > 0).astype(int)
    >>> m = DeployedForest(forest=RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
    ...                    calibration_intercept=0.0, calibration_slope=1.0)
    >>> bool(np.allclose(m.predict_proba(X), m.forest.predict_proba(X)))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_recalibration(proba: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of a logistic regression of labels on logit(proba) (unpenalised)."""
    from sklearn.linear_model import LogisticRegression

    z = _logit(proba).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(z, np.asarray(labels).astype(int))
    return float(lr.intercept_[0]), float(lr.coef_[0, 0])


class DeployedForest(ClassifierMixin, BaseEstimator):
    """A fitted forest plus a probability recalibration (identity when intercept 0, slope 1).

    Args:
        forest: fitted ``RandomForestClassifier`` whose columns are the bundle's feature names.
        calibration_intercept, calibration_slope: the logistic recalibration (a, b).
    """

    def __init__(self, forest: Any = None, calibration_intercept: float = 0.0, calibration_slope: float = 1.0) -> None:
        self.forest = forest
        self.calibration_intercept = calibration_intercept
        self.calibration_slope = calibration_slope

    def fit(self, X: Any, y: Any) -> "DeployedForest":  # pragma: no cover - built from parts
        self.forest.fit(X, y)
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self.forest.classes_

    @property
    def n_features_in_(self) -> int:
        return int(self.forest.n_features_in_)

    def transform_probability(self, p: np.ndarray) -> np.ndarray:
        """Apply the recalibration to forest probabilities of class 1."""
        p = np.asarray(p, dtype=float)
        if self.calibration_intercept == 0.0 and self.calibration_slope == 1.0:
            return p
        z = self.calibration_intercept + self.calibration_slope * _logit(p)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.transform_probability(self.forest.predict_proba(np.asarray(X, dtype=float))[:, 1])
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
