"""Placing a generation-3 tumour (any size from 8 to 100 mm, round or elongated) in a lung.

Contract: :func:`place_tumour3` takes the :class:`~pipeline.synth.tumour.Layout` drawn by
:func:`~pipeline.synth.tumour.draw_layout` (its anatomy and tumour shape) and the phantom seed,
and returns the tumour centre at exactly ``distance_to_pleura_mm`` from the costal pleura and the
nearest costal-pleura point, both (x, y, z) mm, or None when no site of this patient's lung holds
the tumour. Unlike generation 2 (a bounding sphere against every other boundary), it tests the
tumour's actual surface points, so a large elongated tumour fits where its bounding sphere would
not: every surface point must stay inside the full-width part of the cavity (below the apex
taper), above the hemidiaphragm and clear of the mediastinum, heart, spine and aorta by
``min(max(gap, 0), 10) + 3`` mm. Candidate sites come from child 4 of ``SeedSequence(seed)``
(children 0–3 are generation 2's), 256 points of the costal pleura on the tumour's side.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from pipeline.synth.anatomy import Anatomy, plane_terms
from pipeline.synth.geometry import ellipse_signed_distance, fibonacci_sphere, unit
from pipeline.synth.specs import TumourSpec
from pipeline.synth.tumour import Layout, TumourShape

__all__ = ["place_tumour3", "fissure_plane", "extras_rng", "surface_points", "support"]

_DIRS = fibonacci_sphere(600)
_N_SITES = 256


def extras_rng(seed: int) -> np.random.Generator:
    """The generator of generation-3 extras: child 4 of ``SeedSequence(seed)`` (a stream of its own)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(5)[4])


def surface_points(shape: TumourShape, centre: np.ndarray) -> np.ndarray:
    """(600, 3) points (x, y, z) mm of the tumour surface around ``centre``."""
    return centre + _DIRS * (shape.radius * shape.factor(_DIRS))[:, None]


def support(shape: TumourShape, direction: np.ndarray) -> float:
    """How far (mm) the tumour surface reaches from its centre along the unit ``direction``."""
    return float(np.max((_DIRS @ direction) * shape.radius * shape.factor(_DIRS)))


def _clearance(an: Anatomy, pts: np.ndarray) -> np.ndarray:
    """Approximate distance (mm) from points to every lung boundary except the costal pleura."""
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    t = plane_terms(an, x, y)
    hz = ((z - an.heart_c[2]) / an.heart_axes[2]) ** 2
    return np.minimum.reduce([
        (np.sqrt(t.med_q) - 1.0) * min(an.med_ax, an.med_ay),
        (np.sqrt(t.heart_q + hz) - 1.0) * min(an.heart_axes),
        np.sqrt(t.vb_d2) - an.vb_r - 4.0,
        np.where(z < an.z_arch, np.sqrt(t.aorta_d2) - an.aorta_r - 2.0, np.inf),
        z - t.dome_z,
        an.z_taper - z,
    ])


def _costal_gap(an: Anatomy, pts: np.ndarray) -> np.ndarray:
    """Smallest signed distance (mm) of each point set (..., N, 3) to the costal pleura."""
    sd, _, _ = ellipse_signed_distance(pts[..., 0], pts[..., 1] - an.cav_cy, an.cav_ax, an.cav_ay)
    return sd.min(axis=-1)


def place_tumour3(layout: Layout, tumour: TumourSpec, seed: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Centre and nearest costal-pleura point (x, y, z) mm, or None (module docstring)."""
    an, shape, d = layout.anatomy, layout.shape, tumour.distance_to_pleura_mm
    rng = extras_rng(seed)
    lateral = math.pi if layout.side == "right" else 0.0
    angles = lateral + rng.uniform(-1.25, 1.25, _N_SITES)
    heights = rng.uniform(0.0, 1.0, _N_SITES)
    z_extent = support(shape, np.array([0.0, 0.0, 1.0]))
    z = -an.dome_height * 0.5 + z_extent + heights * (an.z_taper - z_extent - (-an.dome_height * 0.5 + z_extent))
    inward = np.stack([-np.cos(angles) / an.cav_ax, -np.sin(angles) / an.cav_ay, np.zeros(_N_SITES)], axis=1)
    inward /= np.linalg.norm(inward, axis=1, keepdims=True)
    reach = np.max((inward @ _DIRS.T) * (shape.radius * shape.factor(_DIRS))[None, :], axis=1)
    foot = np.stack([an.cav_ax * np.cos(angles), an.cav_cy + an.cav_ay * np.sin(angles), z], axis=1)
    centres = foot + inward * (reach + d)[:, None]
    need = min(max(d, 0.0), 10.0) + 3.0
    offsets = _DIRS * (shape.radius * shape.factor(_DIRS))[:, None]
    coarse = offsets[::6]  # a cheap first test on 100 surface points, 32 sites at a time
    for start in range(0, _N_SITES, 32):
        clear = _clearance(an, centres[start:start + 32, None, :] + coarse[None]).min(axis=1)
        for k in start + np.flatnonzero(clear >= need + 2.0):
            placed = _refine(an, centres[k], inward[k], offsets, d, need)
            if placed is not None:
                return placed
    return None


def _refine(an: Anatomy, centre: np.ndarray, inward: np.ndarray, offsets: np.ndarray, d: float,
            need: float) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Move a site's centre along its normal until the costal gap is ``d``; check it there."""
    for _ in range(10):
        gap = float(_costal_gap(an, centre + offsets))
        if abs(gap - d) < 1e-3:
            break
        centre = centre + inward * (d - gap)
    if abs(float(_costal_gap(an, centre + offsets)) - d) > 0.01:
        return None
    if float(_clearance(an, centre + offsets).min()) < need:
        return None
    _, fx, fy = ellipse_signed_distance(np.array([centre[0]]), np.array([centre[1] - an.cav_cy]),
                                        an.cav_ax, an.cav_ay)
    return centre, np.array([float(fx[0]), float(fy[0]) + an.cav_cy, float(centre[2])])


def fissure_plane(shape: TumourShape, centre: np.ndarray, gap_mm: float, seed: int) -> tuple[np.ndarray, float]:
    """Unit normal (x, y, z) and offset (mm) of an oblique interlobar fissure plane n·p = offset,
    ``gap_mm`` from the tumour surface (<= 0: touching or cut by it). Its tilt (35–60° from the
    axial plane, sloping down anteriorly like an oblique fissure) and the side of the tumour it
    passes come from the extras stream after the candidate sites."""
    rng = extras_rng(seed)
    rng.uniform(size=2 * _N_SITES)  # the candidate sites' draws
    tilt = math.radians(rng.uniform(35.0, 60.0))
    normal = unit(np.array([rng.uniform(-0.15, 0.15), math.sin(tilt), math.cos(tilt)]))
    if rng.random() < 0.5:
        normal = -normal
    return normal, float(normal @ centre + support(shape, normal) + gap_mm)
