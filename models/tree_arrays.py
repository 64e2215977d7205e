"""A bundle's random forest(s) as plain arrays: evaluated with numpy, explained by shap, no scikit-learn.

A fitted scikit-learn forest is, for scoring, nothing but its trees' node arrays. Stored as
safetensors (``forest.safetensors`` in a bundle), they load in milliseconds without importing
scikit-learn or skops, and give the same probabilities (the same float32 comparison of the
feature with the float64 threshold as scikit-learn's ``Tree.predict``, the same leaf
normalisation and averaging) and — handed to ``shap.TreeExplainer`` as its documented dict of
tree arrays — the same SHAP values.

File layout (one safetensors file): for each forest ``f`` (``f0`` for an early-fusion model,
``f0 … f{G-1}`` for a late-fusion model's group forests, in group order) the arrays
``f.children_left``, ``f.children_right``, ``f.children_default`` (int32, node indices local to
each tree, -1 at leaves), ``f.feature`` (int32), ``f.threshold`` (float64),
``f.value`` (float64, (nodes, n_classes), as ``tree_.value``), ``f.node_weight`` (float64,
``weighted_n_node_samples``), ``f.tree_offsets`` (int64, (n_trees + 1,): tree ``t`` owns nodes
``offsets[t]:offsets[t+1]``) and ``f.classes`` (float64); the header metadata ``model`` holds
a JSON object: ``kind`` (``forest`` or ``late_fusion``), ``n_features``, the recalibration, and
for late fusion ``groups``, ``group_columns``, ``stacker_intercept``, ``stacker_coef``.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = np.random.default_rng(0).normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    >>> bool(np.allclose(ArrayForest.from_sklearn(rf).predict_proba(X), rf.predict_proba(X), rtol=0, atol=1e-12))
    True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) with p clipped to [1e-6, 1 − 1e-6]."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def recalibrate(p: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """``sigmoid(intercept + slope · logit(p))``; identity when (0, 1)."""
    p = np.asarray(p, dtype=float)
    if intercept == 0.0 and slope == 1.0:
        return p
    z = intercept + slope * logit(p)
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True, eq=False)
class ArrayForest:
    """A random-forest classifier's trees as concatenated node arrays (see the module docstring).

    ``children_*`` hold node indices local to each tree; ``tree_offsets`` (n_trees + 1,) delimit the trees.
    """

    children_left: np.ndarray
    children_right: np.ndarray
    children_default: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    node_weight: np.ndarray
    tree_offsets: np.ndarray
    classes_: np.ndarray
    n_features_in_: int

    def __post_init__(self) -> None:
        n = len(self.feature)
        off = self.tree_offsets
        if off.ndim != 1 or len(off) < 2 or off[0] != 0 or off[-1] != n or np.any(np.diff(off) <= 0):
            raise ValueError("tree offsets do not delimit the node arrays")
        for name in ("children_left", "children_right", "children_default", "threshold", "node_weight"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.value.shape != (n, len(self.classes_)):
            raise ValueError(f"value has shape {self.value.shape}, expected ({n}, {len(self.classes_)})")
        sizes = np.repeat(np.diff(off), np.diff(off))
        for name in ("children_left", "children_right", "children_default"):
            c = getattr(self, name)
            if np.any((c < -1) | (c >= sizes)):
                raise ValueError(f"{name} points outside its tree")
        inner = self.children_left >= 0
        if np.any(inner != (self.children_right >= 0)) or np.any((self.feature[inner] < 0)
                                                                   | (self.feature[inner] >= self.n_features_in_)):
            raise ValueError("a split names no valid feature")
        start = np.repeat(off[:-1], np.diff(off))
        # global indices for the vectorised walk (leaves point to themselves)
        own = np.arange(n)
        object.__setattr__(self, "_left", np.where(inner, self.children_left + start, own))
        object.__setattr__(self, "_right", np.where(inner, self.children_right + start, own))
        object.__setattr__(self, "_default", np.where(inner, self.children_default + start, own))
        object.__setattr__(self, "_feat", np.where(inner, self.feature, 0))

    @property
    def n_trees(self) -> int:
        return len(self.tree_offsets) - 1

    @classmethod
    def from_sklearn(cls, forest: Any) -> "ArrayForest":
        """From a fitted ``RandomForestClassifier`` (single output); reads attributes only."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cl", "cr", "cd", "f", "t", "v", "w")}
        offsets = [0]
        for est in forest.estimators_:
            t = est.tree_
            if t.value.shape[1] != 1:
                raise ValueError("only single-output forests can be stored as arrays")
            cl, cr = t.children_left.astype(np.int32), t.children_right.astype(np.int32)
            miss = getattr(t, "missing_go_to_left", None)
            parts["cl"].append(cl)
            parts["cr"].append(cr)
            parts["cd"].append(cl if miss is None else np.where(miss, cl, cr).astype(np.int32))
            parts["f"].append(t.feature.astype(np.int32))
            parts["t"].append(t.threshold.astype(np.float64))
            parts["v"].append(np.asarray(t.value, dtype=np.float64).reshape(t.value.shape[0], -1))
            parts["w"].append(t.weighted_n_node_samples.astype(np.float64))
            offsets.append(offsets[-1] + t.node_count)
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(cat["cl"], cat["cr"], cat["cd"], cat["f"], cat["t"], cat["v"], cat["w"],
                   np.asarray(offsets, dtype=np.int64), np.asarray(forest.classes_, dtype=np.float64),
                   int(forest.n_features_in_))

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """(n_trees, n_cases) global leaf index of each case in each tree."""
        X = np.asarray(X, dtype=np.float32)  # scikit-learn compares float32 features with float64 thresholds
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected (n, {self.n_features_in_}) features, got {X.shape}")
        Xd = X.astype(np.float64)
        node = np.repeat(self.tree_offsets[:-1, None], X.shape[0], axis=1)
        cases = np.arange(X.shape[0])[None, :]
        inner = self.children_left >= 0
        while True:
            active = inner[node]
            if not active.any():
                return node
            x = Xd[cases, self._feat[node]]
            nxt = np.where(x <= self.threshold[node], self._left[node], self._right[node])
            nxt = np.where(np.isnan(x), self._default[node], nxt)
            node = np.where(active, nxt, node)

    def tree_proba(self, X: np.ndarray) -> np.ndarray:
        """(n_trees, n_cases, n_classes): each tree's ``predict_proba`` (leaf values normalised)."""
        v = self.value[self._leaves(X)]
        norm = v.sum(axis=-1, keepdims=True)
        norm[norm == 0.0] = 1.0
        return v / norm

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n_cases, n_classes): the mean of the trees' probabilities, added in tree order as scikit-learn does."""
        per_tree = self.tree_proba(X)
        total = np.zeros(per_tree.shape[1:])
        for p in per_tree:
            total += p
        total /= self.n_trees
        return total

    def positive_index(self) -> int:
        hits = np.flatnonzero(self.classes_ == 1)
        return int(hits[0]) if hits.size else len(self.classes_) - 1

    def shap_model(self) -> dict[str, Any]:
        """The forest in ``shap.TreeExplainer``'s dict-of-tree-arrays format, built exactly as shap
        builds it from a scikit-learn ``RandomForestClassifier`` (values normalised per node and
        scaled by 1 / n_trees; float32 inputs)."""
        scaling = 1.0 / self.n_trees
        trees = []
        for t in range(self.n_trees):
            s = slice(int(self.tree_offsets[t]), int(self.tree_offsets[t + 1]))
            values = self.value[s]
            values = (values.T / values.sum(1)).T * scaling
            trees.append({"children_left": self.children_left[s], "children_right": self.children_right[s],
                          "children_default": self.children_default[s], "features": self.feature[s],
                          "thresholds": self.threshold[s], "values": values,
                          "node_sample_weight": self.node_weight[s]})
        return {"trees": trees, "internal_dtype": np.float64, "input_dtype": np.float32,
                "objective": "binary_crossentropy", "tree_output": "probability"}


@dataclass(frozen=True, eq=False)
class ArrayDeployedForest:
    """:class:`models.deploy.DeployedForest` on an :class:`ArrayForest` (same outputs); ``bare``: it
    stands for a bare ``RandomForestClassifier`` (no recalibration), whose ``predict_proba`` it returns as is."""

    forest: ArrayForest
    calibration_intercept: float = 0.0
    calibration_slope: float = 1.0
    bare: bool = False

    @property
    def classes_(self) -> np.ndarray:
        return self.forest.classes_

    @property
    def n_features_in_(self) -> int:
        return self.forest.n_features_in_

    def transform_probability(self, p: np.ndarray) -> np.ndarray:
        return recalibrate(p, self.calibration_intercept, self.calibration_slope)

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = self.forest.predict_proba(np.asarray(X, dtype=float))
        if self.bare:
            return proba
        p = self.transform_probability(proba[:, self.forest.positive_index()])
        return np.column_stack([1 - p, p])


class LateFusionStacking:
    """The scoring side of a late-fusion model, shared by :class:`ArrayLateFusion` and
    :class:`models.deploy.DeployedLateFusion`: logistic stacking of the group forests'
    probabilities, then recalibration. A subclass has ``group_columns``, ``group_forests``,
    ``stacker_intercept``, ``stacker_coef`` and defines ``group_proba`` and ``transform_probability``."""

    @property
    def classes_(self) -> np.ndarray:
        return self.group_forests[0].classes_

    @property
    def n_features_in_(self) -> int:
        return int(sum(len(c) for c in self.group_columns))

    def stack(self, group_probabilities: np.ndarray) -> np.ndarray:
        """Stacked (not yet recalibrated) P(class 1) from (…, n_groups) group probabilities."""
        z = self.stacker_intercept + logit(group_probabilities) @ np.asarray(self.stacker_coef, dtype=float)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.transform_probability(self.stack(self.group_proba(X)))
        return np.column_stack([1 - p, p])


@dataclass(frozen=True, eq=False)
class ArrayLateFusion(LateFusionStacking):
    """:class:`models.deploy.DeployedLateFusion` on :class:`ArrayForest` group forests (same outputs)."""

    groups: list[str]
    group_columns: list[list[int]]
    group_forests: list[ArrayForest]
    stacker_intercept: float
    stacker_coef: list[float]
    calibration_intercept: float = 0.0
    calibration_slope: float = 1.0

    def group_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return np.column_stack([f.predict_proba(X[:, cols])[:, f.positive_index()]
                                for f, cols in zip(self.group_forests, self.group_columns)])

    def transform_probability(self, p: np.ndarray) -> np.ndarray:
        return recalibrate(p, self.calibration_intercept, self.calibration_slope)


ArrayModel = ArrayDeployedForest | ArrayLateFusion
_ARRAYS = ("children_left", "children_right", "children_default", "feature", "threshold", "value", "node_weight",
           "tree_offsets", "classes")


def from_estimator(estimator: Any) -> ArrayModel:
    """The array form of a bundle's fitted estimator: a ``DeployedLateFusion`` (it has
    ``group_forests``), a ``DeployedForest`` (``forest``) or a bare ``RandomForestClassifier``."""
    if hasattr(estimator, "group_forests"):
        return ArrayLateFusion(list(estimator.groups), [list(map(int, c)) for c in estimator.group_columns],
                               [ArrayForest.from_sklearn(f) for f in estimator.group_forests],
                               float(estimator.stacker_intercept), [float(c) for c in estimator.stacker_coef],
                               float(estimator.calibration_intercept), float(estimator.calibration_slope))
    if not hasattr(estimator, "forest"):
        return ArrayDeployedForest(ArrayForest.from_sklearn(estimator), bare=True)
    return ArrayDeployedForest(ArrayForest.from_sklearn(estimator.forest), float(estimator.calibration_intercept),
                               float(estimator.calibration_slope))


def save_model_arrays(model: ArrayModel, path: str | os.PathLike[str]) -> None:
    """Write an array model as one safetensors file (layout in the module docstring)."""
    from safetensors.numpy import save_file

    late = isinstance(model, ArrayLateFusion)
    forests = model.group_forests if late else [model.forest]
    tensors: dict[str, np.ndarray] = {}
    for i, f in enumerate(forests):
        for name in _ARRAYS:
            tensors[f"f{i}.{name}"] = np.ascontiguousarray(f.classes_ if name == "classes" else getattr(f, name))
    meta: dict[str, Any] = {"kind": "late_fusion" if late else "forest", "n_forests": len(forests),
                            "n_features": [f.n_features_in_ for f in forests],
                            "calibration_intercept": model.calibration_intercept,
                            "calibration_slope": model.calibration_slope}
    if not late and model.bare:
        meta["bare"] = True
    if late:
        meta.update(groups=model.groups, group_columns=model.group_columns,
                    stacker_intercept=model.stacker_intercept, stacker_coef=model.stacker_coef)
    save_file(tensors, str(path), metadata={"model": json.dumps(meta, sort_keys=True)})


def load_model_arrays(path: str | os.PathLike[str]) -> ArrayModel:
    """Read :func:`save_model_arrays`' file. Raises ValueError for anything inconsistent."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        meta = json.loads((fh.metadata() or {})["model"])
        forests = []
        for i in range(int(meta["n_forests"])):
            a = {name: fh.get_tensor(f"f{i}.{name}") for name in _ARRAYS}
            forests.append(ArrayForest(a["children_left"], a["children_right"], a["children_default"], a["feature"],
                                       a["threshold"], a["value"], a["node_weight"], a["tree_offsets"], a["classes"],
                                       int(meta["n_features"][i])))
    cal = (float(meta["calibration_intercept"]), float(meta["calibration_slope"]))
    if meta["kind"] == "forest" and len(forests) == 1:
        return ArrayDeployedForest(forests[0], *cal, bare=bool(meta.get("bare", False)))
    if meta["kind"] != "late_fusion":
        raise ValueError(f"unknown model kind {meta['kind']!r}")
    columns = [[int(c) for c in cols] for cols in meta["group_columns"]]
    if len(columns) != len(forests) or len(meta["groups"]) != len(forests) or len(meta["stacker_coef"]) != len(forests):
        raise ValueError("groups, columns, forests and stacker coefficients do not match")
    total = sum(len(c) for c in columns)
    for f, cols in zip(forests, columns):
        if any(not 0 <= c < total for c in cols):
            raise ValueError("a group reads a column outside the feature vector")
        if len(cols) != f.n_features_in_:
            raise ValueError("a group forest reads another number of columns than it was fitted on")
    return ArrayLateFusion([str(g) for g in meta["groups"]], columns, forests, float(meta["stacker_intercept"]),
                           [float(c) for c in meta["stacker_coef"]], *cal)
