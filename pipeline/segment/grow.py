"""Growing one click into a tumour region on a crop of the CT (the algorithm; see
:mod:`pipeline.segment` for why this one).

All arrays here are (z, y, x) crops of the CT; distances are in mm (``scipy.ndimage``'s exact
Euclidean distance transform with the crop's (z, y, x) spacing, so thick slices are handled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pipeline.core.errors import SeedError
from pipeline.core.volume import Volume

AIR_BODY_HU = -500.0  # body outline: the patient is everything above this, holes filled per slice
LUNG_HU = -400.0  # aerated lung inside the body
SEED_LUNG_HU = -650.0  # a click this dark is on aerated lung (ground glass is brighter)
SEED_BONE_HU = 300.0  # a click this bright is on bone or calcification
FAT_HU = (-190.0, -60.0)  # a click in this range is on fat (tumour: ground glass below, solid above)
TUBE_RATIO = 4.0
PLEURAL_MARGIN_MM = 1.5  # tumour-dense voxels this close to the region, beyond the lung cavity, are kept  # a region this many times longer than the structure is thick at the click: a vessel
WIDE_MAX_OPEN_MM = 8.0  # largest opening radius for a mass grown in the hull of its lung
FAT_BARRIER_MM = 2.5  # fat-dense voxels farther than this from aerated lung stop a mass grown in the hull of its lung
MIN_LUNG_ML = 30.0  # less aerated lung than this in the click's slab: "no lung"
WIDE_OPEN_FRACTION = 0.15  # opening radius of a mass grown in the hull of its lung, × its radius (3–8 mm)
WIDE_CAP_DEPTHS = 2.5  # a mass grown in the hull of its lung stops this many × its inscribed radius from the seed (flagged)


@dataclass(frozen=True)
class Crop:
    """A box of the CT around the click: ``hu`` (z, y, x) float32, ``origin`` its first voxel's
    full-grid (z, y, x) index, ``step`` the in-plane stride, ``spacing_zyx`` mm of the crop."""

    hu: np.ndarray
    body: np.ndarray
    origin: tuple[int, int, int]
    step: int
    spacing_zyx: tuple[float, float, float]
    seed: tuple[int, int, int]  # index in the crop
    touches_ct_edge: tuple[bool, ...]  # low/high faces per axis that are the CT's own edge
    # () -> (per-slice convex hull of the click's own lung on this crop, distance (mm) from the click to
    # that lung), or None when no lung is near; computed only for a click outside the closed cavity
    own_lung_hull: Callable[[], tuple[np.ndarray, float] | None] | None = None


@dataclass(frozen=True)
class Grown:
    region: np.ndarray  # bool crop
    crop: Crop
    threshold_hu: float
    capped: bool
    wide: bool = False  # grown in the hull of the click's own lung (a mass the closing cannot fill)
    cap_mm: float = float("nan")  # distance from the seed at which growth was stopped
    retried: bool = False  # grown in the hull only because growing in the closed cavity leaked


IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]],
                     bool)  # 4-connectivity within each axial slice, none across slices


def body_slab(ct: Volume, z0: int, z1: int, step: int) -> np.ndarray:
    """Body mask of slices z0..z1 (whole slices, in-plane stride ``step``): above −500 HU with
    holes (lungs, airways) filled slice by slice."""
    slab = ct.array[z0:z1, ::step, ::step] > AIR_BODY_HU
    return ndi.binary_fill_holes(slab, structure=IN_PLANE)


def seed_hu(ct: Volume, seed_zyx: tuple[int, int, int], radius_mm: float = 2.0, q: float = 50.0) -> float:
    """Percentile ``q`` (default the median) of HU in a box (± radius_mm, at least the voxel itself)
    around the click."""
    r = [max(0, int(radius_mm / s)) for s in ct.spacing_zyx]
    box = tuple(slice(max(0, c - k), c + k + 1) for c, k in zip(seed_zyx, r))
    return float(np.percentile(ct.array[box], q))


def make_crop(ct: Volume, seed_zyx: tuple[int, int, int], half_mm: float,
              body_full_ds: tuple[np.ndarray, int, int],
              own_lung_hull_ds: Callable[[], tuple[np.ndarray, float] | None] | None = None) -> Crop:
    """Crop ±half_mm around the click; in-plane stride so the crop is at most ~160 voxels wide."""
    sz, sy, sx = ct.spacing_zyx
    step = max(1, math.ceil(2 * half_mm / sx / 160))
    lo, hi, edge = [], [], []
    for c, s, n, st in zip(seed_zyx, (sz, sy, sx), ct.shape_zyx, (1, step, step)):
        k = int(math.ceil(half_mm / s))
        a, b = max(0, c - k), min(n, c + k + 1)
        if st > 1:  # align to the stride grid anchored at the click
            a = c - ((c - a) // st) * st
        lo.append(a)
        hi.append(b)
        edge += [a == 0 or a - st < 0, b >= n or b + st > n]
    hu = ct.array[lo[0]:hi[0], lo[1]:hi[1]:step, lo[2]:hi[2]:step].astype(np.float32)
    body_ds, z_off, ds = body_full_ds
    zz = np.arange(lo[0], hi[0]) - z_off
    yy = np.minimum(np.arange(lo[1], hi[1], step) // ds, body_ds.shape[1] - 1)
    xx = np.minimum(np.arange(lo[2], hi[2], step) // ds, body_ds.shape[2] - 1)
    body = body_ds[np.ix_(zz, yy, xx)]

    def own_lung_hull() -> tuple[np.ndarray, float] | None:
        got = None if own_lung_hull_ds is None else own_lung_hull_ds()
        return None if got is None else (got[0][np.ix_(zz, yy, xx)], got[1])

    seed = (seed_zyx[0] - lo[0], (seed_zyx[1] - lo[1]) // step, (seed_zyx[2] - lo[2]) // step)
    return Crop(hu=hu, body=body, origin=(lo[0], lo[1], lo[2]), step=step,
                spacing_zyx=(sz, sy * step, sx * step), seed=seed, touches_ct_edge=tuple(edge),
                own_lung_hull=own_lung_hull)


def exact_body(crop: Crop) -> np.ndarray:
    """The body at the crop's own resolution: everything but the air (< −500 HU) connected to
    air that the coarse body mask (3 mm) surely calls outside (4 mm in from its edge)."""
    air = crop.hu < AIR_BODY_HU
    k = max(1, int(math.ceil(4.0 / crop.spacing_zyx[2])))
    surely_out = ndi.binary_erosion(~crop.body, structure=IN_PLANE, iterations=k, border_value=1) & air
    if not surely_out.any():
        return ~(air & ~crop.body) if not crop.body.all() else np.ones_like(air)
    labels, _n = ndi.label(air)
    out_labels = np.unique(labels[surely_out])
    return ~np.isin(labels, out_labels[out_labels > 0])


def _edt(mask: np.ndarray, sp: tuple[float, float, float]) -> np.ndarray:
    return ndi.distance_transform_edt(mask, sampling=sp)


def _component_at(mask: np.ndarray, seed: tuple[int, int, int], sp, near_mm: float) -> np.ndarray | None:
    """The connected part of ``mask`` holding the click, or the nearest one within ``near_mm``."""
    labels, n = ndi.label(mask)
    if n == 0:
        return None
    lab = labels[seed]
    if lab == 0:  # nearest labelled voxel within near_mm, searched in a small box around the click
        k = [int(math.ceil(near_mm / v)) for v in sp]
        box = tuple(slice(max(0, c - r), c + r + 1) for c, r in zip(seed, k))
        sub = labels[box]
        pts = np.argwhere(sub > 0)
        if len(pts) == 0:
            return None
        local = np.array([c - b.start for c, b in zip(seed, box)])
        d = np.sqrt((((pts - local) * np.asarray(sp)) ** 2).sum(axis=1))
        if d.min() > near_mm:
            return None
        lab = sub[tuple(pts[int(np.argmin(d))])]
    return labels == lab


def ball_mask(shape, centre, sp, radius_mm: float) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, sp))
    return d2 <= radius_mm ** 2


def grow(crop: Crop, *, sensitivity: float, reach_mm: float, lung_dist_mm: float, in_hull: bool = False) -> Grown:
    """Grow the click in ``crop``: threshold between lung and tumour, inside the closed lung
    cavity (so chest wall and mediastinum stay out), opened to cut vessels, holes filled; a
    ground-glass rim around a solid core is taken in by a second, lower threshold. ``in_hull``:
    grow in the hull of the click's own lung even when the closed cavity holds the click (used
    when growing in the closed cavity leaked to the cap)."""
    a, sp, seed = crop.hu, crop.spacing_zyx, crop.seed
    body = exact_body(crop)
    lung = (a < LUNG_HU) & body
    # cavity: the lungs closed with a ball larger than the tumour's base on the pleura
    r_close = float(np.clip(lung_dist_mm + 4.0, 8.0, 60.0))
    filled = ndi.binary_fill_holes(lung, structure=IN_PLANE)  # a free-standing tumour is a hole in the lung
    dil = _edt(~filled, sp) <= r_close
    cavity = (_edt(dil, sp) > r_close) | filled
    cavity &= body
    wide, own_lung_mm = False, 0.0
    if (in_hull or not cavity[seed]) and crop.own_lung_hull is not None:
        # a mass too large for the closing (e.g. a 9 cm hilar mass): the per-slice convex hull of the
        # click's own lung (left or right alone; both together take in the mediastinum)
        got = crop.own_lung_hull()
        if got is not None and got[0][seed]:
            cavity, wide, own_lung_mm = got[0] & body, True, got[1]
    if not cavity[seed]:
        raise SeedError("the click is on soft tissue outside the lungs (chest wall, mediastinum or below the "
                        "diaphragm), not on a lung tumour: click inside the tumour")
    near = ball_mask(a.shape, seed, sp, 30.0) & lung
    mu_lung = float(np.median(a[near])) if near.sum() > 50 else -850.0
    r_seed = float(np.clip(0.5 * lung_dist_mm, 1.0, 3.0))
    seed_ball = ball_mask(a.shape, seed, sp, r_seed)
    mu_t = float(np.median(a[seed_ball]))
    reach = ball_mask(a.shape, seed, sp, reach_mm)
    r_open = float(np.clip(0.3 * lung_dist_mm, 1.0, 3.0))
    barrier = np.zeros_like(lung)
    if wide:  # a large mass: the radius from the click's own lung, fat away from the lung as a barrier
        radius = max(lung_dist_mm, own_lung_mm)
        r_open = float(np.clip(WIDE_OPEN_FRACTION * radius, 3.0, WIDE_MAX_OPEN_MM))
        barrier = (a > FAT_HU[0]) & (a < FAT_HU[1]) & (_edt(~lung, sp) > FAT_BARRIER_MM)

    def region_at(thr: float) -> np.ndarray:
        m = (a > thr) & (a < SEED_BONE_HU) & cavity & reach & ~barrier
        eroded = _edt(m, sp) > r_open
        core = _component_at(eroded, seed, sp, near_mm=r_open + max(sp))
        if core is None:
            width = 2 * float(_edt(m, sp)[seed]) if m[seed] else 0.0
            raise SeedError(f"the click is on a thin structure (about {max(width, min(sp)):.0f} mm across), "
                            "probably a vessel (a thin tube), not a tumour: click inside the tumour")
        opened = (_edt(~core, sp) <= r_open + 0.5 * min(sp)) & m
        comp = _component_at(opened, seed, sp, near_mm=r_open + max(sp))
        region = comp if comp is not None else core
        return ndi.binary_fill_holes(region)

    def threshold(level: float) -> float:
        span = max(level - mu_lung, 1.0)
        thr = mu_lung + (1.0 - sensitivity) * span
        return float(np.clip(thr, mu_lung + 100.0, level - 30.0)) if span > 130 else mu_lung + 0.5 * span

    thr = threshold(mu_t)
    region = region_at(thr)
    # the tumour's own level (median HU of the first region), not the click's, sets the threshold,
    # so clicks anywhere in the tumour give the same ROI
    level = float(np.percentile(a[region], 75))
    if level > mu_lung + 130.0 and abs(threshold(level) - thr) > 5.0:
        thr = threshold(level)
        region = region_at(thr)
    cap_mm = reach_mm
    if wide:  # a radius cap: the mediastinal strip along the hull's chord and upper-lobe vessels stay out
        cap_mm = min(reach_mm, WIDE_CAP_DEPTHS * float(_edt(region, sp).max()))
        reach = ball_mask(a.shape, seed, sp, cap_mm)
        region = region_at(thr)
    # a ground-glass rim: the 3 mm shell outside a solid core is clearly denser than lung
    shell = (_edt(~region, sp) <= 3.0) & ~region & cavity
    if shell.sum() > 20 and not wide:
        mu_shell = float(np.median(a[shell]))
        if mu_lung + 150.0 < mu_shell < thr:
            thr2 = mu_lung + (1.0 - sensitivity) * (mu_shell - mu_lung)
            thr2 = max(thr2, mu_lung + 100.0)
            region = region_at(thr2) | region
            thr = thr2
    # where it meets the chest wall, the tumour may reach a little beyond the lung cavity (measured:
    # juxta-pleural Dice and the probability both closer to the true ROI's, bench/README.md)
    rim = (_edt(~region, sp) <= PLEURAL_MARGIN_MM) & ~cavity & body & (a > thr) & (a < SEED_BONE_HU)
    region = region | rim
    _refuse_tube(region, seed, sp)
    capped = bool((region & ~ball_mask(a.shape, seed, sp, cap_mm - 1.5 * max(sp))).any())
    return Grown(region=region, crop=crop, threshold_hu=thr, capped=capped, wide=wide, cap_mm=cap_mm)


def _refuse_tube(region: np.ndarray, seed: tuple[int, int, int], sp: tuple[float, float, float]) -> None:
    """A click on a vessel: the structure at the click is thin (radius < 4 mm within 8 mm of it)
    and the connected region is much longer than that (a tube, not a round tumour)."""
    local = tuple(slice(max(0, c - int(math.ceil(8.0 / v))), c + int(math.ceil(8.0 / v)) + 1) for c, v in zip(seed, sp))
    sub = region[local]
    depth = _edt(np.pad(sub, 1), sp)[1:-1, 1:-1, 1:-1]
    near = ball_mask(sub.shape, tuple(c - b.start for c, b in zip(seed, local)), sp, 8.0)
    radius = float(depth[near].max()) if (near & sub).any() else 0.0
    if radius >= 4.0:
        return
    pts = np.argwhere(region) * np.asarray(sp)
    length = float(np.sqrt(((pts - np.asarray(seed) * np.asarray(sp)) ** 2).sum(axis=1)).max()) * 2.0
    if length > TUBE_RATIO * 2.0 * max(radius, min(sp)):
        raise SeedError(f"the click is on a thin tubular structure (about {2 * radius:.0f} mm across and "
                        f"{length:.0f} mm long), probably a vessel, not a tumour: click inside the tumour")


def touches_crop_edge(g: Grown) -> bool:
    """True when the region reaches a face of the crop that is not the CT's own edge."""
    r = g.region
    faces = [r[0], r[-1], r[:, 0], r[:, -1], r[:, :, 0], r[:, :, -1]]
    return any(f.any() and not edge for f, edge in zip(faces, g.crop.touches_ct_edge))
