"""The tumour's shape and its placement in a patient's lung.

Contract: :func:`draw_layout` takes a phantom seed and a :class:`~pipeline.synth.specs.TumourSpec`
and draws, from children 0 (anatomy) and 1 (tumour) of ``SeedSequence(seed).spawn(4)``, the
:class:`~pipeline.synth.anatomy.Anatomy`, the lobulated :class:`TumourShape` (radius in mm), the
pleural-tag and indentation extras and candidate sites with a cheap feasibility test.
:func:`place_tumour` returns the tumour centre at exactly ``distance_to_pleura_mm`` from the costal
pleura and the nearest pleura point, both (x, y, z) mm, or raises ``ValueError`` when the lungs
cannot hold the tumour at that gap.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from pipeline.synth.anatomy import Anatomy, draw_anatomy, plane_terms
from pipeline.synth.geometry import ellipse_signed_distance, fibonacci_sphere, unit
from pipeline.synth.specs import TumourSpec

__all__ = ["TumourShape", "Layout", "draw_layout", "place_tumour", "ray_to_cavity"]

@dataclass(frozen=True)
class TumourShape:
    """A lobulated tumour: radius R0 · (1 + lobulation · Σ w_j max(dir · lobe_j, 0)^4) along each
    direction, times the radius of the ellipsoid with relative semi-axes ``axes`` (x, y, z) along it
    when ``axes`` is given (generation 3)."""

    centre: np.ndarray  # (x, y, z) mm
    radius: float  # base radius R0 (mm)
    lobes: np.ndarray  # (J, 3) unit vectors
    weights: np.ndarray  # (J,)
    lobulation: float
    max_factor: float
    axes: Optional[np.ndarray] = None  # (3,) relative semi-axes; None: round (generation 2)

    def factor(self, dirs: np.ndarray) -> np.ndarray:
        dots = np.clip(dirs @ self.lobes.T, 0.0, None)
        lobed = 1.0 + self.lobulation * (dots**4 @ self.weights)
        if self.axes is None:
            return lobed
        return lobed / np.sqrt(((dirs / self.axes) ** 2).sum(axis=-1))

    @property
    def max_radius(self) -> float:
        return self.radius * self.max_factor


_NORMALISE_DIRS = fibonacci_sphere(800)
_SURFACE_DIRS = fibonacci_sphere(1200)


def _tumour_shape(tumour: TumourSpec, rng: np.random.Generator) -> TumourShape:
    lobes = rng.normal(size=(6, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    weights = rng.uniform(0.4, 1.0, size=6)
    axes = None if tumour.axes == (1.0, 1.0, 1.0) else np.asarray(tumour.axes, dtype=float)
    shape = TumourShape(np.zeros(3), 1.0, lobes, weights, tumour.lobulation, 1.0, axes)
    f = shape.factor(_NORMALISE_DIRS)
    radius = 0.5 * tumour.diameter_mm / float(np.mean(f**3)) ** (1.0 / 3.0)
    return dataclasses.replace(shape, radius=radius, max_factor=float(f.max()) * 1.02)


def _costal_gap(an: Anatomy, shape: TumourShape, centre: np.ndarray) -> float:
    """Smallest signed distance (mm) from the tumour surface to the costal pleura (cavity wall)."""
    pts = centre + _SURFACE_DIRS * (shape.radius * shape.factor(_SURFACE_DIRS))[:, None]
    sd, _, _ = ellipse_signed_distance(pts[:, 0], pts[:, 1] - an.cav_cy, an.cav_ax, an.cav_ay)
    return float(sd.min())


class Layout(NamedTuple):
    """A patient's anatomy and everything about the tumour drawn before it is rendered."""

    anatomy: Anatomy
    side: str
    shape: TumourShape
    n_tags: int
    tag_dirs: np.ndarray
    tag_radii: np.ndarray
    tag_hu: np.ndarray
    indent_radius: float
    candidates: np.ndarray  # (K, 2): cavity-ellipse angle (rad) and height z (mm) of the foot point
    feasible: np.ndarray  # (K,) bool: the cheap clearance test passed


_N_CANDIDATES = 64


def draw_layout(seed: int, tumour: TumourSpec) -> Layout:
    """Draw the anatomy and the tumour's shape, extras and candidate sites from ``seed``.

    A candidate site is a point of the costal pleura; the tumour would sit on its inward normal.
    It is feasible when every other lung boundary (mediastinum, heart, spine, aorta, diaphragm,
    apex) stays at least ``max(gap, 0) + 6 mm`` (+ 2 mm slack) from the tumour, so the costal
    pleura is the nearest one."""
    anatomy_seq, tumour_seq = np.random.SeedSequence(seed).spawn(4)[:2]
    an = draw_anatomy(np.random.default_rng(anatomy_seq))
    rng = np.random.default_rng(tumour_seq)
    side = tumour.side or ("right" if rng.random() < 0.55 else "left")
    shape = _tumour_shape(tumour, rng)
    n_tags = int(rng.integers(1, 4))
    tag_dirs = rng.uniform(-1.0, 1.0, size=(3, 3)) * np.array([1.0, 1.0, 0.5])
    tag_radii = rng.uniform(0.5, 0.9, size=3)
    tag_hu = rng.uniform(-60.0, 30.0, size=3)
    indent_radius = float(rng.uniform(3.5, 6.0))
    lateral = np.pi if side == "right" else 0.0
    angles = lateral + rng.uniform(-1.25, 1.25, _N_CANDIDATES)
    heights = rng.uniform(0.0, 1.0, _N_CANDIDATES)

    d = tumour.distance_to_pleura_mm
    r_max = shape.max_radius
    need = max(d, 0.0) + 6.0
    dome_top = 0.0 if side == "right" else -an.dome_left_drop
    z_lo, z_hi = dome_top + r_max + need + 5.0, an.z_taper - r_max - 5.0
    z = z_lo + heights * (z_hi - z_lo)
    centre = _candidate_centres(an, angles, z, r_max + d)
    cx, cy, cz = centre.T
    terms = plane_terms(an, cx, cy)
    hz = ((cz - an.heart_c[2]) / an.heart_axes[2]) ** 2
    clear = np.minimum.reduce(
        [
            (np.sqrt(terms.med_q) - 1.0) * min(an.med_ax, an.med_ay),
            (np.sqrt(terms.heart_q + hz) - 1.0) * min(an.heart_axes),
            np.sqrt(terms.vb_d2) - an.vb_r - 4.0,
            np.where(cz - r_max < an.z_arch, np.sqrt(terms.aorta_d2) - an.aorta_r - 2.0, np.inf),
        ]
    )
    feasible = (clear - r_max >= need + 2.0) & (z_lo < z_hi)
    return Layout(
        an, side, shape, n_tags, tag_dirs, tag_radii, tag_hu, indent_radius, np.stack([angles, z], axis=1), feasible
    )


def _candidate_centres(an: Anatomy, angles: np.ndarray, z: np.ndarray, offset: np.ndarray | float) -> np.ndarray:
    """Points ``offset`` mm inward along the cavity normal from the ellipse points at ``angles``."""
    px, py = an.cav_ax * np.cos(angles), an.cav_cy + an.cav_ay * np.sin(angles)
    nx, ny = -np.cos(angles) / an.cav_ax, -np.sin(angles) / an.cav_ay
    norm = np.hypot(nx, ny)
    return np.stack([px + offset * nx / norm, py + offset * ny / norm, np.broadcast_to(z, px.shape)], axis=-1)


def place_tumour(layout: Layout, tumour: TumourSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y, z) mm of the tumour and the nearest costal-pleura point: the first feasible
    candidate site, moved along its normal until the gap to the costal pleura is exactly
    ``distance_to_pleura_mm``, and checked again there."""
    an, shape = layout.anatomy, layout.shape
    d = tumour.distance_to_pleura_mm
    r_max = shape.max_radius
    need = max(d, 0.0) + 6.0
    for angle, z in layout.candidates[layout.feasible]:
        inward = unit(np.array([-np.cos(angle) / an.cav_ax, -np.sin(angle) / an.cav_ay, 0.0]))
        reach = float(np.max((_SURFACE_DIRS @ -inward) * shape.radius * shape.factor(_SURFACE_DIRS)))
        centre = _candidate_centres(an, np.array([angle]), np.array([z]), reach + d)[0]
        for _ in range(8):
            gap = _costal_gap(an, shape, centre)
            if abs(gap - d) < 1e-3:
                break
            centre = centre + inward * (d - gap)
        if abs(_costal_gap(an, shape, centre) - d) > 0.01:
            continue
        cx, cy, cz = centre
        terms = plane_terms(an, np.array([cx]), np.array([cy]))
        hz = ((cz - an.heart_c[2]) / an.heart_axes[2]) ** 2
        clear = min(
            (math.sqrt(float(terms.med_q[0])) - 1.0) * min(an.med_ax, an.med_ay),
            (math.sqrt(float(terms.heart_q[0]) + hz) - 1.0) * min(an.heart_axes),
            math.sqrt(float(terms.vb_d2[0])) - an.vb_r - 4.0,
            math.sqrt(float(terms.aorta_d2[0])) - an.aorta_r - 2.0 if cz - r_max < an.z_arch else math.inf,
        )
        if clear - r_max >= need:
            _, fx, fy = ellipse_signed_distance(np.array([cx]), np.array([cy - an.cav_cy]), an.cav_ax, an.cav_ay)
            return centre, np.array([float(fx[0]), float(fy[0]) + an.cav_cy, cz])
    raise ValueError(
        f"cannot place a {tumour.diameter_mm:.0f} mm tumour {d:.1f} mm from the pleura in this phantom's lungs; "
        "use a smaller tumour or gap, or another seed"
    )


def ray_to_cavity(an: Anatomy, start: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """First point where the ray start + λ·direction (λ > 0) leaves the cavity ellipse."""
    sx, sy = start[0] / an.cav_ax, (start[1] - an.cav_cy) / an.cav_ay
    dx, dy = direction[0] / an.cav_ax, direction[1] / an.cav_ay
    a, b, c = dx * dx + dy * dy, 2 * (sx * dx + sy * dy), sx * sx + sy * sy - 1.0
    lam = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
    return start + lam * direction
