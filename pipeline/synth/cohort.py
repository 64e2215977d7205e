"""Synthetic cohorts on disk.

Contract: :func:`write_cohort` draws case i of a cohort from child i of ``SeedSequence(seed)``
(:func:`~pipeline.synth.sampling.sample_case`), renders it
(:func:`~pipeline.synth.render.make_phantom`) and writes per case a CT NIfTI (int16 HU) and an ROI
NIfTI (uint8 {0, 1}) with the phantom's geometry (ITK spacing/origin (x, y, z) mm), then one
``clinical.csv`` (CEA ng/mL, CA125 U/mL, age in years, label, p_true, and the true parameters as
``sim_*`` columns, axes spelled out as ``_z``/``_y``/``_x``).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import SimpleITK as sitk

from pipeline.synth.render import make_phantom
from pipeline.synth.generation3 import GENERATIONS
from pipeline.synth.sampling import sample_case
from pipeline.synth.sampling3 import sample_case3
from pipeline.synth.specs import GENERATION_3_TRUTH_FIELDS, PhantomTruth, ScannerProfile, check, check_size, resolve_scanner

__all__ = ["write_cohort", "case_row", "draw_case"]

def _truth_columns(truth: PhantomTruth) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(truth):
        if f.name == "case_id" or (truth.generation == 2 and f.name in GENERATION_3_TRUTH_FIELDS):
            continue
        value = getattr(truth, f.name)
        if f.name == "shape_zyx":
            out.update({"sim_shape_z": value[0], "sim_shape_y": value[1], "sim_shape_x": value[2]})
        elif f.name in ("spacing_xyz", "tumour_centre_xyz_mm"):
            stem = "sim_spacing" if f.name == "spacing_xyz" else "sim_tumour_centre"
            unit = "_mm"
            out.update({f"{stem}_{axis}{unit}": v for axis, v in zip("xyz", value)})
        elif isinstance(value, bool):
            out[f"sim_{f.name}"] = int(value)
        else:
            out[f"sim_{f.name}"] = value
    return out


def draw_case(*, seed: int, index: int, size: str, generation: int,
              scanner: Union[ScannerProfile, str, None] = None, n_slices: Optional[int] = None):  # noqa: ANN201
    """Case ``index`` of the cohort of ``seed`` (a :class:`SampledCase`), exactly as
    :func:`write_cohort` draws it (child ``index`` of ``SeedSequence(seed)``), whatever the cohort's n."""
    profile = resolve_scanner(scanner) if generation == 2 else scanner
    child = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
    draw = sample_case if generation == 2 else sample_case3
    return draw(np.random.default_rng(child), size=size, case_index=int(index), scanner=profile, n_slices=n_slices)


def case_row(case, truth: PhantomTruth, *, size: str, ct_path: str, roi_path: str) -> dict[str, object]:  # noqa: ANN001
    """The ``clinical.csv`` row of a drawn case (a :class:`SampledCase`) and its rendered truth."""
    row: dict[str, object] = {
        "case_id": case.spec.case_id,
        "ct_path": ct_path,
        "roi_path": roi_path,
        "CEA": round(case.clinical.cea_ng_ml, 4),
        "CA125": round(case.clinical.ca125_u_ml, 4),
        "age": round(case.clinical.age_years, 2),
        "label": case.label,
        "p_true": case.p_true,
        "sim_size": size,
    }
    row.update(_truth_columns(truth))
    return row


def write_cohort(
    out_dir: Union[str, os.PathLike],
    *,
    n: int,
    seed: int,
    size: str = "small",
    scanner: Union[ScannerProfile, str, None] = None,
    n_slices: Optional[int] = None,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    generation: int = 2,
) -> Path:
    """Draw and render ``n`` cases into ``out_dir`` and return the path of its ``clinical.csv``.

    Writes ``case_0000_ct.nii.gz`` (int16 HU) and ``case_0000_roi.nii.gz`` (uint8 {0, 1}) per case
    and ``clinical.csv`` with columns case_id, ct_path, roi_path (relative to the CSV's folder),
    CEA (ng/mL), CA125 (U/mL), age (years), label, p_true, then ``sim_*`` true parameters.
    Case i draws from ``SeedSequence(seed).spawn``'s i-th child, so the first cases of a cohort
    do not depend on ``n``, and another ``scanner`` with the same seed gives the same patients,
    tumours and labels on different scanners.

    Args:
        out_dir: folder to write (created if missing).
        n: number of cases (>= 1).
        seed: cohort seed (>= 0).
        size: "small", "medium" or "clinical".
        scanner: a :class:`ScannerProfile`, a name in ``SCANNER_PROFILES`` or None (standard).
        n_slices: overrides the preset's number of slices.
        overwrite: allow replacing an existing ``clinical.csv``.
        progress: called as ``progress(done, n)`` after each case.
        generation: phantom generation: 2 (the default here; bit-for-bit what earlier releases
            wrote for the same seed) or 3 (:func:`~pipeline.synth.sampling3.sample_case3`:
            8–100 mm tumours, contact types, fissures, several scanner profiles; ``scanner=None``
            draws one of ``SCANNER_PROFILES_3`` per case). Generation 3 adds ``sim_generation``
            and its truth columns.
    """
    check(generation in GENERATIONS, f"generation must be one of {list(GENERATIONS)}, got {generation!r}")
    check(isinstance(n, (int, np.integer)) and n >= 1, f"n must be an int >= 1, got {n!r}")
    check(isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be an int >= 0, got {seed!r}")
    check_size(size)
    profile = resolve_scanner(scanner) if generation == 2 else scanner
    out = Path(out_dir)
    csv_path = out / "clinical.csv"
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} already exists; choose an empty folder or pass overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, child in enumerate(np.random.SeedSequence(int(seed)).spawn(int(n))):
        draw = sample_case if generation == 2 else sample_case3
        case = draw(np.random.default_rng(child), size=size, case_index=i, scanner=profile, n_slices=n_slices)
        phantom = make_phantom(case.spec)
        cid = case.spec.case_id
        ct_name, roi_name = f"{cid}_ct.nii.gz", f"{cid}_roi.nii.gz"
        sitk.WriteImage(phantom.ct.to_sitk(), str(out / ct_name), useCompression=True)
        sitk.WriteImage(phantom.roi.to_sitk(), str(out / roi_name), useCompression=True)
        rows.append(case_row(case, phantom.truth, size=size, ct_path=ct_name, roi_path=roi_name))
        if progress is not None:
            progress(i + 1, int(n))
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    return csv_path
