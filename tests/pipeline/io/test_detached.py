"""Header-driven file access (issue 15, item 1) and input identity of detached data (item 5).

An NRRD or MetaImage header names its voxel data file; whatever the header's length or layout,
the reader must never open a file outside the header's own folder, the upload check must see
such a header however long it is, and every hash that identifies an input (resume key, audit
log) must change when the detached data change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.core.errors import ImageReadError
from pipeline.core.hashing import path_sha256
from pipeline.inputs.cohort import CaseInput
from pipeline.io.archive import UploadFolder, storage_suffix
from pipeline.io.detached import data_files, input_sha256
from pipeline.io.readers import read_image, read_image_hashed
from pipeline.serving.batch import input_key

SECRET = b"another patient's voxels \x00\x01" * 40  # 1040 bytes: a 13x10x4 int16 image


def _header(folder: Path, kind: str, data_line: str, *, pad: str = "", newline: str = "\n", first: str = "") -> Path:
    if kind in ("nrrd", "nhdr"):
        text = (f"NRRD0004{newline}{pad}type: short{newline}dimension: 3{newline}sizes: 13 10 4{newline}"
                f"encoding: raw{newline}endian: little{newline}{data_line}{newline}")
    else:
        text = (f"{first}ObjectType = Image{newline}NDims = 3{newline}{pad}DimSize = 13 10 4{newline}"
                f"ElementType = MET_SHORT{newline}{data_line}{newline}")
    path = folder / f"ct.{kind}"
    path.write_bytes(text.encode())
    return path


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "server" / "other_patient.raw"
    outside.parent.mkdir()
    outside.write_bytes(SECRET)
    (tmp_path / "case").mkdir()
    return outside


ATTACKS = [  # (kind, data line, options): all name the secret outside the case folder
    ("nhdr", "data file: {abs}", {}),
    ("nhdr", "data file: {abs}", {"pad": "#" * 9000 + "\n"}),  # past any fixed-size sniffing
    ("nrrd", "Data File: ../server/other_patient.raw", {"newline": "\r"}),
    ("nhdr", "datafile: {abs}", {"newline": "\r\n"}),
    ("mhd", "ElementDataFile = {abs}", {}),
    ("mha", "ElementDataFile: {abs}", {"first": "Comment = x\n"}),
    ("mha", "  ElementDataFile\t=\t../server/other_patient.raw", {"pad": "Comment = " + "y" * 9000 + "\n"}),
    ("mhd", "ElementDataFile = {abs}", {"first": "Comment = x\rElementDataFile = LOCAL\n"}),
]


@pytest.mark.parametrize("kind, line, options", ATTACKS, ids=[f"{k}-{i}" for i, (k, _l, _o) in enumerate(ATTACKS)])
def test_no_header_makes_the_reader_open_a_file_outside_its_folder(tmp_path: Path, secret: Path, kind: str,
                                                                   line: str, options: dict) -> None:
    header = _header(tmp_path / "case", kind, line.format(abs=secret), **options)
    with pytest.raises(ImageReadError) as err:
        read_image(header, role="CT")
    message = str(err.value)
    assert "outside the header's own folder" in message
    assert str(secret) not in message and "patient" not in message, "no path, no byte of the pointed file"


def test_a_symlink_beside_the_header_leading_outside_is_refused(tmp_path: Path, secret: Path) -> None:
    (tmp_path / "case" / "ct.raw").symlink_to(secret)
    header = _header(tmp_path / "case", "nhdr", "data file: ct.raw")
    with pytest.raises(ImageReadError, match="outside the header's own folder"):
        read_image(header, role="CT")


@pytest.mark.parametrize("line", ["data file: LIST 2", "data file: slice%03d.raw 1 4 1 2", "data file: s.raw 1 4 1"])
def test_file_lists_and_patterns_are_refused(tmp_path: Path, secret: Path, line: str) -> None:
    header = _header(tmp_path / "case", "nhdr", line)
    with pytest.raises(ImageReadError, match="spreads the voxel data over several files"):
        read_image(header, role="CT")


def _detached_pair(folder: Path, suffix: str, values: np.ndarray) -> Path:
    folder.mkdir(exist_ok=True)
    header = folder / f"ct{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(header), False)
    return header


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_data_beside_the_header_is_read_and_every_hash_covers_it(tmp_path: Path, suffix: str) -> None:
    """Item 5: replacing the .raw changes the audit hash and the batch resume key."""
    values = np.arange(4 * 10 * 13, dtype=np.int16).reshape(4, 10, 13) - 1000
    header = _detached_pair(tmp_path / "case", suffix, values)
    (raw,) = data_files(header, role="CT")
    assert raw.parent == header.parent.resolve() and raw.suffix == ".raw"
    volume, audit_hash = read_image_hashed(header, role="CT")
    np.testing.assert_array_equal(volume.array, values)
    case = CaseInput("P1", str(header), str(header), None)
    key, ct_sha, _ = input_key(case, "model", None)
    assert audit_hash == ct_sha == input_sha256(header) != path_sha256(header), "header + data, not the header alone"

    raw.write_bytes(np.ascontiguousarray(values[::-1]).tobytes())  # same size, other voxels
    volume2, audit_hash2 = read_image_hashed(header, role="CT")
    np.testing.assert_array_equal(volume2.array, values[::-1])
    assert audit_hash2 != audit_hash
    assert input_key(case, "model", None)[0] != key, "a changed .raw is scored again, not 'already done'"


@pytest.mark.parametrize("name, text", [
    ("ct.nrrd", "NRRD0004\ntype: short\nsizes: 1 1 1\n" + "#" * 5000 + "\ndata file: /etc/hostname\n"),
    ("ct.mha", "Comment = x\nObjectType = Image\nNDims = 3\nElementDataFile = /etc/hostname\n"),
    ("ct.mha", "ObjectType = Image\n" + "Comment = " + "z" * 8000 + "\nElementDataFile=/etc/hostname\n"),
])
def test_upload_check_sees_a_detached_header_however_long(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(ImageReadError, match="voxel data live in a separate file"):
        storage_suffix(text.encode(), name, role="CT")
    uploads = UploadFolder(parent=tmp_path)
    with pytest.raises(ImageReadError, match="voxel data live in a separate file"):
        uploads.store_image("ct", filename=name, data=text.encode())
    assert not any(p.is_file() and p.name != ".owner.json" for p in uploads.root.rglob("*")), "nothing stored"


def test_an_attached_mha_with_comments_is_still_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path), False)
    data = b"Comment = exported\n" + path.read_bytes()
    assert storage_suffix(data, "ct.mha", role="CT") == ".mha"
    path.write_bytes(data)
    assert read_image(path).shape_zyx == (4, 5, 6)
    assert data_files(path, role="CT") == ()
    assert os.path.getsize(path) > 0
