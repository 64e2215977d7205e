"""The whole pipeline on a real chest CT (PyRadiomics' lung1: NRRD, 512×512×48, 5 mm slices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.inputs.clinical import parse_clinical
from pipeline.serving.score import Scorer


def test_real_scan_scores_with_finite_stable_features(real_ct, tiny_bundle: Path):
    scorer = Scorer(tiny_bundle, num_threads=2)
    clinical = parse_clinical(cea=2.5, ca125=11, age=64)
    a = scorer.score(real_ct[0], real_ct[1], clinical)
    b = scorer.score(real_ct[0], real_ct[1], clinical)
    assert 0.0 <= a.probability <= 1.0
    assert np.all(np.isfinite(a.features.values))
    assert len(a.features.values) == len(scorer.bundle.feature_names)
    assert np.array_equal(a.features.values, b.features.values) and a.probability == b.probability
    assert a.warnings == ()
    pleura = {n: v for n, v in a.features.as_dict().items() if n.startswith(("pleura_", "tumour_"))}
    assert pleura["pleura_lung_found"] == 1.0
    assert 10 < pleura["tumour_diameter_mm"] < 25  # a ~15 mm nodule
