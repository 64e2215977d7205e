"""Uploads: content sniffing, safe unzipping (traversal, symlinks, bombs), the session folder."""

from __future__ import annotations

import gc
import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.io.archive import ArchiveLimits, UploadFolder, safe_extract_zip, sniff, storage_suffix
from pipeline.core.errors import ArchiveError, ImageReadError
from pipeline.io.readers import read_image

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(200)
PDF = b"%PDF-1.7\n" + bytes(200)


def _nifti_bytes(tmp_path: Path, suffix: str = ".nii.gz") -> bytes:
    img = sitk.GetImageFromArray(np.full((6, 7, 8), -700, np.int16))
    img.SetSpacing((0.8, 0.8, 2.0))
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(img, str(path))
    return path.read_bytes()


def _zip(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_sniff_recognises_images_pictures_and_documents(tmp_path: Path) -> None:
    assert sniff(_nifti_bytes(tmp_path)[:4096]) == "nifti.gz"
    assert sniff(_nifti_bytes(tmp_path, ".nii")[:4096]) == "nifti"
    assert sniff(b"NRRD0004\ntype: short\n") == "nrrd"
    assert sniff(b"ObjectType = Image\nNDims = 3\n") == "metaimage"
    assert sniff(_zip({"a.txt": b"x"})) == "zip"
    assert sniff(bytes(128) + b"DICM" + bytes(100)) == "dicom"
    assert (sniff(PNG), sniff(JPEG), sniff(PDF)) == ("png", "jpeg", "pdf")


@pytest.mark.parametrize(("data", "what"), [(PNG, "PNG picture"), (JPEG, "JPEG picture"), (PDF, "PDF document")])
def test_pictures_and_documents_uploaded_as_ct_are_refused_clearly(data: bytes, what: str) -> None:
    with pytest.raises(ImageReadError, match=f"CT: this file is a {what}, not a 3-D image"):
        storage_suffix(data, "scan.nii.gz", role="CT")


def test_content_decides_the_suffix_not_the_name(tmp_path: Path) -> None:
    assert storage_suffix(_nifti_bytes(tmp_path), "download(1).bin", role="CT") == ".nii.gz"
    with pytest.raises(ImageReadError, match="not a valid .nii.gz image"):
        storage_suffix(b"hello, this is text", "ct.nii.gz", role="CT")
    with pytest.raises(ImageReadError, match="single DICOM file"):
        storage_suffix(bytes(128) + b"DICM" + bytes(100), "IM0001.dcm", role="CT")
    with pytest.raises(ImageReadError, match="separate file"):
        storage_suffix(b"NRRD0004\ntype: short\ndata file: ct.raw\n", "ct.nhdr", role="CT")


@pytest.mark.parametrize("bad_name", ["../evil.txt", "cases/../../evil.txt", "/etc/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_zip_entries_leaving_the_folder_are_refused(tmp_path: Path, bad_name: str) -> None:
    dest = tmp_path / "out" / "x"
    with pytest.raises(ArchiveError, match="refused for safety"):
        safe_extract_zip(_zip({"ok.txt": b"fine", bad_name: b"pwned"}), dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="symbolic link"):
        safe_extract_zip(_zip({"a.txt": b"x"}, symlink="link"), tmp_path / "out")


def test_zip_limits_on_entries_and_decompressed_size(tmp_path: Path) -> None:
    many = _zip({f"f{i}.txt": b"x" for i in range(30)})
    with pytest.raises(ArchiveError, match="30 entries"):
        safe_extract_zip(many, tmp_path / "a", limits=ArchiveLimits(max_files=10))
    bomb = _zip({"zeros.bin": bytes(5_000_000)})  # compresses to a few kB
    assert len(bomb) < 20_000
    with pytest.raises(ArchiveError, match="limit"):
        safe_extract_zip(bomb, tmp_path / "b", limits=ArchiveLimits(max_total_bytes=1_000_000))
    assert not (tmp_path / "b").exists()


def test_zip_with_lying_sizes_stops_at_the_limit(tmp_path: Path) -> None:
    data = bytearray(_zip({"zeros.bin": bytes(3_000_000)}))
    # forge the declared uncompressed size (central directory) to 10 bytes
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError):
        safe_extract_zip(bytes(data), tmp_path / "c", limits=ArchiveLimits(max_total_bytes=1_000_000))


def test_encrypted_and_broken_zips_are_refused(tmp_path: Path) -> None:
    data = bytearray(_zip({"a.txt": b"secret"}))
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 0x1  # "encrypted" flag in the central directory
    with pytest.raises(ArchiveError, match="encrypted"):
        safe_extract_zip(bytes(data), tmp_path / "d")
    with pytest.raises(ArchiveError, match="not a valid zip"):
        safe_extract_zip(b"PK\x03\x04 truncated", tmp_path / "e")
    with pytest.raises(ArchiveError, match="no files"):
        safe_extract_zip(_zip({"__MACOSX/._a": b"x", "dir/.DS_Store": b"x"}), tmp_path / "f")


def test_good_zip_is_extracted_with_folders(tmp_path: Path) -> None:
    out = safe_extract_zip(_zip({"series/IM1": b"1", "series/sub/IM2": b"22", "__MACOSX/junk": b"x"}), tmp_path / "g")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["series/IM1", "series/sub/IM2"]


def test_upload_folder_stores_under_fixed_names_and_reuses_tokens(tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    nifti = _nifti_bytes(tmp_path)
    ct = uploads.store_image("ct", filename="Doe_John_CT.nii.gz", data=nifti, token="t1")
    assert ct.name == "ct.nii.gz" and "Doe" not in str(ct)
    assert read_image(ct, role="CT").shape_zyx == (6, 7, 8)
    # same token → same file, bytes not even looked at
    assert uploads.store_image("ct", filename="x", data=b"", token="t1") == ct
    assert uploads.lookup("ct", "t1") == ct and uploads.lookup("ct", "other") is None
    # a new upload replaces the old one
    ct2 = uploads.store_image("ct", filename="y.nii", data=_nifti_bytes(tmp_path, ".nii"), token="t2")
    assert ct2.name == "ct.nii" and not ct.exists()
    uploads.clear("ct")
    assert not ct2.exists() and uploads.path("ct") is None


def test_upload_folder_remembers_rejections(tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    with pytest.raises(ImageReadError, match="PNG"):
        uploads.store_image("ct", filename="a.png", data=PNG, token="bad")
    with pytest.raises(ImageReadError, match="PNG"):
        uploads.lookup("ct", "bad")
    with pytest.raises(ImageReadError, match="empty"):
        uploads.store_image("roi", filename="r.nii.gz", data=b"", token="e")


def test_zipped_single_image_and_dicom_style_folders(tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    single = uploads.store_image("ct", filename="ct.zip", data=_zip({"wrapped/ct.nii.gz": _nifti_bytes(tmp_path)}))
    assert single.name == "ct.nii.gz" and single.is_file()
    series = uploads.store_image("roi", filename="series.zip", data=_zip({"s/IM1": b"a", "s/IM2": b"b"}))
    assert series.is_dir()
    with pytest.raises(ArchiveError, match="refused for safety"):
        uploads.store_image("ct", filename="ct.zip", data=_zip({"../x": b"a"}))


def test_upload_folder_is_removed_on_cleanup_and_when_dropped(tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path)
    root = uploads.root
    uploads.store_file("clinical", suffix=".csv", data=b"case_id,CEA,CA125,age\n")
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    uploads.cleanup()
    assert not root.exists()
    dropped = UploadFolder(parent=tmp_path)
    root2 = dropped.root
    del dropped
    gc.collect()
    assert not root2.exists()


def _dicom_zip(hu: np.ndarray, spacing_xyz: tuple[float, float, float]) -> bytes:
    """A zipped CT series: one DICOM file per slice under ``study/series/`` (HU stored with
    RescaleIntercept −1024, as scanners do)."""
    import locale
    import tempfile

    uid = "1.2.826.0.1.3680043.2.1125.99.7"
    buf = io.BytesIO()
    saved = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process locale to "C"
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as zf:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(hu.shape[0]):
            img = sitk.GetImageFromArray(hu[k])
            img.SetSpacing(spacing_xyz[:2])
            for tag, value in {"0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
                               "0008|0018": f"{uid}.{k + 1}", "0020|000d": f"{uid}.0", "0020|000e": uid,
                               "0020|0032": f"0\\0\\{k * spacing_xyz[2]}", "0020|0037": "1\\0\\0\\0\\1\\0",
                               "0020|0013": str(k + 1), "0028|1052": "-1024", "0028|1053": "1"}.items():
                img.SetMetaData(tag, value)
            path = Path(tmp) / f"IM{k:04d}.dcm"
            writer.SetFileName(str(path))
            writer.Execute(img)
            zf.write(path, f"study/series/IM{k:04d}")  # DICOM files often have no suffix
    locale.setlocale(locale.LC_ALL, saved)
    return buf.getvalue()


def test_zipped_dicom_series_becomes_a_readable_ct(tmp_path: Path) -> None:
    hu = np.random.default_rng(4).integers(-1000, 300, (5, 9, 11)).astype(np.int16)
    uploads = UploadFolder(parent=tmp_path)
    folder = uploads.store_image("ct", filename="export.zip", data=_dicom_zip(hu, (0.7, 0.7, 2.5)), token="d")
    assert folder.is_dir()
    ct = read_image(folder, role="CT")
    assert ct.shape_zyx == (5, 9, 11) and ct.spacing_xyz == pytest.approx((0.7, 0.7, 2.5))
    np.testing.assert_array_equal(ct.array, hu)
