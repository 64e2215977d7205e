"""Real DICOM test data made from a synthetic phantom: a CT series (pydicom), an RTSTRUCT drawn
on it (rt-utils, from the phantom's tumour mask) and DICOM SEGs (highdicom).

Nothing here is mocked: the files are complete DICOM objects that GDCM, pydicom, highdicom and
dciodvfy read like any export.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class DicomCase:
    """A phantom written as DICOM: the CT folder, its UIDs, and the tumour mask (z, y, x)."""

    folder: Path
    files: list[Path]
    study_uid: str
    series_uid: str
    frame_uid: str
    mask_zyx: np.ndarray
    spacing_xyz: tuple[float, float, float]


def phantom(seed: int = 7):  # noqa: ANN201 - pipeline.synth.render.Phantom
    from pipeline.synth import PhantomSpec, TumourSpec, make_phantom

    return make_phantom(PhantomSpec.for_size("small", tumour=TumourSpec(diameter_mm=25.0, distance_to_pleura_mm=0.0),
                                             seed=seed))


def write_ct_series(ct, folder: Path, *, study_uid: str | None = None, frame_uid: str | None = None,  # noqa: ANN001
                    description: str = "phantom CT", prefix: str = "ct") -> DicomCase:
    """Write a :class:`~pipeline.core.volume.Volume` (int16 HU, identity direction) as a CT series."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    series_uid = generate_uid()
    sx, sy, sz = ct.spacing_xyz
    ox, oy, oz = ct.origin_xyz
    arr = ct.array.astype(np.int16)
    today = _dt.date(2024, 1, 2).strftime("%Y%m%d")
    files = []
    for z in range(arr.shape[0]):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber, ds.Modality, ds.Manufacturer = "A123", "CT", "phantom"
        ds.ReferringPhysicianName = ""
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Test", "PH-001", "19600101", "O"
        ds.PatientComments = "free text that must not be copied"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID = study_uid, series_uid, "S1"
        ds.SeriesNumber, ds.InstanceNumber = 2, z + 1
        ds.SeriesDescription = description
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{oz + z * sz:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness, ds.PixelSpacing = f"{sz:.4f}", [f"{sy:.6f}", f"{sx:.6f}"]
        ds.KVP, ds.AcquisitionNumber = "120", 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.PixelData = np.ascontiguousarray(arr[z]).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"{prefix}{z:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return DicomCase(folder, files, study_uid, series_uid, frame_uid, np.zeros(arr.shape, np.uint8), ct.spacing_xyz)


def write_rtstruct(case: DicomCase, masks: dict[str, np.ndarray], out: Path) -> Path:
    """An RTSTRUCT drawn on ``case``'s series by rt-utils, one ROI per (z, y, x) mask."""
    import tempfile

    from rt_utils import RTStructBuilder

    with tempfile.TemporaryDirectory() as tmp:  # rt-utils reads every image in the folder: only the series
        for f in case.files:
            (Path(tmp) / f.name).symlink_to(f.resolve())
        rt = RTStructBuilder.create_new(dicom_series_path=tmp)
        for name, mask in masks.items():
            rt.add_roi(mask=np.transpose(mask.astype(bool), (1, 2, 0)), name=name, approximate_contours=False)
        rt.save(str(out))
    return out


def write_seg(case: DicomCase, segments: dict[str, np.ndarray], out: Path, *, fractional: bool = False) -> Path:
    """A DICOM SEG (highdicom) on ``case``'s series, one segment per (z, y, x) mask."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(f) for f in case.files]
    stack = np.stack([m.astype(np.uint8) for m in segments.values()], axis=-1)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=name, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i, name in enumerate(segments)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=stack.astype(np.float32) if fractional else stack,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=30, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="1",
        device_serial_number="1")
    seg.save_as(out)
    return out
