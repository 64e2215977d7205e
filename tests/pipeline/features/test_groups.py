"""Contract tests run across every registered feature group (TorchIO style): each group gives
finite floats under names of its own group, the same values twice, and the joined vector keeps
the registry order."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from models.backbones import resolve_backbone
from pipeline.core.config import PipelineConfig
from pipeline.core.groups import feature_group
from pipeline.features.extract import FeatureExtractors
from pipeline.features.groups import GROUPS
from pipeline.inputs.case import load_case
from pipeline.inputs.clinical import ClinicalValues

CLINICAL = ClinicalValues(cea_ng_ml=4.1, ca125_u_ml=18.0, age_years=66.0)


@pytest.fixture(scope="module")
def case(phantom_cohort: Path):
    row = next(csv.DictReader(phantom_cohort.open()))
    root = phantom_cohort.parent
    return load_case(root / row["ct_path"], root / row["roi_path"], config=PipelineConfig())


@pytest.fixture(scope="module")
def backbone():
    return resolve_backbone("seed:0")[0]


@pytest.mark.parametrize("name", list(GROUPS))
def test_every_group_gives_finite_named_floats_of_its_own_group(name: str, case, backbone) -> None:
    group = GROUPS[name](config=PipelineConfig(), backbone=backbone, feature_names=None)
    first = group.compute(case, CLINICAL)
    second = group.compute(case, CLINICAL)
    assert first and list(first) == list(second)
    assert all(isinstance(v, float) and np.isfinite(v) for v in first.values())
    assert {feature_group(n) for n in first} == {name}
    assert first == second  # deterministic


def test_extractors_join_groups_in_registry_order_and_subset_exactly(case, backbone) -> None:
    full = FeatureExtractors(config=PipelineConfig(), backbone=backbone).extract(case, CLINICAL)
    order = [feature_group(n) for n in full.names]
    assert order == sorted(order, key=list(GROUPS).index)
    wanted = [full.names[i] for i in (700, 0, len(full.names) - 1, 520)]
    part = FeatureExtractors(config=PipelineConfig(), backbone=backbone, feature_names=wanted).extract(case, CLINICAL)
    assert part.names == tuple(wanted)
    np.testing.assert_array_equal(part.values, full.subset(wanted).values)
