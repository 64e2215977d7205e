"""SHAP explanations of a tree-ensemble VPI model (shap pinned to 0.51).

``shap.TreeExplainer(forest).shap_values(X)`` returns, in shap 0.51, an array of shape
(n_cases, n_features, n_classes) for a classifier; older releases returned a list per class.
:func:`explain_case` accepts both and keeps the positive class (VPI = 1), in probability units:
``base_value + sum(values) == predicted probability`` (checked).

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = np.random.default_rng(0).normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    >>> e = explain_case(TreeExplainer(rf), X[:1], ["CEA_ng_mL", "pleura_distance_mm", "dl_000"])
    >>> bool(abs(e.base_value + e.values.sum() - rf.predict_proba(X[:1])[0, 1]) < 1e-6)
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.groups import feature_group, group_of

GROUP_LABELS = {"deep": "Deep (MedicalNet)", "radiomics": "Radiomics", "pleura": "Pleura", "clinical": "Clinical"}


class TreeExplainer:
    """A cached SHAP explainer for a fitted forest (build once per model): ``shap.TreeExplainer`` for a
    scikit-learn forest; :class:`models.tree_shap.TreeShap` (shap's C TreeSHAP, same values) for a
    :class:`models.tree_arrays.ArrayForest`."""

    def __init__(self, model) -> None:  # noqa: ANN001
        self.model = model
        if hasattr(model, "tree_proba"):  # an ArrayForest: shap's C TreeSHAP without importing shap (≈ 1–3 s)
            from models.tree_shap import TreeShap

            self._arrays: TreeShap | None = TreeShap(model)
            return
        import shap

        self._arrays = None
        self._explainer = shap.TreeExplainer(model)

    def shap_positive(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """(values (n, F) for class 1, base value for class 1)."""
        if self._arrays is not None:
            values, base = self._arrays.shap_values(np.asarray(X, dtype=np.float64))
            k = self.model.positive_index()
            return values[:, :, k], float(base[k])
        raw = self._explainer.shap_values(np.asarray(X, dtype=np.float64), check_additivity=False)
        if isinstance(raw, list):  # shap < 0.45 style
            values = np.asarray(raw[1])
        else:
            values = np.asarray(raw)
            if values.ndim == 3:
                values = values[:, :, 1]
        base = np.asarray(self._explainer.expected_value).reshape(-1)
        base_value = float(base[1] if base.size > 1 else base[0])
        return values, base_value


@dataclass(frozen=True, eq=False)
class Explanation:
    """SHAP values of one case (probability units) with names and groups."""

    names: tuple[str, ...]
    values: np.ndarray
    feature_values: np.ndarray
    base_value: float

    def on_probability_scale(self, probability: float, base_value: float) -> "Explanation":
        """Rescale to a recalibrated output: values keep their proportions and now add up from
        ``base_value`` (the recalibrated forest base value) to ``probability``. Identity when the
        model has no recalibration. (Exact SHAP of the forest; proportional for the monotone
        recalibration on top.)"""
        raw_total = float(self.values.sum())
        target = probability - base_value
        if abs(raw_total) < 1e-12:
            return Explanation(self.names, self.values, self.feature_values, probability - raw_total)
        return Explanation(self.names, self.values * (target / raw_total), self.feature_values, base_value)

    def group_totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for n, v in zip(self.names, self.values):
            g = feature_group(n)
            totals[g] = totals.get(g, 0.0) + float(v)
        return totals

    def top(self, k: int = 10) -> list[tuple[str, float, float]]:
        """The k features with the largest |SHAP|: (name, shap value, feature value)."""
        order = np.argsort(-np.abs(self.values))[:k]
        return [(self.names[i], float(self.values[i]), float(self.feature_values[i])) for i in order]

    def to_dict(self, k: int = 15) -> dict:
        return {
            "base_value": self.base_value,
            "group_totals": self.group_totals(),
            "top_features": [
                {"name": n, "label": readable_name(n), "shap": s, "value": v} for n, s, v in self.top(k)
            ],
        }


def explain_case(explainer: TreeExplainer, x: np.ndarray, names: Sequence[str]) -> Explanation:
    """SHAP explanation of a single case ``x`` (1, F) for the positive class."""
    x2 = np.asarray(x, dtype=np.float64).reshape(1, -1)
    values, base = explainer.shap_positive(x2)
    return Explanation(tuple(names), values[0], x2[0], base)



def explain_late_fusion(explainers: Sequence[TreeExplainer], model, x: np.ndarray,  # noqa: ANN001
                        names: Sequence[str]) -> Explanation:
    """SHAP-based explanation of a late-fusion model (:class:`models.deploy.DeployedLateFusion`)
    for one case ``x`` (1, F), before recalibration.

    Each group forest's SHAP values (exact, probability units) explain its probability ``p_g``;
    the stacker adds ``c_g = coef_g · (logit p_g − logit E[p_g])`` to the logit. A feature's value
    is its share of its group's SHAP total times ``c_g``; the values sum to the stacked logit
    minus the stacker's logit at every group's base value (returned as ``base_value`` after the
    sigmoid). :meth:`Explanation.on_probability_scale` then maps them to probability units.
    Exact per group, proportional across the stacker.
    """
    from models.tree_arrays import logit

    x2 = np.asarray(x, dtype=np.float64).reshape(1, -1)
    values = np.zeros(x2.shape[1])
    base_logit = float(model.stacker_intercept)
    for explainer, cols, coef in zip(explainers, model.group_columns, model.stacker_coef):
        phi, base = explainer.shap_positive(x2[:, cols])
        phi = phi[0]
        p_g = base + float(phi.sum())
        contribution = float(coef) * float(logit(np.array([p_g]))[0] - logit(np.array([base]))[0])
        base_logit += float(coef) * float(logit(np.array([base]))[0])
        total = float(phi.sum())
        if abs(total) > 1e-12:
            values[cols] = phi / total * contribution
    raw_base = 1.0 / (1.0 + np.exp(-base_logit))
    # ``values`` are logit units summing to the stacked logit minus ``base_logit``: express them
    # in (un-recalibrated) probability units
    stacked = 1.0 / (1.0 + np.exp(-(base_logit + float(values.sum()))))
    return Explanation(tuple(names), values, x2[0], float(raw_base)).on_probability_scale(stacked, float(raw_base))

_WAVELET = re.compile(r"^wavelet-([LH]{3})$")
_LOG = re.compile(r"^log-sigma-(\d+)-(\d+)-mm-3D$")
_CLASS_LABEL = {"firstorder": "first-order", "shape": "shape", "glcm": "GLCM", "glrlm": "GLRLM",
                "glszm": "GLSZM", "gldm": "GLDM", "ngtdm": "NGTDM"}
_SPECIAL = {
    "CEA_ng_mL": "CEA (ng/mL)",
    "CA125_U_mL": "CA125 (U/mL)",
    "age_years": "Age (years)",
}


def _split_camel(s: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", s).lower()


def readable_name(name: str) -> str:
    """A label a clinician can read, e.g. ``wavelet-LLH_glszm_ZoneEntropy`` →
    ``Wavelet LLH · GLSZM zone entropy``; ``dl_042`` → ``Deep feature 42``;
    ``pleura_distance_mm`` → ``Pleura distance (mm)``."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    group = group_of(name)
    if group == "deep":
        return f"Deep feature {int(name[3:])}"
    if group == "pleura":
        words = name.split("_")
        unit = None
        if words[-1] in ("mm", "mm2", "mm3"):
            unit = {"mm": "mm", "mm2": "mm²", "mm3": "mm³"}[words.pop()]
        text = " ".join(words).replace("ctr", "CTR")
        text = text[0].upper() + text[1:]
        return f"{text} ({unit})" if unit else text
    ring = name.startswith("ring_")
    core = name[5:] if ring else name
    parts = core.split("_", 2)
    if len(parts) == 3:
        image, cls, feat = parts
        if image == "original":
            img = "Original"
        elif m := _WAVELET.match(image):
            img = f"Wavelet {m.group(1)}"
        elif m := _LOG.match(image):
            img = f"LoG σ{m.group(1)}.{m.group(2)} mm".replace(".0 mm", " mm")
        else:
            img = image
        label = f"{img} · {_CLASS_LABEL.get(cls, cls)} {_split_camel(feat)}"
        return ("Peritumoral ring · " + label) if ring else label
    return name
