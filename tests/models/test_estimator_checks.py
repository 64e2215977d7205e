"""scikit-learn's own estimator checks on the estimators in ``models/``.

``PSOForestClassifier`` and ``LateFusionClassifier`` are binary classifiers; the checks run them
with the smallest PSO budget (one particle, one iteration, forests of one or two shallow trees) so
the suite stays fast: the checks test the scikit-learn contract (fit returns self, no logic in
``__init__``, parameters untouched, learned attributes ending in ``_``, clear errors), not the
quality of the tuning, which ``test_forest.py`` and ``test_fusion.py`` cover.

``models.deploy`` holds no trainable estimator: ``DeployedForest`` / ``DeployedLateFusion`` are
wrappers a bundle builds from already fitted forests and stores in ``model.skops``; their ``fit``
refuses. Only the construction checks (clone, parameters, repr, tags) apply to them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params, check_estimator_cloneable, check_estimator_repr,
    check_get_params_invariance, check_mixin_order, check_no_attributes_set_in_init,
    check_parameters_default_constructible, check_set_params, parametrize_with_checks,
)

from models.deploy import DeployedForest, DeployedLateFusion
from models.forest import PSOForestClassifier
from models.fusion import LateFusionClassifier

TINY_BOUNDS = {"n_estimators": (1, 2), "max_depth": (1, 3)}


def _forest() -> PSOForestClassifier:
    return PSOForestClassifier(n_particles=1, n_iterations=1, cv_folds=2, bounds=TINY_BOUNDS, random_state=0)


# LateFusionClassifier finds its feature groups in the column names (pipeline.core.groups), so it
# needs a DataFrame: it refuses the plain arrays these checks fit on with that one ValueError.
_NEEDS_NAMED_COLUMNS = "fits on a plain array; the fusion needs a DataFrame whose column names give the feature groups"
_FUSION_ON_ARRAYS = (
    "check_classifier_data_not_an_array", "check_classifiers_classes", "check_classifiers_train",
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object", "check_estimator_sparse_array",
    "check_estimator_sparse_matrix", "check_estimator_sparse_tag", "check_estimators_dtypes",
    "check_estimators_empty_data_messages", "check_estimators_fit_returns_self", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_predict1d",
    "check_fit_check_is_fitted", "check_fit_idempotent", "check_fit_score_takes_y",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_supervised_y_2d",
)


def _expected_failures(estimator: object) -> dict[str, str]:
    if isinstance(estimator, LateFusionClassifier):
        return dict.fromkeys(_FUSION_ON_ARRAYS, _NEEDS_NAMED_COLUMNS)
    return {}


@parametrize_with_checks([_forest(), LateFusionClassifier(forest=_forest(), cv=2, random_state=0)],
                         expected_failed_checks=_expected_failures, xfail_strict=True)
def test_sklearn_checks(estimator, check):
    check(estimator)


def _group_table(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = pd.DataFrame({"pleura_contact_mm": y + rng.normal(0, .7, n), "CEA_ng_mL": y + rng.normal(0, 1, n),
                      "dl_000": rng.normal(size=n), "dl_001": rng.normal(size=n)})
    return X, y


def test_late_fusion_keeps_the_contract_on_a_feature_table():
    """What the array-fed checks above cannot reach, on the DataFrame the fusion needs."""
    X, y = _group_table()
    clf = LateFusionClassifier(forest=_forest(), cv=2, random_state=0)
    before = clf.get_params(deep=False)
    assert clf.fit(X, y) is clf
    assert {k: v for k, v in clf.get_params(deep=False).items() if k != "forest"} == \
        {k: v for k, v in before.items() if k != "forest"}
    assert not hasattr(clf.forest, "estimator_")  # the template forest is cloned, never fitted
    learned = set(vars(clf)) - set(before)
    assert learned and all(name.endswith("_") for name in learned)
    again = clone(clf).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert clf.predict(X).shape == (len(y),) and set(clf.predict(X)) <= {0, 1}


@pytest.mark.parametrize("check", [
    check_estimator_cloneable, check_estimator_repr, check_no_attributes_set_in_init,
    check_do_not_raise_errors_in_init_or_set_params, check_mixin_order, check_parameters_default_constructible,
    check_get_params_invariance, check_set_params,
], ids=lambda c: c.__name__)
@pytest.mark.parametrize("wrapper", [DeployedForest, DeployedLateFusion], ids=lambda w: w.__name__)
def test_deployed_wrappers_are_well_formed_estimators(wrapper, check):
    check(wrapper.__name__, wrapper())


@pytest.mark.parametrize("wrapper", [DeployedForest(), DeployedLateFusion()], ids=lambda w: type(w).__name__)
def test_deployed_wrappers_are_built_from_fitted_parts_not_fitted(wrapper):
    X, y = _group_table()
    with pytest.raises(NotImplementedError, match="built from"):
        wrapper.fit(X.to_numpy(), y)
