"""Geometry helpers of the phantom renderer.

Contract: points and vectors are physical (x, y, z) mm (LPS); :class:`Grid` maps the voxel
centres of a volume of array order (z, y, x) to those coordinates (spacing and origin in ITK
(x, y, z) order) and returns index boxes as (z, y, x) slices. No randomness.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

__all__ = ["ellipse_signed_distance", "fibonacci_sphere", "unit", "Grid"]

def ellipse_signed_distance(
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


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly evenly spread unit vectors, an (n, 3) array of (x, y, z)."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = np.pi * (1.0 + 5**0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1."""
    return v / np.linalg.norm(v)


class Grid(NamedTuple):
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
