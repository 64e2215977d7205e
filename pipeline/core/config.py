"""Typed, frozen settings for every stage. One :class:`PipelineConfig` is saved in each model
bundle's manifest, so scoring always uses exactly the settings a model was trained with.

Units are in the field names or docstrings: millimetres (mm), Hounsfield units (HU).

Example:
    >>> cfg = PipelineConfig()
    >>> cfg.preprocess.crop_margin_mm
    25.0
    >>> PipelineConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> PreprocessConfig(crop_margin_mm=-1)
    Traceback (most recent call last):
    ...
    ValueError: crop_margin_mm must be >= 0 mm, got -1
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional


def check_setting(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


class Serialisable:
    """Mixin: ``to_dict`` / ``from_dict`` for nested frozen dataclasses (JSON-safe)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Serialisable):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # noqa: ANN206
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown settings {sorted(unknown)}")
        for name, value in data.items():
            hint = hints[name]
            args = typing.get_args(hint)
            target = hint
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                target = next((a for a in args if a is not type(None)), hint)
            if isinstance(target, type) and issubclass(target, Serialisable) and isinstance(value, dict):
                value = target.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class ValidationConfig(Serialisable):
    """Input checks run before any heavy work.

    Attributes:
        max_voxels: refuse images whose header declares more voxels (checked before
            decompressing). Default 1024³ ≈ 1.07e9 voxels (2 GiB as int16).
        min_mask_voxels: refuse ROIs with fewer labelled voxels.
        geometry_tolerance: CT/mask geometry counts as equal when spacings agree to this relative
            tolerance, origins to within 10 × this × the smallest spacing (mm) and direction cosines to this absolute
            tolerance.
        resample_mask_if_overlapping: when geometry differs but the physical extents overlap,
            resample the mask onto the CT grid (nearest neighbour) and warn; else refuse.
        air_hu: HU threshold for "air/lung"; a chest CT in HU must have some voxels below it.
        min_air_fraction: fraction of voxels below ``air_hu`` a chest CT must reach.
    """

    max_voxels: int = 1024**3
    min_mask_voxels: int = 20
    geometry_tolerance: float = 1e-3
    resample_mask_if_overlapping: bool = True
    air_hu: float = -500.0
    min_air_fraction: float = 0.005

    def __post_init__(self) -> None:
        check_setting(self.max_voxels > 0, f"max_voxels must be > 0, got {self.max_voxels}")
        check_setting(self.min_mask_voxels >= 1, f"min_mask_voxels must be >= 1, got {self.min_mask_voxels}")
        check_setting(0 < self.geometry_tolerance < 1, f"geometry_tolerance must be in (0, 1), got {self.geometry_tolerance}")
        check_setting(0 <= self.min_air_fraction < 1, f"min_air_fraction must be in [0, 1), got {self.min_air_fraction}")


@dataclass(frozen=True)
class PreprocessConfig(Serialisable):
    """Crop, resample, window and cube settings.

    Attributes:
        crop_margin_mm: margin (mm) added on every side of the ROI bounding box before any
            expensive step. Must cover the LoG/wavelet support and the pleura search.
        crop_min_margin_voxels: the margin is at least this many voxels on every axis, so
            PyRadiomics' B-spline resampling of the crop equals that of the whole CT (tested).
        target_spacing_mm: isotropic spacing (mm) of the resampled crop.
        hu_window_level, hu_window_width: HU window for the CNN input (seed: L40/W400).
        cnn_cube_voxels: edge (voxels) of the cube given to the CNN, centred on the ROI centre at
            ``target_spacing_mm`` (so its field of view is edge × spacing mm).
    """

    crop_margin_mm: float = 25.0
    crop_min_margin_voxels: int = 16
    target_spacing_mm: float = 1.0
    hu_window_level: float = 40.0
    hu_window_width: float = 400.0
    cnn_cube_voxels: int = 64

    def __post_init__(self) -> None:
        check_setting(self.crop_margin_mm >= 0, f"crop_margin_mm must be >= 0 mm, got {self.crop_margin_mm}")
        check_setting(0.2 <= self.target_spacing_mm <= 5, f"target_spacing_mm must be in [0.2, 5] mm, got {self.target_spacing_mm}")
        check_setting(self.hu_window_width > 0, f"hu_window_width must be > 0 HU, got {self.hu_window_width}")
        check_setting(8 <= self.cnn_cube_voxels <= 256, f"cnn_cube_voxels must be in [8, 256], got {self.cnn_cube_voxels}")


def default_radiomics_yaml() -> str:
    """The packaged PyRadiomics parameter file (``pipeline/core/params/radiomics.yaml``)."""
    return resources.files("pipeline.core.params").joinpath("radiomics.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class RadiomicsConfig(Serialisable):
    """PyRadiomics settings.

    Attributes:
        params_yaml: the PyRadiomics parameter file's text (kept verbatim in bundles).
        clamp_hu: (low, high) HU the CT is clipped to before extraction, or ``None``. The seed
            system used (−160, 240), which erases ground-glass texture (≈ −800…−300 HU).
    """

    params_yaml: str = field(default_factory=default_radiomics_yaml)
    clamp_hu: Optional[tuple[float, float]] = (-160.0, 240.0)

    def __post_init__(self) -> None:
        if self.clamp_hu is not None:
            check_setting(len(self.clamp_hu) == 2 and self.clamp_hu[0] < self.clamp_hu[1],
                   f"clamp_hu must be (low, high) with low < high, got {self.clamp_hu}")
            object.__setattr__(self, "clamp_hu", (float(self.clamp_hu[0]), float(self.clamp_hu[1])))


@dataclass(frozen=True)
class PleuraConfig(Serialisable):
    """Lung-mask and tumour–pleura feature settings (see ``pipeline/features/pleura.py``).

    Attributes:
        lung_threshold_hu: voxels below this are air/lung candidates.
        solid_threshold_hu: tumour voxels above this count as solid.
        contact_distance_mm: tumour surface voxels within this distance of the pleural surface
            count as in contact.
        ring_mm: width of the peritumoral ring (mm).
        max_distance_mm: tumour–pleura distances are measured up to this (mm) and reported as
            this value when larger (or when no pleura is seen).
        envelope_closing_mm: radius (mm) of the closing that turns lung ∪ tumour into the
            pleural envelope (bridges fissures, vessels and bronchi narrower than 2 × radius).
        crossing_closing_mm: radius (mm) of the closing of the chest wall/mediastinum that
            interpolates the pleural line under the tumour (tumour voxels inside it "cross").
        pure_air_hu: mean HU (over ``air_core_mm``) below which air is pure air (outside the
            body, trachea/main bronchi, bowel gas) rather than lung parenchyma.
        air_core_mm: in-plane window (mm) of that mean, and depth (mm) of the partial-volume rim
            added back to pure-air regions.
        min_lung_component_mm3: air components not touching the tumour count as lung only from
            this volume (mm³) on.
        tag_threshold_hu: lung-side voxels above this HU are dense strands (pleural tags,
            vessels, scars) for the pleural-tag proxy.
        search_margin_mm: (property) margin (mm) around the tumour that the features look at;
            a crop with at least this margin gives the same values as the full CT.
    """

    lung_threshold_hu: float = -400.0
    solid_threshold_hu: float = -300.0
    contact_distance_mm: float = 2.0
    ring_mm: float = 10.0
    max_distance_mm: float = 20.0
    envelope_closing_mm: float = 5.0
    crossing_closing_mm: float = 10.0
    pure_air_hu: float = -950.0
    air_core_mm: float = 4.0
    min_lung_component_mm3: float = 1000.0
    tag_threshold_hu: float = -600.0

    def __post_init__(self) -> None:
        check_setting(self.contact_distance_mm >= 0, f"contact_distance_mm must be >= 0 mm, got {self.contact_distance_mm}")
        check_setting(self.ring_mm > 0, f"ring_mm must be > 0 mm, got {self.ring_mm}")
        check_setting(self.max_distance_mm > 0, f"max_distance_mm must be > 0 mm, got {self.max_distance_mm}")
        check_setting(self.envelope_closing_mm >= 0, f"envelope_closing_mm must be >= 0 mm, got {self.envelope_closing_mm}")
        check_setting(self.crossing_closing_mm > 0, f"crossing_closing_mm must be > 0 mm, got {self.crossing_closing_mm}")
        check_setting(self.pure_air_hu < self.lung_threshold_hu,
               f"pure_air_hu ({self.pure_air_hu}) must be below lung_threshold_hu ({self.lung_threshold_hu})")
        check_setting(self.air_core_mm > 0, f"air_core_mm must be > 0 mm, got {self.air_core_mm}")
        check_setting(self.min_lung_component_mm3 >= 0,
               f"min_lung_component_mm3 must be >= 0 mm³, got {self.min_lung_component_mm3}")
        check_setting(self.pure_air_hu < self.tag_threshold_hu,
               f"tag_threshold_hu ({self.tag_threshold_hu}) must be above pure_air_hu ({self.pure_air_hu})")

    @property
    def search_margin_mm(self) -> float:
        """Margin (mm) around the ROI bounding box that the pleura features use."""
        return max(self.max_distance_mm, self.ring_mm, self.crossing_closing_mm) + self.envelope_closing_mm


FEATURE_GROUPS = ("deep", "radiomics", "pleura", "clinical")


@dataclass(frozen=True)
class PipelineConfig(Serialisable):
    """Everything needed to turn (CT, ROI, labs) into a feature vector; saved in every bundle."""

    validation: ValidationConfig = field(default_factory=ValidationConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    radiomics: RadiomicsConfig = field(default_factory=RadiomicsConfig)
    pleura: PleuraConfig = field(default_factory=PleuraConfig)
    feature_groups: tuple[str, ...] = FEATURE_GROUPS

    def __post_init__(self) -> None:
        bad = [g for g in self.feature_groups if g not in FEATURE_GROUPS]
        check_setting(not bad and len(self.feature_groups) > 0,
               f"feature_groups must be a non-empty subset of {FEATURE_GROUPS}, got {self.feature_groups}")
        if "pleura" in self.feature_groups:
            check_setting(self.preprocess.crop_margin_mm >= self.pleura.search_margin_mm,
                   f"crop_margin_mm ({self.preprocess.crop_margin_mm} mm) must be >= the pleura search margin "
                   f"({self.pleura.search_margin_mm} mm), or pleura features would be cut off by the crop")
