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

from models.tree_arrays import LateFusionStacking, logit

__all__ = ["DeployedForest", "DeployedLateFusion", "fit_recalibration", "logit"]


def fit_recalibration(proba: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of a logistic regression of labels on logit(proba) (unpenalised)."""
    from sklearn.linear_model import LogisticRegression

    z = logit(proba).reshape(-1, 1)
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

    def fit(self, X: Any, y: Any) -> "DeployedForest":
        # refitting the forest would leave the recalibration fitted to another forest's probabilities
        raise NotImplementedError("DeployedForest is built from a fitted forest and its recalibration, not fitted")

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
        z = self.calibration_intercept + self.calibration_slope * logit(p)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.transform_probability(self.forest.predict_proba(np.asarray(X, dtype=float))[:, 1])
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class DeployedLateFusion(LateFusionStacking, ClassifierMixin, BaseEstimator):
    """Late fusion as a bundle stores it: one fitted forest per feature group, each reading its
    own columns of the bundle's feature vector, combined by a logistic stacker on the groups'
    logits, then an optional recalibration (as :class:`DeployedForest`).

    ``p = recal(sigmoid(stacker_intercept + Σ_g stacker_coef[g] · logit(p_g)))`` with ``p_g`` the
    probability of group ``g``'s forest on columns ``group_columns[g]``.

    Args:
        groups: group names (``deep``, ``radiomics``, ``pleura``, ``clinical``), in order.
        group_columns: per group, the column indices (into the bundle's feature vector) its forest reads.
        group_forests: per group, a fitted ``RandomForestClassifier``.
        stacker_intercept, stacker_coef: the logistic stacker (one coefficient per group).
        calibration_intercept, calibration_slope: recalibration of the stacked probability.

    Example:
        >>> import numpy as np
        >>> from sklearn.ensemble import RandomForestClassifier
        >>> X = np.random.default_rng(0).normal(size=(80, 3)); y = (X[:, 0] + X[:, 2] > 0).astype(int)
        >>> f = [RandomForestClassifier(n_estimators=10, random_state=0).fit(X[:, c], y) for c in ([0, 1], [2])]
        >>> m = DeployedLateFusion(groups=["pleura", "clinical"], group_columns=[[0, 1], [2]], group_forests=f,
        ...                        stacker_intercept=0.0, stacker_coef=[1.0, 1.0])
        >>> m.predict_proba(X[:2]).shape, m.n_features_in_
        ((2, 2), 3)
    """

    def __init__(self, groups: Any = None, group_columns: Any = None, group_forests: Any = None,
                 stacker_intercept: float = 0.0, stacker_coef: Any = None,
                 calibration_intercept: float = 0.0, calibration_slope: float = 1.0) -> None:
        self.groups = groups
        self.group_columns = group_columns
        self.group_forests = group_forests
        self.stacker_intercept = stacker_intercept
        self.stacker_coef = stacker_coef
        self.calibration_intercept = calibration_intercept
        self.calibration_slope = calibration_slope

    def fit(self, X: Any, y: Any) -> "DeployedLateFusion":
        raise NotImplementedError("DeployedLateFusion is built from a fitted LateFusionClassifier (from_fitted)")

    @classmethod
    def from_fitted(cls, model: Any, *, calibration_intercept: float = 0.0,
                    calibration_slope: float = 1.0) -> tuple["DeployedLateFusion", list[str]]:
        """From a fitted :class:`models.fusion.LateFusionClassifier` whose group pipelines are
        ``(selector, PSOForestClassifier)``: the deployable model and the bundle's feature names
        (each group's selected columns, in group order)."""
        names: list[str] = []
        columns: list[list[int]] = []
        forests: list[Any] = []
        for group in model.groups_:
            pipe = model.group_estimators_[group]
            selector = pipe[0]
            group_names = model.group_columns_[group]
            if selector != "passthrough" and hasattr(selector, "get_feature_names_out"):
                group_names = [str(n) for n in selector.get_feature_names_out()]
            columns.append(list(range(len(names), len(names) + len(group_names))))
            names += list(group_names)
            forests.append(pipe[-1].estimator_)
        deployed = cls(groups=list(model.groups_), group_columns=columns, group_forests=forests,
                       stacker_intercept=float(model.stacker_.intercept_[0]),
                       stacker_coef=[float(c) for c in model.stacker_.coef_[0]],
                       calibration_intercept=calibration_intercept, calibration_slope=calibration_slope)
        return deployed, names

    def group_proba(self, X: Any) -> np.ndarray:
        """(n_cases, n_groups) P(class 1) of each group's forest."""
        X = np.asarray(X, dtype=float)
        return np.column_stack([f.predict_proba(X[:, cols])[:, 1]
                                for f, cols in zip(self.group_forests, self.group_columns)])

    transform_probability = DeployedForest.transform_probability

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
