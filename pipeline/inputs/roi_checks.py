"""Is the ROI a plausible lung tumour, and were the CT and mask given the right way round?

Run by :func:`pipeline.inputs.case.load_case` before any heavy work, so the CLI, the batch runner, the
app and feature extraction for training all apply the same rules:

1. **Size and memory** (:func:`check_roi_size`, on the mask alone, before the CT's voxels are
   kept): the ROI volume must be at most ``MAX_VOLUME_ML`` (a whole lung is 2–3 L, both 4–6 L;
   the largest lung tumours are a few hundred mL); above ``WARN_VOLUME_ML`` the case is scored with
   a warning. The memory a worker needs for the features grows with the ROI's bounding box on the
   1 mm radiomics grid (:func:`estimate_peak_mib`, calibrated with ``bench/roi_memory.py``); an ROI
   whose estimate exceeds ``WORKER_MEMORY_MIB`` (the documented 1 GB per worker) is refused before
   the work instead of pushing the worker past it.
2. **Composition, location, components** (:func:`assess_roi`, on the CT/ROI crop):
   * HU rule: a lung tumour is soft tissue (≈ −100…+100 HU) and/or ground glass (≈ −800…−300 HU).
     Voxels below ``AIR_HU`` (−800 HU) are air or aerated lung, voxels above ``BONE_HU`` (+300 HU)
     are bone or metal. More than ``REFUSE_AIR_FRACTION`` (60 %) air or ``REFUSE_BONE_FRACTION``
     (50 %) bone → refused; more than ``WARN_AIR_FRACTION`` (30 %) air or ``WARN_BONE_FRACTION``
     (15 %) bone → warning.
   * location: in or against the lung: of the ``SHELL_MM`` (3 mm) shell around the ROI, at least
     ``REFUSE_LUNG_SHELL`` (2 %) must be aerated (< ``LUNG_HU``, −400 HU); below
     ``WARN_LUNG_SHELL`` (10 %) → warning (e.g. a tumour enclosed by atelectasis).
   * connected components (26-connected): one main component expected; other components with at
     least ``MINOR_COMPONENT_SHARE`` (10 %) of the largest one's voxels → warning with the count.
3. **Swapped inputs** (:func:`ct_looks_like_mask`, :func:`mask_looks_like_ct`): a CT holding only a
   few small non-negative integers is a label mask; a mask holding negative values down to air
   and hundreds of distinct values is a CT.

The thresholds were checked on the 331 phantoms of ``bench/domain_check.py`` (200 of the demo
model's training cases, 80 held-out, 51 out-of-domain incl. 45–60 mm tumours): none refused,
none warned; the real lung1 scan passes without a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pipeline.core.errors import RoiPlausibilityError
from pipeline.core.volume import Volume
from pipeline.preprocess.crop import roi_bbox

MAX_VOLUME_ML = 1000.0
WARN_VOLUME_ML = 250.0
WORKER_MEMORY_MIB = 1024.0
AIR_HU, BONE_HU, LUNG_HU = -800.0, 300.0, -400.0
REFUSE_AIR_FRACTION, WARN_AIR_FRACTION = 0.60, 0.30
REFUSE_BONE_FRACTION, WARN_BONE_FRACTION = 0.50, 0.15
SHELL_MM = 3.0
REFUSE_LUNG_SHELL, WARN_LUNG_SHELL = 0.02, 0.10
MINOR_COMPONENT_SHARE = 0.10
RADIOMICS_PAD_MM = 5.0  # PyRadiomics' padDistance around the ROI box (pipeline/params/radiomics.yaml)

# Peak RSS (MiB) of a worker scoring one case ≈ base + per-M-voxel × (radiomics box in millions of
# voxels), by the runtime the scorer loads: "torch" (torch + scikit-learn + shap imported: older
# bundles, and feature extraction for training) or "onnx" (a bundle with tree arrays and an ONNX
# backbone: none of those imported). Fitted on bench/roi_memory.py's runs with a margin above every
# measurement (torch: 835/834/1046/1279 MiB; onnx: 390/415/626/880 MiB at 0.03/0.22/0.73/1.73 M
# voxels; see bench/README.md).
MEMORY_MODELS: dict[str, tuple[float, float]] = {"torch": (880.0, 240.0), "onnx": (420.0, 320.0)}


def radiomics_box_voxels(bbox_shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float], *,
                         target_spacing_mm: float) -> float:
    """Voxels of the ROI's bounding box (``bbox_shape_zyx`` voxels of ``spacing_zyx`` mm) plus
    PyRadiomics' padding, on the isotropic ``target_spacing_mm`` grid the features are computed on."""
    extent = [n * s + 2 * RADIOMICS_PAD_MM for n, s in zip(bbox_shape_zyx, spacing_zyx)]
    return float(np.prod([e / target_spacing_mm for e in extent]))


def estimate_peak_mib(box_voxels: float, *, runtime: str = "torch") -> float:
    """Estimated peak RSS (MiB) of a worker featurising an ROI whose radiomics box has
    ``box_voxels`` voxels (see :func:`radiomics_box_voxels`), with the scorer's ``runtime``
    ("torch" or "onnx", see ``MEMORY_MODELS``).

    Example:
        >>> round(estimate_peak_mib(1e6, runtime="torch")), round(estimate_peak_mib(1e6, runtime="onnx"))
        (1120, 740)
    """
    if runtime not in MEMORY_MODELS:
        raise ValueError(f"runtime must be one of {sorted(MEMORY_MODELS)}, got {runtime!r}")
    base_mib, mib_per_mvox = MEMORY_MODELS[runtime]
    return base_mib + mib_per_mvox * box_voxels / 1e6


def check_roi_size(*, n_voxels: int, bbox_shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float],
                   target_spacing_mm: float, runtime: str = "torch") -> list[str]:
    """Refuse an ROI too large for a lung tumour or for a worker's memory; warn when it is large.

    Args:
        n_voxels: labelled voxels of the chosen label.
        bbox_shape_zyx: voxels of their bounding box (z, y, x).
        spacing_zyx: voxel spacing (mm), (z, y, x).
        target_spacing_mm: the radiomics grid spacing (mm).
        runtime: what the scoring process loads ("torch" or "onnx"), for the memory estimate.

    Returns:
        warnings (possibly empty).

    Raises:
        RoiPlausibilityError: volume above ``MAX_VOLUME_ML`` or estimated memory above
            ``WORKER_MEMORY_MIB``, with the measured numbers.

    Example:
        >>> check_roi_size(n_voxels=5_000_000, bbox_shape_zyx=(200, 300, 300), spacing_zyx=(1.5, 0.7, 0.7),
        ...                target_spacing_mm=1.0)
        Traceback (most recent call last):
        ...
        pipeline.core.errors.RoiPlausibilityError: ROI mask volume is 3675 mL, far above a lung tumour's (at most 1000 mL; a whole lung is 2000–3000 mL): was a lung or organ mask given instead of the tumour?
    """
    volume_ml = n_voxels * float(np.prod(spacing_zyx)) / 1000.0
    if volume_ml > MAX_VOLUME_ML:
        raise RoiPlausibilityError(
            f"ROI mask volume is {volume_ml:.0f} mL, far above a lung tumour's (at most {MAX_VOLUME_ML:.0f} mL; "
            "a whole lung is 2000–3000 mL): was a lung or organ mask given instead of the tumour?")
    box = radiomics_box_voxels(bbox_shape_zyx, spacing_zyx, target_spacing_mm=target_spacing_mm)
    need = estimate_peak_mib(box, runtime=runtime)
    if need > WORKER_MEMORY_MIB:
        extent = " × ".join(f"{n * s:.0f}" for n, s in zip(bbox_shape_zyx, spacing_zyx))
        raise RoiPlausibilityError(
            f"ROI mask spans {extent} mm (z, y, x; {volume_ml:.0f} mL): featurising it would need about "
            f"{need:.0f} MiB, more than the {WORKER_MEMORY_MIB:.0f} MiB a worker may use; is it one tumour?")
    if volume_ml > WARN_VOLUME_ML:
        return [f"ROI volume {volume_ml:.0f} mL is very large for a lung tumour (above {WARN_VOLUME_ML:.0f} mL): "
                "check that the mask outlines the tumour only"]
    return []


@dataclass(frozen=True)
class RoiMeasures:
    """What :func:`assess_roi` measured (fractions in [0, 1], HU, mL)."""

    volume_ml: float
    median_hu: float
    air_fraction: float
    bone_fraction: float
    lung_shell_fraction: float
    n_components: int
    n_major_components: int


def _dilated_near(mask: np.ndarray, structure: np.ndarray, radius_zyx: list[int]) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure)`` for a ``structure`` reaching ``radius_zyx`` voxels
    from its centre, computed only on the box of ``mask`` grown by that reach (nothing outside it
    can be reached; same result, a fraction of the voxels: 0.17 → 0.04 s on a 60 mm tumour's crop).
    """
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    start, stop = roi_bbox(mask)
    box = tuple(slice(max(0, a - r), min(n, b + r)) for a, b, r, n in zip(start, stop, radius_zyx, mask.shape))
    out[box] = ndi.binary_dilation(mask[box], structure=structure)
    return out


def measure_roi(ct: Volume, roi: Volume) -> RoiMeasures:
    """Composition, surroundings and components of a binary ``roi`` on ``ct`` (same grid, HU)."""
    mask = roi.array.astype(bool)
    values = ct.array[mask].astype(np.float32)
    spacing = ct.spacing_zyx
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.reshape(-1))[1:] if n else np.zeros(0, np.int64)
    major = int(np.count_nonzero(sizes >= MINOR_COMPONENT_SHARE * sizes.max())) if n else 0
    radius = [max(1, int(np.ceil(SHELL_MM / s))) for s in spacing]
    zz, yy, xx = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= SHELL_MM ** 2
    shell = _dilated_near(mask, ball, radius) & ~mask
    ring = ct.array[shell]
    return RoiMeasures(
        volume_ml=float(mask.sum()) * float(np.prod(spacing)) / 1000.0,
        median_hu=float(np.median(values)) if values.size else float("nan"),
        air_fraction=float(np.mean(values < AIR_HU)) if values.size else 0.0,
        bone_fraction=float(np.mean(values > BONE_HU)) if values.size else 0.0,
        lung_shell_fraction=float(np.mean(ring < LUNG_HU)) if ring.size else 0.0,
        n_components=int(n),
        n_major_components=major,
    )


def assess_roi(ct: Volume, roi: Volume) -> list[str]:
    """Refuse an ROI that is not a plausible lung tumour; return warnings for borderline ones.

    Raises:
        RoiPlausibilityError: mostly air, mostly bone, or not in or against the lung, with the
            measured numbers (see the module docstring for the rules).
    """
    m = measure_roi(ct, roi)
    pct = lambda f: f"{100 * f:.0f} %"  # noqa: E731
    composition = f"median {m.median_hu:+.0f} HU, {pct(m.air_fraction)} below {AIR_HU:.0f} HU, " \
                  f"{pct(m.bone_fraction)} above {BONE_HU:+.0f} HU"
    if m.air_fraction > REFUSE_AIR_FRACTION:
        raise RoiPlausibilityError(
            f"ROI mask is mostly air or aerated lung ({composition}); a tumour is soft tissue or ground glass: "
            "was the mask drawn on this CT?")
    if m.bone_fraction > REFUSE_BONE_FRACTION:
        raise RoiPlausibilityError(
            f"ROI mask is mostly bone or metal ({composition}); a lung tumour is soft tissue or ground glass: "
            "was the mask drawn on this CT?")
    if m.lung_shell_fraction < REFUSE_LUNG_SHELL:
        raise RoiPlausibilityError(
            f"ROI mask is not in or against the lung: only {pct(m.lung_shell_fraction)} of the {SHELL_MM:.0f} mm "
            f"around it is aerated (below {LUNG_HU:.0f} HU; {composition}): was the mask drawn on this CT?")
    warnings = []
    if m.air_fraction > WARN_AIR_FRACTION:
        warnings.append(f"ROI holds much air or aerated lung ({composition}): check its outline")
    if m.bone_fraction > WARN_BONE_FRACTION:
        warnings.append(f"ROI holds much bone-dense tissue ({composition}): check its outline")
    if m.lung_shell_fraction < WARN_LUNG_SHELL:
        warnings.append(f"ROI is barely in contact with aerated lung ({pct(m.lung_shell_fraction)} of the "
                        f"{SHELL_MM:.0f} mm around it below {LUNG_HU:.0f} HU)")
    if m.n_major_components > 1:
        warnings.append(f"ROI has {m.n_major_components} separate parts of similar size ({m.n_components} in all): "
                        "one tumour was expected; its features describe all parts together")
    return warnings


def ct_looks_like_mask(sample: np.ndarray) -> str | None:
    """A sentence when a CT (or its regular subsample) holds only a few small non-negative
    integers, as a label mask does; ``None`` otherwise."""
    if sample.size == 0 or sample.min() < 0 or sample.max() > 255:
        return None
    values = np.unique(sample)
    if values.size > 16 or np.any(values != np.round(values)):
        return None
    shown = ", ".join(f"{v:g}" for v in values[:6]) + (" …" if values.size > 6 else "")
    return (f"the CT holds only the values {shown}, like a label mask: were the CT and the ROI mask swapped? "
            "Give the CT image first and the tumour mask second")


def mask_looks_like_ct(values: np.ndarray) -> str | None:
    """A sentence when a mask's non-zero values look like a CT in HU (values down to air,
    hundreds of distinct values); ``None`` otherwise."""
    if values.size == 0 or values.min() > -500:
        return None
    if np.unique(values[: 200_000]).size < 100:
        return None
    return (f"the ROI mask holds values from {values.min():g} to {values.max():g}, like a CT in Hounsfield units: "
            "were the CT and the ROI mask swapped? Give the CT image first and the tumour mask second")
