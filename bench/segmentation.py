"""Measured quality of click-to-segment (:mod:`pipeline.segment`): Dice against the true tumour,
what the semi-automatic ROI does to the prediction, and seconds per click.

* **Phantoms**: ``--n`` cases drawn with :func:`pipeline.synth.sample_case` (``--size``, seed
  ``--seed``), rendered in memory; one click per case at a random voxel of the tumour's *central
  half* (true ROI voxels at least half the largest inside-distance from its surface, seeded);
  Dice of the ROI against the phantom's true ROI, reported for juxta-pleural (gap ≤ 0 mm,
  ``PhantomTruth.pleural_contact``) and free-standing tumours separately, and seconds per click.
* **Prediction**: for the first ``--n-prob`` phantoms, the demo bundle's probability
  (``pipeline.serving.score.Scorer``, ``weights/demo`` or ``--bundle``) with the true ROI and with
  the semi-automatic ROI (both written as NIfTI, scored in one warm process): |Δp|.
* **Real CTs** (when ``../shared/fixtures/real_ct`` is present): the PyRadiomics ``lung1`` nodule
  and ``GTV-1`` of NSCLC-Radiomics LUNG1-001 (rasterised with
  :func:`pipeline.io.dicom_roi.rtstruct_mask`); ``--real-clicks`` clicks sampled in the central
  half plus the deepest voxel: Dice per click, best click, spread (best − worst).

Usage::

    python bench/segmentation.py                      # 100 medium phantoms (20 also scored) + real CTs
    python bench/segmentation.py --n 20 --n-prob 10   # a quick look
    python bench/segmentation.py --size clinical --n 10 --n-prob 0 --no-real   # 512² timing
    python bench/segmentation.py --n 30 --n-prob 0 --method confidence:1.5   # SimpleITK ConfidenceConnected baseline

Prints a Markdown summary and writes everything to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.core.errors import InputError  # noqa: E402
from pipeline.segment import segment_from_seed  # noqa: E402

REAL = REPO.parent / "shared" / "fixtures" / "real_ct"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def central_half_clicks(ct, mask: np.ndarray, k: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """``k`` random voxels (LPS mm) at least half the ROI's largest inside-distance from its surface."""
    depth = ndi.distance_transform_edt(mask > 0, sampling=ct.spacing_zyx)
    central = np.argwhere(depth >= 0.5 * depth.max())
    picks = central[rng.choice(len(central), size=min(k, len(central)), replace=False)]
    return [tuple(float(v) for v in ct.index_to_physical(p.astype(float))) for p in picks]


def deepest_click(ct, mask: np.ndarray) -> tuple[float, float, float]:
    depth = ndi.distance_transform_edt(mask > 0, sampling=ct.spacing_zyx)
    p = np.array(np.unravel_index(np.argmax(depth), depth.shape), float)
    return tuple(float(v) for v in ct.index_to_physical(p))


class _Plain:
    """What an off-the-shelf grower gives, shaped like a Segmentation for this bench."""

    def __init__(self, ct, mask: np.ndarray, cap_mm: float) -> None:
        self.mask = ct.with_array(mask.astype(np.uint8))
        self.volume_ml = float(mask.sum() * np.prod(ct.spacing_xyz) / 1000)
        self.threshold_hu = float("nan")
        nz = np.nonzero(mask)
        extent = max((int(i.max()) - int(i.min()) + 1) * s for i, s in zip(nz, ct.spacing_zyx)) if mask.any() else 0
        self.capped = extent >= 0.95 * cap_mm


def confidence_connected(ct, click, *, half_mm: float = 90.0, multiplier: float = 2.5) -> _Plain:
    """SimpleITK ConfidenceConnected at the click (4 iterations, ``multiplier`` × SD, initial
    neighbourhood 2 voxels) on a ±half_mm crop, holes filled: the off-the-shelf baseline."""
    import SimpleITK as sitk

    seed = np.rint(ct.physical_to_index(np.asarray(click, float))).astype(int)
    if any(i < 0 or i >= n for i, n in zip(seed, ct.shape_zyx)):
        raise InputError("the click lies outside the CT")
    lo = [max(0, c - int(np.ceil(half_mm / s))) for c, s in zip(seed, ct.spacing_zyx)]
    hi = [min(n, c + int(np.ceil(half_mm / s)) + 1) for c, s, n in zip(seed, ct.spacing_zyx, ct.shape_zyx)]
    sub = ct.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    img = sitk.GetImageFromArray(sub)
    img.SetSpacing(tuple(float(v) for v in ct.spacing_xyz))
    local = [int(c - a) for c, a in zip(seed, lo)]
    grown = sitk.ConfidenceConnected(img, seedList=[(local[2], local[1], local[0])], numberOfIterations=4,
                                     multiplier=multiplier, initialNeighborhoodRadius=2, replaceValue=1)
    region = ndi.binary_fill_holes(sitk.GetArrayFromImage(grown) > 0)
    out = np.zeros(ct.shape_zyx, bool)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = region
    return _Plain(ct, out, 2 * half_mm)


METHOD = "pleurarisk"


def timed_segment(ct, click):
    t = time.perf_counter()
    try:
        seg = (segment_from_seed(ct, seed_xyz_mm=click) if METHOD == "pleurarisk"
               else confidence_connected(ct, click, multiplier=float(METHOD.split(":")[1])))
        return seg, None, time.perf_counter() - t
    except InputError as err:
        return None, str(err), time.perf_counter() - t


def run_phantoms(args: argparse.Namespace) -> list[dict]:
    from pipeline.synth import make_phantom, sample_case

    scorer = None
    if args.n_prob:
        from pipeline.inputs.clinical import parse_clinical
        from pipeline.io.readers import write_image
        from pipeline.serving.score import Scorer

        scorer = Scorer(args.bundle)
        work = Path(tempfile.mkdtemp(prefix="pleura-segbench-"))
    seeds = np.random.SeedSequence(args.seed).spawn(args.n)
    rows = []
    for i in range(args.n):
        case = sample_case(np.random.default_rng(seeds[i]), size=args.size, case_index=i)
        ph = make_phantom(case.spec)
        rng = np.random.default_rng(i)
        click = central_half_clicks(ph.ct, ph.roi.array, 1, rng)[0]
        seg, error, seconds = timed_segment(ph.ct, click)
        t = ph.truth
        row = {"case": i, "diameter_mm": round(t.diameter_mm, 1), "gap_mm": round(t.distance_to_pleura_mm, 2),
               "juxta_pleural": bool(t.pleural_contact), "solid_fraction": round(t.solid_fraction, 2),
               "dice": dice(seg.mask.array, ph.roi.array) if seg else 0.0, "error": error,
               "capped": bool(seg.capped) if seg else None, "seconds": round(seconds, 3)}
        if scorer is not None and i < args.n_prob and seg is not None:
            clinical = parse_clinical(cea=case.clinical.cea_ng_ml, ca125=case.clinical.ca125_u_ml,
                                      age=case.clinical.age_years)
            ct_path = write_image(ph.ct, work / "ct.nii.gz")
            p = {}
            for name, roi in (("true", ph.roi), ("semi", seg.mask)):
                p[name] = scorer.score(ct_path, write_image(roi, work / f"roi_{name}.nii.gz"), clinical).probability
            row.update(p_true_roi=p["true"], p_semi_roi=p["semi"], abs_dp=abs(p["true"] - p["semi"]))
        rows.append(row)
        print(f"  phantom {i:3d}: D={row['diameter_mm']:5.1f} gap={row['gap_mm']:5.1f} dice={row['dice']:.3f} "
              f"t={seconds:.2f}s" + (f" |dp|={row['abs_dp']:.3f}" if "abs_dp" in row else "")
              + (f" error: {error}" if error else ""), file=sys.stderr, flush=True)
    return rows


def real_cases():
    from pipeline.io.readers import read_image

    lung1 = REAL / "pyradiomics_lung1"
    if lung1.is_dir():
        yield ("pyradiomics lung1 nodule", read_image(lung1 / "lung1_image.nrrd", role="CT"),
               read_image(lung1 / "lung1_label.nrrd", role="ROI mask").array)
    folder = REAL / "nsclc_lung1_001" / "dicom"
    if folder.is_dir():
        from pipeline.io.dicom_folder import choose_series, scan_dicom_folder
        from pipeline.io.dicom_roi import rtstruct_mask

        inv = scan_dicom_folder(folder)
        series, _ = choose_series(inv)
        ct = read_image(folder, role="CT")
        yield ("LUNG1-001 GTV-1", ct, rtstruct_mask(inv.structure_sets[0], series=series, grid=ct,
                                                      roi_name="GTV-1").array)


def run_real(args: argparse.Namespace) -> list[dict]:
    out = []
    for name, ct, mask in real_cases():
        rng = np.random.default_rng(args.seed)
        clicks = [deepest_click(ct, mask), *central_half_clicks(ct, mask, args.real_clicks, rng)]
        results = []
        for c in clicks:
            seg, error, seconds = timed_segment(ct, c)
            results.append({"click_xyz_mm": [round(v, 1) for v in c], "dice": dice(seg.mask.array, mask) if seg else 0.0,
                            "error": error, "capped": bool(seg.capped) if seg else None,
                            "volume_ml": round(seg.volume_ml, 2) if seg else None, "seconds": round(seconds, 3)})
            print(f"  {name}: dice={results[-1]['dice']:.3f} t={seconds:.2f}s" + (f" error: {error}" if error else ""),
                  file=sys.stderr, flush=True)
        d = [r["dice"] for r in results]
        out.append({"case": name, "true_volume_ml": float(mask.sum() * np.prod(ct.spacing_xyz) / 1000),
                    "clicks": results, "best_dice": max(d), "worst_dice": min(d), "median_dice": float(np.median(d)),
                    "spread": max(d) - min(d)})
    return out


def summary(phantoms: list[dict], real: list[dict]) -> str:
    lines = []
    if phantoms:
        def stats(rows):
            d = np.array([r["dice"] for r in rows])
            return (f"{len(rows)} | {np.median(d):.3f} | {np.percentile(d, 25):.3f} | {d.min():.3f} | "
                    f"{(d >= 0.8).mean() * 100:.0f} %") if rows else "0 | – | – | – | –"
        lines += ["| phantoms | n | median Dice | 25th pct | min | Dice ≥ 0.80 |", "|---|---|---|---|---|---|"]
        lines.append("| all | " + stats(phantoms) + " |")
        lines.append("| juxta-pleural (gap ≤ 0) | " + stats([r for r in phantoms if r["juxta_pleural"]]) + " |")
        lines.append("| free-standing | " + stats([r for r in phantoms if not r["juxta_pleural"]]) + " |")
        lines.append("| part-solid (CTR < 1) | " + stats([r for r in phantoms if r["solid_fraction"] < 1]) + " |")
        secs = np.array([r["seconds"] for r in phantoms])
        mid = np.array([r["seconds"] for r in phantoms if 25 <= r["diameter_mm"] <= 35])
        lines += ["", f"Seconds per click: median {np.median(secs):.2f}, 90th percentile {np.percentile(secs, 90):.2f}, "
                      f"max {secs.max():.2f}" + (f"; tumours 25–35 mm: median {np.median(mid):.2f}" if len(mid) else ""),
                  f"Errors (click refused): {sum(1 for r in phantoms if r['error'])}; capped: "
                  f"{sum(1 for r in phantoms if r['capped'])}"]
        dp = np.array([r["abs_dp"] for r in phantoms if "abs_dp" in r])
        if len(dp):
            lines.append(f"|p(semi-automatic ROI) − p(true ROI)| over {len(dp)} phantoms (demo bundle): median "
                         f"{np.median(dp):.3f}, 90th percentile {np.percentile(dp, 90):.3f}, max {dp.max():.3f}")
    if real:
        lines += ["", "| real CT | clicks | best Dice | median | worst | spread (best − worst) |", "|---|---|---|---|---|---|"]
        for r in real:
            lines.append(f"| {r['case']} | {len(r['clicks'])} | {r['best_dice']:.3f} | {r['median_dice']:.3f} | "
                         f"{r['worst_dice']:.3f} | {r['spread']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100, help="phantoms (default 100)")
    p.add_argument("--n-prob", type=int, default=20,
                   help="phantoms also scored with both ROIs (default 20, ≈ 50 s each on 2 busy cores; 0: none)")
    p.add_argument("--size", default="medium", help="phantom size preset: small, medium (default), clinical")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--bundle", default=None, help="bundle for the probability comparison (default weights/demo)")
    p.add_argument("--real-clicks", type=int, default=10, help="clicks per real CT (plus the deepest voxel)")
    p.add_argument("--no-real", action="store_true", help="skip the real CTs")
    p.add_argument("--out", default=None, help="write everything as JSON here")
    p.add_argument("--method", default="pleurarisk",
                   help="pleurarisk (default) or confidence:K (SimpleITK ConfidenceConnected, K × SD; the baseline)")
    args = p.parse_args(argv)
    global METHOD
    METHOD = args.method
    if METHOD != "pleurarisk" and not METHOD.startswith("confidence:"):
        p.error("--method must be pleurarisk or confidence:K")
    phantoms = run_phantoms(args) if args.n else []
    real = [] if args.no_real else run_real(args)
    text = summary(phantoms, real)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "phantoms": phantoms, "real": real,
                                              "summary": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
