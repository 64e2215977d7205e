"""How much the probability moves when the ROI is drawn a little differently (issue #22).

    python bench/roi_robustness.py BUNDLE --synth SEED --size clinical --n 300 --out results/roi_robustness
    python bench/roi_robustness.py BUNDLE COHORT_CSV --n 300 --out results/roi_robustness [--threads 1]

On the first ``--n`` cases of a synthetic cohort, each case is scored with

* ``true``: the phantom's own ROI;
* ``eroded``: that ROI eroded by 1 voxel (6-connected structuring element, (z, y, x));
* ``dilated``: dilated by 1 voxel (same element);
* ``seeded``: the semi-automatic ROI grown from a click at the tumour centre
  (``pipeline.segment.segment_from_seed``); when that module is not installed the variant is
  reported as unavailable and the other three still run.

``--synth SEED`` draws the cases of generation-3 cohort SEED (``--size``, ``--scanner`` as for
``pleura synth``) and renders them in memory, no files: each variant's mask is prepared with
:func:`pipeline.inputs.case.prepare_box` on the geometry the NIfTI files would store and scored
with ``Scorer.score_prepared`` -- the same probabilities as writing the cohort with ``pleura synth``
and passing its ``clinical.csv`` (tested; the CT intensity check, which phantoms pass by
construction, is not run). With the semi-automatic variant the whole CT is rendered (the
segmenter looks at the body and lungs of the slab around the click); without it
(``--no-seeded``) only the box around the tumour (≈ 10× cheaper). A cohort CSV instead reads each
case's NIfTI pair (its ``clinical.csv`` carries the true tumour centre as
``sim_tumour_centre_{x,y,z}_mm``) and writes each variant's mask to a temporary file.

Writes ``OUT/roi_robustness.csv`` (case_id, label, p_true, one probability per variant) and
``OUT/roi_robustness.json``: per variant the median, 90th percentile and maximum of |Δp| against
the true ROI, the AUC, the paired AUC difference (variant − true) with a bootstrap 95 % CI (2000
resamples, seed 0), and the issue's goals (median |Δp| ≤ 0.03 for eroded/dilated, ≤ 0.05 for
seeded; |ΔAUC| ≤ 0.02 for seeded). An ROI that erodes to nothing, or a click the segmenter
refuses, is counted in ``failed`` with its one-sentence reason, not scored.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import SimpleITK as sitk  # noqa: E402
from scipy import ndimage  # noqa: E402

from pipeline.core.volume import Volume  # noqa: E402

VARIANTS = ("true", "eroded", "dilated", "seeded")
GOALS = {"eroded": 0.03, "dilated": 0.03, "seeded": 0.05}
_BALL = ndimage.generate_binary_structure(3, 1)


def seeded_available() -> tuple[bool, str]:
    """Whether the semi-automatic segmenter can be imported, and why not."""
    try:
        from pipeline.segment import segment_from_seed  # noqa: F401
    except ImportError as err:
        return False, f"the semi-automatic ROI (pipeline.segment.segment_from_seed) is unavailable here: {err}"
    return True, ""


def variant_masks(ct: Volume, roi: Volume, centre_xyz_mm: tuple[float, float, float],
                  with_seeded: bool) -> dict[str, np.ndarray | str]:
    """Each variant's uint8 (z, y, x) mask on the ROI's grid, or the sentence saying why it failed."""
    m = roi.array > 0
    out: dict[str, np.ndarray | str] = {"true": m.astype(np.uint8)}
    eroded = ndimage.binary_erosion(m, structure=_BALL)
    out["eroded"] = eroded.astype(np.uint8) if eroded.any() else "the ROI erodes to nothing"
    out["dilated"] = ndimage.binary_dilation(m, structure=_BALL).astype(np.uint8)
    if with_seeded:
        from pipeline.segment import segment_from_seed

        try:
            seg = segment_from_seed(ct, seed_xyz_mm=centre_xyz_mm)
            out["seeded"] = (np.asarray(seg.mask.array) > 0).astype(np.uint8)
        except Exception as err:  # noqa: BLE001 - the segmenter's one-sentence refusal, recorded per case
            out["seeded"] = str(err).splitlines()[0] if str(err) else type(err).__name__
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def summarise(rows: list[dict], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Median / P90 / max |Δp| and paired AUC differences per variant (module docstring)."""
    out: dict = {}
    for v in VARIANTS[1:]:
        ok = [r for r in rows if isinstance(r.get(v), float) and isinstance(r.get("true"), float)]
        if len(ok) < 2:
            out[v] = {"n": len(ok)}
            continue
        y = np.array([r["label"] for r in ok])
        a = np.array([r["true"] for r in ok])
        b = np.array([r[v] for r in ok])
        d = np.abs(b - a)
        res = {"n": len(ok), "median_abs_dp": float(np.median(d)), "p90_abs_dp": float(np.percentile(d, 90)),
               "max_abs_dp": float(d.max()), "mean_dp": float(np.mean(b - a))}
        if y.min() != y.max():
            rng = np.random.default_rng(seed)
            diffs = []
            for _ in range(resamples):
                k = rng.integers(0, len(y), len(y))
                if y[k].min() != y[k].max():
                    diffs.append(_auc(y[k], b[k]) - _auc(y[k], a[k]))
            res.update(auc_true=_auc(y, a), auc=_auc(y, b), auc_delta=_auc(y, b) - _auc(y, a),
                       auc_delta_ci95=[float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))])
        res["goal_median_abs_dp"] = GOALS[v]
        res["goal_met"] = bool(res["median_abs_dp"] <= GOALS[v]
                               and (v != "seeded" or abs(res.get("auc_delta", 1.0)) <= 0.02))
        out[v] = res
    return out


def synth_variants(case, *, size: str, config, runtime: str, with_seeded: bool) -> tuple[dict, dict, dict]:  # noqa: ANN001
    """(clinical.csv row, {variant: PreparedCase}, {variant: why it failed}) of a drawn
    generation-3 case rendered in memory (module docstring)."""
    from pipeline.inputs.case import prepare_box
    from pipeline.io.readers import nifti_geometry
    from pipeline.synth import make_phantom
    from pipeline.synth.cohort import case_row

    p = config.preprocess
    spacing = max(case.spec.spacing_xyz)
    # the crop of a dilated ROI reaches one voxel further than the true ROI's
    around = None if with_seeded else max(p.crop_margin_mm, p.crop_min_margin_voxels * spacing) + 2.0 + 2 * spacing
    ph = make_phantom(case.spec, around_tumour_mm=around)
    whole = Volume(np.broadcast_to(np.zeros((), dtype=ph.ct.array.dtype), ph.truth.shape_zyx),
                   spacing_xyz=ph.ct.spacing_xyz, origin_xyz=ph.whole_origin_xyz or ph.ct.origin_xyz,
                   direction=ph.ct.direction)
    geometry = nifti_geometry(whole)  # what reading the written files would give
    row = case_row(case, ph.truth, size=size, ct_path="", roi_path="")
    centre = tuple(float(row[f"sim_tumour_centre_{a}_mm"]) for a in "xyz")
    ct = geometry.with_array(ph.ct.array) if around is None else ph.ct
    prepared, failed = {}, {}
    for name, mask in variant_masks(ct, ph.roi, centre, with_seeded).items():
        if isinstance(mask, str):
            failed[name] = mask
            continue
        try:
            prepared[name] = prepare_box(ph.ct.array, mask, start_zyx=ph.start_zyx, geometry=geometry, config=config,
                                         runtime=runtime)
        except ValueError as err:  # the box is too small for this crop: never with the margin above
            failed[name] = f"internal: {err}"
        except Exception as err:  # noqa: BLE001 - a case the pipeline refuses is recorded, the run goes on
            failed[name] = str(err).splitlines()[0]
    return row, prepared, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("bundle")
    ap.add_argument("cohort", type=Path, nargs="?", default=None,
                    help="clinical.csv of a synthetic cohort written by pleura synth (or give --synth)")
    ap.add_argument("--synth", type=int, default=None, metavar="SEED",
                    help="render generation-3 cohort SEED in memory instead of reading a written cohort")
    ap.add_argument("--size", default="clinical", choices=["small", "medium", "clinical"])
    ap.add_argument("--scanner", default=None, help="with --synth: one scanner profile for every case")
    ap.add_argument("--no-seeded", action="store_true", help="skip the semi-automatic ROI")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if (args.cohort is None) == (args.synth is None):
        ap.error("give either a cohort CSV or --synth SEED")

    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.score import Scorer

    with_seeded, why = (False, "not asked for (--no-seeded)") if args.no_seeded else seeded_available()
    if not with_seeded:
        print(why)
    scorer = Scorer(args.bundle, explain=False, num_threads=args.threads, allow_unsigned=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    t0 = time.perf_counter()

    def record(row: dict, probabilities: dict, failures: dict) -> None:
        row.update(probabilities)
        failed.extend({"case_id": row["case_id"], "variant": v, "reason": r} for v, r in failures.items())
        rows.append(row)
        print(f"{len(rows)}/{args.n} {row['case_id']} " + " ".join(
            f"{v}={row[v]:.3f}" for v in VARIANTS if v in row), flush=True)

    if args.synth is not None:
        from pipeline.synth import SCANNER_PROFILES, SCANNER_PROFILES_3
        from pipeline.synth.cohort import draw_case

        scanner = {**SCANNER_PROFILES, **SCANNER_PROFILES_3}[args.scanner] if args.scanner else None
        for i in range(args.n):
            case = draw_case(seed=args.synth, index=i, size=args.size, generation=3, scanner=scanner)
            try:
                c, prepared, failures = synth_variants(case, size=args.size, config=scorer.bundle.config,
                                                       runtime=scorer.bundle.runtime, with_seeded=with_seeded)
            except Exception as err:  # noqa: BLE001 - a phantom that cannot be rendered is recorded
                failed.append({"case_id": case.spec.case_id, "variant": "all", "reason": str(err).splitlines()[0]})
                continue
            clinical = parse_clinical(cea=str(c["CEA"]), ca125=str(c["CA125"]), age=str(c["age"]))
            probabilities = {}
            for name, prepared_case in prepared.items():
                try:
                    probabilities[name] = float(scorer.score_prepared(prepared_case, clinical).probability)
                except Exception as err:  # noqa: BLE001
                    failures[name] = str(err).splitlines()[0]
            record({"case_id": c["case_id"], "label": int(c["label"]), "p_true": float(c["p_true"])},
                   probabilities, failures)
    else:
        cases = list(csv.DictReader(args.cohort.open(newline="", encoding="utf-8")))[: args.n]
        folder = args.cohort.parent
        with tempfile.TemporaryDirectory() as tmp:
            for c in cases:
                ct_path, roi_path = folder / c["ct_path"], folder / c["roi_path"]
                ct = Volume.from_sitk(sitk.ReadImage(str(ct_path)))
                roi = Volume.from_sitk(sitk.ReadImage(str(roi_path)))
                centre = tuple(float(c[f"sim_tumour_centre_{a}_mm"]) for a in "xyz")
                clinical = parse_clinical(cea=c["CEA"], ca125=c["CA125"], age=c["age"])
                probabilities, failures = {}, {}
                for name, mask in variant_masks(ct, roi, centre, with_seeded).items():
                    if isinstance(mask, str):
                        failures[name] = mask
                        continue
                    path = Path(tmp) / f"{name}.nii.gz"
                    sitk.WriteImage(Volume(mask, spacing_xyz=roi.spacing_xyz, origin_xyz=roi.origin_xyz,
                                           direction=roi.direction).to_sitk(), str(path))
                    try:
                        probabilities[name] = float(scorer.score(ct_path, path, clinical, hash_inputs=False).probability)
                    except Exception as err:  # noqa: BLE001 - a case the pipeline refuses is recorded, the run goes on
                        failures[name] = str(err).splitlines()[0]
                record({"case_id": c["case_id"], "label": int(c["label"]), "p_true": float(c["p_true"])},
                       probabilities, failures)
    with (args.out / "roi_robustness.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["case_id", "label", "p_true", *VARIANTS])
        w.writeheader()
        w.writerows(rows)
    result = {"n_cases": len(rows), "source": (f"generation-3 cohort seed {args.synth} ({args.size}), rendered in memory"
                                               if args.synth is not None else "cohort CSV"),
              "seeded_available": with_seeded, "seeded_note": why,
              "wall_time_s": round(time.perf_counter() - t0, 1), "variants": summarise(rows), "failed": failed}
    (args.out / "roi_robustness.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for v, r in result["variants"].items():
        if "median_abs_dp" in r:
            print(f"{v}: n={r['n']} median |Δp| {r['median_abs_dp']:.3f} (P90 {r['p90_abs_dp']:.3f}), "
                  f"ΔAUC {r.get('auc_delta', float('nan')):+.3f}; goal {'met' if r['goal_met'] else 'NOT met'}")
        else:
            print(f"{v}: not enough scored cases ({r['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
