"""Rendering one :class:`~pipeline.synth.specs.PhantomSpec` into a
:class:`~pipeline.synth.specs.Phantom` (the image model is described in :mod:`pipeline.synth`).

Contract: :func:`make_phantom` is deterministic (same spec ⇒ identical arrays). It frames a voxel
grid of ``shape_zyx`` (arrays (z, y, x)) with ITK-order ``spacing_xyz`` / ``origin_xyz`` in mm
around the chest, paints the anatomy slice by slice, then pleural tags and indentation, vessels,
main bronchi and the tumour, and applies the scanner (blur, noise, clipping to [−1024, 3071] HU).
Outputs: CT int16 HU, ROI uint8 {0, 1}, tissue uint8 (``TISSUE_LABELS``), one geometry.
Randomness: children of ``SeedSequence(spec.seed).spawn(4)``: 0 and 1 for the anatomy and tumour
(:func:`~pipeline.synth.tumour.draw_layout`), 2 for the vessel tree, 3 for the noise.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from pipeline.core.volume import Volume
from pipeline.synth.anatomy import Anatomy, cavity_scale, lung_mask, plane_terms
from pipeline.synth.geometry import Grid, unit
from pipeline.synth.placement3 import fissure_plane, place_tumour3, support, surface_points
from pipeline.synth.render3 import calibrate, grain_noise, kernel_plane, paint_extrapleural_fat, paint_fissure
from pipeline.synth.specs import TISSUE_LABELS, Phantom, PhantomSpec, PhantomTruth, TumourSpec, check
from pipeline.synth.tumour import TumourShape, draw_layout, place_tumour, ray_to_cavity
from pipeline.synth.vessels import vessel_tree

__all__ = ["make_phantom"]

# the codes of TISSUE_LABELS, in its order
_AIR, _SOFT, _FAT, _BONE, _LUNG, _VESSEL, _TUMOUR, _AIRWAY, _STRAND = TISSUE_LABELS.values()
_HU_MIN, _HU_MAX = -1024.0, 3071.0


def _render_anatomy(an: Anatomy, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """HU (int16) and tissue labels (uint8) of the anatomy without vessels and tumour."""
    f = np.float32
    nz, ny, nx = grid.z.size, grid.y.size, grid.x.size
    hu = np.empty((nz, ny, nx), dtype=np.int16)
    tissue = np.empty((nz, ny, nx), dtype=np.uint8)
    h = np.empty((ny, nx), dtype=f)  # one float slice, reused
    X, Y = np.meshgrid(grid.x.astype(f), grid.y.astype(f))
    terms = plane_terms(an, X, Y)

    body_q = (X / f(an.body_ax)) ** 2 + (Y / f(an.body_ay)) ** 2
    skin_q = (X / f(an.body_ax - an.skin)) ** 2 + (Y / f(an.body_ay - an.skin)) ** 2
    fat_q = (X / f(an.body_ax - an.skin - an.fat)) ** 2 + (Y / f(an.body_ay - an.skin - an.fat)) ** 2
    body = body_q <= 1.0
    fat_ring = (skin_q <= 1.0) & (fat_q > 1.0)
    aorta = terms.aorta_d2 <= an.aorta_r**2
    asc = (X - f(an.asc_c[0])) ** 2 + (Y - f(an.asc_c[1])) ** 2 <= an.asc_r**2
    tr_d2 = (X - f(an.trachea_c[0])) ** 2 + (Y - f(an.trachea_c[1])) ** 2
    trachea_wall, trachea_lumen = tr_d2 <= (an.trachea_r + 2.0) ** 2, tr_d2 <= an.trachea_r**2
    trachea_wall &= body
    trachea_lumen &= body
    liver_side = X < 0

    # lung attenuation: gravity gradient (denser posteriorly) plus a faint low-frequency texture
    lung_hu = f(an.hu_lung) + f(an.lung_gradient) * np.clip((Y - f(an.cav_cy)) / f(an.cav_ay), -1.0, 1.0)
    for phase, k, azimuth, amp in an.texture:
        lung_hu += f(amp) * np.cos(f(k) * (np.cos(azimuth) * X + np.sin(azimuth) * Y) + f(phase)).astype(f)

    # spine (vertebral body with cortex, canal, neural arch, spinous process) and sternum
    vb_d = np.sqrt(terms.vb_d2)
    vb = vb_d <= an.vb_r
    canal_y = an.vb_cy + an.vb_r + 8.0
    canal_d = np.sqrt(X**2 + (Y - f(canal_y)) ** 2)
    canal = canal_d <= 7.0
    arch = (canal_d > 7.0) & (canal_d <= 13.0) & (Y >= f(an.vb_cy + an.vb_r))
    spinous = (np.abs(X) <= 4.0) & (Y > f(canal_y)) & (Y <= f(canal_y + 32.0))
    posterior_bone = (arch | spinous) & (skin_q <= 1.0)
    sternum_q = (X / f(14.0)) ** 2 + ((Y - f(an.cav_cy - an.cav_ay - 7.0)) / f(6.0)) ** 2
    sternum = sternum_q <= 1.0

    # chest-wall band with ribs: approximate distance (mm) outside the cavity ellipse
    rho = np.sqrt(terms.cav_q)
    grad = np.sqrt((X / f(an.cav_ax**2)) ** 2 + ((Y - f(an.cav_cy)) / f(an.cav_ay**2)) ** 2) / np.maximum(rho, f(1e-6))
    depth = (rho - 1.0) / np.maximum(grad, f(1e-6))
    band_idx = np.nonzero((depth > 0.0) & (depth < an.rib_depth + an.rib_thick + 1.0) & body)
    band_depth = depth[band_idx]
    phi = np.arctan2(np.abs(X[band_idx]) / f(an.cav_ax), (Y[band_idx] - f(an.cav_cy)) / f(an.cav_ay))
    band_drop = f(an.rib_drop) * (1.0 - np.cos(phi)) / 2.0
    band_rib = (phi >= 0.25) & (phi <= an.rib_phi_max)
    band_cart = (phi > an.rib_phi_max) & (phi <= an.rib_phi_max + 0.35)
    band_dr2 = ((band_depth - f(an.rib_depth)) / f(an.rib_thick)) ** 2

    no_lung = np.zeros((ny, nx), dtype=bool)
    for k, z in enumerate(grid.z.astype(f)):
        t = tissue[k]
        h.fill(f(-1000.0))
        t.fill(_AIR)
        np.copyto(h, f(an.hu_muscle), where=body)
        np.copyto(t, _SOFT, where=body)
        np.copyto(h, f(an.hu_fat), where=fat_ring)
        np.copyto(t, _FAT, where=fat_ring)
        scale = float(cavity_scale(an, z))
        lung = no_lung
        if scale > 0:
            cav = terms.cav_q <= scale**2
            abdomen = cav & (z <= terms.dome_z)
            np.copyto(h, f(an.hu_liver), where=abdomen & liver_side)
            np.copyto(h, f(an.hu_muscle), where=abdomen & ~liver_side)
            np.copyto(t, _SOFT, where=abdomen)
            thorax = cav & ~abdomen
            lung = lung_mask(an, terms, z)
            np.copyto(h, lung_hu, where=lung)
            np.copyto(t, _LUNG, where=lung)
            mediast = thorax & ~lung
            np.copyto(h, f(an.hu_fat + 10.0), where=mediast)
            np.copyto(t, _FAT, where=mediast)
            hz = ((z - an.heart_c[2]) / an.heart_axes[2]) ** 2
            if hz < 1.0:
                heart = thorax & (terms.heart_q <= 1.0 - hz)
                np.copyto(h, f(an.hu_blood), where=heart)
                np.copyto(t, _SOFT, where=heart)
            asc_z = an.heart_c[2] + 0.5 * an.heart_axes[2] <= z <= an.z_arch
            vessels = (aorta & (z <= an.z_arch)) | (asc & asc_z)
            vessels &= mediast
            np.copyto(h, f(an.hu_blood), where=vessels)
            np.copyto(t, _SOFT, where=vessels)
        # everything below stays outside the lungs, so the lung boundary is the one placement used
        if z >= an.z_carina:
            np.copyto(h, f(an.hu_muscle), where=trachea_wall & ~lung)
            np.copyto(t, _SOFT, where=trachea_wall & ~lung)
            np.copyto(h, f(-990.0), where=trachea_lumen & ~lung)
            np.copyto(t, _AIRWAY, where=trachea_lumen & ~lung)
        # spine: discs between vertebral bodies, canal with CSF
        disc = (z - an.vert_z0) % an.vert_pitch < an.disc_height
        if disc:
            np.copyto(h, f(80.0), where=vb)
            np.copyto(t, _SOFT, where=vb)
        else:
            vb_hu = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * np.clip((vb_d - (an.vb_r - 2.0)) / 2.0, 0.0, 1.0)
            np.copyto(h, vb_hu, where=vb)
            np.copyto(t, _BONE, where=vb)
        arch_here, canal_here = posterior_bone & ~lung, canal & ~lung
        np.copyto(h, f(an.hu_cortex - 100.0), where=arch_here)
        np.copyto(t, _BONE, where=arch_here)
        np.copyto(h, f(10.0), where=canal_here)
        np.copyto(t, _SOFT, where=canal_here)
        if -60.0 <= z <= an.z_taper - 20.0:
            sternum_hu = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * np.clip(sternum_q, 0.0, 1.0) ** 2
            np.copyto(h, sternum_hu, where=sternum)
            np.copyto(t, _BONE, where=sternum)
        # ribs and costal cartilage: cross-sections along rib arcs that slope down anteriorly
        if -90.0 <= z <= an.z_taper + 20.0:
            rel = (z + band_drop - f(an.rib_z0)) % f(an.rib_pitch) - f(0.5 * an.rib_pitch)
            q = band_dr2 + (rel / f(an.rib_half_height)) ** 2
            in_rib = q <= 1.0
            rib = in_rib & band_rib
            cart = in_rib & band_cart
            sub = (band_idx[0][rib], band_idx[1][rib])
            h[sub] = f(an.hu_marrow) + f(an.hu_cortex - an.hu_marrow) * q[rib] ** 2
            t[sub] = _BONE
            sub = (band_idx[0][cart], band_idx[1][cart])
            h[sub] = f(120.0)
            t[sub] = _SOFT
        np.rint(h, out=h)
        hu[k] = h
    return hu, tissue


_LUNGISH = np.zeros(256, dtype=bool)
_LUNGISH[[_LUNG, _VESSEL, _STRAND]] = True


def _paint_tube(
    grid: Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    radius: float,
    value: float,
    label: int,
    allowed: np.ndarray,
    edge_mm: float,
) -> None:
    """Blend a capsule (segment a→b, ``radius`` mm) of ``value`` HU into voxels whose label is
    allowed, with a partial-volume edge of ``edge_mm``; voxels at least half covered get ``label``."""
    pad = radius + edge_mm
    box = grid.box(np.minimum(a, b) - pad, np.maximum(a, b) + pad)
    if box is None:
        return
    x, y, z = grid.coords(box)
    ab = b - a
    l2 = max(float(ab @ ab), 1e-9)
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / l2, 0.0, 1.0)
    d2 = (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2
    frac = np.clip((radius - np.sqrt(d2)) / edge_mm + 0.5, 0.0, 1.0) * min(1.0, 2.0 * radius / edge_mm)
    sub_t = tissue[box]
    sel = (frac > 0.0) & allowed[sub_t]
    if not sel.any():
        return
    sub_h = hu[box]
    old = sub_h[sel].astype(np.float32)
    sub_h[sel] = np.rint(old + frac[sel].astype(np.float32) * (np.float32(value) - old))
    sub_t[sel & (frac >= 0.5)] = label


def _paint_lines(
    grid: Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    radii: np.ndarray,
    value: float,
    allowed: np.ndarray,
) -> None:
    """Draw vessels thinner than a voxel as one-voxel lines whose strength is the fraction of a
    pixel their cross-section covers (π r² / (dx · dy)); the scanner blur then spreads them."""
    if radii.size == 0:
        return
    sp = np.asarray(grid.spacing)
    step = 0.5 * float(sp.min())
    lengths = np.linalg.norm(ends - starts, axis=1)
    counts = np.maximum(np.ceil(lengths / step).astype(int), 1) + 1
    seg = np.repeat(np.arange(radii.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = offsets / np.repeat(counts - 1, counts)
    pts = starts[seg] + (ends[seg] - starts[seg]) * frac[:, None]
    idx = np.rint((pts - np.asarray(grid.origin)) / sp).astype(np.int64)[:, ::-1]  # (z, y, x)
    shape = np.asarray(hu.shape)
    ok = np.all((idx >= 0) & (idx < shape), axis=1)
    if not ok.any():
        return
    strength = np.minimum(1.0, np.pi * radii[seg[ok]] ** 2 / (sp[0] * sp[1]))
    flat = np.ravel_multi_index(tuple(idx[ok].T), hu.shape)
    order = np.lexsort((-strength, flat))  # strongest first within each voxel
    flat, strength = flat[order], strength[order]
    first = np.concatenate([[True], flat[1:] != flat[:-1]])
    flat, strength = flat[first], strength[first].astype(np.float32)
    hu_flat, tissue_flat = hu.reshape(-1), tissue.reshape(-1)
    sel = allowed[tissue_flat[flat]]
    flat, strength = flat[sel], strength[sel]
    old = hu_flat[flat].astype(np.float32)
    hu_flat[flat] = np.rint(old + strength * (np.float32(value) - old))
    tissue_flat[flat[strength >= 0.5]] = _VESSEL


def _paint_cone(
    grid: Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    base: np.ndarray,
    axis: np.ndarray,
    height: float,
    radius: float,
    value: float,
) -> None:
    """Fill a cone (base centre ``base`` on the pleura, apex ``height`` mm along ``axis`` into the
    lung) with chest-wall tissue: the pleural indentation."""
    apex = base + axis * height
    box = grid.box(np.minimum(base, apex) - radius - 1.0, np.maximum(base, apex) + radius + 1.0)
    if box is None:
        return
    x, y, z = grid.coords(box)
    along = (x - base[0]) * axis[0] + (y - base[1]) * axis[1] + (z - base[2]) * axis[2]
    r2 = (
        (x - base[0] - along * axis[0]) ** 2
        + (y - base[1] - along * axis[1]) ** 2
        + (z - base[2] - along * axis[2]) ** 2
    )
    inside = (along >= -1.0) & (np.sqrt(r2) <= radius * (1.0 - along / height)) & _LUNGISH[tissue[box]]
    hu[box][inside] = round(value)
    tissue[box][inside] = _SOFT


def _paint_tumour(
    grid: Grid, hu: np.ndarray, tissue: np.ndarray, roi: np.ndarray, shape: TumourShape, tumour: TumourSpec
) -> None:
    c = shape.centre
    reach = np.full(3, shape.max_radius)
    if shape.axes is not None:  # generation 3: an elongated tumour's own extent, not its bounding sphere
        reach = np.array([max(support(shape, e), support(shape, -e)) for e in np.eye(3)]) * 1.02
    box = grid.box(c - reach - 1.0, c + reach + 1.0)
    if box is None:
        raise ValueError("the tumour lies outside the field of view")
    x, y, z = grid.coords(box)
    vx, vy, vz = np.broadcast_arrays(x - c[0], y - c[1], z - c[2])
    rho = np.sqrt(vx**2 + vy**2 + vz**2)
    dirs = np.stack([vx, vy, vz], axis=-1) / np.maximum(rho, 1e-6)[..., None]
    outline = shape.radius * shape.factor(dirs.reshape(-1, 3)).reshape(rho.shape)
    sub_t = tissue[box]
    inside = (rho <= outline) & (sub_t != _BONE) & (sub_t != _AIR) & (sub_t != _AIRWAY)
    if tumour.solid_fraction >= 1.0:
        value = np.full(rho.shape, tumour.solid_hu, dtype=np.float32)
    elif tumour.solid_fraction <= 0.0:  # pure ground glass (generation 3)
        value = np.full(rho.shape, tumour.ggo_hu, dtype=np.float32)
    else:
        core = np.clip((tumour.solid_fraction * outline - rho) / 1.5 + 0.5, 0.0, 1.0)
        value = (tumour.ggo_hu + (tumour.solid_hu - tumour.ggo_hu) * core).astype(np.float32)
    sub_h = hu[box]
    lungish = _LUNGISH[sub_t]
    # ground glass lets vessels show through; the part in the chest wall is solid tumour
    value = np.where(lungish, np.maximum(value, sub_h), np.float32(tumour.solid_hu))
    sub_h[inside] = np.rint(value[inside])
    sub_t[inside] = _TUMOUR
    roi[box][inside] = 1


def _gaussian_weights(sigma: float, truncate: float = 3.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def _apply_scanner(hu: np.ndarray, spec: PhantomSpec, rng: np.random.Generator, *,
                   noise_seq: np.random.SeedSequence | None = None, window: "_Window | None" = None) -> None:
    """In place on the int16 HU volume: Gaussian blur (in-plane PSF ``blur_sigma_mm`` combined
    with the pixel aperture; slice profile of FWHM = slice thickness along z, 'reflect' edges),
    then white noise of ``noise_sd_hu`` and clipping to [−1024, 3071] HU. Works slice by slice,
    keeping only the 2·r + 1 blurred slices the z kernel needs.

    Generation 2 draws the noise of all slices from ``rng`` in order. Generation 3
    (``noise_seq`` given) draws slice k's whole (y, x) noise plane from child k of ``noise_seq``
    and scales its grain by the kernel's exact SD factor, so any box of slices (``window``: ``hu``
    is then that box of the whole volume, halo included) gets the values the whole volume has
    there, apart from a blur-wide rim at the box's inner faces (see :func:`make_phantom`)."""
    if window is not None:
        z_off, y_off, x_off = window.start_zyx
        nz, ny_all, nx_all = window.shape_zyx
    else:
        z_off = y_off = x_off = 0
        nz, ny_all, nx_all = hu.shape
    nzb = hu.shape[0]
    sx, sy, sz = spec.spacing_xyz
    sig_x = math.sqrt(spec.blur_sigma_mm**2 + sx**2 / 12.0) / sx
    sig_y = math.sqrt(spec.blur_sigma_mm**2 + sy**2 / 12.0) / sy
    sig_z = spec.thickness_mm / 2.3548 / sz
    wz = _gaussian_weights(sig_z) if sig_z >= 0.2 else np.ones(1, dtype=np.float32)
    r = wz.size // 2
    cache: dict[int, np.ndarray] = {}

    def blurred(j: int) -> np.ndarray:
        j = -j - 1 if j < 0 else (2 * nz - j - 1 if j >= nz else j)
        j = min(max(j, 0), nz - 1)
        j = min(max(j - z_off, 0), nzb - 1)  # index in the box (its halo covers the z kernel)
        if j not in cache:
            plane = hu[j].astype(np.float32)
            if sig_y >= 0.2:
                ndimage.gaussian_filter1d(plane, sig_y, axis=0, output=plane, truncate=3.0)
            if sig_x >= 0.2:
                ndimage.gaussian_filter1d(plane, sig_x, axis=1, output=plane, truncate=3.0)
            if spec.sharpening > 0:
                kernel_plane(plane, amount=spec.sharpening, sigma_px=(1.0 / sy, 1.0 / sx))
            cache[j] = plane
        return cache[j]

    out = np.empty(hu.shape[1:], dtype=np.float32)
    noise_sd = np.float32(spec.noise_sd_hu)
    ys, xs = slice(y_off, y_off + hu.shape[1]), slice(x_off, x_off + hu.shape[2])
    for kb in range(nzb):
        k = kb + z_off
        np.multiply(blurred(k - r), wz[0], out=out)
        for i in range(1, wz.size):
            out += wz[i] * blurred(k - r + i)
        if noise_sd > 0 and noise_seq is not None:
            plane_rng = np.random.default_rng(np.random.SeedSequence(noise_seq.entropy, spawn_key=(*noise_seq.spawn_key, k)))
            noise = plane_rng.standard_normal((ny_all, nx_all), dtype=np.float32)[ys, xs] * noise_sd
            if spec.noise_grain_mm > 0:
                noise = grain_noise(noise, sigma_px=(spec.noise_grain_mm / sy, spec.noise_grain_mm / sx), exact=True)
            out += noise
        elif noise_sd > 0:
            noise = rng.standard_normal(out.shape, dtype=np.float32) * noise_sd
            if spec.noise_grain_mm > 0:
                noise = grain_noise(noise, sigma_px=(spec.noise_grain_mm / sy, spec.noise_grain_mm / sx))
            out += noise
        if spec.hu_scale != 1.0 or spec.hu_offset != 0.0:
            calibrate(out, scale=spec.hu_scale, offset=spec.hu_offset)
        np.rint(out, out=out)
        np.clip(out, _HU_MIN, _HU_MAX, out=out)
        for j in [j for j in cache if j < k - r - z_off]:
            del cache[j]
        hu[kb] = out


def _view_centre(preferred: float, target: float, reach: float, half_fov: float, name: str) -> float:
    """Shift ``preferred`` as little as possible so [target − reach, target + reach] is in view."""
    if half_fov < reach:
        raise ValueError(f"the {name} field of view ({2 * half_fov:.0f} mm) is too small for the tumour")
    return float(np.clip(preferred, target + reach - half_fov, target - reach + half_fov))


def _generation3_truth(spec: PhantomSpec, shape: TumourShape) -> dict[str, object]:
    t = spec.tumour
    costal = "invading" if t.chest_wall_invasion else ("abutting" if t.pleural_contact else "none")
    pts = surface_points(shape, shape.centre)
    longest = float(np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max())
    return dict(generation=3, contact_type="fissural" if costal == "none" and t.fissure_contact else costal,
                chest_wall_invasion=t.chest_wall_invasion, fissure_gap_mm=t.fissure_gap_mm,
                fissure_contact=t.fissure_contact, longest_axis_mm=round(longest, 2), sharpening=spec.sharpening,
                noise_grain_mm=spec.noise_grain_mm, hu_offset=spec.hu_offset, hu_scale=spec.hu_scale)


@dataclasses.dataclass(frozen=True)
class _Window:
    """A box of a whole volume being rendered: its first voxel (z, y, x) and the whole shape."""

    start_zyx: tuple[int, int, int]
    shape_zyx: tuple[int, int, int]


def _halo_px(spec: PhantomSpec) -> tuple[int, int, int]:
    """(z, y, x) voxels by which the scanner's filters reach: the z slice profile; in-plane the
    PSF blur, then the kernel's edge enhancement and the noise grain on top of it (+1 spare)."""
    sx, sy, sz = spec.spacing_xyz
    def radius(sigma_px: float) -> int:
        return int(3.0 * sigma_px + 0.5) if sigma_px >= 0.2 else 0
    sig_z = spec.thickness_mm / 2.3548 / sz
    halo = []
    for s in (sy, sx):
        blur = radius(math.sqrt(spec.blur_sigma_mm**2 + s**2 / 12.0) / s)
        halo.append(blur + radius(1.0 / s) + radius(spec.noise_grain_mm / s if spec.noise_grain_mm > 0 else 0.0) + 1)
    return (radius(sig_z) + 1, halo[0], halo[1])


def make_phantom(spec: PhantomSpec, *, around_tumour_mm: float | None = None) -> Phantom:
    """Render one phantom (see :mod:`pipeline.synth`). Same spec ⇒ identical arrays.

    ``around_tumour_mm`` (generation 3 only) renders just the box of the tumour's extent plus
    that margin (mm) on every side, clipped to the volume: the returned volumes are that box,
    ``Phantom.start_zyx`` says where it lies in the whole volume (shape ``truth.shape_zyx``), and
    every voxel of it equals the whole render's (the box is rendered with a halo as wide as the
    scanner's filters, then cut). The truth is the whole phantom's. Costs a few percent of a
    whole 512² render for a typical tumour; this is what feature tables of synthetic cohorts use
    (the crop around the ROI is all the features read).
    """
    check(isinstance(spec, PhantomSpec), "spec must be a PhantomSpec")
    check(around_tumour_mm is None or (spec.generation == 3 and around_tumour_mm >= 0),
          "around_tumour_mm needs a generation-3 spec and a margin >= 0 mm")
    tree_seq, noise_seq = np.random.SeedSequence(spec.seed).spawn(4)[2:]
    tumour = spec.tumour
    layout = draw_layout(spec.seed, tumour)
    an, side, shape = layout.anatomy, layout.side, layout.shape
    if spec.generation == 3:
        placed = place_tumour3(layout, tumour, spec.seed)
        if placed is None:
            raise ValueError(f"cannot place a {tumour.diameter_mm:.0f} mm tumour {tumour.distance_to_pleura_mm:.1f} mm "
                             "from the pleura in this phantom's lungs; use a smaller tumour or gap, or another seed")
        centre, foot = placed
    else:
        centre, foot = place_tumour(layout, tumour)
    shape = dataclasses.replace(shape, centre=centre)

    # framing: centre on the chest, shifted only as needed to keep the tumour in view
    nz, ny, nx = spec.shape_zyx
    sx, sy, sz = spec.spacing_xyz
    reach = shape.max_radius + 10.0
    rx = ry = rz = reach
    if spec.generation == 3:  # an elongated tumour's own extent along each axis
        rx, ry, rz = (max(support(shape, e), support(shape, -e)) + 10.0 for e in np.eye(3))
    jx, jy, jz = an.view_jitter
    vx = _view_centre(jx, centre[0], rx, 0.5 * (nx - 1) * sx, "in-plane")
    vy = _view_centre(jy, centre[1], ry, 0.5 * (ny - 1) * sy, "in-plane")
    vz = _view_centre(0.45 * an.lung_height + jz, centre[2], rz, 0.5 * (nz - 1) * sz, "z")
    origin = (vx - 0.5 * (nx - 1) * sx, vy - 0.5 * (ny - 1) * sy, vz - 0.5 * (nz - 1) * sz)
    grid = Grid(
        x=origin[0] + sx * np.arange(nx),
        y=origin[1] + sy * np.arange(ny),
        z=origin[2] + sz * np.arange(nz),
        spacing=(sx, sy, sz),
        origin=origin,
    )

    full_grid, keep, window = grid, None, None
    if around_tumour_mm is not None:
        reach3 = np.array([max(support(shape, e), support(shape, -e)) for e in np.eye(3)]) * 1.02
        pad = reach3 + 1.0 + float(around_tumour_mm)
        keep = grid.box(centre - pad, centre + pad)
        if keep is None:
            raise ValueError("the tumour lies outside the field of view")
        halo = _halo_px(spec)
        rendered = tuple(slice(max(k.start - h, 0), min(k.stop + h, n))
                         for k, h, n in zip(keep, halo, (nz, ny, nx)))
        zs, ys, xs = rendered
        grid = Grid(x=grid.x[xs], y=grid.y[ys], z=grid.z[zs], spacing=(sx, sy, sz),
                    origin=(float(grid.x[xs.start]), float(grid.y[ys.start]), float(grid.z[zs.start])))
        window = _Window(tuple(r.start for r in rendered), (nz, ny, nx))  # type: ignore[arg-type]

    hu, tissue = _render_anatomy(an, grid)
    if spec.extrapleural_fat_mm > 0:
        paint_extrapleural_fat(an, grid, hu, tissue, thickness_mm=spec.extrapleural_fat_mm)
    edge = float(min(sx, sy))
    d = tumour.distance_to_pleura_mm
    to_pleura = unit(foot - centre)

    # pleural tags (strands tumour → pleura) and indentation (cone of chest wall at the pleura)
    tag_ends = []
    if tumour.pleural_tag:
        for k in range(layout.n_tags):
            direction = unit(to_pleura + 0.5 * layout.tag_dirs[k] / max(np.linalg.norm(layout.tag_dirs[k]), 1.0))
            start = centre + direction * shape.radius * float(shape.factor(direction[None])[0]) * 0.9
            end = ray_to_cavity(an, start, direction)
            tag_ends.append(end)
            radius, value = float(layout.tag_radii[k]), float(layout.tag_hu[k])
            _paint_tube(grid, hu, tissue, start, end + 1.5 * direction, radius, value, _STRAND, _LUNGISH, edge)
    indentation_depth = 0.0
    if tumour.pleural_indentation:
        base = tag_ends[0] if tag_ends else foot
        inward = -unit(np.array([base[0] / an.cav_ax**2, (base[1] - an.cav_cy) / an.cav_ay**2, 0.0]))
        indentation_depth = float(min(0.4 * d, 6.0))
        _paint_cone(grid, hu, tissue, base, inward, indentation_depth, layout.indent_radius, an.hu_muscle - 20.0)

    lung_only = np.zeros(256, dtype=bool)
    lung_only[[_LUNG, _VESSEL]] = True
    tree = vessel_tree(an, np.random.default_rng(tree_seq))
    thick = tree.radius >= 0.75 * edge
    for a, b, r in zip(tree.start[thick], tree.end[thick], tree.radius[thick]):
        _paint_tube(grid, hu, tissue, a, b, float(r), an.hu_blood, _VESSEL, lung_only, edge)
    _paint_lines(grid, hu, tissue, tree.start[~thick], tree.end[~thick], tree.radius[~thick], an.hu_blood, lung_only)
    # main bronchi inside the mediastinum: wall then air lumen, from the carina towards each hilum
    carina = np.array([an.trachea_c[0], an.trachea_c[1], an.z_carina])
    wall_ok = np.zeros(256, dtype=bool)
    wall_ok[[_FAT, _SOFT]] = True
    for s in (-1.0, 1.0):
        hilum = np.array([an.med_cx + s * (an.med_ax - 4.0), an.cav_cy + an.hilum_dy, an.z_carina - 25.0])
        _paint_tube(grid, hu, tissue, carina, hilum, 7.5, an.hu_muscle, _SOFT, wall_ok, edge)
        lumen_ok = wall_ok.copy()
        lumen_ok[_AIRWAY] = True
        _paint_tube(grid, hu, tissue, carina, hilum, 5.5, -990.0, _AIRWAY, lumen_ok, edge)

    if tumour.fissure_gap_mm is not None:
        normal, offset = fissure_plane(shape, centre, tumour.fissure_gap_mm, spec.seed)
        paint_fissure(grid, hu, tissue, normal=normal, offset=offset, side_x=float(centre[0]), mid_x=an.med_cx,
                      thickness_mm=1.0, value_hu=-250.0)

    roi = np.zeros(hu.shape, dtype=np.uint8)
    _paint_tumour(grid, hu, tissue, roi, shape, tumour)

    _apply_scanner(hu, spec, np.random.default_rng(noise_seq), noise_seq=noise_seq if spec.generation == 3 else None,
                   window=window)

    start_zyx, whole_origin = (0, 0, 0), origin
    if window is not None and keep is not None:
        cut = tuple(slice(k.start - w, k.stop - w) for k, w in zip(keep, window.start_zyx))
        hu, roi, tissue = (np.ascontiguousarray(a[cut]) for a in (hu, roi, tissue))
        start_zyx = tuple(k.start for k in keep)  # type: ignore[assignment]
        origin = (float(full_grid.x[keep[2].start]), float(full_grid.y[keep[1].start]), float(full_grid.z[keep[0].start]))
    geometry = dict(spacing_xyz=spec.spacing_xyz, origin_xyz=origin)
    roi_voxels = int(np.count_nonzero(roi))
    truth = PhantomTruth(
        case_id=spec.case_id,
        seed=spec.seed,
        scanner=spec.scanner,
        shape_zyx=spec.shape_zyx,
        spacing_xyz=spec.spacing_xyz,
        slice_thickness_mm=spec.thickness_mm,
        noise_sd_hu=spec.noise_sd_hu,
        blur_sigma_mm=spec.blur_sigma_mm,
        diameter_mm=tumour.diameter_mm,
        solid_fraction=tumour.solid_fraction,
        distance_to_pleura_mm=d,
        pleural_contact=tumour.pleural_contact,
        pleural_tag=tumour.pleural_tag,
        n_pleural_tags=layout.n_tags if tumour.pleural_tag else 0,
        pleural_indentation=tumour.pleural_indentation,
        indentation_depth_mm=indentation_depth,
        side=side,
        lobulation=tumour.lobulation,
        solid_hu=tumour.solid_hu,
        ggo_hu=tumour.ggo_hu,
        tumour_centre_xyz_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        roi_voxels=roi_voxels,
        roi_volume_mm3=roi_voxels * sx * sy * sz,
        **(_generation3_truth(spec, shape) if spec.generation == 3 else {}),
    )
    return Phantom(
        ct=Volume(hu, **geometry),  # type: ignore[arg-type]
        roi=Volume(roi, **geometry),  # type: ignore[arg-type]
        tissue=Volume(tissue, **geometry),  # type: ignore[arg-type]
        truth=truth,
        whole_origin_xyz=tuple(float(v) for v in whole_origin),  # type: ignore[arg-type]
        start_zyx=start_zyx,  # type: ignore[arg-type]
    )
