"""Late fusion: one selector + PSO forest per feature group, stacked by logistic regression.

:class:`LateFusionClassifier` splits a feature table's columns into groups with
:func:`pipeline.core.groups.group_columns` (deep / radiomics / pleura / clinical), fits one
``Pipeline(FeatureSelector, PSOForestClassifier)`` per group present, and combines the groups'
probabilities with a logistic regression (the *stacker*) on their logits.

The stacker must learn from probabilities the group models did not see while training, so each
group's out-of-fold probabilities come from an internal stratified ``cv``-fold split of the
training cases. ``inner_tuning`` decides what runs in those internal folds:

* ``"reuse"`` (default): hyper-parameters are tuned by PSO once per group on all training cases;
  each internal fold refits the selector and a forest with those hyper-parameters (about
  ``cv``× cheaper than re-tuning; the tuned values have seen the internal held-out cases, which
  can only make the stacker's inputs slightly optimistic, never the outer evaluation);
* ``"retune"``: selection and PSO run again inside every internal fold (fully honest, ~4× cost).

In nested cross-validation the whole classifier is fitted inside each outer training fold, so
outer test cases never reach any step.

Example:
    >>> import numpy as np, pandas as pd
    >>> from models.forest import PSOForestClassifier
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 80)
    >>> X = pd.DataFrame({"pleura_contact_mm": y + rng.normal(0, .7, 80),
    ...                   "CEA_ng_mL": y + rng.normal(0, 1, 80), "dl_000": rng.normal(size=80)})
    >>> forest = PSOForestClassifier(n_particles=2, n_iterations=1, bounds={"n_estimators": (10, 12)},
    ...                              random_state=0)
    >>> clf = LateFusionClassifier(forest=forest, cv=3, random_state=0).fit(X, y)
    >>> clf.groups_
    ['deep', 'pleura', 'clinical']
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from models.forest import PSOForestClassifier
from pipeline.core.groups import group_columns

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


class LateFusionClassifier(ClassifierMixin, BaseEstimator):
    """Per-group selector + PSO forest, stacked by logistic regression (module docstring).

    Args:
        selector: template transformer cloned per group (e.g. ``FeatureSelector(k=50)``);
            ``None`` uses every column of the group.
        forest: template :class:`~models.forest.PSOForestClassifier` cloned per group;
            ``None`` uses its defaults.
        cv: internal stratified folds producing the stacker's out-of-fold inputs (≥ 2).
        inner_tuning: ``"reuse"`` or ``"retune"`` (module docstring).
        C: inverse L2 strength of the logistic stacker.
        random_state: seed of the internal split.

    Attributes:
        groups_: groups present, in :data:`pipeline.core.config.FEATURE_GROUPS` order.
        group_columns_: ``{group: [column, …]}``.
        group_estimators_: ``{group: fitted Pipeline}`` on all training cases.
        oof_proba_: (n_cases, n_groups) internal out-of-fold probabilities (stacker inputs).
        group_oof_auc_: ``{group: ROC AUC of its out-of-fold probabilities}``.
        stacker_: fitted :class:`~sklearn.linear_model.LogisticRegression` on group logits.
        stacker_weights_: ``{group: stacker coefficient}``.
        classes_, n_features_in_, feature_names_in_.
    """

    def __init__(
        self,
        selector: Any = None,
        forest: Optional[PSOForestClassifier] = None,
        cv: int = 3,
        inner_tuning: str = "reuse",
        C: float = 1.0,
        random_state: Any = None,
    ) -> None:
        self.selector = selector
        self.forest = forest
        self.cv = cv
        self.inner_tuning = inner_tuning
        self.C = C
        self.random_state = random_state

    def _pipeline(self, forest: PSOForestClassifier) -> Pipeline:
        select = "passthrough" if self.selector is None else clone(self.selector)
        return Pipeline([("select", select), ("forest", forest)])

    @staticmethod
    def _check_table(X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise ValueError("LateFusionClassifier needs a DataFrame whose column names give the feature groups")
        return X

    def fit(self, X: pd.DataFrame, y: Any) -> "LateFusionClassifier":
        """Fit the per-group models, their internal out-of-fold probabilities and the stacker.

        Args:
            X: feature table, one row per case, columns named by group (``pipeline.core.groups``).
            y: (n_cases,) binary labels.
        """
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {self.cv!r}")
        if self.inner_tuning not in ("reuse", "retune"):
            raise ValueError(f"inner_tuning must be 'reuse' or 'retune', got {self.inner_tuning!r}")
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        if y is None:
            raise ValueError("LateFusionClassifier requires y to be passed, but the target y is None")
        y = np.asarray(y).ravel()
        check_classification_targets(y)  # a continuous target: "Unknown label type"
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) != 2:
            n = len(classes)
            raise ValueError(f"Only binary classification is supported. LateFusionClassifier is binary: "
                             f"got {n} class{'' if n == 1 else 'es'}")
        X = self._check_table(X)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} cases but y has {len(y)} labels")
        self.classes_ = classes
        minority = int(np.bincount(y_enc).min())
        if minority < 2:
            raise ValueError("each class needs at least 2 cases for the internal cross-validation")

        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = X.shape[1]
        self.group_columns_ = group_columns(X.columns)
        self.groups_ = list(self.group_columns_)
        template = PSOForestClassifier() if self.forest is None else self.forest

        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        folds = list(StratifiedKFold(min(int(self.cv), minority), shuffle=True, random_state=seed).split(X, y_enc))
        oof = np.zeros((len(X), len(self.groups_)))
        self.group_estimators_ = {}
        for g_idx, group in enumerate(self.groups_):
            Xg = X[self.group_columns_[group]]
            model = self._pipeline(clone(template)).fit(Xg, y_enc)
            self.group_estimators_[group] = model
            for train, test in folds:
                inner_forest = clone(template)
                if self.inner_tuning == "reuse":
                    inner_forest.set_params(fixed_params=dict(model[-1].best_params_))
                inner = self._pipeline(inner_forest).fit(Xg.iloc[train], y_enc[train])
                oof[test, g_idx] = inner.predict_proba(Xg.iloc[test])[:, 1]
        self.oof_proba_ = oof
        self.group_oof_auc_ = {g: float(roc_auc_score(y_enc, oof[:, i])) for i, g in enumerate(self.groups_)}
        self.stacker_ = LogisticRegression(C=float(self.C), max_iter=1000).fit(_logit(oof), y_enc)
        self.stacker_weights_ = {g: float(c) for g, c in zip(self.groups_, self.stacker_.coef_[0])}
        return self

    def group_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n_cases, n_groups) probability of ``classes_[1]`` from each group's model."""
        check_is_fitted(self, "stacker_")
        X = self._check_table(X)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature table lacks {len(missing)} columns seen in training, e.g. {missing[:3]}")
        return np.column_stack([
            self.group_estimators_[g].predict_proba(X[self.group_columns_[g]])[:, 1] for g in self.groups_
        ])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n_cases, 2) stacked class probabilities, columns ordered as ``classes_``."""
        group_p = self.group_proba(X)  # checks that the model is fitted
        return self.stacker_.predict_proba(_logit(group_p))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted labels (stacked probability ≥ 0.5 for ``classes_[1]``)."""
        proba = self.predict_proba(X)  # checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True
        return tags
