"""Score one case: (CT, ROI, CEA/CA125/age) → VPI probability, uncertainty, SHAP explanation.

The CLI, the batch runner, the app and the report all call :class:`Scorer`; nothing else
computes a probability. Settings and feature names come from the verified model bundle, so a
case is always scored with exactly the extraction settings the model was trained with.

Uncertainty shown with each probability: the spread of the forest's individual trees'
probabilities (5th–95th percentile and SD); for a late-fusion model, the spread of the stacked
probability when each group forest's trees are resampled. It describes disagreement between
trees, not a calibrated confidence interval; it is labelled as such wherever it is shown.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.serving.bundle import ModelBundle, load_bundle
from pipeline.core.env import settings
from pipeline.core.errors import reraise_with_step
from pipeline.inputs.case import PreparedCase, load_case
from pipeline.inputs.clinical import ClinicalValues
from pipeline.serving.explain import Explanation, TreeExplainer, explain_case, explain_late_fusion
from pipeline.serving.signing import SignatureCheck
from pipeline.features.extract import FeatureExtractors, FeatureVector
from pipeline.serving.domain import DomainVerdict, case_descriptors, load_domain, unknown_verdict
from pipeline.core.errors import BundleError
from pipeline.features.findings import FINDING_SOURCES, Findings

ProgressFn = Callable[[str], None]

RISK_BANDS = ((0.25, "low"), (0.5, "intermediate"), (1.01, "high"))
"""The bands for the default threshold 0.5: low < 0.25 ≤ intermediate < 0.5 ≤ high."""


def band_limits(threshold: float = 0.5) -> tuple[float, float]:
    """(low/intermediate, intermediate/high) limits of the display bands for a model whose
    operating threshold is ``threshold``: the bands are anchored on the threshold, so that
    *high* means exactly "at or above the threshold" and *intermediate* means "below the
    threshold but at least half of it"; ``band_limits(0.5) == (0.25, 0.5)``."""
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return threshold / 2.0, threshold


def percent(probability: float) -> str:
    """A probability as every screen and report shows it: whole percent, e.g. ``percent(0.172) == "17 %"``.
    Values that round to 0 or 100 but are not exactly 0 or 1 show as "< 1 %" / "> 99 %"."""
    value = 100.0 * float(probability)
    if 0.0 < value < 0.5:
        return "< 1 %"
    if 99.5 <= value < 100.0:
        return "> 99 %"
    return f"{value:.0f} %"


def band_rule(threshold: float = 0.5) -> str:
    """The band scheme in one line, in percent like the probability, e.g. for threshold 0.38:
    ``low < 19 % ≤ intermediate < 38 % (the model's operating threshold) ≤ high``."""
    lo, hi = band_limits(threshold)
    return f"low < {percent(lo)} ≤ intermediate < {percent(hi)} (the model's operating threshold) ≤ high"


def risk_band(probability: float, threshold: float = 0.5) -> str:
    """``low`` / ``intermediate`` / ``high`` for a probability (see :func:`band_limits`)."""
    lo, hi = band_limits(threshold)
    if probability < lo:
        return "low"
    return "intermediate" if probability < hi else "high"


def _names_failing_step(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a scoring method so an unexpected failure is re-raised as a
    :class:`~pipeline.core.errors.StepError` naming the last step announced to ``progress``
    (user errors pass unchanged)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, progress: ProgressFn | None = None, **kwargs: Any) -> Any:
        current = ["preparing the case"]

        def say(step: str) -> None:
            current[0] = step
            if progress is not None:
                progress(step)

        try:
            return method(self, *args, progress=say, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised, with the step when unexpected
            reraise_with_step(current[0], exc)

    return wrapper


@dataclass(frozen=True, eq=False)
class CaseResult:
    """Everything a user sees about one scored case."""

    probability: float
    risk_band: str
    tree_sd: float | None
    tree_p05: float | None
    tree_p95: float | None
    features: FeatureVector
    explanation: Explanation | None
    warnings: tuple[str, ...]
    model_name: str
    model_id: str
    notice: str
    threshold: float
    ct_sha256: str
    roi_sha256: str
    timings_s: dict[str, float] = field(default_factory=dict)
    case: PreparedCase | None = None
    uncertainty_kind: str = "spread of the forest's trees (not a calibrated interval)"
    domain: DomainVerdict = field(default_factory=unknown_verdict)
    findings: Findings | None = None
    model_signature: SignatureCheck = SignatureCheck("unsigned")
    roi_source: dict[str, Any] | None = None  # None: a mask given; else Segmentation.provenance() of the click

    @property
    def model_signer(self) -> str:
        """Who signed the model (or "unsigned model …"); shown next to the model's name."""
        return self.model_signature.label

    def to_dict(self, *, top_k: int = 15) -> dict[str, Any]:
        """JSON-safe summary (no file names, no identifiers: hashes only)."""
        return {
            "probability": self.probability,
            "risk_band": self.risk_band,
            "above_threshold": self.probability >= self.threshold,
            "threshold": self.threshold,
            "uncertainty": {
                "kind": self.uncertainty_kind,
                "tree_sd": self.tree_sd, "tree_p05": self.tree_p05, "tree_p95": self.tree_p95,
            },
            "domain": self.domain.to_dict(),
            "findings": self.findings.to_dict() if self.findings is not None else None,
            "explanation": self.explanation.to_dict(top_k) if self.explanation is not None else None,
            "warnings": list(self.warnings),
            "model": {"name": self.model_name, "id": self.model_id, "signature": self.model_signature.to_dict()},
            "notice": self.notice,
            "inputs": {"ct_sha256": self.ct_sha256, "roi_sha256": self.roi_sha256},
            "roi_source": self.roi_source if self.roi_source is not None else {"kind": "mask provided"},
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }


def _forest_of(estimator: Any) -> Any:
    """The tree ensemble inside a bundle's estimator (a DeployedForest or a bare forest)."""
    return getattr(estimator, "forest", estimator)


def _recalibrate(estimator: Any, p: np.ndarray) -> np.ndarray:
    transform = getattr(estimator, "transform_probability", None)
    return transform(p) if transform is not None else p


def _per_tree(forest: Any, X: np.ndarray) -> np.ndarray | None:
    """P(class 1) of each tree of a fitted forest for one case (``tree_.predict`` directly:
    ≈10× cheaper than one ``predict_proba`` per tree), or None if it is not a tree ensemble."""
    if hasattr(forest, "tree_proba"):  # models.tree_arrays.ArrayForest
        return forest.tree_proba(X)[:, 0, forest.positive_index()]
    trees = getattr(forest, "estimators_", None)
    if not trees or not hasattr(trees[0], "tree_"):
        return None
    positive = int(np.flatnonzero(forest.classes_ == 1)[0]) if 1 in forest.classes_ else -1
    X32 = np.asarray(X, dtype=np.float32)
    values = np.array([np.asarray(t.tree_.predict(X32)).reshape(-1)[-len(forest.classes_):] for t in trees])
    return values[:, positive] / values.sum(axis=1)


def _tree_probabilities(estimator: Any, X: np.ndarray) -> np.ndarray | None:
    """Raw (un-recalibrated) P(VPI) of each tree of the forest for one case, or None; the
    forest's own probability is the mean of these values."""
    return _per_tree(_forest_of(estimator), X)


LATE_SPREAD_RESAMPLES = 200


def _late_fusion_spread(model: Any, X: np.ndarray, *, resamples: int = LATE_SPREAD_RESAMPLES,
                        seed: int = 0) -> np.ndarray:
    """Raw stacked probabilities when each group forest's trees are resampled with replacement
    (``resamples`` draws, fixed seed): how much the stacked result depends on the particular
    trees grown. Like the early-fusion tree spread, a disagreement figure, not a calibrated
    interval."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=float)
    group_means = []
    for forest, cols in zip(model.group_forests, model.group_columns):
        trees = _per_tree(forest, X[:, cols])
        draws = rng.integers(0, len(trees), size=(resamples, len(trees)))
        group_means.append(trees[draws].mean(axis=1))
    return model.stack(np.column_stack(group_means))


def model_probability(estimator: Any, X: np.ndarray, *, spread: bool = True) -> tuple[float, np.ndarray | None]:
    """P(VPI) of one case from its feature vector, and the spread shown with it.

    The one place a probability is computed from features: :meth:`Scorer.score_prepared` after
    extracting them from the images, and evaluation from a feature table
    (:mod:`pipeline.training.external`) on the columns a table stores.

    Args:
        estimator: a bundle's estimator (forest, recalibrated forest, or late-fusion stack, as
            scikit-learn objects or tree arrays).
        X: (1, n_features) float64, the bundle's ``feature_names`` in order.
        spread: also return the per-tree probabilities (early fusion) or the stacked probabilities
            over resampled trees (late fusion), on the probability scale; ``False`` skips the
            late-fusion resampling (the probability is the same either way).

    Returns:
        (probability, spread values or None when not asked for or not a tree ensemble).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != 1:
        raise ValueError(f"expected one case's feature vector of shape (1, n_features), got {X.shape}")
    if hasattr(estimator, "group_forests"):  # DeployedLateFusion or its array form
        probability = float(estimator.predict_proba(X)[0, 1])
        return probability, estimator.transform_probability(_late_fusion_spread(estimator, X)) if spread else None
    raw_trees = _tree_probabilities(estimator, X)
    if raw_trees is None:
        return float(estimator.predict_proba(X)[0, 1]), None
    probability = float(_recalibrate(estimator, np.array([raw_trees.mean()]))[0])
    return probability, _recalibrate(estimator, raw_trees) if spread else None


class Scorer:
    """A loaded model ready to score cases (build once per process/worker).

    Args:
        bundle: a verified :class:`ModelBundle` or its folder (default: ``weights/demo`` or
            ``$PLEURA_BUNDLE``).
        num_threads: torch threads for the CNN (default: ``$PLEURA_THREADS`` or torch's default).
        explain: compute SHAP values for each case.
        allow_unsigned: load a bundle that is not signed by a trusted key (see
            :func:`~pipeline.bundle.check_bundle`; ``None`` reads ``$PLEURA_ALLOW_UNSIGNED``).
    """

    def __init__(self, bundle: ModelBundle | str | os.PathLike[str] | None = None, *, num_threads: int | None = None,
                 explain: bool = True, allow_unsigned: bool | None = None) -> None:
        owned = not isinstance(bundle, ModelBundle)  # loaded here: nobody else holds its backbone
        self.bundle = bundle if not owned else load_bundle(bundle, allow_unsigned=allow_unsigned)
        if num_threads is None:
            num_threads = settings().threads
        self.extractors = FeatureExtractors(config=self.bundle.config, backbone=self.bundle.backbone,
                                            feature_names=self.bundle.feature_names, num_threads=num_threads,
                                            backbone_owned=owned)
        estimator = self.bundle.estimator
        self.late_fusion = hasattr(estimator, "group_forests")  # DeployedLateFusion or its array form
        if not explain:
            self.explainer = None
        elif self.late_fusion:
            self.explainer = [TreeExplainer(f) for f in estimator.group_forests]
        else:
            forest = _forest_of(estimator)
            self.explainer = TreeExplainer(forest) if hasattr(forest, "estimators_") or hasattr(forest, "shap_model") else None
        try:
            self.domain = load_domain(self.bundle.path, self.bundle.manifest)
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"model bundle {self.bundle.path.name!r}: domain.json is invalid ({exc})") from None
        # One case at a time through features → score → SHAP (PyRadiomics and the explainers are
        # not made for concurrent calls); reading and checking the next case's images need no lock,
        # so a second thread can read one case while another is computed (``pleura batch``, the app).
        self._compute_lock = threading.Lock()

    @_names_failing_step
    def score(self, ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str], clinical: ClinicalValues, *,
              label: int | None = None, progress: ProgressFn | None = None, keep_case: bool = False,
              hash_inputs: bool = True, series: str | None = None,
              allow_resample: bool = False) -> CaseResult:
        """Read, validate, extract, score and explain one case.

        Raises:
            InputError subclasses for anything wrong with the inputs (nothing is half-computed).
        """
        say = progress or (lambda _step: None)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        say("reading and checking the images")
        case = load_case(ct_path, roi_path, config=self.bundle.config, label=label, keep_full=keep_case,
                         hash_inputs=hash_inputs, series=series, allow_resample=allow_resample,
                         runtime=self.bundle.runtime)
        timings["read_validate_crop"] = time.perf_counter() - t0
        return self.score_prepared(case, clinical, progress=say, timings=timings, keep_case=keep_case)

    @_names_failing_step
    def score_prepared(self, case: PreparedCase, clinical: ClinicalValues, *, progress: ProgressFn | None = None,
                       timings: dict[str, float] | None = None, keep_case: bool = False) -> CaseResult:
        with self._compute_lock:
            return self._score_prepared(case, clinical, say=progress or (lambda _step: None),
                                        timings=dict(timings or {}), keep_case=keep_case)

    def _score_prepared(self, case: PreparedCase, clinical: ClinicalValues, *, say: ProgressFn,
                        timings: dict[str, float], keep_case: bool) -> CaseResult:
        t = time.perf_counter()
        vector = self.extractors.extract(case, clinical, progress=say)
        timings.update({f"features_{k}": v for k, v in vector.timings_s.items()})
        timings["features"] = time.perf_counter() - t
        say("scoring")
        t = time.perf_counter()
        X = vector.values.reshape(1, -1)
        estimator = self.bundle.estimator
        probability, trees = model_probability(estimator, X)
        timings["score"] = time.perf_counter() - t
        explanation = None
        if self.explainer is not None:
            say("explaining (SHAP)")
            t = time.perf_counter()
            if self.late_fusion:
                explanation = explain_late_fusion(self.explainer, estimator, X, vector.names)
            else:
                explanation = explain_case(self.explainer, X, vector.names)
            explanation = explanation.on_probability_scale(probability, float(_recalibrate(
                estimator, np.array([explanation.base_value]))[0]))
            timings["explain"] = time.perf_counter() - t
        say("measuring the findings and checking the applicability domain")
        findings, domain = self.assess(case, vector)
        return CaseResult(
            probability=probability,
            risk_band=risk_band(probability, self.bundle.threshold),
            tree_sd=float(trees.std()) if trees is not None else None,
            tree_p05=float(np.percentile(trees, 5)) if trees is not None else None,
            tree_p95=float(np.percentile(trees, 95)) if trees is not None else None,
            features=vector,
            explanation=explanation,
            warnings=case.warnings,
            model_name=self.bundle.name,
            model_id=self.bundle.bundle_id,
            notice=self.bundle.notice,
            threshold=self.bundle.threshold,
            ct_sha256=case.ct_sha256,
            roi_sha256=case.roi_sha256,
            timings_s=timings,
            case=case if keep_case else None,
            model_signature=self.bundle.signature,
            domain=domain,
            findings=findings,
            **({"uncertainty_kind": "spread of the stacked probability over resampled trees of each group's forest "
                                    "(not a calibrated interval)"} if self.late_fusion else {}),
        )

    def assess(self, case: PreparedCase, vector: FeatureVector) -> tuple[Findings, DomainVerdict]:
        """The case's findings (mm, mL, fraction) and its applicability-domain verdict.

        The findings come from the pleura/tumour features; a model that does not use them all has
        them measured here (about 0.1–0.3 s)."""
        values = vector.as_dict()
        if not all(n in values for n in FINDING_SOURCES):
            from pipeline.features.pleura import pleura_features

            values = {**pleura_features(case.ct_crop, case.roi_crop, config=self.bundle.config.pleura), **values}
        findings = Findings.from_features(values, max_distance_mm=self.bundle.config.pleura.max_distance_mm)
        if self.domain is None:
            return findings, unknown_verdict()
        descriptors = case_descriptors(ct_crop=case.ct_crop.array, spacing_xyz=case.ct_spacing_xyz,
                                       longest_diameter_mm=findings.longest_diameter_mm, volume_ml=findings.volume_ml)
        return findings, self.domain.verdict(values, descriptors)
