"""``pleura train`` / ``pleura evaluate`` end to end on a small phantom cohort, and the shipped demo bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from signing_helpers import TEST_SIGNER, sign_for_tests

from pipeline.serving.bundle import load_bundle, verify_bundle
from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--fusion", "early", "--outer-folds", "3", "--inner-folds", "2", "--particles", "2", "--iterations", "2", "--k", "10", "--no-ablation"]


@pytest.fixture(scope="module")
def trained(phantom_features: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    a, b = root / "a", root / "b"
    for out in (a, b):
        assert main(["train", str(phantom_features), "--out", str(out), "--name", "tiny", "--synthetic", "--seed", "3",
                     *TINY]) == 0
        sign_for_tests(out)
    return a, b


def test_train_writes_a_verified_bundle_with_report_and_card(trained):
    bundle = load_bundle(trained[0])
    t = bundle.manifest["training"]
    assert t["fusion"] == "early" and 0 <= t["threshold"] <= 1
    assert {"auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "ppv", "npv", "brier",
            "calibration_slope", "calibration_intercept"} <= set(t["nested_cv"]["early"])
    files = set(bundle.manifest["files"])
    assert {"MODEL_CARD.md", "report/training_report.json", "report/training/roc.png", "report/training/roc.html"} <= files
    report = json.loads((trained[0] / "report/training_report.json").read_text())
    assert report["pso_history"] and report["feature_importances"]
    card = (trained[0] / "MODEL_CARD.md").read_text()
    assert "Research use only" in card and "synthetic" in card
    assert len(bundle.feature_names) < 1426  # only the selected features are extracted when scoring


def test_same_seed_same_model_files(trained):
    ma, _ = verify_bundle(trained[0])
    mb, _ = verify_bundle(trained[1])
    for f in ("model.skops", "backbone.safetensors", "MODEL_CARD.md"):
        if f in ma["files"]:
            assert ma["files"][f] == mb["files"][f], f
    assert ma["feature_names"] == mb["feature_names"]


def test_evaluate_attaches_external_validation(trained, phantom_cohort: Path, tmp_path: Path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(trained[0], bundle)  # keep the fixture's bundles untouched for the other tests
    assert main(["evaluate", str(bundle), str(phantom_cohort), "--out", str(tmp_path / "ev"), "--name", "phantoms",
                 "--attach"]) == 0
    # attaching re-seals the manifest, so the signature (over the old manifest) is removed
    assert not (bundle / "signature.json").exists()
    manifest, _ = verify_bundle(bundle, allow_unsigned=True)
    ext = manifest["external_validation"]["phantoms"]
    assert sign_for_tests(bundle) and load_bundle(bundle).signature.signer == TEST_SIGNER
    assert ext["n_scored"] == 16 and 0 <= ext["auc"] <= 1 and ext["oracle"]["auc"] > 0
    assert "## External validation" in (bundle / "MODEL_CARD.md").read_text()
    assert (tmp_path / "ev" / "evaluation.json").is_file() and (tmp_path / "ev" / "decision_curve.png").is_file()
    evaluation = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert set(evaluation["oracle"]) == {"auc", "brier", "calibration_slope", "calibration_intercept"}
    assert len(evaluation["quality_bar"]) == 3 and all(isinstance(v, bool) for v in evaluation["quality_bar"].values())
    assert "quality bar (AUC ≥ oracle − 0.03" in (bundle / "MODEL_CARD.md").read_text()
    header = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()[0]
    assert header == "case_id,label,probability,p_true"
    # the attached pages share the training report's plotly.min.js instead of a 4.8 MB copy each
    pages = bundle / "report/external/phantoms"
    assert not (pages / "plotly.min.js").exists() and "report/external/phantoms/roc.html" in manifest["files"]
    src = (pages / "roc.html").read_text().split('<script charset="utf-8" src="')[1].split('"')[0]
    assert (pages / src).resolve() == (bundle / "report/training/plotly.min.js").resolve()
    assert (pages / src).is_file()


def test_shipped_demo_bundle_verifies_and_says_synthetic():
    demo = REPO / "weights" / "demo"
    if not (demo / "manifest.json").is_file():
        pytest.skip("weights/demo not built yet")
    bundle = load_bundle(demo)
    assert bundle.synthetic and bundle.notice == "Research use only; demo model trained on synthetic data."
    assert bundle.signature.trusted and bundle.signature.signer == "PleuraRisk maintainers (release key)"
    assert "synthetic" in (demo / "MODEL_CARD.md").read_text()


@pytest.fixture(scope="module")
def late_bundle(phantom_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Late fusion needs enough cases per class for outer × stacker × PSO folds: the 16 phantoms'
    real feature rows, four times over with 1 % jitter (48 more rows), extraction metadata kept."""
    import numpy as np
    import pandas as pd

    from pipeline.training.dataset import feature_columns, read_table, write_table

    root = tmp_path_factory.mktemp("train-late")
    table, meta = read_table(phantom_features)
    rng = np.random.default_rng(0)
    copies = []
    for k in range(4):
        c = table.copy()
        cols = feature_columns(c)
        c[cols] = c[cols].astype(float) * (1 + (rng.normal(0, 0.01, (len(c), len(cols))) if k else 0))
        c["case_id"] = c["case_id"].astype(str) + f"_{k}"
        copies.append(c)
    write_table(pd.concat(copies, ignore_index=True), root / "features64.parquet", meta)
    out = root / "late"
    args = [a if a != "early" else "late" for a in TINY]
    assert main(["train", str(root / "features64.parquet"), "--out", str(out), "--name", "tiny-late", "--synthetic",
                 "--seed", "3", *args]) == 0
    return sign_for_tests(out)


def test_late_fusion_bundle_is_exported_and_scores_with_a_stacked_explanation(late_bundle: Path, phantom_cohort: Path):
    """A late-fusion model is shipped as it was validated: per-group forests + stacker, explained per feature."""
    import csv

    import numpy as np

    from models.deploy import DeployedLateFusion
    from models.tree_arrays import ArrayLateFusion
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.bundle import load_skops_model
    from pipeline.serving.score import Scorer

    bundle = load_bundle(late_bundle)
    assert isinstance(bundle.estimator, ArrayLateFusion)  # the tree arrays it scores with
    assert isinstance(load_skops_model(late_bundle), DeployedLateFusion)
    assert bundle.manifest["training"]["fusion"] == "late"
    assert "logistic stacker" in (late_bundle / "MODEL_CARD.md").read_text()
    row = next(csv.DictReader(phantom_cohort.open()))  # the cohort CSV; image paths relative to it
    scorer = Scorer(bundle)
    result = scorer.score(phantom_cohort.parent / row["ct_path"], phantom_cohort.parent / row["roi_path"],
                          parse_clinical(cea=float(row["CEA"]), ca125=float(row["CA125"]), age=float(row["age"])))
    assert 0.0 < result.probability < 1.0
    assert result.tree_p05 <= result.probability <= result.tree_p95 + 1e-9
    e = result.explanation
    assert e.base_value + e.values.sum() == pytest.approx(result.probability, abs=1e-6)
    assert set(e.group_totals()) <= {"deep", "radiomics", "pleura", "clinical"}
    assert "resampled trees" in result.to_dict()["uncertainty"]["kind"]
    X = result.features.values.reshape(1, -1)
    assert bundle.estimator.predict_proba(X)[0, 1] == pytest.approx(result.probability)
    assert np.isfinite(bundle.estimator.group_proba(X)).all()


def test_keep_pleura_puts_every_pleura_feature_in_the_bundle(phantom_features: Path, tmp_path: Path):
    from pipeline.features.pleura import PLEURA_FEATURE_NAMES

    out = tmp_path / "keep"
    assert main(["train", str(phantom_features), "--out", str(out), "--seed", "3", "--keep", "clinical",
                 "--keep", "pleura", *TINY]) == 0
    names = load_bundle(out, allow_unsigned=True).feature_names  # freshly trained: unsigned
    assert set(PLEURA_FEATURE_NAMES) <= set(names)
    assert {"CEA_ng_mL", "CA125_U_mL", "age_years"} <= set(names)
