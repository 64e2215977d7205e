"""Rendered phantoms: plausible HU, an honest ROI and pleural gap, tags and indentation, reproducible
seeds and the same patient on any grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pipeline.synth import TISSUE_LABELS, PhantomSpec, TumourSpec, make_phantom

LUNG_SIDE = [TISSUE_LABELS[k] for k in ("lung", "vessel", "tumour", "strand")]


def small(seed: int = 3, **tumour: object) -> PhantomSpec:
    return PhantomSpec.for_size("small", tumour=TumourSpec(**tumour), seed=seed)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def contact():
    return make_phantom(small(diameter_mm=26.0, distance_to_pleura_mm=0.0))


@pytest.fixture(scope="module")
def far():
    return make_phantom(small(diameter_mm=26.0, distance_to_pleura_mm=10.0))


def gap_to_chest_wall_mm(phantom) -> tuple[float, bool]:
    """Smallest distance (mm, voxel centre to voxel centre) from the ROI to anything outside the
    lung, and whether the ROI's 26-neighbourhood reaches it."""
    roi = phantom.roi.array > 0
    wall = ~np.isin(phantom.tissue.array, LUNG_SIDE)
    edt = ndimage.distance_transform_edt(~wall, sampling=phantom.ct.spacing_zyx)
    touches = bool((ndimage.binary_dilation(roi, np.ones((3, 3, 3), bool)) & wall).any())
    return float(edt[roi].min()), touches


def test_outputs_share_one_geometry_and_have_the_promised_types(contact):
    assert contact.ct.array.dtype == np.int16 and contact.roi.array.dtype == np.uint8
    assert contact.ct.shape_zyx == contact.roi.shape_zyx == contact.tissue.shape_zyx == (64, 128, 128)
    assert contact.ct.spacing_xyz == contact.roi.spacing_xyz and contact.ct.origin_xyz == contact.roi.origin_xyz
    assert set(np.unique(contact.roi.array)) == {0, 1}
    lo, hi = contact.ct.physical_extent()
    assert 320 <= hi[0] - lo[0] <= 380  # a small matrix still covers the whole chest


def test_hounsfield_units_are_those_of_a_chest_ct(contact):
    ct, tissue = contact.ct.array.astype(float), contact.tissue.array
    assert abs(ct[tissue == TISSUE_LABELS["air"]].mean() + 1000) < 10
    assert abs(ct[tissue == TISSUE_LABELS["lung"]].mean() + 850) < 50
    assert -120 < ct[tissue == TISSUE_LABELS["fat"]].mean() < -60
    assert ct[tissue == TISSUE_LABELS["bone"]].max() > 400
    core = ndimage.binary_erosion(contact.roi.array > 0)
    assert 15 < ct[core].mean() < 60  # solid tumour (20–50 HU) seen through blur and noise


def test_part_solid_tumour_has_a_ground_glass_halo_around_a_solid_core():
    ph = make_phantom(small(diameter_mm=30.0, distance_to_pleura_mm=5.0, solid_fraction=0.4, ggo_hu=-450.0))
    ct, roi = ph.ct.array.astype(float), ph.roi.array > 0
    centre = tuple(np.round(ph.roi.physical_to_index(np.array(ph.truth.tumour_centre_xyz_mm))).astype(int))
    assert ct[centre] > -150  # solid core
    shell = roi & ~ndimage.binary_erosion(roi, iterations=2)
    assert -650 < np.median(ct[shell]) < -250  # ground glass


@pytest.mark.parametrize("diameter_mm", [24.0, 30.0])
def test_roi_has_the_requested_diameter_and_is_at_least_8_voxels_across(diameter_mm):
    ph = make_phantom(small(seed=11, diameter_mm=diameter_mm, distance_to_pleura_mm=4.0))
    voxel_mm3 = float(np.prod(ph.roi.spacing_xyz))
    equivalent = (6.0 * ph.roi.array.sum() * voxel_mm3 / np.pi) ** (1 / 3)
    assert equivalent == pytest.approx(diameter_mm, rel=0.2)
    _, ys, xs = np.nonzero(ph.roi.array)
    assert max(np.ptp(ys), np.ptp(xs)) + 1 >= 8
    assert ph.truth.roi_voxels == int(ph.roi.array.sum())


def test_contact_case_touches_the_lung_boundary(contact):
    _, touches = gap_to_chest_wall_mm(contact)
    assert touches and contact.truth.pleural_contact


def test_crossing_case_reaches_into_the_chest_wall(contact):
    crossing = make_phantom(small(diameter_mm=26.0, distance_to_pleura_mm=-3.0))  # same patient and site
    chest_wall = ~np.isin(contact.tissue.array, LUNG_SIDE) & (contact.tissue.array != TISSUE_LABELS["air"])
    assert ((crossing.roi.array > 0) & chest_wall).sum() >= 3
    assert gap_to_chest_wall_mm(crossing)[1] and crossing.truth.pleural_contact


def test_far_case_keeps_the_requested_gap(far):
    gap, touches = gap_to_chest_wall_mm(far)
    assert not touches and not far.truth.pleural_contact
    # centre-to-centre distance: the true gap plus up to about one voxel
    assert 10.0 - 1.0 <= gap <= 10.0 + 1.5 * max(far.ct.spacing_xyz)


def test_same_seed_gives_identical_arrays_and_another_seed_differs(far):
    again = make_phantom(small(diameter_mm=26.0, distance_to_pleura_mm=10.0))
    assert np.array_equal(again.ct.array, far.ct.array) and np.array_equal(again.roi.array, far.roi.array)
    assert again.truth == far.truth
    other = make_phantom(small(seed=4, diameter_mm=26.0, distance_to_pleura_mm=10.0))
    assert not np.array_equal(other.ct.array, far.ct.array)


def test_any_grid_shows_the_same_patient():
    tumour = TumourSpec(diameter_mm=22.0, distance_to_pleura_mm=2.0)
    coarse = make_phantom(PhantomSpec(shape_zyx=(40, 100, 120), spacing_xyz=(3.2, 3.4, 4.0), tumour=tumour, seed=8))
    fine = make_phantom(PhantomSpec.for_size("small", tumour=tumour, seed=8))
    assert coarse.truth.tumour_centre_xyz_mm == fine.truth.tumour_centre_xyz_mm
    centre = coarse.roi.physical_to_index(np.array(coarse.truth.tumour_centre_xyz_mm))
    assert coarse.roi.array[tuple(np.round(centre).astype(int))] == 1


def test_pleural_tags_and_indentation_change_the_lung_between_tumour_and_pleura():
    plain = make_phantom(small(seed=5, diameter_mm=26.0, distance_to_pleura_mm=12.0))
    tagged = make_phantom(
        small(seed=5, diameter_mm=26.0, distance_to_pleura_mm=12.0, pleural_tag=True, pleural_indentation=True)
    )
    assert tagged.truth.n_pleural_tags >= 1 and tagged.truth.indentation_depth_mm > 0
    lung = plain.tissue.array == TISSUE_LABELS["lung"]
    brighter = (tagged.ct.array.astype(int) - plain.ct.array) > 100
    assert (brighter & lung).sum() >= 3
    assert np.array_equal(tagged.roi.array, plain.roi.array)
