"""Find the cases of a batch: a folder of images or a manifest CSV, joined with clinical values.

Accepted layouts (the same for the CLI, the app's batch page and Docker):

1. flat folder: ``<case>_ct.<ext>`` + ``<case>_roi.<ext>`` (ext: .nii.gz, .nii, .nrrd, .mha …);
2. one sub-folder per case holding ``ct.<ext>`` (or a ``ct/`` DICOM folder) and ``roi.<ext>``;
3. a manifest CSV with ``case_id, ct_path, roi_path`` (paths relative to the CSV) and, when no
   separate clinical CSV is given, ``CEA, CA125, age``. Instead of ``roi_path`` a row may give
   ``seed_mm``: one click inside the tumour as one text cell "X,Y,Z" (physical LPS mm as
   SimpleITK reports them; quote it in a comma-separated file, or separate the numbers with
   spaces); the ROI is then segmented semi-automatically (:mod:`pipeline.segment`). A row with
   both, or a seed that is not three numbers, fails in its own row.

Clinical values come from a CSV with ``case_id, CEA, CA125, age``. Every case id seen anywhere
becomes exactly one case: images without clinical values, clinical rows without images, and bad
values all become cases that fail with a message in their own row — nothing is silently dropped.
"""

from __future__ import annotations

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
    seed_mm: tuple[float, float, float] | None = None  # a click instead of roi_path (LPS mm)


_Images = dict[str, tuple[Path | None, Path | None]]


def _find(folder: Path, stem: str) -> list[Path]:
    """Every image named ``stem`` in ``folder``: files ``stem.<image suffix>`` and a ``stem/`` folder."""
    found = [p for suffix in IMAGE_SUFFIXES if (p := folder / f"{stem}{suffix}").is_file()]
    found += [folder / stem] if (folder / stem).is_dir() else []
    return found + ([z] if stem == "ct" and (z := folder / "ct.zip").is_file() else [])


def _dicom_roi_in(folder: Path) -> Path | None:
    """The one RTSTRUCT/SEG file directly in a case folder (None when there is none or several)."""
    from pipeline.io.dicom_roi import dicom_roi_kind

    found = [p for p in sorted(folder.iterdir()) if p.is_file() and not image_suffix(p) and dicom_roi_kind(p)]
    return found[0] if len(found) == 1 else None


def _ambiguity(case_id: str, role: str, paths: list[Path]) -> str:
    kinds = sorted({image_suffix(p) or "folder" for p in paths})
    return (f"{len(paths)} {role} images found for this case ({', '.join(kinds)}); it is unclear which one to use, "
            "keep only one")


def _scan_folder(root: Path) -> tuple[_Images, dict[str, str]]:
    """Images by case id, and a problem for each case whose CT or ROI is ambiguous (two files
    for one role, or a case both as flat files and as a folder)."""
    found: dict[str, list[list[Path]]] = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and image_suffix(p):
            stem = p.name[: -len(image_suffix(p))]
            for role, idx in (("_ct", 0), ("_roi", 1)):
                if stem.endswith(role):
                    found.setdefault(stem[: -len(role)], [[], []])[idx].append(p)
        elif p.is_dir():
            ct, roi = _find(p, "ct"), _find(p, "roi")
            if ct and not roi and (structure := _dicom_roi_in(p)) is not None:
                roi = [structure]
            if ct or roi:
                slots = found.setdefault(p.name, [[], []])
                slots[0].extend(ct)
                slots[1].extend(roi)
    images: _Images = {}
    problems: dict[str, str] = {}
    for cid, (cts, rois) in found.items():
        for role, paths in (("CT", cts), ("ROI", rois)):
            if len(paths) > 1:
                problems.setdefault(cid, _ambiguity(cid, role, paths))
        images[cid] = (cts[0] if cts else None, rois[0] if rois else None)
    return images, problems


def _read_manifest(path: Path) -> tuple[_Images, dict[str, dict[str, str]], dict[str, str]]:
    """Images, raw rows and per-row problems (more fields than columns) of a manifest CSV."""
    from pipeline.inputs.csvtable import read_table

    table = read_table(path, what="case manifest", required=("case_id",))
    roi_col = "seed_mm" if "seed_mm" in table.columns and "roi_path" not in table.columns else "roi_path"
    missing = [c for c in ("case_id", "ct_path", roi_col) if c not in table.columns]
    if missing:
        raise CohortError(f"case manifest lacks column(s) {', '.join(missing)}; required: case_id, ct_path, roi_path "
                          "(or seed_mm, a click in the tumour)")
    twice = [c for c in ("ct_path", "roi_path", "seed_mm") if table.columns.count(c) > 1]
    if twice:
        raise CohortError(f"case manifest has the column {twice[0]} more than once; keep one")
    images: _Images = {}
    rows: dict[str, dict[str, str]] = {}
    problems: dict[str, str] = {}
    for row in table.rows:
        cid = (row.values.get("case_id") or "").strip()
        if not cid:
            raise CohortError(f"case manifest line {row.line} has an empty case_id")
        if cid in images:
            raise CohortError(f"case manifest lists case_id {cid!r} more than once (line {row.line})")
        paths = []
        for col in ("ct_path", "roi_path"):
            value = (row.values.get(col) or "").strip()
            paths.append((path.parent / value) if value else None)
        images[cid] = (paths[0], paths[1])
        rows[cid] = row.values
        if row.problem:
            problems[cid] = row.problem
    return images, rows, problems


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
    if src.is_file() and src.suffix.lower() == ".csv":
        images, manifest_rows, ambiguous = _read_manifest(src)
    elif src.is_dir():
        images, ambiguous = _scan_folder(src)
    else:
        raise CohortError("batch source must be a folder of cases or a manifest .csv")
    clinical: dict[str, ClinicalValues | ClinicalValueError] = {}
    if clinical_csv is not None:
        clinical = read_clinical_csv(clinical_csv)
    elif manifest_rows:
        from pipeline.inputs.clinical import parse_clinical

        for cid, row in manifest_rows.items():
            if cid in ambiguous:  # the row's fields are shifted: its values cannot be trusted
                clinical[cid] = ClinicalValueError(ambiguous[cid])
                continue
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
        seed, seed_problem = _seed_of(manifest_rows.get(cid, {}))
        if cid in ambiguous:
            problem, ptype = ambiguous[cid], "cohort"
        elif cid not in images:
            problem, ptype = "clinical CSV lists this case but no CT/ROI images were found for it", "cohort"
        elif ct is None:
            problem, ptype = "no CT image found for this case", "cohort"
        elif seed_problem:
            problem, ptype = seed_problem, "seed"
        elif seed is not None and roi is not None:
            problem, ptype = "the manifest row gives both roi_path and seed_mm; keep one", "cohort"
        elif roi is None and seed is None and not (ct.is_dir() or ct.name.lower().endswith(".zip")):
            problem, ptype = "no ROI mask found for this case", "cohort"
        elif clin is None:
            problem, ptype = "no clinical values (CEA, CA125, age) for this case in the clinical CSV", "clinical"
        elif isinstance(clin, ClinicalValueError):
            problem, ptype = str(clin), clin.code
        cases.append(CaseInput(cid, str(ct) if ct else None, str(roi) if roi else None,
                               clin if isinstance(clin, ClinicalValues) else None, problem, ptype,
                               (manifest_rows.get(cid, {}).get("roi_name") or "").strip() or roi_name, seed))
    return cases


def _seed_of(row: dict[str, str]) -> tuple[tuple[float, float, float] | None, str | None]:
    """(click, problem) of a manifest row's ``seed_mm`` cell: "X,Y,Z" in LPS mm, or empty."""
    text = (row.get("seed_mm") or "").strip().strip("()[]")
    if not text:
        return None, None
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(abs(v) < 1e6 for v in values):
        return None, "the seed_mm cell must be three numbers X,Y,Z in mm (LPS), e.g. \"-80.5,12,-140\""
    return values, None  # type: ignore[return-value]
