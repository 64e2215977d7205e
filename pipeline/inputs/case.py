"""Load one case: read CT + ROI, validate, align, binarise, crop — everything before features.

All checks happen here, before any expensive step, and in this order: header (size, 3-D) →
CT intensities (incl. a label mask given as the CT) → mask geometry vs CT (strict unless
resampling is allowed) → mask labels/voxel count (incl. a CT given as the mask) → ROI size and
the memory its features need → crop → ROI composition, location, components
(:mod:`pipeline.inputs.roi_checks`). Only the crop (ROI
bounding box + margin in mm) travels on; the full volumes are dropped unless ``keep_full``.

A NIfTI CT and mask on the same grid (the usual case) are *streamed*: each file is read once,
a block of slices at a time, the mask reduced to the box around its labels and the CT to the
crop plus the summary the intensity check needs, so neither whole volume is ever held (157 MB
+ 79 MB for 512×512×300) and the result is identical. Anything else takes the general path.

Example:
    >>> from pipeline.core.config import PipelineConfig
    >>> case = load_case("ct.nii.gz", "roi.nii.gz", config=PipelineConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from pipeline.core.config import PipelineConfig
from pipeline.core.errors import InputError, RoiPlausibilityError
from pipeline.inputs.plausible import check_ct_geometry, check_roi_span
from pipeline.inputs.roi_checks import assess_roi, check_roi_size
from pipeline.io.readers import read_image, read_image_hashed, stream_slices
from pipeline.preprocess import CropRecord
from pipeline.preprocess.crop import crop_record, roi_bbox
from pipeline.inputs.validate import IntensitySummariser, align_mask, binarise_mask, check_ct_intensities, same_grid
from pipeline.core.volume import Volume


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

    @classmethod
    def streamed(cls, path: str | os.PathLike[str], *, role: str, max_voxels: int,
                 want_hash: bool) -> tuple["_RoiBox", str] | None:
        """The box of a mask file read a block of slices at a time (the whole mask is never
        held: 79 MB for 512×512×300), with :func:`pipeline.io.readers.read_image`'s checks and errors;
        ``None`` when the file is not one :func:`pipeline.io.readers.stream_slices` reads."""
        kept: dict[int, np.ndarray] = {}  # z → a labelled slice (copy)

        def plan(geometry: Volume):  # noqa: ANN202
            def on_block(z0: int, block: np.ndarray) -> None:
                for i in np.flatnonzero(block.reshape(block.shape[0], -1).any(axis=1)):
                    kept[z0 + int(i)] = block[i].copy()
            return on_block

        read = stream_slices(path, role=role, plan=plan, max_voxels=max_voxels, want_hash=want_hash)
        if read is None:
            return None
        geometry, sha256 = read
        if not kept:
            return cls(geometry, (0, 0, 0), None), sha256
        z_lo, z_hi = min(kept), max(kept) + 1
        labelled = np.stack(list(kept.values()))
        (_, y_lo, x_lo), (_, y_hi, x_hi) = roi_bbox(labelled)
        box = np.zeros((z_hi - z_lo, y_hi - y_lo, x_hi - x_lo), dtype=labelled.dtype)
        for z, plane in kept.items():
            box[z - z_lo] = plane[y_lo:y_hi, x_lo:x_hi]
        return cls(geometry, (z_lo, y_lo, x_lo), box), sha256

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
              label: int | None = None, keep_full: bool = False, hash_inputs: bool = True,
              series: str | None = None, allow_resample: bool = False, check_roi: bool = True,
              runtime: str = "torch") -> PreparedCase:
    """Read and validate a CT/ROI pair and crop it (see module docstring for the order of checks).

    ``series`` chooses the DICOM series of a CT folder holding several (SeriesInstanceUID);
    without it the largest is read and a warning names it.

    Args:
        allow_resample: a mask on another voxel grid than the CT's may be resampled onto it (when
            the overlap is near-complete, see :func:`pipeline.inputs.validate.align_mask`); refused otherwise.
        check_roi: run the ROI plausibility checks (:mod:`pipeline.inputs.roi_checks`): size and memory
            on the mask, then composition, location and components on the crop. Only benchmarks
            measuring what those checks prevent turn them off.
        runtime: what the scoring process loads ("torch", or "onnx" for a bundle scored without
            torch), for the ROI memory estimate (:func:`pipeline.inputs.roi_checks.estimate_peak_mib`).

    Raises:
        InputError subclasses naming the problem (unreadable file, not 3-D, too large, not HU,
        geometry mismatch, empty/multi-label mask, …).
    """
    if not keep_full:
        streamed = _load_streamed(ct_path, roi_path, config=config, label=label, hash_inputs=hash_inputs,
                                  check_roi=check_roi, runtime=runtime)
        if streamed is not None:
            return streamed
    v = config.validation
    # The ROI is read in a second thread while the CT is read (decompression releases the GIL);
    # a plain NIfTI is hashed in the same single pass that decompresses it. A CT error is
    # reported before an ROI error, as if they were read one after the other. The ROI thread
    # keeps only the box around the labelled voxels (streamed, so the whole mask, 79 MB for
    # 512×512×300, is not even held while it is read).
    notes: list[str] = []  # e.g. which DICOM series of several was read

    def read(path: str | os.PathLike[str], role: str) -> tuple[Volume, str]:
        choice = {"series": series, "notes": notes} if role == "CT" else {}
        if hash_inputs:
            return read_image_hashed(path, role=role, max_voxels=v.max_voxels, **choice)
        return read_image(path, role=role, max_voxels=v.max_voxels, **choice), ""

    def read_roi() -> tuple[_RoiBox, str]:
        streamed_box = _RoiBox.streamed(roi_path, role="ROI mask", max_voxels=v.max_voxels, want_hash=hash_inputs)
        if streamed_box is not None:
            return streamed_box
        roi, sha256 = read(roi_path, "ROI mask")
        return _RoiBox.of(roi), sha256

    with ThreadPoolExecutor(max_workers=1) as pool:
        roi_future = pool.submit(read_roi)
        ct, ct_sha256 = read(ct_path, "CT")
        check_ct_geometry(ct)
        roi_read, roi_sha256 = roi_future.result()
    check_ct_intensities(ct, config=v)
    roi_kept: Volume | None = None  # the whole mask on the CT grid, only when keep_full
    if same_grid(ct, roi_read.geometry, config=v):
        # on the CT grid: take the CT's exact geometry (tiny float differences removed), as align_mask does
        box, warnings = replace(roi_read, geometry=ct.with_array(roi_read.geometry.array)), []
    else:  # the mask must be resampled onto the CT grid: that needs all of it
        roi_raw = read(roi_path, "ROI mask")[0]
        del roi_read
        roi_aligned, warnings = align_mask(ct, roi_raw, config=v, allow_resample=allow_resample)
        del roi_raw
        box = _RoiBox.of(roi_aligned)
        roi_kept = roi_aligned if keep_full else None
        del roi_aligned
    plan = _CropPlan.of(box, ct, label=label, config=config, check_roi=check_roi, runtime=runtime)
    roi_full = None
    if keep_full:  # a mask on the CT grid is pasted from its box: np.zeros' untouched pages cost nothing
        roi_full = ct.with_array((roi_kept.array == plan.chosen).astype(np.uint8) if roi_kept is not None
                                 else box.paste(ct.shape_zyx, (0, 0, 0), plan.chosen))
    return plan.case(ct, np.ascontiguousarray(ct.array[plan.slices]), box, warnings=notes + list(warnings),
                     ct_sha256=ct_sha256, roi_sha256=roi_sha256, ct_full=ct if keep_full else None,
                     roi_full=roi_full)


_EDGE_WARNING = "ROI touches the edge of the CT volume: the tumour may be cut off and its features incomplete"


@dataclass(frozen=True)
class _CropPlan:
    """The tumour label and where the crop (its box + margin) lies in the whole CT: all a case
    needs from the mask besides its box, whichever way the CT is then read."""

    chosen: int
    crop: CropRecord
    touches_edge: bool
    check_roi: bool = True
    size_warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, box: _RoiBox, ct: Volume, *, label: int | None, config: PipelineConfig,
           check_roi: bool = True, runtime: str = "torch") -> "_CropPlan":
        """Labels are checked on the box of all labelled voxels, not on the whole volume (a
        512×512×300 mask is 79 M voxels). ``ct`` only gives the geometry (shape, spacing).
        With ``check_roi``, the ROI's size and the memory its features need are checked here,
        before the CT's voxels are kept (:func:`pipeline.inputs.roi_checks.check_roi_size`).
        Raises the mask's :class:`~pipeline.core.errors.MaskError`."""
        v, p = config.validation, config.preprocess
        if box.array is None:
            binarise_mask(ct.with_array(np.zeros((1, 1, 1), np.uint8)), label=label,
                          min_voxels=v.min_mask_voxels)  # raises the empty-mask error
        binary_sub = binarise_mask(ct.with_array(box.array), label=label, min_voxels=v.min_mask_voxels)
        chosen = label if label is not None else int(box.array[binary_sub.array.astype(bool)].flat[0])
        lo_sub, hi_sub = roi_bbox(binary_sub.array)
        size_warnings: list[str] = []
        if check_roi:
            size_warnings = check_roi_size(n_voxels=int(np.count_nonzero(binary_sub.array)),
                                           bbox_shape_zyx=tuple(b - a for a, b in zip(lo_sub, hi_sub)),
                                           spacing_zyx=ct.spacing_zyx, target_spacing_mm=p.target_spacing_mm,
                                           runtime=runtime)
        start = tuple(a + b for a, b in zip(box.start, lo_sub))
        stop = tuple(a + b for a, b in zip(box.start, hi_sub))
        check_roi_span(tuple((b - a) * s for a, b, s in zip(start, stop, ct.spacing_zyx)),  # type: ignore[arg-type]
                       spacing_xyz=ct.spacing_xyz, target_spacing_mm=p.target_spacing_mm)
        crop = crop_record(ct.shape_zyx, ct.spacing_zyx, start, stop, margin_mm=p.crop_margin_mm,  # type: ignore[arg-type]
                           min_margin_voxels=p.crop_min_margin_voxels)
        edge = any(a == 0 for a in start) or any(b == n for b, n in zip(stop, ct.shape_zyx))
        return cls(chosen, crop, edge, check_roi, tuple(size_warnings))

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.crop.start_zyx, self.crop.stop_zyx))  # type: ignore[return-value]

    def case(self, ct: Volume, ct_crop: np.ndarray, box: _RoiBox, *, warnings: list[str], ct_sha256: str,
             roi_sha256: str, ct_full: Volume | None = None, roi_full: Volume | None = None) -> PreparedCase:
        """The :class:`PreparedCase` from the CT crop's voxels (``ct`` gives the geometry)."""
        origin = tuple(float(c) for c in ct.index_to_physical(np.asarray(self.crop.start_zyx, dtype=float)))
        ct_c = ct.with_array(ct_crop, origin_xyz=origin)
        roi_c = ct_c.with_array(box.paste(ct_c.shape_zyx, self.crop.start_zyx, self.chosen))
        roi_warnings = list(self.size_warnings) + (assess_roi(ct_c, roi_c) if self.check_roi else [])
        return PreparedCase(
            ct_crop=ct_c,
            roi_crop=roi_c,
            crop=self.crop,
            warnings=tuple(warnings) + tuple(roi_warnings) + ((_EDGE_WARNING,) if self.touches_edge else ()),
            ct_sha256=ct_sha256,
            roi_sha256=roi_sha256,
            ct_shape_zyx=ct.shape_zyx,
            ct_spacing_xyz=ct.spacing_xyz,
            roi_voxels=int(roi_c.array.sum()),
            ct_full=ct_full,
            roi_full=roi_full,
        )


def _load_streamed(ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str], *, config: PipelineConfig,
                   label: int | None, hash_inputs: bool, check_roi: bool = True,
                   runtime: str = "torch") -> PreparedCase | None:
    """:func:`load_case` for the common case (a NIfTI pair on one grid), reading each file once
    and never holding a whole volume.

    The mask streams first and is reduced to the box around its labels; its label is checked and
    the crop planned from the CT's header; then the CT streams through the intensity checks'
    summary while only the crop (tumour box + margin) is kept. Same values, checks, errors and
    warnings as the general path, without the 157 MB CT and 79 MB mask arrays (and the time to
    fill fresh pages for them). Returns ``None``, and the general path runs, whenever the case
    is anything else: another format, a mask needing resampling, a mask problem, an unreadable
    mask (so that a CT error is still reported first).
    """
    v = config.validation
    try:
        roi_read = _RoiBox.streamed(roi_path, role="ROI mask", max_voxels=v.max_voxels, want_hash=hash_inputs)
    except InputError:
        return None
    if roi_read is None or roi_read[0].array is None:
        return None
    roi_box, roi_sha256 = roi_read
    planned: list[tuple[_CropPlan, _RoiBox, np.ndarray, IntensitySummariser]] = []

    def plan(ct_geometry: Volume):  # noqa: ANN202
        check_ct_geometry(ct_geometry)
        if not same_grid(ct_geometry, roi_box.geometry, config=v):
            return None
        box = replace(roi_box, geometry=ct_geometry.with_array(roi_box.geometry.array))
        try:
            crop_plan = _CropPlan.of(box, ct_geometry, label=label, config=config, check_roi=check_roi,
                                     runtime=runtime)
        except RoiPlausibilityError:
            raise  # an ROI too large to be a tumour or to featurise: refused before the CT's voxels are read
        except InputError:
            return None
        (z_lo, y_lo, x_lo), (z_hi, y_hi, x_hi) = crop_plan.crop.start_zyx, crop_plan.crop.stop_zyx
        ct_crop = np.empty((z_hi - z_lo, y_hi - y_lo, x_hi - x_lo), dtype=ct_geometry.array.dtype)
        summariser = IntensitySummariser(ct_geometry.shape_zyx, ct_geometry.array.dtype)
        planned.append((crop_plan, box, ct_crop, summariser))

        def on_block(z0: int, block: np.ndarray) -> None:
            summariser.add(z0, block)
            a, b = max(z0, z_lo), min(z0 + block.shape[0], z_hi)
            if b > a:
                ct_crop[a - z_lo:b - z_lo] = block[a - z0:b - z0, y_lo:y_hi, x_lo:x_hi]
        return on_block

    streamed = stream_slices(ct_path, role="CT", plan=plan, max_voxels=v.max_voxels, want_hash=hash_inputs)
    if streamed is None:
        return None
    ct_geometry, ct_sha256 = streamed
    crop_plan, box, ct_crop, summariser = planned[0]
    check_ct_intensities(summariser.summary(), config=v)
    return crop_plan.case(ct_geometry, ct_crop, box, warnings=[], ct_sha256=ct_sha256, roi_sha256=roi_sha256)


def prepare_box(ct_box: np.ndarray, roi_box: np.ndarray, *, start_zyx: tuple[int, int, int], geometry: Volume,
                config: PipelineConfig, label: int | None = None, check_roi: bool = True,
                runtime: str = "torch") -> PreparedCase:
    """:func:`load_case` of a CT/ROI pair held in memory as one box of each (synthetic phantoms
    rendered around their tumour): the same crop, ROI checks, errors and warnings as reading the
    whole pair from NIfTI files, without the files.

    Args:
        ct_box, roi_box: (z, y, x) CT (HU) and mask voxels of the same box of the whole volumes.
        start_zyx: the box's first voxel in the whole volume.
        geometry: the whole CT's geometry as its file would give it (shape, dtype, spacing,
            origin, direction; the array may be a zero-stride placeholder).

    The crop (ROI box + margin) must lie inside the box, else :class:`ValueError` (render a
    larger box). The CT intensity check needs the whole CT and is not run: the caller vouches
    that the volume is in HU (a phantom is by construction).
    """
    if ct_box.shape != roi_box.shape or len(ct_box.shape) != 3:
        raise ValueError("the CT box and the ROI box must be 3-D and of one shape")
    check_ct_geometry(geometry)
    a = roi_box
    if not a.any():
        box = _RoiBox(geometry.with_array(np.broadcast_to(np.zeros((), dtype=a.dtype), geometry.shape_zyx)), (0, 0, 0), None)
    else:
        lo, hi = roi_bbox(a)
        box = _RoiBox(geometry.with_array(np.broadcast_to(np.zeros((), dtype=a.dtype), geometry.shape_zyx)),
                      tuple(s + b for s, b in zip(start_zyx, lo)),  # type: ignore[arg-type]
                      np.array(a[tuple(slice(b, e) for b, e in zip(lo, hi))]))
    plan = _CropPlan.of(box, geometry, label=label, config=config, check_roi=check_roi, runtime=runtime)
    inner = tuple(slice(b - s, e - s) for b, e, s in zip(plan.crop.start_zyx, plan.crop.stop_zyx, start_zyx))
    if any(sl.start < 0 or sl.stop > n for sl, n in zip(inner, ct_box.shape)):
        raise ValueError("the crop around the ROI reaches outside the box held in memory")
    return plan.case(geometry, np.ascontiguousarray(ct_box[inner], dtype=geometry.array.dtype), box, warnings=[],
                     ct_sha256="", roi_sha256="")
