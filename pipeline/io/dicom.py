"""DICOM series folders: every file structure-checked (:mod:`pipeline.io.dicom_guard`) before
GDCM opens it, then the series with the most slices read as one evenly spaced 3-D volume in HU.

Arrays are (z, y, x); spacing/origin ITK (x, y, z), millimetres, LPS.
"""


from __future__ import annotations

import mmap
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.core.errors import DicomError
from pipeline.core.volume import Volume
from pipeline.io.common import DEFAULT_MAX_VOXELS, check_header
from pipeline.io.dicom_guard import NOT_DICOM, dicom_file_problem


def _slice_positions(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each slice along the slice normal (mm) and the normal itself."""
    positions, normal = [], None
    reader = sitk.ImageFileReader()
    for f in files:
        reader.SetFileName(f)
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()
        ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
        if normal is None:
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
            normal = np.cross(iop[:3], iop[3:])
        positions.append(float(np.dot(normal, ipp)))
    return np.asarray(positions), np.asarray(normal)


def read_dicom_series(folder: str | os.PathLike[str], *, role: str = "CT", max_voxels: int = DEFAULT_MAX_VOXELS,
                      spacing_tolerance: float = 0.01, series: str | None = None,
                      notes: list[str] | None = None) -> Volume:
    """Read the DICOM series ``series`` (a SeriesInstanceUID) found under ``folder``, or without
    one the series with the most slices.

    Slices are ordered by position along the slice normal; the gaps between consecutive slices
    must agree within ``spacing_tolerance`` (relative), otherwise the series is refused (missing
    slices or uneven spacing would silently distort every 3-D measurement). When the folder holds
    several series and none was chosen, a sentence saying which one was used (its UID and slice
    count, and the others') is appended to ``notes``: a ROI drawn on another series would
    otherwise be resampled onto the wrong scan, or another patient's.
    """
    with tempfile.TemporaryDirectory(prefix="pleura-dicom-") as staging:
        return _read_dicom_series(_checked_dicom_files(Path(folder), Path(staging), role=role), role=role,
                                  max_voxels=max_voxels, spacing_tolerance=spacing_tolerance, series=series,
                                  notes=notes)


def dicom_series_in(folder: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """(SeriesInstanceUID, slices) of every DICOM series under ``folder``, most slices first
    (for a choice offered to the user; no other tag is read)."""
    with tempfile.TemporaryDirectory(prefix="pleura-dicom-") as staging:
        found = _series_candidates(_checked_dicom_files(Path(folder), Path(staging), role="CT"))
    return sorted(((sid, n) for n, sid, _files in found), key=lambda c: (-c[1], c[0]))


def _series_candidates(folder: Path) -> list[tuple[int, str, list[str]]]:
    candidates: list[tuple[int, str, list[str]]] = []
    for dirpath, _dirs, _files in os.walk(folder):
        try:
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath)
        except RuntimeError:
            continue
        for sid in ids:
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, sid))
            candidates.append((len(files), sid, files))
    return candidates


def _checked_dicom_files(folder: Path, staging: Path, *, role: str) -> Path:
    """Link every DICOM file under ``folder`` whose structure is sound into ``staging`` (same
    sub-folders) and return ``staging``, so GDCM never opens a file that could make it allocate
    more than the file holds (:mod:`pipeline.io.dicom_guard`). Files without a DICOM preamble are
    left out; a damaged DICOM file refuses the folder."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            try:
                if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
                    continue
                problem = dicom_problem_of(path)
            except (OSError, ValueError):
                problem = "unreadable"
            if problem == NOT_DICOM:
                continue
            if problem is not None:
                raise DicomError(f"{role}: a DICOM file in the folder is damaged ({problem}); export the series again")
            link = staging / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return staging


def dicom_problem_of(path: Path) -> str | None:
    """:func:`dicom_file_problem` of a file, mapped rather than read: only the pages holding
    element headers are touched, so a slice's pixel data is not read here and again by GDCM."""
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return NOT_DICOM
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return dicom_file_problem(view)


def _describe(candidates: list[tuple[int, str, list[str]]]) -> str:
    return "; ".join(f"{sid} ({n} slices)" for n, sid, _f in sorted(candidates, key=lambda c: (-c[0], c[1])))


def _read_dicom_series(folder: Path, *, role: str, max_voxels: int, spacing_tolerance: float,
                       series: str | None = None, notes: list[str] | None = None) -> Volume:
    candidates = _series_candidates(folder)
    if not candidates:
        raise DicomError(f"{role}: no DICOM image series found in the folder")
    if series is not None:
        chosen = [c for c in candidates if c[1] == series.strip()]
        if not chosen:
            raise DicomError(f"{role}: the folder holds no DICOM series with the chosen UID; it holds "
                             f"{_describe(candidates)}")
        candidates = chosen
    n_files, sid, files = max(candidates, key=lambda c: c[0])
    if sum(1 for c in candidates if c[0] == n_files) > 1:
        raise DicomError(
            f"{role}: the folder holds several DICOM series of {n_files} slices each and it is unclear which "
            "one to use; put only the series the ROI was drawn on in the folder, or choose one (--series UID, or the "
            "series box in the app)"
        )
    if len(candidates) > 1 and notes is not None:
        others = _describe([c for c in candidates if c[1] != sid])
        notes.append(f"the {role} folder holds {len(candidates)} DICOM series; used {sid} ({n_files} slices), not "
                     f"{others}: if the ROI was drawn on another series, choose it (--series UID, or the series "
                     "box in the app)")
    if n_files < 3:
        raise DicomError(f"{role}: the largest DICOM series has only {n_files} slice(s); a 3-D CT needs more")
    try:
        positions, _normal = _slice_positions(files)
    except (RuntimeError, ValueError):
        raise DicomError(f"{role}: DICOM slices lack readable position/orientation tags") from None
    order = np.argsort(positions)
    files = [files[i] for i in order]
    gaps = np.diff(positions[order])
    if np.any(gaps <= 1e-6):
        raise DicomError(f"{role}: DICOM series has {int(np.sum(gaps <= 1e-6))} duplicate slice position(s)")
    median_gap = float(np.median(gaps))
    if np.max(np.abs(gaps - median_gap)) > spacing_tolerance * median_gap + 1e-3:
        raise DicomError(
            f"{role}: DICOM slice spacing is not uniform (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm; "
            "missing slices or a mixed series); export an evenly spaced series"
        )
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    info.ReadImageInformation()
    size = info.GetSize()
    check_header((size[0], size[1], len(files)), info.GetNumberOfComponents(), role=role, max_voxels=max_voxels)
    series = sitk.ImageSeriesReader()
    series.SetFileNames(files)
    series.MetaDataDictionaryArrayUpdateOff()
    series.LoadPrivateTagsOff()
    try:
        image = series.Execute()
    except RuntimeError:
        raise DicomError(f"{role}: the DICOM series could not be decoded (corrupt or unsupported compression)") from None
    image.SetSpacing((image.GetSpacing()[0], image.GetSpacing()[1], median_gap))
    return Volume.from_sitk(image)
