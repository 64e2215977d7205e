"""Train and honestly validate the VPI model on a feature table (nested cross-validation).

:func:`train_model` takes one row per case (columns named by feature group, see
:mod:`pipeline.core.groups`) and 0/1 labels (1 = VPI present) and:

1. splits the cases with an outer stratified ``outer_folds``-fold split (seeded);
2. for each fusion mode asked for, fits the *whole* model — feature selection, PSO tuning with
   its own inner ``inner_folds``-fold CV, late-fusion stacking — on each outer training fold only
   and predicts the outer test fold, giving unbiased out-of-fold (OOF) probabilities:

   * ``early`` fusion: ``Pipeline(FeatureSelector, PSOForestClassifier)`` on all features;
   * ``late`` fusion: :class:`~models.fusion.LateFusionClassifier` (one such pipeline per
     feature group, stacked by logistic regression);
   * ``auto``: both, keeping the one with the higher nested-CV ROC AUC (ties → early);

3. optionally (``ablation=True``) repeats the early-fusion nested CV with one group at a time;
4. chooses the probability threshold by Youden's J on the chosen mode's OOF probabilities
   (metrics at that threshold are therefore slightly optimistic; the AUC, Brier score and
   calibration are not affected), and refits the chosen mode on all cases.

The same outer split serves every mode and the ablation, so their AUCs are paired. The same
``seed`` gives identical predictions.

Cost: one PSO search is ``pso_particles × pso_iterations × inner_folds`` forests. Early fusion
runs ``outer_folds + 1`` searches; late fusion ``(outer_folds + 1) × groups`` searches plus
cheap refits (``late_inner_tuning="reuse"``); ablation ``outer_folds × groups`` more.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 60)
    >>> table = pd.DataFrame({"pleura_contact_mm": y + rng.normal(0, .6, 60),
    ...                       "dl_000": rng.normal(size=60), "age_years": rng.normal(65, 8, 60)})
    >>> cfg = TrainConfig(outer_folds=3, pso_particles=2, pso_iterations=2, fusion="early",
    ...                   n_estimators_range=(10, 20), n_bootstrap=100)
    >>> result = train_model(table, y, config=cfg)
    >>> result.mode, result.metrics["early"].auc > 0.7
    ('early', True)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.forest import PSOForestClassifier
from pipeline.core.config import check_setting, Serialisable
from pipeline.training.evaluate import ValidationMetrics, binary_labels, evaluate_predictions, json_safe, save_plots, youden_threshold
from models.fusion import LateFusionClassifier
from pipeline.core.groups import CLINICAL_FEATURES, feature_group, group_columns
from pipeline.training.selection import FeatureSelector

__all__ = [
    "TrainConfig", "TrainResult", "train_model", "evaluate_predictions", "build_early_fusion",
    "build_late_fusion", "nested_cv_predict", "model_importances", "selection_frequency",
    "save_training_plots",
]

FUSION_MODES = ("early", "late", "auto")
THRESHOLD_METHOD = "youden (nested-CV out-of-fold)"

Progress = Callable[[str, int, int], None]
"""``progress(stage, step, total)``, e.g. ``("early: outer fold", 2, 5)``, ``("final refit", 1, 1)``."""


@dataclass(frozen=True)
class TrainConfig(Serialisable):
    """Training settings (saved with the model).

    Attributes:
        seed: seeds the outer split, the PSO swarms, forests and internal splits.
        outer_folds: outer stratified folds of the nested CV (each class needs this many cases).
        inner_folds: folds of the PSO objective.
        stack_folds: internal folds producing the late-fusion stacker's out-of-fold inputs;
            ``None`` uses ``inner_folds`` (how bundles were trained before this setting existed).
            More folds make the stacker's inputs come from forests trained on more cases, closer to
            the final forests it is applied to: with 3 folds (forests on 2/3 of the cases) the
            stacker learns weights for weaker inputs than it later receives, which shrinks its
            output towards the base rate (an under-confident model, calibration slope > 1).
        fusion: ``"early"``, ``"late"`` or ``"auto"`` (both, keep the higher nested-CV AUC).
        selection_k: features kept by :class:`FeatureSelector` besides ``always_keep``.
        correlation_threshold: maximum |Spearman r| between kept features.
        always_keep: columns always kept when present (default: CEA, CA125, age).
        pso_particles, pso_iterations: PSO budget per search.
        n_estimators_range, max_depth_range: PSO bounds for trees per forest and tree depth.
        late_inner_tuning: ``"reuse"`` or ``"retune"`` (see :mod:`models.fusion`).
        ablation: also report nested-CV AUC of early fusion restricted to each single group.
        n_bootstrap, ci_level: stratified-bootstrap AUC confidence interval.
        n_jobs: cores per random forest (the machine default is 1).
    """

    seed: int = 0
    outer_folds: int = 5
    inner_folds: int = 3
    stack_folds: Optional[int] = None
    fusion: str = "auto"
    selection_k: int = 50
    correlation_threshold: float = 0.9
    always_keep: tuple[str, ...] = CLINICAL_FEATURES
    pso_particles: int = 8
    pso_iterations: int = 6
    n_estimators_range: tuple[int, int] = (50, 200)
    max_depth_range: tuple[int, int] = (2, 12)
    late_inner_tuning: str = "reuse"
    ablation: bool = False
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    n_jobs: int = 1

    def __post_init__(self) -> None:
        check_setting(self.outer_folds >= 2, f"outer_folds must be >= 2, got {self.outer_folds}")
        check_setting(self.inner_folds >= 2, f"inner_folds must be >= 2, got {self.inner_folds}")
        check_setting(self.stack_folds is None or self.stack_folds >= 2,
               f"stack_folds must be None or >= 2, got {self.stack_folds}")
        check_setting(self.fusion in FUSION_MODES, f"fusion must be one of {FUSION_MODES}, got {self.fusion!r}")
        check_setting(self.selection_k >= 1, f"selection_k must be >= 1, got {self.selection_k}")
        check_setting(0 < self.correlation_threshold <= 1,
               f"correlation_threshold must be in (0, 1], got {self.correlation_threshold}")
        check_setting(self.pso_particles >= 1, f"pso_particles must be >= 1, got {self.pso_particles}")
        check_setting(self.pso_iterations >= 1, f"pso_iterations must be >= 1, got {self.pso_iterations}")
        for name in ("n_estimators_range", "max_depth_range"):
            low, high = getattr(self, name)
            check_setting(1 <= low <= high, f"{name} must be (low, high) with 1 <= low <= high, got {(low, high)}")
            object.__setattr__(self, name, (int(low), int(high)))
        check_setting(self.late_inner_tuning in ("reuse", "retune"),
               f"late_inner_tuning must be 'reuse' or 'retune', got {self.late_inner_tuning!r}")
        check_setting(self.n_bootstrap >= 10, f"n_bootstrap must be >= 10, got {self.n_bootstrap}")
        check_setting(0 < self.ci_level < 1, f"ci_level must be in (0, 1), got {self.ci_level}")
        check_setting(self.n_jobs >= 1, f"n_jobs must be >= 1, got {self.n_jobs}")
        object.__setattr__(self, "always_keep", tuple(self.always_keep))

    @property
    def stacker_folds(self) -> int:
        """Internal folds the late-fusion stacker actually uses (``stack_folds`` or ``inner_folds``)."""
        return self.stack_folds or self.inner_folds


# --------------------------------------------------------------------------- builders
def _selector(config: TrainConfig) -> FeatureSelector:
    return FeatureSelector(k=config.selection_k, correlation_threshold=config.correlation_threshold,
                           always_keep=config.always_keep)


def _forest(config: TrainConfig) -> PSOForestClassifier:
    return PSOForestClassifier(
        n_particles=config.pso_particles, n_iterations=config.pso_iterations, cv_folds=config.inner_folds,
        bounds={"n_estimators": config.n_estimators_range, "max_depth": config.max_depth_range},
        random_state=config.seed, n_jobs=config.n_jobs,
    )


def build_early_fusion(config: TrainConfig) -> Pipeline:
    """Unfitted early-fusion model: ``Pipeline([("select", …), ("forest", …)])``."""
    return Pipeline([("select", _selector(config)), ("forest", _forest(config))])


def build_late_fusion(config: TrainConfig) -> LateFusionClassifier:
    """Unfitted late-fusion model (one selector + PSO forest per group, logistic stacker)."""
    return LateFusionClassifier(selector=_selector(config), forest=_forest(config),
                                cv=config.stacker_folds,
                                inner_tuning=config.late_inner_tuning, random_state=config.seed)


def _build(mode: str, config: TrainConfig) -> Any:
    return build_early_fusion(config) if mode == "early" else build_late_fusion(config)


# --------------------------------------------------------------------------- nested CV
def nested_cv_predict(
    estimator: Any,
    table: pd.DataFrame,
    labels: np.ndarray,
    *,
    folds: list[tuple[np.ndarray, np.ndarray]],
    progress: Optional[Progress] = None,
    stage: str = "outer fold",
) -> tuple[np.ndarray, list[Any]]:
    """Out-of-fold P(VPI) from a fresh clone of ``estimator`` fitted on each training fold only.

    Returns:
        (oof probabilities (n_cases,), the fitted fold models in fold order).
    """
    oof = np.full(len(table), np.nan)
    models = []
    for i, (train, test) in enumerate(folds, start=1):
        if progress is not None:
            progress(stage, i, len(folds))
        model = clone(estimator).fit(table.iloc[train], labels[train])
        positive = int(np.flatnonzero(model.classes_ == 1)[0])
        oof[test] = model.predict_proba(table.iloc[test])[:, positive]
        models.append(model)
    return oof, models


def model_importances(model: Any) -> list[dict[str, Any]]:
    """Selected features of a fitted early/late model with importances, most important first.

    Early fusion: the forest's impurity importances (sum to 1). Late fusion: each group's forest
    importances scaled by that group's share of the stacker's absolute coefficients (an
    approximation of its contribution; sums to 1).
    """
    rows: list[dict[str, Any]] = []
    if isinstance(model, LateFusionClassifier):
        weights = np.abs(np.array([model.stacker_weights_[g] for g in model.groups_]))
        shares = weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1 / len(weights))
        for share, group in zip(shares, model.groups_):
            pipe = model.group_estimators_[group]
            for name, imp in zip(pipe[-1].feature_names_in_, pipe[-1].feature_importances_):
                rows.append({"feature": str(name), "group": group, "importance": float(share * imp)})
    else:
        forest = model[-1]
        for name, imp in zip(forest.feature_names_in_, forest.feature_importances_):
            rows.append({"feature": str(name), "group": feature_group(str(name)), "importance": float(imp)})
    return sorted(rows, key=lambda r: (-r["importance"], r["feature"]))


def _pso_histories(model: Any, mode: str) -> dict[str, list[dict[str, Any]]]:
    if isinstance(model, LateFusionClassifier):
        return {f"late:{g}": list(model.group_estimators_[g][-1].pso_history_) for g in model.groups_}
    return {mode: list(model[-1].pso_history_)}


def _fold_summary(model: Any, fold: int, test_auc: float) -> dict[str, Any]:
    if isinstance(model, LateFusionClassifier):
        groups = {
            g: {"n_selected": int(len(model.group_estimators_[g][-1].feature_names_in_)),
                "best_params": dict(model.group_estimators_[g][-1].best_params_),
                "inner_cv_auc": model.group_estimators_[g][-1].best_cv_auc_,
                "stacker_weight": model.stacker_weights_[g]}
            for g in model.groups_
        }
        return {"fold": fold, "test_auc": test_auc, "groups": groups}
    forest = model[-1]
    return {"fold": fold, "test_auc": test_auc, "n_selected": int(len(forest.feature_names_in_)),
            "selected_features": [str(n) for n in forest.feature_names_in_],
            "best_params": dict(forest.best_params_), "inner_cv_auc": forest.best_cv_auc_}


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class TrainResult:
    """Everything :func:`train_model` learned and measured.

    Attributes:
        estimator: the chosen mode refit on all cases (``predict_proba`` on a feature table).
        mode: ``"early"`` or ``"late"``.
        threshold, threshold_method: decision threshold on P(VPI) and how it was chosen.
        metrics: ``{mode: ValidationMetrics}`` of the nested-CV OOF probabilities of each mode run
            (each at its own Youden threshold).
        oof_proba: ``{mode: (n_cases,) OOF P(VPI)}``.
        outer_fold: (n_cases,) 1-based outer fold in which each case was a test case.
        feature_importances: final model's selected features (dicts with ``feature``, ``group``,
            ``importance``), most important first.
        pso_history: ``{forest name: pso_history_}`` of the final model's PSO search(es).
        ablation: ``{group or "all": nested-CV AUC}`` when ``config.ablation``, else ``None``.
        fold_summaries: ``{mode: [per outer fold: test AUC, selection, best params, …]}``.
        timings: seconds per stage.
        feature_names: input columns (order the final model expects).
    """

    estimator: Any
    mode: str
    threshold: float
    threshold_method: str
    metrics: dict[str, ValidationMetrics]
    oof_proba: dict[str, np.ndarray]
    outer_fold: np.ndarray
    feature_importances: list[dict[str, Any]]
    pso_history: dict[str, list[dict[str, Any]]]
    ablation: Optional[dict[str, float]]
    fold_summaries: dict[str, list[dict[str, Any]]]
    timings: dict[str, float]
    config: TrainConfig
    feature_names: tuple[str, ...]
    n_cases: int
    n_positive: int
    groups: tuple[str, ...] = field(default=())

    @property
    def selected_features(self) -> list[str]:
        """Features the final model uses, most important first."""
        return [row["feature"] for row in self.feature_importances]

    @property
    def report(self) -> dict[str, Any]:
        """JSON-safe summary (no per-case data: OOF probabilities and folds are left out)."""
        data = {
            "mode": self.mode,
            "fusion_requested": self.config.fusion,
            "threshold": self.threshold,
            "threshold_method": self.threshold_method,
            "n_cases": self.n_cases,
            "n_positive": self.n_positive,
            "n_features": len(self.feature_names),
            "groups": list(self.groups),
            "nested_cv_auc": {m: v.auc for m, v in self.metrics.items()},
            "metrics": {m: v.to_dict() for m, v in self.metrics.items()},
            "feature_importances": self.feature_importances,
            "selection_frequency": selection_frequency(self),
            "pso_history": self.pso_history,
            "ablation": self.ablation,
            "fold_summaries": self.fold_summaries,
            "timings_s": self.timings,
            "config": self.config.to_dict(),
        }
        safe = json_safe(data)
        json.dumps(safe, allow_nan=False)  # guard: the report must serialise as strict JSON
        return safe


# --------------------------------------------------------------------------- training
def _check_inputs(table: Any, labels: Any, config: TrainConfig) -> tuple[pd.DataFrame, np.ndarray]:
    if not isinstance(table, pd.DataFrame):
        raise ValueError("table must be a pandas DataFrame (one row per case, named feature columns)")
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(f"table is empty (shape {table.shape})")
    if not all(isinstance(c, str) for c in table.columns) or table.columns.duplicated().any():
        raise ValueError("table column names must be unique strings")
    for name in table.columns:
        feature_group(name)  # raises a clear ValueError for names in no group
    numeric = table.dtypes.map(lambda d: pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d))
    if not numeric.all():
        bad = list(table.columns[~numeric.to_numpy()])[:3]
        raise ValueError(f"table columns must be numeric, e.g. not {bad}")
    if isinstance(labels, pd.Series) and not labels.index.equals(table.index):
        raise ValueError("labels (Series) must have the same index as the table, in the same order")
    y_raw = np.asarray(labels).ravel()
    if len(y_raw) != len(table):
        raise ValueError(f"table has {len(table)} cases but labels has {len(y_raw)}")
    y = binary_labels(y_raw)
    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if smallest < config.outer_folds:
        raise ValueError(
            f"each class needs at least {config.outer_folds} cases for {config.outer_folds}-fold nested CV; "
            f"the smaller class has {smallest}"
        )
    return table, y


def _run_mode(estimator: Any, table: pd.DataFrame, y: np.ndarray, folds: list, progress: Optional[Progress],
              stage: str) -> tuple[np.ndarray, list[dict[str, Any]], list[Any]]:
    oof, models = nested_cv_predict(estimator, table, y, folds=folds, progress=progress, stage=stage)
    summaries = [_fold_summary(m, i + 1, _auc(oof[test], y[test])) for i, (m, (_, test)) in
                 enumerate(zip(models, folds))]
    return oof, summaries, models


def train_model(
    table: pd.DataFrame,
    labels: Any,
    *,
    config: TrainConfig = TrainConfig(),
    progress: Optional[Progress] = None,
) -> TrainResult:
    """Nested-CV validation of early/late fusion, then a final refit on all cases.

    Args:
        table: one row per case, numeric columns named by group (``pipeline.core.groups``).
        labels: (n_cases,) 0/1 (1 = VPI present); a Series must share the table's index.
        config: training settings.
        progress: optional ``progress(stage, step, total)`` callback.

    Raises:
        ValueError: malformed table or labels, or too few cases of a class for the outer folds.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError("config must be a TrainConfig")
    start = time.perf_counter()
    table, y = _check_inputs(table, labels, config)
    groups = tuple(group_columns(table.columns))
    outer = StratifiedKFold(config.outer_folds, shuffle=True, random_state=config.seed)
    folds = [(np.asarray(tr), np.asarray(te)) for tr, te in outer.split(np.zeros(len(y)), y)]
    outer_fold = np.zeros(len(y), dtype=int)
    for i, (_, test) in enumerate(folds, start=1):
        outer_fold[test] = i

    modes = ["early", "late"] if config.fusion == "auto" else [config.fusion]
    oof: dict[str, np.ndarray] = {}
    summaries: dict[str, list[dict[str, Any]]] = {}
    timings: dict[str, float] = {}
    for mode in modes:
        t0 = time.perf_counter()
        oof[mode], summaries[mode], _ = _run_mode(_build(mode, config), table, y, folds, progress,
                                                  f"{mode}: outer fold")
        timings[f"{mode}_nested_cv"] = time.perf_counter() - t0

    metrics = {
        mode: evaluate_predictions(p, y, threshold=youden_threshold(p, y), threshold_method=THRESHOLD_METHOD,
                                   n_bootstrap=config.n_bootstrap, ci_level=config.ci_level, seed=config.seed)
        for mode, p in oof.items()
    }
    chosen = max(modes, key=lambda m: (metrics[m].auc, m == "early"))

    ablation: Optional[dict[str, float]] = None
    if config.ablation:
        t0 = time.perf_counter()
        ablation = {}
        for group in groups:
            cols = [c for c in table.columns if feature_group(c) == group]
            p_group, _ = nested_cv_predict(build_early_fusion(config), table[cols], y, folds=folds,
                                           progress=progress, stage=f"ablation {group}: outer fold")
            ablation[group] = _auc(p_group, y)
        ablation["all"] = metrics["early"].auc if "early" in metrics else _auc(
            nested_cv_predict(build_early_fusion(config), table, y, folds=folds, progress=progress,
                              stage="ablation all: outer fold")[0], y)
        timings["ablation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if progress is not None:
        progress("final refit", 1, 1)
    final = _build(chosen, config).fit(table, y)
    timings["final_refit"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start

    return TrainResult(
        estimator=final,
        mode=chosen,
        threshold=metrics[chosen].threshold,
        threshold_method=THRESHOLD_METHOD,
        metrics=metrics,
        oof_proba=oof,
        outer_fold=outer_fold,
        feature_importances=model_importances(final),
        pso_history=_pso_histories(final, chosen),
        ablation=ablation,
        fold_summaries=summaries,
        timings={k: round(v, 3) for k, v in timings.items()},
        config=config,
        feature_names=tuple(table.columns),
        n_cases=int(len(y)),
        n_positive=int(y.sum()),
        groups=groups,
    )


def save_training_plots(result: TrainResult, out_dir: Any, *, formats: tuple[str, ...] = ("html", "png")) -> list:
    """ROC / calibration / decision curves of every mode's nested-CV OOF probabilities, the final
    model's feature importances and PSO trajectories, via :func:`pipeline.training.evaluate.save_plots`."""
    return save_plots(
        result.metrics, out_dir,
        importances=[(row["feature"], row["importance"]) for row in result.feature_importances],
        pso_history=result.pso_history, formats=formats,
    )


def selection_frequency(result: TrainResult, mode: str = "early") -> dict[str, float]:
    """Fraction of outer folds whose early-fusion model selected each final feature."""
    folds = result.fold_summaries.get(mode, [])
    if not folds or "selected_features" not in folds[0]:
        return {}
    return {
        name: sum(name in f["selected_features"] for f in folds) / len(folds)
        for name in result.selected_features
    }

