"""Turn what a user gives as CT and ROI (files, DICOM folders, zips, RTSTRUCT/SEG) into the pair
of paths :func:`pipeline.inputs.case.load_case` reads.

* CT: an image file is passed through; a DICOM folder (or a ``.zip`` of one, extracted with
  :func:`pipeline.io.archive.safe_extract_zip` and its limits) is scanned
  (:mod:`pipeline.io.dicom_folder`): the image series is chosen (``series_uid`` or the rules of
  :func:`~pipeline.io.dicom_folder.choose_series`), its slices linked alone into a staging folder
  so RTDOSE/RTPLAN/other series can never be read as the CT, and a note says which series it is.
* ROI: a NIfTI/NRRD/MHA mask or a DICOM mask series is passed through; an RTSTRUCT or SEG file
  (or a folder/zip holding one, or nothing at all when the CT's own folder holds one) is
  rasterised onto the chosen CT series (:mod:`pipeline.io.dicom_roi`) and written as a temporary
  uncompressed NIfTI mask on the CT grid.

Everything temporary lives in one private folder removed when the context ends; nothing is
written next to the inputs.

Usage (on a DICOM export; see the tests for runnable cases)::

    with resolve_inputs("export/", None, roi_name="GTV-1") as r:
        case = load_case(r.ct_path, r.roi_path, config=config)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.io.dicom_folder import DicomInventory, ImageSeries, choose_series, read_header, referenced_series_uids, \
    scan_dicom_folder, series_geometry
from pipeline.core.errors import ImageReadError, DicomError, MaskError
from pipeline.io.readers import image_suffix, write_image


@dataclass(frozen=True)
class ResolvedInputs:
    """Paths ready for :func:`pipeline.inputs.case.load_case`, and what was decided on the way.

    Attributes:
        ct_path, roi_path: what load_case reads (may point into the temporary folder).
        notes: user-facing sentences (series used, objects skipped, ROI used).
        series: the CT series when the CT is DICOM (headers, UIDs in z order), else None.
        roi_name: the RTSTRUCT ROI / SEG segment used, or None for a mask image.
        roi_kind: "RTSTRUCT", "SEG" or "image".
    """

    ct_path: Path
    roi_path: Path
    notes: tuple[str, ...]
    series: ImageSeries | None
    roi_name: str | None
    roi_kind: str


def _is_zip(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(".zip")


def _unzipped(path: Path, work: Path, *, what: str) -> Path:
    from pipeline.io.archive import safe_extract_zip

    return safe_extract_zip(path, work / f"unzipped-{len(list(work.iterdir()))}", what=what)


def _looks_like_dicom_roi_file(path: Path) -> bool:
    """A file that is not an image suffix nor a zip: read it as an RTSTRUCT/SEG (a .dcm, or a
    file without suffix as PACS exports name them)."""
    return path.is_file() and not image_suffix(path) and not _is_zip(path)


def _stage_series(series: ImageSeries, work: Path, *, root: Path) -> Path:
    """Link the series' slices alone into a staging folder under their names relative to the CT
    folder, so the CT's content hash (resume keys, audit) is the same as reading a folder that
    holds only this series."""
    folder = work / "ct-series"
    folder.mkdir()
    base = root.resolve()
    for i, f in enumerate(series.files):
        source = Path(f).resolve()
        try:
            name = source.relative_to(base)
        except ValueError:
            name = Path(f"{i:05d}.dcm")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(source)
    return folder


def _probe(path: Path | None, role: str) -> None:
    """A path that cannot even be looked at (name too long, no permission on its folder) is the
    input's error, with the reason only (the path may carry a patient's name)."""
    if path is None:
        return
    try:
        path.stat()
    except FileNotFoundError:
        return  # reported by the reader as "not found"
    except OSError as exc:
        raise ImageReadError(f"{role} file cannot be opened ({exc.strerror or type(exc).__name__})") from None


def _structure_for(inventory: DicomInventory, series: ImageSeries) -> Path | None:
    """The RTSTRUCT/SEG of ``inventory`` drawn on ``series`` (None when there is none); several
    fitting ones are refused as ambiguous."""
    files = inventory.roi_files
    fitting = [f for f in files if series.series_uid in referenced_series_uids(f)] or \
        [f for f in files if not referenced_series_uids(f)]
    if len(fitting) > 1:
        raise MaskError(f"the CT folder holds {len(fitting)} structure sets/segmentations for this series; "
                        "give the one to use as the ROI")
    return fitting[0] if fitting else None


@contextlib.contextmanager
def resolve_inputs(ct: str | os.PathLike[str], roi: str | os.PathLike[str] | None, *, roi_name: str | None = None,
                   series_uid: str | None = None, workdir: str | os.PathLike[str] | None = None
                   ) -> Iterator[ResolvedInputs]:
    """Resolve a CT and an ROI as described in the module docstring (a context manager).

    Args:
        ct: CT image file, DICOM folder, or .zip of a DICOM folder.
        roi: mask image, DICOM mask folder, RTSTRUCT/SEG file, folder or .zip holding one, or
            ``None`` when the CT's DICOM folder holds the RTSTRUCT/SEG.
        roi_name: RTSTRUCT ROI name / SEG segment label (needed when it holds several volumes).
        series_uid: Series Instance UID of the CT series to use when the folder holds several.
        workdir: parent of the temporary folder (default: the system's).

    Raises:
        InputError subclasses (one sentence naming the role) for anything that cannot be used.
    """
    work = Path(tempfile.mkdtemp(prefix="pleura-inputs-", dir=workdir))
    try:
        yield _resolve(Path(ct), None if roi is None else Path(roi), roi_name=roi_name, series_uid=series_uid,
                       work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _resolve(ct: Path, roi: Path | None, *, roi_name: str | None, series_uid: str | None,
             work: Path) -> ResolvedInputs:
    notes: list[str] = []
    _probe(ct, "CT")
    _probe(roi, "ROI mask")
    if _is_zip(ct):
        ct = _unzipped(ct, work, what="the CT zip")
    series = inventory = None
    ct_path = ct
    if ct.is_dir():
        inventory = scan_dicom_folder(ct, role="CT")
        series, note = choose_series(inventory, role="CT", series_uid=series_uid)
        notes.append(note)
        ct_path = _stage_series(series, work, root=ct)
    elif series_uid is not None:
        raise DicomError("CT: --series applies to a DICOM folder; this CT is a single image file")

    roi_file: Path | None = None
    if roi is not None and _is_zip(roi):
        roi = _unzipped(roi, work, what="the ROI zip")
    if roi is None or (roi.is_dir() and ct.is_dir() and roi.resolve() == ct.resolve()):
        if inventory is None or series is None:
            raise MaskError("no ROI given: give the ROI mask, or the RTSTRUCT/SEG file, or a DICOM CT folder that holds one")
        roi_file = _structure_for(inventory, series)
        if roi_file is None:
            raise MaskError("no ROI given and the CT folder holds no RTSTRUCT or SEG drawn on this series; "
                            "give the ROI mask or structure set")
    elif roi.is_dir():
        roi_inventory = scan_dicom_folder(roi, role="ROI")
        if roi_inventory.roi_files and series is not None:
            roi_file = _structure_for(roi_inventory, series)
        elif roi_inventory.roi_files:
            roi_file = roi_inventory.roi_files[0]
    elif _looks_like_dicom_roi_file(roi):
        roi_file = roi
    if roi_file is None:  # a mask image (or DICOM mask series): load_case reads it
        if roi_name is not None:
            raise MaskError("--roi-name applies to an RTSTRUCT or DICOM SEG; for a label mask image use --label")
        return ResolvedInputs(Path(ct_path), Path(roi), tuple(notes), series, None, "image")
    from pipeline.io.dicom_roi import dicom_roi_kind, roi_entries, roi_mask

    kind = dicom_roi_kind(roi_file)
    if kind is None:  # not an RTSTRUCT/SEG: say why (not DICOM, damaged, another object)
        read_header(roi_file, role="the ROI (RTSTRUCT or SEG)")
        raise DicomError("the ROI DICOM file is neither an RT Structure Set nor a Segmentation; "
                         "give the RTSTRUCT or SEG file, or a NIfTI mask")
    if series is None:
        raise DicomError(f"the ROI is a DICOM {kind}, which is placed on the DICOM CT series it was drawn on; "
                         "give the CT as its DICOM folder (or zip), not as a converted image")
    mask = roi_mask(roi_file, series=series, grid=series_geometry(series, role="CT"), roi_name=roi_name)
    used = roi_name
    if used is None:
        used = next(e.name for e in roi_entries(roi_file) if e.is_volume)
    notes.append(f"ROI: {kind} {'ROI' if kind == 'RTSTRUCT' else 'segment'} {used!r} rasterised onto the CT "
                 f"({int(mask.array.sum()):,} voxels)")
    roi_path = write_image(mask, work / "roi-from-dicom.nii", compress=False)
    return ResolvedInputs(Path(ct_path), roi_path, tuple(notes), series, used, kind)


@contextlib.contextmanager
def resolve_ct(ct: str | os.PathLike[str], *, series_uid: str | None = None,
               workdir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Only the CT half of :func:`resolve_inputs` (a context manager yielding the path to read):
    an image file as it is; a DICOM folder or zip with its series chosen and staged alone.
    For a CT that has no ROI yet (the app's viewer, click-to-segment)."""
    work = Path(tempfile.mkdtemp(prefix="pleura-inputs-", dir=workdir))
    try:
        path = Path(ct)
        _probe(path, "CT")
        if _is_zip(path):
            path = _unzipped(path, work, what="the CT zip")
        if path.is_dir():
            series, _note = choose_series(scan_dicom_folder(path, role="CT"), role="CT", series_uid=series_uid)
            path = _stage_series(series, work, root=path)
        elif series_uid is not None:
            raise DicomError("CT: --series applies to a DICOM folder; this CT is a single image file")
        yield path
    finally:
        shutil.rmtree(work, ignore_errors=True)
