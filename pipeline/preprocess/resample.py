"""``resample_isotropic``: resample a Volume to isotropic spacing (mm), keeping its physical extent.

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> v = Volume(np.zeros((10, 20, 20), np.float32), spacing_xyz=(0.5, 0.5, 2.0))
    >>> resample_isotropic(v, spacing_mm=1.0, interpolator="linear").shape_zyx
    (20, 10, 10)
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from pipeline.core.volume import Volume

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


def resample_isotropic(volume: Volume, *, spacing_mm: float = 1.0, interpolator: str = "linear",
                       default_value: float = 0.0) -> Volume:
    """Resample to ``spacing_mm`` on every axis over the same physical extent.

    Args:
        spacing_mm: output spacing (mm), > 0.
        interpolator: "nearest" (masks), "linear" or "bspline" (images).
        default_value: value outside the input (e.g. −1024 HU for CT).
    """
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be > 0 mm, got {spacing_mm}")
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(INTERPOLATORS)}, got {interpolator!r}")
    image = volume.to_sitk()
    in_size = image.GetSize()
    out_size = [max(1, int(math.ceil(n * s / spacing_mm - 1e-6))) for n, s in zip(in_size, image.GetSpacing())]
    # keep the physical centre of the first voxel's outer corner: shift origin by half a voxel change
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    corner = np.asarray(image.GetOrigin()) - direction @ (np.asarray(image.GetSpacing()) / 2)
    origin = corner + direction @ (np.full(3, spacing_mm) / 2)
    out = sitk.Resample(
        image, out_size, sitk.Transform(), INTERPOLATORS[interpolator], tuple(origin),
        (spacing_mm,) * 3, image.GetDirection(), float(default_value), image.GetPixelID(),
    )
    return Volume.from_sitk(out)
