"""Issue 20 figures, PleuraRisk beside the seed pipeline, measured in one run.

    PYTHONPATH=. .venv/bin/python bench/perf_issue20.py [--reps 5] [--large-batch 100] [--out r.json]

What it prints (whole processes are subprocesses started the way a user starts them; medians of
``--reps`` runs, PleuraRisk and seed alternating):

1. ``pleura score`` on one 512×512×300 phantom (15–30 mm tumour) vs the seed-equivalent process
   (``bench/seed_pipeline.py`` imported, pipeline built, the case run) on the same files; the
   same on a 60 mm tumour.
2. ``pleura batch --workers 1`` on 4 cases and ``--workers 2`` on ``--large-batch`` cases (the
   512×512×300 phantoms in turn, repeated under new case ids) vs the seed process on the same
   manifest.
3. Warm per-case time on 15, 30, 60 and 90 mm tumours (512×512×300; the 90 mm one is a 60 mm
   phantom whose tumour is repainted as a 90 mm sphere clipped to the lung, with the HU
   distribution of the phantom's tumour, see :func:`paint_big_tumour`), with the stage times,
   and the peak RSS of a fresh process doing what a batch worker does (model loaded, the case
   scored 3 times). The 90 mm case is scored with the ROI plausibility checks off (the ROI
   memory guard refuses it otherwise; see the printed guard estimate).
4. Import and load of the scorer in a fresh process (what an app start pays before its first
   prediction).
5. The app in Chromium (``bench/app.py`` run as a subprocess: ``--cold`` fresh servers, then
   ``--app-cases`` + 1 predictions of 512×512×300 phantoms in one tab): cold start since
   ``pleura app`` until the Predict page is rendered (and its parts), and the first prediction's
   click → probability against the later ones'. The seed pipeline had no app, so no ratio.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
# ``python bench/…`` puts bench/ first on sys.path, where bench/pipeline.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENV = {**os.environ, "PYTHONPATH": str(REPO)}

SEED_PROCESS = """
import csv, sys, time
sys.path.append({bench!r})  # after the repository: bench/pipeline.py must not shadow the package
from seed_pipeline import SeedPipeline
p = SeedPipeline()
rows = list(csv.DictReader(open({manifest!r})))
t = time.perf_counter()
for r in rows:
    p.run(r["ct_path"], r["roi_path"], clinical=(float(r["CEA"]), float(r["CA125"]), float(r["age"])))
print(len(rows), time.perf_counter() - t)
"""

WORKER_CHILD = """
import json, statistics, sys, time
from pipeline.inputs.case import load_case
from pipeline.inputs.clinical import parse_clinical
from pipeline.serving.score import Scorer
t = time.perf_counter()
scorer = Scorer(None, num_threads={threads})
load_s = time.perf_counter() - t
clinical = parse_clinical(cea="3", ca125="12", age="60")
runs = []
for _ in range({n}):
    t = time.perf_counter()
    case = load_case({ct!r}, {roi!r}, config=scorer.bundle.config, check_roi={check}, hash_inputs=False)
    r = scorer.score_prepared(case, clinical, timings={{"read_validate_crop": time.perf_counter() - t}})
    runs.append({{**r.timings_s, "total": time.perf_counter() - t}})
# VmHWM (this process's own peak since exec), not ru_maxrss: on Linux ru_maxrss survives execve,
# so a child forked from a big parent would report the parent's size
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"load_s": load_s, "runs": runs, "p": r.probability, "peak_mib": hwm_kib / 1024}}))
"""

SEED_WARM_CHILD = """
import json, statistics, sys, time
sys.path.append({bench!r})  # after the repository: bench/pipeline.py must not shadow the package
from seed_pipeline import SeedPipeline
p = SeedPipeline()
runs = [p.run({ct!r}, {roi!r}, clinical=(3.0, 12.0, 60.0)).timings_s for _ in range({n})]
print(json.dumps({{"runs": [{{**r, "total": sum(r.values())}} for r in runs]}}))
"""

SCORER_LOAD = """
import time; t = time.perf_counter()
from pipeline.serving.score import Scorer
t1 = time.perf_counter(); Scorer(); t2 = time.perf_counter()
print(t1 - t, t2 - t1)
"""


def _bench_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("bench_pipeline", _HERE / "pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_pipeline"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def say(text: str) -> None:
    print(text, flush=True)


def timed(cmd: list[str], *, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode not in ok_codes:
        raise RuntimeError(f"{cmd[:4]} failed ({out.returncode}): {out.stderr[-800:]}")
    return wall, out.stdout


def write_manifest(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["case_id", "ct_path", "roi_path", "CEA", "CA125", "age"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in w.fieldnames})
    return path


def case_row(case_id: str, ct: str, roi: str, clinical: tuple[float, float, float] = (3.0, 12.0, 60.0)) -> dict:
    return {"case_id": case_id, "ct_path": ct, "roi_path": roi, "CEA": clinical[0], "CA125": clinical[1],
            "age": clinical[2]}


def paint_big_tumour(ct: np.ndarray, roi: np.ndarray, tissue: np.ndarray, *, lung_label: int,
                     centre_zyx_vox: np.ndarray, spacing_zyx: np.ndarray, diameter_mm: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ct, roi) with the tumour repainted as a ``diameter_mm`` sphere clipped to lung + tumour.

    The HU inside follow the phantom's own tumour (its mean and SD, spatially correlated noise
    with a 1.5 mm Gaussian smoothing, as the renderer's texture), so PyRadiomics sees tumour-like
    texture, not a flat disc."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    r_vox = diameter_mm / 2 / spacing_zyx
    lo = np.maximum(np.floor(centre_zyx_vox - r_vox).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(centre_zyx_vox + r_vox).astype(int) + 2, ct.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    zz, yy, xx = np.ogrid[box]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), centre_zyx_vox, spacing_zyx))
    inside = (d2 <= (diameter_mm / 2) ** 2) & ((tissue[box] == lung_label) | (roi[box] > 0))
    values = ct[roi > 0].astype(np.float64)
    field = ndimage.gaussian_filter(rng.normal(size=inside.shape), sigma=1.5 / spacing_zyx)
    field = (field - field.mean()) / (field.std() + 1e-9)
    ct2, roi2 = ct.copy(), np.zeros_like(roi)
    ct2[box][inside] = np.clip(values.mean() + values.std() * field[inside], -1024, 3000).astype(ct.dtype)
    roi2[box][inside] = 1
    return ct2, roi2


def make_size_cases(folder: Path, diameters: list[float], *, slices: int, seed: int) -> dict[float, dict]:
    """512×512×``slices`` phantoms with tumours of the given diameters (≤ 60 mm drawn by the
    synthesiser; larger ones painted into a 60 mm phantom)."""
    import SimpleITK as sitk

    from pipeline.synth import TISSUE_LABELS, PhantomSpec, TumourSpec, make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for d in diameters:
        ct_path, roi_path = folder / f"size{int(d)}_ct.nii.gz", folder / f"size{int(d)}_roi.nii.gz"
        if not (ct_path.is_file() and roi_path.is_file()):
            t = time.perf_counter()
            drawn = min(d, 60.0)
            spec = PhantomSpec.for_size("clinical", tumour=TumourSpec(diameter_mm=drawn, distance_to_pleura_mm=3.0,
                                                                      side="right"),
                                        seed=seed, n_slices=slices, slice_thickness_mm=1.25)
            ph = make_phantom(spec)
            ct, roi = ph.ct.array, ph.roi.array
            if d > drawn:
                centre = np.argwhere(roi > 0).mean(axis=0)
                ct, roi = paint_big_tumour(ct, roi, ph.tissue.array, lung_label=TISSUE_LABELS["lung"],
                                           centre_zyx_vox=centre, spacing_zyx=np.asarray(ph.ct.spacing_xyz[::-1]),
                                           diameter_mm=d, seed=seed)
            sitk.WriteImage(ph.ct.with_array(ct).to_sitk(), str(ct_path), useCompression=True)
            sitk.WriteImage(ph.ct.with_array(roi.astype(np.uint8)).to_sitk(), str(roi_path), useCompression=True)
            say(f"  wrote the {d:.0f} mm case in {time.perf_counter() - t:.0f} s")
        roi_img = sitk.ReadImage(str(roi_path))
        roi_arr, sp = sitk.GetArrayFromImage(roi_img), roi_img.GetSpacing()
        vol_ml = float((roi_arr > 0).sum()) * float(np.prod(sp)) / 1000
        out[d] = {"ct": str(ct_path), "roi": str(roi_path), "volume_ml": vol_ml,
                  "equiv_diameter_mm": float((6 * vol_ml * 1000 / np.pi) ** (1 / 3))}
    return out


def pleura_score_cmd(ct: str, roi: str, bundle: str, *, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", "score", ct, roi, "--cea", "3", "--ca125", "12", "--age", "60",
            "--bundle", bundle, *extra]


def app_section(work: Path, *, cold: int, cases: int, bundle: str) -> dict[str, Any]:
    """Section 5: ``bench/app.py`` in a subprocess (Chromium, fresh servers), its key figures."""
    say(f"\n5. the app in Chromium (bench/app.py: {cold} fresh servers, then {cases} + 1 predictions in one tab)")
    out = work / "app-bench.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(_HERE / "app.py"), "--cold", str(cold), "--cases", str(cases), "--bundle", bundle,
           "--workdir", str(work), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        say(f"  bench/app.py failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        return {"error": proc.stderr[-2000:]}
    r = json.loads(out.read_text())
    s = r["summary"]
    say(f"  cold start, since `pleura app` (median of {cold}): server answers {s['cold_health_s']:.2f} s, "
        f"home page notice {s['cold_home_notice_s']:.2f} s, Predict page rendered {s['cold_predict_page_s']:.2f} s "
        f"({s['cold_predict_page_after_click_s']:.2f} s after the sidebar click); model loaded in the background "
        f"at {s['cold_model_ready_s'] or float('nan'):.2f} s")
    all_cases = r.get("predict", {}).get("cases", [])
    first = next((c for c in all_cases if c["kind"] == "warm-up"), None)
    later = s["predict"].get("click_to_probability_s")
    if first is not None and later is not None:
        say(f"  click → probability: first prediction {first['click_to_probability_s']:.2f} s, later ones "
            f"{later:.2f} s (median of {cases}): first − later {first['click_to_probability_s'] - later:+.2f} s")
    say(f"  (full report: {out}; load average {r['machine']['load_avg_start'][0]:.2f} → "
        f"{r['machine']['load_avg_end'][0]:.2f})")
    return {"summary": s, "first_click_to_probability_s": first and first["click_to_probability_s"]}


def cold_pair(label: str, ours: list[str], seed: list[str], reps: int) -> dict[str, Any]:
    a, b = [], []
    for i in range(reps):
        for which in ((ours, a), (seed, b)) if i % 2 == 0 else ((seed, b), (ours, a)):
            which[1].append(timed(which[0])[0])
    ma, mb = statistics.median(a), statistics.median(b)
    say(f"{label}: PleuraRisk {ma:.2f} s, seed {mb:.2f} s → {mb / ma:.2f}× faster "
        f"(medians of {reps}; PleuraRisk {', '.join(f'{v:.2f}' for v in a)}; seed {', '.join(f'{v:.2f}' for v in b)})")
    return {"pleura_s": a, "seed_s": b, "pleura_median_s": ma, "seed_median_s": mb, "speedup": mb / ma}


def batch_cmd(manifest: Path, out: Path, bundle: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", "batch", str(manifest), "--out", str(out), "--workers",
            str(workers), "--bundle", bundle, "--quiet"]


def seed_cmd(manifest: Path) -> list[str]:
    return [sys.executable, "-c", SEED_PROCESS.format(bench=str(_HERE), manifest=str(manifest))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pleurarisk-bench"))
    ap.add_argument("--bundle", default=str(REPO / "weights" / "demo"))
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each cold process (default 5)")
    ap.add_argument("--large-batch", type=int, default=100, help="cases of the 2-worker batch (default 100)")
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--sizes", type=float, nargs="*", default=[15.0, 30.0, 60.0, 90.0])
    ap.add_argument("--warm-runs", type=int, default=4, help="cases per warm child (first is a warm-up)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["cold", "batch", "sizes", "load", "app"])
    ap.add_argument("--app-cold", type=int, default=3, help="fresh app servers in section 5 (default 3)")
    ap.add_argument("--app-cases", type=int, default=3, help="predictions after the first in section 5 (default 3)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    bp = _bench_module()
    result: dict[str, Any] = {"machine": bp.machine_info(), "load_avg_start": os.getloadavg()}
    say(f"load average at start: {os.getloadavg()[0]:.2f}")
    cases = bp.make_bench_cases(work / "cases-512x300", n=5, size=512, slices=a.slices, seed=0)
    sizes = make_size_cases(work / "sizes", a.sizes, slices=a.slices, seed=11) if "sizes" not in a.skip or "cold" not in a.skip else {}
    for d, c in sizes.items():
        say(f"  {d:.0f} mm case: ROI {c['volume_ml']:.1f} mL (equivalent sphere {c['equiv_diameter_mm']:.0f} mm)")

    if "cold" not in a.skip:
        say("\n1. pleura score, one case, cold process (whole process wall time)")
        c = cases[0]
        one = write_manifest([case_row("c0", c.ct_path, c.roi_path, c.clinical)], work / "one.csv")
        result["cold_512"] = cold_pair("  512×512×300, 15–30 mm", pleura_score_cmd(c.ct_path, c.roi_path, a.bundle),
                                       seed_cmd(one), a.reps)
        if 60.0 in sizes:
            s = sizes[60.0]
            m60 = write_manifest([case_row("c60", s["ct"], s["roi"])], work / "one60.csv")
            result["cold_60mm"] = cold_pair("  512×512×300, 60 mm tumour", pleura_score_cmd(s["ct"], s["roi"], a.bundle),
                                            seed_cmd(m60), a.reps)

    if "batch" not in a.skip:
        say("\n2. pleura batch as a whole process (wall time incl. start-up and model loading)")
        rows = [case_row(f"b{i:03d}", c.ct_path, c.roi_path, c.clinical) for i, c in
                ((i, cases[i % len(cases)]) for i in range(max(4, a.large_batch)))]
        m4 = write_manifest(rows[:4], work / "batch4.csv")
        mL = write_manifest(rows[:a.large_batch], work / f"batch{a.large_batch}.csv")
        for label, manifest, workers, reps in (("4 cases, --workers 1", m4, 1, max(1, a.reps // 2)),
                                               (f"{a.large_batch} cases, --workers 2", mL, 2, 1)):
            ours, seed = [], []
            for i in range(reps):
                out = work / f"batch-out-{workers}.csv"
                for f in (out, out.with_name(out.name + ".journal.jsonl")):
                    f.unlink(missing_ok=True)
                ours.append(timed(batch_cmd(manifest, out, a.bundle, workers), ok_codes=(0, 1))[0])
                seed.append(timed(seed_cmd(manifest))[0])
            mo, ms = statistics.median(ours), statistics.median(seed)
            say(f"  {label}: PleuraRisk {mo:.1f} s, seed process {ms:.1f} s → {ms / mo:.2f}× "
                f"(median of {reps})")
            result[f"batch_{label}"] = {"pleura_s": ours, "seed_s": seed, "speedup": ms / mo}

    if "sizes" not in a.skip:
        say("\n3. warm per case by tumour size (median of the cases after a warm-up, fresh worker-like process)")
        result["sizes"] = {}
        for d, s in sizes.items():
            check = "False" if d > 60 else "True"
            _, out = timed([sys.executable, "-c", WORKER_CHILD.format(threads="None", n=a.warm_runs, ct=s["ct"],
                                                                       roi=s["roi"], check=check)])
            r = json.loads(out.strip().splitlines()[-1])
            runs = r["runs"][1:]
            med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
            _, sout = timed([sys.executable, "-c", SEED_WARM_CHILD.format(bench=str(_HERE), n=a.warm_runs,
                                                                          ct=s["ct"], roi=s["roi"])])
            sr = json.loads(sout.strip().splitlines()[-1])["runs"][1:]
            smed = {k: statistics.median(x[k] for x in sr) for k in sr[0]}
            say(f"  {d:3.0f} mm ({s['volume_ml']:.0f} mL): PleuraRisk {med['total']:.2f} s "
                f"[read {med.get('read_validate_crop', 0):.2f}, radiomics {med.get('features_radiomics', 0):.2f}, "
                f"pleura {med.get('features_pleura', 0):.2f}, deep {med.get('features_deep', 0):.2f}, "
                f"score+SHAP {med.get('score', 0) + med.get('explain', 0):.3f}], seed {smed['total']:.2f} s "
                f"[radiomics {smed['radiomics']:.2f}]; peak RSS of the worker-like process {r['peak_mib']:.0f} MiB"
                + ("; scored with the ROI checks off" if check == "False" else ""))
            result["sizes"][str(d)] = {"pleura": med, "seed": smed, "peak_mib": r["peak_mib"], "volume_ml": s["volume_ml"]}

    if "load" not in a.skip:
        say("\n4. a fresh process: import the scorer, then load the demo model (medians of 3)")
        imp, load = [], []
        for _ in range(3):
            _, out = timed([sys.executable, "-c", SCORER_LOAD])
            x, y = map(float, out.split())
            imp.append(x)
            load.append(y)
        say(f"  import {statistics.median(imp):.2f} s, Scorer() {statistics.median(load):.2f} s")
        result["scorer_load"] = {"import_s": imp, "load_s": load}

    if "app" not in a.skip:
        result["app"] = app_section(work, cold=a.app_cold, cases=a.app_cases, bundle=a.bundle)

    result["load_avg_end"] = os.getloadavg()
    say(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
