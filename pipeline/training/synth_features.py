"""Feature tables of synthetic cohorts without image files (``pleura synth OUT --features-out``).

:func:`synth_feature_table` draws case i of a cohort exactly as
:func:`pipeline.synth.write_cohort` does, renders only the box around its tumour that the features
read (``make_phantom(..., around_tumour_mm=...)``, bit-identical there to the whole render), turns
it into the :class:`~pipeline.inputs.case.PreparedCase` that reading the NIfTI pair would give
(:func:`~pipeline.inputs.case.prepare_box` on the geometry the files would store,
:func:`~pipeline.io.readers.nifti_geometry`) and extracts every feature with the same extractors
as ``pleura features`` (:func:`pipeline.training.dataset.extract_one`'s row). It writes the
cohort's ``clinical.csv`` (``ct_path``/``roi_path`` empty: there are no images) and the feature
table (same columns and metadata as ``pleura features``), resumable (journal next to the table:
an interrupted run continues without losing or duplicating rows) and in parallel over workers.

Generation 3 only (the box renderer's noise is drawn per slice). The CT intensity check of
:func:`~pipeline.inputs.case.load_case` needs the whole CT and is not run (a phantom is in HU by
construction); everything else, including the ROI checks and their errors, is the same.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import PipelineConfig
from pipeline.core.errors import PleuraRiskError
from pipeline.core.hashing import bytes_sha256
from pipeline.core.journal import append_journal, journal_path, open_journal, read_journal
from pipeline.serving.batch import run_pool
from pipeline.training.dataset import current_extractors, image_columns, init_extractors, table_meta, write_table

__all__ = ["SynthCase", "synth_feature_table", "prepared_phantom"]


@dataclass(frozen=True)
class SynthCase:
    """Case ``index`` of the cohort (``seed``, ``size``, ``generation``, ``scanner`` name or "")."""

    seed: int
    index: int
    size: str
    generation: int
    scanner: str


def prepared_phantom(case: Any, *, config: PipelineConfig):  # noqa: ANN201
    """(PreparedCase, PhantomTruth) of a drawn generation-3 case (a ``SampledCase``), as
    ``load_case`` would prepare its written NIfTI pair (module docstring)."""
    from pipeline.core.volume import Volume
    from pipeline.inputs.case import prepare_box
    from pipeline.io.readers import nifti_geometry
    from pipeline.synth import make_phantom

    p = config.preprocess
    margin = max(p.crop_margin_mm, p.crop_min_margin_voxels * max(case.spec.spacing_xyz)) + 2.0
    for around in (margin, None):  # the whole render if the crop ever left the box
        ph = make_phantom(case.spec, around_tumour_mm=around)
        whole = Volume(np.broadcast_to(np.zeros((), dtype=ph.ct.array.dtype), ph.truth.shape_zyx),
                       spacing_xyz=ph.ct.spacing_xyz, origin_xyz=ph.whole_origin_xyz or ph.ct.origin_xyz,
                       direction=ph.ct.direction)
        try:
            prepared = prepare_box(ph.ct.array, ph.roi.array, start_zyx=ph.start_zyx, geometry=nifti_geometry(whole),
                                   config=config)
        except ValueError:
            if around is None:
                raise
            continue
        return prepared, ph.truth
    raise AssertionError("unreachable")


def _synth_one(task: SynthCase) -> dict[str, Any]:
    """Journal row of one case: its clinical.csv row, and its features or error (as ``pleura features``)."""
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.synth.cohort import case_row, draw_case

    t, cpu = time.perf_counter(), time.process_time()
    case = draw_case(seed=task.seed, index=task.index, size=task.size, generation=task.generation,
                     scanner=_scanner(task))
    row: dict[str, Any] = {"case_id": case.spec.case_id, "label": float(case.label), "p_true": case.p_true,
                           "index": task.index}
    extractors = current_extractors()
    try:
        prepared, truth = prepared_phantom(case, config=extractors.config)
        row["clinical"] = case_row(case, truth, size=task.size, ct_path="", roi_path="")
        clinical = parse_clinical(cea=str(row["clinical"]["CEA"]), ca125=str(row["clinical"]["CA125"]),
                                  age=str(row["clinical"]["age"]))
        vector = extractors.extract(prepared, clinical)
        row.update(status="ok", error="", features=vector.as_dict(), image=image_columns(prepared),
                   order=list(vector.names) + list(image_columns(prepared)))
    except PleuraRiskError as err:
        row.update(status="error", error=f"{err.code}: {err}")
    except Exception as exc:  # noqa: BLE001
        row.update(status="error", error=f"internal: {type(exc).__name__}: {exc}")
    if "clinical" not in row:  # the phantom failed before its truth: the row from a whole render
        from pipeline.synth import make_phantom
        try:
            row["clinical"] = case_row(case, make_phantom(case.spec).truth, size=task.size, ct_path="", roi_path="")
        except Exception as exc:  # noqa: BLE001 - a phantom that cannot be rendered at all
            row.update(status="error", error=f"internal: {type(exc).__name__}: {exc}", clinical=None)
    row["seconds"] = round(time.perf_counter() - t, 3)
    row["cpu_seconds"] = round(time.process_time() - cpu, 3)  # this worker's CPU (all its threads): sizing builds
    return row


def _scanner(task: SynthCase):  # noqa: ANN202
    if not task.scanner:
        return None
    from pipeline.synth import SCANNER_PROFILES, SCANNER_PROFILES_3

    return {**SCANNER_PROFILES, **SCANNER_PROFILES_3}[task.scanner]


def synth_feature_table(out_dir: str | os.PathLike[str], features_out: str | os.PathLike[str], *, n: int, seed: int,
                        size: str = "clinical", generation: int = 3, scanner: str | None = None,
                        config: PipelineConfig | None = None, backbone_spec: str = "seed:0", workers: int = 1,
                        num_threads: int | None = None,
                        progress: Callable[[int, int, dict[str, Any] | None], None] | None = None) -> pd.DataFrame:
    """Draw ``n`` cases of cohort ``seed`` and write ``out_dir/clinical.csv`` and the feature table
    ``features_out`` without image files (module docstring); returns the table.

    Args:
        out_dir: folder for ``clinical.csv`` (created).
        features_out: parquet to write (its journal lies next to it).
        n, seed, size, generation, scanner: the cohort, as for ``write_cohort`` (generation 3 only;
            ``scanner``: a profile name or None for one of generation 3's per case).
        config, backbone_spec: extraction settings (``pleura features``' defaults).
        workers, num_threads: processes, and torch threads in each.
    """
    from pipeline.core.errors import CohortError
    from pipeline.synth import SCANNER_PROFILES, SCANNER_PROFILES_3
    from pipeline.synth.specs import check_size

    if generation != 3:
        raise CohortError("feature tables without image files need generation-3 phantoms")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise CohortError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise CohortError(f"seed must be an int >= 0, got {seed!r}")
    check_size(size)
    if scanner and scanner not in {**SCANNER_PROFILES, **SCANNER_PROFILES_3}:
        raise CohortError(f"scanner must be one of {sorted({**SCANNER_PROFILES, **SCANNER_PROFILES_3})}")
    config = config or PipelineConfig()
    meta, settings_key = table_meta(config, backbone_spec)
    out = Path(features_out)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [SynthCase(int(seed), i, size, generation, scanner or "") for i in range(int(n))]
    keyed = [(t, bytes_sha256(json.dumps({"synth": [t.seed, t.index, t.size, t.generation, t.scanner],
                                          "settings": settings_key}, sort_keys=True).encode())) for t in tasks]
    journal = journal_path(out)
    previous = read_journal(journal)
    done = {k: previous[k] for _t, k in keyed if k in previous and not str(previous[k].get("error", "")).startswith("internal")}
    pending = [(t, k) for t, k in keyed if k not in done]
    if progress:
        progress(len(done), len(keyed), None)
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    order_file = journal.with_name(journal.name + ".columns.json")
    with open_journal(journal) as fh:
        for key, row in run_pool(pending, fn=_synth_one, workers=workers, initializer=init_extractors,
                                 initargs=(config_json, backbone_spec, num_threads),
                                 on_crash=lambda t: {"case_id": f"case_{t.index:04d}", "index": t.index,
                                                     "status": "error", "error": "internal: worker crashed"}):
            row["input_key"] = key
            order = row.pop("order", None)
            if order and not order_file.exists():  # the journal sorts keys: keep the vector's order once
                order_file.write_text(json.dumps(order))
            append_journal(fh, row)
            done[key] = row
            if progress:
                progress(len(done), len(keyed), row)
    rows = [done[k] for _t, k in keyed]
    clinical = [r["clinical"] for r in rows if r.get("clinical")]
    if clinical:
        columns = list(dict.fromkeys(c for r in clinical for c in r))
        tmp = folder / "clinical.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(clinical)
        os.replace(tmp, folder / "clinical.csv")
    records = []
    for r in rows:
        flat = {k: r.get(k) for k in ("case_id", "status", "error", "label", "p_true")}
        flat.update(r.get("features") or {})
        flat.update(r.get("image") or {})
        records.append(flat)
    table = pd.DataFrame.from_records(records)
    if order_file.exists():  # bookkeeping, then the features in vector order, then image_* (as pleura features)
        order = [c for c in json.loads(order_file.read_text()) if c in table.columns]
        table = table[[c for c in table.columns if c not in order] + order]
    write_table(table, out, meta)
    return table
