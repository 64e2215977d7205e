"""Feature tables for training/validation: extract every feature of every case of a cohort.

``pleura features COHORT.csv --out features.parquet`` reads a cohort CSV (``case_id, ct_path,
roi_path, CEA, CA125, age, label``; paths relative to the CSV; ``pleura synth`` writes one;
optional ``roi_name``: the RTSTRUCT ROI / SEG segment to use, ``roi_path`` then an RTSTRUCT/SEG
file or empty when the CT's DICOM folder holds it),
extracts all feature groups in parallel, and writes one row per case: ``case_id``, ``status``,
``error``, ``label`` (and ``p_true`` for synthetic cohorts), then the features in vector order.
Resumable like ``pleura batch`` (journal + atomic final file). The parquet's metadata records the
PipelineConfig and the backbone (description + fingerprint), so ``pleura train`` can refuse a
table extracted with other settings than the bundle it writes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.journal import append_journal, journal_path, open_journal, read_journal
from pipeline.serving.batch import run_pool
from pipeline.inputs.clinical import parse_clinical
from pipeline.core.config import PipelineConfig
from pipeline.core.errors import CohortError, PleuraRiskError
from pipeline.core.hashing import bytes_sha256
from pipeline.io.detached import input_sha256

META_KEY = b"pleurarisk"
IMAGE_PREFIX = "image_"


@dataclass(frozen=True)
class CohortCase:
    case_id: str
    ct_path: str
    roi_path: str
    cea: str
    ca125: str
    age: str
    label: float
    p_true: float
    roi_name: str = ""  # RTSTRUCT ROI / SEG segment ("" for a mask image); roi_path "" = in the CT folder


def read_cohort(path: str | os.PathLike[str]) -> list[CohortCase]:
    """Cases of a cohort CSV with labels (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CohortError("cohort CSV not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {h.strip().lower(): h for h in (reader.fieldnames or []) if h}
        need = ("case_id", "ct_path", "roi_path", "cea", "ca125", "age")
        missing = [c for c in need if c not in header]
        if missing:
            raise CohortError(f"cohort CSV lacks column(s) {', '.join(missing)}")
        cases, seen = [], set()
        for line_no, row in enumerate(reader, start=2):
            get = lambda c: (row.get(header[c]) or "").strip() if c in header else ""  # noqa: E731
            cid = get("case_id")
            if not cid or cid in seen:
                raise CohortError(f"cohort CSV line {line_no}: empty or duplicate case_id {cid!r}")
            seen.add(cid)
            label = get("label")
            p_true = get("p_true")
            roi = get("roi_path")
            cases.append(CohortCase(cid, str(path.parent / get("ct_path")), str(path.parent / roi) if roi else "",
                                    get("cea"), get("ca125"), get("age"),
                                    float(label) if label not in ("", None) else math.nan,
                                    float(p_true) if p_true not in ("", None) else math.nan, get("roi_name")))
    if not cases:
        raise CohortError("cohort CSV has no rows")
    return cases


_EXTRACTORS = None


def _init_extractors(config_json: str, backbone_spec: str, num_threads: int | None) -> None:
    global _EXTRACTORS
    import torch

    from models.backbones import resolve_backbone

    from pipeline.features.extract import FeatureExtractors

    if num_threads:
        torch.set_num_threads(num_threads)
    config = PipelineConfig.from_dict(json.loads(config_json))
    backbone, _ = resolve_backbone(backbone_spec) if "deep" in config.feature_groups else (None, "")
    _EXTRACTORS = FeatureExtractors(config=config, backbone=backbone, num_threads=num_threads)


def extract_one(case: CohortCase) -> dict[str, Any]:
    """Feature row of one cohort case; failures become ``status=error`` rows."""
    from pipeline.inputs.case import load_case
    from pipeline.inputs.dicom_inputs import resolve_inputs

    t = time.perf_counter()
    row: dict[str, Any] = {"case_id": case.case_id, "label": case.label, "p_true": case.p_true}
    try:
        clinical = parse_clinical(cea=case.cea, ca125=case.ca125, age=case.age)
        with resolve_inputs(case.ct_path, case.roi_path or None, roi_name=case.roi_name or None) as inputs:
            prepared = load_case(inputs.ct_path, inputs.roi_path, config=_EXTRACTORS.config, hash_inputs=False)
        vector = _EXTRACTORS.extract(prepared, clinical)
        row.update(status="ok", error="", features=vector.as_dict(), image=image_columns(prepared))
    except PleuraRiskError as err:
        row.update(status="error", error=f"{err.code}: {err}")
    except Exception as exc:  # noqa: BLE001
        row.update(status="error", error=f"internal: {type(exc).__name__}: {exc}")
    row["seconds"] = round(time.perf_counter() - t, 3)
    return row


def extract_cohort_features(cohort_csv: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                            config: PipelineConfig | None = None, backbone_spec: str = "seed:0", workers: int = 1,
                            num_threads: int | None = None,
                            progress: Callable[[int, int, dict[str, Any] | None], None] | None = None) -> pd.DataFrame:
    """Extract all features of a cohort into ``out_path`` (parquet); returns the table."""
    config = config or PipelineConfig()
    cases = read_cohort(cohort_csv)
    out = Path(out_path)
    meta, settings_key = table_meta(config, backbone_spec)
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    journal = journal_path(out)
    previous = read_journal(journal)
    keyed = []
    for case in cases:
        payload = json.dumps({"ct": input_sha256(case.ct_path) if os.path.exists(case.ct_path) else "",
                              "roi": input_sha256(case.roi_path) if os.path.exists(case.roi_path) else "",
                              "case": [case.case_id, case.cea, case.ca125, case.age, case.label],
                              **({"roi_name": case.roi_name} if case.roi_name else {}),
                              "settings": settings_key}, sort_keys=True)
        keyed.append((case, bytes_sha256(payload.encode())))
    done = {k: previous[k] for _c, k in keyed if k in previous and not str(previous[k].get("error", "")).startswith("internal")}
    pending = [(c, k) for c, k in keyed if k not in done]
    if progress:
        progress(len(done), len(keyed), None)
    with open_journal(journal) as fh:
        for key, row in run_pool(pending, fn=extract_one, workers=workers, initializer=_init_extractors,
                                 initargs=(config_json, backbone_spec, num_threads),
                                 on_crash=lambda c: {"case_id": c.case_id, "label": c.label, "p_true": c.p_true,
                                                     "status": "error", "error": "internal: worker crashed"}):
            row["input_key"] = key
            append_journal(fh, row)
            done[key] = row
            if progress:
                progress(len(done), len(keyed), row)
    records = []
    for case, key in keyed:
        row = done[key]
        flat = {k: row.get(k) for k in ("case_id", "status", "error", "label", "p_true")}
        flat.update(row.get("features") or {})
        flat.update(row.get("image") or {})
        records.append(flat)
    table = pd.DataFrame.from_records(records)
    write_table(table, out, meta)
    return table


def write_table(table: pd.DataFrame, out: Path, meta: dict[str, Any]) -> None:
    """Write a feature table as parquet with PleuraRisk metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        pq.write_table(arrow, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(feature table, PleuraRisk metadata) of a parquet written by :func:`write_table`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise CohortError("feature table not found")
    try:
        arrow = pq.read_table(path)
    except Exception:  # noqa: BLE001
        raise CohortError("feature table is not a readable parquet file") from None
    meta = json.loads((arrow.schema.metadata or {}).get(META_KEY, b"{}"))
    return arrow.to_pandas(), meta


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns (not the bookkeeping ones, nor the ``image_*`` descriptors that only the
    applicability domain uses)."""
    return [c for c in table.columns if c not in ("case_id", "status", "error", "label", "p_true", "input_key", "seconds")
            and not c.startswith(IMAGE_PREFIX)]


def image_columns(case: Any) -> dict[str, float | None]:
    """``image_*`` descriptors of a prepared case for the applicability domain (pixel and slice
    spacing in mm, image noise in HU; :mod:`pipeline.domain`)."""
    from pipeline.serving.domain import image_noise_hu

    sx, sy, sz = case.ct_spacing_xyz
    return {"image_pixel_spacing_mm": float((sx + sy) / 2), "image_slice_spacing_mm": float(sz),
            "image_noise_hu": image_noise_hu(case.ct_crop.array)}


def training_arrays(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(features of ok rows with a label, labels as int)."""
    ok = table[(table["status"] == "ok") & table["label"].notna()]
    if ok.empty:
        raise CohortError("feature table has no successfully extracted, labelled case")
    return ok[feature_columns(table)].astype(float).reset_index(drop=True), ok["label"].astype(int).to_numpy()


def init_extractors(config_json: str, backbone_spec: str, num_threads: int | None) -> None:
    """Worker initialiser: build this process's :class:`~pipeline.features.extract.FeatureExtractors`
    (what :func:`extract_one` uses) from a PipelineConfig's JSON and a backbone spec."""
    _init_extractors(config_json, backbone_spec, num_threads)


def current_extractors():  # noqa: ANN201
    """This process's extractors, built by :func:`init_extractors`."""
    return _EXTRACTORS


def table_meta(config: PipelineConfig, backbone_spec: str) -> tuple[dict[str, Any], str]:
    """(the parquet metadata a feature table records, the settings key its journal rows carry):
    the PipelineConfig and the backbone's description and fingerprint."""
    from models.backbones import backbone_fingerprint, resolve_backbone

    backbone_source, fingerprint = "", ""
    if "deep" in config.feature_groups:
        model, backbone_source = resolve_backbone(backbone_spec)
        fingerprint = backbone_fingerprint(model)
        del model
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    meta = {"config": config.to_dict(), "backbone_spec": backbone_spec, "backbone_source": backbone_source,
            "backbone_fingerprint": fingerprint}
    return meta, bytes_sha256((config_json + fingerprint).encode())
