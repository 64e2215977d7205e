"""``cnn_cube``: the fixed-size isotropic cube the CNN sees, centred on the ROI.

The cube is resampled (linear) directly from the cropped CT onto a grid of ``size``³ voxels at
``spacing_mm`` centred on the ROI's bounding-box centre, aligned with the CT's direction, then
HU-windowed to [0, 1]. Voxels outside the crop read as air (−1024 HU → 0 after windowing).
Returned array axis order is (z, y, x).

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> ct = Volume(np.full((20, 40, 40), 40, np.int16), spacing_xyz=(0.7, 0.7, 2.0))
    >>> roi = ct.with_array(np.zeros((20, 40, 40), np.uint8)); roi.array[8:12, 15:25, 15:25] = 1
    >>> cube, rec = cnn_cube(ct, roi, size=16, spacing_mm=1.0, level=40, width=400)
    >>> cube.shape, float(cube[8, 8, 8])
    ((16, 16, 16), 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from pipeline.core.volume import Volume
from pipeline.preprocess.crop import roi_bbox
from pipeline.preprocess.window import hu_window

AIR_HU = -1024.0


@dataclass(frozen=True)
class CubeRecord:
    """Where the CNN cube was taken: centre (mm, LPS x y z), edge (voxels), spacing (mm)."""

    centre_xyz_mm: tuple[float, float, float]
    size_voxels: int
    spacing_mm: float
    window_level_hu: float
    window_width_hu: float


def cnn_cube(ct: Volume, roi: Volume, *, size: int = 64, spacing_mm: float = 1.0, level: float = 40.0,
             width: float = 400.0) -> tuple[np.ndarray, CubeRecord]:
    """Return a float32 (size, size, size) cube in [0, 1] and its :class:`CubeRecord`."""
    if size < 1:
        raise ValueError(f"size must be >= 1 voxel, got {size}")
    start, stop = roi_bbox(roi.array)
    centre_idx = (np.asarray(start) + np.asarray(stop) - 1) / 2.0
    centre = ct.index_to_physical(centre_idx)
    direction = ct.direction_matrix
    half = (size - 1) / 2.0 * spacing_mm
    origin = centre - direction @ np.full(3, half)
    out = sitk.Resample(
        ct.to_sitk(), [size] * 3, sitk.Transform(), sitk.sitkLinear, tuple(float(v) for v in origin),
        (spacing_mm,) * 3, ct.direction, AIR_HU, sitk.sitkFloat32,
    )
    cube = hu_window(sitk.GetArrayViewFromImage(out), level=level, width=width)
    record = CubeRecord(tuple(float(v) for v in centre), size, float(spacing_mm), float(level), float(width))
    return cube, record
