"""Settings and records of the synthetic phantoms (the generative model is described in
:mod:`pipeline.synth`).

Contract: pure data with validation, no drawing and no images. Every spec checks its values when
built and raises ``ValueError`` with one sentence naming the field. Units: mm, HU, CEA ng/mL,
CA125 U/mL, age in years. Array shapes are (z, y, x) (``shape_zyx``); spacings and origins follow
ITK's (x, y, z) order (``spacing_xyz``, ``tumour_centre_xyz_mm``, physical LPS mm).

Holds the tissue codes (``TISSUE_LABELS``), the size presets, the scanner profiles,
:class:`TumourSpec`, :class:`PhantomSpec`, the rendered :class:`Phantom` and its
:class:`PhantomTruth`, the clinical draw, the true VPI :class:`LabelModel`, and :func:`grid_for`
(a size preset + one scanner draw -> shape (z, y, x) and spacing (x, y, z) mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union

import numpy as np

from pipeline.core.volume import Volume

__all__ = [
    "TISSUE_LABELS",
    "SIZE_PRESETS",
    "SCANNER_PROFILES",
    "ScannerProfile",
    "TumourSpec",
    "PhantomSpec",
    "PhantomTruth",
    "GENERATION_3_TRUTH_FIELDS",
    "Phantom",
    "ClinicalDraw",
    "LabelModel",
    "LABEL_MODEL",
    "SampledCase",
    "check",
    "check_size",
    "resolve_scanner",
    "grid_for",
]

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

#: (n_slices, rows, columns) of the size presets.
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "small": (64, 128, 128),
    "medium": (100, 256, 256),
    "clinical": (300, 512, 512),
}
_Z_COVERAGE_MM = (150.0, 400.0)


def check(cond: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``cond`` holds."""
    if not cond:
        raise ValueError(message)


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    check(
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
        sharpening: range of the reconstruction kernel's edge enhancement (unsharp-mask amount, 0 =
            none; sharp "lung" kernels about 0.5–1.0). Drawn by generation 3 only.
        noise_grain_mm: range of the noise correlation length (mm, Gaussian SD; 0 = white noise;
            soft kernels give coarser grain). Drawn by generation 3 only.
        hu_offset: range of the HU calibration offset (HU, added after the scanner). Generation 3.
        hu_scale: range of the HU calibration slope (1 = exact). Generation 3.
    """

    name: str = "standard"
    pixel_spacing_mm: tuple[float, float] = (0.6, 0.9)
    field_of_view_mm: tuple[float, float] = (320.0, 380.0)
    slice_thickness_mm: tuple[float, ...] = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
    noise_sd_hu: tuple[float, float] = (8.0, 25.0)
    blur_sigma_mm: tuple[float, float] = (0.3, 0.7)
    sharpening: tuple[float, float] = (0.0, 0.0)
    noise_grain_mm: tuple[float, float] = (0.0, 0.0)
    hu_offset: tuple[float, float] = (0.0, 0.0)
    hu_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("pixel_spacing_mm", "field_of_view_mm", "slice_thickness_mm", "noise_sd_hu", "blur_sigma_mm",
                     "sharpening", "noise_grain_mm", "hu_offset", "hu_scale"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        _check_range("pixel_spacing_mm", self.pixel_spacing_mm, 0.1, 5.0)
        _check_range("field_of_view_mm", self.field_of_view_mm, 200.0, 600.0)
        check(
            len(self.slice_thickness_mm) >= 1 and all(0.1 <= t <= 10.0 for t in self.slice_thickness_mm),
            f"slice_thickness_mm must list thicknesses within [0.1, 10] mm, got {self.slice_thickness_mm}",
        )
        _check_range("noise_sd_hu", self.noise_sd_hu, 0.0, 200.0)
        _check_range("blur_sigma_mm", self.blur_sigma_mm, 0.0, 5.0)
        _check_range("sharpening", self.sharpening, 0.0, 3.0)
        _check_range("noise_grain_mm", self.noise_grain_mm, 0.0, 5.0)
        _check_range("hu_offset", self.hu_offset, -100.0, 100.0)
        _check_range("hu_scale", self.hu_scale, 0.8, 1.2)


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
            [0, 1]; 1 is a solid tumour, below 1 a part-solid one with a ground-glass halo, 0 a
            pure ground-glass one.
        solid_hu: attenuation (HU) of the solid part.
        ggo_hu: attenuation (HU) of the ground-glass halo.
        pleural_tag: draw 1–3 thin strands from the tumour to the pleura (needs a gap > 1 mm).
        pleural_indentation: pull a small cone of chest wall towards the tumour (gap > 2 mm).
        lobulation: amplitude of the lobes (0 is a sphere).
        side: "right" or "left" lung; None draws it from the phantom seed.
        axes: relative semi-axes (x, y, z) of the ellipsoid the lobulated shape is stretched on,
            before the volume is set by ``diameter_mm``; (1, 1, 1) is the round tumour of
            generation 2.
        fissure_gap_mm: gap (mm) between the tumour surface and an interlobar fissure drawn through
            the tumour's lung (<= 0: the tumour reaches the fissure); None draws no fissure.
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
    axes: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fissure_gap_mm: Optional[float] = None

    def __post_init__(self) -> None:
        check(5.0 <= self.diameter_mm <= 110.0, f"diameter_mm must be within [5, 110] mm, got {self.diameter_mm}")
        check(
            -15.0 <= self.distance_to_pleura_mm <= 30.0,
            f"distance_to_pleura_mm must be within [-15, 30] mm, got {self.distance_to_pleura_mm}",
        )
        check(0.0 <= self.solid_fraction <= 1.0, f"solid_fraction must be in [0, 1], got {self.solid_fraction}")
        object.__setattr__(self, "axes", tuple(float(a) for a in self.axes))
        check(len(self.axes) == 3 and all(0.3 <= a <= 3.0 for a in self.axes),
              f"axes must be 3 relative semi-axes within [0.3, 3], got {self.axes}")
        check(self.fissure_gap_mm is None or -10.0 <= self.fissure_gap_mm <= 60.0,
              f"fissure_gap_mm must be None or within [-10, 60] mm, got {self.fissure_gap_mm}")
        check(-100.0 <= self.solid_hu <= 150.0, f"solid_hu must be within [-100, 150] HU, got {self.solid_hu}")
        check(-800.0 <= self.ggo_hu <= -100.0, f"ggo_hu must be within [-800, -100] HU, got {self.ggo_hu}")
        check(0.0 <= self.lobulation <= 0.5, f"lobulation must be within [0, 0.5], got {self.lobulation}")
        check(self.side in (None, "right", "left"), f"side must be 'right', 'left' or None, got {self.side!r}")
        check(
            not self.pleural_tag or self.distance_to_pleura_mm > 1.0,
            "pleural_tag needs distance_to_pleura_mm > 1 mm (a tag bridges a gap)",
        )
        check(
            not self.pleural_indentation or self.distance_to_pleura_mm > 2.0,
            "pleural_indentation needs distance_to_pleura_mm > 2 mm",
        )

    @property
    def pleural_contact(self) -> bool:
        return self.distance_to_pleura_mm <= 0.0

    @property
    def chest_wall_invasion(self) -> bool:
        """The tumour crosses the costal pleura into the chest wall (gap < 0)."""
        return self.distance_to_pleura_mm < 0.0

    @property
    def fissure_contact(self) -> bool:
        return self.fissure_gap_mm is not None and self.fissure_gap_mm <= 0.0


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
        generation: phantom generation (2 or 3) the spec was drawn by (bookkeeping; the fields
            below are what generation 3 changes, and their defaults draw generation 2 exactly).
        sharpening: kernel edge enhancement (unsharp-mask amount; 0 = none).
        noise_grain_mm: noise correlation length (mm, Gaussian SD; 0 = white noise).
        hu_offset: HU calibration offset (HU) applied after blur and noise.
        hu_scale: HU calibration slope applied after blur and noise.
        extrapleural_fat_mm: thickness (mm) of the extrapleural fat line drawn just outside the
            costal pleura (0 = none); a tumour invading the chest wall replaces it.
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
    generation: int = 2
    sharpening: float = 0.0
    noise_grain_mm: float = 0.0
    hu_offset: float = 0.0
    hu_scale: float = 1.0
    extrapleural_fat_mm: float = 0.0

    def __post_init__(self) -> None:
        check(self.generation in (2, 3), f"generation must be 2 or 3, got {self.generation!r}")
        check(0.0 <= self.sharpening <= 3.0, f"sharpening must be within [0, 3], got {self.sharpening}")
        check(0.0 <= self.noise_grain_mm <= 5.0, f"noise_grain_mm must be within [0, 5] mm, got {self.noise_grain_mm}")
        check(-100.0 <= self.hu_offset <= 100.0, f"hu_offset must be within [-100, 100] HU, got {self.hu_offset}")
        check(0.8 <= self.hu_scale <= 1.2, f"hu_scale must be within [0.8, 1.2], got {self.hu_scale}")
        check(0.0 <= self.extrapleural_fat_mm <= 5.0,
              f"extrapleural_fat_mm must be within [0, 5] mm, got {self.extrapleural_fat_mm}")
        object.__setattr__(self, "shape_zyx", tuple(int(s) for s in self.shape_zyx))
        object.__setattr__(self, "spacing_xyz", tuple(float(s) for s in self.spacing_xyz))
        check(
            len(self.shape_zyx) == 3 and min(self.shape_zyx) >= 8,
            f"shape_zyx must be 3 sizes of at least 8 voxels, got {self.shape_zyx}",
        )
        check(
            len(self.spacing_xyz) == 3 and all(0.05 <= s <= 20.0 for s in self.spacing_xyz),
            f"spacing_xyz must be 3 spacings within [0.05, 20] mm, got {self.spacing_xyz}",
        )
        check(
            self.slice_thickness_mm is None or 0.1 <= self.slice_thickness_mm <= 20.0,
            f"slice_thickness_mm must be within [0.1, 20] mm, got {self.slice_thickness_mm}",
        )
        check(0.0 <= self.noise_sd_hu <= 500.0, f"noise_sd_hu must be within [0, 500] HU, got {self.noise_sd_hu}")
        check(0.0 <= self.blur_sigma_mm <= 10.0, f"blur_sigma_mm must be within [0, 10] mm, got {self.blur_sigma_mm}")
        check(isinstance(self.tumour, TumourSpec), "tumour must be a TumourSpec")
        check(
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
        shape, spacing = grid_for(size, n_slices, quantile, slice_thickness_mm, ScannerProfile())
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
    # generation 3 (cohort files of generation 2 leave these out)
    generation: int = 2
    contact_type: str = "none"
    chest_wall_invasion: bool = False
    fissure_gap_mm: Optional[float] = None
    fissure_contact: bool = False
    longest_axis_mm: float = 0.0
    sharpening: float = 0.0
    noise_grain_mm: float = 0.0
    hu_offset: float = 0.0
    hu_scale: float = 1.0


GENERATION_3_TRUTH_FIELDS = ("generation", "contact_type", "chest_wall_invasion", "fissure_gap_mm", "fissure_contact",
                             "longest_axis_mm", "sharpening", "noise_grain_mm", "hu_offset", "hu_scale")
"""Fields of :class:`PhantomTruth` that cohort files of generation 2 do not carry."""


@dataclass(frozen=True, eq=False)
class Phantom:
    """A rendered phantom: CT (int16 HU), ROI (uint8 {0, 1}) and tissue labels (uint8,
    ``TISSUE_LABELS``) on one geometry, plus the truth."""

    ct: Volume
    roi: Volume
    tissue: Volume
    truth: PhantomTruth
    whole_origin_xyz: tuple[float, float, float] | None = None
    """The whole phantom's origin (mm, x y z): ``ct.origin_xyz`` unless only a box was rendered."""
    start_zyx: tuple[int, int, int] = (0, 0, 0)
    """Where the volumes lie in the whole phantom (``truth.shape_zyx``): (0, 0, 0) unless only a
    box around the tumour was rendered (``make_phantom(..., around_tumour_mm=...)``)."""


@dataclass(frozen=True)
class ClinicalDraw:
    """Clinical values of a synthetic patient: CEA (ng/mL), CA125 (U/mL), age (years)."""

    cea_ng_ml: float
    ca125_u_ml: float
    age_years: float


class LabelModelBase:
    """What every generation's true VPI model shares: the clinical part of η (CEA, CA125, age) and
    p_true = sigmoid(intercept + imaging term + clinical term). A subclass (a frozen dataclass)
    holds the coefficients, including ``intercept``, ``log_cea``, ``cea_centre_ng_ml``,
    ``log_ca125``, ``ca125_centre_u_ml``, ``age_per_year``, ``age_centre_years``, and defines
    ``imaging_term``."""

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


@dataclass(frozen=True)
class LabelModel(LabelModelBase):
    """Coefficients of the true VPI model (see :mod:`pipeline.synth` for the formula)."""

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


LABEL_MODEL = LabelModel()


class SampledCase(NamedTuple):
    """One drawn case: what to render, the clinical values, the true probability and the label."""

    spec: PhantomSpec
    clinical: ClinicalDraw
    p_true: float
    label: int


def resolve_scanner(scanner: Union[ScannerProfile, str, None]) -> ScannerProfile:
    """The profile itself, the one named in ``SCANNER_PROFILES``, or the standard one for None."""
    if scanner is None:
        return SCANNER_PROFILES["standard"]
    if isinstance(scanner, str):
        if scanner not in SCANNER_PROFILES:
            raise ValueError(f"unknown scanner profile {scanner!r}; choose one of {sorted(SCANNER_PROFILES)}")
        return SCANNER_PROFILES[scanner]
    if not isinstance(scanner, ScannerProfile):
        raise ValueError(f"scanner must be a ScannerProfile, a profile name or None, got {type(scanner).__name__}")
    return scanner


def check_size(size: str) -> None:
    """Refuse a size that is not a key of ``SIZE_PRESETS``."""
    check(size in SIZE_PRESETS, f"size must be one of {sorted(SIZE_PRESETS)}, got {size!r}")


def grid_for(
    size: str, n_slices: Optional[int], quantile: float, thickness_mm: float, scanner: ScannerProfile
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (z, y, x) and spacing (x, y, z) mm of a size preset for one scanner draw."""
    check_size(size)
    check(0.0 <= quantile <= 1.0, f"quantile must be within [0, 1], got {quantile}")
    nz, ny, nx = SIZE_PRESETS[size]
    if n_slices is not None:
        check(
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
