"""The minimal model (``pleura fit``): a plain random forest on every feature of a feature table,
written as a bundle; and the backbone check every bundle built from a feature table needs.

Input is a parquet table from :func:`pipeline.training.dataset.extract_cohort_features` (one row
per case, label 0/1 with 1 = VPI present); output is a bundle folder
(:func:`pipeline.serving.bundle.write_bundle`). For the PSO-tuned, nested-CV validated model see
:func:`pipeline.training.build.train_bundle`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

__all__ = ["FitSummary", "backbone_for_table", "fit_bundle"]


def backbone_for_table(meta: Mapping[str, Any], feature_names: Sequence[str]) -> tuple[Optional[Any], str]:
    """The deep-feature backbone a bundle needs, checked against the one the table was extracted with.

    Args:
        meta: the feature table's metadata (:func:`pipeline.training.dataset.read_table`).
        feature_names: the columns the bundle's model uses.

    Returns:
        ``(None, "")`` when no column is a deep feature (``dl_*``), else ``(backbone module,
        description of its source)``.

    Raises:
        BundleError: the backbone resolvable now differs from the table's (fingerprint mismatch).
    """
    if not any(n.startswith("dl_") for n in feature_names):
        return None, ""
    from models.backbones import backbone_fingerprint, resolve_backbone

    from pipeline.core.errors import BundleError

    model, source = resolve_backbone(meta.get("backbone_spec"))
    if meta.get("backbone_fingerprint") and backbone_fingerprint(model) != meta["backbone_fingerprint"]:
        raise BundleError("the backbone available now differs from the one the feature table was extracted with")
    return model, source


@dataclass(frozen=True)
class FitSummary:
    """What :func:`fit_bundle` wrote: the bundle folder, cases and features it was fitted on."""

    path: Path
    n_cases: int
    n_features: int


def fit_bundle(*, features: str | os.PathLike[str], out: str | os.PathLike[str], trees: int = 300, seed: int = 0,
               synthetic: bool = False) -> FitSummary:
    """Fit a plain random forest (``trees`` trees, min 2 cases per leaf, balanced classes) on every
    feature of a labelled feature table and write it as a bundle (threshold 0.5, no recalibration).

    Args:
        features: parquet feature table with labels.
        out: bundle folder to write.
        trees: number of trees (>= 1).
        seed: forest random state.
        synthetic: the table comes from synthetic phantoms (the bundle's notice says so).
    """
    from sklearn.ensemble import RandomForestClassifier

    from pipeline.core.config import PipelineConfig
    from pipeline.serving.bundle import write_bundle
    from pipeline.training.dataset import read_table, training_arrays

    table, meta = read_table(features)
    X, y = training_arrays(table)
    forest = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, class_weight="balanced",
                                    random_state=seed, n_jobs=1).fit(X.to_numpy(), y)
    backbone, source = backbone_for_table(meta, list(X.columns))
    from pipeline.serving.domain import domain_files

    domain = domain_files(table, list(X.columns), source=f"the {len(y)} training cases of this bundle (pleura fit)")
    path = write_bundle(out, estimator=forest, feature_names=list(X.columns),
                        config=PipelineConfig.from_dict(meta["config"]), backbone=backbone, backbone_source=source,
                        synthetic=synthetic, extra_files=domain,
                        training={"method": "plain random forest (pleura fit)", "n_cases": int(len(y)),
                                  "n_positive": int(y.sum()), "n_trees": trees, "seed": seed,
                                  "threshold": 0.5})
    return FitSummary(path=Path(path), n_cases=int(len(y)), n_features=int(X.shape[1]))
