"""Cost of generation-3 phantoms by tumour size: render, NIfTI write and full feature extraction.

    python bench/synth3_timing.py OUT_DIR [--size clinical] [--thickness 1.25] [--diameters 8 30 60 100]

For each diameter: one generation-3 case (seed 7, scanner ``standard_mid``, the given slice
thickness) with the tumour set to that diameter (elongated as generation 3 does), rendered with
:func:`pipeline.synth.make_phantom`, written as compressed NIfTI, then all features extracted as
``pleura features`` does (backbone ``seed:0``, one worker). Prints one line per diameter and
writes ``OUT_DIR/timing.json`` (wall and CPU seconds; wall time depends on the machine's load, CPU
seconds much less).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import SimpleITK as sitk  # noqa: E402

from pipeline.synth import make_phantom, sample_case3  # noqa: E402
from pipeline.synth.placement3 import place_tumour3, support  # noqa: E402
from pipeline.synth.tumour import draw_layout  # noqa: E402


def case_for(diameter: float, size: str, thickness: float):  # noqa: ANN201
    base = sample_case3(np.random.default_rng(7), size=size, case_index=0, scanner="standard_mid")
    stretch = 1.0 + 0.1 + 0.8 * max(diameter - 40.0, 0.0) / 60.0
    tumour = dataclasses.replace(base.spec.tumour, diameter_mm=diameter, axes=(0.92 / stretch**0.5, 1.0, stretch))
    if tumour.pleural_tag or tumour.pleural_indentation:
        tumour = dataclasses.replace(tumour, pleural_tag=False, pleural_indentation=False)
    seed = base.spec.seed
    while place_tumour3(draw_layout(seed, tumour), tumour, seed) is None:
        seed += 1
    shape = draw_layout(seed, tumour).shape
    height = support(shape, np.array([0.0, 0.0, 1.0])) + support(shape, np.array([0.0, 0.0, -1.0]))
    nz, ny, nx = base.spec.shape_zyx
    if size == "clinical":
        nz = int(min(320, round(290.0 / thickness)))
    dz = max(thickness, (height + 30.0) / (nz - 1))
    spec = dataclasses.replace(base.spec, tumour=tumour, seed=seed, shape_zyx=(nz, ny, nx),
                               spacing_xyz=base.spec.spacing_xyz[:2] + (round(dz, 6),), slice_thickness_mm=thickness)
    return spec, base.clinical


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children: less sensitive to a
    shared machine's load than wall time."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", default="clinical", choices=["small", "medium", "clinical"])
    ap.add_argument("--thickness", type=float, default=1.25)
    ap.add_argument("--diameters", type=float, nargs="+", default=[8.0, 30.0, 60.0, 100.0])
    ap.add_argument("--no-features", action="store_true")
    args = ap.parse_args(argv)
    from pipeline.core.config import PipelineConfig
    from pipeline.training.dataset import extract_cohort_features

    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for d in args.diameters:
        spec, clinical = case_for(d, args.size, args.thickness)
        t0, c0 = time.perf_counter(), cpu_s()
        ph = make_phantom(spec)
        t1, c1 = time.perf_counter(), cpu_s()
        folder = args.out / f"d{int(d)}"
        folder.mkdir(exist_ok=True)
        sitk.WriteImage(ph.ct.to_sitk(), str(folder / "ct.nii.gz"), useCompression=True)
        sitk.WriteImage(ph.roi.to_sitk(), str(folder / "roi.nii.gz"), useCompression=True)
        t2, c2 = time.perf_counter(), cpu_s()
        row = {"diameter_mm": d, "shape_zyx": list(spec.shape_zyx), "spacing_xyz": list(spec.spacing_xyz),
               "roi_voxels": ph.truth.roi_voxels, "render_s": round(t1 - t0, 2), "write_s": round(t2 - t1, 2),
               "render_cpu_s": round(c1 - c0, 2), "write_cpu_s": round(c2 - c1, 2)}
        if not args.no_features:
            with (folder / "clinical.csv").open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["case_id", "ct_path", "roi_path", "CEA", "CA125", "age", "label"])
                w.writerow(["c0", "ct.nii.gz", "roi.nii.gz", round(clinical.cea_ng_ml, 3),
                            round(clinical.ca125_u_ml, 3), round(clinical.age_years, 1), 1])
            t3, c3 = time.perf_counter(), cpu_s()
            table = extract_cohort_features(folder / "clinical.csv", folder / "features.parquet",
                                            config=PipelineConfig(), backbone_spec="seed:0", workers=1,
                                            num_threads=1)
            row["features_s"] = round(time.perf_counter() - t3, 2)
            row["features_cpu_s"] = round(cpu_s() - c3, 2)
            row["status"] = str(table["status"].iloc[0])
        results.append(row)
        print(json.dumps(row), flush=True)
    load = os.getloadavg()
    (args.out / "timing.json").write_text(json.dumps({"load_avg": load, "cases": results}, indent=2) + "\n")
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
