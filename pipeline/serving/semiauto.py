"""A tumour ROI from a click instead of a mask file, for ``pleura score --seed-mm`` / ``--seed-voxel``,
``pleura segment`` and a batch manifest's ``seed_mm`` column.

:func:`parse_point` reads "X,Y,Z" text (LPS mm, or an ITK voxel index I,J,K);
:func:`segment_ct` reads the CT and calls :func:`pipeline.segment.segment_from_seed`;
:func:`semiauto_roi` writes the resulting mask to a temporary NIfTI (the CT's geometry) so the
rest of scoring reads it like any mask file, and yields it with the :class:`Segmentation`, whose
``provenance()`` goes into the result (``CaseResult.roi_source``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import ConfigError, OutputError
from pipeline.core.volume import Volume
from pipeline.segment import SegmentParams, Segmentation, seed_mm_from_voxel, segment_from_seed

__all__ = ["parse_point", "segment_ct", "semiauto_roi", "check_roi_output"]

_SPLIT = re.compile(r"[,;\s]+")


def parse_point(text: object, *, what: str = "--seed-mm", integer: bool = False) -> tuple[float, float, float]:
    """Three numbers from "X,Y,Z" (commas, semicolons or spaces; brackets allowed); ``integer``:
    whole numbers (a voxel index). Raises :class:`ConfigError` naming ``what``."""
    raw = str(text).strip().strip("()[]")
    parts = [p for p in _SPLIT.split(raw) if p]
    kind = "three whole numbers I,J,K (ITK voxel index x, y, z)" if integer else "three numbers X,Y,Z in mm (LPS)"
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what} must be {kind}, got {raw[:40]!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values) or (
            integer and not all(v == int(v) for v in values)):
        raise ConfigError(f"{what} must be {kind}, got {raw[:40]!r}")
    return values  # type: ignore[return-value]


def segment_ct(ct: str | os.PathLike[str] | Volume, *, seed_mm: tuple[float, float, float] | None = None,
               seed_voxel: tuple[int, int, int] | None = None, params: SegmentParams | None = None,
               series_uid: str | None = None) -> tuple[Volume, Segmentation]:
    """Read the CT (file or DICOM folder, HU) and segment the tumour under the click (exactly one
    of ``seed_mm`` (LPS mm) or ``seed_voxel`` (ITK index i, j, k)); returns (CT, Segmentation)."""
    if (seed_mm is None) == (seed_voxel is None):
        raise ConfigError("give exactly one click: --seed-mm X,Y,Z or --seed-voxel I,J,K")
    if isinstance(ct, Volume):
        volume = ct
    else:
        from pipeline.io.readers import read_image

        volume = read_image(ct, role="CT", series=series_uid)
    if seed_voxel is not None:
        seed_mm = seed_mm_from_voxel(volume, tuple(int(v) for v in seed_voxel))  # type: ignore[arg-type]
    return volume, segment_from_seed(volume, seed_xyz_mm=seed_mm, params=params)  # type: ignore[arg-type]


@contextlib.contextmanager
def semiauto_roi(ct: str | os.PathLike[str], *, seed_mm: tuple[float, float, float] | None = None,
                 seed_voxel: tuple[int, int, int] | None = None, params: SegmentParams | None = None,
                 series_uid: str | None = None) -> Iterator[tuple[Path, Segmentation]]:
    """Segment from the click and yield (temporary ROI NIfTI path, Segmentation); the file is
    removed on exit."""
    from pipeline.io.readers import write_image

    _ct, seg = segment_ct(ct, seed_mm=seed_mm, seed_voxel=seed_voxel, params=params, series_uid=series_uid)
    with tempfile.TemporaryDirectory(prefix="pleura-semiauto-") as work:
        path = write_image(seg.mask, Path(work) / "roi-semiautomatic.nii", compress=False)
        yield Path(path), seg


def check_roi_output(out: str | os.PathLike[str], *, ct: str | os.PathLike[str]) -> Path:
    """Refuse an unusable ``--out`` for a segmented ROI before any work: it must be a mask image
    name (.nii.gz, .nii, .nrrd, .mha), not a folder, not the CT, not inside a DICOM CT folder, in
    an existing writable folder."""
    from pipeline.io.common import image_suffix

    path, ct_path = Path(out), Path(ct)
    if path.is_dir():
        raise OutputError("--out is an existing folder; give the ROI a file name, e.g. roi.nii.gz")
    if image_suffix(path) not in (".nii.gz", ".nii", ".nrrd", ".mha"):
        raise OutputError("--out must name a mask image ending in .nii.gz, .nii, .nrrd or .mha")
    if path.exists() and ct_path.exists() and path.resolve() == ct_path.resolve():
        raise OutputError("--out would overwrite the CT; choose another file name for the ROI")
    if ct_path.is_dir() and ct_path.resolve() in path.resolve().parents:
        raise OutputError("--out lies inside the CT's DICOM folder; write the ROI elsewhere")
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError("--out cannot be written: its folder does not exist or is read-only")
    return path
