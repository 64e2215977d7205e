"""``roi_crop``: cut CT and mask to the ROI bounding box plus a margin in millimetres.

Runs first, so that every expensive step (resampling, filters, CNN) sees a small volume.

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> ct = Volume(np.zeros((40, 100, 100), np.int16), spacing_xyz=(0.5, 0.5, 2.0))
    >>> roi = ct.with_array(np.zeros((40, 100, 100), np.uint8)); roi.array[20, 50, 50] = 1
    >>> ct_c, roi_c, rec = roi_crop(ct, roi, margin_mm=5.0)
    >>> ct_c.shape_zyx, rec.margin_voxels_zyx
    ((7, 21, 21), (3, 10, 10))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import MaskError
from pipeline.core.volume import Volume


@dataclass(frozen=True)
class CropRecord:
    """What ``roi_crop`` did: margin (mm and voxels) and the crop's start/stop indices (z, y, x)."""

    margin_mm: float
    margin_voxels_zyx: tuple[int, int, int]
    start_zyx: tuple[int, int, int]
    stop_zyx: tuple[int, int, int]
    clipped_at_border: bool
    source_shape_zyx: tuple[int, int, int]


def roi_bbox(mask: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(start, stop) indices (z, y, x), stop exclusive, of the non-zero voxels of a 3-D mask."""
    starts, stops = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        if present.size == 0:
            raise MaskError("ROI mask is empty (no labelled voxel)")
        starts.append(int(present[0]))
        stops.append(int(present[-1]) + 1)
    return tuple(starts), tuple(stops)  # type: ignore[return-value]


def bbox_crop(ct: Volume, roi: Volume, start: tuple[int, int, int], stop: tuple[int, int, int], *,
              margin_mm: float, min_margin_voxels: int = 0) -> tuple[Volume, Volume, CropRecord]:
    """Crop ``ct`` and ``roi`` to the box [start, stop) (z, y, x) grown by the margin (see :func:`roi_crop`)."""
    record = crop_record(ct.shape_zyx, roi.spacing_zyx, start, stop, margin_mm=margin_mm,
                         min_margin_voxels=min_margin_voxels)
    sl = tuple(slice(a, b) for a, b in zip(record.start_zyx, record.stop_zyx))
    origin = tuple(float(v) for v in ct.index_to_physical(np.asarray(record.start_zyx, dtype=float)))
    ct_crop = ct.with_array(np.ascontiguousarray(ct.array[sl]), origin_xyz=origin)
    roi_crop_ = roi.with_array(np.ascontiguousarray(roi.array[sl]), origin_xyz=origin)
    return ct_crop, roi_crop_, record


def crop_record(shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float],
                start: tuple[int, int, int], stop: tuple[int, int, int], *, margin_mm: float,
                min_margin_voxels: int = 0) -> CropRecord:
    """Where :func:`bbox_crop` cuts a volume of ``shape_zyx`` voxels (spacing in mm, z, y, x) for
    the box [start, stop): the margin in voxels, the clipped crop bounds, whether it was clipped."""
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0 mm, got {margin_mm}")
    margin = tuple(max(int(min_margin_voxels), int(math.ceil(margin_mm / s - 1e-9))) for s in spacing_zyx)
    lo = tuple(max(0, b - m) for b, m in zip(start, margin))
    hi = tuple(min(n, e + m) for e, m, n in zip(stop, margin, shape_zyx))
    clipped = any(b - m < 0 for b, m in zip(start, margin)) or any(e + m > n for e, m, n in zip(stop, margin, shape_zyx))
    return CropRecord(float(margin_mm), margin, lo, hi, clipped, tuple(shape_zyx))  # type: ignore[arg-type]


def roi_crop(ct: Volume, roi: Volume, *, margin_mm: float, min_margin_voxels: int = 0) -> tuple[Volume, Volume, CropRecord]:
    """Crop ``ct`` and ``roi`` (same grid) to the ROI bounding box plus ``margin_mm`` on each side.

    The margin is converted to voxels per axis (rounded up) with the image spacing, and is at
    least ``min_margin_voxels`` on every axis (thick slices otherwise leave too few slices for
    B-spline resampling and filters to be unaffected by the crop edge); the crop is
    clipped at the volume border (``clipped_at_border`` records it). Origins are updated so the
    crops keep their exact physical position. Arrays are copied (the full volumes can be freed).
    """
    start, stop = roi_bbox(roi.array)
    return bbox_crop(ct, roi, start, stop, margin_mm=margin_mm, min_margin_voxels=min_margin_voxels)
