"""Supervised feature selection fitted on training cases only.

:class:`FeatureSelector` is a scikit-learn transformer; put it first in a ``Pipeline`` so that
every cross-validation fold re-learns its selection from that fold's training cases (no
leakage from test cases). Steps, in order, on the training data:

1. drop features with any non-finite value (NaN/±inf) or with a single value (constant);
2. drop exact duplicates of an earlier column (the first copy is kept);
3. rank the remaining features by univariate ROC AUC distance from 0.5,
   ``|AUC − 0.5|`` (direction-free; ties keep column order);
4. walk that ranking, keeping a feature only if its absolute correlation (Spearman by default,
   or Pearson) with every feature already kept is ≤ ``correlation_threshold`` — so of two
   correlated features the one more associated with the label survives — and stop after ``k``.

``always_keep`` columns (default: the clinical CEA, CA125, age) that are present bypass all
steps and do not count toward ``k``; absent ones are ignored, so one selector serves any
feature group.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 60)
    >>> X = pd.DataFrame({"pleura_a": y + rng.normal(0, .5, 60), "dl_000": rng.normal(size=60),
    ...                   "dl_001": np.ones(60), "age_years": rng.normal(60, 9, 60)})
    >>> FeatureSelector(k=1).fit(X, y).get_feature_names_out().tolist()
    ['pleura_a', 'age_years']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import ClassifierTags
from sklearn.utils.validation import check_array, check_is_fitted

from pipeline.core.groups import CLINICAL_FEATURES, feature_group, group_columns

__all__ = ["FeatureSelector", "univariate_auc", "feature_group", "group_columns", "CLINICAL_FEATURES"]


def univariate_auc(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of X (n_cases, n_features) as a score for binary y (0/1).

    Computed from mid-ranks (Mann–Whitney), so ties count one half; (n_features,) result.
    """
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("univariate AUC needs both classes in y")
    ranks = rankdata(X, axis=0)
    return (ranks[y].sum(axis=0) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _correlation_ready(X: np.ndarray, method: str) -> np.ndarray:
    """Columns standardised so that ``Z.T @ Z / n`` is the correlation matrix."""
    data = rankdata(X, axis=0) if method == "spearman" else X
    centred = data - data.mean(axis=0)
    scale = np.sqrt((centred**2).mean(axis=0))
    return centred / scale


class FeatureSelector(TransformerMixin, BaseEstimator):
    """Filter → de-duplicate → decorrelate → top-``k`` univariate selection (module docstring).

    Args:
        k: features to keep besides ``always_keep`` (``None`` keeps every feature that passes
            the filters).
        correlation_threshold: maximum absolute correlation in (0, 1] between kept features
            (1.0 disables the correlation step).
        correlation_method: ``"spearman"`` (rank) or ``"pearson"``.
        always_keep: column names kept unconditionally when present.

    Attributes:
        feature_names_in_: input column names (DataFrame input only); otherwise names
            ``x0 …`` are used internally.
        n_features_in_: number of input columns.
        support_: (n_features_in_,) boolean mask of kept columns.
        selected_features_: kept names, in input column order.
        univariate_auc_: (n_features_in_,) training ROC AUC per column (NaN where the column
            was dropped before ranking).
        dropped_: ``{"non_finite", "constant", "duplicate", "correlated"}`` → list of names.
    """

    def __init__(
        self,
        k: Optional[int] = 50,
        correlation_threshold: float = 0.9,
        correlation_method: str = "spearman",
        always_keep: Sequence[str] = CLINICAL_FEATURES,
    ) -> None:
        self.k = k
        self.correlation_threshold = correlation_threshold
        self.correlation_method = correlation_method
        self.always_keep = always_keep

    def _check_params(self) -> None:
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1):
            raise ValueError(f"k must be a positive integer or None, got {self.k!r}")
        if not (0 < float(self.correlation_threshold) <= 1):
            raise ValueError(f"correlation_threshold must be in (0, 1], got {self.correlation_threshold!r}")
        if self.correlation_method not in ("spearman", "pearson"):
            raise ValueError(f"correlation_method must be 'spearman' or 'pearson', got {self.correlation_method!r}")
        if isinstance(self.always_keep, str):
            raise ValueError("always_keep must be a sequence of column names, not one string")

    @staticmethod
    def _as_array(X: Any) -> tuple[np.ndarray, Optional[list[str]]]:
        if isinstance(X, pd.DataFrame):
            if not all(isinstance(c, str) for c in X.columns):
                raise ValueError("feature table column names must be strings")
            names = list(X.columns)
            if len(set(names)) != len(names):
                raise ValueError("feature table has duplicate column names")
            try:
                return X.to_numpy(dtype=np.float64), names
            except (TypeError, ValueError):
                raise ValueError("feature table must contain only numeric columns") from None
        # check_array refuses sparse, complex and empty (no case / no feature) input with scikit-learn's
        # messages; NaN and ±inf pass (such columns are dropped by fit)
        array = check_array(X, dtype=np.float64, ensure_all_finite=False, ensure_2d=False, allow_nd=True)
        if array.ndim != 2:
            raise ValueError(f"X must be 2-D (cases, features), got shape {array.shape}")
        return check_array(array, dtype=np.float64, ensure_all_finite=False), None

    def fit(self, X: Any, y: Any) -> "FeatureSelector":
        """Learn the selection from training cases X (n_cases, n_features) and binary labels y."""
        self._check_params()
        if y is None:
            raise ValueError("FeatureSelector requires y to be passed, but the target y is None")
        data, names = self._as_array(X)
        y = np.asarray(y).ravel()
        if len(y) != data.shape[0]:
            raise ValueError(f"X has {data.shape[0]} cases but y has {len(y)} labels")
        classes, y01 = np.unique(y, return_inverse=True)
        if len(classes) != 2:
            raise ValueError(f"FeatureSelector needs binary labels, got {len(classes)} classes")
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        else:
            names = [f"x{i}" for i in range(data.shape[1])]
            self.__dict__.pop("feature_names_in_", None)
        self.n_features_in_ = data.shape[1]

        keep_always = set(self.always_keep) & set(names)
        forced = np.array([n in keep_always for n in names], dtype=bool)
        dropped: dict[str, list[str]] = {"non_finite": [], "constant": [], "duplicate": [], "correlated": []}

        finite = np.isfinite(data).all(axis=0)
        with np.errstate(invalid="ignore"):
            constant = finite & (np.ptp(np.where(np.isfinite(data), data, 0.0), axis=0) == 0)
        candidate = finite & ~constant & ~forced
        dropped["non_finite"] = [n for n, f, c in zip(names, finite, forced) if not f and not c]
        dropped["constant"] = [n for n, f, c in zip(names, constant, forced) if f and not c]

        seen: dict[bytes, int] = {}
        for j in np.flatnonzero(candidate):
            key = np.ascontiguousarray(data[:, j]).tobytes()
            if key in seen:
                candidate[j] = False
                dropped["duplicate"].append(names[j])
            else:
                seen[key] = j

        auc = np.full(data.shape[1], np.nan)
        idx = np.flatnonzero(candidate)
        chosen: list[int] = []
        if len(idx):
            auc[idx] = univariate_auc(data[:, idx], y01)
            strength = np.abs(auc[idx] - 0.5)
            order = idx[np.argsort(-strength, kind="stable")]
            limit = len(order) if self.k is None else int(self.k)
            threshold = float(self.correlation_threshold)
            if threshold >= 1.0:
                chosen = list(order[:limit])
            else:
                z = _correlation_ready(data[:, order], self.correlation_method)
                n = data.shape[0]
                kept_pos: list[int] = []
                for pos in range(len(order)):
                    if len(kept_pos) >= limit:
                        break
                    if kept_pos:
                        r = np.abs(z[:, kept_pos].T @ z[:, pos]) / n
                        if r.max() > threshold:
                            dropped["correlated"].append(names[order[pos]])
                            continue
                    kept_pos.append(pos)
                chosen = [int(order[p]) for p in kept_pos]

        support = forced.copy()
        support[chosen] = True
        if not support.any():
            raise ValueError("no feature survived selection (all non-finite, constant or duplicate)")
        self.support_ = support
        self.selected_features_ = [n for n, s in zip(names, support) if s]
        self.univariate_auc_ = auc
        self.dropped_ = dropped
        return self

    def transform(self, X: Any) -> Any:
        """Keep the selected columns: DataFrame in → DataFrame out (by name), array → array."""
        check_is_fitted(self, "support_")
        if isinstance(X, pd.DataFrame):
            if hasattr(self, "feature_names_in_"):
                missing = [n for n in self.selected_features_ if n not in X.columns]
                if missing:
                    raise ValueError(f"feature table lacks {len(missing)} selected columns, e.g. {missing[:3]}")
                return X[self.selected_features_]
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, selector was fitted on {self.n_features_in_}")
            return X.iloc[:, np.flatnonzero(self.support_)]
        array = check_array(X, dtype=None, ensure_all_finite=False)  # 2-D, dense, real
        if array.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {array.shape[1]} features, but FeatureSelector is expecting "
                             f"{self.n_features_in_} features as input: X must have shape (cases, "
                             f"{self.n_features_in_}), got {array.shape}")
        return array[:, self.support_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the selected columns (object array)."""
        check_is_fitted(self, "support_")
        if input_features is not None:
            names = [str(n) for n in input_features]
            if len(names) != self.n_features_in_:
                raise ValueError(f"input_features has {len(names)} names, expected {self.n_features_in_}")
            return np.asarray([n for n, s in zip(names, self.support_) if s], dtype=object)
        return np.asarray(self.selected_features_, dtype=object)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = True
        # the univariate AUC ranking needs a binary target: scikit-learn's estimator checks then
        # give it two-class labels, as they do for a binary-only classifier
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags
