"""Results back as DICOM, next to the source study: SEG of the scored ROI, a Comprehensive 3D SR
(TID 1500 measurement report) and the PDF report as Encapsulated PDF.

Written with highdicom (SEG, SR) and pydicom (Encapsulated PDF, which highdicom does not make).
Each object is a new series of the source CT's study (same Study Instance UID, new Series and
SOP Instance UIDs, series numbers 9901–9903). Identifiers: only attributes the source CT carries
are copied, and only these (:data:`COPIED_ATTRIBUTES`): Patient's Name, Patient ID, Patient's
Birth Date, Patient's Sex, Patient Identity Removed, De-identification Method (and its code
sequence), Study Instance UID, Study Date, Study Time, Study ID, Accession Number, Referring
Physician's Name, Study Description. highdicom copies the CT's Patient module wholesale for the
SEG and SR; anything else of it (Patient Comments, other names, …) is removed again before
writing. Type 2 attributes the CT lacks are written empty, as DICOM requires.
The PDF itself carries no identifier (hashes only), so Burned In Annotation is NO.

* **SEG** (``seg.dcm``): BINARY, one segment (the ROI that was scored, exactly the voxels the
  model saw, on the CT's slices), frames referencing the source CT slices.
* **SR** (``sr.dcm``): Imaging Measurement Report with one volumetric measurement group
  referencing the SEG segment: VPI probability, operating threshold, risk band (coded), the
  pleura/tumour measurements the model's features hold (diameter, volume, distance to the
  pleura, contact length/area/fraction), each with the model as algorithm (name, id); and a
  Qualitative Evaluations container with the research-use notice, the model id and the
  applicability-domain verdict ("in" / "out" with its reasons / "unknown") as TEXT.
  Concepts without a standard code use the private scheme ``99PLRISK``.
* **PDF** (``report.dcm``): the report of :func:`pipeline.serving.report.report_pdf`.

Nothing is written inside the input folders (:func:`check_output_folder`).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.io.dicom_folder import ImageSeries
from pipeline.core.errors import DicomError, InputError

COPIED_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientIdentityRemoved",
                     "DeidentificationMethod", "DeidentificationMethodCodeSequence", "StudyInstanceUID", "StudyDate",
                     "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")
_TYPE2_STUDY_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                        "StudyID", "AccessionNumber", "ReferringPhysicianName")
SERIES_NUMBERS = {"seg": 9901, "sr": 9902, "pdf": 9903}
MANUFACTURER = "PleuraRisk (research software)"
PRIVATE_SCHEME = "99PLRISK"
ENCAPSULATED_PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
# (feature name, concept, unit) of the measurements reported when the model's features hold them
_MEASUREMENTS = (
    ("tumour_diameter_mm", ("81827009", "SCT", "Diameter"), ("mm", "UCUM", "mm")),
    ("tumour_volume_mm3", ("118565006", "SCT", "Volume"), ("mm3", "UCUM", "cubic millimeter")),
    ("pleura_distance_mm", ("PL-DIST", PRIVATE_SCHEME, "Shortest tumour to pleura distance"), ("mm", "UCUM", "mm")),
    ("pleura_contact_length_mm", ("PL-CLEN", PRIVATE_SCHEME, "Tumour-pleura contact length"), ("mm", "UCUM", "mm")),
    ("pleura_contact_area_mm2", ("PL-CAREA", PRIVATE_SCHEME, "Tumour-pleura contact area"),
     ("mm2", "UCUM", "square millimeter")),
    ("pleura_contact_fraction", ("PL-CFRAC", PRIVATE_SCHEME, "Tumour surface fraction in pleural contact"),
     ("1", "UCUM", "no units")),
)


def check_output_folder(out_dir: str | os.PathLike[str], *, inputs: list[str | os.PathLike[str]]) -> Path:
    """``out_dir`` resolved; refused when it is, or lies inside, an input folder (a folder given
    as an input, or the folder holding an input file), so results are never written into the
    export they came from."""
    out = Path(out_dir).resolve()
    for given in inputs:
        p = Path(given).resolve()
        folder = p if p.is_dir() else p.parent
        if out == folder or folder in out.parents:
            raise InputError("--dicom-out must not be inside an input folder; choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError("--dicom-out must be a folder")
    return out


def full_mask(case) -> np.ndarray:  # noqa: ANN001 - PreparedCase
    """The scored ROI on the whole CT grid, uint8 (z, y, x): the case's ROI crop put back at
    its crop position (the crop holds every ROI voxel)."""
    out = np.zeros(case.ct_shape_zyx, dtype=np.uint8)
    out[tuple(slice(a, b) for a, b in zip(case.crop.start_zyx, case.crop.stop_zyx))] = case.roi_crop.array
    return out


def _keep_only_copied_identifiers(ds) -> None:  # noqa: ANN001
    """Remove the patient (group 0010) and clinical-trial / de-identification (group 0012)
    attributes that are not in :data:`COPIED_ATTRIBUTES`."""
    for element in list(ds):
        if element.tag.group in (0x0010, 0x0012) and element.keyword not in COPIED_ATTRIBUTES:
            del ds[element.tag]


def _code(value: str, scheme: str, meaning: str):  # noqa: ANN202
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def write_seg(*, series: ImageSeries, mask_zyx: np.ndarray, roi_label: str, out_path: Path,  # noqa: ANN201
              roi_source: dict | None = None):
    """Write a BINARY DICOM SEG of ``mask_zyx`` (uint8 (z, y, x) on the CT series' grid, slice
    z = ``series.headers[z]``) with one segment labelled ``roi_label``; return the dataset.
    ``roi_source``: a semi-automatic ROI's provenance (``Segmentation.provenance()``): the segment
    is then SEMIAUTOMATIC with the algorithm's name and version (else MANUAL: a mask given)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if mask_zyx.shape != (series.n_slices, int(series.headers[0].Rows), int(series.headers[0].Columns)):
        raise ValueError(f"mask shape {mask_zyx.shape} does not match the CT series")
    algorithm: dict = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.MANUAL}
    if roi_source and roi_source.get("kind") == "semi-automatic":
        x, y, z = roi_source.get("seed_xyz_mm", (0.0, 0.0, 0.0))
        algorithm = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
                     "algorithm_identification": hd.AlgorithmIdentificationSequence(
                         name=str(roi_source.get("method", "semi-automatic"))[:64], family=codes.cid7162.MorphologicalOperations,
                         version=str(roi_source.get("software", {}).get("pleurarisk", ""))[:16] or "0",
                         parameters={"seed_xyz_mm_lps": f"{x},{y},{z}"[:64],
                                     "sensitivity": str(roi_source.get("params", {}).get("sensitivity", ""))})}
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=(roi_label or "scored ROI")[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, **algorithm,
        tracking_uid=hd.UID(), tracking_id="PleuraRisk scored ROI")
    with warnings.catch_warnings():  # e.g. "single-component person name": the CT's value, copied as is
        warnings.simplefilter("ignore", UserWarning)
        seg = _segmentation(hd, series=series, mask_zyx=mask_zyx, description=description)
    _keep_only_copied_identifiers(seg)
    seg.save_as(out_path)
    return seg


def _segmentation(hd, *, series: ImageSeries, mask_zyx: np.ndarray, description):  # noqa: ANN001, ANN202
    return hd.seg.Segmentation(
        source_images=list(series.headers), pixel_array=mask_zyx.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=hd.UID(), series_number=SERIES_NUMBERS["seg"], sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="PleuraRisk",
        software_versions=__version__, device_serial_number="none", series_description="PleuraRisk scored ROI",
        content_label="SCOREDROI", content_description="ROI scored by PleuraRisk (research use only)")


def _measurement_group(result, *, seg, series: ImageSeries, features: dict[str, float]):  # noqa: ANN001, ANN202
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.sr.AlgorithmIdentification(name=str(result.model_name)[:64] or "PleuraRisk",
                                              version=str(result.model_id)[:16] or __version__)
    no_units = _code("1", "UCUM", "no units")
    measurements = [
        hd.sr.Measurement(name=_code("VPI-P", PRIVATE_SCHEME, "Probability of visceral pleural invasion"),
                          value=float(result.probability), unit=no_units, algorithm_id=algorithm),
        hd.sr.Measurement(name=_code("VPI-T", PRIVATE_SCHEME, "Model operating threshold for VPI"),
                          value=float(result.threshold), unit=no_units, algorithm_id=algorithm),
    ]
    for feature, concept, unit in _MEASUREMENTS:
        if feature in features and np.isfinite(features[feature]):
            measurements.append(hd.sr.Measurement(name=_code(*concept), value=float(features[feature]),
                                                  unit=_code(*unit), algorithm_id=algorithm))
    band = str(result.risk_band)
    evaluations = [hd.sr.QualitativeEvaluation(
        name=_code("VPI-B", PRIVATE_SCHEME, "VPI risk band"),
        value=_code(f"BAND-{band.upper()[:8]}", PRIVATE_SCHEME, f"{band} risk of visceral pleural invasion"))]
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="PleuraRisk scored ROI"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=1,
            source_series=hd.sr.SourceSeriesForSegmentation(series.series_uid)),
        finding_type=codes.SCT.Neoplasm, algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=evaluations)


def _notes_container(result):  # noqa: ANN001, ANN202
    """TID 1500 "Qualitative Evaluations" container with the notice and the model as TEXT."""
    import highdicom as hd

    items = [hd.sr.TextContentItem(name=_code("RUO", PRIVATE_SCHEME, "Research use notice"),
                                   value=str(result.notice or "Research use only; not a medical device.")[:1024],
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS),
             hd.sr.TextContentItem(name=_code("MODEL", PRIVATE_SCHEME, "Model identification"),
                                   value=f"{result.model_name} {result.model_id} (PleuraRisk {__version__})"[:1024],
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
    domain = getattr(result, "domain", None)
    if domain is not None:  # the applicability-domain verdict, as shown next to the probability
        text = f"{domain.status}: {domain.notice}" if domain.notice else f"{domain.status}: inside the training data"
        items.append(hd.sr.TextContentItem(name=_code("DOMAIN", PRIVATE_SCHEME, "Applicability domain"),
                                           value=text[:1024],
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    container = hd.sr.ContainerContentItem(name=_code("C0034375", "UMLS", "Qualitative Evaluations"),
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def write_sr(result, *, seg, series: ImageSeries, out_path: Path):  # noqa: ANN001, ANN201
    """Write the Comprehensive 3D SR measurement report of ``result`` referencing ``seg`` and the CT."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="PleuraRisk", manufacturer_name=MANUFACTURER, model_name=str(result.model_name)[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[_measurement_group(result, seg=seg, series=series,
                                                 features=result.features.as_dict())],
        title=codes.DCM.ImagingMeasurementReport)
    report[0].ContentSequence.append(_notes_container(result))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sr = _sr(hd, report=report, series=series, seg=seg)
    _keep_only_copied_identifiers(sr)
    sr.save_as(out_path)
    return sr


def _sr(hd, *, report, series: ImageSeries, seg):  # noqa: ANN001, ANN202
    return hd.sr.Comprehensive3DSR(
        evidence=[*series.headers, seg], content=report[0], series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBERS["sr"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description="PleuraRisk VPI report (research use only)")


def write_pdf(pdf: bytes, *, series: ImageSeries, sources: list, out_path: Path):  # noqa: ANN201
    """Write ``pdf`` as an Encapsulated PDF object of the CT's study (identifiers: :data:`COPIED_ATTRIBUTES`
    from the CT, when it carries them), derived from ``sources`` (SEG, SR datasets)."""
    import highdicom as hd
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    ct = series.headers[0]
    now = _dt.datetime.now(_dt.timezone.utc)
    ds = Dataset()
    ds.SpecificCharacterSet = ct.get("SpecificCharacterSet", "ISO_IR 100") or "ISO_IR 100"
    for keyword in COPIED_ATTRIBUTES:
        if keyword in ct:
            ds[keyword] = ct[keyword]
        elif keyword in _TYPE2_STUDY_PATIENT:
            setattr(ds, keyword, "")
    ds.SOPClassUID = ENCAPSULATED_PDF_SOP_CLASS
    ds.SOPInstanceUID = hd.UID()
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = hd.UID()
    ds.SeriesNumber = SERIES_NUMBERS["pdf"]
    ds.SeriesDescription = "PleuraRisk PDF report (research use only)"
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = "PleuraRisk VPI risk report"
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    refs = []
    for src in sources:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
        refs.append(item)
    ds.SourceInstanceSequence = Sequence(refs)
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(out_path, enforce_file_format=True)
    return ds


def write_dicom_results(result, *, case, series: ImageSeries | None, clinical, out_dir: str | os.PathLike[str],  # noqa: ANN001
                        roi_name: str | None = None, pdf: bytes | None = None) -> list[Path]:
    """Write ``seg.dcm``, ``sr.dcm`` and ``report.dcm`` for a scored case into ``out_dir``.

    Args:
        result: the :class:`~pipeline.serving.score.CaseResult`.
        case: the :class:`~pipeline.inputs.case.PreparedCase` it was scored from (gives the ROI).
        series: the CT's DICOM series (required: the objects reference it).
        clinical: the clinical values (for the PDF report).
        roi_name: label of the SEG segment (the RTSTRUCT ROI / SEG segment scored).
        pdf: the PDF report bytes (default: :func:`pipeline.serving.report.report_pdf` of ``result``).

    Returns:
        The three paths, SEG, SR, PDF.
    """
    if series is None:
        raise DicomError("DICOM output (--dicom-out) needs the CT as a DICOM series, which the SEG and SR "
                         "reference; this CT is an image file")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mask = full_mask(case)
    seg = write_seg(series=series, mask_zyx=mask, roi_label=roi_name or "tumour ROI", out_path=out / "seg.dcm",
                    roi_source=getattr(result, "roi_source", None))
    sr = write_sr(result, seg=seg, series=series, out_path=out / "sr.dcm")
    if pdf is None:
        from pipeline.serving.report import report_pdf

        pdf = report_pdf(result, clinical=clinical)
    write_pdf(pdf, series=series, sources=[seg, sr], out_path=out / "report.dcm")
    return [out / "seg.dcm", out / "sr.dcm", out / "report.dcm"]
