"""One synthetic patient's thorax, drawn from a generator and evaluated analytically.

Contract: :func:`draw_anatomy` turns a ``numpy.random.Generator`` into an :class:`Anatomy` (sizes in
mm, attenuations in HU). The other functions evaluate it at any broadcastable arrays of physical
points; nothing here knows the voxel grid. Coordinates are LPS mm (x → patient left, y →
posterior, z → superior) with z = 0 at the top of the right hemidiaphragm; point arrays passed as
(N, 3) hold (x, y, z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Anatomy", "draw_anatomy", "PlaneTerms", "plane_terms", "cavity_scale", "lung_mask", "lung_points"]

@dataclass(frozen=True)
class Anatomy:
    """One synthetic patient's thorax (mm, HU). z = 0 is the top of the right hemidiaphragm."""

    body_ax: float
    body_ay: float
    skin: float
    fat: float
    cav_ax: float
    cav_ay: float
    cav_cy: float
    lung_height: float
    z_taper: float
    dome_height: float
    dome_left_drop: float
    med_cx: float
    med_ax: float
    med_ay: float
    heart_c: tuple[float, float, float]
    heart_axes: tuple[float, float, float]
    vb_cy: float
    vb_r: float
    aorta_c: tuple[float, float]
    aorta_r: float
    asc_c: tuple[float, float]
    asc_r: float
    trachea_c: tuple[float, float]
    trachea_r: float
    z_carina: float
    z_arch: float
    rib_pitch: float
    rib_drop: float
    rib_z0: float
    rib_thick: float
    rib_half_height: float
    rib_depth: float
    rib_phi_max: float
    vert_pitch: float
    disc_height: float
    vert_z0: float
    hu_muscle: float
    hu_fat: float
    hu_lung: float
    lung_gradient: float
    hu_liver: float
    hu_blood: float
    hu_marrow: float
    hu_cortex: float
    texture: tuple[tuple[float, float, float, float], ...]
    view_jitter: tuple[float, float, float]
    hilum_dy: float

    @property
    def z_top(self) -> float:
        return self.lung_height


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's thorax (80 uniform draws from ``rng``)."""
    draws = iter(rng.random(80).tolist())  # one vectorised draw; each u() takes the next value

    def u(low: float, high: float) -> float:
        return low + (high - low) * next(draws)

    body_ax = u(135.0, 165.0)
    body_ay = body_ax * u(0.68, 0.78)
    skin, fat, wall = 2.0, u(6.0, 22.0), u(10.0, 16.0)
    cav_ax = body_ax - skin - fat - wall
    cav_cy = -u(0.0, 6.0)
    cav_ay = body_ay - skin - fat - wall - 6.0
    lung_height = u(230.0, 270.0)
    vb_r = u(15.0, 19.0)
    vb_cy = cav_cy + cav_ay - vb_r - u(3.0, 7.0)
    aorta_r = u(10.0, 13.0)
    z_carina = lung_height * u(0.55, 0.62)
    texture = tuple(
        (u(0.0, 2 * np.pi), 2 * np.pi / u(30.0, 90.0), u(0.0, 2 * np.pi), u(2.0, 5.0)) for _ in range(3)
    )
    return Anatomy(
        body_ax=body_ax,
        body_ay=body_ay,
        skin=skin,
        fat=fat,
        cav_ax=cav_ax,
        cav_ay=cav_ay,
        cav_cy=cav_cy,
        lung_height=lung_height,
        z_taper=lung_height - u(40.0, 55.0),
        dome_height=u(40.0, 55.0),
        dome_left_drop=u(10.0, 20.0),
        med_cx=u(0.0, 8.0),
        med_ax=cav_ax * u(0.24, 0.30),
        med_ay=cav_ay * 1.02,
        heart_c=(cav_ax * u(0.12, 0.22), cav_cy - cav_ay * u(0.15, 0.30), u(35.0, 50.0)),
        heart_axes=(cav_ax * u(0.42, 0.50), cav_ay * u(0.50, 0.60), u(50.0, 62.0)),
        vb_cy=vb_cy,
        vb_r=vb_r,
        aorta_c=(vb_r + aorta_r - u(0.0, 4.0), vb_cy - u(6.0, 12.0)),
        aorta_r=aorta_r,
        asc_c=(-u(5.0, 12.0), cav_cy - cav_ay * u(0.30, 0.45)),
        asc_r=u(13.0, 17.0),
        trachea_c=(u(-3.0, 3.0), vb_cy - vb_r - u(18.0, 28.0)),
        trachea_r=u(7.5, 10.0),
        z_carina=z_carina,
        z_arch=z_carina + u(8.0, 18.0),
        rib_pitch=u(24.0, 30.0),
        rib_drop=u(60.0, 90.0),
        rib_z0=u(0.0, 30.0),
        rib_thick=u(3.0, 4.5),
        rib_half_height=u(5.0, 7.0),
        rib_depth=u(5.0, 7.0),
        rib_phi_max=u(2.3, 2.5),
        vert_pitch=u(24.0, 28.0),
        disc_height=u(5.0, 7.0),
        vert_z0=u(0.0, 28.0),
        hu_muscle=u(40.0, 55.0),
        hu_fat=u(-115.0, -85.0),
        hu_lung=u(-870.0, -840.0),
        lung_gradient=u(15.0, 35.0),
        hu_liver=u(50.0, 65.0),
        hu_blood=u(35.0, 50.0),
        hu_marrow=u(380.0, 450.0),
        hu_cortex=u(650.0, 750.0),
        texture=texture,
        view_jitter=(u(-8.0, 8.0), u(-8.0, 8.0), u(-15.0, 15.0)),
        hilum_dy=u(-8.0, 4.0),
    )


class PlaneTerms(NamedTuple):
    """In-plane quantities the lung test needs, for any array of (x, y) points."""

    cav_q: np.ndarray  # ((x/a)^2 + ((y-cy)/b)^2) of the thoracic cavity
    med_q: np.ndarray  # same for the mediastinum ellipse
    heart_q: np.ndarray  # in-plane part of the heart ellipsoid
    dome_z: np.ndarray  # height (mm) of the hemidiaphragm under (x, y)
    vb_d2: np.ndarray  # squared distance (mm²) to the vertebral body axis
    aorta_d2: np.ndarray  # squared distance (mm²) to the descending aorta axis


def plane_terms(an: Anatomy, x: np.ndarray, y: np.ndarray) -> PlaneTerms:
    f = np.float32
    x = np.asarray(x, dtype=f)
    y = np.asarray(y, dtype=f)
    cav_q = (x / f(an.cav_ax)) ** 2 + ((y - f(an.cav_cy)) / f(an.cav_ay)) ** 2
    med_q = ((x - f(an.med_cx)) / f(an.med_ax)) ** 2 + ((y - f(an.cav_cy)) / f(an.med_ay)) ** 2
    hx, hy, _ = an.heart_c
    ha, hb, _ = an.heart_axes
    heart_q = ((x - f(hx)) / f(ha)) ** 2 + ((y - f(hy)) / f(hb)) ** 2
    side = np.where(x < 0, f(-1.0), f(1.0))
    dome_top = np.where(x < 0, f(0.0), f(-an.dome_left_drop))
    dome_q = ((x - side * f(0.45 * an.cav_ax)) / f(0.65 * an.cav_ax)) ** 2 + (
        (y - f(an.cav_cy + 0.05 * an.cav_ay)) / f(an.cav_ay)
    ) ** 2
    dome_z = dome_top - f(an.dome_height) * dome_q
    vb_d2 = x**2 + (y - f(an.vb_cy)) ** 2
    aorta_d2 = (x - f(an.aorta_c[0])) ** 2 + (y - f(an.aorta_c[1])) ** 2
    return PlaneTerms(cav_q, med_q, heart_q, dome_z, vb_d2, aorta_d2)


def cavity_scale(an: Anatomy, z: np.ndarray | float) -> np.ndarray:
    """Relative size of the cavity ellipse at height z: 1 below the apex taper, 0 above the apex."""
    z = np.asarray(z, dtype=np.float32)
    t = np.clip((z - an.z_taper) / (an.z_top - an.z_taper), 0.0, 1.0)
    return np.sqrt(np.maximum(1.0 - t**2, 0.0)).astype(np.float32)


def lung_mask(an: Anatomy, terms: PlaneTerms, z: np.ndarray | float, margin_mm: float = 0.0) -> np.ndarray:
    """True where (x, y, z) lies in a lung, at least ``margin_mm`` (approximately) inside it."""
    f = np.float32
    z = np.asarray(z, dtype=f)
    m = f(margin_mm)
    scale = cavity_scale(an, z) - m / f(min(an.cav_ax, an.cav_ay))
    inside = (terms.cav_q <= np.maximum(scale, 0.0) ** 2) & (scale > 0)
    inside &= terms.med_q > (1.0 + m / f(min(an.med_ax, an.med_ay))) ** 2
    hz = ((z - f(an.heart_c[2])) / f(an.heart_axes[2])) ** 2
    inside &= terms.heart_q + hz > (1.0 + m / f(min(an.heart_axes))) ** 2
    inside &= z > terms.dome_z + m
    inside &= terms.vb_d2 > (an.vb_r + 4.0 + margin_mm) ** 2
    inside &= (terms.aorta_d2 > (an.aorta_r + 2.0 + margin_mm) ** 2) | (z > an.z_arch)
    return inside


def lung_points(an: Anatomy, pts: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
    """:func:`lung_mask` for an (N, 3) array of (x, y, z) mm points; returns (N,) bools."""
    pts = np.atleast_2d(pts)
    return lung_mask(an, plane_terms(an, pts[:, 0], pts[:, 1]), pts[:, 2], margin_mm)
