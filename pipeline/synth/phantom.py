"""Synthetic chest-CT phantoms: a CT in HU, a tumour ROI, clinical values and a VPI label.

Every test, benchmark and the demo model use these phantoms; nothing here touches patient data.

Image model
-----------
Anatomy is drawn from ``PhantomSpec.seed`` in physical millimetres and evaluated analytically at
the voxel centres of the requested grid, so the same seed gives the same patient at any spacing.
Coordinates are LPS (x → patient left, y → posterior, z → superior); arrays are (z, y, x).

* air outside the body (−1000 HU); body ellipse with skin/muscle (40–55 HU) and a subcutaneous
  fat ring (−115…−85 HU);
* chest wall with ribs (marrow ≈ 400 HU, cortex ≈ 700 HU) sloping down anteriorly, costal
  cartilage, sternum and a spine (vertebral bodies, discs, neural arch, spinous process);
* two lungs (≈ −850 HU, slightly denser posteriorly) bounded by the thoracic cavity, the
  mediastinum (fat with heart, aortas and trachea), the spine and domed hemidiaphragms, with
  branching vessel trees (≈ 40 HU) thinning from the hila towards the periphery;
* a lobulated tumour of chosen volume-equivalent diameter, solid (20–50 HU) or part-solid (a solid
  core inside a ground-glass halo of −600…−300 HU), placed in one lung at a chosen gap from the
  costal pleura (≤ 0: touching, < 0: crossing into the chest wall by that many mm), optionally
  with pleural tags (thin strands tumour → pleura) and pleural indentation (a small cone of chest
  wall pulled towards the tumour, taking at most 40 % of the gap);
* a Gaussian blur per scanner (in-plane PSF plus pixel aperture, slice profile of FWHM = slice
  thickness along z) and white Gaussian noise of ``noise_sd_hu``.

Outputs: the CT (int16 HU), the ROI (uint8 {0, 1}; the whole tumour incl. its ground-glass part,
never bone) and a tissue label map (``TISSUE_LABELS``), all with the same geometry, plus a frozen
:class:`PhantomTruth` of the case's true parameters.

Sizes and scanners
------------------
``SIZE_PRESETS``: "small" (64×128×128, tests), "medium" (100×256×256, demo training),
"clinical" (300×512×512, benchmarks). A :class:`ScannerProfile` draws one quantile ``u`` for the
in-plane spacing: 512-and-larger matrices get ``pixel_spacing_mm`` (0.6–0.9 mm); smaller ones get a
field of view from ``field_of_view_mm`` (320–380 mm) divided by the matrix, so the whole chest
stays in view. The slice thickness ``t`` is drawn from ``slice_thickness_mm`` (0.625–5 mm); the slice
spacing is ``t`` clipped to [150, 400] mm / n_slices so every scan covers 15–40 cm of chest
(overlapping or gapped reconstruction when clipped; the z blur always uses ``t``). Tumour
diameters are drawn from [d_min, 35] mm with d_min = 24 / 12 / 10 mm for small / medium / clinical,
so a tumour is always ≥ 8 voxels across in-plane.

VPI label model
---------------
For each case :func:`sample_case` draws (in this order; patient draws never depend on the scanner,
so two scanner profiles with the same seed give the same patients and labels):

* tumour diameter D ~ U(d_min, 35) mm; pleural contact with probability 0.38, then gap
  d ~ −U(0, 3) mm, else d = min(0.5 + Exp(mean 6), 25) mm;
* consolidation-to-tumour ratio CTR ("solid fraction", core diameter / tumour diameter) = 1 with
  probability 0.6, else U(0.3, 0.9);
* pleural tag with probability 0.45 (0.20 if d > 15 mm) when d > 1 mm; pleural indentation with
  probability 0.5 when there is a tag and d > 2 mm;
* CEA ~ LogNormal(ln 3.8, 0.85) ng/mL, CA125 ~ LogNormal(ln 14, 0.55) U/mL,
  age ~ N(65, 9) years clipped to [30, 90];

then ``p_true = sigmoid(η)`` and ``label ~ Bernoulli(p_true)`` with (:class:`LabelModel`)::

    η = −3.7
        + 5.0 · contact                                   (contact = d ≤ 0)
        + 3.0 · (1 − contact) · exp(−d / 6 mm)            (near but not touching)
        + 3.5 · (CTR − 1)
        + 0.035 · (D − 22 mm)
        + 1.1 · pleural_tag + 0.7 · pleural_indentation
        + 0.8 · (ln CEA − ln 4) + 0.55 · (ln CA125 − ln 15) + 0.025 · (age − 65)

Over 400 000 draws: prevalence ≈ 0.334 (clinical), 0.339 (medium) and 0.367 (small, whose tumours
are larger); oracle AUC of p_true ≈ 0.876 for every size; the imaging part of η alone reaches
AUC ≈ 0.85, the clinical part alone ≈ 0.63 — the image carries most of the signal, the clinical
values some.

Example:
    >>> spec = PhantomSpec.for_size("small", tumour=TumourSpec(diameter_mm=25.0,
    ...                             distance_to_pleura_mm=0.0), seed=7)
    >>> ph = make_phantom(spec)
    >>> ph.ct.array.dtype.name, ph.ct.shape_zyx, int(ph.roi.array.max()), ph.truth.pleural_contact
    ('int16', (64, 128, 128), 1, True)
    >>> case = sample_case(np.random.default_rng(0), size="small", case_index=3)
    >>> case.spec.case_id, 0.0 < case.p_true < 1.0, case.label in (0, 1)
    ('case_0003', True, True)
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from pipeline.core.volume import Volume

__all__ = [
    "TISSUE_LABELS",
    "SIZE_PRESETS",
    "SCANNER_PROFILES",
    "ScannerProfile",
    "TumourSpec",
    "PhantomSpec",
    "PhantomTruth",
    "Phantom",
    "ClinicalDraw",
    "LabelModel",
    "LABEL_MODEL",
    "SampledCase",
    "make_phantom",
    "sample_case",
    "write_cohort",
    "oracle_auc",
]

# ---------------------------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------------------------

#: Codes of the tissue label map (``Phantom.tissue``).
TISSUE_LABELS: dict[str, int] = {
    "air": 0,  # outside the body
    "soft_tissue": 1,  # skin, muscle, heart, aorta, abdomen, cartilage, pleural indentation
    "fat": 2,  # subcutaneous and mediastinal fat
    "bone": 3,  # ribs, sternum, spine
    "lung": 4,  # lung parenchyma
    "vessel": 5,  # pulmonary vessels (voxels at least half covered)
    "tumour": 6,  # the ROI
    "airway": 7,  # trachea and main bronchi lumen
    "strand": 8,  # pleural tags
}
_AIR, _SOFT, _FAT, _BONE, _LUNG, _VESSEL, _TUMOUR, _AIRWAY, _STRAND = range(9)

#: (n_slices, rows, columns) of the size presets.
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "small": (64, 128, 128),
    "medium": (100, 256, 256),
    "clinical": (300, 512, 512),
}
_MIN_DIAMETER_MM = {"small": 24.0, "medium": 12.0, "clinical": 10.0}
_MAX_DIAMETER_MM = 35.0
_Z_COVERAGE_MM = (150.0, 400.0)
_HU_MIN, _HU_MAX = -1024.0, 3071.0


# ---------------------------------------------------------------------------------------------
# settings and records
# ---------------------------------------------------------------------------------------------


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    _check(
        len(value) == 2 and low <= value[0] <= value[1] <= high,
        f"{name} must be a (min, max) pair within [{low}, {high}], got {value}",
    )


@dataclass(frozen=True)
class ScannerProfile:
    """Ranges the scanner settings of a cohort are drawn from.

    Attributes:
        name: written to ``clinical.csv`` as ``sim_scanner``.
        pixel_spacing_mm: in-plane spacing range (mm) for matrices of 512 or more.
        field_of_view_mm: in-plane field of view range (mm) for smaller matrices.
        slice_thickness_mm: slice thicknesses (mm) to choose from, uniformly.
        noise_sd_hu: range of the Gaussian noise SD (HU).
        blur_sigma_mm: range of the in-plane point-spread SD (mm), added to the pixel aperture.
    """

    name: str = "standard"
    pixel_spacing_mm: tuple[float, float] = (0.6, 0.9)
    field_of_view_mm: tuple[float, float] = (320.0, 380.0)
    slice_thickness_mm: tuple[float, ...] = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
    noise_sd_hu: tuple[float, float] = (8.0, 25.0)
    blur_sigma_mm: tuple[float, float] = (0.3, 0.7)

    def __post_init__(self) -> None:
        for name in ("pixel_spacing_mm", "field_of_view_mm", "slice_thickness_mm", "noise_sd_hu", "blur_sigma_mm"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _check_range("pixel_spacing_mm", self.pixel_spacing_mm, 0.1, 5.0)
        _check_range("field_of_view_mm", self.field_of_view_mm, 200.0, 600.0)
        _check(
            len(self.slice_thickness_mm) >= 1 and all(0.1 <= t <= 10.0 for t in self.slice_thickness_mm),
            f"slice_thickness_mm must list thicknesses within [0.1, 10] mm, got {self.slice_thickness_mm}",
        )
        _check_range("noise_sd_hu", self.noise_sd_hu, 0.0, 200.0)
        _check_range("blur_sigma_mm", self.blur_sigma_mm, 0.0, 5.0)


#: Named scanner profiles: the default one and a scanner-shifted one (thick slices, more noise,
#: softer kernel) for out-of-distribution test sets.
SCANNER_PROFILES: dict[str, ScannerProfile] = {
    "standard": ScannerProfile(),
    "thick_noisy": ScannerProfile(
        name="thick_noisy", slice_thickness_mm=(3.0, 5.0), noise_sd_hu=(35.0, 60.0), blur_sigma_mm=(0.8, 1.2)
    ),
}


@dataclass(frozen=True)
class TumourSpec:
    """The tumour to draw.

    Attributes:
        diameter_mm: diameter (mm) of the sphere with the tumour's volume.
        distance_to_pleura_mm: gap (mm) between the tumour surface and the costal pleura (the lung
            boundary); 0 touches it, negative values cross it into the chest wall by that depth.
        solid_fraction: consolidation-to-tumour ratio, core diameter / tumour diameter, in
            (0, 1]; 1 is a solid tumour, below 1 a part-solid one with a ground-glass halo.
        solid_hu: attenuation (HU) of the solid part.
        ggo_hu: attenuation (HU) of the ground-glass halo.
        pleural_tag: draw 1–3 thin strands from the tumour to the pleura (needs a gap > 1 mm).
        pleural_indentation: pull a small cone of chest wall towards the tumour (gap > 2 mm).
        lobulation: amplitude of the lobes (0 is a sphere).
        side: "right" or "left" lung; None draws it from the phantom seed.
    """

    diameter_mm: float = 20.0
    distance_to_pleura_mm: float = 5.0
    solid_fraction: float = 1.0
    solid_hu: float = 35.0
    ggo_hu: float = -450.0
    pleural_tag: bool = False
    pleural_indentation: bool = False
    lobulation: float = 0.15
    side: Optional[str] = None

    def __post_init__(self) -> None:
        _check(5.0 <= self.diameter_mm <= 60.0, f"diameter_mm must be within [5, 60] mm, got {self.diameter_mm}")
        _check(
            -5.0 <= self.distance_to_pleura_mm <= 30.0,
            f"distance_to_pleura_mm must be within [-5, 30] mm, got {self.distance_to_pleura_mm}",
        )
        _check(0.0 < self.solid_fraction <= 1.0, f"solid_fraction must be in (0, 1], got {self.solid_fraction}")
        _check(-100.0 <= self.solid_hu <= 150.0, f"solid_hu must be within [-100, 150] HU, got {self.solid_hu}")
        _check(-800.0 <= self.ggo_hu <= -100.0, f"ggo_hu must be within [-800, -100] HU, got {self.ggo_hu}")
        _check(0.0 <= self.lobulation <= 0.5, f"lobulation must be within [0, 0.5], got {self.lobulation}")
        _check(self.side in (None, "right", "left"), f"side must be 'right', 'left' or None, got {self.side!r}")
        _check(
            not self.pleural_tag or self.distance_to_pleura_mm > 1.0,
            "pleural_tag needs distance_to_pleura_mm > 1 mm (a tag bridges a gap)",
        )
        _check(
            not self.pleural_indentation or self.distance_to_pleura_mm > 2.0,
            "pleural_indentation needs distance_to_pleura_mm > 2 mm",
        )

    @property
    def pleural_contact(self) -> bool:
        return self.distance_to_pleura_mm <= 0.0


@dataclass(frozen=True)
class PhantomSpec:
    """Everything :func:`make_phantom` needs; the same spec always gives identical arrays.

    Attributes:
        shape_zyx: voxels (slices, rows, columns).
        spacing_xyz: voxel spacing (mm) in ITK (x, y, z) order; z is the slice spacing.
        slice_thickness_mm: nominal slice thickness (mm, FWHM of the z blur); None = z spacing.
        noise_sd_hu: SD (HU) of the added white Gaussian noise.
        blur_sigma_mm: in-plane point-spread SD (mm), combined with the pixel aperture.
        tumour: the tumour to draw.
        seed: seeds the anatomy, the tumour placement and the noise.
        case_id: name carried into :class:`PhantomTruth`.
        scanner: name of the scanner profile the settings came from (bookkeeping only).
    """

    shape_zyx: tuple[int, int, int] = SIZE_PRESETS["small"]
    spacing_xyz: tuple[float, float, float] = (2.8, 2.8, 3.0)
    slice_thickness_mm: Optional[float] = None
    noise_sd_hu: float = 15.0
    blur_sigma_mm: float = 0.5
    tumour: TumourSpec = field(default_factory=TumourSpec)
    seed: int = 0
    case_id: str = "phantom"
    scanner: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape_zyx", tuple(int(s) for s in self.shape_zyx))
        object.__setattr__(self, "spacing_xyz", tuple(float(s) for s in self.spacing_xyz))
        _check(
            len(self.shape_zyx) == 3 and min(self.shape_zyx) >= 8,
            f"shape_zyx must be 3 sizes of at least 8 voxels, got {self.shape_zyx}",
        )
        _check(
            len(self.spacing_xyz) == 3 and all(0.05 <= s <= 20.0 for s in self.spacing_xyz),
            f"spacing_xyz must be 3 spacings within [0.05, 20] mm, got {self.spacing_xyz}",
        )
        _check(
            self.slice_thickness_mm is None or 0.1 <= self.slice_thickness_mm <= 20.0,
            f"slice_thickness_mm must be within [0.1, 20] mm, got {self.slice_thickness_mm}",
        )
        _check(0.0 <= self.noise_sd_hu <= 500.0, f"noise_sd_hu must be within [0, 500] HU, got {self.noise_sd_hu}")
        _check(0.0 <= self.blur_sigma_mm <= 10.0, f"blur_sigma_mm must be within [0, 10] mm, got {self.blur_sigma_mm}")
        _check(isinstance(self.tumour, TumourSpec), "tumour must be a TumourSpec")
        _check(
            isinstance(self.seed, (int, np.integer)) and self.seed >= 0, f"seed must be an int >= 0, got {self.seed!r}"
        )
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def thickness_mm(self) -> float:
        """Slice thickness (mm) actually used for the z blur."""
        return self.spacing_xyz[2] if self.slice_thickness_mm is None else float(self.slice_thickness_mm)

    @classmethod
    def for_size(
        cls,
        size: str = "small",
        *,
        tumour: Optional[TumourSpec] = None,
        seed: int = 0,
        n_slices: Optional[int] = None,
        slice_thickness_mm: float = 2.5,
        noise_sd_hu: float = 15.0,
        blur_sigma_mm: float = 0.5,
        quantile: float = 0.5,
    ) -> "PhantomSpec":
        """A spec on a size preset's grid with mid-range scanner settings (``quantile`` picks the
        in-plane spacing within the default profile's range)."""
        shape, spacing = _grid_for(size, n_slices, quantile, slice_thickness_mm, ScannerProfile())
        return cls(
            shape_zyx=shape,
            spacing_xyz=spacing,
            slice_thickness_mm=slice_thickness_mm,
            noise_sd_hu=noise_sd_hu,
            blur_sigma_mm=blur_sigma_mm,
            tumour=tumour if tumour is not None else TumourSpec(),
            seed=seed,
        )


@dataclass(frozen=True)
class PhantomTruth:
    """The true parameters of one rendered phantom (mm, HU; centre in physical LPS mm)."""

    case_id: str
    seed: int
    scanner: str
    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    slice_thickness_mm: float
    noise_sd_hu: float
    blur_sigma_mm: float
    diameter_mm: float
    solid_fraction: float
    distance_to_pleura_mm: float
    pleural_contact: bool
    pleural_tag: bool
    n_pleural_tags: int
    pleural_indentation: bool
    indentation_depth_mm: float
    side: str
    lobulation: float
    solid_hu: float
    ggo_hu: float
    tumour_centre_xyz_mm: tuple[float, float, float]
    roi_voxels: int
    roi_volume_mm3: float


@dataclass(frozen=True, eq=False)
class Phantom:
    """A rendered phantom: CT (int16 HU), ROI (uint8 {0, 1}) and tissue labels (uint8,
    ``TISSUE_LABELS``) on one geometry, plus the truth."""

    ct: Volume
    roi: Volume
    tissue: Volume
    truth: PhantomTruth


@dataclass(frozen=True)
class ClinicalDraw:
    """Clinical values of a synthetic patient: CEA (ng/mL), CA125 (U/mL), age (years)."""

    cea_ng_ml: float
    ca125_u_ml: float
    age_years: float


@dataclass(frozen=True)
class LabelModel:
    """Coefficients of the true VPI model (see the module docstring for the formula)."""

    intercept: float = -3.7
    contact: float = 5.0
    proximity: float = 3.0
    proximity_scale_mm: float = 6.0
    solid_fraction: float = 3.5
    size_per_mm: float = 0.035
    size_centre_mm: float = 22.0
    pleural_tag: float = 1.1
    pleural_indentation: float = 0.7
    log_cea: float = 0.8
    cea_centre_ng_ml: float = 4.0
    log_ca125: float = 0.55
    ca125_centre_u_ml: float = 15.0
    age_per_year: float = 0.025
    age_centre_years: float = 65.0

    def imaging_term(self, tumour: TumourSpec) -> float:
        """The part of η an image shows (contact/gap, solid fraction, size, tag, indentation)."""
        d = tumour.distance_to_pleura_mm
        contact = 1.0 if d <= 0 else 0.0
        return (
            self.contact * contact
            + self.proximity * (1.0 - contact) * math.exp(-max(d, 0.0) / self.proximity_scale_mm)
            + self.solid_fraction * (tumour.solid_fraction - 1.0)
            + self.size_per_mm * (tumour.diameter_mm - self.size_centre_mm)
            + self.pleural_tag * float(tumour.pleural_tag)
            + self.pleural_indentation * float(tumour.pleural_indentation)
        )

    def clinical_term(self, clinical: ClinicalDraw) -> float:
        """The part of η carried by CEA, CA125 and age."""
        return (
            self.log_cea * (math.log(clinical.cea_ng_ml) - math.log(self.cea_centre_ng_ml))
            + self.log_ca125 * (math.log(clinical.ca125_u_ml) - math.log(self.ca125_centre_u_ml))
            + self.age_per_year * (clinical.age_years - self.age_centre_years)
        )

    def probability(self, *, tumour: TumourSpec, clinical: ClinicalDraw) -> float:
        """p_true = sigmoid(intercept + imaging term + clinical term)."""
        eta = self.intercept + self.imaging_term(tumour) + self.clinical_term(clinical)
        return 1.0 / (1.0 + math.exp(-eta))


LABEL_MODEL = LabelModel()


class SampledCase(NamedTuple):
    """One drawn case: what to render, the clinical values, the true probability and the label."""

    spec: PhantomSpec
    clinical: ClinicalDraw
    p_true: float
    label: int


# ---------------------------------------------------------------------------------------------
# sampling cases
# ---------------------------------------------------------------------------------------------


def _resolve_scanner(scanner: Union[ScannerProfile, str, None]) -> ScannerProfile:
    if scanner is None:
        return SCANNER_PROFILES["standard"]
    if isinstance(scanner, str):
        if scanner not in SCANNER_PROFILES:
            raise ValueError(f"unknown scanner profile {scanner!r}; choose one of {sorted(SCANNER_PROFILES)}")
        return SCANNER_PROFILES[scanner]
    if not isinstance(scanner, ScannerProfile):
        raise ValueError(f"scanner must be a ScannerProfile, a profile name or None, got {type(scanner).__name__}")
    return scanner


def _check_size(size: str) -> None:
    _check(size in SIZE_PRESETS, f"size must be one of {sorted(SIZE_PRESETS)}, got {size!r}")


def _grid_for(
    size: str, n_slices: Optional[int], quantile: float, thickness_mm: float, scanner: ScannerProfile
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (z, y, x) and spacing (x, y, z) mm of a size preset for one scanner draw."""
    _check_size(size)
    _check(0.0 <= quantile <= 1.0, f"quantile must be within [0, 1], got {quantile}")
    nz, ny, nx = SIZE_PRESETS[size]
    if n_slices is not None:
        _check(
            isinstance(n_slices, (int, np.integer)) and n_slices >= 8, f"n_slices must be an int >= 8, got {n_slices!r}"
        )
        nz = int(n_slices)
    if nx >= 512:
        lo, hi = scanner.pixel_spacing_mm
        pixel = lo + quantile * (hi - lo)
    else:
        lo, hi = scanner.field_of_view_mm
        pixel = (lo + quantile * (hi - lo)) / nx
    dz = float(np.clip(thickness_mm, _Z_COVERAGE_MM[0] / nz, _Z_COVERAGE_MM[1] / nz))
    return (nz, ny, nx), (round(pixel, 6), round(pixel, 6), round(dz, 6))


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
    and label, following the generative model in the module docstring.

    Args:
        rng: the only source of randomness (same generator state ⇒ same case).
        size: "small", "medium" or "clinical" (see ``SIZE_PRESETS``).
        case_index: case number; the spec's ``case_id`` is ``case_{index:04d}``.
        scanner: a :class:`ScannerProfile`, a name in ``SCANNER_PROFILES`` or None (standard).
        n_slices: overrides the preset's number of slices.
        label_model: coefficients of the true model.
    """
    _check(isinstance(rng, np.random.Generator), "rng must be a numpy.random.Generator")
    _check_size(size)
    _check(
        isinstance(case_index, (int, np.integer)) and case_index >= 0,
        f"case_index must be an int >= 0, got {case_index!r}",
    )
    profile = _resolve_scanner(scanner)

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
    while not _layout(seed, tumour).feasible.any():
        seed = int(rng.integers(0, 2**31 - 1))
    p_true = label_model.probability(tumour=tumour, clinical=clinical)
    label = int(rng.random() < p_true)

    # --- scanner ---
    quantile = float(rng.random())
    thickness = float(profile.slice_thickness_mm[int(rng.integers(0, len(profile.slice_thickness_mm)))])
    noise = float(rng.uniform(*profile.noise_sd_hu))
    blur = float(rng.uniform(*profile.blur_sigma_mm))
    shape, spacing = _grid_for(size, n_slices, quantile, thickness, profile)
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


# ---------------------------------------------------------------------------------------------
# anatomy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Anatomy:
    """One synthetic patient's thorax (mm, HU). z = 0 is the top of the right hemidiaphragm."""

    body_ax: float
    body_ay: float
    skin: float
    fat: float
    cav_ax: float
    cav_ay: float
    cav_cy: float
    lung_height: float
    z_taper: float
    dome_height: float
    dome_left_drop: float
    med_cx: float
    med_ax: float
    med_ay: float
    heart_c: tuple[float, float, float]
    heart_axes: tuple[float, float, float]
    vb_cy: float
    vb_r: float
    aorta_c: tuple[float, float]
    aorta_r: float
    asc_c: tuple[float, float]
    asc_r: float
    trachea_c: tuple[float, float]
    trachea_r: float
    z_carina: float
    z_arch: float
    rib_pitch: float
    rib_drop: float
    rib_z0: float
    rib_thick: float
    rib_half_height: float
    rib_depth: float
    rib_phi_max: float
    vert_pitch: float
    disc_height: float
    vert_z0: float
    hu_muscle: float
    hu_fat: float
    hu_lung: float
    lung_gradient: float
    hu_liver: float
    hu_blood: float
    hu_marrow: float
    hu_cortex: float
    texture: tuple[tuple[float, float, float, float], ...]
    view_jitter: tuple[float, float, float]
    hilum_dy: float

    @property
    def z_top(self) -> float:
        return self.lung_height


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    draws = iter(rng.random(80).tolist())  # one vectorised draw; each u() takes the next value

    def u(low: float, high: float) -> float:
        return low + (high - low) * next(draws)

    body_ax = u(135.0, 165.0)
    body_ay = body_ax * u(0.68, 0.78)
    skin, fat, wall = 2.0, u(6.0, 22.0), u(10.0, 16.0)
    cav_ax = body_ax - skin - fat - wall
    cav_cy = -u(0.0, 6.0)
    cav_ay = body_ay - skin - fat - wall - 6.0
    lung_height = u(230.0, 270.0)
    vb_r = u(15.0, 19.0)
    vb_cy = cav_cy + cav_ay - vb_r - u(3.0, 7.0)
    aorta_r = u(10.0, 13.0)
    z_carina = lung_height * u(0.55, 0.62)
    texture = tuple(
        (u(0.0, 2 * np.pi), 2 * np.pi / u(30.0, 90.0), u(0.0, 2 * np.pi), u(2.0, 5.0)) for _ in range(3)
    )
    return _Anatomy(
        body_ax=body_ax,
        body_ay=body_ay,
        skin=skin,
        fat=fat,
        cav_ax=cav_ax,
        cav_ay=cav_ay,
        cav_cy=cav_cy,
        lung_height=lung_height,
        z_taper=lung_height - u(40.0, 55.0),
        dome_height=u(40.0, 55.0),
        dome_left_drop=u(10.0, 20.0),
        med_cx=u(0.0, 8.0),
        med_ax=cav_ax * u(0.24, 0.30),
        med_ay=cav_ay * 1.02,
        heart_c=(cav_ax * u(0.12, 0.22), cav_cy - cav_ay * u(0.15, 0.30), u(35.0, 50.0)),
        heart_axes=(cav_ax * u(0.42, 0.50), cav_ay * u(0.50, 0.60), u(50.0, 62.0)),
        vb_cy=vb_cy,
        vb_r=vb_r,
        aorta_c=(vb_r + aorta_r - u(0.0, 4.0), vb_cy - u(6.0, 12.0)),
        aorta_r=aorta_r,
        asc_c=(-u(5.0, 12.0), cav_cy - cav_ay * u(0.30, 0.45)),
        asc_r=u(13.0, 17.0),
        trachea_c=(u(-3.0, 3.0), vb_cy - vb_r - u(18.0, 28.0)),
        trachea_r=u(7.5, 10.0),
        z_carina=z_carina,
        z_arch=z_carina + u(8.0, 18.0),
        rib_pitch=u(24.0, 30.0),
        rib_drop=u(60.0, 90.0),
        rib_z0=u(0.0, 30.0),
        rib_thick=u(3.0, 4.5),
        rib_half_height=u(5.0, 7.0),
        rib_depth=u(5.0, 7.0),
        rib_phi_max=u(2.3, 2.5),
        vert_pitch=u(24.0, 28.0),
        disc_height=u(5.0, 7.0),
        vert_z0=u(0.0, 28.0),
        hu_muscle=u(40.0, 55.0),
        hu_fat=u(-115.0, -85.0),
        hu_lung=u(-870.0, -840.0),
        lung_gradient=u(15.0, 35.0),
        hu_liver=u(50.0, 65.0),
        hu_blood=u(35.0, 50.0),
        hu_marrow=u(380.0, 450.0),
        hu_cortex=u(650.0, 750.0),
        texture=texture,
        view_jitter=(u(-8.0, 8.0), u(-8.0, 8.0), u(-15.0, 15.0)),
        hilum_dy=u(-8.0, 4.0),
    )


class _PlaneTerms(NamedTuple):
    """In-plane quantities the lung test needs, for any array of (x, y) points."""

    cav_q: np.ndarray  # ((x/a)^2 + ((y-cy)/b)^2) of the thoracic cavity
    med_q: np.ndarray  # same for the mediastinum ellipse
    heart_q: np.ndarray  # in-plane part of the heart ellipsoid
    dome_z: np.ndarray  # height (mm) of the hemidiaphragm under (x, y)
    vb_d2: np.ndarray  # squared distance (mm²) to the vertebral body axis
    aorta_d2: np.ndarray  # squared distance (mm²) to the descending aorta axis


def _plane_terms(an: _Anatomy, x: np.ndarray, y: np.ndarray) -> _PlaneTerms:
    f = np.float32
    x = np.asarray(x, dtype=f)
    y = np.asarray(y, dtype=f)
    cav_q = (x / f(an.cav_ax)) ** 2 + ((y - f(an.cav_cy)) / f(an.cav_ay)) ** 2
    med_q = ((x - f(an.med_cx)) / f(an.med_ax)) ** 2 + ((y - f(an.cav_cy)) / f(an.med_ay)) ** 2
    hx, hy, _ = an.heart_c
    ha, hb, _ = an.heart_axes
    heart_q = ((x - f(hx)) / f(ha)) ** 2 + ((y - f(hy)) / f(hb)) ** 2
    side = np.where(x < 0, f(-1.0), f(1.0))
    dome_top = np.where(x < 0, f(0.0), f(-an.dome_left_drop))
    dome_q = ((x - side * f(0.45 * an.cav_ax)) / f(0.65 * an.cav_ax)) ** 2 + (
        (y - f(an.cav_cy + 0.05 * an.cav_ay)) / f(an.cav_ay)
    ) ** 2
    dome_z = dome_top - f(an.dome_height) * dome_q
    vb_d2 = x**2 + (y - f(an.vb_cy)) ** 2
    aorta_d2 = (x - f(an.aorta_c[0])) ** 2 + (y - f(an.aorta_c[1])) ** 2
    return _PlaneTerms(cav_q, med_q, heart_q, dome_z, vb_d2, aorta_d2)


def _cavity_scale(an: _Anatomy, z: np.ndarray | float) -> np.ndarray:
    """Relative size of the cavity ellipse at height z: 1 below the apex taper, 0 above the apex."""
    z = np.asarray(z, dtype=np.float32)
    t = np.clip((z - an.z_taper) / (an.z_top - an.z_taper), 0.0, 1.0)
    return np.sqrt(np.maximum(1.0 - t**2, 0.0)).astype(np.float32)


def _lung_mask(an: _Anatomy, terms: _PlaneTerms, z: np.ndarray | float, margin_mm: float = 0.0) -> np.ndarray:
    """True where (x, y, z) lies in a lung, at least ``margin_mm`` (approximately) inside it."""
    f = np.float32
    z = np.asarray(z, dtype=f)
    m = f(margin_mm)
    scale = _cavity_scale(an, z) - m / f(min(an.cav_ax, an.cav_ay))
    inside = (terms.cav_q <= np.maximum(scale, 0.0) ** 2) & (scale > 0)
    inside &= terms.med_q > (1.0 + m / f(min(an.med_ax, an.med_ay))) ** 2
    hz = ((z - f(an.heart_c[2])) / f(an.heart_axes[2])) ** 2
    inside &= terms.heart_q + hz > (1.0 + m / f(min(an.heart_axes))) ** 2
    inside &= z > terms.dome_z + m
    inside &= terms.vb_d2 > (an.vb_r + 4.0 + margin_mm) ** 2
    inside &= (terms.aorta_d2 > (an.aorta_r + 2.0 + margin_mm) ** 2) | (z > an.z_arch)
    return inside


def _lung_points(an: _Anatomy, pts: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
    pts = np.atleast_2d(pts)
    return _lung_mask(an, _plane_terms(an, pts[:, 0], pts[:, 1]), pts[:, 2], margin_mm)


# ---------------------------------------------------------------------------------------------
# geometry helpers
# ---------------------------------------------------------------------------------------------


def _ellipse_signed_distance(
    x: np.ndarray, y: np.ndarray, a: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance (mm, > 0 inside) from points to the ellipse (x/a)² + (y/b)² = 1, and the
    closest ellipse points; bisection on the Lagrange parameter (exact to ~1e-6 mm)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    sx, sy = np.sign(x) + (x == 0), np.sign(y) + (y == 0)
    px, py = np.abs(x), np.maximum(np.abs(y), 1e-9)
    lo = np.full(px.shape, -min(a, b) ** 2 + 1e-12)
    hi = a * px + b * py + 1e-9
    for _ in range(48):
        t = 0.5 * (lo + hi)
        g = (a * px / (t + a * a)) ** 2 + (b * py / (t + b * b)) ** 2 - 1.0
        lo = np.where(g > 0, t, lo)
        hi = np.where(g > 0, hi, t)
    t = 0.5 * (lo + hi)
    qx, qy = a * a * px / (t + a * a), b * b * py / (t + b * b)
    dist = np.hypot(px - qx, py - qy)
    inside = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    return np.where(inside, dist, -dist), sx * qx, sy * qy


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = np.pi * (1.0 + 5**0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class _Grid(NamedTuple):
    """Voxel-centre coordinates (mm) along each axis and the spacing (x, y, z)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def box(self, lo_xyz: np.ndarray, hi_xyz: np.ndarray) -> Optional[tuple[slice, slice, slice]]:
        """Index slices (z, y, x) of voxels whose centres may lie in the mm box [lo, hi]."""
        out = []
        for axis, coords in zip((2, 1, 0), (self.z, self.y, self.x)):
            sp, org = self.spacing[axis], self.origin[axis]
            i0 = max(int(math.floor((lo_xyz[axis] - org) / sp)), 0)
            i1 = min(int(math.ceil((hi_xyz[axis] - org) / sp)) + 1, coords.size)
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return tuple(out)  # type: ignore[return-value]

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (z, y, x)-shaped coordinate arrays (mm) of a box: x, y, z."""
        zs, ys, xs = box
        return self.x[xs][None, None, :], self.y[ys][None, :, None], self.z[zs][:, None, None]


# ---------------------------------------------------------------------------------------------
# tumour shape and placement
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TumourShape:
    centre: np.ndarray  # (x, y, z) mm
    radius: float  # base radius R0 (mm)
    lobes: np.ndarray  # (J, 3) unit vectors
    weights: np.ndarray  # (J,)
    lobulation: float
    max_factor: float

    def factor(self, dirs: np.ndarray) -> np.ndarray:
        dots = np.clip(dirs @ self.lobes.T, 0.0, None)
        return 1.0 + self.lobulation * (dots**4 @ self.weights)

    @property
    def max_radius(self) -> float:
        return self.radius * self.max_factor


_NORMALISE_DIRS = _fibonacci_sphere(800)
_SURFACE_DIRS = _fibonacci_sphere(1200)


def _tumour_shape(tumour: TumourSpec, rng: np.random.Generator) -> _TumourShape:
    lobes = rng.normal(size=(6, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    weights = rng.uniform(0.4, 1.0, size=6)
    shape = _TumourShape(np.zeros(3), 1.0, lobes, weights, tumour.lobulation, 1.0)
    f = shape.factor(_NORMALISE_DIRS)
    radius = 0.5 * tumour.diameter_mm / float(np.mean(f**3)) ** (1.0 / 3.0)
    return dataclasses.replace(shape, radius=radius, max_factor=float(f.max()) * 1.02)




def _costal_gap(an: _Anatomy, shape: _TumourShape, centre: np.ndarray) -> float:
    """Smallest signed distance (mm) from the tumour surface to the costal pleura (cavity wall)."""
    pts = centre + _SURFACE_DIRS * (shape.radius * shape.factor(_SURFACE_DIRS))[:, None]
    sd, _, _ = _ellipse_signed_distance(pts[:, 0], pts[:, 1] - an.cav_cy, an.cav_ax, an.cav_ay)
    return float(sd.min())


class _Layout(NamedTuple):
    """A patient's anatomy and everything about the tumour drawn before it is rendered."""

    anatomy: _Anatomy
    side: str
    shape: _TumourShape
    n_tags: int
    tag_dirs: np.ndarray
    tag_radii: np.ndarray
    tag_hu: np.ndarray
    indent_radius: float
    candidates: np.ndarray  # (K, 2): cavity-ellipse angle (rad) and height z (mm) of the foot point
    feasible: np.ndarray  # (K,) bool: the cheap clearance test passed


_N_CANDIDATES = 64


def _layout(seed: int, tumour: TumourSpec) -> _Layout:
    """Draw the anatomy and the tumour's shape, extras and candidate sites from ``seed``.

    A candidate site is a point of the costal pleura; the tumour would sit on its inward normal.
    It is feasible when every other lung boundary (mediastinum, heart, spine, aorta, diaphragm,
    apex) stays at least ``max(gap, 0) + 6 mm`` (+ 2 mm slack) from the tumour, so the costal
    pleura is the nearest one."""
    anatomy_seq, tumour_seq = np.random.SeedSequence(seed).spawn(4)[:2]
    an = _draw_anatomy(np.random.default_rng(anatomy_seq))
    rng = np.random.default_rng(tumour_seq)
    side = tumour.side or ("right" if rng.random() < 0.55 else "left")
    shape = _tumour_shape(tumour, rng)
    n_tags = int(rng.integers(1, 4))
    tag_dirs = rng.uniform(-1.0, 1.0, size=(3, 3)) * np.array([1.0, 1.0, 0.5])
    tag_radii = rng.uniform(0.5, 0.9, size=3)
    tag_hu = rng.uniform(-60.0, 30.0, size=3)
    indent_radius = float(rng.uniform(3.5, 6.0))
    lateral = np.pi if side == "right" else 0.0
    angles = lateral + rng.uniform(-1.25, 1.25, _N_CANDIDATES)
    heights = rng.uniform(0.0, 1.0, _N_CANDIDATES)

    d = tumour.distance_to_pleura_mm
    r_max = shape.max_radius
    need = max(d, 0.0) + 6.0
    dome_top = 0.0 if side == "right" else -an.dome_left_drop
    z_lo, z_hi = dome_top + r_max + need + 5.0, an.z_taper - r_max - 5.0
    z = z_lo + heights * (z_hi - z_lo)
    centre = _candidate_centres(an, angles, z, r_max + d)
    cx, cy, cz = centre.T
    terms = _plane_terms(an, cx, cy)
    hz = ((cz - an.heart_c[2]) / an.heart_axes[2]) ** 2
    clear = np.minimum.reduce(
        [
            (np.sqrt(terms.med_q) - 1.0) * min(an.med_ax, an.med_ay),
            (np.sqrt(terms.heart_q + hz) - 1.0) * min(an.heart_axes),
            np.sqrt(terms.vb_d2) - an.vb_r - 4.0,
            np.where(cz - r_max < an.z_arch, np.sqrt(terms.aorta_d2) - an.aorta_r - 2.0, np.inf),
        ]
    )
    feasible = (clear - r_max >= need + 2.0) & (z_lo < z_hi)
    return _Layout(
        an, side, shape, n_tags, tag_dirs, tag_radii, tag_hu, indent_radius, np.stack([angles, z], axis=1), feasible
    )


def _candidate_centres(an: _Anatomy, angles: np.ndarray, z: np.ndarray, offset: np.ndarray | float) -> np.ndarray:
    """Points ``offset`` mm inward along the cavity normal from the ellipse points at ``angles``."""
    px, py = an.cav_ax * np.cos(angles), an.cav_cy + an.cav_ay * np.sin(angles)
    nx, ny = -np.cos(angles) / an.cav_ax, -np.sin(angles) / an.cav_ay
    norm = np.hypot(nx, ny)
    return np.stack([px + offset * nx / norm, py + offset * ny / norm, np.broadcast_to(z, px.shape)], axis=-1)


def _place_tumour(layout: _Layout, tumour: TumourSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y, z) mm of the tumour and the nearest costal-pleura point: the first feasible
    candidate site, moved along its normal until the gap to the costal pleura is exactly
    ``distance_to_pleura_mm``, and checked again there."""
    an, shape = layout.anatomy, layout.shape
    d = tumour.distance_to_pleura_mm
    r_max = shape.max_radius
    need = max(d, 0.0) + 6.0
    for angle, z in layout.candidates[layout.feasible]:
        inward = _unit(np.array([-np.cos(angle) / an.cav_ax, -np.sin(angle) / an.cav_ay, 0.0]))
        reach = float(np.max((_SURFACE_DIRS @ -inward) * shape.radius * shape.factor(_SURFACE_DIRS)))
        centre = _candidate_centres(an, np.array([angle]), np.array([z]), reach + d)[0]
        for _ in range(8):
            gap = _costal_gap(an, shape, centre)
            if abs(gap - d) < 1e-3:
                break
            centre = centre + inward * (d - gap)
        if abs(_costal_gap(an, shape, centre) - d) > 0.01:
            continue
        cx, cy, cz = centre
        terms = _plane_terms(an, np.array([cx]), np.array([cy]))
        hz = ((cz - an.heart_c[2]) / an.heart_axes[2]) ** 2
        clear = min(
            (math.sqrt(float(terms.med_q[0])) - 1.0) * min(an.med_ax, an.med_ay),
            (math.sqrt(float(terms.heart_q[0]) + hz) - 1.0) * min(an.heart_axes),
            math.sqrt(float(terms.vb_d2[0])) - an.vb_r - 4.0,
            math.sqrt(float(terms.aorta_d2[0])) - an.aorta_r - 2.0 if cz - r_max < an.z_arch else math.inf,
        )
        if clear - r_max >= need:
            _, fx, fy = _ellipse_signed_distance(np.array([cx]), np.array([cy - an.cav_cy]), an.cav_ax, an.cav_ay)
            return centre, np.array([float(fx[0]), float(fy[0]) + an.cav_cy, cz])
    raise ValueError(
        f"cannot place a {tumour.diameter_mm:.0f} mm tumour {d:.1f} mm from the pleura in this phantom's lungs; "
        "use a smaller tumour or gap, or another seed"
    )


def _ray_to_cavity(an: _Anatomy, start: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """First point where the ray start + λ·direction (λ > 0) leaves the cavity ellipse."""
    sx, sy = start[0] / an.cav_ax, (start[1] - an.cav_cy) / an.cav_ay
    dx, dy = direction[0] / an.cav_ax, direction[1] / an.cav_ay
    a, b, c = dx * dx + dy * dy, 2 * (sx * dx + sy * dy), sx * sx + sy * sy - 1.0
    lam = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
    return start + lam * direction


# ---------------------------------------------------------------------------------------------
# vessel tree
# ---------------------------------------------------------------------------------------------


class _VesselTree(NamedTuple):
    """Vessel segments: starts and ends (N, 3) in mm (x, y, z), radii (N,) in mm."""

    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray


def _vessel_tree(
    an: _Anatomy, rng: np.random.Generator, *, max_segments: int = 8000, min_radius: float = 0.3
) -> _VesselTree:
    """Branching pulmonary vessels of both lungs, grown generation by generation from the hila.

    Each segment is 6–9 radii + 2 mm long (at most 25 mm); it ends where it would come within
    3 mm of a lung boundary (and then stops branching), else it splits into a continuing branch
    (0.74–0.86 × r) and a side branch (0.55–0.72 × r, 34–63° off), both bent slightly away from
    the hilum. Thick branches come first; growth stops at ``min_radius`` or ``max_segments``.
    """
    hila, starts, dirs, radii = [], [], [], []
    for s in (-1.0, 1.0):
        hilum = np.array([an.med_cx + s * (an.med_ax + 8.0), an.cav_cy + an.hilum_dy, an.z_carina - 25.0])
        trunks = np.array(
            [
                (0.35 * s, 0.10, 0.93),
                (0.70 * s, -0.30, 0.65),
                (0.80 * s, -0.55, 0.15),
                (0.75 * s, 0.50, -0.10),
                (0.80 * s, 0.00, -0.45),
                (0.45 * s, -0.35, -0.82),
                (0.40 * s, 0.45, -0.80),
            ]
        )
        trunks = trunks + rng.normal(0.0, 0.12, trunks.shape)
        hila.append(np.repeat(hilum[None], len(trunks), axis=0))
        starts.append(np.repeat(hilum[None], len(trunks), axis=0))
        dirs.append(trunks / np.linalg.norm(trunks, axis=1, keepdims=True))
        radii.append(rng.uniform(3.0, 4.2, len(trunks)))
    hilum_of, start, direction, radius = (np.concatenate(v) for v in (hila, starts, dirs, radii))
    fractions = np.linspace(0.2, 1.0, 5)
    out_start, out_end, out_r = [], [], []
    n_out = 0
    while radius.size and n_out < max_segments:
        if radius.size > max_segments - n_out:  # keep the thickest within the budget
            keep = np.sort(np.argsort(-radius, kind="stable")[: max_segments - n_out])
            hilum_of, start, direction, radius = hilum_of[keep], start[keep], direction[keep], radius[keep]
        n = radius.size
        length = np.clip(radius * rng.uniform(6.0, 9.0, n) + 2.0, 3.0, 25.0)
        pts = start[:, None, :] + direction[:, None, :] * (length[:, None] * fractions)[:, :, None]
        inside = _lung_points(an, pts.reshape(-1, 3), margin_mm=3.0).reshape(n, len(fractions))
        n_ok = np.where(inside.all(axis=1), len(fractions), np.argmin(inside, axis=1))
        jitter = rng.normal(0.0, 0.25, (n, 3))
        side_axis = rng.normal(size=(n, 3))
        angle = rng.uniform(0.6, 1.1, n)
        r_main, r_side = radius * rng.uniform(0.74, 0.86, n), radius * rng.uniform(0.55, 0.72, n)
        drawn = n_ok > 0
        end = start + direction * (length * fractions[np.maximum(n_ok - 1, 0)])[:, None]
        out_start.append(start[drawn])
        out_end.append(end[drawn])
        out_r.append(radius[drawn])
        n_out += int(drawn.sum())
        grow = n_ok == len(fractions)
        outward = end - hilum_of
        outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
        main_dir = direction + jitter + 0.2 * outward
        perp = side_axis - np.sum(side_axis * direction, axis=1, keepdims=True) * direction
        perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
        side_dir = np.cos(angle)[:, None] * direction + np.sin(angle)[:, None] * perp + 0.2 * outward
        children = []
        for child_dir, child_r in ((main_dir, r_main), (side_dir, r_side)):
            ok = grow & (child_r >= min_radius)
            children.append((hilum_of[ok], end[ok], child_dir[ok], child_r[ok]))
        hilum_of, start, direction, radius = (np.concatenate([c[i] for c in children]) for i in range(4))
        direction = direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    return _VesselTree(np.concatenate(out_start), np.concatenate(out_end), np.concatenate(out_r))


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _render_anatomy(an: _Anatomy, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """HU (int16) and tissue labels (uint8) of the anatomy without vessels and tumour."""
    f = np.float32
    nz, ny, nx = grid.z.size, grid.y.size, grid.x.size
    hu = np.empty((nz, ny, nx), dtype=np.int16)
    tissue = np.empty((nz, ny, nx), dtype=np.uint8)
    h = np.empty((ny, nx), dtype=f)  # one float slice, reused
    X, Y = np.meshgrid(grid.x.astype(f), grid.y.astype(f))
    terms = _plane_terms(an, X, Y)

    body_q = (X / f(an.body_ax)) ** 2 + (Y / f(an.body_ay)) ** 2
    skin_q = (X / f(an.body_ax - an.skin)) ** 2 + (Y / f(an.body_ay - an.skin)) ** 2
    fat_q = (X / f(an.body_ax - an.skin - an.fat)) ** 2 + (Y / f(an.body_ay - an.skin - an.fat)) ** 2
    body = body_q <= 1.0
    fat_ring = (skin_q <= 1.0) & (fat_q > 1.0)
    aorta = terms.aorta_d2 <= an.aorta_r**2
    asc = (X - f(an.asc_c[0])) ** 2 + (Y - f(an.asc_c[1])) ** 2 <= an.asc_r**2
    tr_d2 = (X - f(an.trachea_c[0])) ** 2 + (Y - f(an.trachea_c[1])) ** 2
    trachea_wall, trachea_lumen = tr_d2 <= (an.trachea_r + 2.0) ** 2, tr_d2 <= an.trachea_r**2
    trachea_wall &= body
    trachea_lumen &= body
    liver_side = X < 0

    # lung attenuation: gravity gradient (denser posteriorly) plus a faint low-frequency texture
    lung_hu = f(an.hu_lung) + f(an.lung_gradient) * np.clip((Y - f(an.cav_cy)) / f(an.cav_ay), -1.0, 1.0)
    for phase, k, azimuth, amp in an.texture:
        lung_hu += f(amp) * np.cos(f(k) * (np.cos(azimuth) * X + np.sin(azimuth) * Y) + f(phase)).astype(f)

    # spine (vertebral body with cortex, canal, neural arch, spinous process) and sternum
    vb_d = np.sqrt(terms.vb_d2)
    vb = vb_d <= an.vb_r
    canal_y = an.vb_cy + an.vb_r + 8.0
    canal_d = np.sqrt(X**2 + (Y - f(canal_y)) ** 2)
    canal = canal_d <= 7.0
    arch = (canal_d > 7.0) & (canal_d <= 13.0) & (Y >= f(an.vb_cy + an.vb_r))
    spinous = (np.abs(X) <= 4.0) & (Y > f(canal_y)) & (Y <= f(canal_y + 32.0))
    posterior_bone = (arch | spinous) & (skin_q <= 1.0)
    sternum_q = (X / f(14.0)) ** 2 + ((Y - f(an.cav_cy - an.cav_ay - 7.0)) / f(6.0)) ** 2
    sternum = sternum_q <= 1.0

    # chest-wall band with ribs: approximate distance (mm) outside the cavity ellipse
    rho = np.sqrt(terms.cav_q)
    grad = np.sqrt((X / f(an.cav_ax**2)) ** 2 + ((Y - f(an.cav_cy)) / f(an.cav_ay**2)) ** 2) / np.maximum(rho, f(1e-6))
    depth = (rho - 1.0) / np.maximum(grad, f(1e-6))
    band_idx = np.nonzero((depth > 0.0) & (depth < an.rib_depth + an.rib_thick + 1.0) & body)
    band_depth = depth[band_idx]
    phi = np.arctan2(np.abs(X[band_idx]) / f(an.cav_ax), (Y[band_idx] - f(an.cav_cy)) / f(an.cav_ay))
    band_drop = f(an.rib_drop) * (1.0 - np.cos(phi)) / 2.0
    band_rib = (phi >= 0.25) & (phi <= an.rib_phi_max)
    band_cart = (phi > an.rib_phi_max) & (phi <= an.rib_phi_max + 0.35)
    band_dr2 = ((band_depth - f(an.rib_depth)) / f(an.rib_thick)) ** 2

    no_lung = np.zeros((ny, nx), dtype=bool)
    for k, z in enumerate(grid.z.astype(f)):
        t = tissue[k]
        h.fill(f(-1000.0))
        t.fill(_AIR)
        np.copyto(h, f(an.hu_muscle), where=body)
        np.copyto(t, _SOFT, where=body)
        np.copyto(h, f(an.hu_fat), where=fat_ring)
        np.copyto(t, _FAT, where=fat_ring)
        scale = float(_cavity_scale(an, z))
        lung = no_lung
        if scale > 0:
            cav = terms.cav_q <= scale**2
            abdomen = cav & (z <= terms.dome_z)
            np.copyto(h, f(an.hu_liver), where=abdomen & liver_side)
            np.copyto(h, f(an.hu_muscle), where=abdomen & ~liver_side)
            np.copyto(t, _SOFT, where=abdomen)
            thorax = cav & ~abdomen
            lung = _lung_mask(an, terms, z)
            np.copyto(h, lung_hu, where=lung)
            np.copyto(t, _LUNG, where=lung)
            mediast = thorax & ~lung
            np.copyto(h, f(an.hu_fat + 10.0), where=mediast)
            np.copyto(t, _FAT, where=mediast)
            hz = ((z - an.heart_c[2]) / an.heart_axes[2]) ** 2
            if hz < 1.0:
                heart = thorax & (terms.heart_q <= 1.0 - hz)
                np.copyto(h, f(an.hu_blood), where=heart)
                np.copyto(t, _SOFT, where=heart)
            asc_z = an.heart_c[2] + 0.5 * an.heart_axes[2] <= z <= an.z_arch
            vessels = (aorta & (z <= an.z_arch)) | (asc & asc_z)
            vessels &= mediast
            np.copyto(h, f(an.hu_blood), where=vessels)
            np.copyto(t, _SOFT, where=vessels)
        # everything below stays outside the lungs, so the lung boundary is the one placement used
        if z >= an.z_carina:
            np.copyto(h, f(an.hu_muscle), where=trachea_wall & ~lung)
            np.copyto(t, _SOFT, where=trachea_wall & ~lung)
            np.copyto(h, f(-990.0), where=trachea_lumen & ~lung)
            np.copyto(t, _AIRWAY, where=trachea_lumen & ~lung)
        # spine: discs between vertebral bodies, canal with CSF
        disc = (z - an.vert_z0) % an.vert_pitch < an.disc_height
        if disc:
            np.copyto(h, f(80.0), where=vb)
            np.copyto(t, _SOFT, where=vb)
        else:
            vb_hu = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * np.clip((vb_d - (an.vb_r - 2.0)) / 2.0, 0.0, 1.0)
            np.copyto(h, vb_hu, where=vb)
            np.copyto(t, _BONE, where=vb)
        arch_here, canal_here = posterior_bone & ~lung, canal & ~lung
        np.copyto(h, f(an.hu_cortex - 100.0), where=arch_here)
        np.copyto(t, _BONE, where=arch_here)
        np.copyto(h, f(10.0), where=canal_here)
        np.copyto(t, _SOFT, where=canal_here)
        if -60.0 <= z <= an.z_taper - 20.0:
            sternum_hu = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * np.clip(sternum_q, 0.0, 1.0) ** 2
            np.copyto(h, sternum_hu, where=sternum)
            np.copyto(t, _BONE, where=sternum)
        # ribs and costal cartilage: cross-sections along rib arcs that slope down anteriorly
        if -90.0 <= z <= an.z_taper + 20.0:
            rel = (z + band_drop - f(an.rib_z0)) % f(an.rib_pitch) - f(0.5 * an.rib_pitch)
            q = band_dr2 + (rel / f(an.rib_half_height)) ** 2
            in_rib = q <= 1.0
            rib = in_rib & band_rib
            cart = in_rib & band_cart
            sub = (band_idx[0][rib], band_idx[1][rib])
            h[sub] = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * q[rib] ** 2
            t[sub] = _BONE
            sub = (band_idx[0][cart], band_idx[1][cart])
            h[sub] = f(120.0)
            t[sub] = _SOFT
        np.rint(h, out=h)
        hu[k] = h
    return hu, tissue


_LUNGISH = np.zeros(256, dtype=bool)
_LUNGISH[[_LUNG, _VESSEL, _STRAND]] = True


def _paint_tube(
    grid: _Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    radius: float,
    value: float,
    label: int,
    allowed: np.ndarray,
    edge_mm: float,
) -> None:
    """Blend a capsule (segment a→b, ``radius`` mm) of ``value`` HU into voxels whose label is
    allowed, with a partial-volume edge of ``edge_mm``; voxels at least half covered get ``label``."""
    pad = radius + edge_mm
    box = grid.box(np.minimum(a, b) - pad, np.maximum(a, b) + pad)
    if box is None:
        return
    x, y, z = grid.coords(box)
    ab = b - a
    l2 = max(float(ab @ ab), 1e-9)
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / l2, 0.0, 1.0)
    d2 = (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2
    frac = np.clip((radius - np.sqrt(d2)) / edge_mm + 0.5, 0.0, 1.0) * min(1.0, 2.0 * radius / edge_mm)
    sub_t = tissue[box]
    sel = (frac > 0.0) & allowed[sub_t]
    if not sel.any():
        return
    sub_h = hu[box]
    old = sub_h[sel].astype(np.float32)
    sub_h[sel] = np.rint(old + frac[sel].astype(np.float32) * (np.float32(value) - old))
    sub_t[sel & (frac >= 0.5)] = label


def _paint_lines(
    grid: _Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    radii: np.ndarray,
    value: float,
    allowed: np.ndarray,
) -> None:
    """Draw vessels thinner than a voxel as one-voxel lines whose strength is the fraction of a
    pixel their cross-section covers (π r² / (dx · dy)); the scanner blur then spreads them."""
    if radii.size == 0:
        return
    sp = np.asarray(grid.spacing)
    step = 0.5 * float(sp.min())
    lengths = np.linalg.norm(ends - starts, axis=1)
    counts = np.maximum(np.ceil(lengths / step).astype(int), 1) + 1
    seg = np.repeat(np.arange(radii.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = offsets / np.repeat(counts - 1, counts)
    pts = starts[seg] + (ends[seg] - starts[seg]) * frac[:, None]
    idx = np.rint((pts - np.asarray(grid.origin)) / sp).astype(np.int64)[:, ::-1]  # (z, y, x)
    shape = np.asarray(hu.shape)
    ok = np.all((idx >= 0) & (idx < shape), axis=1)
    if not ok.any():
        return
    strength = np.minimum(1.0, np.pi * radii[seg[ok]] ** 2 / (sp[0] * sp[1]))
    flat = np.ravel_multi_index(tuple(idx[ok].T), hu.shape)
    order = np.lexsort((-strength, flat))  # strongest first within each voxel
    flat, strength = flat[order], strength[order]
    first = np.concatenate([[True], flat[1:] != flat[:-1]])
    flat, strength = flat[first], strength[first].astype(np.float32)
    hu_flat, tissue_flat = hu.reshape(-1), tissue.reshape(-1)
    sel = allowed[tissue_flat[flat]]
    flat, strength = flat[sel], strength[sel]
    old = hu_flat[flat].astype(np.float32)
    hu_flat[flat] = np.rint(old + strength * (np.float32(value) - old))
    tissue_flat[flat[strength >= 0.5]] = _VESSEL


def _paint_cone(
    grid: _Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    base: np.ndarray,
    axis: np.ndarray,
    height: float,
    radius: float,
    value: float,
) -> None:
    """Fill a cone (base centre ``base`` on the pleura, apex ``height`` mm along ``axis`` into the
    lung) with chest-wall tissue: the pleural indentation."""
    apex = base + axis * height
    box = grid.box(np.minimum(base, apex) - radius - 1.0, np.maximum(base, apex) + radius + 1.0)
    if box is None:
        return
    x, y, z = grid.coords(box)
    along = (x - base[0]) * axis[0] + (y - base[1]) * axis[1] + (z - base[2]) * axis[2]
    r2 = (
        (x - base[0] - along * axis[0]) ** 2
        + (y - base[1] - along * axis[1]) ** 2
        + (z - base[2] - along * axis[2]) ** 2
    )
    inside = (along >= -1.0) & (np.sqrt(r2) <= radius * (1.0 - along / height)) & _LUNGISH[tissue[box]]
    hu[box][inside] = round(value)
    tissue[box][inside] = _SOFT


def _paint_tumour(
    grid: _Grid, hu: np.ndarray, tissue: np.ndarray, roi: np.ndarray, shape: _TumourShape, tumour: TumourSpec
) -> None:
    c = shape.centre
    box = grid.box(c - shape.max_radius - 1.0, c + shape.max_radius + 1.0)
    if box is None:
        raise ValueError("the tumour lies outside the field of view")
    x, y, z = grid.coords(box)
    vx, vy, vz = np.broadcast_arrays(x - c[0], y - c[1], z - c[2])
    rho = np.sqrt(vx**2 + vy**2 + vz**2)
    dirs = np.stack([vx, vy, vz], axis=-1) / np.maximum(rho, 1e-6)[..., None]
    outline = shape.radius * shape.factor(dirs.reshape(-1, 3)).reshape(rho.shape)
    sub_t = tissue[box]
    inside = (rho <= outline) & (sub_t != _BONE) & (sub_t != _AIR) & (sub_t != _AIRWAY)
    if tumour.solid_fraction >= 1.0:
        value = np.full(rho.shape, tumour.solid_hu, dtype=np.float32)
    else:
        core = np.clip((tumour.solid_fraction * outline - rho) / 1.5 + 0.5, 0.0, 1.0)
        value = (tumour.ggo_hu + (tumour.solid_hu - tumour.ggo_hu) * core).astype(np.float32)
    sub_h = hu[box]
    lungish = _LUNGISH[sub_t]
    # ground glass lets vessels show through; the part in the chest wall is solid tumour
    value = np.where(lungish, np.maximum(value, sub_h), np.float32(tumour.solid_hu))
    sub_h[inside] = np.rint(value[inside])
    sub_t[inside] = _TUMOUR
    roi[box][inside] = 1


def _gaussian_weights(sigma: float, truncate: float = 3.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def _apply_scanner(hu: np.ndarray, spec: PhantomSpec, rng: np.random.Generator) -> None:
    """In place on the int16 HU volume: Gaussian blur (in-plane PSF ``blur_sigma_mm`` combined
    with the pixel aperture; slice profile of FWHM = slice thickness along z, 'reflect' edges),
    then white noise of ``noise_sd_hu`` and clipping to [−1024, 3071] HU. Works slice by slice,
    keeping only the 2·r + 1 blurred slices the z kernel needs."""
    nz = hu.shape[0]
    sx, sy, sz = spec.spacing_xyz
    sig_x = math.sqrt(spec.blur_sigma_mm**2 + sx**2 / 12.0) / sx
    sig_y = math.sqrt(spec.blur_sigma_mm**2 + sy**2 / 12.0) / sy
    sig_z = spec.thickness_mm / 2.3548 / sz
    wz = _gaussian_weights(sig_z) if sig_z >= 0.2 else np.ones(1, dtype=np.float32)
    r = wz.size // 2
    cache: dict[int, np.ndarray] = {}

    def blurred(j: int) -> np.ndarray:
        j = -j - 1 if j < 0 else (2 * nz - j - 1 if j >= nz else j)
        j = min(max(j, 0), nz - 1)
        if j not in cache:
            plane = hu[j].astype(np.float32)
            if sig_y >= 0.2:
                ndimage.gaussian_filter1d(plane, sig_y, axis=0, output=plane, truncate=3.0)
            if sig_x >= 0.2:
                ndimage.gaussian_filter1d(plane, sig_x, axis=1, output=plane, truncate=3.0)
            cache[j] = plane
        return cache[j]

    out = np.empty(hu.shape[1:], dtype=np.float32)
    noise_sd = np.float32(spec.noise_sd_hu)
    for k in range(nz):
        np.multiply(blurred(k - r), wz[0], out=out)
        for i in range(1, wz.size):
            out += wz[i] * blurred(k - r + i)
        if noise_sd > 0:
            out += rng.standard_normal(out.shape, dtype=np.float32) * noise_sd
        np.rint(out, out=out)
        np.clip(out, _HU_MIN, _HU_MAX, out=out)
        for j in [j for j in cache if j < k - r]:
            del cache[j]
        hu[k] = out


def _view_centre(preferred: float, target: float, reach: float, half_fov: float, name: str) -> float:
    """Shift ``preferred`` as little as possible so [target − reach, target + reach] is in view."""
    if half_fov < reach:
        raise ValueError(f"the {name} field of view ({2 * half_fov:.0f} mm) is too small for the tumour")
    return float(np.clip(preferred, target + reach - half_fov, target - reach + half_fov))


def make_phantom(spec: PhantomSpec) -> Phantom:
    """Render one phantom (see the module docstring). Same spec ⇒ identical arrays."""
    _check(isinstance(spec, PhantomSpec), "spec must be a PhantomSpec")
    tree_seq, noise_seq = np.random.SeedSequence(spec.seed).spawn(4)[2:]
    tumour = spec.tumour
    layout = _layout(spec.seed, tumour)
    an, side, shape = layout.anatomy, layout.side, layout.shape
    centre, foot = _place_tumour(layout, tumour)
    shape = dataclasses.replace(shape, centre=centre)

    # framing: centre on the chest, shifted only as needed to keep the tumour in view
    nz, ny, nx = spec.shape_zyx
    sx, sy, sz = spec.spacing_xyz
    reach = shape.max_radius + 10.0
    jx, jy, jz = an.view_jitter
    vx = _view_centre(jx, centre[0], reach, 0.5 * (nx - 1) * sx, "in-plane")
    vy = _view_centre(jy, centre[1], reach, 0.5 * (ny - 1) * sy, "in-plane")
    vz = _view_centre(0.45 * an.lung_height + jz, centre[2], reach, 0.5 * (nz - 1) * sz, "z")
    origin = (vx - 0.5 * (nx - 1) * sx, vy - 0.5 * (ny - 1) * sy, vz - 0.5 * (nz - 1) * sz)
    grid = _Grid(
        x=origin[0] + sx * np.arange(nx),
        y=origin[1] + sy * np.arange(ny),
        z=origin[2] + sz * np.arange(nz),
        spacing=(sx, sy, sz),
        origin=origin,
    )

    hu, tissue = _render_anatomy(an, grid)
    edge = float(min(sx, sy))
    d = tumour.distance_to_pleura_mm
    to_pleura = _unit(foot - centre)

    # pleural tags (strands tumour → pleura) and indentation (cone of chest wall at the pleura)
    tag_ends = []
    if tumour.pleural_tag:
        for k in range(layout.n_tags):
            direction = _unit(to_pleura + 0.5 * layout.tag_dirs[k] / max(np.linalg.norm(layout.tag_dirs[k]), 1.0))
            start = centre + direction * shape.radius * float(shape.factor(direction[None])[0]) * 0.9
            end = _ray_to_cavity(an, start, direction)
            tag_ends.append(end)
            radius, value = float(layout.tag_radii[k]), float(layout.tag_hu[k])
            _paint_tube(grid, hu, tissue, start, end + 1.5 * direction, radius, value, _STRAND, _LUNGISH, edge)
    indentation_depth = 0.0
    if tumour.pleural_indentation:
        base = tag_ends[0] if tag_ends else foot
        inward = -_unit(np.array([base[0] / an.cav_ax**2, (base[1] - an.cav_cy) / an.cav_ay**2, 0.0]))
        indentation_depth = float(min(0.4 * d, 6.0))
        _paint_cone(grid, hu, tissue, base, inward, indentation_depth, layout.indent_radius, an.hu_muscle - 20.0)

    lung_only = np.zeros(256, dtype=bool)
    lung_only[[_LUNG, _VESSEL]] = True
    tree = _vessel_tree(an, np.random.default_rng(tree_seq))
    thick = tree.radius >= 0.75 * edge
    for a, b, r in zip(tree.start[thick], tree.end[thick], tree.radius[thick]):
        _paint_tube(grid, hu, tissue, a, b, float(r), an.hu_blood, _VESSEL, lung_only, edge)
    _paint_lines(grid, hu, tissue, tree.start[~thick], tree.end[~thick], tree.radius[~thick], an.hu_blood, lung_only)
    # main bronchi inside the mediastinum: wall then air lumen, from the carina towards each hilum
    carina = np.array([an.trachea_c[0], an.trachea_c[1], an.z_carina])
    wall_ok = np.zeros(256, dtype=bool)
    wall_ok[[_FAT, _SOFT]] = True
    for s in (-1.0, 1.0):
        hilum = np.array([an.med_cx + s * (an.med_ax - 4.0), an.cav_cy + an.hilum_dy, an.z_carina - 25.0])
        _paint_tube(grid, hu, tissue, carina, hilum, 7.5, an.hu_muscle, _SOFT, wall_ok, edge)
        lumen_ok = wall_ok.copy()
        lumen_ok[_AIRWAY] = True
        _paint_tube(grid, hu, tissue, carina, hilum, 5.5, -990.0, _AIRWAY, lumen_ok, edge)

    roi = np.zeros(hu.shape, dtype=np.uint8)
    _paint_tumour(grid, hu, tissue, roi, shape, tumour)

    _apply_scanner(hu, spec, np.random.default_rng(noise_seq))

    geometry = dict(spacing_xyz=spec.spacing_xyz, origin_xyz=origin)
    roi_voxels = int(np.count_nonzero(roi))
    truth = PhantomTruth(
        case_id=spec.case_id,
        seed=spec.seed,
        scanner=spec.scanner,
        shape_zyx=spec.shape_zyx,
        spacing_xyz=spec.spacing_xyz,
        slice_thickness_mm=spec.thickness_mm,
        noise_sd_hu=spec.noise_sd_hu,
        blur_sigma_mm=spec.blur_sigma_mm,
        diameter_mm=tumour.diameter_mm,
        solid_fraction=tumour.solid_fraction,
        distance_to_pleura_mm=d,
        pleural_contact=tumour.pleural_contact,
        pleural_tag=tumour.pleural_tag,
        n_pleural_tags=layout.n_tags if tumour.pleural_tag else 0,
        pleural_indentation=tumour.pleural_indentation,
        indentation_depth_mm=indentation_depth,
        side=side,
        lobulation=tumour.lobulation,
        solid_hu=tumour.solid_hu,
        ggo_hu=tumour.ggo_hu,
        tumour_centre_xyz_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        roi_voxels=roi_voxels,
        roi_volume_mm3=roi_voxels * sx * sy * sz,
    )
    return Phantom(
        ct=Volume(hu, **geometry),  # type: ignore[arg-type]
        roi=Volume(roi, **geometry),  # type: ignore[arg-type]
        tissue=Volume(tissue, **geometry),  # type: ignore[arg-type]
        truth=truth,
    )


# ---------------------------------------------------------------------------------------------
# cohorts on disk
# ---------------------------------------------------------------------------------------------


def _truth_columns(truth: PhantomTruth) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(truth):
        if f.name == "case_id":
            continue
        value = getattr(truth, f.name)
        if f.name == "shape_zyx":
            out.update({"sim_shape_z": value[0], "sim_shape_y": value[1], "sim_shape_x": value[2]})
        elif f.name in ("spacing_xyz", "tumour_centre_xyz_mm"):
            stem = "sim_spacing" if f.name == "spacing_xyz" else "sim_tumour_centre"
            unit = "_mm"
            out.update({f"{stem}_{axis}{unit}": v for axis, v in zip("xyz", value)})
        elif isinstance(value, bool):
            out[f"sim_{f.name}"] = int(value)
        else:
            out[f"sim_{f.name}"] = value
    return out


def write_cohort(
    out_dir: Union[str, os.PathLike],
    *,
    n: int,
    seed: int,
    size: str = "small",
    scanner: Union[ScannerProfile, str, None] = None,
    n_slices: Optional[int] = None,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Path:
    """Draw and render ``n`` cases into ``out_dir`` and return the path of its ``clinical.csv``.

    Writes ``case_0000_ct.nii.gz`` (int16 HU) and ``case_0000_roi.nii.gz`` (uint8 {0, 1}) per case
    and ``clinical.csv`` with columns case_id, ct_path, roi_path (relative to the CSV's folder),
    CEA (ng/mL), CA125 (U/mL), age (years), label, p_true, then ``sim_*`` true parameters.
    Case i draws from ``SeedSequence(seed).spawn``'s i-th child, so the first cases of a cohort
    do not depend on ``n``, and another ``scanner`` with the same seed gives the same patients,
    tumours and labels on different scanners.

    Args:
        out_dir: folder to write (created if missing).
        n: number of cases (>= 1).
        seed: cohort seed (>= 0).
        size: "small", "medium" or "clinical".
        scanner: a :class:`ScannerProfile`, a name in ``SCANNER_PROFILES`` or None (standard).
        n_slices: overrides the preset's number of slices.
        overwrite: allow replacing an existing ``clinical.csv``.
        progress: called as ``progress(done, n)`` after each case.
    """
    _check(isinstance(n, (int, np.integer)) and n >= 1, f"n must be an int >= 1, got {n!r}")
    _check(isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be an int >= 0, got {seed!r}")
    _check_size(size)
    profile = _resolve_scanner(scanner)
    out = Path(out_dir)
    csv_path = out / "clinical.csv"
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} already exists; choose an empty folder or pass overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, child in enumerate(np.random.SeedSequence(int(seed)).spawn(int(n))):
        case = sample_case(np.random.default_rng(child), size=size, case_index=i, scanner=profile, n_slices=n_slices)
        phantom = make_phantom(case.spec)
        cid = case.spec.case_id
        ct_name, roi_name = f"{cid}_ct.nii.gz", f"{cid}_roi.nii.gz"
        sitk.WriteImage(phantom.ct.to_sitk(), str(out / ct_name), useCompression=True)
        sitk.WriteImage(phantom.roi.to_sitk(), str(out / roi_name), useCompression=True)
        row: dict[str, object] = {
            "case_id": cid,
            "ct_path": ct_name,
            "roi_path": roi_name,
            "CEA": round(case.clinical.cea_ng_ml, 4),
            "CA125": round(case.clinical.ca125_u_ml, 4),
            "age": round(case.clinical.age_years, 2),
            "label": case.label,
            "p_true": case.p_true,
            "sim_size": size,
        }
        row.update(_truth_columns(phantom.truth))
        rows.append(row)
        if progress is not None:
            progress(i + 1, int(n))
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    return csv_path
