"""Scoring one case: probability, uncertainty, SHAP that adds up, notice, no file names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.inputs.clinical import parse_clinical
from pipeline.core.errors import ClinicalValueError, SwappedInputsError
from pipeline.serving.score import Scorer, risk_band


@pytest.fixture(scope="module")
def scorer(tiny_bundle: Path) -> Scorer:
    return Scorer(tiny_bundle, num_threads=2)


@pytest.fixture(scope="module")
def first_case(phantom_cohort: Path) -> dict:
    with phantom_cohort.open() as fh:
        row = next(csv.DictReader(fh))
    row["ct"] = str(phantom_cohort.parent / row["ct_path"])
    row["roi"] = str(phantom_cohort.parent / row["roi_path"])
    return row


def test_probability_explanation_and_notice(scorer: Scorer, first_case: dict):
    clinical = parse_clinical(cea=first_case["CEA"], ca125=first_case["CA125"], age=first_case["age"])
    steps: list[str] = []
    result = scorer.score(first_case["ct"], first_case["roi"], clinical, progress=steps.append)
    assert 0.0 <= result.probability <= 1.0
    assert result.risk_band == risk_band(result.probability, result.threshold)
    assert result.tree_p05 <= result.probability <= result.tree_p95
    e = result.explanation
    assert e.base_value + e.values.sum() == pytest.approx(result.probability, abs=1e-6)
    assert set(e.group_totals()) == {"deep", "radiomics", "pleura", "clinical"}
    assert result.notice == "Research use only; demo model trained on synthetic data."
    assert steps[0].startswith("reading") and any("radiomics" in s for s in steps)
    assert any(s.startswith("explaining") for s in steps)
    assert steps[-1] == "measuring the findings and checking the applicability domain"
    payload = json.dumps(result.to_dict())
    assert "case_0" not in payload and ".nii" not in payload  # hashes only, no file names
    assert result.to_dict()["inputs"]["ct_sha256"] == result.ct_sha256


def test_scoring_is_deterministic(scorer: Scorer, first_case: dict):
    clinical = parse_clinical(cea=3, ca125=12, age=60)
    a = scorer.score(first_case["ct"], first_case["roi"], clinical)
    b = scorer.score(first_case["ct"], first_case["roi"], clinical)
    assert a.probability == b.probability
    assert np.array_equal(a.features.values, b.features.values)


def test_bad_inputs_raise_input_errors(scorer: Scorer, first_case: dict):
    clinical = parse_clinical(cea=3, ca125=12, age=60)
    with pytest.raises(SwappedInputsError, match="were the CT and the ROI mask swapped"):
        scorer.score(first_case["ct"], first_case["ct"], clinical)  # CT given as mask
    with pytest.raises(ClinicalValueError, match="CA125"):
        parse_clinical(cea=3, ca125="lots", age=60)


@pytest.mark.parametrize("p,band", [(0.1, "low"), (0.3, "intermediate"), (0.5, "high"), (1.0, "high")])
def test_risk_bands(p, band):
    assert risk_band(p) == band


def test_an_unexpected_failure_names_the_step_it_happened_in(scorer: Scorer, first_case: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """MONAI-style: a bug deep inside a step surfaces as 'while computing the pleura features:
    ValueError: …', not a bare ValueError; user errors are not wrapped."""
    from pipeline.core.errors import StepError
    from pipeline.features.groups import PleuraGroup

    def broken(self, case, clinical):  # noqa: ANN001
        raise ValueError("boom")

    monkeypatch.setattr(PleuraGroup, "compute", broken)
    steps: list[str] = []
    with pytest.raises(StepError, match=r"^while computing the pleura features: ValueError: boom$") as info:
        scorer.score(first_case["ct"], first_case["roi"], parse_clinical(cea="4", ca125="18", age="66"),
                     progress=steps.append)
    assert isinstance(info.value.__cause__, ValueError) and steps[0] == "reading and checking the images"
