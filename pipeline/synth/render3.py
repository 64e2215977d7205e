"""What generation 3 adds to a rendered phantom: the extrapleural fat line, an interlobar fissure,
and the reconstruction kernel and HU calibration of the scanner.

Contract: every function works in place on the int16 HU (z, y, x) and uint8 tissue volumes of
:func:`~pipeline.synth.render.make_phantom` on its :class:`~pipeline.synth.geometry.Grid`
(coordinates (x, y, z) mm), slice by slice (no full-size float copy). Called only for specs of
generation 3, so generation-2 phantoms stay identical.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from pipeline.synth.anatomy import Anatomy, cavity_scale, plane_terms
from pipeline.synth.geometry import Grid
from pipeline.synth.specs import TISSUE_LABELS

__all__ = ["paint_extrapleural_fat", "paint_fissure", "kernel_plane", "grain_noise", "calibrate"]

_SOFT, _FAT, _LUNG, _VESSEL = (TISSUE_LABELS[k] for k in ("soft_tissue", "fat", "lung", "vessel"))


def paint_extrapleural_fat(an: Anatomy, grid: Grid, hu: np.ndarray, tissue: np.ndarray, *, thickness_mm: float) -> None:
    """A fat line of ``thickness_mm`` (at the patient's fat HU) in the chest-wall soft tissue just
    outside the costal pleura, above the hemidiaphragm: the plane an abutting tumour leaves intact
    and an invading one replaces."""
    f = np.float32
    X, Y = np.meshgrid(grid.x.astype(f), grid.y.astype(f))
    t = plane_terms(an, X, Y)
    rho = np.sqrt(t.cav_q)
    grad = np.sqrt((X / f(an.cav_ax**2)) ** 2 + ((Y - f(an.cav_cy)) / f(an.cav_ay**2)) ** 2) / np.maximum(rho, f(1e-6))
    value = np.int16(round(an.hu_fat))
    for k, z in enumerate(grid.z):
        scale = float(cavity_scale(an, z))
        if scale <= 0:
            continue
        depth = (rho - f(scale)) / np.maximum(grad, f(1e-6))
        sel = (depth > 0) & (depth <= thickness_mm) & (tissue[k] == _SOFT) & (f(z) > t.dome_z)
        hu[k][sel] = value
        tissue[k][sel] = _FAT


def paint_fissure(grid: Grid, hu: np.ndarray, tissue: np.ndarray, *, normal: np.ndarray, offset: float,
                  side_x: float, mid_x: float, thickness_mm: float, value_hu: float) -> None:
    """An interlobar fissure: the plane n·p = ``offset`` (mm) as a sheet of ``thickness_mm`` and
    ``value_hu`` blended by partial volume into the lung (parenchyma and vessels keep their label)
    on the tumour's side (the side of ``mid_x`` that ``side_x`` lies on)."""
    f = np.float32
    X, Y = np.meshgrid(grid.x.astype(f), grid.y.astype(f))
    edge = f(min(grid.spacing[0], grid.spacing[1]))
    in_plane = f(normal[0]) * X + f(normal[1]) * Y
    same_side = (X - f(mid_x)) * f(np.sign(side_x - mid_x) or 1.0) > 0
    half = f(0.5 * thickness_mm)
    cover = min(1.0, thickness_mm / float(edge))
    for k, z in enumerate(grid.z):
        dist = np.abs(in_plane + f(normal[2] * z) - f(offset))
        frac = np.clip((half - dist) / edge + f(0.5), 0.0, 1.0) * f(cover)
        lungish = (tissue[k] == _LUNG) | (tissue[k] == _VESSEL)
        sel = (frac > 0) & lungish & same_side
        if sel.any():
            old = hu[k][sel].astype(f)
            hu[k][sel] = np.rint(old + frac[sel] * (f(value_hu) - old))


def kernel_plane(plane: np.ndarray, *, amount: float, sigma_px: tuple[float, float]) -> None:
    """Edge enhancement of a sharp reconstruction kernel on one blurred (y, x) float32 plane, in
    place: plane + amount · (plane − Gaussian(plane, ``sigma_px`` (y, x) pixels))."""
    smooth = ndimage.gaussian_filter(plane, sigma_px, truncate=3.0)
    plane += np.float32(amount) * (plane - smooth)


def grain_noise(noise: np.ndarray, *, sigma_px: tuple[float, float], exact: bool = False) -> np.ndarray:
    """White (y, x) noise made correlated (Gaussian of ``sigma_px`` pixels) and rescaled to its
    original SD: the coarser noise grain of soft kernels. ``exact`` (generation 3) divides by the
    kernel's exact SD factor sqrt(Σ w_y² · Σ w_x²) instead of the sample SDs, so each voxel's
    value depends only on the noise around it (any box of a plane gets the whole plane's values)."""
    out = ndimage.gaussian_filter(noise, sigma_px, truncate=3.0)
    if exact:
        out *= np.float32(1.0 / math.sqrt(_sum_sq_weights(sigma_px[0]) * _sum_sq_weights(sigma_px[1])))
        return out
    sd = float(noise.std()) or 1.0
    out *= np.float32(sd / (float(out.std()) or 1.0))
    return out


def _sum_sq_weights(sigma: float, truncate: float = 3.0) -> float:
    """Σ w² of scipy's normalised Gaussian kernel of ``sigma`` pixels (radius int(truncate·σ + 0.5))."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=float)
    w = np.exp(-0.5 / float(sigma) ** 2 * x**2)
    w /= w.sum()
    return float((w**2).sum())


def calibrate(plane: np.ndarray, *, scale: float, offset: float) -> None:
    """HU calibration of the scanner, in place: scale about water (0 HU), then offset (HU)."""
    if scale != 1.0:
        plane *= np.float32(scale)
    if offset != 0.0:
        plane += np.float32(offset)
