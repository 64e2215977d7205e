"""Peak memory of scoring one case against the size of its ROI (calibrates the ROI memory guard).

Each measurement runs in a fresh process (``--child``): a medium phantom (256×256×100) with a
spherical ROI of the given diameter around its tumour centre is written to a temporary folder
(by another process, ``--make``), then loaded, featurised and scored with the demo bundle exactly as a batch worker does (model
loaded first), with the ROI plausibility checks switched off (they would refuse the large ROIs
before the work: that is what is being calibrated). The child prints its peak RSS (MiB) and the
guard's estimate inputs: the ROI's bounding box resampled to the radiomics grid (voxels).

    PYTHONPATH=. .venv/bin/python bench/roi_memory.py 20 40 60 80 100

``--both-lungs``: both lungs of a 512×512×300 phantom as the ROI, through a batch worker and
through ``pleura score``: refused, with the peak RSS of each.

Prints one line per diameter: diameter (mm), ROI volume (mL), radiomics box (M voxels), peak RSS
(MiB), and the guard's estimate (MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# bench/pipeline.py would shadow the pipeline package when this script runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _make(diameter_mm: float, folder: str) -> None:
    """Write a medium phantom's CT and a spherical ROI of ``diameter_mm`` around its tumour centre."""
    import SimpleITK as sitk

    from pipeline.synth import PhantomSpec, TumourSpec, make_phantom

    spec = PhantomSpec.for_size("medium", tumour=TumourSpec(diameter_mm=25.0, distance_to_pleura_mm=8.0), seed=3,
                                slice_thickness_mm=2.5)
    ph = make_phantom(spec)
    ct = ph.ct
    centre = np.asarray(ph.truth.tumour_centre_xyz_mm)
    z, y, x = np.indices(ct.shape_zyx, dtype=np.float32)
    origin, (sx, sy, sz) = np.asarray(ct.origin_xyz), ct.spacing_xyz  # axis-aligned phantom grid
    r2 = ((origin[0] + x * sx - centre[0]) ** 2 + (origin[1] + y * sy - centre[1]) ** 2
          + (origin[2] + z * sz - centre[2]) ** 2)
    roi = (r2 <= (diameter_mm / 2) ** 2).astype(np.uint8)
    sitk.WriteImage(ct.to_sitk(), f"{folder}/ct.nii.gz")
    sitk.WriteImage(ct.with_array(roi).to_sitk(), f"{folder}/roi.nii.gz")


def _make_both_lungs(folder: str) -> None:
    """A clinical-size phantom (512×512×300) whose ROI is both lungs (the tissue map's lung label)."""
    import SimpleITK as sitk

    from pipeline.synth import TISSUE_LABELS, PhantomSpec, make_phantom

    ph = make_phantom(PhantomSpec.for_size("clinical", seed=5, slice_thickness_mm=1.25))
    sitk.WriteImage(ph.ct.to_sitk(), f"{folder}/ct.nii.gz", useCompression=True)
    lungs = (ph.tissue.array == TISSUE_LABELS["lung"]).astype(np.uint8)
    sitk.WriteImage(ph.ct.with_array(lungs).to_sitk(), f"{folder}/roi.nii.gz", useCompression=True)


def _child_both_lungs(folder: str) -> dict[str, object]:
    """Score the both-lungs case as a batch worker does (model loaded first): refused; peak RSS."""
    import time

    from pipeline.core.errors import RoiPlausibilityError
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.score import Scorer

    scorer = Scorer(None, explain=True, num_threads=1)
    t = time.perf_counter()
    try:
        scorer.score(f"{folder}/ct.nii.gz", f"{folder}/roi.nii.gz", parse_clinical(cea="3", ca125="12", age="60"),
                     hash_inputs=False)
        outcome = "scored (not refused!)"
    except RoiPlausibilityError as err:
        outcome = f"refused: {err}"
    return {"outcome": outcome, "seconds": time.perf_counter() - t,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(folder: str) -> dict[str, float]:
    """Score the case in ``folder`` as a batch worker does (model loaded first); peak RSS."""
    from pipeline.inputs.case import load_case
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.inputs.roi_checks import estimate_peak_mib, radiomics_box_voxels
    from pipeline.preprocess.crop import roi_bbox
    from pipeline.serving.score import Scorer

    scorer = Scorer(None, explain=True, num_threads=1)
    case = load_case(f"{folder}/ct.nii.gz", f"{folder}/roi.nii.gz", config=scorer.bundle.config, check_roi=False,
                     hash_inputs=False)
    lo, hi = roi_bbox(case.roi_crop.array)
    box = radiomics_box_voxels(tuple(b - a for a, b in zip(lo, hi)), case.roi_crop.spacing_zyx,
                               target_spacing_mm=scorer.bundle.config.preprocess.target_spacing_mm)
    scorer.score_prepared(case, parse_clinical(cea="3", ca125="12", age="60"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    volume_ml = float(case.roi_crop.array.sum()) * float(np.prod(case.roi_crop.spacing_xyz)) / 1000
    return {"volume_ml": volume_ml, "box_mvox": box / 1e6, "peak_mib": peak, "estimate_mib": estimate_peak_mib(box)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("diameters", nargs="*", type=float, default=[20.0, 40.0, 60.0, 80.0])
    parser.add_argument("--make", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--both-lungs", action="store_true",
                        help="instead: both lungs (512×512×300 phantom) as the ROI, scored by a worker and the CLI")
    parser.add_argument("--child-both-lungs", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--make-both-lungs", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_both_lungs:
        _make_both_lungs(args.make_both_lungs)
        return 0
    if args.child_both_lungs:
        print(json.dumps(_child_both_lungs(args.child_both_lungs)))
        return 0
    if args.make is not None:
        _make(float(args.make[0]), args.make[1])
        return 0
    if args.child is not None:
        print(json.dumps(_child(args.child)))
        return 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if args.both_lungs:
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run([sys.executable, __file__, "--make-both-lungs", folder], check=True, env=env)
            out = subprocess.run([sys.executable, __file__, "--child-both-lungs", folder], capture_output=True,
                                 text=True, env=env)
            r = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"outcome": out.stderr[-300:]}
            print(f"batch worker (model loaded first): {r.get('outcome')}; {r.get('seconds', 0):.1f} s, "
                  f"peak RSS {r.get('peak_mib', 0):.0f} MiB")
            cli = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "pipeline.cli.main", "score",
                                  f"{folder}/ct.nii.gz", f"{folder}/roi.nii.gz", "--cea", "3", "--ca125", "12",
                                  "--age", "60"], capture_output=True, text=True, env=env)
            lines = cli.stderr.strip().splitlines()
            print(f"pleura score (CLI): exit {cli.returncode}, {lines[0] if lines else ''}; "
                  f"peak RSS {int(lines[-1]) / 1024:.0f} MiB")
        return 0
    print("diameter_mm  volume_mL  radiomics_box_Mvox  peak_RSS_MiB  guard_estimate_MiB")
    for d in args.diameters:
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run([sys.executable, __file__, "--make", str(d), folder], check=True, env=env)
            out = subprocess.run([sys.executable, __file__, "--child", folder], capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{d:11.0f}  failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{d:11.0f}  {r['volume_ml']:9.1f}  {r['box_mvox']:18.2f}  {r['peak_mib']:12.0f}  "
              f"{r['estimate_mib']:18.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
