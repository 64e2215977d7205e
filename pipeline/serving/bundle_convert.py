"""Add the array form of a bundle's classifier (``forest.safetensors``) to a bundle that has only ``model.skops``.

Scoring then loads the trees as plain arrays, without importing scikit-learn or skops (about
2–3 s less start-up per process). ``model.skops`` stays in the bundle (training tools and the
equality check read it). The conversion is checked before anything is written: the array form
must give the skops model's probabilities to 1e-12 on probe cases drawn from the trees' own
split thresholds. The manifest gains the new file's sha256, so the bundle id changes and an
existing signature no longer matches: it is removed, and the bundle must be signed again
(``pleura sign``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipeline.core.errors import BundleError
from pipeline.core.hashing import file_sha256
from pipeline.serving.bundle import FOREST_FILE, MANIFEST, check_bundle, load_skops_model, write_forest_arrays
from pipeline.serving.signing import SIGNATURE_FILE

PROBE_CASES = 512
"""Cases the conversion is checked on (features drawn around the trees' thresholds)."""


def probe_features(model: object, n_features: int, *, n: int = PROBE_CASES, seed: int = 0) -> np.ndarray:
    """(n, n_features) feature vectors that walk many different paths through ``model``'s trees:
    each feature is drawn from its split thresholds (± a small jitter), so both sides of most
    splits are taken. ``model`` is an array model (:mod:`models.tree_arrays`)."""
    rng = np.random.default_rng(seed)
    forests = getattr(model, "group_forests", None) or [model.forest]
    columns = getattr(model, "group_columns", None) or [list(range(n_features))]
    X = rng.normal(size=(n, n_features))
    for forest, cols in zip(forests, columns):
        inner = forest.children_left >= 0
        for local, col in enumerate(cols):
            t = forest.threshold[inner & (forest.feature == local)]
            if t.size:
                X[:, col] = rng.choice(t, size=n) + rng.normal(scale=1e-3 * (np.ptp(t) + 1.0), size=n)
    return X


def convert_bundle(path: str | os.PathLike[str]) -> bool:
    """Write ``forest.safetensors`` into a bundle that lacks it; True if written, False if it was there.

    Raises:
        BundleError: the bundle fails its checks (hashes, a bad signature), its classifier is not
            a tree ensemble the array form can hold, or the array form does not reproduce it.
    """
    from models.tree_arrays import load_model_arrays

    root = Path(path)
    manifest, _bundle_id, _signature = check_bundle(root, allow_unsigned=True)
    if FOREST_FILE in manifest["files"]:
        return False
    estimator = load_skops_model(root)
    tmp = root / (FOREST_FILE + ".tmp")
    try:
        if not write_forest_arrays(estimator, tmp):
            raise BundleError(f"model bundle {root.name!r}: its classifier cannot be stored as tree arrays")
        arrays = load_model_arrays(tmp)
        X = probe_features(arrays, len(manifest["feature_names"]))
        gap = float(np.abs(arrays.predict_proba(X) - estimator.predict_proba(X)).max())
        if not gap <= 1e-12:
            raise BundleError(f"model bundle {root.name!r}: the tree arrays differ from model.skops by {gap:.3g}")
        os.replace(tmp, root / FOREST_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    manifest["files"][FOREST_FILE] = file_sha256(root / FOREST_FILE)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    text = json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n"
    (root / SIGNATURE_FILE).unlink(missing_ok=True)  # it signed the old manifest
    (root / (MANIFEST + ".tmp")).write_text(text, encoding="utf-8")
    os.chmod(root / (MANIFEST + ".tmp"), 0o644)
    os.chmod(root / FOREST_FILE, 0o644)
    os.replace(root / (MANIFEST + ".tmp"), root / MANIFEST)
    return True
