"""Random forest whose hyper-parameters are tuned by particle swarm optimisation (pyswarms).

:class:`PSOForestClassifier` searches five random-forest hyper-parameters with
``pyswarms.single.GlobalBestPSO``, maximising the mean stratified k-fold ROC AUC on the data
given to :meth:`~PSOForestClassifier.fit`, then refits one forest with the best values on all of
that data. It is a binary classifier and a regular scikit-learn estimator (``clone``,
``Pipeline``, ``cross_val_score`` all work).

Search space (``bounds``; each particle coordinate is continuous and decoded to a valid value):

================== ============== =================================================
parameter          default bounds decoding
================== ============== =================================================
n_estimators       (50, 200)      rounded to an integer (trees)
max_depth          (2, 12)        rounded to an integer (tree depth)
min_samples_leaf   (1, 10)        rounded to an integer (cases per leaf)
max_features       (0.05, 0.6)    fraction of features tried per split, rounded to 0.01
class_weight       (0, 1)         ``None`` below 0.5, ``"balanced"`` from 0.5
================== ============== =================================================

Cost: one fit evaluates at most ``n_particles × n_iterations × cv_folds`` forests (decoded
particles that repeat an earlier setting are answered from a cache) plus one final refit. The
default 8 × 6 × 3 = 144 forests of 50–200 trees took 65–95 s for 240 cases × 53 features on
one shared core of the 2-core reference machine; time grows about linearly with cases and
trees (``n_jobs=2`` lets each forest use both cores).

Determinism: pyswarms draws from NumPy's global random state. ``fit`` seeds it from
``random_state`` for the duration of the search and restores the caller's state afterwards,
so a fixed ``random_state`` gives identical results without disturbing the caller.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 4)); y = (X[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    >>> clf = PSOForestClassifier(n_particles=3, n_iterations=2, cv_folds=3, random_state=0,
    ...                           bounds={"n_estimators": (10, 20)}).fit(X, y)
    >>> len(clf.pso_history_), clf.best_cv_auc_ > 0.7
    (2, True)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "n_estimators": (50.0, 200.0),
    "max_depth": (2.0, 12.0),
    "min_samples_leaf": (1.0, 10.0),
    "max_features": (0.05, 0.6),
    "class_weight": (0.0, 1.0),
}
"""Default PSO search bounds (see the module docstring for how each is decoded)."""

PARAM_ORDER: tuple[str, ...] = tuple(DEFAULT_BOUNDS)

_LIMITS = {  # what a decoded value must satisfy
    "n_estimators": (1.0, 5000.0),
    "max_depth": (1.0, 100.0),
    "min_samples_leaf": (1.0, 1000.0),
    "max_features": (0.01, 1.0),
    "class_weight": (0.0, 1.0),
}


def resolve_bounds(bounds: Optional[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Merge user ``bounds`` onto :data:`DEFAULT_BOUNDS` and validate them.

    Raises:
        ValueError: unknown parameter, ``low > high``, or a value outside what a random forest
            accepts (e.g. ``max_features`` outside (0, 1]).
    """
    merged = dict(DEFAULT_BOUNDS)
    if bounds is not None:
        unknown = sorted(set(bounds) - set(DEFAULT_BOUNDS))
        if unknown:
            raise ValueError(f"bounds: unknown parameters {unknown}; known: {list(PARAM_ORDER)}")
        for name, pair in bounds.items():
            try:
                low, high = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{name!r}] must be (low, high), got {pair!r}") from None
            merged[name] = (low, high)
    for name, (low, high) in merged.items():
        lo_lim, hi_lim = _LIMITS[name]
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(f"bounds[{name!r}] must be finite with low <= high, got {(low, high)}")
        if low < lo_lim or high > hi_lim:
            raise ValueError(f"bounds[{name!r}] must lie within [{lo_lim:g}, {hi_lim:g}], got {(low, high)}")
    return merged


def decode_particle(position: np.ndarray, bounds: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """Turn one particle position (order :data:`PARAM_ORDER`) into forest hyper-parameters."""
    values = {}
    for name, x in zip(PARAM_ORDER, np.asarray(position, dtype=float)):
        low, high = bounds[name]
        x = float(np.clip(x, low, high))
        if name in ("n_estimators", "max_depth", "min_samples_leaf"):
            values[name] = int(np.clip(round(x), max(1, round(low)), max(1, round(high))))
        elif name == "max_features":
            values[name] = float(np.clip(round(x, 2), max(0.01, low), min(1.0, high)))
        else:
            values[name] = "balanced" if x >= 0.5 else None
    return values


@contextmanager
def _quiet_pyswarms() -> Iterator[None]:
    """Stop pyswarms' Reporter from re-configuring the root logger and writing ``report.log``.

    pyswarms 1.3.0 calls ``logging.config.dictConfig`` on every optimiser construction unless
    the ``LOG_CFG`` environment variable names a YAML config; point it at an incremental no-op
    config for the duration and restore the caller's environment.
    """
    previous = os.environ.get("LOG_CFG")
    with tempfile.TemporaryDirectory(prefix="pleura-pso-") as tmp:
        path = os.path.join(tmp, "logging.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("version: 1\nincremental: true\n")
        os.environ["LOG_CFG"] = path
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("LOG_CFG", None)
            else:
                os.environ["LOG_CFG"] = previous


@contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed ``np.random``'s global state (pyswarms uses it) and restore the caller's state."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


class PSOForestClassifier(ClassifierMixin, BaseEstimator):
    """Binary random forest with PSO-tuned hyper-parameters (see the module docstring).

    Args:
        n_particles: swarm size.
        n_iterations: PSO iterations (each evaluates every particle).
        cv_folds: stratified folds for the ROC AUC objective (reduced to the minority-class
            count when that is smaller; at least 2 cases per class are needed).
        bounds: ``{name: (low, high)}`` overriding entries of :data:`DEFAULT_BOUNDS`;
            ``None`` keeps the defaults.
        c1, c2, w: PSO cognitive, social and inertia coefficients.
        fixed_params: skip the search and fit one forest with these hyper-parameters (keys of
            :data:`DEFAULT_BOUNDS`, values already decoded, e.g. ``{"n_estimators": 100,
            "max_depth": 4, ...}``); used when tuned values are re-used on sub-samples.
        random_state: seed for the swarm, the CV split and the forests.
        n_jobs: passed to every :class:`~sklearn.ensemble.RandomForestClassifier`.

    Attributes:
        best_params_: decoded best hyper-parameters.
        best_cv_auc_: their mean cross-validated ROC AUC (NaN with ``fixed_params``).
        pso_history_: one dict per iteration: ``iteration`` (1-based), ``best_cost``
            (1 − best AUC so far), ``best_cv_auc`` (best so far), ``iteration_best_auc``,
            ``iteration_mean_auc``; empty with ``fixed_params``.
        n_evaluations_: distinct hyper-parameter settings cross-validated.
        estimator_: the final forest, refit on all data with ``best_params_``.
        classes_, n_features_in_, feature_names_in_ (DataFrame input only),
        feature_importances_: as in scikit-learn (importances from ``estimator_``).
    """

    def __init__(
        self,
        n_particles: int = 8,
        n_iterations: int = 6,
        cv_folds: int = 3,
        bounds: Optional[Mapping[str, Any]] = None,
        c1: float = 0.5,
        c2: float = 0.3,
        w: float = 0.9,
        fixed_params: Optional[Mapping[str, Any]] = None,
        random_state: Any = None,
        n_jobs: Optional[int] = None,
    ) -> None:
        self.n_particles = n_particles
        self.n_iterations = n_iterations
        self.cv_folds = cv_folds
        self.bounds = bounds
        self.c1 = c1
        self.c2 = c2
        self.w = w
        self.fixed_params = fixed_params
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> dict[str, tuple[float, float]]:
        for name in ("n_particles", "n_iterations", "cv_folds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        for name in ("c1", "c2", "w"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return resolve_bounds(self.bounds)

    def _forest(self, params: Mapping[str, Any], seed: int) -> RandomForestClassifier:
        return RandomForestClassifier(**params, random_state=seed, n_jobs=self.n_jobs)

    def _cv_auc(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any],
                folds: list[tuple[np.ndarray, np.ndarray]], seed: int) -> float:
        scores = []
        for train, test in folds:
            forest = self._forest(params, seed).fit(X[train], y[train])
            scores.append(roc_auc_score(y[test], forest.predict_proba(X[test])[:, 1]))
        return float(np.mean(scores))

    def _search(self, X: np.ndarray, y: np.ndarray, bounds: dict[str, tuple[float, float]],
                rng: np.random.RandomState, forest_seed: int) -> None:
        minority = int(np.bincount(y).min())
        n_folds = min(int(self.cv_folds), minority)
        cv_seed, pso_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=2))
        folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=cv_seed).split(X, y))

        low = np.array([bounds[n][0] for n in PARAM_ORDER])
        high = np.array([bounds[n][1] for n in PARAM_ORDER])
        high = np.where(high > low, high, low + 1e-9)  # pyswarms needs low < high
        init_pos = rng.uniform(low, high, size=(int(self.n_particles), len(PARAM_ORDER)))

        cache: dict[tuple, float] = {}
        history: list[dict[str, Any]] = []
        best = {"auc": -np.inf, "params": None}

        def cost(positions: np.ndarray) -> np.ndarray:
            aucs = []
            for position in positions:
                params = decode_particle(position, bounds)
                key = tuple(params[n] for n in PARAM_ORDER)
                if key not in cache:
                    cache[key] = self._cv_auc(X, y, params, folds, forest_seed)
                    if cache[key] > best["auc"]:
                        best["auc"], best["params"] = cache[key], params
                aucs.append(cache[key])
            aucs_arr = np.asarray(aucs, dtype=float)
            history.append({
                "iteration": len(history) + 1,
                "best_cost": float(1.0 - best["auc"]),
                "best_cv_auc": float(best["auc"]),
                "iteration_best_auc": float(aucs_arr.max()),
                "iteration_mean_auc": float(aucs_arr.mean()),
            })
            return 1.0 - aucs_arr

        options = {"c1": float(self.c1), "c2": float(self.c2), "w": float(self.w)}
        with _quiet_pyswarms(), _numpy_global_seed(pso_seed):
            # imported here: importing pyswarms builds a Reporter that re-configures logging
            from pyswarms.single import GlobalBestPSO

            optimizer = GlobalBestPSO(
                n_particles=int(self.n_particles), dimensions=len(PARAM_ORDER), options=options,
                bounds=(low, high), init_pos=init_pos,
            )
            optimizer.optimize(cost, iters=int(self.n_iterations), verbose=False)

        self.best_params_ = dict(best["params"])
        self.best_cv_auc_ = float(best["auc"])
        self.pso_history_ = history
        self.n_evaluations_ = len(cache)
        self.cv_folds_used_ = n_folds

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any) -> "PSOForestClassifier":
        """Search hyper-parameters by PSO (unless ``fixed_params``) and refit on all of X, y.

        Args:
            X: (n_cases, n_features) numeric array or DataFrame (NaN allowed, as in scikit-learn
                forests; no infinities).
            y: (n_cases,) binary labels.

        Raises:
            ValueError: invalid settings, not exactly two classes, or fewer than 2 cases in a
                class.
        """
        bounds = self._check_params()
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)  # a continuous target: "Unknown label type"
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            n = len(self.classes_)
            raise ValueError(f"Only binary classification is supported. PSOForestClassifier is binary: "
                             f"y must contain exactly 2 classes, got {n} class{'' if n == 1 else 'es'}")
        if np.bincount(y_enc).min() < 2:
            raise ValueError("each class needs at least 2 cases for cross-validated tuning")
        rng = check_random_state(self.random_state)
        forest_seed = int(rng.randint(0, 2**31 - 1))

        if self.fixed_params is not None:
            unknown = sorted(set(self.fixed_params) - set(PARAM_ORDER))
            if unknown:
                raise ValueError(f"fixed_params: unknown parameters {unknown}; known: {list(PARAM_ORDER)}")
            self.best_params_ = dict(self.fixed_params)
            self.best_cv_auc_ = float("nan")
            self.pso_history_ = []
            self.n_evaluations_ = 0
            self.cv_folds_used_ = 0
        else:
            self._search(X, y_enc, bounds, rng, forest_seed)
        self.estimator_ = self._forest(self.best_params_, forest_seed).fit(X, y_enc)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n_cases, 2) class probabilities, columns ordered as ``classes_``."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self.estimator_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (probability ≥ 0.5 for ``classes_[1]``)."""
        check_is_fitted(self, "estimator_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        """Impurity-based importances of the final forest, (n_features_in_,)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.feature_importances_

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True
        return tags

