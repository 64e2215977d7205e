"""The tumour ROI from a DICOM RTSTRUCT or DICOM SEG, as a binary mask on the CT series' grid.

* **RTSTRUCT**: read with pydicom; each CLOSED_PLANAR contour of the chosen ROI is filled with
  scikit-image's ``skimage.draw.polygon`` (a voxel is inside when its centre is inside the
  polygon, vertices kept at sub-voxel precision) on the CT slice it lies on; contours on the same
  slice are combined by exclusive or, so an inner contour cuts a hole and two separate islands
  both count (the convention of dcmrtstruct2nii and plastimatch). Bench and choice:
  bench/README.md ("RTSTRUCT rasterisers").
* **SEG**: read with highdicom; the chosen segment's frames are placed on the CT slices they
  were derived from (by SOP Instance UID). BINARY and LABELMAP SEGs are read; FRACTIONAL
  (probability) SEGs are refused.

Both check that the object belongs to the CT series: same FrameOfReferenceUID and every
referenced slice a slice of that series (a structure set of another series is refused, saying
what differs). Only volume ROIs count: POINT contours and MARKER/ISOCENTER ROIs are left out of
the names offered. Errors are :class:`~pipeline.core.errors.InputError` sentences naming the role
("the ROI structure set", "the ROI segmentation"), never a file name.

Arrays are (z, y, x); the CT grid is a :class:`~pipeline.core.volume.Volume` (spacing/origin in ITK
(x, y, z) order, mm, LPS) plus the series' SOP Instance UIDs in z order
(:class:`~pipeline.io.dicom_folder.ImageSeries`).

Usage (on a DICOM export; see the tests for runnable cases)::

    names = roi_names("rtstruct.dcm")
    mask = rtstruct_mask("rtstruct.dcm", series=ct_series, grid=grid, roi_name="GTV-1")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.dicom_folder import RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS, ImageSeries, read_header
from pipeline.core.errors import DicomError, MaskError
from pipeline.core.volume import Volume

RTSTRUCT_ROLE = "the ROI structure set (RTSTRUCT)"
SEG_ROLE = "the ROI segmentation (DICOM SEG)"
_POINT_TYPES = {"POINT"}
_NON_VOLUME_INTERPRETATIONS = {"MARKER", "ISOCENTER", "REGISTRATION", "CONTROL", "DOSE_REGION", "BRACHY_ACCESSORY",
                               "BRACHY_SRC_APP", "BRACHY_CHANNEL", "BRACHY_CHNL_SHLD", "FIXATION", "DOSE_MEASUREMENT"}
# How far (in voxels) a contour may sit from a slice plane / beyond the CT's edge.
_PLANE_TOLERANCE = 0.25
_EDGE_TOLERANCE = 0.5


@dataclass(frozen=True)
class RoiEntry:
    """One ROI of a structure set or one segment of a SEG."""

    name: str
    number: int  # ROI Number / Segment Number
    is_volume: bool  # has closed planar contours (RTSTRUCT) / any segment (SEG)
    kind: str  # "RTSTRUCT" or "SEG"


def dicom_roi_kind(path: str | os.PathLike[str]) -> str | None:
    """"RTSTRUCT", "SEG", or ``None`` when ``path`` is not a readable file of either kind (a
    folder, a NIfTI mask, another DICOM object). Only the file's header is read."""
    import pydicom

    p = Path(path)
    if not p.is_file():
        return None
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - anything unreadable is simply "not an RTSTRUCT/SEG"
        return None
    return {RTSTRUCT_SOP_CLASS: "RTSTRUCT", SEG_SOP_CLASS: "SEG"}.get(str(ds.get("SOPClassUID", "")))


def _rtstruct(path: Path):  # noqa: ANN202 - pydicom Dataset
    ds = read_header(path, role=RTSTRUCT_ROLE)
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS or "StructureSetROISequence" not in ds:
        raise DicomError(f"{RTSTRUCT_ROLE} is not an RT Structure Set (the file is another DICOM object)")
    return ds


def _rtstruct_entries(ds) -> list[tuple[RoiEntry, object]]:  # noqa: ANN001
    """(entry, ROI Contour item or None) per ROI of a structure set, in file order."""
    contours = {int(rc.ReferencedROINumber): rc for rc in ds.get("ROIContourSequence", [])
                if "ReferencedROINumber" in rc}
    kinds = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "").upper()
             for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o}
    out = []
    for roi in ds.StructureSetROISequence:
        number = int(roi.ROINumber)
        rc = contours.get(number)
        types = {str(c.get("ContourGeometricType", "")).upper() for c in (rc.get("ContourSequence", []) if rc else [])}
        volume = bool(types - _POINT_TYPES - {"OPEN_PLANAR", "OPEN_NONPLANAR"}) and \
            kinds.get(number, "") not in _NON_VOLUME_INTERPRETATIONS
        out.append((RoiEntry(str(roi.get("ROIName", "") or "").strip(), number, volume, "RTSTRUCT"), rc))
    return out


def _seg(path: Path):  # noqa: ANN202 - highdicom Segmentation
    import highdicom as hd

    ds = read_header(path, role=SEG_ROLE, full=True)
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise DicomError(f"{SEG_ROLE} is not a DICOM Segmentation (the file is another DICOM object)")
    if str(ds.get("SegmentationType", "")).upper() == "FRACTIONAL":
        raise MaskError(f"{SEG_ROLE} is FRACTIONAL (probabilities or occupancy, not a binary mask); "
                        "export a BINARY segmentation of the tumour")
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (AttributeError, ValueError, TypeError, KeyError, IndexError):
        raise DicomError(f"{SEG_ROLE} could not be read (incomplete or damaged segmentation); export it again") from None


def roi_entries(path: str | os.PathLike[str]) -> list[RoiEntry]:
    """Every ROI (RTSTRUCT) or segment (SEG) of ``path``, volumes and points alike, file order."""
    p = Path(path)
    kind = dicom_roi_kind(p)
    if kind == "SEG":
        seg = _seg(p)
        return [RoiEntry(str(d.segment_label), int(d.segment_number), True, "SEG")
                for d in (seg.get_segment_description(n) for n in seg.segment_numbers)]
    return [entry for entry, _rc in _rtstruct_entries(_rtstruct(p))]


def roi_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of the volume ROIs (RTSTRUCT) or segment labels (SEG) of ``path``, file order;
    POINT and MARKER ROIs are left out (they cannot be scored)."""
    return [e.name for e in roi_entries(path) if e.is_volume]


def _pick(entries: list[RoiEntry], roi_name: str | None, *, role: str) -> RoiEntry:
    volumes = [e for e in entries if e.is_volume]
    listing = ", ".join(repr(e.name) for e in volumes) or "none"
    if roi_name is None:
        if len(volumes) == 1:
            return volumes[0]
        raise MaskError(f"{role} holds {len(volumes)} volume ROIs; choose one with --roi-name (ROIs: {listing})")
    wanted = roi_name.strip()
    match = [e for e in entries if e.name == wanted] or [e for e in entries if e.name.casefold() == wanted.casefold()]
    if not match:
        raise MaskError(f"{role} has no ROI named {wanted!r}; its volume ROIs are: {listing}")
    if not match[0].is_volume:
        raise MaskError(f"{role}: ROI {match[0].name!r} is a point or marker, not a volume; "
                        f"choose a volume ROI ({listing})")
    return match[0]


def _check_frame(frame_uid: str, series: ImageSeries, *, role: str) -> None:
    if frame_uid and series.frame_of_reference_uid and frame_uid != series.frame_of_reference_uid:
        raise DicomError(f"{role} belongs to another series: its frame of reference {frame_uid} differs from "
                         f"the CT's {series.frame_of_reference_uid}; give the structure set drawn on this CT")


def _check_instances(referenced: set[str], series: ImageSeries, *, role: str, what: str = "contours") -> None:
    missing = referenced - set(series.sop_instance_uids)
    if missing:
        raise DicomError(f"{role} belongs to another series: {len(missing)} of the {len(referenced)} CT slices its "
                         f"{what} reference are not slices of the CT series {series.series_uid}; give the "
                         "structure set drawn on this CT")


def _check_rtstruct_series(ds, contours: list, series: ImageSeries, *, role: str) -> None:  # noqa: ANN001
    """The structure set's own list of the series and slices it was drawn on (Referenced Frame
    of Reference → RT Referenced Series) must name this CT series and only its slices. Only when
    that list is absent are the per-contour slice references checked instead: some anonymisers
    rewrite the former but leave the latter pointing at the original UIDs (LUNG1-001 of
    NSCLC-Radiomics does), and the contour is placed by its coordinates either way."""
    listed: dict[str, set[str]] = {}
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        for st in fr.get("RTReferencedStudySequence", []):
            for se in st.get("RTReferencedSeriesSequence", []):
                listed.setdefault(str(se.get("SeriesInstanceUID", "")), set()).update(
                    str(im.ReferencedSOPInstanceUID) for im in se.get("ContourImageSequence", [])
                    if "ReferencedSOPInstanceUID" in im)
    if listed:
        if series.series_uid not in listed:
            raise DicomError(f"{role} belongs to another series: it was drawn on series "
                             f"{', '.join(sorted(listed))}, not on the CT series {series.series_uid}; "
                             "give the structure set drawn on this CT")
        _check_instances(listed[series.series_uid], series, role=role)
        return
    _check_instances({str(im.ReferencedSOPInstanceUID) for c in contours for im in c.get("ContourImageSequence", [])
                      if "ReferencedSOPInstanceUID" in im}, series, role=role)


def rtstruct_mask(path: str | os.PathLike[str], *, series: ImageSeries, grid: Volume,
                  roi_name: str | None = None) -> Volume:
    """Rasterise one ROI of an RTSTRUCT onto the CT grid.

    Args:
        path: the RTSTRUCT file.
        series: the CT series (its FrameOfReferenceUID and SOP Instance UIDs are checked).
        grid: the CT's voxel grid (:func:`pipeline.io.dicom_folder.series_geometry`; only the
            geometry and the (z, y, x) shape are used).
        roi_name: the ROI to use (exact name, else case-insensitive); may be omitted when the
            structure set holds a single volume ROI.

    Returns:
        uint8 {0, 1} Volume on ``grid``: 1 where a voxel centre lies inside the ROI.

    Raises:
        MaskError: name missing (the volume ROI names are listed), point-only or empty ROI.
        DicomError: not an RTSTRUCT, damaged, another series, contours off the slice planes or
            outside the CT.
    """
    from skimage.draw import polygon

    role = RTSTRUCT_ROLE
    ds = _rtstruct(Path(path))
    entries = _rtstruct_entries(ds)
    entry = _pick([e for e, _ in entries], roi_name, role=role)
    rc = dict((e.number, c) for e, c in entries)[entry.number]
    frames = {int(r.ROINumber): str(r.get("ReferencedFrameOfReferenceUID", "") or "") for r in ds.StructureSetROISequence}
    _check_frame(frames.get(entry.number, ""), series, role=role)
    contours = [c for c in rc.get("ContourSequence", []) if str(c.get("ContourGeometricType", "")).upper() in
                ("CLOSED_PLANAR", "INTERPOLATED_PLANAR")] if rc is not None else []
    if not contours:
        raise MaskError(f"{role}: ROI {entry.name!r} has no closed contours (empty ROI)")
    _check_rtstruct_series(ds, contours, series, role=role)
    nz, ny, nx = grid.shape_zyx
    mask = np.zeros((nz, ny, nx), dtype=bool)
    for contour in contours:
        points = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
        if points.size < 9 or points.size % 3:
            continue  # fewer than three points: no area
        zyx = grid.physical_to_index(points.reshape(-1, 3))
        z = float(np.median(zyx[:, 0]))
        k = int(round(z))
        if np.max(np.abs(zyx[:, 0] - z)) > _PLANE_TOLERANCE or abs(z - k) > _PLANE_TOLERANCE:
            raise DicomError(f"{role}: ROI {entry.name!r} has contours that do not lie on the CT's slice planes "
                             "(drawn on another series or a reformatted CT)")
        outside = max(-0.5 - zyx[:, 1:].min(), zyx[:, 1].max() - (ny - 0.5), zyx[:, 2].max() - (nx - 0.5), 0.0)
        if not 0 <= k < nz or outside > _EDGE_TOLERANCE:
            raise DicomError(f"{role}: ROI {entry.name!r} has contours outside the CT "
                             f"({'beyond its first/last slice' if not 0 <= k < nz else f'{outside:.1f} voxels beyond its edge'}); "
                             "the structure set does not fit this CT")
        rr, cc = polygon(zyx[:, 1], zyx[:, 2], shape=(ny, nx))
        plane = np.zeros((ny, nx), dtype=bool)
        plane[rr, cc] = True
        mask[k] ^= plane
    if not mask.any():
        raise MaskError(f"{role}: ROI {entry.name!r} covers no CT voxel (its contours are smaller than a voxel)")
    return grid.with_array(mask.astype(np.uint8))


def seg_mask(path: str | os.PathLike[str], *, series: ImageSeries, grid: Volume,
             roi_name: str | None = None) -> Volume:
    """One segment of a DICOM SEG placed on the CT grid (see :func:`rtstruct_mask` for the
    arguments; ``roi_name`` is the segment label). A SEG with several segments and no name is
    refused, listing the labels.

    Returns:
        uint8 {0, 1} Volume on ``grid``.

    Raises:
        MaskError: fractional SEG, label missing, empty segment.
        DicomError: not a SEG, damaged, another series, frames not derived from this CT's slices.
    """
    role = SEG_ROLE
    seg = _seg(Path(path))
    entries = [RoiEntry(str(seg.get_segment_description(n).segment_label), int(n), True, "SEG")
               for n in seg.segment_numbers]
    entry = _pick(entries, roi_name, role=role)
    _check_frame(str(seg.get("FrameOfReferenceUID", "") or ""), series, role=role)
    referenced = {str(uid) for _study, _series, uid in _seg_source_instances(seg)}
    if not referenced:
        raise DicomError(f"{role} does not say which CT slices it was derived from; "
                         "it cannot be placed on the CT")
    _check_instances(referenced, series, role=role, what="frames")
    uids = [u for u in series.sop_instance_uids]
    try:
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[entry.number],
                                                   combine_segments=False, ignore_spatial_locations=True,
                                                   assert_missing_frames_are_empty=True)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise DicomError(f"{role} could not be placed on the CT slices ({str(exc).splitlines()[0][:120]})") from None
    arr = np.asarray(pixels)[..., 0]
    if arr.shape != grid.shape_zyx:
        raise DicomError(f"{role} frames are {arr.shape[1]}×{arr.shape[2]} pixels but the CT slices are "
                         f"{grid.shape_zyx[1]}×{grid.shape_zyx[2]}; it was made on another image")
    mask = (arr > 0).astype(np.uint8)
    if not mask.any():
        raise MaskError(f"{role}: segment {entry.name!r} is empty (0 voxels)")
    return grid.with_array(mask)


def seg_overlap(path: str | os.PathLike[str], *, series: ImageSeries) -> list[tuple[str, str]]:
    """Pairs of segment labels of a SEG that share at least one voxel on the CT's slices."""
    seg = _seg(Path(path))
    pixels = np.asarray(seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(series.sop_instance_uids), combine_segments=False,
        ignore_spatial_locations=True, assert_missing_frames_are_empty=True)) > 0
    labels = [str(seg.get_segment_description(n).segment_label) for n in seg.segment_numbers]
    return [(labels[i], labels[j]) for i in range(len(labels)) for j in range(i + 1, len(labels))
            if np.logical_and(pixels[..., i], pixels[..., j]).any()]


def _seg_source_instances(seg) -> list[tuple[str, str, str]]:  # noqa: ANN001
    try:
        return list(seg.get_source_image_uids())
    except (AttributeError, KeyError, ValueError):
        return []


def roi_mask(path: str | os.PathLike[str], *, series: ImageSeries, grid: Volume,
             roi_name: str | None = None) -> Volume:
    """:func:`rtstruct_mask` or :func:`seg_mask`, chosen from the file's SOP class.

    A multi-segment SEG with no name is refused; when its segments overlap the message says so
    (they could not even be combined into one label map)."""
    p = Path(path)
    kind = dicom_roi_kind(p)
    if kind == "SEG":
        if roi_name is None and len(roi_names(p)) > 1:
            overlaps = seg_overlap(p, series=series)
            if overlaps:
                a, b = overlaps[0]
                raise MaskError(f"{SEG_ROLE} has overlapping segments ({a!r} and {b!r} share voxels), so they "
                                f"cannot be read as one label map; choose the tumour segment with --roi-name "
                                f"(segments: {', '.join(repr(n) for n in roi_names(p))})")
        return seg_mask(p, series=series, grid=grid, roi_name=roi_name)
    if kind == "RTSTRUCT":
        return rtstruct_mask(p, series=series, grid=grid, roi_name=roi_name)
    read_header(p, role="the ROI (RTSTRUCT or SEG)")  # raises for a non-DICOM or damaged file
    raise DicomError("the ROI DICOM file is neither an RT Structure Set nor a Segmentation; "
                     "give the RTSTRUCT or SEG file, or a NIfTI mask")
