"""Drawing cases from the generative model of :mod:`pipeline.synth` (no image is rendered).

Contract: :func:`sample_case` takes one ``numpy.random.Generator`` as its only source of
randomness and returns a :class:`~pipeline.synth.specs.SampledCase`: the :class:`PhantomSpec` to
render (shape (z, y, x), spacing (x, y, z) mm), the clinical values (CEA ng/mL, CA125 U/mL, age in
years), the true VPI probability and the drawn label. Patient draws come before scanner draws, so
two scanner profiles with the same generator state give the same patients and labels.
:func:`oracle_auc` scores true probabilities against labels.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from pipeline.synth.specs import (
    LABEL_MODEL,
    ClinicalDraw,
    LabelModel,
    PhantomSpec,
    SampledCase,
    ScannerProfile,
    TumourSpec,
    check,
    check_size,
    grid_for,
    resolve_scanner,
)
from pipeline.synth.tumour import draw_layout

__all__ = ["sample_case", "oracle_auc"]

_MIN_DIAMETER_MM = {"small": 24.0, "medium": 12.0, "clinical": 10.0}
_MAX_DIAMETER_MM = 35.0


def sample_case(
    rng: np.random.Generator,
    *,
    size: str = "small",
    case_index: int,
    scanner: Union[ScannerProfile, str, None] = None,
    n_slices: Optional[int] = None,
    label_model: LabelModel = LABEL_MODEL,
) -> SampledCase:
    """Draw one case (no image is rendered): its :class:`PhantomSpec`, clinical values, p_true
    and label, following the generative model in :mod:`pipeline.synth`.

    Args:
        rng: the only source of randomness (same generator state ⇒ same case).
        size: "small", "medium" or "clinical" (see ``SIZE_PRESETS``).
        case_index: case number; the spec's ``case_id`` is ``case_{index:04d}``.
        scanner: a :class:`ScannerProfile`, a name in ``SCANNER_PROFILES`` or None (standard).
        n_slices: overrides the preset's number of slices.
        label_model: coefficients of the true model.
    """
    check(isinstance(rng, np.random.Generator), "rng must be a numpy.random.Generator")
    check_size(size)
    check(
        isinstance(case_index, (int, np.integer)) and case_index >= 0,
        f"case_index must be an int >= 0, got {case_index!r}",
    )
    profile = resolve_scanner(scanner)

    # --- patient (never depends on the scanner) ---
    side = "right" if rng.random() < 0.55 else "left"
    diameter = float(rng.uniform(_MIN_DIAMETER_MM[size], _MAX_DIAMETER_MM))
    contact = rng.random() < 0.38
    gap_contact = -float(rng.uniform(0.0, 3.0))
    gap_far = float(min(0.5 + rng.exponential(6.0), 25.0))
    distance = gap_contact if contact else gap_far
    solid = rng.random() < 0.6
    ctr_part = float(rng.uniform(0.3, 0.9))
    solid_fraction = 1.0 if solid else ctr_part
    u_tag, u_ind = rng.random(), rng.random()
    tag = distance > 1.0 and u_tag < (0.20 if distance > 15.0 else 0.45)
    indentation = tag and distance > 2.0 and u_ind < 0.5
    solid_hu = float(rng.uniform(20.0, 50.0))
    ggo_hu = float(rng.uniform(-600.0, -300.0))
    lobulation = float(rng.uniform(0.05, 0.25))
    clinical = ClinicalDraw(
        cea_ng_ml=float(np.exp(rng.normal(np.log(3.8), 0.85))),
        ca125_u_ml=float(np.exp(rng.normal(np.log(14.0), 0.55))),
        age_years=float(np.clip(rng.normal(65.0, 9.0), 30.0, 90.0)),
    )
    tumour = TumourSpec(
        diameter_mm=diameter,
        distance_to_pleura_mm=distance,
        solid_fraction=solid_fraction,
        solid_hu=solid_hu,
        ggo_hu=ggo_hu,
        pleural_tag=bool(tag),
        pleural_indentation=bool(indentation),
        lobulation=lobulation,
        side=side,
    )
    # the patient's anatomy: redraw (rarely) until the lungs can hold this tumour at this gap
    seed = int(rng.integers(0, 2**31 - 1))
    while not draw_layout(seed, tumour).feasible.any():
        seed = int(rng.integers(0, 2**31 - 1))
    p_true = label_model.probability(tumour=tumour, clinical=clinical)
    label = int(rng.random() < p_true)

    # --- scanner ---
    quantile = float(rng.random())
    thickness = float(profile.slice_thickness_mm[int(rng.integers(0, len(profile.slice_thickness_mm)))])
    noise = float(rng.uniform(*profile.noise_sd_hu))
    blur = float(rng.uniform(*profile.blur_sigma_mm))
    shape, spacing = grid_for(size, n_slices, quantile, thickness, profile)
    spec = PhantomSpec(
        shape_zyx=shape,
        spacing_xyz=spacing,
        slice_thickness_mm=thickness,
        noise_sd_hu=noise,
        blur_sigma_mm=blur,
        tumour=tumour,
        seed=seed,
        case_id=f"case_{int(case_index):04d}",
        scanner=profile.name,
    )
    return SampledCase(spec=spec, clinical=clinical, p_true=float(p_true), label=label)


def oracle_auc(p_true: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of the true probabilities against the drawn labels (the best any model can do)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels), np.asarray(p_true)))
