"""Drawn cases: reproducible, scanner-independent patients, and a label model with the documented
prevalence and oracle AUC."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth import LABEL_MODEL, oracle_auc, sample_case


def test_sampled_cases_are_reproducible_and_scanner_independent():
    a = sample_case(np.random.default_rng(42), size="medium", case_index=7)
    b = sample_case(np.random.default_rng(42), size="medium", case_index=7)
    shifted = sample_case(np.random.default_rng(42), size="medium", case_index=7, scanner="thick_noisy")
    assert a == b and a.spec.case_id == "case_0007"
    assert (shifted.spec.tumour, shifted.clinical, shifted.label, shifted.p_true) == (
        a.spec.tumour,
        a.clinical,
        a.label,
        a.p_true,
    )
    assert shifted.spec.thickness_mm >= 3.0 and shifted.spec.noise_sd_hu >= 35.0
    assert 256 * a.spec.spacing_xyz[0] >= 320


@pytest.mark.parametrize("size", ["small", "clinical"])
def test_label_model_has_documented_prevalence_and_oracle_auc(size):
    rng = np.random.default_rng(2024)
    cases = [sample_case(rng, size=size, case_index=i) for i in range(2000)]
    labels = np.array([c.label for c in cases])
    p_true = np.array([c.p_true for c in cases])
    assert 0.30 <= labels.mean() <= 0.40
    assert 0.85 <= oracle_auc(p_true, labels) <= 0.90
    imaging = np.array([LABEL_MODEL.imaging_term(c.spec.tumour) for c in cases])
    clinical = np.array([LABEL_MODEL.clinical_term(c.clinical) for c in cases])
    assert oracle_auc(imaging, labels) > oracle_auc(clinical, labels) + 0.15  # the image dominates
    assert oracle_auc(clinical, labels) > 0.55  # the clinical values still carry some signal
    cea = np.array([c.clinical.cea_ng_ml for c in cases])
    ages = np.array([c.clinical.age_years for c in cases])
    assert 3.0 <= np.median(cea) <= 5.0 and np.percentile(cea, 95) > 10.0
    assert 30 <= ages.min() and ages.max() <= 90 and abs(ages.mean() - 65) < 1.5
    if size == "small":
        assert all(c.spec.tumour.diameter_mm / c.spec.spacing_xyz[0] >= 8 for c in cases)
