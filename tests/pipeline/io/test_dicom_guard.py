"""The DICOM structure check that runs before GDCM opens any file (pipeline.io.dicom_guard)."""

from __future__ import annotations

import locale
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.dicom_guard import NOT_DICOM, dicom_file_problem
from pipeline.core.errors import DicomError
from pipeline.io.readers import read_dicom_series

META_TS = "1.2.840.10008.1.2.1"  # explicit VR little endian


def _element(group: int, element: int, vr: bytes, value: bytes, *, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH", group, element) + vr + b"\0\0" + struct.pack("<I", n) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", n) + value


def _file(dataset: bytes, ts: str = META_TS) -> bytes:
    uid = ts.encode() + (b"\0" if len(ts) % 2 else b"")
    meta = _element(0x0002, 0x0010, b"UI", uid)
    return b"\0" * 128 + b"DICM" + _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta))) + meta + dataset


def test_sound_files_pass_and_other_files_are_not_dicom():
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 8 + 6) + _element(0x0008, 0x0100, b"SH", b"ABCDEF")
    nested = _element(0x0008, 0x1140, b"SQ", item)
    undefined = (struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF) + item
                 + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    pixels = _element(0x7FE0, 0x0010, b"OW", np.arange(16, dtype=np.int16).tobytes())
    assert dicom_file_problem(_file(_element(0x0008, 0x0060, b"CS", b"CT") + nested + undefined + pixels)) is None
    assert dicom_file_problem(b"id,value\n1,2\n" * 20) == NOT_DICOM
    assert dicom_file_problem(b"") == NOT_DICOM


@pytest.mark.parametrize("dataset, words", [
    (_element(0x0008, 0x0060, b"UT", b"CT", length=0xFFFFFFF0), "claims 4,294,967,280 bytes"),
    (_element(0x0008, 0x0060, b"CS", b"CT", length=900), "claims 900 bytes"),
    (_element(0x0008, 0x0008, b"CS", b"AXIAL ") + struct.pack("<HH", 0x0008, 0x0060) + b"U.\0\0"
     + struct.pack("<I", 10**9), "element (0008,0060) has an unknown value representation"),
    (struct.pack("<HH", 0x0008, 0x0060) + b"CS", "truncated element header"),
    (_element(0x0008, 0x1140, b"SQ", struct.pack("<HHI", 0xFFFE, 0xE000, 10**6)), "an item claims 1,000,000 bytes"),
])
def test_an_element_or_item_longer_than_the_file_is_reported(dataset: bytes, words: str):
    problem = dicom_file_problem(_file(dataset))
    assert problem is not None and words in problem


def test_implicit_vr_data_set_is_walked_in_implicit_vr():
    implicit = struct.pack("<HHI", 0x0008, 0x0060, 2) + b"CT"
    assert dicom_file_problem(_file(implicit, ts="1.2.840.10008.1.2")) is None
    bomb = struct.pack("<HHI", 0x0008, 0x0060, 0xFFFFFFF0) + b"CT"
    assert "claims" in dicom_file_problem(_file(bomb, ts="1.2.840.10008.1.2"))
    # implicit VR written under an explicit transfer syntax (GDCM reads it as implicit): accepted
    assert dicom_file_problem(_file(implicit)) is None


def test_deflated_transfer_syntax_is_refused():
    assert "deflate" in dicom_file_problem(_file(b"", ts="1.2.840.10008.1.2.1.99"))


def test_a_damaged_slice_refuses_the_folder_before_gdcm_reads_it(tmp_path: Path):
    """The fuzzer's case: GDCM allocated the claimed length (about 0.75 GB for a 1 KB file)."""
    import SimpleITK as sitk

    folder = tmp_path / "ct"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to "C"
    for k in range(4):
        image = sitk.GetImageFromArray(np.full((8, 8), k, np.int16))
        for tag, value in {"0008|0060": "CT", "0020|000d": "1.2.3.0", "0020|000e": "1.2.3", "0008|0018": f"1.2.3.{k + 1}",
                           "0020|0032": f"0\\0\\{k}", "0020|0037": "1\\0\\0\\0\\1\\0"}.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{k}.dcm"))
        writer.Execute(image)
    locale.setlocale(locale.LC_ALL, saved_locale)
    (folder / "README.txt").write_text("not DICOM: left out, not an error\n")
    assert read_dicom_series(folder).shape_zyx == (4, 8, 8)
    victim = folder / "s2.dcm"
    data = bytearray(victim.read_bytes())
    at = data.index(b"\x02\x00\x10\x00UI")
    data[at + 4:at + 12] = b"U.\x00\x00" + struct.pack("<I", 0xFFFFFFF0)
    victim.write_bytes(bytes(data))
    with pytest.raises(DicomError, match=r"CT: a DICOM file in the folder is damaged \(element \(0002,0010\) has an "
                                         r"unknown value representation\); export the series again"):
        read_dicom_series(folder)
