"""Drawing generation-3 cases (no image is rendered): tumours of 8–100 mm with a clinical size
mix, solid / part-solid / ground-glass, costal contact with or without chest-wall invasion,
fissural contact, pleural tags and indentation, several scanner profiles.

Contract: :func:`sample_case3` mirrors :func:`~pipeline.synth.sampling.sample_case`: one
``numpy.random.Generator`` is its only source of randomness, patient draws come before scanner
draws (the same generator state on two scanner profiles gives the same patients and labels), and
the returned :class:`~pipeline.synth.specs.SampledCase` renders (its anatomy seed is redrawn until
:func:`~pipeline.synth.placement3.place_tumour3` fits the tumour). The distributions are listed in
:mod:`pipeline.synth`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from pipeline.synth.generation3 import LABEL_MODEL_3, SCANNER_PROFILES_3, LabelModel3
from pipeline.synth.placement3 import place_tumour3, support
from pipeline.synth.specs import (
    SIZE_PRESETS,
    ClinicalDraw,
    PhantomSpec,
    SampledCase,
    ScannerProfile,
    TumourSpec,
    check,
    check_size,
    grid_for,
)
from pipeline.synth.tumour import draw_layout

__all__ = ["sample_case3", "DIAMETER_RANGE_MM"]

DIAMETER_RANGE_MM = {"small": (20.0, 100.0), "medium": (8.0, 100.0), "clinical": (8.0, 100.0)}
"""Tumour diameters (volume-equivalent, mm) generation 3 draws on each size preset (a tumour is
at least about 7 voxels across in-plane)."""
_SIZE_MEDIAN_MM, _SIZE_LOG_SD = 27.0, 0.55


def _profile(scanner: Union[ScannerProfile, str, None], rng: np.random.Generator) -> ScannerProfile:
    from pipeline.synth.specs import SCANNER_PROFILES

    if scanner is None:
        names = sorted(SCANNER_PROFILES_3)
        return SCANNER_PROFILES_3[names[int(rng.integers(0, len(names)))]]
    if isinstance(scanner, ScannerProfile):
        return scanner
    known = {**SCANNER_PROFILES, **SCANNER_PROFILES_3}
    check(isinstance(scanner, str) and scanner in known,
          f"unknown scanner profile {scanner!r}; choose one of {sorted(known)}")
    return known[scanner]


def _grid(size: str, n_slices: Optional[int], quantile: float, coverage_u: float, thickness: float,
          profile: ScannerProfile, z_extent_mm: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Clinical 512² scans: contiguous slices (spacing = thickness) over 260–320 mm of chest
    (at most 320 slices); other presets: their fixed slice count (as generation 2). Either way the
    z coverage holds the tumour's height ``z_extent_mm`` plus 30 mm (wider slice spacing if not)."""
    need = z_extent_mm + 30.0
    if size != "clinical" or n_slices is not None:
        (nz, ny, nx), (px, py, dz) = grid_for(size, n_slices, quantile, thickness, profile)
        return (nz, ny, nx), (px, py, round(max(dz, need / (nz - 1)), 6))
    nz = int(np.clip(round(max(260.0 + 60.0 * coverage_u, need) / thickness), 48, 320))
    (_, ny, nx), (px, py, _) = grid_for(size, SIZE_PRESETS[size][0], quantile, thickness, profile)
    return (nz, ny, nx), (px, py, round(max(float(thickness), need / (nz - 1)), 6))


def sample_case3(rng: np.random.Generator, *, size: str = "clinical", case_index: int,
                 scanner: Union[ScannerProfile, str, None] = None, n_slices: Optional[int] = None,
                 label_model: LabelModel3 = LABEL_MODEL_3) -> SampledCase:
    """Draw one generation-3 case (module docstring).

    Args:
        rng: the only source of randomness (same generator state ⇒ same case).
        size: "small", "medium" or "clinical" (512², 1–5 mm slices; the default).
        case_index: case number; the spec's ``case_id`` is ``case_{index:04d}``.
        scanner: a profile, a name in ``SCANNER_PROFILES`` or ``SCANNER_PROFILES_3``, or None (one
            of ``SCANNER_PROFILES_3`` at random per case).
        n_slices: overrides the number of slices.
        label_model: coefficients of the true model.
    """
    check(isinstance(rng, np.random.Generator), "rng must be a numpy.random.Generator")
    check_size(size)
    check(isinstance(case_index, (int, np.integer)) and case_index >= 0,
          f"case_index must be an int >= 0, got {case_index!r}")
    d_lo, d_hi = DIAMETER_RANGE_MM[size]

    # --- patient (never depends on the scanner) ---
    side = "right" if rng.random() < 0.55 else "left"
    diameter = math.inf
    while not d_lo <= diameter <= d_hi:
        diameter = float(_SIZE_MEDIAN_MM * math.exp(_SIZE_LOG_SD * rng.standard_normal()))
    stretch = 1.0 + float(rng.uniform(0.0, 0.25)) + 0.8 * max(diameter - 40.0, 0.0) / 60.0
    axes = (float(rng.uniform(0.85, 1.0)) / math.sqrt(stretch), 1.0, stretch)
    u_type, ctr_part = rng.random(), float(rng.uniform(0.25, 0.9))
    p_ggo = 0.15 if diameter <= 30.0 else 0.04
    solid_fraction = 0.0 if u_type < p_ggo else (ctr_part if u_type < p_ggo + 0.30 else 1.0)
    u_contact, u_invade = rng.random(), rng.random()
    depth = float(rng.uniform(1.0, min(10.0, diameter / 3.0)))
    gap_far = float(min(0.5 + rng.exponential(6.0), 25.0))
    contact = u_contact < 0.25 + 0.30 * min(diameter / 80.0, 1.0)
    invading = contact and u_invade < 0.35 * (0.3 if solid_fraction == 0.0 else 1.0)
    distance = -depth if invading else (0.0 if contact else gap_far)
    u_fis, fis_touch, fis_far = rng.random(), -float(rng.uniform(0.0, 3.0)), float(rng.uniform(3.0, 40.0))
    fissure_gap = fis_touch if u_fis < 0.15 else fis_far
    u_tag, u_ind = rng.random(), rng.random()
    tag = distance > 1.0 and u_tag < (0.20 if distance > 15.0 else 0.45)
    indentation = tag and distance > 2.0 and u_ind < 0.5
    solid_hu, ggo_hu = float(rng.uniform(20.0, 50.0)), float(rng.uniform(-650.0, -300.0))
    lobulation = float(rng.uniform(0.05, 0.3))
    clinical = ClinicalDraw(
        cea_ng_ml=float(np.exp(rng.normal(np.log(3.8), 0.85))),
        ca125_u_ml=float(np.exp(rng.normal(np.log(14.0), 0.55))),
        age_years=float(np.clip(rng.normal(65.0, 9.0), 30.0, 90.0)),
    )
    fat_mm = float(rng.uniform(0.8, 2.0))
    tumour = TumourSpec(diameter_mm=diameter, distance_to_pleura_mm=distance, solid_fraction=solid_fraction,
                        solid_hu=solid_hu, ggo_hu=ggo_hu, pleural_tag=bool(tag), pleural_indentation=bool(indentation),
                        lobulation=lobulation, side=side, axes=axes, fissure_gap_mm=fissure_gap)
    seed = int(rng.integers(0, 2**31 - 1))
    layout = draw_layout(seed, tumour)
    while place_tumour3(layout, tumour, seed) is None:
        seed = int(rng.integers(0, 2**31 - 1))
        layout = draw_layout(seed, tumour)
    z_extent = support(layout.shape, np.array([0.0, 0.0, 1.0])) + support(layout.shape, np.array([0.0, 0.0, -1.0]))
    p_true = label_model.probability(tumour=tumour, clinical=clinical)
    label = int(rng.random() < p_true)

    # --- scanner ---
    profile = _profile(scanner, rng)
    quantile, coverage_u = float(rng.random()), float(rng.random())
    thickness = float(profile.slice_thickness_mm[int(rng.integers(0, len(profile.slice_thickness_mm)))])
    draw = {name: float(rng.uniform(*getattr(profile, name)))
            for name in ("noise_sd_hu", "blur_sigma_mm", "sharpening", "noise_grain_mm", "hu_offset", "hu_scale")}
    shape, spacing = _grid(size, n_slices, quantile, coverage_u, thickness, profile, z_extent)
    spec = PhantomSpec(shape_zyx=shape, spacing_xyz=spacing, slice_thickness_mm=thickness, tumour=tumour, seed=seed,
                       case_id=f"case_{int(case_index):04d}", scanner=profile.name, generation=3,
                       extrapleural_fat_mm=fat_mm, **draw)
    return SampledCase(spec=spec, clinical=clinical, p_true=float(p_true), label=label)
