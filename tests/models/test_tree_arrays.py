"""The array form of a bundle's forest(s) gives the skops model's probabilities, tree spread and
SHAP values (to 1e-9), on a freshly trained bundle and on the shipped demo bundle, and scoring with
it imports neither scikit-learn, skops nor shap."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap

from models.tree_arrays import ArrayForest, from_estimator, load_model_arrays, save_model_arrays
from models.tree_shap import TreeShap
from pipeline.core.errors import BundleError
from pipeline.inputs.clinical import ClinicalValues
from pipeline.serving.bundle import FOREST_FILE, MANIFEST, load_bundle, load_skops_model
from pipeline.serving.bundle_convert import convert_bundle, probe_features
from pipeline.serving.score import Scorer
from pipeline.serving.signing import SIGNATURE_FILE

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "weights" / "demo"
TOL = 1e-9


def _forests(model):  # noqa: ANN001, ANN202
    return list(getattr(model, "group_forests", None) or [getattr(model, "forest", model)])


def _columns(model, n):  # noqa: ANN001, ANN202
    return list(getattr(model, "group_columns", None) or [list(range(n))])


def assert_same_model(skops_model, arrays, X: np.ndarray) -> None:  # noqa: ANN001
    """Probabilities, per-tree probabilities and SHAP values (ours, shap's on the arrays, shap's on
    the scikit-learn forest) agree to 1e-9."""
    np.testing.assert_allclose(arrays.predict_proba(X), skops_model.predict_proba(X), rtol=0, atol=TOL)
    for sk, ar, cols in zip(_forests(skops_model), _forests(arrays), _columns(skops_model, X.shape[1])):
        Xg = X[:, cols]
        per_tree = np.stack([t.predict_proba(Xg.astype(np.float32)) for t in sk.estimators_])
        np.testing.assert_allclose(ar.tree_proba(Xg), per_tree, rtol=0, atol=TOL)
        reference = shap.TreeExplainer(sk)
        expected = np.asarray(reference.shap_values(Xg, check_additivity=False))
        ours, base = TreeShap(ar).shap_values(Xg)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL)
        np.testing.assert_allclose(base, np.asarray(reference.expected_value), rtol=0, atol=TOL)
        via_dict = np.asarray(shap.TreeExplainer(ar.shap_model()).shap_values(Xg, check_additivity=False))
        np.testing.assert_allclose(via_dict, expected, rtol=0, atol=TOL)


def _score_both(bundle_path: Path, cases: list[tuple[Path, Path, ClinicalValues]]) -> None:
    """Whole-case scoring with the array model and with the skops model: same results."""
    bundle = load_bundle(bundle_path)
    assert not hasattr(bundle.estimator, "get_params"), "the bundle must load its tree arrays"
    skops_bundle = dataclasses.replace(bundle, estimator=load_skops_model(bundle_path))
    fast, slow = Scorer(bundle), Scorer(skops_bundle)
    for ct, roi, clinical in cases:
        a, b = fast.score(ct, roi, clinical), slow.score(ct, roi, clinical)
        assert abs(a.probability - b.probability) <= TOL
        for field in ("tree_sd", "tree_p05", "tree_p95"):
            assert abs(getattr(a, field) - getattr(b, field)) <= TOL
        np.testing.assert_allclose(a.explanation.values, b.explanation.values, rtol=0, atol=TOL)
        assert abs(a.explanation.base_value - b.explanation.base_value) <= TOL


def _cases(cohort_csv: Path, n: int) -> list[tuple[Path, Path, ClinicalValues]]:
    table = pd.read_csv(cohort_csv).head(n)
    return [(cohort_csv.parent / r.ct_path, cohort_csv.parent / r.roi_path,
             ClinicalValues(cea_ng_ml=float(r.CEA), ca125_u_ml=float(r.CA125), age_years=float(r.age)))
            for r in table.itertuples()]


def test_trained_bundle_arrays_equal_skops(tiny_bundle: Path, phantom_features: Path, phantom_cohort: Path) -> None:
    assert (tiny_bundle / FOREST_FILE).is_file(), "training writes the array form"
    bundle = load_bundle(tiny_bundle)
    table = pd.read_parquet(phantom_features)
    X = table[list(bundle.feature_names)].to_numpy(dtype=float)
    X = np.vstack([X, probe_features(bundle.estimator, X.shape[1], n=200)])
    assert_same_model(load_skops_model(tiny_bundle), bundle.estimator, X)
    _score_both(tiny_bundle, _cases(phantom_cohort, 3))


def test_demo_bundle_arrays_equal_skops(phantom_cohort: Path) -> None:
    bundle = load_bundle(DEMO)
    assert type(bundle.estimator).__name__ == "ArrayLateFusion"
    X = probe_features(bundle.estimator, len(bundle.feature_names), n=300)
    assert_same_model(load_skops_model(DEMO), bundle.estimator, X)


def test_demo_bundle_scores_phantoms_as_skops(tmp_path: Path) -> None:
    from pipeline.synth import write_cohort

    cohort = write_cohort(tmp_path, n=2, seed=4242, size="medium")
    _score_both(DEMO, _cases(cohort, 2))


def test_round_trip_and_refusals(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    X[::7, 2] = np.nan  # scikit-learn routes missing values; so must the arrays
    y = (np.nan_to_num(X[:, 0]) + rng.normal(scale=0.5, size=120) > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=15, random_state=0).fit(X, y)
    path = tmp_path / "f.safetensors"
    save_model_arrays(from_estimator(rf), path)
    back = load_model_arrays(path)
    np.testing.assert_allclose(back.forest.predict_proba(X), rf.predict_proba(X), rtol=0, atol=TOL)
    with pytest.raises(ValueError, match="features"):
        back.forest.predict_proba(X[:, :3])
    broken = dict(vars(back.forest))
    broken = {k: v for k, v in broken.items() if not k.startswith("_")}
    broken["children_left"] = broken["children_left"].copy()
    broken["children_left"][0] = 10 ** 6
    with pytest.raises(ValueError, match="outside its tree"):
        ArrayForest(**broken)


def test_convert_adds_arrays_and_unsigns(tiny_bundle: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["files"][FOREST_FILE]
    (old / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (old / FOREST_FILE).unlink()
    (old / SIGNATURE_FILE).unlink()
    legacy = load_bundle(old, allow_unsigned=True)
    assert hasattr(legacy.estimator, "get_params"), "a bundle without arrays still loads its skops model"
    assert convert_bundle(old) == [FOREST_FILE]
    assert (old / FOREST_FILE).read_bytes() == (tiny_bundle / FOREST_FILE).read_bytes()
    converted = load_bundle(old, allow_unsigned=True)
    assert converted.signature.label.startswith("unsigned")
    X = probe_features(converted.estimator, len(converted.feature_names), n=50)
    np.testing.assert_allclose(converted.estimator.predict_proba(X), legacy.estimator.predict_proba(X), rtol=0, atol=TOL)
    assert convert_bundle(old) == []
    (old / FOREST_FILE).write_bytes(b"x" + (old / FOREST_FILE).read_bytes()[1:])
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(old, allow_unsigned=True)


def test_scoring_imports_no_sklearn_skops_shap_or_torch() -> None:
    code = ("import sys; from pipeline.serving.score import Scorer; Scorer(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skops', 'pandas', 'torch') or m == 'shap'); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_batch_worker_start_imports_no_torch() -> None:
    # a batch worker (pool, in-process or Dask) used to import torch just to set its threads: 2–3 s per start
    code = ("import sys; from pipeline.serving.batch import _worker_scorer; _worker_scorer(None, 1); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skops', 'pandas', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout
