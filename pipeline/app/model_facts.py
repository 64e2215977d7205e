"""What the loaded model's manifest says, in words a clinician reads: the performance measured at
the model's operating threshold (sensitivity, specificity, PPV, NPV, with the cohort they come
from) and a "How it works" text describing the model actually loaded.

Only numbers stored in the manifest are shown; nothing is computed or assumed here.

Example:
    >>> m = {"training": {"method": "random forest", "threshold": 0.38, "n_cases": 100, "n_positive": 30,
    ...      "nested_cv": {"sensitivity": 0.7, "specificity": 0.8, "ppv": 0.6, "npv": 0.86}}}
    >>> [(r.cohort, r.sensitivity) for r in threshold_metrics(m)]
    [('nested cross-validation of the training cohort (100 cases, 30 with VPI)', 0.7)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METRIC_KEYS = ("sensitivity", "specificity", "ppv", "npv")
METRIC_LABELS = {"sensitivity": "Sensitivity", "specificity": "Specificity", "ppv": "PPV (positive predictive value)",
                 "npv": "NPV (negative predictive value)", "auc": "AUC (area under the ROC curve)",
                 "auc_ci_low": "AUC 95 % CI, lower", "auc_ci_high": "AUC 95 % CI, upper", "brier": "Brier score",
                 "calibration_slope": "Calibration slope", "calibration_intercept": "Calibration intercept"}


@dataclass(frozen=True)
class ThresholdMetrics:
    """Sensitivity, specificity, PPV, NPV (fractions) at the operating threshold on one cohort."""

    cohort: str
    sensitivity: float
    specificity: float
    ppv: float
    npv: float

    def sentence(self) -> str:
        return (f"sensitivity {100 * self.sensitivity:.0f} %, specificity {100 * self.specificity:.0f} %, "
                f"PPV {100 * self.ppv:.0f} %, NPV {100 * self.npv:.0f} %")


def _metrics(block: Any) -> dict[str, float] | None:
    if not isinstance(block, dict):
        return None
    try:
        values = {k: float(block[k]) for k in METRIC_KEYS}
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(0.0 <= v <= 1.0 for v in values.values()) else None


def threshold_metrics(manifest: dict[str, Any]) -> list[ThresholdMetrics]:
    """Every cohort of the manifest with all four threshold metrics stored: the nested
    cross-validation of the training cohort (for the fusion chosen), then each external validation."""
    training = manifest.get("training") or {}
    out: list[ThresholdMetrics] = []
    cv = training.get("nested_cv")
    block = None
    if isinstance(cv, dict):
        block = _metrics(cv) or _metrics(cv.get(str(training.get("fusion") or "")))
    if block is not None:
        n, pos = training.get("n_cases"), training.get("n_positive")
        size = f" ({n} cases, {pos} with VPI)" if isinstance(n, int) and isinstance(pos, int) else ""
        out.append(ThresholdMetrics(f"nested cross-validation of the training cohort{size}", **block))
    for name, ext in (manifest.get("external_validation") or {}).items():
        block = _metrics(ext)
        if block is not None:
            n = ext.get("n_scored")
            out.append(ThresholdMetrics(f"external validation: {name}" + (f" ({n} cases)" if isinstance(n, int) else ""),
                                        **block))
    return out


def model_summary(manifest: dict[str, Any]) -> str:
    """One sentence naming the loaded model's kind, e.g. "a late-fusion model: one PSO-tuned
    random forest per feature group (deep, radiomics, pleura, clinical) combined by a logistic
    stacker"."""
    training = manifest.get("training") or {}
    groups = list((manifest.get("config") or {}).get("feature_groups") or [])
    method = str(training.get("method") or "a classifier")
    if training.get("fusion") == "late" and groups:
        return (f"a late-fusion model: one forest per feature group ({', '.join(groups)}; {len(groups)} forests, "
                f"{method}) whose probabilities a logistic stacker combines")
    return method


def how_it_works(manifest: dict[str, Any]) -> str:
    """Markdown steps describing the pipeline and the model actually loaded (from its manifest)."""
    training = manifest.get("training") or {}
    backbone = (manifest.get("backbone") or {})
    arch = backbone.get("architecture") or "MedicalNet 3D ResNet-10"
    source = f"; {backbone['source']}" if backbone.get("source") else ""
    prep = (manifest.get("config") or {}).get("preprocess") or {}
    spacing = prep.get("target_spacing_mm", 1.0)
    threshold = training.get("threshold")
    thr = (f" The operating threshold is {float(threshold):.2f}"
           + (f" ({training['threshold_method']})" if training.get("threshold_method") else "") + "."
           if isinstance(threshold, (int, float)) else "")
    n_features = len(manifest.get("feature_names") or [])
    return (
        "1. The CT and ROI are read and checked (3-D, Hounsfield units, mask on the same grid as the CT).\n"
        f"2. A region around the tumour is cropped and resampled to {spacing:g} mm voxels.\n"
        f"3. Features are computed: deep features ({arch}{source}), radiomics (PyRadiomics), pleura-aware "
        "measurements (distance and contact with the pleura) and the clinical values"
        + (f"; the model uses {n_features} of them" if n_features else "") + ".\n"
        f"4. The loaded model, {model_summary(manifest)}, turns them into a probability.{thr}\n"
        "5. SHAP values show which features pushed the probability up or down; the spread of the forest's "
        "trees shows how much they disagree."
    )
