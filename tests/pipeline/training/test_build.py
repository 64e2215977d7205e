"""train_bundle (``pleura train``): the deployable model, recalibration, threshold, report and card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.deploy import DeployedForest
from models.tree_arrays import ArrayDeployedForest
from pipeline.core.groups import CLINICAL_FEATURES
from pipeline.features.pleura import PLEURA_FEATURE_NAMES
from pipeline.serving.bundle import load_bundle, load_skops_model, verify_bundle
from pipeline.training.build import always_keep_columns, final_oof_probabilities, train_bundle
from pipeline.training.dataset import read_table, training_arrays
from pipeline.training.selection import FeatureSelector
from pipeline.training.train import TrainConfig

TINY = TrainConfig(seed=3, fusion="early", outer_folds=3, inner_folds=2, pso_particles=2, pso_iterations=2,
                   n_estimators_range=(8, 16), max_depth_range=(2, 4), selection_k=4, n_bootstrap=50)


@pytest.fixture(scope="module")
def trained(small_feature_table: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("build")
    steps: list[tuple[str, int, int]] = []
    first = train_bundle(features=small_feature_table, out=root / "a", config=TINY, synthetic=True,
                         progress=lambda *step: steps.append(step))
    second = train_bundle(features=small_feature_table, out=root / "b", config=TINY, name="b-model", synthetic=True)
    return first, second, steps


def test_train_bundle_writes_a_recalibrated_forest_with_report_and_card(trained):
    summary, _, steps = trained
    assert summary.mode == "early" and 0 < summary.threshold < 1 and summary.nested_cv_auc > 0.5
    assert [s for s in steps if s[0] == "early: outer fold"] == [("early: outer fold", i, 3) for i in (1, 2, 3)]
    assert steps[-1] == ("final refit", 1, 1)
    bundle = load_bundle(summary.path)
    assert isinstance(bundle.estimator, ArrayDeployedForest) and bundle.name == "a"  # the tree arrays it scores with
    assert isinstance(load_skops_model(summary.path), DeployedForest)
    assert len(bundle.feature_names) == summary.n_features
    assert bundle.threshold == pytest.approx(summary.threshold)
    report = json.loads((summary.path / "report/training_report.json").read_text())
    recal = report["recalibration"]
    assert (bundle.estimator.calibration_intercept, bundle.estimator.calibration_slope) == (recal["intercept"],
                                                                                           recal["slope"])
    card = (summary.path / "MODEL_CARD.md").read_text()
    assert "Demo model trained on synthetic data" in card and f"slope {recal['slope']:.3f}" in card
    assert not any(p.name.endswith("-plots") for p in summary.path.parent.iterdir())  # scratch plots removed


def test_same_seed_same_model(trained):
    a, b, _ = trained
    ma, _ = verify_bundle(a.path)
    mb, _ = verify_bundle(b.path)
    assert ma["files"]["model.skops"] == mb["files"]["model.skops"] and ma["feature_names"] == mb["feature_names"]
    assert ma["files"]["forest.safetensors"] == mb["files"]["forest.safetensors"]
    assert load_bundle(b.path).name == "b-model"


def test_no_recalibration_ships_the_forest_probabilities(small_feature_table: Path, tmp_path: Path):
    summary = train_bundle(features=small_feature_table, out=tmp_path / "raw", config=TINY, recalibrate=False)
    model = load_bundle(summary.path).estimator
    assert (model.calibration_intercept, model.calibration_slope) == (0.0, 1.0)


def test_final_oof_probabilities_are_out_of_fold_and_seeded(small_feature_table: Path):
    X, y = training_arrays(read_table(small_feature_table)[0])
    params = {"n_estimators": 10, "max_depth": 3, "min_samples_leaf": 1, "max_features": 0.5, "class_weight": None}
    p = final_oof_probabilities(X, y, best_params=params, selector=FeatureSelector(k=3), seed=1)
    assert p.shape == (len(y),) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(p, final_oof_probabilities(X, y, best_params=params,
                                                             selector=FeatureSelector(k=3), seed=1))


def test_always_keep_columns():
    assert always_keep_columns(["clinical"]) == CLINICAL_FEATURES
    assert always_keep_columns(["pleura", "clinical", "pleura"]) == (*PLEURA_FEATURE_NAMES, *CLINICAL_FEATURES)
    with pytest.raises(ValueError, match="among"):
        always_keep_columns(["deep"])


def test_config_must_be_a_train_config(small_feature_table: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="TrainConfig"):
        train_bundle(features=small_feature_table, out=tmp_path / "x", config={"seed": 0})
