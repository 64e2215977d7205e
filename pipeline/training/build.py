"""Train a bundle (``pleura train``): honest validation, deployable model, recalibration,
operating threshold, report, plots and model card.

:func:`train_bundle` reads a labelled feature table (:func:`pipeline.training.dataset.read_table`),
runs :func:`pipeline.training.train.train_model` (in-fold selection, PSO-tuned forest, nested CV,
early vs late fusion), then writes a bundle whose model uses only the selected features (so
scoring extracts only those):

* early fusion: :class:`models.deploy.DeployedForest` — the final forest plus a logistic
  recalibration fitted on 5-fold out-of-fold probabilities of the final configuration
  (:func:`final_oof_probabilities`); the operating threshold is Youden's J on those
  probabilities, mapped through the (monotone) recalibration;
* late fusion: :class:`models.deploy.DeployedLateFusion` — per-group forests and the logistic
  stacker, no recalibration; the threshold is Youden's J on the nested-CV probabilities.

The bundle also holds the training report (``report/training_report.json``), the plots
(``report/training/*.html|png``) and ``MODEL_CARD.md`` (:func:`pipeline.training.model_card.model_card`).
The same ``TrainConfig.seed`` gives the same model files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from pipeline.training.train import Progress, TrainConfig

__all__ = ["KEEP_GROUPS", "TrainSummary", "always_keep_columns", "final_oof_probabilities", "train_bundle"]

KEEP_GROUPS = ("clinical", "pleura")
"""Feature groups that can be kept whole, past every selection filter (:func:`always_keep_columns`)."""


def always_keep_columns(groups: Sequence[str]) -> tuple[str, ...]:
    """Column names of the feature ``groups`` (``"clinical"``, ``"pleura"``; repeats ignored) for
    :attr:`TrainConfig.always_keep`.

    Example:
        >>> always_keep_columns(["clinical", "clinical"])
        ('CEA_ng_mL', 'CA125_U_mL', 'age_years')
    """
    from pipeline.core.groups import CLINICAL_FEATURES
    from pipeline.features.pleura import PLEURA_FEATURE_NAMES

    kept = {"clinical": CLINICAL_FEATURES, "pleura": PLEURA_FEATURE_NAMES}
    unknown = [g for g in groups if g not in kept]
    if unknown:
        raise ValueError(f"feature groups to keep must be among {list(KEEP_GROUPS)}, got {unknown}")
    return tuple(n for g in dict.fromkeys(groups) for n in kept[g])


def final_oof_probabilities(X: Any, y: np.ndarray, *, best_params: dict[str, Any], selector: Any, seed: int,
                            folds: int = 5, n_jobs: int = 1) -> np.ndarray:
    """Out-of-fold P(VPI) of the *final* configuration (selection settings + the tuned forest
    hyper-parameters, no re-tuning), by stratified ``folds``-fold CV.

    The recalibration and the operating threshold are fitted on these, because the final forest's
    probabilities are squeezed differently from those of the per-fold-tuned forests of nested CV
    (measured: a recalibration fitted on the nested-CV probabilities left the held-out calibration
    slope at 6.6).

    Args:
        X: (n_cases, n_features) feature table.
        y: (n_cases,) 0/1 labels.
        best_params: the tuned :class:`~sklearn.ensemble.RandomForestClassifier` hyper-parameters.
        selector: fitted or unfitted feature selector (cloned per fold).
        seed: seeds the split and the forests.
        folds: stratified folds.
        n_jobs: cores per forest.
    """
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import Pipeline

    forest = RandomForestClassifier(**best_params, random_state=seed, n_jobs=n_jobs)
    pipe = Pipeline([("select", clone(selector)), ("forest", forest)])
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(pipe, X, y, cv=cv, method="predict_proba")[:, 1]


@dataclass(frozen=True)
class TrainSummary:
    """What :func:`train_bundle` wrote.

    Attributes:
        path: the bundle folder.
        mode: fusion of the shipped model (``"early"`` or ``"late"``).
        n_features: features the model uses (extracted when scoring).
        nested_cv_auc: nested-CV ROC AUC of that mode (None when undefined).
        threshold: operating threshold on the shipped (recalibrated) probability.
        wall_time_s: training time in seconds (rounded to 0.1 s).
    """

    path: Path
    mode: str
    n_features: int
    nested_cv_auc: Optional[float]
    threshold: float
    wall_time_s: float


@dataclass(frozen=True)
class _Deployable:
    model: Any
    selected: list[str]
    recalibration: tuple[float, float]
    threshold: float
    best_params: dict[str, Any]
    threshold_method: str
    recalibration_note: str


def _deployable(result: Any, X: Any, y: np.ndarray, *, config: TrainConfig, recalibrate: bool) -> _Deployable:
    """The bundle's model, features, recalibration and threshold from a :class:`TrainResult`."""
    from models.deploy import DeployedForest, DeployedLateFusion, fit_recalibration

    from pipeline.training.evaluate import youden_threshold

    if result.mode == "late":
        # The stacker is fitted on internal out-of-fold group probabilities and is already
        # calibrated (nested-CV slope near 1): no recalibration; threshold from nested CV.
        fitted = result.estimator
        model, selected = DeployedLateFusion.from_fitted(fitted)
        return _Deployable(model, selected, (0.0, 1.0), float(result.metrics["late"].threshold),
                           {g: dict(fitted.group_estimators_[g][-1].best_params_) for g in fitted.groups_},
                           "youden on the nested-CV out-of-fold probabilities",
                           "none: the logistic stacker is fitted on out-of-fold group probabilities")
    pipe = result.estimator
    selected = list(pipe[0].get_feature_names_out())
    best_params = pipe[-1].best_params_
    oof = final_oof_probabilities(X, y, best_params=best_params, selector=pipe[0], seed=config.seed,
                                  n_jobs=config.n_jobs)
    a, b = fit_recalibration(oof, y) if recalibrate else (0.0, 1.0)
    model = DeployedForest(forest=pipe[-1].estimator_, calibration_intercept=a, calibration_slope=b)
    # Youden threshold on those out-of-fold probabilities, moved through the (monotone)
    # recalibration so the same cases fall on each side of it
    threshold = float(model.transform_probability(np.array([youden_threshold(oof, y)]))[0])
    return _Deployable(model, selected, (a, b), threshold, best_params,
                       "youden (5-fold out-of-fold, final configuration), mapped through the recalibration",
                       "5-fold out-of-fold probabilities of the final configuration")


def _plot_files(result: Any, plots_dir: Path) -> dict[str, bytes]:
    from pipeline.training.train import save_training_plots

    written = save_training_plots(result, plots_dir)
    extra = {f"report/training/{p.name}": p.read_bytes() for p in written}
    js = plots_dir / "plotly.min.js"
    if js.exists():
        extra["report/training/plotly.min.js"] = js.read_bytes()
    return extra


def train_bundle(*, features: str | os.PathLike[str], out: str | os.PathLike[str], config: TrainConfig,
                 name: Optional[str] = None, recalibrate: bool = True, synthetic: bool = False,
                 progress: Optional[Progress] = None) -> TrainSummary:
    """Train, validate and write a bundle from a labelled feature table (module docstring).

    Args:
        features: parquet feature table with labels (``pleura features``).
        out: bundle folder to write (replaced if it exists).
        config: training settings; ``config.seed`` also seeds the recalibration folds.
        name: the bundle's name (default: the folder's name).
        recalibrate: fit the logistic recalibration (early fusion); False ships the forest's
            probabilities as they are.
        synthetic: the table comes from synthetic phantoms (notice on every result).
        progress: ``progress(stage, step, total)`` as the nested CV and the refit advance.

    Raises:
        ValueError: unusable table or labels for ``config`` (e.g. too few cases per class).
        BundleError: the backbone available now differs from the table's.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError("config must be a TrainConfig")
    from pipeline.core.config import PipelineConfig
    from pipeline.serving.bundle import write_bundle
    from pipeline.training.dataset import read_table, training_arrays
    from pipeline.training.fit import backbone_for_table
    from pipeline.training.model_card import model_card
    from pipeline.training.train import train_model

    table, meta = read_table(features)
    X, y = training_arrays(table)
    t0 = time.perf_counter()
    result = train_model(X, y, config=config, progress=progress)
    fusion_note = (f"{result.mode} fusion chosen by nested CV" if config.fusion == "auto"
                   else f"{result.mode} fusion (--fusion {config.fusion})")
    d = _deployable(result, X, y, config=config, recalibrate=recalibrate)
    a, b = d.recalibration
    report = result.report
    report["fusion_note"] = fusion_note
    report["threshold_recalibrated"] = d.threshold
    report["recalibration"] = {"intercept": a, "slope": b, "fitted_on": d.recalibration_note}
    report["training_wall_time_s"] = round(time.perf_counter() - t0, 1)
    out_path = Path(out)
    plots_dir = out_path.with_name(f".{out_path.name}-plots")
    extra = _plot_files(result, plots_dir)
    extra["report/training_report.json"] = json.dumps(report, indent=2).encode()
    from pipeline.serving.domain import domain_files

    extra.update(domain_files(table, list(d.selected),
                              source=f"the {result.n_cases} training cases of this bundle (pleura train)"))
    backbone, source = backbone_for_table(meta, d.selected)
    name = name or out_path.name
    card = model_card(name=name, synthetic=synthetic, report=report, n_features=len(d.selected),
                      backbone_source=source if backbone is not None else meta.get("backbone_source", ""),
                      recalibration=(a, b), stacker_folds=config.stacker_folds)
    summary = {
        "method": "PSO-tuned random forest (pyswarms), in-fold feature selection, nested CV",
        "fusion": result.mode, "fusion_note": fusion_note, "threshold": d.threshold,
        "threshold_method": d.threshold_method,
        "n_cases": result.n_cases, "n_positive": result.n_positive,
        "nested_cv": {k: {f: v[f] for f in ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "ppv",
                                                 "npv", "brier", "calibration_slope", "calibration_intercept")}
                      for k, v in report["metrics"].items()},
        "ablation": report.get("ablation"), "recalibration": report["recalibration"],
        "best_params": d.best_params, "seed": config.seed,
        "training_wall_time_s": report["training_wall_time_s"],
    }
    path = write_bundle(out, estimator=d.model, feature_names=d.selected,
                        config=PipelineConfig.from_dict(meta["config"]), backbone=backbone, backbone_source=source,
                        synthetic=synthetic, training=summary, model_card=card, extra_files=extra, name=name)
    shutil.rmtree(plots_dir, ignore_errors=True)
    return TrainSummary(path=Path(path), mode=result.mode, n_features=len(d.selected),
                        nested_cv_auc=report["metrics"][result.mode]["auc"], threshold=d.threshold,
                        wall_time_s=report["training_wall_time_s"])
