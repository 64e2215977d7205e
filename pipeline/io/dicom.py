"""DICOM series folders: every file structure-checked (:mod:`pipeline.io.dicom_guard`) before
GDCM opens it, then the series with the most slices read as one evenly spaced 3-D volume in HU.

Arrays are (z, y, x); spacing/origin ITK (x, y, z), millimetres, LPS.
"""


from __future__ import annotations

import mmap
import os
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
                      spacing_tolerance: float = 0.01) -> Volume:
    """Read the DICOM series with the most slices found under ``folder``.

    Slices are ordered by position along the slice normal; the gaps between consecutive slices
    must agree within ``spacing_tolerance`` (relative), otherwise the series is refused (missing
    slices or uneven spacing would silently distort every 3-D measurement).
    """
    with tempfile.TemporaryDirectory(prefix="pleura-dicom-") as staging:
        return _read_dicom_series(_checked_dicom_files(Path(folder), Path(staging), role=role), role=role,
                                  max_voxels=max_voxels, spacing_tolerance=spacing_tolerance)


def _checked_dicom_files(folder: Path, staging: Path, *, role: str) -> Path:
    """Link every DICOM file under ``folder`` whose structure is sound into ``staging`` (same
    sub-folders) and return ``staging``, so GDCM never opens a file that could make it allocate
    more than the file holds (:mod:`pipeline.io.dicom_guard`). Files without a DICOM preamble are
    left out; a damaged DICOM file refuses the folder."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            try:
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


def _read_dicom_series(folder: Path, *, role: str, max_voxels: int, spacing_tolerance: float) -> Volume:
    candidates: list[tuple[int, str, list[str]]] = []
    for dirpath, _dirs, _files in os.walk(folder):
        try:
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath)
        except RuntimeError:
            continue
        for sid in ids:
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, sid))
            candidates.append((len(files), sid, files))
    if not candidates:
        raise DicomError(f"{role}: no DICOM image series found in the folder")
    n_files, _sid, files = max(candidates, key=lambda c: c[0])
    if sum(1 for c in candidates if c[0] == n_files) > 1:
        raise DicomError(
            f"{role}: the folder holds several DICOM series of {n_files} slices each and it is unclear which "
            "one to use; put only the series the ROI was drawn on in the folder"
        )
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
