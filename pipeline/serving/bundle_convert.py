"""Add the fast-loading forms of a bundle's models to an older bundle: ``forest.safetensors`` (the
classifier's trees as arrays, next to ``model.skops``) and ``backbone.onnx`` (the CNN for ONNX
Runtime, next to ``backbone.safetensors``).

Scoring then loads the trees as plain arrays, without importing scikit-learn or skops, and runs
the CNN without importing torch (several seconds less start-up per process). ``model.skops`` stays in the bundle (training tools and the
equality check read it). The conversion is checked before anything is written: the array form
must give the skops model's probabilities to 1e-12 on probe cases drawn from the trees' own
split thresholds. The manifest gains the new file's sha256, so the bundle id changes and an
existing signature no longer matches: it is removed, and the bundle must be signed again
(``pleura sign``). The backbone conversion is checked likewise (features to 1e-5 on probe cubes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipeline.core.errors import BundleError
from pipeline.core.hashing import file_sha256
from pipeline.serving.bundle import (BACKBONE_FILE, BACKBONE_ONNX_FILE, FOREST_FILE, MANIFEST, check_bundle,
                                     load_skops_model, write_backbone_onnx, write_forest_arrays)
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


def _add_forest(root: Path, manifest: dict) -> None:
    from models.tree_arrays import load_model_arrays

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


ONNX_TOLERANCE = 1e-5
"""Largest feature difference (ONNX Runtime vs torch, on probe cubes) a conversion accepts."""


def _add_onnx(root: Path) -> None:
    from models.medicalnet import DeepFeatureExtractor, load_backbone_safetensors
    from models.onnx_backbone import OnnxBackbone

    backbone = load_backbone_safetensors(root / BACKBONE_FILE)
    tmp = root / (BACKBONE_ONNX_FILE + ".tmp")
    try:
        if not write_backbone_onnx(backbone, tmp):
            raise BundleError("exporting the backbone for ONNX Runtime needs the onnx package")
        cubes = np.random.default_rng(0).uniform(0.0, 1.0, size=(3, 64, 64, 64))
        cubes[:, :16] = 0.0  # zero voxels stay 0 in MedicalNet's normalisation
        gap = float(np.abs(OnnxBackbone(tmp).encoder().encode_batch(cubes)
                           - DeepFeatureExtractor(model=backbone).encode_batch(cubes)).max())
        if not gap <= ONNX_TOLERANCE:
            raise BundleError(f"model bundle {root.name!r}: the ONNX backbone differs from the weights by {gap:.3g}")
        os.replace(tmp, root / BACKBONE_ONNX_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def convert_bundle(path: str | os.PathLike[str], *, onnx: bool = True) -> list[str]:
    """Add ``forest.safetensors`` (and, with ``onnx``, ``backbone.onnx`` when the bundle has a
    backbone) where missing; return the files written (empty: nothing to do).

    Raises:
        BundleError: the bundle fails its checks (hashes, a bad signature), its classifier is not
            a tree ensemble the array form can hold, or a converted file does not reproduce the
            original (trees: 1e-12 on probabilities; backbone: :data:`ONNX_TOLERANCE` on features).
    """
    root = Path(path)
    manifest, _bundle_id, _signature = check_bundle(root, allow_unsigned=True)
    written = []
    if FOREST_FILE not in manifest["files"]:
        _add_forest(root, manifest)
        written.append(FOREST_FILE)
    if onnx and BACKBONE_FILE in manifest["files"] and BACKBONE_ONNX_FILE not in manifest["files"]:
        _add_onnx(root)
        written.append(BACKBONE_ONNX_FILE)
    if not written:
        return written
    for rel in written:
        manifest["files"][rel] = file_sha256(root / rel)
        os.chmod(root / rel, 0o644)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    text = json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n"
    (root / SIGNATURE_FILE).unlink(missing_ok=True)  # it signed the old manifest
    (root / (MANIFEST + ".tmp")).write_text(text, encoding="utf-8")
    os.chmod(root / (MANIFEST + ".tmp"), 0o644)
    os.replace(root / (MANIFEST + ".tmp"), root / MANIFEST)
    return written
