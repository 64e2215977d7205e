"""fit_bundle (``pleura fit``) and the backbone check of a feature table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from pipeline.serving.bundle import load_bundle
from pipeline.training.dataset import read_table, training_arrays
from pipeline.training.fit import backbone_for_table, fit_bundle


def test_fit_bundle_writes_the_plain_forest_on_every_labelled_case(small_feature_table: Path, tmp_path: Path):
    done = fit_bundle(features=small_feature_table, out=tmp_path / "plain", trees=20, seed=4, synthetic=True)
    assert (done.path, done.n_cases, done.n_features) == (tmp_path / "plain", 48, 6)  # the failed row is left out
    bundle = load_bundle(done.path)
    assert bundle.synthetic and bundle.threshold == 0.5
    assert bundle.manifest["training"]["n_trees"] == 20 and bundle.manifest["training"]["n_positive"] == 24
    X, y = training_arrays(read_table(small_feature_table)[0])
    same = RandomForestClassifier(n_estimators=20, min_samples_leaf=2, class_weight="balanced", random_state=4,
                                  n_jobs=1).fit(X.to_numpy(), y)
    np.testing.assert_array_equal(bundle.estimator.predict_proba(X.to_numpy()), same.predict_proba(X.to_numpy()))


def test_no_backbone_without_deep_features():
    assert backbone_for_table({"backbone_spec": "seed:0"}, ["CEA_ng_mL", "pleura_contact_mm"]) == (None, "")


def test_a_different_backbone_than_the_tables_is_refused():
    from pipeline.core.errors import BundleError

    with pytest.raises(BundleError, match="differs from the one the feature table was extracted with"):
        backbone_for_table({"backbone_spec": "seed:0", "backbone_fingerprint": "0" * 64}, ["dl_000"])
