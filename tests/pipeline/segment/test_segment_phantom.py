"""Click-to-segment on rendered phantoms: a tumour touching the chest wall is outlined without the
chest wall, and every bad click gets one sentence saying what was clicked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.errors import SeedError
from pipeline.segment import SegmentParams, segment_from_seed
from pipeline.synth import TISSUE_LABELS, PhantomSpec, TumourSpec, make_phantom


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def juxta():
    """A 25 mm solid tumour touching the costal pleura (medium phantom, 1.4 mm pixels)."""
    return make_phantom(PhantomSpec.for_size("medium", tumour=TumourSpec(diameter_mm=25.0, distance_to_pleura_mm=0.0),
                                             seed=7))


def click_on(ph, tissue: str) -> tuple[float, float, float]:
    idx = np.argwhere(ph.tissue.array == TISSUE_LABELS[tissue])
    return tuple(float(v) for v in ph.ct.index_to_physical(idx[len(idx) // 2].astype(float)))


def test_juxta_pleural_tumour_is_outlined_without_the_chest_wall(juxta):
    seg = segment_from_seed(juxta.ct, seed_xyz_mm=juxta.truth.tumour_centre_xyz_mm)
    assert juxta.truth.pleural_contact
    assert dice(seg.mask.array, juxta.roi.array) > 0.8
    tissue = juxta.tissue.array[seg.mask.array > 0]
    assert np.isin(tissue, [TISSUE_LABELS["bone"], TISSUE_LABELS["fat"]]).sum() == 0
    assert seg.mask.array.dtype == np.uint8 and seg.mask.shape_zyx == juxta.ct.shape_zyx
    assert seg.mask.spacing_xyz == juxta.ct.spacing_xyz and seg.mask.origin_xyz == juxta.ct.origin_xyz
    assert not seg.capped and seg.warnings == ()
    assert seg.volume_ml == pytest.approx(juxta.truth.roi_volume_mm3 / 1000, rel=0.2)
    prov = json.loads(json.dumps(seg.provenance()))
    assert prov["kind"] == "semi-automatic" and prov["method"] == seg.method
    assert prov["seed_xyz_mm"] == pytest.approx(list(juxta.truth.tumour_centre_xyz_mm), abs=0.01)


def test_sensitivity_and_adjustments_change_the_roi_as_named(juxta):
    centre = juxta.truth.tumour_centre_xyz_mm
    base = segment_from_seed(juxta.ct, seed_xyz_mm=centre).mask.array.sum()
    grown = segment_from_seed(juxta.ct, seed_xyz_mm=centre, params=SegmentParams(adjust_mm=2.0)).mask.array.sum()
    shrunk = segment_from_seed(juxta.ct, seed_xyz_mm=centre, params=SegmentParams(adjust_mm=-2.0)).mask.array.sum()
    assert shrunk < base < grown
    # a remove-click beside the centre takes away the part of the tumour nearer to it
    removed = segment_from_seed(juxta.ct, seed_xyz_mm=centre, params=SegmentParams(
        remove_seeds_xyz_mm=((centre[0], centre[1], centre[2] + 8.0),))).mask.array.sum()
    assert removed < 0.8 * base


@pytest.mark.parametrize("tissue, words", [
    ("air", "outside the body"),
    ("lung", "aerated lung"),
    ("bone", "on bone"),
    ("fat", "on fat"),
    ("vessel", "probably a vessel"),
    ("soft_tissue", "outside the lungs"),
])
def test_bad_clicks_get_one_sentence_naming_what_was_clicked(juxta, tissue, words):
    with pytest.raises(SeedError) as err:
        segment_from_seed(juxta.ct, seed_xyz_mm=click_on(juxta, tissue))
    message = str(err.value)
    assert words in message and "\n" not in message and message.startswith("the click")


def test_click_outside_the_ct(juxta):
    with pytest.raises(SeedError, match=r"lies outside the CT, which spans x"):
        segment_from_seed(juxta.ct, seed_xyz_mm=(5000.0, 0.0, 0.0))


def test_ct_without_lung(juxta):
    solid = juxta.ct.array.copy()
    solid[np.isin(juxta.tissue.array, [TISSUE_LABELS["lung"], TISSUE_LABELS["vessel"], TISSUE_LABELS["airway"]])] = 40
    with pytest.raises(SeedError, match="no aerated lung near the click"):
        segment_from_seed(juxta.ct.with_array(solid), seed_xyz_mm=juxta.truth.tumour_centre_xyz_mm)


def test_growth_cap_is_flagged_and_said(juxta):
    seg = segment_from_seed(juxta.ct, seed_xyz_mm=juxta.truth.tumour_centre_xyz_mm,
                            params=SegmentParams(max_diameter_mm=20.0))
    assert seg.capped and seg.provenance()["capped"] is True
    assert any("growth cap of 20 mm" in w for w in seg.warnings)
