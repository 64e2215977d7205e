"""Hostile and careless inputs (issue 15) in the shape of the bad-input corpus.

Appended to :data:`bad_input_corpus.CORPUS` (and documented in its table), so each runs through
the library, the CLI, ``pleura batch`` and the app's pages like every other entry. Classes:

* header-driven file access — NRRD/MetaImage headers naming voxel data outside their folder,
  whatever the header's length, line ends, key spelling, or first line;
* geometry no CT can have — one slice, micrometre spacing, a far origin, a tumour squeezed
  below a few millimetres by the spacing (each used to fail with a message about something else);
* number formats — thousands separators (``1,000`` was read as 1.0);
* CSV structure — an unquoted decimal comma shifting a row's fields, a column given twice;
* case discovery ambiguity — two CT files for one case;
* deep JSON — a bundle manifest nested 200,000 levels deep;
* archives — a zip under the size limit that expands 1000× (a bomb by its ratio).

Inputs that do not fit the corpus' shape (resume identity, output safety, signals, the per-session
archive quota, FIFOs, DICOM series choice) have their own tests; see the issue's closing note.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.core.errors import (ArchiveError, BundleError, ClinicalValueError, CohortError, GeometryError, ImageReadError,
                             ImageShapeError, MaskError)
from pipeline.core.volume import Volume
from pipeline.io.readers import write_image

OUTSIDE = "CT: its header names a voxel data file outside the header's own folder"
UPLOAD_DETACHED = "CT: this is a header whose voxel data live in a separate file"


def _outside_raw(folder: Path, good: base.Good) -> Path:
    """The good CT's voxels as a raw file two levels above the case folder (another patient's
    data somewhere on the server, as far as the header is concerned)."""
    target = folder.parent.parent / "elsewhere" / f"{folder.name}.raw"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(np.ascontiguousarray(good.ct_vol.array.astype("<i2")).tobytes())
    return target


def _detached(suffix: str, edit: Callable[[str, Path, Path], str], *, role: str = "ct") -> Callable:
    """A case whose CT (or ROI) is an ITK-written detached header (``.nhdr``/``.mhd`` + raw) with
    its data file line rewritten by ``edit(header_text, case_folder, outside_raw)``."""
    def build(folder: Path, good: base.Good) -> tuple[Path, Path]:
        ct, roi = base._copy_good(folder, good, ct=role != "ct", roi=role != "roi")
        volume = good.ct_vol.with_array(good.ct_vol.array.astype(np.int16)) if role == "ct" else good.roi_vol
        written = folder / f"{role}{'.nhdr' if suffix in ('.nhdr', '.nrrd') else '.mhd'}"  # ITK detaches these
        sitk.WriteImage(volume.to_sitk(), str(written), False)
        (folder / f"{role}.raw").unlink()  # only the outside copy remains
        header = written.rename(folder / f"{role}{suffix}")
        outside = _outside_raw(folder, good)
        if role == "roi":
            outside.write_bytes(np.ascontiguousarray(good.roi_vol.array).tobytes())
        header.write_bytes(edit(header.read_text(), folder, outside).encode())
        return (header, roi) if role == "ct" else (ct, header)
    return build


def _nrrd_padded_absolute(text: str, _folder: Path, outside: Path) -> str:
    """Comments pad the header past 4 kB before the data file line (the upload check stopped there)."""
    head, _line = text.split("data file:")
    return head + "#" * 5000 + "\n" + f"data file: {outside}\n"


def _nrrd_cr_relative(text: str, _folder: Path, outside: Path) -> str:
    """Old-Mac line ends, capitalised key, a relative path climbing out of the folder."""
    head, _line = text.split("data file:")
    return (head + f"Data File: ../../elsewhere/{outside.name}\n").replace("\n", "\r")


def _nrrd_list(text: str, _folder: Path, outside: Path) -> str:
    head, _line = text.split("data file:")
    return head + "data file: LIST 2\n" + "\n".join(str(outside) for _ in range(32)) + "\n"


def _mha_comment_first(text: str, _folder: Path, outside: Path) -> str:
    """First line 'Comment = x' (not a MetaImage key the sniffer knew), key spelt with ':'."""
    head, _line = text.split("ElementDataFile")
    return "Comment = x\n" + head + f"ElementDataFile: {outside}\n"


def _one_slice(folder: Path, good: base.Good) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    z = int(np.argmax(good.roi_vol.array.sum(axis=(1, 2))))
    ct = write_image(good.ct_vol.with_array(np.ascontiguousarray(good.ct_vol.array[z:z + 1])), folder / "ct.nii.gz")
    roi = write_image(good.roi_vol.with_array(np.ascontiguousarray(good.roi_vol.array[z:z + 1])), folder / "roi.nii.gz")
    return ct, roi


def _regridded(spacing_xyz: tuple[float, float, float] | None = None,
               origin_xyz: tuple[float, float, float] | None = None) -> Callable:
    """The good CT and ROI with the same voxels but another spacing/origin in both headers."""
    def build(folder: Path, good: base.Good) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for volume, name in ((good.ct_vol, "ct"), (good.roi_vol, "roi")):
            moved = Volume(volume.array, spacing_xyz=spacing_xyz or volume.spacing_xyz,
                           origin_xyz=origin_xyz or volume.origin_xyz, direction=volume.direction)
            paths.append(write_image(moved, folder / f"{name}.nii.gz"))
        return paths[0], paths[1]
    return build


def _raw_row(text: str) -> Callable[[Path, base.Good], dict[str, str]]:
    """A case (good images) whose clinical CSV row is written verbatim after its case id."""
    def build(folder: Path, good: base.Good) -> dict[str, str]:
        base._copy_good(folder, good)
        return {**base.GOOD_CLINICAL, "raw": text}
    return build


def _two_cts(folder: Path, good: base.Good) -> dict[str, str]:
    base._copy_good(folder, good)
    write_image(good.ct_vol, folder / "ct.nrrd")
    return dict(base.GOOD_CLINICAL)


def _upload_header(name: str, text: str) -> Callable[[Path, base.Good], tuple[str, bytes]]:
    return lambda _folder, _good: (name, text.encode())


_NRRD_HEAD = "NRRD0004\ntype: short\ndimension: 3\nsizes: 128 128 64\nencoding: raw\nendian: little\n"
_MHA_HEAD = "ObjectType = Image\nNDims = 3\nDimSize = 128 128 64\nElementType = MET_SHORT\n"


def _zip_of_zeros(_good: base.Good) -> bytes:
    """40 MiB of zeros (about 40 kB zipped): under the test's 50 MiB total limit."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("CT/IM0001.dcm", "w") as fh:
        for _ in range(40):
            fh.write(bytes(1024**2))
    return buf.getvalue()


def _deep_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)


def entries() -> list[base.BadInput]:
    import bad_input_corpus as base  # (this module may still be importing it)

    B = base.BadInput
    return [
        # header-driven file access
        B("ct_nhdr_data_file_outside", _detached(".nhdr", _nrrd_padded_absolute), ImageReadError, OUTSIDE),
        B("ct_nrrd_cr_relative_escape", _detached(".nrrd", _nrrd_cr_relative), ImageReadError, OUTSIDE),
        B("ct_mha_comment_line_outside", _detached(".mha", _mha_comment_first), ImageReadError, OUTSIDE),
        B("roi_mhd_data_file_outside", _detached(".mhd", _mha_comment_first, role="roi"), ImageReadError,
          "ROI mask: its header names a voxel data file outside the header's own folder"),
        B("ct_nhdr_file_list", _detached(".nhdr", _nrrd_list), ImageReadError,
          "CT: its header spreads the voxel data over several files"),
        B("upload_nrrd_long_detached",
          _upload_header("ct.nrrd", _NRRD_HEAD + "#" * 5000 + "\ndata file: /etc/hostname\n"), ImageReadError,
          UPLOAD_DETACHED, "zip"),
        B("upload_mha_comment_detached",
          _upload_header("ct.mha", "Comment = x\n" + _MHA_HEAD + "ElementDataFile = /etc/hostname\n"),
          ImageReadError, UPLOAD_DETACHED, "zip"),
        # geometry no CT can have
        B("ct_one_slice", _one_slice, ImageShapeError, "CT has only 1 slice along z"),
        B("ct_spacing_micrometres", _regridded(spacing_xyz=(0.001, 0.001, 0.001)), GeometryError,
          "CT voxel spacing 0.001 × 0.001 × 0.001 mm (x × y × z) is not one a CT can have"),
        B("ct_origin_far", _regridded(origin_xyz=(1e20, 1e20, 1e20)), GeometryError,
          "CT origin (1e+20, 1e+20, 1e+20 mm) is implausibly far"),
        B("ct_spacing_squeezes_tumour", _regridded(spacing_xyz=(0.1, 0.1, 10.0)), MaskError,
          "with the CT's voxel spacing of 0.1 × 0.1 × 10 mm: less than 3 mm along an axis"),
        # number formats
        B("clin_thousands_separator", base._clinical(ca125="1,000"), ClinicalValueError,
          "CA125 '1,000' is ambiguous: the comma may separate thousands (1000) or decimals (1)", "clinical"),
        B("clin_grouped_digits", base._clinical(cea="12 500"), ClinicalValueError,
          "CEA '12 500' seems to contain a thousands separator", "clinical"),
        B("row_thousands_separator", base._row(CA125="1,000"), ClinicalValueError,
          "CA125 '1,000' is ambiguous", "row"),
        # CSV structure
        B("row_unquoted_decimal_comma", _raw_row("4,1,18,66"), ClinicalValueError,
          "has 5 fields for 4 columns (a decimal comma without quotes?)", "row"),
        B("csv_column_twice", base._cohort_csv(b"case_id,CEA,CA125,age,Age\nP1,3,10,60,61\n"), CohortError,
          "clinical CSV has the column age more than once (age and Age)", "cohort"),
        # case discovery ambiguity
        B("row_two_ct_files", _two_cts, CohortError, "2 CT images found for this case (.nii.gz, .nrrd)", "row"),
        # deep JSON
        B("bundle_manifest_deeply_nested", base._bundle(_deep_manifest), BundleError,
          "manifest.json is not valid JSON", "bundle"),
        # archives: under the size limit, but a thousand times its own size
        B("zip_expands_1000x", base._upload("ct.zip", _zip_of_zeros), ArchiveError,
          "the CT zip expands to more than 100 times its own size", "zip"),
    ]


def write_clinical_row(writer_fh, case_id: str, row: dict[str, str], *, newline: str = "\r\n") -> bool:  # noqa: ANN001
    """Write a row given as ``{"raw": text}`` verbatim (``case_id,text``); ``False`` for other rows."""
    if "raw" not in row:
        return False
    writer_fh.write(f"{case_id},{row['raw']}{newline}")
    return True


# at the end: bad_input_corpus imports this module at its own end (either may be imported first)
import bad_input_corpus as base  # noqa: E402
