"""Find the cases of a batch: a folder of images or a manifest CSV, joined with clinical values.

Accepted layouts (the same for the CLI, the app's batch page and Docker):

1. flat folder: ``<case>_ct.<ext>`` + ``<case>_roi.<ext>`` (ext: .nii.gz, .nii, .nrrd, .mha …);
2. one sub-folder per case holding ``ct.<ext>`` (or a ``ct/`` DICOM folder, or ``ct.zip``) and
   ``roi.<ext>`` — or, instead of ``roi.<ext>``, a DICOM RTSTRUCT/SEG file in the case folder or
   in the ``ct/`` DICOM folder itself;
3. a manifest CSV with ``case_id, ct_path, roi_path`` (paths relative to the CSV; ``roi_path``
   may be empty when the CT's DICOM folder holds the RTSTRUCT/SEG), optionally ``roi_name`` (the
   RTSTRUCT ROI / SEG segment to score) and, when no separate clinical CSV is given,
   ``CEA, CA125, age``.

Clinical values come from a CSV with ``case_id, CEA, CA125, age``. Every case id seen anywhere
becomes exactly one case: images without clinical values, clinical rows without images, and bad
values all become cases that fail with a message in their own row — nothing is silently dropped.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.inputs.clinical import ClinicalValues, read_clinical_csv
from pipeline.core.errors import ClinicalValueError, CohortError
from pipeline.io.readers import IMAGE_SUFFIXES, image_suffix


@dataclass(frozen=True)
class CaseInput:
    """One case to score; ``problem`` set means it cannot be scored (reported in its row)."""

    case_id: str
    ct_path: str | None
    roi_path: str | None
    clinical: ClinicalValues | None
    problem: str | None = None
    problem_type: str | None = None
    roi_name: str | None = None


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    d = folder / stem
    if d.is_dir():
        return d
    z = folder / f"{stem}.zip"
    return z if stem == "ct" and z.is_file() else None


def _dicom_roi_in(folder: Path) -> Path | None:
    """The one RTSTRUCT/SEG file directly in a case folder (None when there is none or several)."""
    from pipeline.io.dicom_roi import dicom_roi_kind

    found = [p for p in sorted(folder.iterdir()) if p.is_file() and not image_suffix(p) and dicom_roi_kind(p)]
    return found[0] if len(found) == 1 else None


def _scan_folder(root: Path) -> dict[str, tuple[Path | None, Path | None]]:
    found: dict[str, list[Path | None]] = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and image_suffix(p):
            stem = p.name[: -len(image_suffix(p))]
            for role, idx in (("_ct", 0), ("_roi", 1)):
                if stem.endswith(role):
                    found.setdefault(stem[: -len(role)], [None, None])[idx] = p
        elif p.is_dir():
            ct, roi = _find(p, "ct"), _find(p, "roi")
            if ct is not None and roi is None:
                roi = _dicom_roi_in(p)
            if ct is not None or roi is not None:
                found[p.name] = [ct, roi]
    return {k: (v[0], v[1]) for k, v in found.items()}


def _read_manifest(path: Path) -> tuple[dict[str, tuple[Path | None, Path | None]], dict[str, dict[str, str]],
                                        dict[str, str]]:
    try:
        return _parse_manifest(path)
    except UnicodeDecodeError:
        raise CohortError("case manifest is not UTF-8 text") from None
    except csv.Error as exc:
        raise CohortError(f"case manifest is malformed: {exc}") from None


def _parse_manifest(path: Path) -> tuple[dict[str, tuple[Path | None, Path | None]], dict[str, dict[str, str]],
                                         dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {h.strip().lower(): h for h in (reader.fieldnames or []) if h}
        missing = [c for c in ("case_id", "ct_path", "roi_path") if c not in header]
        if missing:
            raise CohortError(f"case manifest lacks column(s) {', '.join(missing)}")
        images: dict[str, tuple[Path | None, Path | None]] = {}
        rows: dict[str, dict[str, str]] = {}
        roi_names: dict[str, str] = {}
        for line_no, row in enumerate(reader, start=2):
            cid = (row.get(header["case_id"]) or "").strip()
            if not cid:
                raise CohortError(f"case manifest line {line_no} has an empty case_id")
            if cid in images:
                raise CohortError(f"case manifest lists case_id {cid!r} more than once (line {line_no})")
            paths = []
            for col in ("ct_path", "roi_path"):
                value = (row.get(header[col]) or "").strip()
                paths.append((path.parent / value) if value else None)
            images[cid] = (paths[0], paths[1])
            if "roi_name" in header and (row.get(header["roi_name"]) or "").strip():
                roi_names[cid] = (row.get(header["roi_name"]) or "").strip()
            rows[cid] = {k.strip().lower(): (v or "") for k, v in row.items() if k}
    return images, rows, roi_names


def discover_cases(source: str | os.PathLike[str], *, clinical_csv: str | os.PathLike[str] | None = None,
                   roi_name: str | None = None) -> list[CaseInput]:
    """All cases of ``source`` (folder or manifest CSV), in a stable order (sorted case ids).

    ``roi_name``: RTSTRUCT ROI / SEG segment to score in every case (a manifest's ``roi_name``
    column overrides it per case).

    Raises:
        CohortError: source missing/empty, malformed CSVs, duplicate case ids.
    """
    src = Path(source)
    manifest_rows: dict[str, dict[str, str]] = {}
    roi_names: dict[str, str] = {}
    if src.is_file() and src.suffix.lower() == ".csv":
        images, manifest_rows, roi_names = _read_manifest(src)
    elif src.is_dir():
        images = _scan_folder(src)
    else:
        raise CohortError("batch source must be a folder of cases or a manifest .csv")
    clinical: dict[str, ClinicalValues | ClinicalValueError] = {}
    if clinical_csv is not None:
        clinical = read_clinical_csv(clinical_csv)
    elif manifest_rows:
        from pipeline.inputs.clinical import parse_clinical

        for cid, row in manifest_rows.items():
            try:
                clinical[cid] = parse_clinical(cea=row.get("cea"), ca125=row.get("ca125"), age=row.get("age"))
            except ClinicalValueError as err:
                clinical[cid] = err
    else:
        raise CohortError("no clinical values: give --clinical CLINICAL.csv (columns case_id, CEA, CA125, age)")
    if not images and not clinical:
        raise CohortError("no cases found (expected <case>_ct.nii.gz + <case>_roi.nii.gz, or one folder per case)")
    cases = []
    for cid in sorted(set(images) | set(clinical)):
        ct, roi = images.get(cid, (None, None))
        clin = clinical.get(cid)
        problem = ptype = None
        if cid not in images:
            problem, ptype = "clinical CSV lists this case but no CT/ROI images were found for it", "cohort"
        elif ct is None:
            problem, ptype = "no CT image found for this case", "cohort"
        elif roi is None and not (ct.is_dir() or ct.name.lower().endswith(".zip")):
            problem, ptype = "no ROI mask found for this case", "cohort"
        elif clin is None:
            problem, ptype = "no clinical values (CEA, CA125, age) for this case in the clinical CSV", "clinical"
        elif isinstance(clin, ClinicalValueError):
            problem, ptype = str(clin), clin.code
        cases.append(CaseInput(cid, str(ct) if ct else None, str(roi) if roi else None,
                               clin if isinstance(clin, ClinicalValues) else None, problem, ptype,
                               roi_names.get(cid, roi_name)))
    return cases
