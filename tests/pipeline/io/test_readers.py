"""Reading CT/ROI files: every supported format round-trips its geometry; every bad file is
refused with the right error class and a message that names the problem but never the file."""

from __future__ import annotations

import gzip
import locale
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.core.errors import DicomError, ImageReadError, ImageShapeError, ImageTooLargeError, InputError
from pipeline.io.readers import image_suffix, read_dicom_series, read_image, write_image
from pipeline.core.volume import Volume

# A file name that must never appear in an error message shown to a user.
SECRET = "DOE_JANE_19520101"

# Geometry exactly representable in float32 (NIfTI stores float32). The direction is a
# 120° rotation about (1, 1, 1) (quaternion (½, ½, ½, ½), exact in float32): x→y→z→x.
SPACING = (0.75, 0.5, 2.5)
ORIGIN = (-120.5, 35.25, -400.0)
DIRECTION = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _volume(shape_zyx: tuple[int, int, int] = (6, 7, 8), dtype: type = np.int16, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 1500, shape_zyx).astype(dtype)
    return Volume(array, spacing_xyz=SPACING, origin_xyz=ORIGIN, direction=DIRECTION)


def _assert_clean(err: pytest.ExceptionInfo, *words: str) -> None:
    """The message names the problem (all ``words``, case-insensitive) and no file or folder."""
    message = str(err.value)
    assert isinstance(err.value, InputError)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert SECRET not in message
    assert os.sep + "tmp" not in message and "pytest" not in message
    assert "\n" not in message


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_voxels_and_geometry(tmp_path: Path, suffix: str):
    vol = _volume()
    path = write_image(vol, tmp_path / f"{SECRET}_ct{suffix}")
    back = read_image(path, role="CT")
    assert back.shape_zyx == (6, 7, 8)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.spacing_xyz == SPACING
    assert back.origin_xyz == ORIGIN
    np.testing.assert_allclose(back.direction, DIRECTION, atol=1e-6)
    # the physical position of a voxel is what the user's viewer shows: it must not move
    idx = np.array([5.0, 6.0, 7.0])
    np.testing.assert_allclose(back.index_to_physical(idx), vol.index_to_physical(idx), atol=1e-4)


def test_uint8_mask_round_trip(tmp_path: Path):
    mask = Volume(np.zeros((4, 5, 6), np.uint8), spacing_xyz=SPACING)
    mask.array[1:3, 2:4, 2:5] = 1
    back = read_image(write_image(mask, tmp_path / "roi.nii.gz"), role="ROI mask")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, mask.array)


def test_image_suffix_is_case_insensitive_and_prefers_double_suffix():
    assert image_suffix("A/CT.NII.GZ") == ".nii.gz"
    assert image_suffix("ct.nii") == ".nii"
    assert image_suffix("ct.png") == ""


# -- refused files -----------------------------------------------------------------------------
def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageReadError) as err:
        read_image(tmp_path / f"{SECRET}.nii.gz", role="CT")
    _assert_clean(err, "CT", "not found")


def test_empty_file(tmp_path: Path):
    path = tmp_path / f"{SECRET}.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="ROI mask")
    _assert_clean(err, "ROI mask", "empty")


def test_unsupported_suffix_lists_the_accepted_formats(tmp_path: Path):
    path = tmp_path / f"{SECRET}.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.uint8)), str(path))
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "unsupported", "NIfTI", "NRRD", "DICOM")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_file(tmp_path: Path, suffix: str):
    # ITK's NIfTI reader zero-fills missing data without complaint: the reader must notice
    path = write_image(_volume((20, 40, 40)), tmp_path / f"{SECRET}{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "could not be read", "truncated")


def test_corrupt_nifti_gz_data(tmp_path: Path):
    path = write_image(_volume((20, 40, 40)), tmp_path / f"{SECRET}.nii.gz")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(255 - b for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "could not be read")


def test_nii_gz_that_is_plain_text(tmp_path: Path):
    path = tmp_path / f"{SECRET}.nii.gz"
    path.write_text("this is not an image\n" * 40)
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "not a valid .nii.gz")


def test_nrrd_with_garbage_header(tmp_path: Path):
    path = tmp_path / f"{SECRET}.nrrd"
    path.write_bytes(b"NRRD0004\ntype: banana\ndimension: 3\n\n" + b"\x00" * 64)
    with pytest.raises(ImageReadError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "could not be read")


def _huge_nifti_header(path: Path) -> None:
    """A NIfTI-1 header declaring 5000³ int16 voxels (250 GB) followed by no data at all."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((5000, 5000, 5000))
    header.set_zooms((1.0, 1.0, 1.0))
    header["vox_offset"] = 352
    block = header.binaryblock + b"\x00" * 4
    path.write_bytes(gzip.compress(block) if path.name.endswith(".gz") else block)


@pytest.mark.parametrize("name", [f"{SECRET}.nii", f"{SECRET}.nii.gz"])
def test_huge_header_refused_before_reading_data(tmp_path: Path, name: str):
    path = tmp_path / name
    _huge_nifti_header(path)
    assert path.stat().st_size < 1000
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as err:
        read_image(path, role="CT")
    assert time.perf_counter() - t0 < 2.0
    _assert_clean(err, "CT", "5000×5000×5000", "limit", "before decompressing")


def test_max_voxels_limit_on_a_normal_file(tmp_path: Path):
    path = write_image(_volume((4, 5, 6)), tmp_path / f"{SECRET}.nrrd")
    assert read_image(path, max_voxels=120).shape_zyx == (4, 5, 6)
    with pytest.raises(ImageTooLargeError) as err:
        read_image(path, role="CT", max_voxels=119)
    _assert_clean(err, "CT", "120", "119")


def test_two_dimensional_image(tmp_path: Path):
    path = tmp_path / f"{SECRET}.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((30, 40), np.int16)), str(path))
    with pytest.raises(ImageShapeError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "3-D", "2-D")


def _four_d(t: int) -> sitk.Image:
    frames = [sitk.GetImageFromArray(np.full((4, 5, 6), k, np.int16)) for k in range(t)]
    for f in frames:
        f.SetSpacing((0.75, 0.75, 2.5))
    return sitk.JoinSeries(frames)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_four_dimensional_image_with_several_frames(tmp_path: Path, suffix: str):
    path = tmp_path / f"{SECRET}{suffix}"
    sitk.WriteImage(_four_d(3), str(path))
    with pytest.raises(ImageShapeError) as err:
        read_image(path, role="CT")
    _assert_clean(err, "CT", "3-D", "4-D")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_four_dimensional_image_with_one_frame_is_accepted(tmp_path: Path, suffix: str):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(_four_d(1), str(path))
    vol = read_image(path, role="CT")
    assert vol.shape_zyx == (4, 5, 6)
    assert vol.spacing_xyz == (0.75, 0.75, 2.5)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_rgb_or_vector_image_refused(tmp_path: Path, suffix: str):
    channels = [sitk.GetImageFromArray(np.full((4, 5, 6), k, np.uint8)) for k in range(3)]
    path = tmp_path / f"{SECRET}{suffix}"
    sitk.WriteImage(sitk.Compose(channels), str(path))
    with pytest.raises(ImageShapeError) as err:
        read_image(path, role="ROI mask")
    _assert_clean(err, "ROI mask", "3 components", "scalar")


# -- DICOM -------------------------------------------------------------------------------------
SERIES_UID = "1.2.826.0.1.3680043.2.1125.77.1"
DICOM_SPACING = (0.75, 0.75, 2.5)
DICOM_ORIGIN = (-18.0, -12.5, -40.0)


def _write_dicom_series(folder: Path, hu: np.ndarray, *, uid: str = SERIES_UID, skip: tuple[int, ...] = (),
                        z_positions: list[float] | None = None, prefix: str = "IM") -> None:
    """One CT slice file per z (int16 HU in memory; the files store HU + 1024 with
    RescaleIntercept −1024, as scanners do)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to "C"
    for k in range(hu.shape[0]):
        if k in skip:
            continue
        z = DICOM_ORIGIN[2] + k * DICOM_SPACING[2] if z_positions is None else z_positions[k]
        image = sitk.GetImageFromArray(hu[k])
        image.SetSpacing(DICOM_SPACING[:2])
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{uid}.{k + 1}",
            "0020|000d": f"{uid}.0",
            "0020|000e": uid,
            "0020|0032": f"{DICOM_ORIGIN[0]}\\{DICOM_ORIGIN[1]}\\{z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0013": str(k + 1),
            "0028|1052": "-1024",
            "0028|1053": "1",
            "0018|0050": str(DICOM_SPACING[2]),
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:04d}.dcm"))
        writer.Execute(image)
    locale.setlocale(locale.LC_ALL, saved_locale)


def _hu(n_slices: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 400, (n_slices, 10, 12)).astype(np.int16)


def test_dicom_series_read_in_hu_with_slice_spacing(tmp_path: Path):
    hu = _hu()
    folder = tmp_path / SECRET
    _write_dicom_series(folder, hu)
    # the files really store scanner values (HU + 1024): the HU come from the rescale tags
    stored = np.frombuffer((folder / "IM0002.dcm").read_bytes()[-hu[2].nbytes:], dtype=np.int16)
    np.testing.assert_array_equal(stored.reshape(hu[2].shape), hu[2].astype(np.int32) + 1024)
    vol = read_image(folder, role="CT")
    assert vol.shape_zyx == hu.shape
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.spacing_xyz == DICOM_SPACING
    assert vol.origin_xyz == DICOM_ORIGIN
    assert vol.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_dicom_files_in_shuffled_names_are_ordered_by_position(tmp_path: Path):
    hu = _hu(5)
    folder = tmp_path / "ct"
    _write_dicom_series(folder, hu)
    for k, f in enumerate(sorted(folder.iterdir())):  # names now run opposite to z
        f.rename(folder / f"X{9 - k}.dcm")
    np.testing.assert_array_equal(read_dicom_series(folder).array, hu)


def test_dicom_found_in_a_subfolder(tmp_path: Path):
    hu = _hu(4)
    _write_dicom_series(tmp_path / "export" / "DICOM" / "S1", hu)
    np.testing.assert_array_equal(read_image(tmp_path / "export", role="CT").array, hu)


def test_two_series_in_one_folder_reads_the_longer(tmp_path: Path):
    long_hu, short_hu = _hu(7, seed=2), _hu(4, seed=3)
    _write_dicom_series(tmp_path, short_hu, uid=SERIES_UID + ".2", prefix="A")  # sorts first
    _write_dicom_series(tmp_path, long_hu, uid=SERIES_UID + ".3", prefix="B")
    vol = read_dicom_series(tmp_path)
    assert vol.shape_zyx == long_hu.shape
    np.testing.assert_array_equal(vol.array, long_hu)


def test_missing_middle_slice_refused(tmp_path: Path):
    folder = tmp_path / SECRET
    _write_dicom_series(folder, _hu(7), skip=(3,))
    with pytest.raises(DicomError) as err:
        read_image(folder, role="CT")
    _assert_clean(err, "CT", "not uniform", "2.5", "5 mm", "missing slices")


def test_uneven_slice_positions_refused(tmp_path: Path):
    folder = tmp_path / SECRET
    _write_dicom_series(folder, _hu(5), z_positions=[0.0, 2.5, 5.0, 8.0, 10.5])
    with pytest.raises(DicomError) as err:
        read_dicom_series(folder)
    _assert_clean(err, "not uniform")


def test_duplicate_slice_positions_refused(tmp_path: Path):
    folder = tmp_path / SECRET
    _write_dicom_series(folder, _hu(5), z_positions=[0.0, 2.5, 5.0, 5.0, 7.5])
    with pytest.raises(DicomError) as err:
        read_dicom_series(folder, role="CT")
    _assert_clean(err, "CT", "1 duplicate slice position")


def test_empty_folder_refused(tmp_path: Path):
    folder = tmp_path / SECRET
    folder.mkdir()
    with pytest.raises(DicomError) as err:
        read_image(folder, role="CT")
    _assert_clean(err, "CT", "no DICOM image series")


def test_folder_of_non_dicom_files_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    write_image(_volume(), tmp_path / "ct.nii.gz")
    with pytest.raises(DicomError) as err:
        read_image(tmp_path, role="CT")
    _assert_clean(err, "no DICOM image series")


def test_series_of_two_slices_refused(tmp_path: Path):
    _write_dicom_series(tmp_path, _hu(2))
    with pytest.raises(DicomError) as err:
        read_dicom_series(tmp_path, role="CT")
    _assert_clean(err, "only 2 slice")


def test_dicom_series_too_large(tmp_path: Path):
    _write_dicom_series(tmp_path, _hu(4))
    with pytest.raises(ImageTooLargeError) as err:
        read_dicom_series(tmp_path, role="CT", max_voxels=4 * 10 * 12 - 1)
    _assert_clean(err, "CT", "limit")


# --- the single-pass NIfTI reader (decompress + hash in one pass) gives exactly ITK's answer ---

from pipeline.core.hashing import path_sha256  # noqa: E402
from pipeline.io.readers import read_image_hashed  # noqa: E402


def _itk_reference(path: Path) -> tuple[np.ndarray, tuple, tuple, tuple]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_direct_nifti_read_equals_itk_and_hashes_the_file(tmp_path: Path, dtype: type, suffix: str):
    path = write_image(_volume(dtype=dtype), tmp_path / f"ct{suffix}")
    volume, digest = read_image_hashed(path, role="CT")
    array, spacing, origin, direction = _itk_reference(path)
    assert volume.array.dtype == array.dtype and np.array_equal(volume.array, array)
    assert (volume.spacing_xyz, volume.origin_xyz, volume.direction) == (spacing, origin, direction)
    assert digest == path_sha256(path)
    assert read_image(path, role="CT").array.flags.writeable


@pytest.mark.parametrize("kind", ["scaled", "big_endian", "nibabel_oblique"])
def test_unusual_nifti_files_read_as_itk_reads_them(tmp_path: Path, kind: str):
    """Scaled intensities and foreign byte order take ITK's path; the answer is ITK's either way."""
    data = np.random.default_rng(1).integers(-1000, 1000, (8, 7, 6)).astype(np.int16)  # nibabel: (x, y, z)
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    if kind == "nibabel_oblique":
        c, s = np.cos(0.3), np.sin(0.3)
        affine[:2, :2] = [[0.8 * c, -0.8 * s], [0.8 * s, 0.8 * c]]
    img = nib.Nifti1Image(data.astype(">i2") if kind == "big_endian" else data, affine)
    if kind == "scaled":
        img.header.set_slope_inter(0.5, -100.0)
    path = tmp_path / "ct.nii.gz"
    nib.save(img, str(path))
    volume, digest = read_image_hashed(path, role="CT")
    array, spacing, origin, direction = _itk_reference(path)
    assert np.array_equal(volume.array, array) and volume.array.dtype == array.dtype
    assert np.allclose(volume.spacing_xyz, spacing) and np.allclose(volume.origin_xyz, origin)
    assert np.allclose(volume.direction, direction)
    assert digest == path_sha256(path)


def test_direct_read_keeps_nan_voxels(tmp_path: Path):
    vol = _volume(dtype=np.float32)
    vol.array[2, 3, 4] = np.nan
    path = write_image(vol, tmp_path / "ct.nii.gz")
    assert np.isnan(read_image(path, role="CT").array[2, 3, 4])


def test_gzip_trailer_damage_is_refused_by_the_single_pass(tmp_path: Path):
    """Flipping a byte of the CRC trailer leaves every voxel intact; the CRC check must still refuse it."""
    path = write_image(_volume((40, 64, 64)), tmp_path / "ct.nii.gz")  # larger than the header peek
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="truncated or its data are corrupt"):
        read_image(path, role="CT")


def test_multi_member_and_zero_padded_gzip_read_like_itk(tmp_path: Path):
    """gzip allows several concatenated members and trailing zero padding; both are read fully."""
    plain = write_image(_volume((20, 30, 40)), tmp_path / "ct.nii", compress=False).read_bytes()
    cut = len(plain) // 3
    path = tmp_path / "multi.nii.gz"
    path.write_bytes(gzip.compress(plain[:cut]) + gzip.compress(plain[cut:]) + b"\0" * 512)
    volume, digest = read_image_hashed(path, role="CT")
    assert np.array_equal(volume.array, _itk_reference(tmp_path / "ct.nii")[0])
    assert digest == path_sha256(path)


def test_trailing_garbage_and_oversized_gzip_are_refused(tmp_path: Path):
    plain = write_image(_volume((20, 30, 40)), tmp_path / "ct.nii", compress=False).read_bytes()
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(plain) + b"not gzip at all")
    with pytest.raises(ImageReadError, match="truncated or its data are corrupt"):
        read_image(garbage, role="CT")
    bomb = tmp_path / "bomb.nii.gz"  # the declared data, then 1 MB more of zeros in the same member
    bomb.write_bytes(gzip.compress(plain + b"\0" * (1 << 20)))
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(bomb, role="CT")


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_streamed_gunzip_is_independent_of_how_the_file_is_cut(piece: int):
    """The reader decompresses the file piece by piece as it is read: member starts, the gzip
    magic, zero padding and trailing garbage may fall across any piece boundary."""
    from pipeline.io.nifti import gunzip_into as _gunzip_into

    rng = np.random.default_rng(0)
    plain = rng.integers(0, 8, 5000, dtype=np.uint8).tobytes()  # compressible, not trivially
    skip = 100

    def run(stream: bytes) -> tuple[str | None, bytes]:
        out = np.zeros(len(plain) - skip, dtype=np.uint8)
        cut = (stream[i:i + piece] for i in range(0, len(stream), piece))
        return _gunzip_into(cut, skip=skip, out=memoryview(out), slack=16, max_chunk=1000), out.tobytes()

    one, two = gzip.compress(plain), gzip.compress(plain[:1234]) + gzip.compress(plain[1234:])
    for good in (one, two, two + b"\0" * 9, one + b"\0"):
        assert run(good) == (None, plain[skip:])
    for bad in (one[:-1], one[:len(one) // 2], two + b"\x1f", one + b"\0\0x", one + b"garbage", b"", b"\0" * 10):
        assert run(bad)[0] == "corrupt"
    assert run(gzip.compress(plain + b"z" * 17))[0] == "bomb"
    assert run(gzip.compress(plain + b"z" * 16)) == (None, plain[skip:])  # within the slack


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_negative_voxel_spacing_in_the_header_is_refused(tmp_path: Path, suffix: str):
    """Found by the fuzzer: a NIfTI whose pixdim[3] is −1 crashed the direct reader with a
    ValueError; it is now an input error naming the spacing."""
    plain = bytearray(write_image(_volume((4, 5, 6)), tmp_path / "ct.nii", compress=False).read_bytes())
    plain[88:92] = np.float32(-1.0).tobytes()  # pixdim[3]: slice spacing (mm)
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(bytes(plain)) if suffix == ".nii.gz" else bytes(plain))
    with pytest.raises(ImageReadError, match="impossible voxel spacing"):
        read_image(path, role="CT")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_infinite_orientation_in_the_header_is_refused_not_a_hang(tmp_path: Path, suffix: str):
    """Found by the long fuzz profile: an sform holding −Inf (with huge non-orthogonal rows) makes
    ITK's NIfTI reader spin forever inside ``ReadImageInformation``, where no Python signal can
    interrupt it. The header is now checked first. Run in a child process so a regression fails
    here after 60 s instead of hanging the suite."""
    plain = bytearray(write_image(_volume((4, 5, 6)), tmp_path / "ct.nii", compress=False).read_bytes())
    plain[254:256] = np.int16(1).tobytes()  # sform_code: scanner
    plain[280:328] = np.array([-1.8e16, 0, -3.2e16, 0, -5.2e16, -9e15, 0, 0, 3.9e16, 0, -np.inf, 0],
                              dtype=np.float32).tobytes()  # srow_x, srow_y, srow_z
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(bytes(plain)) if suffix == ".nii.gz" else bytes(plain))
    code = ("import sys\nfrom pipeline.io.readers import read_image\nfrom pipeline.core.errors import ImageReadError\n"
            f"try:\n    read_image({str(path)!r}, role='CT')\nexcept ImageReadError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("CT could not be read: its header's voxel spacing or orientation "
                                   "(pixdim, qform or sform) contains NaN or infinite numbers")


# --- stream_slices: the same file, a block of whole slices at a time -------------------------

from pipeline.io.readers import stream_slices  # noqa: E402


def _streamed(path: Path, **kwargs) -> tuple[np.ndarray | None, Volume | None, str]:
    """Concatenate what stream_slices hands on (checking order and block shapes)."""
    blocks: list[np.ndarray] = []

    def plan(geometry: Volume):
        def on_block(z0: int, block: np.ndarray) -> None:
            assert z0 == sum(b.shape[0] for b in blocks) and block.shape[1:] == geometry.shape_zyx[1:]
            blocks.append(block.copy())  # the block's buffer is reused for the next one
        return on_block

    out = stream_slices(path, role="CT", plan=plan, **kwargs)
    if out is None:
        return None, None, ""
    geometry, digest = out
    return np.concatenate(blocks), geometry, digest


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_streamed_slices_equal_the_whole_read(tmp_path: Path, dtype: type, suffix: str):
    # 1.6 MB (int16) of 40 slices: several 4 MB blocks for float64, one for uint8
    path = write_image(_volume((40, 100, 100), dtype=dtype), tmp_path / f"ct{suffix}")
    whole, digest = read_image_hashed(path, role="CT")
    array, geometry, streamed_digest = _streamed(path, want_hash=True)
    assert array.dtype == whole.array.dtype and np.array_equal(array, whole.array, equal_nan=True)
    assert geometry.shape_zyx == whole.shape_zyx and geometry.array.strides == (0, 0, 0)  # no memory
    assert (geometry.spacing_xyz, geometry.origin_xyz, geometry.direction) == (
        whole.spacing_xyz, whole.origin_xyz, whole.direction)
    assert streamed_digest == digest == path_sha256(path)


def test_streamed_blocks_of_a_large_volume_come_in_several_pieces(tmp_path: Path):
    path = write_image(_volume((30, 256, 256), dtype=np.float64), tmp_path / "ct.nii.gz")  # 15.7 MB
    sizes: list[int] = []
    stream_slices(path, role="CT", plan=lambda g: (lambda z0, block: sizes.append(block.shape[0])))
    assert sum(sizes) == 30 and len(sizes) > 1


def test_stream_slices_leaves_other_files_to_read_image(tmp_path: Path):
    """Other formats, scaled NIfTI and a declined plan return None: the caller reads them whole."""
    nrrd = write_image(_volume(), tmp_path / "ct.nrrd")
    assert stream_slices(nrrd, role="CT", plan=lambda g: (lambda z0, b: None)) is None
    img = nib.Nifti1Image(np.zeros((6, 7, 8), np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, -100.0)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    assert stream_slices(tmp_path / "scaled.nii.gz", role="CT", plan=lambda g: (lambda z0, b: None)) is None
    plain = write_image(_volume(), tmp_path / "plain.nii.gz")
    assert stream_slices(plain, role="CT", plan=lambda g: None) is None


@pytest.mark.parametrize("damage", ["truncated", "crc", "bomb", "header"])
def test_streamed_read_refuses_damaged_files_as_read_image_does(tmp_path: Path, damage: str):
    plain = write_image(_volume((20, 30, 40)), tmp_path / "ct.nii", compress=False).read_bytes()
    path = tmp_path / "ct.nii.gz"
    packed = gzip.compress(plain)
    if damage == "truncated":
        packed = packed[: len(packed) * 2 // 3]
    elif damage == "crc":
        packed = packed[:-6] + bytes([packed[-6] ^ 0xFF]) + packed[-5:]
    elif damage == "bomb":
        packed = gzip.compress(plain + b"\0" * (1 << 20))
    else:
        packed = b"not a nifti file at all" * 40
    path.write_bytes(packed)
    with pytest.raises(ImageReadError) as expected:
        read_image(path, role="CT")
    with pytest.raises(ImageReadError) as streamed:
        _streamed(path)
    assert str(streamed.value) == str(expected.value)
