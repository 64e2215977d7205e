"""Find studies (QIDO-RS) and retrieve one study's CT series and its RTSTRUCT/SEG (WADO-RS) into
a private temporary folder (mode 0700, removed when the context ends).

What is retrieved: the CT series (``series_uid``, else the one the study's RTSTRUCT/SEG
references, else the CT series with the most images) and the RTSTRUCT/SEG series (``roi_series_uid``,
else every one in the study except the SEGs PleuraRisk itself stored there); never RT plans,
doses or other series. Checks: the study exists and holds a CT series; the retrieval stays under
the configured size (``PLEURA_PACS_MAX_STUDY_MB``, checked as images arrive); the CT series is
complete (as many images received as the PACS lists, and the same count asked again afterwards —
a count that changed means the series is still arriving).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import DicomError, InputError
from pipeline.pacs.client import PacsClient, PacsError

ROI_MODALITIES = ("RTSTRUCT", "SEG")
_DATE = re.compile(r"^\d{8}(-\d{8})?$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_FIELD_TAGS = {"patient_id": "PatientID", "accession": "AccessionNumber", "study_date": "StudyDate"}
_FIELD_NAMES = {"patient_id": "patient ID", "accession": "accession number", "study_date": "study date"}


@dataclass(frozen=True)
class StudyMatch:
    """One study a search found (what the user picks from)."""

    study_uid: str
    patient_id: str
    accession: str
    study_date: str
    description: str
    modalities: tuple[str, ...]
    n_instances: int | None


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study, as the PACS lists it."""

    series_uid: str
    modality: str
    description: str
    number: int | None
    n_instances: int | None

    def label(self) -> str:
        n = self.n_instances
        count = "? images" if n is None else f"{n} image{'' if n == 1 else 's'}"
        return f"{self.modality} {self.description or '(no description)'} ({count})"


@dataclass(frozen=True)
class RetrievedStudy:
    """A study's CT series and RTSTRUCT/SEG, retrieved into ``folder`` (the DICOM folder to score)."""

    folder: Path
    study_uid: str
    ct: SeriesInfo
    rois: tuple[SeriesInfo, ...]
    n_bytes: int
    seconds: float


def _value(item: dict, tag: str) -> object:
    values = item.get(tag, {}).get("Value") or []
    if not values:
        return None
    v = values[0]
    return v.get("Alphabetic", "") if isinstance(v, dict) else v


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def check_uid(uid: str, *, what: str) -> str:
    """``uid`` stripped, refused unless it looks like a DICOM UID (digits and dots, ≤ 64)."""
    uid = (uid or "").strip()
    if not _UID.match(uid) or len(uid) > 64:
        raise InputError(f"the {what} must be a DICOM UID (digits and dots, at most 64 characters)")
    return uid


def find_studies(client: PacsClient, *, patient_id: str | None = None, accession: str | None = None,
                 study_date: str | None = None, limit: int = 50) -> list[StudyMatch]:
    """Studies matching every given field (only the fields the administrator enabled).

    Args:
        patient_id, accession: exact values (a PACS may allow ``*`` wildcards).
        study_date: ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``.
        limit: at most this many studies.

    Raises:
        InputError: no field given, a field not enabled, a malformed date. PacsError: the PACS failed.
    """
    given = {"patient_id": patient_id, "accession": accession, "study_date": study_date}
    given = {k: v.strip() for k, v in given.items() if v is not None and v.strip()}
    if not given:
        enabled = ", ".join(_FIELD_NAMES[f] for f in client.config.search_fields)
        raise InputError(f"give something to search for: {enabled}")
    for name in given:
        if name not in client.config.search_fields:
            raise InputError(f"searching by {_FIELD_NAMES[name]} is not enabled on this installation "
                             "(the administrator sets PLEURA_PACS_SEARCH_FIELDS)")
    if "study_date" in given and not _DATE.match(given["study_date"]):
        raise InputError("the study date must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    filters = {_FIELD_TAGS[k]: v for k, v in given.items()}
    found = client.call("searching for studies", client.web.search_for_studies, search_filters=filters, limit=limit,
                        fields=["ModalitiesInStudy", "NumberOfStudyRelatedInstances", "StudyDescription"])
    return [StudyMatch(study_uid=str(_value(s, "0020000D") or ""), patient_id=str(_value(s, "00100020") or ""),
                       accession=str(_value(s, "00080050") or ""), study_date=str(_value(s, "00080020") or ""),
                       description=str(_value(s, "00081030") or ""),
                       modalities=tuple(str(m) for m in (s.get("00080061", {}).get("Value") or [])),
                       n_instances=_int(_value(s, "00201208"))) for s in found]


def list_series(client: PacsClient, study_uid: str) -> list[SeriesInfo]:
    """Every series of the study (empty when the PACS does not hold it)."""
    study_uid = check_uid(study_uid, what="Study Instance UID")
    found = client.call("listing the study's series", client.web.search_for_series, study_instance_uid=study_uid,
                        fields=["NumberOfSeriesRelatedInstances", "SeriesDescription", "SeriesNumber", "Manufacturer"])
    out = []
    for s in found:
        info = SeriesInfo(series_uid=str(_value(s, "0020000E") or ""), modality=str(_value(s, "00080060") or ""),
                          description=str(_value(s, "0008103E") or ""), number=_int(_value(s, "00200011")),
                          n_instances=_int(_value(s, "00201209")))
        out.append(info)
    return out


def is_own_result(series: SeriesInfo) -> bool:
    """A series PleuraRisk stored (its SEG/SR/PDF), which is never read back as the ROI."""
    from pipeline.serving.dicom_out import SERIES_NUMBERS

    return series.number in SERIES_NUMBERS.values() and series.description.startswith("PleuraRisk")


def _count(client: PacsClient, study_uid: str, series_uid: str) -> int | None:
    for s in list_series(client, study_uid):
        if s.series_uid == series_uid:
            return s.n_instances
    return None


class _Budget:
    """Bytes written so far against the retrieval limit."""

    def __init__(self, limit_mb: int) -> None:
        self.limit_mb, self.used = limit_mb, 0

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit_mb * 1024 * 1024:
            raise PacsError(f"the study is larger than the retrieval limit of {self.limit_mb} MB "
                            "(PLEURA_PACS_MAX_STUDY_MB); give the CT series with --series, or ask the "
                            "administrator to raise the limit")


def _save_series(client: PacsClient, *, study_uid: str, series: SeriesInfo, folder: Path, budget: _Budget) -> int:
    """Write every instance of ``series`` into ``folder``; the number written."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    instances = client.call(f"retrieving the {series.modality} series", client.web.iter_series,
                            study_instance_uid=study_uid, series_instance_uid=series.series_uid)
    while True:
        try:
            ds = client.call(f"retrieving the {series.modality} series", next, instances, None)
        except StopIteration:  # pragma: no cover - next() with a default does not raise
            break
        if ds is None:
            break
        # named by SOP Instance UID: the same study gives the same folder (and content hash) every time
        path = folder / f"{series.modality.lower()}-{check_uid(str(ds.SOPInstanceUID), what='SOP Instance UID')}.dcm"
        ds.save_as(path)
        budget.add(path.stat().st_size)
        n += 1
    return n


def _choose_ct(cts: list[SeriesInfo], *, series_uid: str | None, referenced: set[str]) -> tuple[SeriesInfo, str]:
    if series_uid is not None:
        match = [s for s in cts if s.series_uid == series_uid]
        if not match:
            raise DicomError("the study holds no CT series with that Series Instance UID; it holds: "
                             + "; ".join(s.label() for s in cts))
        return match[0], "as asked"
    if len(cts) == 1:
        return cts[0], "the study's only CT series"
    ref = [s for s in cts if s.series_uid in referenced]
    if len(ref) == 1:
        return ref[0], "the CT series the structure set / segmentation is drawn on"
    ordered = sorted(cts, key=lambda s: s.n_instances or 0, reverse=True)
    if (ordered[0].n_instances or 0) == (ordered[1].n_instances or 0):
        raise DicomError(f"the study holds {len(cts)} CT series of the same size; give the one to score with "
                         "--series (see pleura pacs find)")
    return ordered[0], "the CT series with the most images"


@contextlib.contextmanager
def retrieved_study(client: PacsClient, *, study_uid: str, series_uid: str | None = None,
                    roi_series_uid: str | None = None, workdir: str | None = None,
                    on_note: Callable[[str], None] | None = None) -> Iterator[RetrievedStudy]:
    """Retrieve a study's CT series and RTSTRUCT/SEG into a private temporary folder (a context
    manager; the folder is removed when it ends). See :func:`retrieve_into`."""
    work = Path(tempfile.mkdtemp(prefix="pleura-pacs-", dir=workdir))  # mode 0700
    try:
        yield retrieve_into(client, work / "study", study_uid=study_uid, series_uid=series_uid,
                            roi_series_uid=roi_series_uid, on_note=on_note)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def retrieve_into(client: PacsClient, folder: Path, *, study_uid: str, series_uid: str | None = None,
                  roi_series_uid: str | None = None, on_note: Callable[[str], None] | None = None) -> RetrievedStudy:
    """Retrieve a study's CT series and RTSTRUCT/SEG into ``folder`` (created; the caller removes it,
    also when this raises). See the module docstring for what is chosen and checked.

    Raises:
        InputError: malformed UIDs, no such study, no CT series, no such series.
        PacsError: the PACS failed, the study is too large, the CT series is incomplete.
    """
    study_uid = check_uid(study_uid, what="Study Instance UID")
    series_uid = check_uid(series_uid, what="CT Series Instance UID") if series_uid else None
    roi_series_uid = check_uid(roi_series_uid, what="ROI Series Instance UID") if roi_series_uid else None
    say = on_note or (lambda _t: None)
    t0 = time.perf_counter()
    series = list_series(client, study_uid)
    if not series:
        raise InputError("the PACS holds no study with this Study Instance UID")
    cts = [s for s in series if s.modality == "CT"]
    if not cts:
        held = ", ".join(sorted({s.modality for s in series})) or "nothing"
        raise DicomError(f"the study holds no CT series (it holds: {held}); choose the study with the chest CT")
    rois = [s for s in series if s.modality in ROI_MODALITIES and not is_own_result(s)]
    if roi_series_uid is not None:
        rois = [s for s in rois if s.series_uid == roi_series_uid]
        if not rois:
            raise DicomError("the study holds no RTSTRUCT or SEG series with that Series Instance UID")
    budget = _Budget(client.config.max_study_mb)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for roi in rois:
        _save_series(client, study_uid=study_uid, series=roi, folder=folder, budget=budget)
    referenced = _referenced(folder)
    ct, why = _choose_ct(cts, series_uid=series_uid, referenced=referenced)
    got = _save_series(client, study_uid=study_uid, series=ct, folder=folder, budget=budget)
    _check_complete(client, study_uid=study_uid, ct=ct, got=got)
    say(f"retrieved from the PACS: {ct.label()} ({why}) and {len(rois)} RTSTRUCT/SEG series, "
        f"{budget.used / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return RetrievedStudy(folder=folder, study_uid=study_uid, ct=ct, rois=tuple(rois), n_bytes=budget.used,
                          seconds=time.perf_counter() - t0)


def _referenced(folder: Path) -> set[str]:
    from pipeline.io.dicom_folder import referenced_series_uids

    out: set[str] = set()
    for path in sorted(folder.glob("*.dcm")) if folder.is_dir() else []:
        out |= referenced_series_uids(path)
    return out


def _check_complete(client: PacsClient, *, study_uid: str, ct: SeriesInfo, got: int) -> None:
    expected = ct.n_instances
    now = _count(client, study_uid, ct.series_uid)
    if expected is not None and now is not None and now != expected:
        raise PacsError(f"the CT series is still arriving on the PACS ({expected} images, then {now}); "
                        "try again when it is complete")
    if expected is not None and got != expected:
        raise PacsError(f"the PACS sent {got} of the {expected} images of the CT series; the series is "
                        "incomplete (still arriving?): try again later")
    if got == 0:
        raise PacsError("the PACS sent no image of the CT series")
