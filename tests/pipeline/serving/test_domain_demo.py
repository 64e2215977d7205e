"""The demo model's applicability domain on the cases a user would try: a held-out phantom like
its training data stays "in"; a huge tumour and the real lung1 scan are "out", with reasons."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.inputs.clinical import parse_clinical
from pipeline.serving.domain import DOMAIN_FILE
from pipeline.synth import make_phantom, sample_case

DEMO = Path(__file__).resolve().parents[3] / "weights" / "demo"
CLINICAL = parse_clinical(cea="3.5", ca125="14", age="64")


@pytest.fixture(scope="module")
def scorer():
    from pipeline.serving.score import Scorer

    assert (DEMO / DOMAIN_FILE).is_file(), "the demo bundle ships its applicability domain"
    # the domain, not the signature, is under test here (re-attaching domain.json drops a stale signature)
    return Scorer(DEMO, explain=False, num_threads=1, allow_unsigned=True)


def _heldout_case(tmp: Path, index: int, *, diameter_mm: float | None = None, seed: int = 202) -> tuple[Path, Path]:
    """Case ``index`` of a medium cohort drawn as ``pleura synth --seed SEED --size medium`` does."""
    child = np.random.SeedSequence(seed).spawn(index + 1)[index]
    rng = np.random.default_rng(child)
    spec = sample_case(rng, size="medium", case_index=index).spec
    if diameter_mm is not None:
        spec = dataclasses.replace(spec, tumour=dataclasses.replace(spec.tumour, diameter_mm=diameter_mm))
    ph = make_phantom(spec)
    ct, roi = tmp / f"c{index}_ct.nii.gz", tmp / f"c{index}_roi.nii.gz"
    sitk.WriteImage(ph.ct.to_sitk(), str(ct), useCompression=True)
    sitk.WriteImage(ph.roi.to_sitk(), str(roi), useCompression=True)
    return ct, roi


def test_a_held_out_phantom_like_the_training_data_is_in_domain(scorer, tmp_path: Path):
    result = scorer.score(*_heldout_case(tmp_path, 0), CLINICAL)
    assert result.domain.status == "in", result.domain.reasons
    assert result.domain.notice == ""
    assert result.to_dict()["domain"] == {"status": "in", "reasons": []}


def test_a_huge_tumour_is_outside_the_models_experience(scorer, tmp_path: Path):
    result = scorer.score(*_heldout_case(tmp_path, 0, diameter_mm=55.0, seed=303), CLINICAL)
    assert result.domain.status == "out"
    first = result.domain.reasons[0]
    assert first.startswith("tumour diameter ") and ", trained on 1" in first and first.endswith(" mm")
    assert result.findings.longest_diameter_mm > 50
    assert result.domain.notice.startswith("outside the model's experience: tumour diameter")


def test_the_real_lung1_scan_gets_a_verdict_with_reasons(scorer, real_ct):
    ct, roi = real_ct
    result = scorer.score(ct, roi, CLINICAL)
    assert result.domain.status == "out"
    # 0.57 mm pixels: the demo model only saw 256-matrix phantoms (1.25–1.48 mm pixels)
    assert any(r.startswith("in-plane pixel spacing 0.57 mm, trained on 1.2") for r in result.domain.reasons), \
        result.domain.reasons
    assert 10 <= result.findings.longest_diameter_mm <= 30

