"""The in-memory image type every stage passes along: a numpy array plus physical geometry.

Contract:
    * ``array`` is indexed (z, y, x) — slice, row, column — exactly as
      ``SimpleITK.GetArrayFromImage`` returns it.
    * ``spacing_xyz`` (mm), ``origin_xyz`` (mm, LPS, centre of voxel (0, 0, 0)) and ``direction``
      (row-major 3×3 direction cosines) follow ITK's (x, y, z) order, so a ``Volume`` converts to
      and from a ``SimpleITK.Image`` without loss.
    * CT arrays hold Hounsfield units (HU); masks hold small non-negative integers.

Example:
    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4), np.int16), spacing_xyz=(0.7, 0.7, 2.5))
    >>> v.shape_zyx, v.spacing_zyx
    ((2, 3, 4), (2.5, 0.7, 0.7))
    >>> Volume.from_sitk(v.to_sitk()).spacing_xyz
    (0.7, 0.7, 2.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image: ``array`` (z, y, x) with spacing/origin/direction in ITK (x, y, z) order."""

    array: np.ndarray
    spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = field(default=IDENTITY_DIRECTION)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3-D (z, y, x) array, got shape {self.array.shape}")
        object.__setattr__(self, "spacing_xyz", tuple(float(s) for s in self.spacing_xyz))
        object.__setattr__(self, "origin_xyz", tuple(float(o) for o in self.origin_xyz))
        object.__setattr__(self, "direction", tuple(float(d) for d in self.direction))
        if len(self.spacing_xyz) != 3 or min(self.spacing_xyz) <= 0:
            raise ValueError(f"spacing_xyz must be 3 positive mm values, got {self.spacing_xyz}")
        if len(self.direction) != 9:
            raise ValueError("direction must hold 9 direction cosines (row-major 3×3)")

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return (self.spacing_xyz[2], self.spacing_xyz[1], self.spacing_xyz[0])

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Physical LPS points (mm, x y z) of voxel indices given as (..., 3) arrays in (z, y, x)."""
        idx_xyz = np.asarray(index_zyx, dtype=float)[..., ::-1]
        return np.asarray(self.origin_xyz) + (idx_xyz * np.asarray(self.spacing_xyz)) @ self.direction_matrix.T

    def physical_to_index(self, points_xyz: np.ndarray) -> np.ndarray:
        """Continuous (z, y, x) indices of physical LPS points (..., 3) in mm."""
        rel = np.asarray(points_xyz, dtype=float) - np.asarray(self.origin_xyz)
        idx_xyz = (rel @ self.direction_matrix) / np.asarray(self.spacing_xyz)
        return idx_xyz[..., ::-1]

    def physical_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box (min, max) in mm of all voxel-boundary corners."""
        nz, ny, nx = self.shape_zyx
        corners = np.array(
            [[z, y, x] for z in (-0.5, nz - 0.5) for y in (-0.5, ny - 0.5) for x in (-0.5, nx - 0.5)]
        )
        pts = self.index_to_physical(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def with_array(self, array: np.ndarray, **geometry: object) -> "Volume":
        """Same geometry (unless overridden), new voxel data."""
        return replace(self, array=array, **geometry)

    # -- SimpleITK ------------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin_xyz)
        img.SetDirection(self.direction)
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Volume":
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing_xyz=tuple(image.GetSpacing()),
            origin_xyz=tuple(image.GetOrigin()),
            direction=tuple(image.GetDirection()),
        )
