"""SHAP values of an :class:`~models.tree_arrays.ArrayForest` with shap's own C TreeSHAP, without ``import shap``.

``import shap`` costs 1–3 s of start-up (it imports scikit-learn, numba, matplotlib, pandas …),
although explaining a forest needs only shap's compiled extension ``shap._cext``. This module
loads that extension from the installed shap package directly and calls
``_cext.dense_tree_shap`` exactly as ``shap.TreeExplainer(model).shap_values(X)`` does for a
scikit-learn ``RandomForestClassifier`` in shap 0.51 (path-dependent perturbation, raw output,
no background data): the same packed arrays, the same call, hence the same numbers
(tests/models/test_tree_arrays.py compares them with ``shap.TreeExplainer`` to 1e-9).

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from models.tree_arrays import ArrayForest
    >>> X = np.random.default_rng(0).normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    >>> values, base = TreeShap(ArrayForest.from_sklearn(rf)).shap_values(X[:2])
    >>> bool(np.allclose(values.sum(axis=1) + base, rf.predict_proba(X[:2]), atol=1e-9))
    True
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from models.tree_arrays import ArrayForest

_PATH_DEPENDENT = 1  # shap.explainers._tree.feature_perturbation_codes["tree_path_dependent"]
_IDENTITY = 0  # shap.explainers._tree.output_transform_codes["identity"]


def shap_cext() -> ModuleType:
    """shap's compiled TreeSHAP extension (``shap._cext``), loaded without running ``shap/__init__``.

    Registered as ``shap._cext`` so a later ``import shap`` reuses it.

    Raises:
        ImportError: shap (with its extension) is not installed.
    """
    if "shap._cext" in sys.modules:
        return sys.modules["shap._cext"]
    spec = importlib.util.find_spec("shap")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("shap is not installed")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_cext{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader("shap._cext", str(path))
                ext_spec = importlib.util.spec_from_file_location("shap._cext", path, loader=loader)
                module = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(module)
                sys.modules["shap._cext"] = module
                return module
    raise ImportError("shap's compiled extension _cext was not found")


class TreeShap:
    """Path-dependent TreeSHAP of one forest (build once per model, like ``shap.TreeExplainer``).

    Args:
        forest: the forest; its output is the mean of the trees' normalised leaf values
            (class probabilities), as for a scikit-learn ``RandomForestClassifier``.
    """

    def __init__(self, forest: ArrayForest) -> None:
        cext = shap_cext()
        n_trees = forest.n_trees
        sizes = np.diff(forest.tree_offsets)
        max_nodes = int(sizes.max())
        n_out = forest.value.shape[1]
        self.n_features = forest.n_features_in_
        self.children_left = -np.ones((n_trees, max_nodes), dtype=np.int32)
        self.children_right = -np.ones((n_trees, max_nodes), dtype=np.int32)
        self.children_default = -np.ones((n_trees, max_nodes), dtype=np.int32)
        self.features = -np.ones((n_trees, max_nodes), dtype=np.int32)
        self.thresholds = np.zeros((n_trees, max_nodes), dtype=np.float64)
        self.threshold_types = np.zeros((n_trees, max_nodes), dtype=np.int32)
        self.values = np.zeros((n_trees, max_nodes, n_out), dtype=np.float64)
        self.node_sample_weight = np.zeros((n_trees, max_nodes), dtype=np.float64)
        depths = []
        scaling = 1.0 / n_trees
        for t in range(n_trees):
            s = slice(int(forest.tree_offsets[t]), int(forest.tree_offsets[t + 1]))
            n = int(sizes[t])
            cl = forest.children_left[s].astype(np.int32)
            cr = forest.children_right[s].astype(np.int32)
            values = forest.value[s]
            values = (values.T / values.sum(1)).T * scaling  # as shap's SingleTree(normalize=True, scaling)
            weight = forest.node_weight[s].astype(np.float64)
            depths.append(cext.compute_expectations(cl, cr, weight, values))  # fills inner nodes' values
            self.children_left[t, :n] = cl
            self.children_right[t, :n] = cr
            self.children_default[t, :n] = forest.children_default[s]
            self.features[t, :n] = forest.feature[s]
            self.thresholds[t, :n] = forest.threshold[s]
            self.values[t, :n] = values
            self.node_sample_weight[t, :n] = weight
        self.max_depth = int(np.max(depths))
        self.base_offset = np.zeros(n_out, dtype=np.float64)
        self.expected_value = self.values[:, 0].sum(0) + self.base_offset
        """(n_classes,) the forest's mean output over its training data (shap's ``expected_value``)."""

    def shap_values(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (n_cases, n_features, n_classes), expected value (n_classes,)) for ``X`` (n_cases, n_features)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (n, {self.n_features}) features, got {X.shape}")
        X = X.astype(np.float32)  # as shap does for scikit-learn forests
        X_missing = np.isnan(X, dtype=bool)
        phi = np.zeros((X.shape[0], X.shape[1] + 1, self.values.shape[2]))
        shap_cext().dense_tree_shap(
            self.children_left, self.children_right, self.children_default, self.features, self.thresholds,
            self.threshold_types, self.values, self.node_sample_weight, self.max_depth, X, X_missing, None,
            None, None, self.values.shape[0], self.base_offset, phi, _PATH_DEPENDENT, _IDENTITY, False)
        return phi[:, :-1, :], self.expected_value
