"""Phantom generation 3: the tumours users bring (8–100 mm, every density, costal contact with and
without chest-wall invasion, fissural contact), clinical scans with 0.625–5 mm slices from several
scanner profiles — and generation 2 unchanged, so earlier cohorts and bundles stay reproducible."""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib

import numpy as np
import pytest

from pipeline.synth import (
    LABEL_MODEL_3,
    SCANNER_PROFILES_3,
    TumourSpec,
    make_phantom,
    oracle_auc,
    sample_case,
    sample_case3,
    write_cohort,
)
from pipeline.synth.anatomy import lung_points
from pipeline.synth.tumour import draw_layout


@pytest.fixture(scope="module")
def drawn():
    rng = np.random.default_rng(31)
    return [sample_case3(rng, size="clinical", case_index=i) for i in range(600)]


def test_generation_2_phantoms_are_bit_for_bit_what_they_were():
    case = sample_case(np.random.default_rng(100), size="small", case_index=0)
    ph = make_phantom(case.spec)
    h = hashlib.sha256()
    for a in (ph.ct.array, ph.roi.array, ph.tissue.array):
        h.update(a.tobytes())
    # digest of the same phantom rendered before generation 3 existed
    assert h.hexdigest() == "064955093bab2c2b551eb0bfb2e8555bf5ef09477fa2883b1479246722e98115"


def test_generation_2_cohort_files_carry_no_generation_3_columns(tmp_path):
    path = write_cohort(tmp_path / "g2", n=1, seed=3, size="small")
    header = path.read_text().splitlines()[0].split(",")
    assert "sim_generation" not in header and "sim_contact_type" not in header


def test_tumour_sizes_span_t1a_to_t4_like_a_clinical_series(drawn):
    d = np.array([c.spec.tumour.diameter_mm for c in drawn])
    assert d.min() >= 8.0 and d.max() <= 100.0
    assert 20.0 <= np.median(d) <= 35.0
    t1 = np.mean(d <= 30.0)
    assert 0.45 <= t1 <= 0.75  # T1 the largest group, as in surgical series
    assert np.sum(d > 50.0) >= 20 and np.sum(d > 70.0) >= 5 and np.sum(d <= 12.0) >= 10


def test_every_density_and_contact_type_is_drawn(drawn):
    tumours = [c.spec.tumour for c in drawn]
    density = collections.Counter(
        "ggo" if t.solid_fraction == 0 else ("solid" if t.solid_fraction == 1 else "part-solid") for t in tumours)
    assert min(density.values()) >= 30 and set(density) == {"ggo", "solid", "part-solid"}
    invading = sum(t.chest_wall_invasion for t in tumours)
    abutting = sum(t.pleural_contact and not t.chest_wall_invasion for t in tumours)
    fissural = sum(t.fissure_contact and not t.pleural_contact for t in tumours)
    tags = sum(t.pleural_tag for t in tumours)
    assert invading >= 30 and abutting >= 60 and fissural >= 30 and tags >= 60


def test_label_model_prevalence_and_oracle(drawn):
    y = np.array([c.label for c in drawn])
    p = np.array([c.p_true for c in drawn])
    assert 0.25 <= y.mean() <= 0.42
    assert 0.82 <= oracle_auc(p, y) <= 0.92
    imaging = np.array([LABEL_MODEL_3.imaging_term(c.spec.tumour) for c in drawn])
    clinical = np.array([LABEL_MODEL_3.clinical_term(c.clinical) for c in drawn])
    assert oracle_auc(imaging, y) > oracle_auc(clinical, y) + 0.15


def test_clinical_scans_have_contiguous_thin_to_thick_slices_from_several_scanners(drawn):
    scanners = collections.Counter(c.spec.scanner for c in drawn)
    assert set(scanners) == set(SCANNER_PROFILES_3)
    thick = {c.spec.thickness_mm for c in drawn}
    assert min(thick) <= 0.7 and max(thick) == 5.0
    for c in drawn:
        nz, ny, nx = c.spec.shape_zyx
        assert (ny, nx) == (512, 512) and c.spec.spacing_xyz[2] >= c.spec.thickness_mm
        # contiguous slices over the chest, unless 320 thin slices cannot hold a tall tumour
        assert nz == 320 or (c.spec.spacing_xyz[2] == c.spec.thickness_mm and 250.0 <= nz * c.spec.thickness_mm)
    offsets = [c.spec.hu_offset for c in drawn]
    assert min(offsets) < -5 and max(offsets) > 5


def test_patients_do_not_depend_on_the_scanner():
    a = sample_case3(np.random.default_rng(5), size="medium", case_index=2)
    b = sample_case3(np.random.default_rng(5), size="medium", case_index=2, scanner="soft_thick")
    assert (a.spec.tumour, a.clinical, a.label, a.p_true, a.spec.seed) == (
        b.spec.tumour, b.clinical, b.label, b.p_true, b.spec.seed)
    assert b.spec.thickness_mm >= 3.0


def _phantom(diameter: float, gap: float, *, fissure_gap: float = 20.0):
    base = sample_case3(np.random.default_rng(11), size="small", case_index=0, scanner="standard_mid").spec
    stretch = 1.0 + 0.8 * max(diameter - 40.0, 0.0) / 60.0
    tumour = dataclasses.replace(base.tumour, diameter_mm=diameter, distance_to_pleura_mm=gap, pleural_tag=False,
                                 pleural_indentation=False, axes=(0.9 / stretch**0.5, 1.0, stretch),
                                 fissure_gap_mm=fissure_gap, solid_fraction=1.0)
    from pipeline.synth.placement3 import place_tumour3

    seed = base.seed
    while place_tumour3(draw_layout(seed, tumour), tumour, seed) is None:
        seed += 1
    spec = dataclasses.replace(base, tumour=tumour, seed=seed, shape_zyx=(96, 128, 128),
                               spacing_xyz=base.spacing_xyz[:2] + (2.5,), slice_thickness_mm=2.5)
    return spec, make_phantom(spec)


def _roi_points(ph) -> np.ndarray:
    idx = np.argwhere(ph.roi.array > 0)[:, ::-1]  # (x, y, z) indices
    return np.asarray(ph.roi.origin_xyz) + idx * np.asarray(ph.roi.spacing_xyz)


@pytest.mark.parametrize("diameter", [8.0, 100.0])
def test_small_and_big_tumours_have_their_volume_and_stay_in_the_lung(diameter):
    spec, ph = _phantom(diameter, 2.0)
    eq_d = 2.0 * (3.0 * ph.truth.roi_volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
    assert abs(eq_d - diameter) / diameter < 0.08
    an = draw_layout(spec.seed, spec.tumour).anatomy
    inside = lung_points(an, _roi_points(ph), margin_mm=-1.5)
    assert inside.mean() > 0.99
    if diameter == 100.0:
        assert ph.truth.longest_axis_mm > 120.0  # big tumours are elongated to fit the chest


def test_invading_tumours_cross_into_the_chest_wall_and_abutting_ones_do_not():
    for gap, contact in [(0.0, "abutting"), (-6.0, "invading")]:
        spec, ph = _phantom(40.0, gap)
        assert ph.truth.contact_type == contact
        an = draw_layout(spec.seed, spec.tumour).anatomy
        pts = _roi_points(ph)
        outside = (pts[:, 0] / an.cav_ax) ** 2 + ((pts[:, 1] - an.cav_cy) / an.cav_ay) ** 2 > 1.03
        if contact == "invading":
            assert outside.sum() >= 20  # tumour in the chest wall
        else:
            assert outside.sum() <= 3


def test_fissural_contact_is_recorded_and_a_fissure_is_drawn():
    spec, ph = _phantom(30.0, 10.0, fissure_gap=-1.0)
    assert ph.truth.contact_type == "fissural" and ph.truth.fissure_contact
    with pytest.raises(ValueError, match="fissure_gap_mm"):
        TumourSpec(fissure_gap_mm=-20.0)


def test_generation_3_cohort_writes_its_truth_columns(tmp_path):
    path = write_cohort(tmp_path / "g3", n=2, seed=4, size="small", generation=3)
    rows = list(csv.DictReader(path.open()))
    assert {r["sim_generation"] for r in rows} == {"3"}
    assert all(r["sim_contact_type"] in ("none", "abutting", "invading", "fissural") for r in rows)
    with pytest.raises(ValueError, match="generation must be one of"):
        write_cohort(tmp_path / "g4", n=1, seed=4, generation=4)
