"""``segment_from_seed``: one click (plus optional add/remove clicks) → a tumour ROI on the CT grid."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage as ndi

from pipeline.core.errors import InputError, SeedError
from pipeline.core.volume import Volume
from pipeline.segment.grow import (FAT_HU, IN_PLANE, LUNG_HU, MIN_LUNG_ML, SEED_BONE_HU, SEED_LUNG_HU, WIDE_CAP_DEPTHS, Grown, body_slab, grow,
                                   make_crop, seed_hu, touches_crop_edge)
from pipeline.segment.params import Point, SegmentParams, Segmentation, as_point

METHOD = "lung-cavity-constrained threshold growing v3"  # v2: own-lung hull for masses the closing cannot fill;
# v3: re-seeded at the region's deepest voxel, hull retry after a leak, radius cap in the hull
RESEED_MAX = 6  # re-seeding rounds at most (measured: 1–3 on LUNG1-001 GTV-1 and the phantoms)


def _seed_index(ct: Volume, seed: Point) -> tuple[int, int, int]:
    idx = np.rint(ct.physical_to_index(np.asarray(seed, float))).astype(int)
    if any(i < 0 or i >= n for i, n in zip(idx, ct.shape_zyx)):
        lo, hi = ct.physical_extent()
        raise SeedError("the click at ({:.1f}, {:.1f}, {:.1f}) mm lies outside the CT, which spans "
                        "x {:.0f}…{:.0f}, y {:.0f}…{:.0f}, z {:.0f}…{:.0f} mm (LPS)".format(*seed, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
    return int(idx[0]), int(idx[1]), int(idx[2])


class _Context:
    """What every click on one CT shares: the body mask and aerated lung of the slab around it."""

    def __init__(self, ct: Volume, seed_zyx: tuple[int, int, int], reach_mm: float) -> None:
        sz, sy, sx = ct.spacing_zyx
        self.ds = max(1, round(3.0 / sx))
        k = int(math.ceil((reach_mm + 10.0) / sz))
        self.z0, self.z1 = max(0, seed_zyx[0] - k), min(ct.shape_zyx[0], seed_zyx[0] + k + 1)
        self.body = body_slab(ct, self.z0, self.z1, self.ds)
        self.lung = (ct.array[self.z0:self.z1, ::self.ds, ::self.ds] < LUNG_HU) & self.body
        self.aerated = (ct.array[self.z0:self.z1, ::self.ds, ::self.ds] < SEED_LUNG_HU) & self.body
        self.sp = (sz, sy * self.ds, sx * self.ds)
        self._hull: np.ndarray | None = None
        self._hull_label = -1
        self._labels: np.ndarray | None = None
        self._big: list[int] = []

    def _label_lungs(self) -> None:
        if self._labels is None:
            opened = ndi.binary_opening(self.lung, structure=IN_PLANE)
            self._labels, _n = ndi.label(opened)
            sizes = np.bincount(self._labels.ravel())
            sizes[0] = 0
            self._big = [int(i) for i in np.nonzero(sizes * float(np.prod(self.sp)) / 1000.0 >= MIN_LUNG_ML)[0]]

    def lung_hull(self, seed_zyx: tuple[int, int, int]) -> tuple[np.ndarray, float] | None:
        """Per-slice convex hull (ds grid of the slab) of the lung nearest the click (left and right
        lungs apart: components of the aerated lung, opened per slice, of at least MIN_LUNG_ML) and
        the click's distance (mm) to that lung; None when no such lung lies within 60 mm."""
        from skimage.morphology import convex_hull_image

        self._label_lungs()
        c = np.array(self.at(seed_zyx))
        best, best_d = 0, 60.0
        for lab in self._big:
            pts = np.argwhere(self._labels == lab)
            d = float(np.sqrt((((pts - c) * np.asarray(self.sp)) ** 2).sum(axis=1)).min())
            if d < best_d:
                best, best_d = lab, d
        if best == 0:
            return None
        if best != self._hull_label:
            comp = self._labels == best
            hull = np.zeros_like(comp)
            for z in range(comp.shape[0]):
                if comp[z].sum() >= 3:
                    hull[z] = convex_hull_image(comp[z])
            self._hull, self._hull_label = hull, best
        return self._hull, best_d

    def at(self, seed_zyx: tuple[int, int, int]) -> tuple[int, int, int]:
        return (seed_zyx[0] - self.z0, min(seed_zyx[1] // self.ds, self.body.shape[1] - 1),
                min(seed_zyx[2] // self.ds, self.body.shape[2] - 1))

    def lung_distance_mm(self, seed_zyx: tuple[int, int, int], limit_mm: float = 60.0) -> float:
        """Distance (mm) from the click to the nearest aerated lung (< −650 HU, in a lung: a component
        of at least MIN_LUNG_ML, so not air in a bronchus inside the mass), at most ``limit_mm``."""
        c = self.at(seed_zyx)
        box = tuple(slice(max(0, i - int(math.ceil(limit_mm / s))), i + int(math.ceil(limit_mm / s)) + 1)
                    for i, s in zip(c, self.sp))
        self._label_lungs()  # the lungs only: not a bronchus inside the mass (its air is not the lung's surface)
        pts = np.argwhere(self.aerated[box] & np.isin(self._labels[box], self._big))
        if len(pts) == 0:
            return limit_mm
        local = np.array([i - b.start for i, b in zip(c, box)])
        return float(min(limit_mm, np.sqrt((((pts - local) * np.asarray(self.sp)) ** 2).sum(axis=1)).min()))


def _check_click(ct: Volume, ctx: _Context, seed_zyx: tuple[int, int, int]) -> None:
    if not ctx.body[ctx.at(seed_zyx)]:
        raise SeedError("the click lies outside the body (in the air around the patient): click inside the tumour")
    hu = seed_hu(ct, seed_zyx)
    if hu < SEED_LUNG_HU:
        raise SeedError(f"the click is in air or aerated lung parenchyma (about {hu:.0f} HU), not in a tumour: "
                        "click inside the tumour's solid or ground-glass part")
    # fat: fat-dense at the click and all around it (a click on a tumour's solid/ground-glass border is not)
    if FAT_HU[0] < hu < FAT_HU[1] and FAT_HU[0] < seed_hu(ct, seed_zyx, 5.0, 10) and seed_hu(ct, seed_zyx, 5.0, 90) < FAT_HU[1]:
        raise SeedError(f"the click is on fat (about {hu:.0f} HU), not on a tumour: click inside the tumour")
    if hu > SEED_BONE_HU:
        raise SeedError(f"the click is on bone or calcification (about {hu:.0f} HU), not on a tumour: "
                        "click inside the tumour")
    lung_ml = float(ctx.lung.sum()) * float(np.prod(ctx.sp)) / 1000.0
    if lung_ml < MIN_LUNG_ML:
        raise SeedError(f"the CT shows no aerated lung near the click ({lung_ml:.0f} mL within the slices around it): "
                        "click-to-segment needs a chest CT with the lungs in view")


def _deepest_zyx(g: Grown) -> tuple[int, int, int]:
    depth = ndi.distance_transform_edt(g.region, sampling=g.crop.spacing_zyx)
    i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    o, s = g.crop.origin, g.crop.step
    return (int(o[0] + i[0]), int(o[1] + i[1] * s), int(o[2] + i[2] * s))


def _grow_click(ct: Volume, ctx: _Context, seed_zyx: tuple[int, int, int], params: SegmentParams) -> Grown:
    """Grow the click; a region that leaked to the cap or a large mass (grown in its lung's hull) is
    grown again from its deepest voxel (snapped to the 3 mm grid) until that stops moving, so any
    click inside the same mass gives the same ROI (threshold, crop and cap all follow the seed)."""
    g = _grow_once(ct, ctx, seed_zyx, params)
    if not (g.capped or g.wide):
        return g
    # a mass the closed cavity cannot hold stays in its lung's hull (else a re-seed may take a leak
    # for the mass); one grown there only after a leak may go back to the closed cavity
    seen, order, first_wide = {seed_zyx: g}, [seed_zyx], g.wide and not (g.retried and g.capped)
    for _ in range(RESEED_MAX):
        d = _deepest_zyx(g)
        nxt = (d[0], int(round(d[1] / ctx.ds)) * ctx.ds, int(round(d[2] / ctx.ds)) * ctx.ds)
        if nxt in seen:  # a fixed point, or a cycle: its smallest index, whichever click started it
            seed_zyx = min(order[order.index(nxt):])
            return seen[seed_zyx]
        try:
            g = _grow_once(ct, ctx, nxt, params, in_hull=first_wide)
        except SeedError:
            return seen[order[-1]]
        seen[nxt] = g
        order.append(nxt)
    return g


def _grow_once(ct: Volume, ctx: _Context, seed_zyx: tuple[int, int, int], params: SegmentParams, *,
               in_hull: bool = False) -> Grown:
    _check_click(ct, ctx, seed_zyx)
    lung_dist = ctx.lung_distance_mm(seed_zyx)
    reach = 0.75 * params.max_diameter_mm  # mm from the click: an off-centre click still reaches the far side
    half = float(np.clip(2.0 * lung_dist + 20.0, 30.0, reach + 5.0))
    body = (ctx.body, ctx.z0, ctx.ds)
    retried = False
    while True:
        g = grow(make_crop(ct, seed_zyx, half, body, lambda: ctx.lung_hull(seed_zyx)), sensitivity=params.sensitivity, reach_mm=reach,
                 lung_dist_mm=lung_dist, in_hull=in_hull)
        if half >= reach + 5.0 or not touches_crop_edge(g):
            if g.capped and not g.wide and not in_hull:  # leaked in the closed cavity: try the lung's hull
                in_hull, retried = True, True
                continue
            if retried:
                g = dataclasses.replace(g, retried=True)
            return g
        half = min(reach + 5.0, half * 1.8)


def _paste(shape: tuple[int, int, int], g: Grown) -> np.ndarray:
    out = np.zeros(shape, bool)
    r, c = g.region, g.crop
    s = c.step
    if s > 1:
        r = np.repeat(np.repeat(r, s, axis=1), s, axis=2)
    z0, y0, x0 = c.origin
    y0, x0 = y0 - s // 2, x0 - s // 2
    ys, xs = max(0, -y0), max(0, -x0)
    r = r[:, ys:, xs:]
    y0, x0 = y0 + ys, x0 + xs
    r = r[: shape[0] - z0, : shape[1] - y0, : shape[2] - x0]
    out[z0:z0 + r.shape[0], y0:y0 + r.shape[1], x0:x0 + r.shape[2]] |= r
    return out


def _bbox(mask: np.ndarray, margin: tuple[int, int, int]) -> tuple[slice, ...]:
    nz = np.nonzero(mask)
    return tuple(slice(max(0, int(i.min()) - m), int(i.max()) + m + 1) for i, m in zip(nz, margin))


def _keep_seeded(mask: np.ndarray, seeds: list[tuple[int, int, int]]) -> np.ndarray:
    labels, _n = ndi.label(mask)
    keep = {int(labels[s]) for s in seeds} - {0}
    return np.isin(labels, list(keep)) if keep else np.zeros_like(mask)


def _remove(mask: np.ndarray, ct: Volume, keep_pts: list[Point], drop_pts: list[Point]) -> np.ndarray:
    """Voronoi split: voxels nearer (mm) to a remove-click than to every keep-click leave the ROI."""
    idx = np.argwhere(mask)
    xyz = ct.index_to_physical(idx)
    d_keep = np.min(np.linalg.norm(xyz[:, None, :] - np.asarray(keep_pts)[None], axis=2), axis=1)
    d_drop = np.min(np.linalg.norm(xyz[:, None, :] - np.asarray(drop_pts)[None], axis=2), axis=1)
    out = mask.copy()
    gone = idx[d_drop < d_keep]
    out[gone[:, 0], gone[:, 1], gone[:, 2]] = False
    return out


def _adjust(mask: np.ndarray, ct: Volume, mm: float, seeds: list[tuple[int, int, int]]) -> np.ndarray:
    sp = ct.spacing_zyx
    margin = tuple(int(math.ceil(abs(mm) / s)) + 1 for s in sp)
    box = _bbox(mask, margin)
    sub = mask[box]
    if mm > 0:
        grown = ndi.distance_transform_edt(~sub, sampling=sp) <= mm
        sub = grown & (ct.array[box] < SEED_BONE_HU) & (ct.array[box] > LUNG_HU) | sub
    else:
        sub = ndi.distance_transform_edt(sub, sampling=sp) > -mm
    out = np.zeros_like(mask)
    out[box] = sub
    kept = _keep_seeded(out, seeds)
    return kept if kept.any() else out


def longest_diameter_mm(mask: np.ndarray, ct: Volume) -> float:
    """Largest distance (mm) between two voxel centres of the ROI (its 3-D Feret diameter)."""
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import pdist

    surface = mask & ~ndi.binary_erosion(mask)
    pts = ct.index_to_physical(np.argwhere(surface))
    if len(pts) < 2:
        return 0.0
    try:
        pts = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        pass
    return float(pdist(pts).max()) if len(pts) <= 20000 else float(np.ptp(pts, axis=0).max())


def segment_from_seed(ct: Volume, *, seed_xyz_mm: tuple[float, float, float],
                      params: SegmentParams | None = None) -> Segmentation:
    """Segment the tumour under a click. ``ct``: HU, (z, y, x); ``seed_xyz_mm``: LPS mm (x, y, z).

    Raises :class:`~pipeline.core.errors.SeedError` (an ``InputError``) with one sentence when the
    click cannot start a tumour ROI; a region that reaches the growth cap is returned with
    ``capped=True`` and a warning."""
    if not isinstance(ct, Volume):
        raise TypeError("ct must be a pipeline.core.volume.Volume")
    params = SegmentParams() if params is None else params
    if not isinstance(params, SegmentParams):
        raise TypeError("params must be a SegmentParams")
    seed = as_point(seed_xyz_mm, name="the click")
    seed_zyx = _seed_index(ct, seed)
    ctx = _Context(ct, seed_zyx, params.max_diameter_mm)
    grown = [_grow_click(ct, ctx, seed_zyx, params)]
    keep_pts, keep_idx = [seed], [seed_zyx]
    for p in params.add_seeds_xyz_mm:
        try:
            idx = _seed_index(ct, p)
            if not any(_paste(ct.shape_zyx, g)[idx] for g in grown):
                grown.append(_grow_click(ct, _Context(ct, idx, params.max_diameter_mm), idx, params))
        except SeedError as err:
            raise SeedError(str(err).replace("the click", "an added click", 1)) from None
        keep_pts.append(p)
        keep_idx.append(idx)
    mask = np.zeros(ct.shape_zyx, bool)
    for g in grown:
        mask |= _paste(ct.shape_zyx, g)
    if params.remove_seeds_xyz_mm:
        for p in params.remove_seeds_xyz_mm:
            try:
                _seed_index(ct, p)
            except SeedError as err:
                raise SeedError(str(err).replace("the click", "a remove click", 1)) from None
        mask = _keep_seeded(_remove(mask, ct, keep_pts, list(params.remove_seeds_xyz_mm)), keep_idx)
    if params.adjust_mm:
        mask = _adjust(mask, ct, params.adjust_mm, keep_idx)
    if not mask.any():
        raise InputError("the adjusted ROI is empty: shrink less or remove fewer parts")
    capped = any(g.capped for g in grown)
    diameter = longest_diameter_mm(mask, ct)
    warnings: list[str] = []
    radius_capped = [g.cap_mm for g in grown if g.capped and g.wide and g.cap_mm < 0.75 * params.max_diameter_mm]
    if radius_capped:
        warnings.append(f"the ROI reached the size cap of a large mass ({max(radius_capped):.0f} mm from its centre, "
                        f"{WIDE_CAP_DEPTHS:g} × its inscribed radius) and growth was stopped there: part of the mass may "
                        "be missing (add a click there) or the cut may run through mediastinum or vessels; check the ROI")
    elif capped or diameter > params.max_diameter_mm:
        capped = True
        warnings.append(f"the ROI reached the growth cap of {params.max_diameter_mm:.0f} mm (longest diameter "
                        f"{diameter:.0f} mm) and growth was stopped there: the click may be in a very large mass or "
                        "the region leaked into the chest wall or mediastinum; check the ROI")
    volume_ml = float(mask.sum()) * float(np.prod(ct.spacing_xyz)) / 1000.0
    return Segmentation(mask=ct.with_array(mask.astype(np.uint8)), seed_xyz_mm=seed,
                        seed_ijk=(seed_zyx[2], seed_zyx[1], seed_zyx[0]), params=params, capped=capped,
                        warnings=tuple(warnings), volume_ml=volume_ml, longest_diameter_mm=diameter,
                        method=METHOD, threshold_hu=grown[0].threshold_hu)
