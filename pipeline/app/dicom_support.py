"""The app's DICOM helpers (no Streamlit here): what a DICOM upload offers to choose from (image
series, volume ROIs of its RTSTRUCT/SEG), storing an uploaded RTSTRUCT/SEG file, and the DICOM
results (SEG, SR, Encapsulated PDF) as bytes for download buttons.

Usage (on a DICOM export; see the tests for runnable cases)::

    choices = dicom_choices(ct_path="uploads/ct/ct", roi_path=None)
    choices.roi_names
    ['Patient', 'GTV-1', 'Lung L', 'Lung R']
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.io.archive import UploadFolder, sniff


@dataclass(frozen=True)
class DicomChoices:
    """What the user may choose for a DICOM upload.

    Attributes:
        series: (Series Instance UID, label) of each image series of the CT folder, most slices
            first (empty when the CT is not a DICOM folder).
        roi_names: volume ROIs of the RTSTRUCT/SEG in use (the uploaded ROI file, else the one in
            the CT folder); empty when the ROI is a mask image.
        roi_kind: "RTSTRUCT", "SEG" or "" (no DICOM ROI).
        notes: the objects skipped in the CT folder (RTPLAN, RTDOSE, …).
    """

    series: tuple[tuple[str, str], ...] = ()
    roi_names: tuple[str, ...] = ()
    roi_kind: str = ""
    notes: tuple[str, ...] = ()


def store_roi_upload(uploads: UploadFolder, *, filename: str, data: bytes, token: str | None) -> Path:
    """Store the ROI upload: a single DICOM file (an RTSTRUCT or SEG) as ``roi/roi.dcm``,
    anything else as :meth:`UploadFolder.store_image` stores an image or zip."""
    if sniff(bytes(data[:4096])) == "dicom":
        return uploads.store_file("roi", suffix=".dcm", data=data, token=token)
    return uploads.store_image("roi", filename=filename, data=data, token=token)


def dicom_choices(*, ct_path: str | os.PathLike[str] | None, roi_path: str | os.PathLike[str] | None) -> DicomChoices:
    """The image series and ROI names a CT folder / ROI file offer (see :class:`DicomChoices`).

    Raises:
        InputError subclasses for a damaged DICOM upload (one sentence naming the role).
    """
    from pipeline.io.dicom_folder import scan_dicom_folder
    from pipeline.io.dicom_roi import dicom_roi_kind, roi_names

    series: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    roi_file: Path | None = None
    if ct_path is not None and Path(ct_path).is_dir():
        inventory = scan_dicom_folder(ct_path, role="CT")
        series = tuple((s.series_uid, s.label(with_description=True)) for s in inventory.series)
        notes = inventory.skipped
        if roi_path is None and inventory.roi_files:
            roi_file = inventory.roi_files[0]
    if roi_path is not None:
        p = Path(roi_path)
        if p.is_dir():
            inventory = scan_dicom_folder(p, role="ROI")
            roi_file = inventory.roi_files[0] if inventory.roi_files else None
        elif dicom_roi_kind(p):
            roi_file = p
    if roi_file is None:
        return DicomChoices(series, (), "", notes)
    return DicomChoices(series, tuple(roi_names(roi_file)), dicom_roi_kind(roi_file) or "", notes)


def dicom_result_files(result, *, case, series, clinical, roi_name: str | None, pdf: bytes) -> dict[str, bytes]:  # noqa: ANN001
    """SEG, SR and Encapsulated PDF of a scored case as bytes, keyed by file name
    (``seg.dcm``, ``sr.dcm``, ``report.dcm``); written through a private temporary folder."""
    from pipeline.serving.dicom_out import write_dicom_results

    with tempfile.TemporaryDirectory(prefix="pleura-dicom-out-") as tmp:
        paths = write_dicom_results(result, case=case, series=series, clinical=clinical, out_dir=tmp,
                                    roi_name=roi_name, pdf=pdf)
        return {p.name: p.read_bytes() for p in paths}


def outcome_dicom(outcome) -> dict[str, bytes] | None:  # noqa: ANN001 - PredictionOutcome
    """SEG, SR and Encapsulated PDF of an app result (see :func:`dicom_result_files`), built once
    and kept on the outcome; ``None`` when its CT was not a DICOM series."""
    if outcome.dicom_source is None:
        return None
    pdf = outcome.pdf()
    with outcome._pdf_lock:  # one build per outcome, as for the PDF
        if outcome.dicom_files is None:
            series, case, roi_name = outcome.dicom_source
            outcome.dicom_files = dicom_result_files(outcome.result, case=case, series=series,
                                                     clinical=outcome.clinical, roi_name=roi_name, pdf=pdf)
        return outcome.dicom_files
