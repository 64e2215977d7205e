"""Pulmonary vessel trees of a synthetic patient.

Contract: :func:`vessel_tree` grows capsule segments from the hila of an
:class:`~pipeline.synth.anatomy.Anatomy` using one ``numpy.random.Generator``, and returns their
start and end points ((N, 3) arrays of (x, y, z) mm) and radii (mm); every segment stays at least
3 mm inside the lungs. Painting them on a grid is :mod:`pipeline.synth.render`'s job.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pipeline.synth.anatomy import Anatomy, lung_points

__all__ = ["VesselTree", "vessel_tree"]

class VesselTree(NamedTuple):
    """Vessel segments: starts and ends (N, 3) in mm (x, y, z), radii (N,) in mm."""

    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray


def vessel_tree(
    an: Anatomy, rng: np.random.Generator, *, max_segments: int = 8000, min_radius: float = 0.3
) -> VesselTree:
    """Branching pulmonary vessels of both lungs, grown generation by generation from the hila.

    Each segment is 6–9 radii + 2 mm long (at most 25 mm); it ends where it would come within
    3 mm of a lung boundary (and then stops branching), else it splits into a continuing branch
    (0.74–0.86 × r) and a side branch (0.55–0.72 × r, 34–63° off), both bent slightly away from
    the hilum. Thick branches come first; growth stops at ``min_radius`` or ``max_segments``.
    """
    hila, starts, dirs, radii = [], [], [], []
    for s in (-1.0, 1.0):
        hilum = np.array([an.med_cx + s * (an.med_ax + 8.0), an.cav_cy + an.hilum_dy, an.z_carina - 25.0])
        trunks = np.array(
            [
                (0.35 * s, 0.10, 0.93),
                (0.70 * s, -0.30, 0.65),
                (0.80 * s, -0.55, 0.15),
                (0.75 * s, 0.50, -0.10),
                (0.80 * s, 0.00, -0.45),
                (0.45 * s, -0.35, -0.82),
                (0.40 * s, 0.45, -0.80),
            ]
        )
        trunks = trunks + rng.normal(0.0, 0.12, trunks.shape)
        hila.append(np.repeat(hilum[None], len(trunks), axis=0))
        starts.append(np.repeat(hilum[None], len(trunks), axis=0))
        dirs.append(trunks / np.linalg.norm(trunks, axis=1, keepdims=True))
        radii.append(rng.uniform(3.0, 4.2, len(trunks)))
    hilum_of, start, direction, radius = (np.concatenate(v) for v in (hila, starts, dirs, radii))
    fractions = np.linspace(0.2, 1.0, 5)
    out_start, out_end, out_r = [], [], []
    n_out = 0
    while radius.size and n_out < max_segments:
        if radius.size > max_segments - n_out:  # keep the thickest within the budget
            keep = np.sort(np.argsort(-radius, kind="stable")[: max_segments - n_out])
            hilum_of, start, direction, radius = hilum_of[keep], start[keep], direction[keep], radius[keep]
        n = radius.size
        length = np.clip(radius * rng.uniform(6.0, 9.0, n) + 2.0, 3.0, 25.0)
        pts = start[:, None, :] + direction[:, None, :] * (length[:, None] * fractions)[:, :, None]
        inside = lung_points(an, pts.reshape(-1, 3), margin_mm=3.0).reshape(n, len(fractions))
        n_ok = np.where(inside.all(axis=1), len(fractions), np.argmin(inside, axis=1))
        jitter = rng.normal(0.0, 0.25, (n, 3))
        side_axis = rng.normal(size=(n, 3))
        angle = rng.uniform(0.6, 1.1, n)
        r_main, r_side = radius * rng.uniform(0.74, 0.86, n), radius * rng.uniform(0.55, 0.72, n)
        drawn = n_ok > 0
        end = start + direction * (length * fractions[np.maximum(n_ok - 1, 0)])[:, None]
        out_start.append(start[drawn])
        out_end.append(end[drawn])
        out_r.append(radius[drawn])
        n_out += int(drawn.sum())
        grow = n_ok == len(fractions)
        outward = end - hilum_of
        outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
        main_dir = direction + jitter + 0.2 * outward
        perp = side_axis - np.sum(side_axis * direction, axis=1, keepdims=True) * direction
        perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
        side_dir = np.cos(angle)[:, None] * direction + np.sin(angle)[:, None] * perp + 0.2 * outward
        children = []
        for child_dir, child_r in ((main_dir, r_main), (side_dir, r_side)):
            ok = grow & (child_r >= min_radius)
            children.append((hilum_of[ok], end[ok], child_dir[ok], child_r[ok]))
        hilum_of, start, direction, radius = (np.concatenate([c[i] for c in children]) for i in range(4))
        direction = direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    return VesselTree(np.concatenate(out_start), np.concatenate(out_end), np.concatenate(out_r))
