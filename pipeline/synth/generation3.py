"""The generative model of phantom generation 3 (described in :mod:`pipeline.synth`): its VPI
label model and its scanner profiles. Pure data, no drawing.

Units: mm, HU, CEA ng/mL, CA125 U/mL, years.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.synth.specs import LabelModelBase, ScannerProfile, TumourSpec

__all__ = ["LabelModel3", "LABEL_MODEL_3", "SCANNER_PROFILES_3", "GENERATIONS"]

GENERATIONS = (2, 3)
"""Phantom generations :func:`~pipeline.synth.cohort.write_cohort` can draw (2 stays bit-for-bit)."""


@dataclass(frozen=True)
class LabelModel3(LabelModelBase):
    """Coefficients of generation 3's true VPI model::

        η = intercept + invasion · [gap < 0] + abutting · [gap = 0]
            + fissure · [fissure reached, costal pleura not]
            + proximity · [gap > 0] · exp(−gap / scale) + solid_fraction · (CTR − 1)
            + log_size · ln(D / size_centre) + tag + indentation + clinical (as generation 2)
    """

    intercept: float = -2.9
    invasion: float = 4.5
    abutting: float = 2.4
    fissure: float = 2.0
    proximity: float = 2.6
    proximity_scale_mm: float = 6.0
    solid_fraction: float = 2.8
    log_size: float = 1.1
    size_centre_mm: float = 25.0
    pleural_tag: float = 1.0
    pleural_indentation: float = 0.7
    log_cea: float = 0.8
    cea_centre_ng_ml: float = 4.0
    log_ca125: float = 0.55
    ca125_centre_u_ml: float = 15.0
    age_per_year: float = 0.025
    age_centre_years: float = 65.0

    def imaging_term(self, tumour: TumourSpec) -> float:
        """The part of η an image shows."""
        d = tumour.distance_to_pleura_mm
        costal = d <= 0.0
        return (
            self.invasion * float(d < 0.0)
            + self.abutting * float(d == 0.0)
            + self.fissure * float(tumour.fissure_contact and not costal)
            + self.proximity * float(not costal) * math.exp(-max(d, 0.0) / self.proximity_scale_mm)
            + self.solid_fraction * (tumour.solid_fraction - 1.0)
            + self.log_size * math.log(tumour.diameter_mm / self.size_centre_mm)
            + self.pleural_tag * float(tumour.pleural_tag)
            + self.pleural_indentation * float(tumour.pleural_indentation)
        )


LABEL_MODEL_3 = LabelModel3()

#: Scanner profiles of generation 3; a cohort drawn without a named profile gives each case one of
#: them at random (after the patient, so the patients do not depend on it).
SCANNER_PROFILES_3: dict[str, ScannerProfile] = {
    "sharp_thin": ScannerProfile(name="sharp_thin", slice_thickness_mm=(0.625, 1.0, 1.25), noise_sd_hu=(15.0, 35.0),
                                 blur_sigma_mm=(0.3, 0.5), sharpening=(0.5, 1.0), noise_grain_mm=(0.0, 0.2),
                                 hu_offset=(-8.0, 8.0), hu_scale=(0.98, 1.02)),
    "standard_mid": ScannerProfile(name="standard_mid", slice_thickness_mm=(1.25, 2.0, 2.5, 3.0),
                                   noise_sd_hu=(10.0, 25.0), blur_sigma_mm=(0.4, 0.7), sharpening=(0.0, 0.3),
                                   noise_grain_mm=(0.3, 0.6), hu_offset=(-10.0, 10.0), hu_scale=(0.98, 1.02)),
    "soft_thick": ScannerProfile(name="soft_thick", slice_thickness_mm=(3.0, 5.0), noise_sd_hu=(6.0, 15.0),
                                 blur_sigma_mm=(0.6, 1.0), noise_grain_mm=(0.5, 1.0), hu_offset=(-12.0, 12.0),
                                 hu_scale=(0.97, 1.03)),
    "low_dose": ScannerProfile(name="low_dose", slice_thickness_mm=(1.0, 1.25, 2.0, 2.5), noise_sd_hu=(35.0, 60.0),
                               blur_sigma_mm=(0.4, 0.7), sharpening=(0.0, 0.3), noise_grain_mm=(0.3, 0.6),
                               hu_offset=(-10.0, 10.0), hu_scale=(0.98, 1.02)),
}
