"""Load one case: read CT + ROI, validate, align, binarise, crop — everything before features.

All checks happen here, before any expensive step, and in this order: header (size, 3-D) →
CT intensities → mask geometry vs CT → mask labels/voxel count → crop. Only the crop (ROI
bounding box + margin in mm) travels on; the full volumes are dropped unless ``keep_full``.

Example:
    >>> from pipeline.config import PipelineConfig
    >>> case = load_case("ct.nii.gz", "roi.nii.gz", config=PipelineConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from .config import PipelineConfig
from .io import read_image, read_image_hashed
from .preprocess import CropRecord
from .preprocess.crop import bbox_crop, roi_bbox
from .validate import align_mask, binarise_mask, check_ct_intensities, same_grid
from .volume import Volume


@dataclass(frozen=True, eq=False)
class PreparedCase:
    """A validated case, cropped around the tumour.

    Attributes:
        ct_crop, roi_crop: CT (HU) and binary ROI on the same grid, (z, y, x) arrays.
        crop: where the crop came from in the full CT.
        warnings: user-visible notes (e.g. "mask resampled onto the CT grid").
        ct_sha256, roi_sha256: content hashes of the input files (identity without names).
        ct_shape_zyx, ct_spacing_xyz: geometry of the full CT (voxels, mm).
        roi_voxels: labelled voxels in the ROI on the CT grid.
        ct_full, roi_full: full volumes, only when loaded with ``keep_full=True`` (viewers).
    """

    ct_crop: Volume
    roi_crop: Volume
    crop: CropRecord
    warnings: tuple[str, ...]
    ct_sha256: str
    roi_sha256: str
    ct_shape_zyx: tuple[int, int, int]
    ct_spacing_xyz: tuple[float, float, float]
    roi_voxels: int
    ct_full: Volume | None = None
    roi_full: Volume | None = None


@dataclass(frozen=True, eq=False)
class _RoiBox:
    """A mask reduced to the box around its labelled voxels (the rest is 0).

    ``geometry`` has the whole mask's shape and geometry but a zero-stride array (no memory);
    ``array`` is the box [start, stop) (z, y, x), or ``None`` for an empty mask.
    """

    geometry: Volume
    start: tuple[int, int, int]
    array: np.ndarray | None

    @classmethod
    def of(cls, mask: Volume) -> "_RoiBox":
        a = mask.array
        geometry = mask.with_array(np.broadcast_to(np.zeros((), dtype=a.dtype), a.shape))
        if not a.any():
            return cls(geometry, (0, 0, 0), None)
        lo, hi = roi_bbox(a)
        return cls(geometry, lo, np.array(a[tuple(slice(b, e) for b, e in zip(lo, hi))]))

    def paste(self, shape: tuple[int, int, int], offset: tuple[int, int, int], label: int) -> np.ndarray:
        """uint8 {0, 1} of voxels == ``label`` on the (z, y, x) region [offset, offset + shape)."""
        out = np.zeros(shape, dtype=np.uint8)
        src, dst = [], []
        for b, n, o, m in zip(self.start, self.array.shape, offset, shape):
            lo, hi = max(b, o), min(b + n, o + m)
            if hi <= lo:
                return out
            src.append(slice(lo - b, hi - b))
            dst.append(slice(lo - o, hi - o))
        out[tuple(dst)] = self.array[tuple(src)] == label
        return out


def load_case(ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str], *, config: PipelineConfig,
              label: int | None = None, keep_full: bool = False, hash_inputs: bool = True) -> PreparedCase:
    """Read and validate a CT/ROI pair and crop it (see module docstring for the order of checks).

    Raises:
        InputError subclasses naming the problem (unreadable file, not 3-D, too large, not HU,
        geometry mismatch, empty/multi-label mask, …).
    """
    v = config.validation
    # The ROI is read in a second thread while the CT is read (decompression releases the GIL);
    # a plain NIfTI is hashed in the same single pass that decompresses it. A CT error is
    # reported before an ROI error, as if they were read one after the other. Unless the full
    # volumes are wanted, the ROI thread keeps only the box around the labelled voxels, so the
    # whole mask (79 MB for 512×512×300) is freed long before the CT read ends.
    def read(path: str | os.PathLike[str], role: str) -> tuple[Volume, str]:
        if hash_inputs:
            return read_image_hashed(path, role=role, max_voxels=v.max_voxels)
        return read_image(path, role=role, max_voxels=v.max_voxels), ""

    def read_roi() -> tuple[Volume | _RoiBox, str]:
        roi, sha256 = read(roi_path, "ROI mask")
        return (roi if keep_full else _RoiBox.of(roi)), sha256

    with ThreadPoolExecutor(max_workers=1) as pool:
        roi_future = pool.submit(read_roi)
        ct, ct_sha256 = read(ct_path, "CT")
        roi_read, roi_sha256 = roi_future.result()
    check_ct_intensities(ct, config=v)
    roi_kept: Volume | None = None  # the whole mask on the CT grid, only when keep_full
    if isinstance(roi_read, _RoiBox) and same_grid(ct, roi_read.geometry, config=v):
        # on the CT grid: take the CT's exact geometry (tiny float differences removed), as align_mask does
        box, warnings = replace(roi_read, geometry=ct.with_array(roi_read.geometry.array)), []
    else:  # the mask must be resampled onto the CT grid (or kept whole): that needs all of it
        roi_raw = roi_read if isinstance(roi_read, Volume) else read(roi_path, "ROI mask")[0]
        del roi_read
        roi_aligned, warnings = align_mask(ct, roi_raw, config=v)
        del roi_raw
        box = _RoiBox.of(roi_aligned)
        roi_kept = roi_aligned if keep_full else None
        del roi_aligned
    warnings = list(warnings)
    # Labels are checked on the bounding box of all labelled voxels, not on the whole volume
    # (a 512×512×300 mask is 79 M voxels); the chosen label's box is then cropped with margin.
    if box.array is None:
        binarise_mask(ct.with_array(np.zeros((1, 1, 1), np.uint8)), label=label,
                      min_voxels=v.min_mask_voxels)  # raises the empty-mask error
    any_lo = box.start
    binary_sub = binarise_mask(ct.with_array(box.array), label=label, min_voxels=v.min_mask_voxels)
    chosen = label if label is not None else int(box.array[binary_sub.array.astype(bool)].flat[0])
    lo_sub, hi_sub = roi_bbox(binary_sub.array)
    start = tuple(a + b for a, b in zip(any_lo, lo_sub))
    stop = tuple(a + b for a, b in zip(any_lo, hi_sub))
    if any(a == 0 for a in start) or any(b == n for b, n in zip(stop, ct.shape_zyx)):
        warnings.append("ROI touches the edge of the CT volume: the tumour may be cut off and its features incomplete")
    p = config.preprocess
    ct_c, roi_c, crop = bbox_crop(ct, box.geometry, start, stop, margin_mm=p.crop_margin_mm,
                                  min_margin_voxels=p.crop_min_margin_voxels)
    roi_c = roi_c.with_array(box.paste(roi_c.shape_zyx, crop.start_zyx, chosen))
    roi_full = roi_kept.with_array((roi_kept.array == chosen).astype(np.uint8)) if roi_kept is not None else None
    return PreparedCase(
        ct_crop=ct_c,
        roi_crop=roi_c,
        crop=crop,
        warnings=tuple(warnings),
        ct_sha256=ct_sha256,
        roi_sha256=roi_sha256,
        ct_shape_zyx=ct.shape_zyx,
        ct_spacing_xyz=ct.spacing_xyz,
        roi_voxels=int(roi_c.array.sum()),
        ct_full=ct if keep_full else None,
        roi_full=roi_full,
    )
