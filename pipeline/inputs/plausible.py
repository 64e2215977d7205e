"""Geometry a chest CT can have, checked on the header before any heavy work.

Without these checks an impossible geometry surfaced much later as a message about something
else: a 1-slice CT as "PyRadiomics did not produce feature …", a spacing of 0.001 mm, an
origin of 1e20 mm or a tumour squeezed to 2 mm by a 0.1 × 0.1 × 10 mm spacing as "No labels
found in this mask". Each now gets a sentence naming the real problem.

Limits (generous: any real CT passes):

* at least :data:`MIN_SLICES` voxels along every axis (a 3-D image, not one or two slices);
* voxel spacing :data:`MIN_SPACING_MM` – :data:`MAX_SPACING_MM` along every axis;
* origin within :data:`MAX_ORIGIN_MM` of the scanner's reference point (beyond, float maths
  can no longer tell neighbouring voxels apart);
* the ROI spans at least :data:`MIN_ROI_SPAN_VOXELS` resampled voxels (``target_spacing_mm``
  each, 1 mm by default) along every axis; otherwise resampling leaves nothing to measure.

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> check_ct_geometry(Volume(np.zeros((1, 64, 64), np.int16)))
    Traceback (most recent call last):
    ...
    pipeline.core.errors.ImageShapeError: CT has only 1 slice along z; a 3-D CT with at least 3 slices is needed
"""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import GeometryError, ImageShapeError, MaskError
from pipeline.core.volume import Volume

MIN_SLICES = 3
MIN_SPACING_MM, MAX_SPACING_MM = 0.05, 50.0
MAX_ORIGIN_MM = 1e6  # 1 km
MIN_ROI_SPAN_VOXELS = 3


def _mm(values: object) -> str:
    return " × ".join(f"{float(v):.3g}" for v in values)  # type: ignore[attr-defined]


def check_ct_geometry(ct: Volume, *, role: str = "CT") -> None:
    """Refuse a CT whose shape, spacing or origin no chest CT can have (see module limits).

    Args:
        ct: the CT (only its shape (z, y, x), spacing_xyz and origin_xyz are used, mm).

    Raises:
        ImageShapeError: fewer than 3 voxels along an axis.
        GeometryError: implausible spacing or origin.
    """
    for axis, n in zip("zyx", ct.shape_zyx):
        if n < MIN_SLICES:
            raise ImageShapeError(f"{role} has only {n} slice{'s' if n != 1 else ''} along {axis}; a 3-D CT with "
                                  f"at least {MIN_SLICES} slices is needed")
    spacing = np.asarray(ct.spacing_xyz, dtype=float)
    if not np.all((spacing >= MIN_SPACING_MM) & (spacing <= MAX_SPACING_MM)):
        raise GeometryError(f"{role} voxel spacing {_mm(spacing)} mm (x × y × z) is not one a CT can have (each "
                            f"must be {MIN_SPACING_MM:g}–{MAX_SPACING_MM:g} mm); the header is damaged or in "
                            "other units")
    origin = np.asarray(ct.origin_xyz, dtype=float)
    if not np.all(np.isfinite(origin)) or np.max(np.abs(origin)) > MAX_ORIGIN_MM:
        raise GeometryError(f"{role} origin ({', '.join(f'{v:.3g}' for v in origin)} mm) is implausibly far from the scanner's reference "
                            f"point (more than {MAX_ORIGIN_MM / 1e6:g} km); the header is damaged")


def check_roi_span(extent_zyx_mm: tuple[float, float, float], *, spacing_xyz: tuple[float, float, float],
                   target_spacing_mm: float) -> None:
    """Refuse a ROI too thin, in millimetres, to survive resampling to ``target_spacing_mm``.

    Args:
        extent_zyx_mm: the ROI's bounding-box size (z, y, x), mm.
        spacing_xyz: the CT's voxel spacing (x, y, z), mm (named in the message).

    Raises:
        MaskError: an axis spans fewer than 3 resampled voxels.
    """
    minimum = MIN_ROI_SPAN_VOXELS * target_spacing_mm
    if min(extent_zyx_mm) < minimum:
        x, y, z = extent_zyx_mm[2], extent_zyx_mm[1], extent_zyx_mm[0]
        raise MaskError(f"ROI mask spans only {_mm((x, y, z))} mm (x × y × z) with the CT's voxel spacing of "
                        f"{_mm(spacing_xyz)} mm: less than {minimum:g} mm along an axis, too small to measure on "
                        f"{target_spacing_mm:g} mm voxels; check the voxel spacing in the header")
