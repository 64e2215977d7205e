"""Store a scored case's SEG, SR and Encapsulated PDF (from :mod:`pipeline.serving.dicom_out`)
into its study on the PACS with STOW-RS, idempotently.

Idempotent by SOP Instance UID: the objects' Series and SOP Instance UIDs are replaced by UIDs
derived from a *result key* (the study, the CT series, the ROI, the clinical values and the
model), consistently in every reference between them (the SR's evidence, the PDF's sources). So
the same result stored twice has the same UIDs; before storing, the PACS is asked (QIDO-RS)
which of them it already holds and only the others are sent. A different result (other labs,
another model) is a new set of objects. The three go in one STOW-RS request; objects the PACS
reports as failed, or does not hold afterwards (asked again: some servers answer "stored" for an
object a site filter dropped), are named in the error, and a retry sends only what is still
missing. STOW-RS cannot take back what was stored, so a partial store is completed by the retry,
never duplicated.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.pacs.client import PacsClient, PacsError

KINDS = {"seg.dcm": "SEG", "sr.dcm": "SR", "report.dcm": "PDF"}


@dataclass(frozen=True)
class StoreReport:
    """What storing did: (kind, SOP Instance UID) stored now, and already on the PACS before."""

    stored: tuple[tuple[str, str], ...]
    already: tuple[tuple[str, str], ...]

    def summary(self) -> str:
        parts = []
        if self.stored:
            parts.append("stored " + ", ".join(k for k, _ in self.stored))
        if self.already:
            parts.append("already on the PACS: " + ", ".join(k for k, _ in self.already))
        return "; ".join(parts) + " (in the study)"


def result_key(*parts: object) -> str:
    """A stable key of everything a result depends on (sha256 hex of the parts' text)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def derived_uid(key: str, role: str) -> str:
    """A UID under ``2.25`` (PS3.5 B.2: the decimal of a 128-bit number, here the first 128 bits of the
    sha256 of ``key`` and ``role``): the same inputs give the same UID.

    Example:
        >>> derived_uid("k", "SEG/sop") == derived_uid("k", "SEG/sop") != derived_uid("k", "SR/sop")
        True
    """
    digest = hashlib.sha256(f"{key}\x1f{role}".encode("utf-8")).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _remap(ds, mapping: dict[str, str]) -> None:  # noqa: ANN001 - pydicom Dataset
    """Replace every UI value found in ``mapping``, recursively (sequences too) and in the file meta."""
    for element in ds.iterall():
        if element.VR != "UI" or element.value is None:
            continue
        if isinstance(element.value, str) and element.value in mapping:
            element.value = mapping[element.value]
        elif not isinstance(element.value, str):
            element.value = [mapping.get(str(v), v) for v in element.value]
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPInstanceUID", "")) in mapping:
        meta.MediaStorageSOPInstanceUID = mapping[str(meta.MediaStorageSOPInstanceUID)]


def prepared_results(paths: Iterable[str | os.PathLike[str]], *, key: str) -> list[tuple[str, object]]:
    """(kind, dataset) of the written results with their UIDs derived from ``key`` (see module doc)."""
    import pydicom

    loaded = [(KINDS.get(Path(p).name, Path(p).name), pydicom.dcmread(p)) for p in paths]
    mapping: dict[str, str] = {}
    for kind, ds in loaded:
        mapping[str(ds.SOPInstanceUID)] = derived_uid(key, f"{kind}/sop")
        mapping[str(ds.SeriesInstanceUID)] = derived_uid(key, f"{kind}/series")
    for _kind, ds in loaded:
        _remap(ds, mapping)
    return loaded


def _held(client: PacsClient, *, study_uid: str, sop_uid: str) -> bool:
    found = client.call("checking what the PACS already holds", client.web.search_for_instances,
                        study_instance_uid=study_uid, search_filters={"SOPInstanceUID": sop_uid})
    return any(str((f.get("00080018", {}).get("Value") or [""])[0]) == sop_uid for f in found)


def store_results(client: PacsClient, paths: Iterable[str | os.PathLike[str]], *, key: str) -> StoreReport:
    """Store the SEG/SR/PDF files ``paths`` into their study (idempotent by SOP Instance UID).

    Raises:
        PacsError: the PACS failed or refused some objects (named; a retry stores only those).
    """
    results = prepared_results(paths, key=key)
    studies = {str(ds.StudyInstanceUID) for _k, ds in results}
    if len(studies) != 1:
        raise PacsError("the results to store do not belong to one study")
    study_uid = studies.pop()
    already, todo = [], []
    for kind, ds in results:
        (already if _held(client, study_uid=study_uid, sop_uid=str(ds.SOPInstanceUID)) else todo).append((kind, ds))
    if todo:
        response = client.call("storing the results", client.web.store_instances, datasets=[ds for _k, ds in todo],
                               study_instance_uid=study_uid)
        failed = {str(item.ReferencedSOPInstanceUID): item.get("FailureReason")
                  for item in (response.get("FailedSOPSequence") or [])} if response is not None else {}
        if failed:
            names = ", ".join(f"{k} (reason {failed[str(ds.SOPInstanceUID)]})" for k, ds in todo
                              if str(ds.SOPInstanceUID) in failed)
            raise PacsError(f"the PACS refused to store {names}; storing again sends only what is missing")
        # a PACS may answer "stored" and still drop an object (a site filter): check that it holds each one
        missing = [k for k, ds in todo if not _held(client, study_uid=study_uid, sop_uid=str(ds.SOPInstanceUID))]
        if missing:
            raise PacsError(f"the PACS refused to store {', '.join(missing)} (it answered as stored but does not hold "
                            "it: a site policy may refuse such objects); storing again sends only what is missing")
    return StoreReport(stored=tuple((k, str(ds.SOPInstanceUID)) for k, ds in todo),
                       already=tuple((k, str(ds.SOPInstanceUID)) for k, ds in already))
