"""Applicability domain: fitted from training features, a verdict with reasons on every result,
"unknown" for bundles saved without one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.serving.domain import DOMAIN_FILE, DomainModel, domain_files, fit_domain, image_noise_hu


_MIX = np.random.default_rng(0).normal(size=(3, 12))  # one "domain": a fixed latent structure


def _training(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) @ _MIX + 0.3 * rng.normal(size=(n, 12))
    feats = pd.DataFrame(X, columns=[f"f{i}" for i in range(12)])
    desc = pd.DataFrame({"tumour_diameter_mm": rng.uniform(12, 35, n), "image_noise_hu": rng.uniform(8, 25, n)})
    return feats, desc


def test_in_domain_cases_pass_and_the_false_alarm_rate_is_small():
    feats, desc = _training(400, 0)
    model = DomainModel.from_dict(json.loads(json.dumps(fit_domain(feats, desc, source="test"))))  # JSON round trip
    held_f, held_d = _training(500, 99)  # new cases from the same domain
    verdicts = [model.verdict(dict(zip(held_f.columns, f)), dict(zip(held_d.columns, d)))
                for f, d in zip(held_f.to_numpy(), held_d.to_numpy())]
    false_alarms = np.mean([v.status == "out" for v in verdicts])
    assert false_alarms <= 0.05, false_alarms


def test_out_of_domain_reasons_name_the_value_and_the_training_range():
    feats, desc = _training(300, 0)
    model = DomainModel.from_dict(fit_domain(feats, desc, source="test"))
    typical = dict(zip(feats.columns, feats.median().to_numpy()))
    verdict = model.verdict(typical, {"tumour_diameter_mm": 95.0, "image_noise_hu": 15.0})
    lo, hi = model.descriptor_range("tumour_diameter_mm")
    assert verdict.status == "out"
    assert verdict.reasons == (f"tumour diameter 95 mm, trained on {lo:.0f}–{hi:.0f} mm",)
    assert verdict.notice.startswith("outside the model's experience: tumour diameter 95 mm")
    assert verdict.to_dict() == {"status": "out", "reasons": list(verdict.reasons)}
    # features far outside their training ranges: counted and named, and the multivariate check fires
    wild = {k: v + 50.0 for k, v in typical.items()}
    wild_verdict = model.verdict(wild, {"tumour_diameter_mm": 20.0, "image_noise_hu": 15.0})
    assert any("12 of the model's 12 features outside their training range (f0, f1, f2 …)" == r
               for r in wild_verdict.reasons), wild_verdict.reasons
    assert any("unlike the training cases" in r for r in wild_verdict.reasons)
    # a missing descriptor (e.g. no lung to measure the noise in) is not held against the case
    assert model.verdict(typical, {"tumour_diameter_mm": 20.0, "image_noise_hu": None}).status == "in"


def test_domain_files_need_enough_training_cases():
    feats, desc = _training(30, 3)
    table = pd.concat([feats, desc.rename(columns={"tumour_diameter_mm": "tumour_diameter_mm"})], axis=1)
    table["status"], table["label"] = "ok", 1
    files = domain_files(table, list(feats.columns), source="test")
    data = json.loads(files[DOMAIN_FILE])
    assert data["n_cases"] == 30 and set(data["descriptors"]) == {"tumour_diameter_mm", "image_noise_hu"}
    assert domain_files(table.head(19), list(feats.columns), source="test") == {}


def test_image_noise_is_measured_in_aerated_lung():
    rng = np.random.default_rng(0)
    lung = (-850 + 20 * rng.normal(size=(10, 60, 60))).astype(np.int16)
    assert image_noise_hu(lung) == pytest.approx(20, rel=0.1)
    assert image_noise_hu(np.full((10, 60, 60), 40, np.int16)) is None  # no lung in view


def test_a_bundle_without_domain_data_says_unknown(tiny_bundle, phantom_cohort):
    """The tiny test bundle has 16 training cases, too few for a domain: like an old bundle."""
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.batch import RESULT_COLUMNS, score_one
    from pipeline.inputs.cohort import CaseInput
    from pipeline.serving.score import Scorer

    assert not (tiny_bundle / DOMAIN_FILE).exists()
    folder = phantom_cohort.parent
    scorer = Scorer(tiny_bundle, explain=False)
    clinical = parse_clinical(cea="3.1", ca125="12", age="61")
    result = scorer.score(folder / "case_0000_ct.nii.gz", folder / "case_0000_roi.nii.gz", clinical)
    data = result.to_dict()
    assert data["domain"]["status"] == "unknown" and "no domain.json" in data["domain"]["reasons"][0]
    findings = data["findings"]
    assert set(findings) == {"longest_diameter_mm", "volume_ml", "solid_fraction", "distance_to_pleura_mm",
                             "distance_to_pleura_is_lower_bound", "pleural_contact_length_mm"}
    assert 20 <= findings["longest_diameter_mm"] <= 60 and findings["volume_ml"] > 1
    row = score_one(CaseInput(case_id="c0", ct_path=str(folder / "case_0000_ct.nii.gz"),
                              roi_path=str(folder / "case_0000_roi.nii.gz"), clinical=clinical), None, scorer)
    assert {"domain", "domain_reasons", "finding_longest_diameter_mm", "finding_volume_ml"} <= set(RESULT_COLUMNS)
    assert row["domain"] == "unknown" and row["finding_longest_diameter_mm"] == findings["longest_diameter_mm"]
