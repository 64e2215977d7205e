"""The demo bundle's CNN run by ONNX Runtime (backbone.onnx) gives torch's features (1e-5) and the
same probabilities (1e-6) on phantoms; bundles without the ONNX file still score with torch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.medicalnet import DeepFeatureExtractor, load_backbone_safetensors, seeded_backbone
from models.onnx_backbone import OnnxBackbone, export_backbone_onnx
from pipeline.core.errors import BundleError
from pipeline.inputs.clinical import ClinicalValues
from pipeline.serving.bundle import BACKBONE_FILE, BACKBONE_ONNX_FILE, load_bundle
from pipeline.serving.score import Scorer

DEMO = Path(__file__).resolve().parents[2] / "weights" / "demo"


def test_demo_onnx_scores_as_torch(tmp_path: Path) -> None:
    from pipeline.synth import write_cohort

    bundle = load_bundle(DEMO)
    assert isinstance(bundle.backbone, OnnxBackbone), "the demo bundle scores with its ONNX backbone"
    torch_bundle = dataclasses.replace(bundle, backbone=load_backbone_safetensors(DEMO / BACKBONE_FILE))
    onnx_scorer, torch_scorer = Scorer(bundle), Scorer(torch_bundle)
    cohort = write_cohort(tmp_path, n=2, seed=4242, size="medium")
    for r in pd.read_csv(cohort).itertuples():
        clinical = ClinicalValues(cea_ng_ml=float(r.CEA), ca125_u_ml=float(r.CA125), age_years=float(r.age))
        a = onnx_scorer.score(tmp_path / r.ct_path, tmp_path / r.roi_path, clinical)
        b = torch_scorer.score(tmp_path / r.ct_path, tmp_path / r.roi_path, clinical)
        assert abs(a.probability - b.probability) <= 1e-6
        deep = [i for i, n in enumerate(a.features.names) if n.startswith("dl_")]
        np.testing.assert_allclose(a.features.values[deep], b.features.values[deep], rtol=0, atol=1e-5)


def test_export_matches_torch_and_refuses_other_files(tmp_path: Path) -> None:
    model = seeded_backbone(3)
    export_backbone_onnx(model, tmp_path / BACKBONE_ONNX_FILE)
    cubes = np.random.default_rng(0).uniform(size=(2, 24, 24, 24))
    ours = OnnxBackbone(tmp_path / BACKBONE_ONNX_FILE).encoder(num_threads=1).encode_batch(cubes)
    np.testing.assert_allclose(ours, DeepFeatureExtractor(model=model).encode_batch(cubes), rtol=0, atol=1e-5)
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(BundleError, match="could not be loaded by ONNX Runtime"):
        OnnxBackbone(tmp_path / "junk.onnx").encoder()


def test_onnx_runtime_telemetry_stays_off(tmp_path: Path) -> None:
    """ONNX Runtime (≥ 1.29) writes a telemetry device id under ~/.cache and tries HTTPS uploads
    unless told not to: loading and running the backbone leaves nothing in a fresh home folder."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    code = ("import numpy as np; from models.onnx_backbone import OnnxBackbone; import os\n"
            f"enc = OnnxBackbone({str(DEMO / BACKBONE_ONNX_FILE)!r}).encoder(num_threads=1)\n"
            "print(os.environ['ORT_DISABLE_TELEMETRY'])")
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               PYTHONPATH=os.pathsep.join([str(DEMO.parents[1]), env.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1" and "telemetry" not in r.stderr.lower(), r.stderr
    assert not any(home.rglob("*")), sorted(str(p.relative_to(home)) for p in home.rglob("*"))
