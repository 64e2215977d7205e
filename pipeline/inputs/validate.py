"""Checks run on a CT/ROI pair before any heavy work (see ``ValidationConfig``).

Each check either passes, returns a corrected value with a warning the user will see, or raises
an :class:`~pipeline.core.errors.InputError` subclass saying exactly what is wrong:

* :func:`check_ct_intensities` — finite values, plausible Hounsfield units, air present.
* :func:`align_mask` — CT and mask geometry equal (within tolerance) → unchanged; otherwise
  refused with what differs, unless resampling was allowed and the overlap is near-complete
  (then resampled onto the CT grid, nearest neighbour, + warning).
* :func:`binarise_mask` — integer labels only, one label chosen, enough voxels.

Example:
    >>> import numpy as np
    >>> from pipeline.core.volume import Volume
    >>> m = Volume(np.zeros((5, 5, 5), np.uint8)); m.array[2, 2, 2] = 1
    >>> binarise_mask(m, label=None, min_voxels=2)
    Traceback (most recent call last):
    ...
    pipeline.core.errors.MaskError: ROI mask has only 1 labelled voxel(s); at least 2 are needed
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from pipeline.core.config import ValidationConfig
from pipeline.core.errors import GeometryError, IntensityError, MaskError, SwappedInputsError
from pipeline.core.volume import Volume
from pipeline.inputs.roi_checks import ct_looks_like_mask, mask_looks_like_ct


_SAMPLE_TARGET = 2_000_000  # voxels in the regular subsample used for percentiles
_FULL_MIN_MAX_VOXELS = 50_000_000  # up to this size the minimum is taken over every voxel


def _sample_step(n_voxels: int, target: int = _SAMPLE_TARGET) -> int:
    return max(1, int(round((n_voxels / target) ** (1 / 3))))


def _sample(array: np.ndarray, target: int = _SAMPLE_TARGET) -> np.ndarray:
    """A regular subsample of about ``target`` voxels (fast percentiles on big volumes)."""
    step = _sample_step(array.size, target)
    return array[::step, ::step, ::step]


@dataclass(frozen=True, eq=False)
class IntensitySummary:
    """What :func:`check_ct_intensities` looks at in a CT, so the check can run on a CT that was
    never held whole (:class:`IntensitySummariser`) with exactly the same outcome.

    Attributes:
        n_voxels: voxels in the CT.
        non_finite: NaN/±Inf voxels (float CTs; 0 otherwise).
        sample: the regular subsample ``array[::s, ::s, ::s]`` (about 2 M voxels, HU).
        full_min: minimum over every voxel (HU), kept only for CTs of ≤ 50 M voxels.
    """

    n_voxels: int
    non_finite: int
    sample: np.ndarray
    full_min: float | None

    @classmethod
    def of(cls, array: np.ndarray) -> "IntensitySummary":
        non_finite = 0
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            non_finite = int(array.size - np.count_nonzero(np.isfinite(array)))
            return cls(int(array.size), non_finite, array[:0, :0, :0], None)
        small = array.size <= _FULL_MIN_MAX_VOXELS
        return cls(int(array.size), 0, _sample(array), float(array.min()) if small and array.size else None)


class IntensitySummariser:
    """Builds the :class:`IntensitySummary` of a (z, y, x) CT from blocks of whole slices given
    in order (``add(z0, block)``, as :func:`pipeline.io.readers.stream_slices` hands them on); the result
    equals ``IntensitySummary.of`` of the whole array.

    Example:
        >>> a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 1000
        >>> s = IntensitySummariser(a.shape, a.dtype)
        >>> s.add(0, a[:3]); s.add(3, a[3:])
        >>> whole, streamed = IntensitySummary.of(a), s.summary()
        >>> bool(np.array_equal(whole.sample, streamed.sample)), whole.full_min == streamed.full_min
        (True, True)
    """

    def __init__(self, shape_zyx: tuple[int, int, int], dtype: np.dtype) -> None:
        self._n = int(np.prod(shape_zyx, dtype=np.int64))
        self._step = _sample_step(self._n)
        nz, ny, nx = shape_zyx
        s = self._step
        self._sample = np.empty((-(-nz // s), -(-ny // s), -(-nx // s)), dtype=dtype)
        self._float = np.issubdtype(dtype, np.floating)
        self._non_finite = 0
        self._min: float | None = None
        self._next_z = 0

    def add(self, z0: int, block: np.ndarray) -> None:
        if z0 != self._next_z:
            raise ValueError(f"slices must be added in order: expected z0={self._next_z}, got {z0}")
        self._next_z += block.shape[0]
        if self._float:
            finite = np.isfinite(block)
            if not finite.all():
                self._non_finite += int(block.size - np.count_nonzero(finite))
        if self._non_finite:
            return
        s = self._step
        first = -(-z0 // s) * s  # first sampled slice in this block
        rows = block[first - z0::s, ::s, ::s]
        self._sample[first // s:first // s + rows.shape[0]] = rows
        if self._n <= _FULL_MIN_MAX_VOXELS and block.size:
            m = float(block.min())
            self._min = m if self._min is None else min(self._min, m)

    def summary(self) -> IntensitySummary:
        if self._non_finite:
            return IntensitySummary(self._n, self._non_finite, self._sample[:0, :0, :0], None)
        return IntensitySummary(self._n, 0, self._sample, self._min)


def check_ct_intensities(ct: Volume | IntensitySummary, *, config: ValidationConfig = ValidationConfig()) -> None:
    """Refuse CT values that cannot be Hounsfield units of a chest CT.

    ``ct`` is the CT, or the :class:`IntensitySummary` of one (same outcome).

    Raises:
        IntensityError: NaN/Inf voxels; values below −3200 HU; a constant image; no air/lung
            (fewer than ``min_air_fraction`` voxels below ``air_hu``), with a hint when the image
            looks like raw scanner values (all ≥ 0) rather than HU.
    """
    summary = ct if isinstance(ct, IntensitySummary) else IntensitySummary.of(ct.array)
    if summary.non_finite:
        raise IntensityError(f"CT contains {summary.non_finite:,} NaN or infinite voxel value(s)")
    sample = summary.sample
    lo, hi = float(sample.min()), float(sample.max())
    lo = min(lo, summary.full_min) if summary.full_min is not None else lo
    if lo == hi:
        raise IntensityError(f"CT is constant ({lo:g} everywhere); it holds no image")
    swapped = ct_looks_like_mask(sample)
    if swapped:
        raise SwappedInputsError(swapped)
    if lo < -3200:
        raise IntensityError(
            f"CT minimum {lo:g} is below −3200, impossible in Hounsfield units; check the intensity scaling"
        )
    air_fraction = float(np.mean(sample < config.air_hu))
    if air_fraction < config.min_air_fraction:
        if lo >= 0:
            raise IntensityError(
                f"CT values are all ≥ 0 (range {lo:g} to {hi:g}): these look like raw scanner values, "
                "not Hounsfield units (air would be about −1000 HU). Apply the DICOM "
                "RescaleSlope/RescaleIntercept (often HU = value − 1024) and try again"
            )
        raise IntensityError(
            f"CT has almost no air or lung (only {100 * air_fraction:.2f}% of voxels below {config.air_hu:g} HU); "
            "expected a chest CT in Hounsfield units"
        )


def _mm(values: object, digits: int) -> str:
    """``(0.75, 0.75, 2.5)``: rounded plain floats (numpy 2 would print ``np.float64(0.75)``)."""
    return "(" + ", ".join(repr(round(float(v), digits)) for v in np.asarray(values).reshape(-1)) + ")"


def _describe_geometry_difference(ct: Volume, mask: Volume, tol: float) -> list[str]:
    diffs = []
    if ct.shape_zyx != mask.shape_zyx:
        diffs.append(f"size (z, y, x) {mask.shape_zyx} vs CT {ct.shape_zyx}")
    sp_ct, sp_m = np.asarray(ct.spacing_xyz), np.asarray(mask.spacing_xyz)
    if not np.allclose(sp_m, sp_ct, rtol=tol, atol=0):
        diffs.append(f"spacing {_mm(sp_m, 4)} vs CT {_mm(sp_ct, 4)} mm")
    if not np.allclose(mask.origin_xyz, ct.origin_xyz, rtol=0, atol=tol * min(ct.spacing_xyz) * 10):
        diffs.append(f"origin {_mm(mask.origin_xyz, 3)} vs CT {_mm(ct.origin_xyz, 3)} mm")
    if not np.allclose(mask.direction, ct.direction, rtol=0, atol=tol):
        diffs.append("direction cosines differ")
    return diffs


def same_grid(ct: Volume, mask: Volume, *, config: ValidationConfig = ValidationConfig()) -> bool:
    """Whether ``mask`` lies on ``ct``'s voxel grid (size, spacing, origin and direction equal
    within ``config.geometry_tolerance``), i.e. :func:`align_mask` would return it unchanged."""
    return not _describe_geometry_difference(ct, mask, config.geometry_tolerance)


NEAR_COMPLETE_OVERLAP = 0.95
"""Share of the mask's physical extent that must lie inside the CT's for resampling to be allowed."""


def align_mask(ct: Volume, mask: Volume, *, config: ValidationConfig = ValidationConfig(),
               allow_resample: bool = False) -> tuple[Volume, list[str]]:
    """Return the mask on the CT's voxel grid, and warnings. Strict by default.

    Geometry equal within ``config.geometry_tolerance`` → the mask is returned with the CT's
    exact geometry (tiny float differences removed). Otherwise the mask is refused with a
    :class:`GeometryError` naming every difference, unless the user asked for resampling
    (``allow_resample``: ``--allow-resample``, the app's checkbox), the bundle permits it
    (``config.resample_mask_if_overlapping``) and the overlap is near-complete: at least
    ``NEAR_COMPLETE_OVERLAP`` of the mask's physical extent inside the CT's, and at least that
    90 % of the labelled volume still inside after nearest-neighbour resampling; the result then
    carries a warning saying it was resampled.
    """
    diffs = _describe_geometry_difference(ct, mask, config.geometry_tolerance)
    if not diffs:
        return ct.with_array(mask.array), []
    ct_lo, ct_hi = ct.physical_extent()
    m_lo, m_hi = mask.physical_extent()
    overlap = np.minimum(ct_hi, m_hi) - np.maximum(ct_lo, m_lo)
    what = "; ".join(diffs)
    if np.any(overlap <= 0):
        raise GeometryError(f"ROI mask and CT do not overlap in space ({what}); was the mask drawn on this CT?")
    if not (allow_resample and config.resample_mask_if_overlapping):
        hint = ("if it was drawn on this very scan, export it on the CT's grid or allow resampling "
                "(--allow-resample, or \"Resample the mask onto the CT\" in the app)")
        if not config.resample_mask_if_overlapping:
            hint = "this model does not allow resampling; export the mask on the CT's grid"
        raise GeometryError(f"ROI mask geometry differs from the CT ({what}): it is not on the CT's voxel grid; {hint}")
    share = float(np.prod(overlap) / np.prod(m_hi - m_lo))
    if share < NEAR_COMPLETE_OVERLAP:
        raise GeometryError(
            f"ROI mask geometry differs from the CT ({what}) and only {100 * share:.0f} % of the mask's extent lies "
            f"inside the CT (at least {100 * NEAR_COMPLETE_OVERLAP:.0f} % is needed to resample it): "
            "was the mask drawn on this CT?")
    resampled = sitk.Resample(
        mask.to_sitk(), ct.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.to_sitk().GetPixelID()
    )
    out = ct.with_array(sitk.GetArrayFromImage(resampled))
    before = float(np.count_nonzero(mask.array)) * float(np.prod(mask.spacing_xyz))
    after = float(np.count_nonzero(out.array)) * float(np.prod(ct.spacing_xyz))
    if before > 0 and after < 0.9 * before:  # nearest neighbour moves a volume by a few % at most
        raise GeometryError(
            f"ROI mask geometry differs from the CT ({what}) and only {100 * after / before:.0f} % of the labelled "
            "volume falls inside the CT after resampling: was the mask drawn on this CT?")
    return out, [f"ROI mask geometry differed from the CT ({what}); it was resampled onto the CT grid "
                 "(nearest neighbour) because resampling was allowed"]


def binarise_mask(mask: Volume, *, label: int | None = None, min_voxels: int = 20) -> Volume:
    """A uint8 {0, 1} mask of the chosen label.

    Raises:
        MaskError: non-finite, negative or non-integer values; empty mask; several labels and
            ``label`` not given; ``label`` absent; fewer than ``min_voxels`` voxels.
    """
    a = mask.array
    flat = a.reshape(-1)
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        raise MaskError("ROI mask is empty (no labelled voxel); draw the tumour or pick the right mask file")
    values = flat[nz]
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise MaskError("ROI mask contains NaN or infinite values; expected integer labels")
    swapped = mask_looks_like_ct(values)
    if swapped:
        raise SwappedInputsError(swapped)
    if np.issubdtype(values.dtype, np.floating):
        if np.any(values != np.round(values)):
            raise MaskError(
                "ROI mask has non-integer values (a probability map or a resampled mask?); "
                "expected integer labels such as 0 and 1"
            )
    if np.any(values < 0):
        raise MaskError("ROI mask has negative values; expected integer labels ≥ 0")
    labels = np.unique(values.astype(np.int64))
    if label is None:
        if labels.size >= 100:
            raise SwappedInputsError(
                f"the ROI mask holds {labels.size} different values, like an image rather than a label mask: "
                "were the CT and the ROI mask swapped? Give the CT image first and the tumour mask second")
        if labels.size > 1:
            shown = ", ".join(str(v) for v in labels[:10]) + (" …" if labels.size > 10 else "")
            raise MaskError(
                f"ROI mask has {labels.size} labels ({shown}); choose the tumour label (--label N, or the label field in the app)"
            )
        label = int(labels[0])
    elif label not in set(labels.tolist()):
        raise MaskError(f"ROI mask has no voxel with label {label} (labels present: {', '.join(map(str, labels[:10]))})")
    binary = np.zeros(a.shape, dtype=np.uint8)
    chosen = nz[values == label]
    binary.reshape(-1)[chosen] = 1
    if chosen.size < min_voxels:
        raise MaskError(f"ROI mask has only {chosen.size} labelled voxel(s); at least {min_voxels} are needed")
    return mask.with_array(binary)
