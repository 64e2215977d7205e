"""Model bundles: every file verified by sha256 before use; nothing untrusted is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from signing_helpers import sign_for_tests

from pipeline.serving.bundle import (BACKBONE_FILE, BACKBONE_ONNX_FILE, FOREST_FILE, MANIFEST, MODEL_FILE, load_bundle,
                                     verify_bundle)
from pipeline.core.errors import BundleError


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    return dst


def test_loads_and_declares_its_settings(tiny_bundle: Path):
    b = load_bundle(tiny_bundle)
    assert len(b.bundle_id) == 64
    assert b.synthetic and "synthetic" in b.notice
    assert b.manifest["config"]["radiomics"]["params_yaml"].startswith("# PyRadiomics parameter file")
    assert b.feature_names[0] == "dl_000" and b.feature_names[-1] == "age_years"
    assert b.backbone is not None
    assert set(b.manifest["files"]) == {MODEL_FILE, FOREST_FILE, BACKBONE_FILE, BACKBONE_ONNX_FILE}
    assert b.manifest["package_versions"]["pyradiomics"] == "3.0.1"


@pytest.mark.parametrize("name", [MODEL_FILE, BACKBONE_FILE, FOREST_FILE, BACKBONE_ONNX_FILE])
def test_a_flipped_byte_is_refused(bundle_copy: Path, name: str):
    path = bundle_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name} fails its sha256 check"):
        load_bundle(bundle_copy)


def test_missing_file_is_refused(bundle_copy: Path):
    (bundle_copy / BACKBONE_FILE).unlink()
    with pytest.raises(BundleError, match=f"missing {BACKBONE_FILE}"):
        verify_bundle(bundle_copy)


def test_missing_manifest_and_folder(bundle_copy: Path, tmp_path: Path):
    (bundle_copy / MANIFEST).unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        load_bundle(bundle_copy)
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_manifest_cannot_point_outside_the_bundle(bundle_copy: Path):
    m = json.loads((bundle_copy / MANIFEST).read_text())
    m["files"]["../../etc/passwd"] = "0" * 64
    (bundle_copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="leaves the bundle folder"):
        verify_bundle(bundle_copy)


def test_untrusted_types_in_model_file_are_never_loaded(bundle_copy: Path):
    """A model.skops holding a type outside the allow-list is refused before loading."""
    import numpy as np
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(np.exp), bundle_copy / MODEL_FILE)
    m = json.loads((bundle_copy / MANIFEST).read_text())
    from pipeline.core.hashing import file_sha256

    m["files"][MODEL_FILE] = file_sha256(bundle_copy / MODEL_FILE)
    del m["files"][FOREST_FILE]  # an older bundle, without tree arrays: model.skops is what loads
    (bundle_copy / FOREST_FILE).unlink()
    (bundle_copy / MANIFEST).write_text(json.dumps(m))
    sign_for_tests(bundle_copy)  # signed by a trusted key: the type allow-list still refuses it
    with pytest.raises(BundleError, match="does not trust: "):
        load_bundle(bundle_copy)


def test_format_version_mismatch(bundle_copy: Path):
    m = json.loads((bundle_copy / MANIFEST).read_text())
    m["format_version"] = 99
    (bundle_copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format version 99"):
        verify_bundle(bundle_copy)


def test_canonical_skops_is_deterministic_and_keeps_every_value():
    """Renumbering skops' object ids must never touch numbers such as 0.8094772473861893."""
    import numpy as np
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    from models.deploy import DeployedForest
    from pipeline.serving.bundle import canonical_skops

    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)

    def make() -> DeployedForest:
        forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
        return DeployedForest(forest=forest, calibration_intercept=-0.5978543322185458,
                              calibration_slope=0.8094772473861893)

    a, b = canonical_skops(sio.dumps(make())), canonical_skops(sio.dumps(make()))
    assert a == b
    loaded = sio.loads(a, trusted=sio.get_untrusted_types(data=a))
    assert loaded.calibration_intercept == -0.5978543322185458
    assert loaded.calibration_slope == 0.8094772473861893
    assert np.array_equal(loaded.predict_proba(X), make().predict_proba(X))
