"""The public types of semi-automatic segmentation: :class:`SegmentParams` (what the user sets)
and :class:`Segmentation` (what one click gives), plus :func:`seed_mm_from_voxel`.

Coordinates: seeds are physical LPS points in mm, (x, y, z), exactly as SimpleITK's
``TransformIndexToPhysicalPoint`` reports them; voxel indices are ITK (i, j, k) = (x, y, z) order;
arrays are (z, y, x).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.core.errors import ConfigError, InputError
from pipeline.core.volume import Volume

Point = tuple[float, float, float]


def as_point(value: object, *, name: str) -> Point:
    try:
        pt = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be three numbers x, y, z in mm") from None
    if len(pt) != 3 or not all(math.isfinite(v) for v in pt):
        raise ConfigError(f"{name} must be three finite numbers x, y, z in mm")
    return pt  # type: ignore[return-value]


@dataclass(frozen=True, kw_only=True)
class SegmentParams:
    """How one click is grown into a tumour ROI.

    Args:
        sensitivity: 0..1, higher grows more (a lower intensity threshold between lung and tumour).
        adjust_mm: grow (+) or shrink (−) the result by this many mm (−10..10).
        add_seeds_xyz_mm: extra clicks (LPS mm) that must be inside the ROI.
        remove_seeds_xyz_mm: clicks (LPS mm) that must be outside the ROI.
        max_diameter_mm: growth cap (20..300 mm): the region grows at most 0.75 × this from the click,
            and one that reaches that distance or is longer than this is flagged ``capped`` with a warning.
    """

    sensitivity: float = 0.5
    adjust_mm: float = 0.0
    add_seeds_xyz_mm: tuple[Point, ...] = ()
    remove_seeds_xyz_mm: tuple[Point, ...] = ()
    max_diameter_mm: float = 120.0

    def __post_init__(self) -> None:
        for name, low, high in (("sensitivity", 0.0, 1.0), ("adjust_mm", -10.0, 10.0),
                                ("max_diameter_mm", 20.0, 300.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"the segmentation setting {name} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"the segmentation setting {name} must be within [{low:g}, {high:g}], got {value:g}")
            object.__setattr__(self, name, float(value))
        for name in ("add_seeds_xyz_mm", "remove_seeds_xyz_mm"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ConfigError(f"the segmentation setting {name} must be a list of x, y, z points in mm")
            pts = tuple(as_point(p, name=f"each point of {name}") for p in value)
            if len(pts) > 50:
                raise ConfigError(f"the segmentation setting {name} holds {len(pts)} points; at most 50")
            object.__setattr__(self, name, pts)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["add_seeds_xyz_mm"] = [list(p) for p in self.add_seeds_xyz_mm]
        d["remove_seeds_xyz_mm"] = [list(p) for p in self.remove_seeds_xyz_mm]
        return d


@dataclass(frozen=True, kw_only=True, eq=False)
class Segmentation:
    """One semi-automatic ROI: ``mask`` is uint8 {0, 1} on the CT's grid (z, y, x)."""

    mask: Volume
    seed_xyz_mm: Point
    seed_ijk: tuple[int, int, int]
    params: SegmentParams
    capped: bool
    warnings: tuple[str, ...]
    volume_ml: float
    longest_diameter_mm: float
    method: str
    threshold_hu: float = field(default=float("nan"))

    def provenance(self) -> dict[str, Any]:
        """JSON-safe description for the result JSON, the PDF and a DICOM SEG."""
        import scipy

        from pipeline import __version__

        return {
            "kind": "semi-automatic",
            "method": self.method,
            "software": {"pleurarisk": __version__, "numpy": np.__version__, "scipy": scipy.__version__},
            "seed_xyz_mm": [round(v, 2) for v in self.seed_xyz_mm],
            "seed_ijk": list(self.seed_ijk),
            "params": self.params.as_dict(),
            "threshold_hu": None if math.isnan(self.threshold_hu) else round(self.threshold_hu, 1),
            "capped": self.capped,
            "warnings": list(self.warnings),
            "volume_ml": round(self.volume_ml, 3),
            "longest_diameter_mm": round(self.longest_diameter_mm, 1),
        }

    def describe(self) -> str:
        """One line for a report: 'semi-automatic ROI from a click at (x, y, z) mm (method)'."""
        x, y, z = self.seed_xyz_mm
        return f"semi-automatic ROI from a click at ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS ({self.method})"


def seed_mm_from_voxel(ct: Volume, ijk: tuple[int, int, int]) -> Point:
    """Physical LPS point (mm, x y z) of the voxel with ITK index ``ijk`` = (i, j, k) = (x, y, z);
    raises :class:`InputError` when the index is outside the CT."""
    try:
        i, j, k = (int(v) for v in ijk)
    except (TypeError, ValueError):
        raise InputError("the click must be a voxel index I, J, K (three whole numbers, ITK x, y, z order)") from None
    if any(float(a) != float(b) for a, b in zip(ijk, (i, j, k))):
        raise InputError("the click must be a voxel index I, J, K (three whole numbers, ITK x, y, z order)")
    nz, ny, nx = ct.shape_zyx
    if not (0 <= i < nx and 0 <= j < ny and 0 <= k < nz):
        raise InputError(f"the click (voxel {i}, {j}, {k}) lies outside the CT, whose voxel indices run up to "
                         f"{nx - 1}, {ny - 1}, {nz - 1}")
    pt = ct.index_to_physical(np.array([k, j, i], dtype=float))
    return (float(pt[0]), float(pt[1]), float(pt[2]))
