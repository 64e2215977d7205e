"""What a DICOM folder holds: image series, structure sets (RTSTRUCT), segmentations (SEG), and
everything else (RTPLAN, RTDOSE, SR, …), read from the file headers with pydicom.

A planning-system export puts the CT slices, the RTSTRUCT, the RTPLAN and the RTDOSE side by
side in one flat folder. :func:`scan_dicom_folder` sorts them out: every file is first checked
structurally (:mod:`pipeline.io.dicom_guard`, so a truncated file is refused before any reader
allocates what it claims), then read header-only; non-image objects are listed in
``skipped`` with a note and never taken for the image. :func:`choose_series` picks the image
series (the one a structure set in the folder references, else the one with the most slices;
``series_uid`` overrides) and says which one was used. :func:`series_geometry` gives the
series' voxel grid from its headers alone, so a contour can be rasterised onto it before (and
without) decoding any pixel data.

Arrays are (z, y, x); spacing and origin are ITK (x, y, z), millimetres, LPS. Slices are ordered
by position along the slice normal, exactly as :func:`pipeline.io.readers.read_dicom_series` orders them.

Usage (on a DICOM export; see the tests for runnable cases)::

    inv = scan_dicom_folder("export/", role="CT")
    series, note = choose_series(inv, role="CT")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.io.dicom_guard import NOT_DICOM
from pipeline.core.errors import DicomError

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
# Objects that carry pixel data but are not an image of the patient to score.
_NOT_PATIENT_IMAGES = {"RTDOSE", "SEG", "RTIMAGE", "PR", "KO", "SR", "DOC", "REG", "RTPLAN", "RTSTRUCT"}


@dataclass(frozen=True)
class ImageSeries:
    """One image series: identifiers, description and its slice headers ordered along z.

    Attributes:
        series_uid, study_uid, frame_of_reference_uid: DICOM UIDs.
        description: SeriesDescription ('' when absent).
        modality: e.g. "CT".
        files: slice files, ordered by position along the slice normal (z index 0 first).
        sop_instance_uids: SOP Instance UID of each slice, same order as ``files``.
        headers: the slices' pydicom headers (no pixel data), same order.
    """

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    description: str
    modality: str
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    headers: tuple = field(repr=False, default=())

    @property
    def n_slices(self) -> int:
        return len(self.files)

    def label(self, *, with_description: bool = False) -> str:
        """How the series is named to a user: 'CT (UID 1.2.…, 134 slices)'. The free-text
        SeriesDescription (which sites sometimes fill with a patient's name) is left out of
        notes, errors and logs; ``with_description=True`` adds it for the uploading user's own
        screen: 'CT "Thorax 3mm" (UID 1.2.…, 134 slices)'."""
        desc = ""
        if with_description:
            desc = f' "{self.description}"' if self.description else " (no description)"
        return f"{self.modality}{desc} (UID {self.series_uid}, {self.n_slices} slices)"


@dataclass(frozen=True)
class DicomInventory:
    """Everything found under a folder.

    Attributes:
        series: image series (possible CTs), most slices first.
        structure_sets: RTSTRUCT files.
        segmentations: DICOM SEG files.
        skipped: one note per kind of object that is not an image of the patient
            (e.g. "1 RTPLAN object (RT Plan Storage) skipped: not an image").
    """

    series: tuple[ImageSeries, ...]
    structure_sets: tuple[Path, ...]
    segmentations: tuple[Path, ...]
    skipped: tuple[str, ...]

    @property
    def roi_files(self) -> tuple[Path, ...]:
        """RTSTRUCT then SEG files."""
        return self.structure_sets + self.segmentations


def dicom_problem(path: Path) -> str | None:
    """The structural problem of one file (``NOT_DICOM`` when it is not DICOM Part 10 at all),
    ``None`` when every element header fits the file (see :mod:`pipeline.io.dicom_guard`)."""
    from pipeline.io.dicom import dicom_problem_of  # the mapped, header-only check the CT reader uses

    try:
        return dicom_problem_of(path)
    except (OSError, ValueError):
        return "unreadable"


def read_header(path: Path, *, role: str, full: bool = False):  # noqa: ANN201 - pydicom Dataset
    """A DICOM file's data set, checked structurally first; pixel data are left out unless
    ``full``. Raises :class:`DicomError` naming ``role`` for a non-DICOM, truncated or damaged
    file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    problem = dicom_problem(path)
    if problem == NOT_DICOM:
        raise DicomError(f"{role} is not a DICOM file (no DICOM preamble); give the DICOM export itself")
    if problem is not None:
        raise DicomError(f"{role} is a damaged DICOM file ({problem}); export it again")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not full)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        raise DicomError(f"{role} could not be read as DICOM (damaged file); export it again") from None


def _position_along_normal(ds) -> float:  # noqa: ANN001
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    return float(np.dot(np.cross(iop[:3], iop[3:]), [float(v) for v in ds.ImagePositionPatient]))


def scan_dicom_folder(folder: str | os.PathLike[str], *, role: str = "CT") -> DicomInventory:
    """Sort out the DICOM files under ``folder`` (searched recursively).

    Files without a DICOM preamble are ignored (a README, a thumbnail); a damaged DICOM file
    refuses the folder (one sentence naming ``role``). No pixel data are read.

    Raises:
        DicomError: damaged DICOM file, or no DICOM file at all.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    by_series: dict[str, list[tuple[float, Path, object]]] = {}
    structures: list[Path] = []
    segs: list[Path] = []
    skipped: dict[str, int] = {}
    seen_any = False
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(dirpath) / name
            problem = dicom_problem(path)
            if problem == NOT_DICOM:
                continue
            if problem is not None:
                raise DicomError(f"{role}: a DICOM file in the folder is damaged ({problem}); export the series again")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
                raise DicomError(f"{role}: a DICOM file in the folder could not be read (damaged); "
                                 "export the series again") from None
            seen_any = True
            sop_class = str(ds.get("SOPClassUID", ""))
            modality = str(ds.get("Modality", "")).upper()
            if sop_class == RTSTRUCT_SOP_CLASS:
                structures.append(path)
            elif sop_class == SEG_SOP_CLASS:
                segs.append(path)
            elif (modality not in _NOT_PATIENT_IMAGES and "ImagePositionPatient" in ds
                  and "ImageOrientationPatient" in ds and int(ds.get("NumberOfFrames", 1) or 1) == 1
                  and "SeriesInstanceUID" in ds):
                try:
                    z = _position_along_normal(ds)
                except (ValueError, TypeError, IndexError):
                    raise DicomError(f"{role}: DICOM slices lack readable position/orientation tags") from None
                by_series.setdefault(str(ds.SeriesInstanceUID), []).append((z, path, ds))
            else:
                key = f"{modality or 'unknown'} ({getattr(ds.get('SOPClassUID'), 'name', '') or sop_class})"
                skipped[key] = skipped.get(key, 0) + 1
    if not seen_any:
        raise DicomError(f"{role}: no DICOM image series found in the folder (it holds no DICOM files)")
    series = []
    for uid, slices in by_series.items():
        slices.sort(key=lambda s: s[0])
        first = slices[0][2]
        series.append(ImageSeries(
            series_uid=uid, study_uid=str(first.get("StudyInstanceUID", "")),
            frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
            description=str(first.get("SeriesDescription", "") or "").strip(), modality=str(first.get("Modality", "")),
            files=tuple(s[1] for s in slices), sop_instance_uids=tuple(str(s[2].SOPInstanceUID) for s in slices),
            headers=tuple(s[2] for s in slices)))
    series.sort(key=lambda s: -s.n_slices)
    notes = tuple(f"{n} {kind} object{'s' if n > 1 else ''} skipped: not an image of the patient"
                  for kind, n in sorted(skipped.items()))
    return DicomInventory(tuple(series), tuple(structures), tuple(segs), notes)


def referenced_series_uids(path: Path) -> set[str]:
    """Series Instance UIDs an RTSTRUCT or SEG file says it was drawn on (may be empty)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a broken file references nothing; it is refused when read as the ROI
        return set()
    uids = set()
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        for st in fr.get("RTReferencedStudySequence", []):
            uids.update(str(se.SeriesInstanceUID) for se in st.get("RTReferencedSeriesSequence", []))
    uids.update(str(se.SeriesInstanceUID) for se in ds.get("ReferencedSeriesSequence", []) if "SeriesInstanceUID" in se)
    return uids


def choose_series(inventory: DicomInventory, *, role: str = "CT", series_uid: str | None = None
                  ) -> tuple[ImageSeries, str]:
    """The image series to use and a one-line note saying which one it is.

    Order of choice: ``series_uid`` when given; else the only series; else the one series a
    structure set / SEG of the folder references; else the series with the most slices (a tie
    is refused as ambiguous). The note names the series (description, UID, slice count), the
    others, and the skipped objects.

    Raises:
        DicomError: no image series, unknown ``series_uid``, or an ambiguous choice.
    """
    candidates = inventory.series
    if not candidates:
        skipped = f" (found only: {'; '.join(inventory.skipped)})" if inventory.skipped else ""
        raise DicomError(f"{role}: no DICOM image series found in the folder{skipped}")
    listing = "; ".join(s.label() for s in candidates)
    how = ""
    if series_uid is not None:
        match = [s for s in candidates if s.series_uid == series_uid.strip()]
        if not match:
            raise DicomError(f"{role}: the folder holds no image series with UID {series_uid.strip()}; "
                             f"it holds: {listing}")
        chosen, how = match[0], "as asked"
    elif len(candidates) == 1:
        chosen = candidates[0]
    else:
        referenced = set()
        for path in inventory.roi_files:
            referenced |= referenced_series_uids(path)
        ref = [s for s in candidates if s.series_uid in referenced]
        if len(ref) == 1:
            chosen, how = ref[0], "the one the structure set references"
        elif candidates[0].n_slices == candidates[1].n_slices:
            raise DicomError(f"{role}: the folder holds several DICOM series of {candidates[0].n_slices} slices each "
                             f"and it is unclear which one to use ({listing}); choose one with --series UID")
        else:
            chosen, how = candidates[0], "the one with the most slices"
    note = f"{role}: used series {chosen.label()}"
    others = [s.label() for s in candidates if s is not chosen]
    if others:
        note += f", {how}; other series: {'; '.join(others)} (choose with --series UID)"
    if inventory.skipped:
        note += f". {'; '.join(inventory.skipped)}"
    return chosen, note


def series_geometry(series: ImageSeries, *, role: str = "CT", spacing_tolerance: float = 0.01):  # noqa: ANN201
    """The voxel grid of ``series`` from its headers (no pixel data): a
    :class:`~pipeline.core.volume.Volume` whose array is a zero-stride (z, y, x) view of zeros, with
    origin (mm, LPS, centre of the first slice's first voxel), spacing (x, y, z) in mm (z: the
    median gap between slice positions) and direction cosines — the grid GDCM reads the series
    onto. Uneven or duplicate slice positions are refused as :func:`pipeline.io.readers.read_dicom_series`
    refuses them."""
    from pipeline.core.volume import Volume

    if series.n_slices < 3:
        raise DicomError(f"{role}: the DICOM series has only {series.n_slices} slice(s); a 3-D CT needs more")
    first = series.headers[0]
    try:
        iop = np.asarray([float(v) for v in first.ImageOrientationPatient], dtype=float)
        row_mm, col_mm = (float(v) for v in first.PixelSpacing)  # (row spacing = y, column spacing = x)
        rows, cols = int(first.Rows), int(first.Columns)
        positions = np.asarray([_position_along_normal(h) for h in series.headers])
        origin = tuple(float(v) for v in first.ImagePositionPatient)
    except (AttributeError, ValueError, TypeError, IndexError):
        raise DicomError(f"{role}: DICOM slices lack readable position, orientation or spacing tags") from None
    gaps = np.diff(positions)
    if np.any(gaps <= 1e-6):
        raise DicomError(f"{role}: DICOM series has {int(np.sum(gaps <= 1e-6))} duplicate slice position(s)")
    gap = float(np.median(gaps))
    if np.max(np.abs(gaps - gap)) > spacing_tolerance * gap + 1e-3:
        raise DicomError(f"{role}: DICOM slice spacing is not uniform (gaps from {gaps.min():.3g} to "
                         f"{gaps.max():.3g} mm; missing slices or a mixed series); export an evenly spaced series")
    normal = np.cross(iop[:3], iop[3:])
    direction = tuple(np.column_stack([iop[:3], iop[3:], normal]).reshape(-1))
    shape = (series.n_slices, rows, cols)
    return Volume(np.broadcast_to(np.zeros((), np.uint8), shape), spacing_xyz=(col_mm, row_mm, gap),
                  origin_xyz=origin, direction=direction)
