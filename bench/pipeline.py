"""Benchmark: PleuraRisk's per-case pipeline against a faithful re-implementation of the seed's.

Usage (from the repository root, in the project's venv)::

    python bench/pipeline.py                       # 5 cases of 512×512×300, batch rates, ≈ 10 min
    python bench/pipeline.py --cases 3 --skip-batch --out bench-results.json
    python bench/pipeline.py --size 256 --slices 120 --cases 2 --skip-batch   # quick look
    python bench/pipeline.py --profile /tmp/pleura.pstats   # + cProfile of one PleuraRisk case

What it does:

1. Writes ``--cases`` + 1 synthetic phantoms (``pipeline.synth``; CT int16 HU and ROI uint8 as
   ``.nii.gz``; (slices, size, size) voxels; tumour 15–30 mm) into ``--workdir`` (cached there
   between runs).
2. Builds a model bundle for timing through the public API (features of 8 small phantoms with
   ``pipeline.training.dataset.extract_cohort_features``, then ``pleura fit``), unless ``--bundle`` is
   given or ``weights/demo`` exists. The bundle is cached in ``--workdir`` too.
3. In one warm process, runs the seed pipeline (``bench/seed_pipeline.py``) and
   ``pipeline.serving.score.Scorer(bundle).score(ct, roi, clinical)`` on the same files, alternating which
   goes first; the first case is a warm-up and is not counted. Peak RSS of each run is read from
   the kernel (``VmHWM``, reset before each run).
4. Times gzip decompression of one CT file with Python's ``gzip`` (zlib) and with ``isal``, and a
   whole SimpleITK read of it.
5. Runs ``pleura batch --workers 1`` and ``--workers 2`` (and ``--scheduler`` on a Dask
   LocalCluster of 1 and 2 workers) as subprocesses on ``--batch-cases`` cases (default 30: the
   counted cases in turn, repeated under new case ids) and reports cases/minute (wall clock,
   including process start and model loading, and steady state).

Prints a table of per-stage and total medians, the ratio, the batch rates and peak RSS; ``--out``
also writes everything (every case's timings) as JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/pipeline.py``, Python puts bench/ first on sys.path, where this very file
# would shadow the ``pipeline`` package. Put the repository root there instead.
_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import datetime as _dt  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

MIN_DIAMETER_MM, MAX_DIAMETER_MM = 15.0, 30.0
CLINICAL_MATRIX = 512

#: (row label, seed stages summed, PleuraRisk ``timings_s`` keys summed) of the comparison table.
COMPARISON_ROWS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("read + validate + crop", ("read", "crop_io"), ("read_validate_crop",)),
    ("CNN (cube + forward)", ("window_resize", "cnn"), ("features_deep",)),
    ("radiomics", ("radiomics",), ("features_radiomics",)),
    ("pleura features", (), ("features_pleura",)),
    ("forest", ("forest",), ("score",)),
    ("SHAP", (), ("explain",)),
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# phantoms
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchCase:
    """One benchmark phantom on disk (CT in HU, ROI {0, 1}) and its clinical values."""

    case_id: str
    ct_path: str
    roi_path: str
    cea_ng_ml: float
    ca125_u_ml: float
    age_years: float
    diameter_mm: float
    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]

    @property
    def clinical(self) -> tuple[float, float, float]:
        return (self.cea_ng_ml, self.ca125_u_ml, self.age_years)


def draw_bench_spec(ss: np.random.SeedSequence, *, case_index: int, size: int, slices: int):  # noqa: ANN201
    """A clinical-size :class:`~pipeline.synth.SampledCase` with a 15–30 mm tumour.

    Cases are drawn from ``pipeline.synth.sample_case`` (clinical preset, ``slices`` slices) and
    redrawn until the tumour diameter falls in [15, 30] mm. A matrix other than 512 keeps the
    drawn field of view (pixel spacing scaled by 512 / size).
    """
    from pipeline.synth import sample_case

    while True:
        case = sample_case(np.random.default_rng(ss.spawn(1)[0]), size="clinical", case_index=case_index,
                           n_slices=slices)
        if MIN_DIAMETER_MM <= case.spec.tumour.diameter_mm <= MAX_DIAMETER_MM:
            break
    if size != CLINICAL_MATRIX:
        sx, sy, sz = case.spec.spacing_xyz
        f = CLINICAL_MATRIX / size
        spec = dataclasses.replace(case.spec, shape_zyx=(slices, size, size), spacing_xyz=(sx * f, sy * f, sz))
        case = case._replace(spec=spec)
    return case


def make_bench_cases(folder: Path, *, n: int, size: int, slices: int, seed: int) -> list[BenchCase]:
    """Write (or reuse) ``n`` phantoms in ``folder``; returns them in case order.

    Files are ``case_NNNN_ct.nii.gz`` and ``case_NNNN_roi.nii.gz`` (written under a temporary
    name, then renamed, so an interrupted run never leaves a half-written case behind).
    """
    import SimpleITK as sitk

    from pipeline.synth import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    ss = np.random.SeedSequence(seed)
    cases = []
    for i in range(n):
        drawn = draw_bench_spec(ss, case_index=i, size=size, slices=slices)
        spec = drawn.spec
        ct_path, roi_path = folder / f"{spec.case_id}_ct.nii.gz", folder / f"{spec.case_id}_roi.nii.gz"
        if not (ct_path.is_file() and roi_path.is_file()):
            t = time.perf_counter()
            phantom = make_phantom(spec)
            for vol, target in ((phantom.ct, ct_path), (phantom.roi, roi_path)):
                tmp = target.with_name(".tmp-" + target.name)
                sitk.WriteImage(vol.to_sitk(), str(tmp), useCompression=True)
                os.replace(tmp, target)
            say(f"wrote phantom {spec.case_id} {spec.shape_zyx} (z, y, x), tumour "
                f"{spec.tumour.diameter_mm:.1f} mm, in {time.perf_counter() - t:.0f} s")
        cases.append(BenchCase(spec.case_id, str(ct_path), str(roi_path), round(drawn.clinical.cea_ng_ml, 4),
                               round(drawn.clinical.ca125_u_ml, 4), round(drawn.clinical.age_years, 2),
                               float(spec.tumour.diameter_mm), spec.shape_zyx, spec.spacing_xyz))
    return cases


def write_manifest(cases: Sequence[BenchCase], path: Path) -> Path:
    """A ``pleura batch`` manifest CSV (case_id, ct_path, roi_path, CEA, CA125, age)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "ct_path", "roi_path", "CEA", "CA125", "age"])
        for c in cases:
            w.writerow([c.case_id, os.path.relpath(c.ct_path, path.parent), os.path.relpath(c.roi_path, path.parent),
                        c.cea_ng_ml, c.ca125_u_ml, c.age_years])
    return path


# ------------------------------------------------------------------------------------------------
# bundle
# ------------------------------------------------------------------------------------------------
def _code_fingerprint() -> str:
    """sha256 (12 hex) of the pipeline's settings and source: a cached bundle is rebuilt when
    either changes."""
    from pipeline.core.config import PipelineConfig

    h = hashlib.sha256(json.dumps(PipelineConfig().to_dict(), sort_keys=True).encode())
    for package in ("pipeline", "models"):
        for f in sorted((_REPO / package).rglob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def ensure_bundle(workdir: Path, *, explicit: str | None, threads: int | None) -> tuple[Path, str]:
    """(bundle folder, how it was obtained): ``explicit``, else ``weights/demo``, else a timing
    bundle built here through the public API (cached in ``workdir``)."""
    from pipeline.serving.bundle import verify_bundle
    from pipeline.core.errors import BundleError

    if explicit:
        verify_bundle(explicit)
        return Path(explicit), "given with --bundle"
    demo = _REPO / "weights" / "demo"
    if (demo / "manifest.json").is_file():
        verify_bundle(demo)
        return demo, "weights/demo"
    out = workdir / f"timing-bundle-{_code_fingerprint()}"
    # the timing bundle is trained here and never signed: this process (and its workers) load it
    # with the explicit allowance for unsigned models
    os.environ["PLEURA_ALLOW_UNSIGNED"] = "1"
    try:
        verify_bundle(out)
        return out, "timing bundle (cached)"
    except BundleError:
        pass
    from pipeline.cli import main as cli
    from pipeline.training.dataset import extract_cohort_features
    from pipeline.synth import write_cohort

    say("building a timing bundle: features of 8 small phantoms, then pleura fit (once; cached)")
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-", dir=workdir) as d:
        cohort = write_cohort(Path(d) / "cohort", n=8, seed=11, size="small")
        # Labels only shape the forest; alternate them so both classes are present whatever
        # the draw gave (this bundle is for timing, not for prediction).
        with cohort.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for i, row in enumerate(rows):
            row["label"] = str(i % 2)
        with cohort.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        table = Path(d) / "features.parquet"
        extract_cohort_features(cohort, table, workers=1, num_threads=threads)
        code = cli.main(["fit", str(table), "--out", str(out), "--synthetic"])
        if code != 0:
            raise RuntimeError(f"pleura fit failed (exit {code})")
    say(f"timing bundle ready in {time.perf_counter() - t:.0f} s")
    return out, "timing bundle (built now: 8 small phantoms, pleura fit, 300 trees)"


# ------------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------------
def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS counter (Linux ≥ 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def max_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """``getrusage`` ru_maxrss in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float | None, float]:
    """(result, wall seconds, peak RSS MB during the call or None, RSS MB just before it).

    MB here are MiB (2**20 bytes), as the kernel's KiB counters."""
    before = _rss_mb()
    reset = reset_peak_rss()
    t = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t
    return result, seconds, (_vm_hwm_mb() if reset else None), before


# ------------------------------------------------------------------------------------------------
# the alternating comparison
# ------------------------------------------------------------------------------------------------
def run_comparison(cases: Sequence[BenchCase], *, bundle: Path, threads: int | None) -> list[dict[str, Any]]:
    """Run both pipelines on every case, alternating which goes first; case 0 is the warm-up."""
    import torch

    from bench.seed_pipeline import SeedPipeline
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.score import Scorer

    if threads:
        torch.set_num_threads(threads)
    say("loading the seed pipeline and the PleuraRisk scorer")
    seed = SeedPipeline(num_threads=threads)
    scorer = Scorer(bundle, num_threads=threads)

    def run_seed(c: BenchCase) -> dict[str, Any]:
        r, wall, peak, before = measure(lambda: seed.run(c.ct_path, c.roi_path, clinical=c.clinical))
        if r.n_radiomics != SeedPipeline.expected_radiomics_count():
            raise RuntimeError(f"seed radiomics gave {r.n_radiomics} features, expected 894")
        return {"timings_s": r.timings_s, "total_s": wall, "peak_rss_mb": peak, "rss_before_mb": before,
                "probability": r.probability,
                "n_features": r.n_deep + r.n_radiomics + 3, "crop_shape_zyx": list(r.crop_shape_zyx)}

    def run_pleura(c: BenchCase) -> dict[str, Any]:
        clinical = parse_clinical(cea=c.cea_ng_ml, ca125=c.ca125_u_ml, age=c.age_years)
        r, wall, peak, before = measure(lambda: scorer.score(c.ct_path, c.roi_path, clinical))
        return {"timings_s": dict(r.timings_s), "total_s": wall, "peak_rss_mb": peak, "rss_before_mb": before,
                "probability": r.probability,
                "n_features": len(r.features.names), "warnings": list(r.warnings)}

    records = []
    for i, c in enumerate(cases):
        order = ("seed", "pleura") if i % 2 == 0 else ("pleura", "seed")
        rec: dict[str, Any] = {"case_id": c.case_id, "warmup": i == 0, "first": order[0],
                               "diameter_mm": c.diameter_mm}
        for side in order:
            rec[side] = run_seed(c) if side == "seed" else run_pleura(c)
        say(f"{c.case_id}{' (warm-up)' if i == 0 else ''}: seed {rec['seed']['total_s']:.2f} s, "
            f"PleuraRisk {rec['pleura']['total_s']:.2f} s")
        records.append(rec)
    return records


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the counted (non-warm-up) cases."""
    counted = [r for r in records if not r["warmup"]]
    out: dict[str, Any] = {"n_cases": len(counted)}
    for side in ("seed", "pleura"):
        keys = sorted({k for r in counted for k in r[side]["timings_s"]})
        out[side] = {
            "stages_s": {k: _median([r[side]["timings_s"].get(k, 0.0) for r in counted]) for k in keys},
            "total_s": _median([r[side]["total_s"] for r in counted]),
            "peak_rss_mb": max((r[side]["peak_rss_mb"] for r in counted if r[side]["peak_rss_mb"] is not None),
                               default=None),
            "peak_rss_increase_mb": max((r[side]["peak_rss_mb"] - r[side]["rss_before_mb"] for r in counted
                                         if r[side]["peak_rss_mb"] is not None), default=None),
        }
    rows = {}
    for label, seed_keys, pleura_keys in COMPARISON_ROWS:
        rows[label] = {
            "seed": _median([sum(r["seed"]["timings_s"].get(k, 0.0) for k in seed_keys) for r in counted])
            if seed_keys else None,
            "pleura": _median([sum(r["pleura"]["timings_s"].get(k, 0.0) for k in pleura_keys) for r in counted]),
        }
    out["comparison"] = rows
    s, p = out["seed"]["total_s"], out["pleura"]["total_s"]
    out["ratio_pleura_over_seed"] = (p / s) if s and p else None
    return out


# ------------------------------------------------------------------------------------------------
# gzip, batch, profile
# ------------------------------------------------------------------------------------------------
def gzip_comparison(path: str, *, repeats: int = 3) -> dict[str, Any]:
    """Median seconds to decompress one ``.nii.gz`` fully: Python gzip (zlib), isal, and a whole
    SimpleITK read (its own zlib)."""
    import SimpleITK as sitk

    def stream(opener: Callable[..., Any]) -> int:
        n = 0
        with opener(path, "rb") as fh:
            while chunk := fh.read(4 * 1024 * 1024):
                n += len(chunk)
        return n

    out: dict[str, Any] = {"file_mb": os.path.getsize(path) / 1e6}
    timers: dict[str, Callable[[], Any]] = {"python_gzip_s": lambda: stream(gzip.open),
                                            "sitk_read_s": lambda: sitk.ReadImage(path)}
    try:
        from isal import igzip

        timers["isal_s"] = lambda: stream(igzip.open)
    except ImportError:
        out["isal_s"] = None
    for name, fn in timers.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = float(statistics.median(times))
    out["raw_mb"] = stream(gzip.open) / 1e6
    return out


def _tree_rss_mb(proc: Any) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except Exception:  # noqa: BLE001 - a child may exit between listing and reading
            pass
    return total / 2**20


def _process_rss_mb(procs: list[Any]) -> float:
    """Largest RSS (MiB) among ``procs`` (psutil processes; vanished ones ignored)."""
    import psutil

    best = 0.0
    for pr in procs:
        try:
            best = max(best, pr.memory_info().rss / 2**20)
        except psutil.Error:
            pass
    return best


def batch_rate(manifest: Path, *, bundle: Path, workers: int, n_cases: int, workdir: Path,
               scheduler: str | None = None, cluster_pids: list[int] | None = None) -> dict[str, Any]:
    """Cases/minute of ``pleura batch --workers N`` (subprocess, fresh results file), or of
    ``pleura batch --scheduler ADDRESS`` on a Dask cluster whose worker processes are
    ``cluster_pids``. ``peak_process_rss_mb`` is the largest single process (a worker)."""
    import psutil

    tag = f"dask{workers}" if scheduler else f"w{workers}"
    out = workdir / f"batch-{tag}-{int(time.time())}.csv"
    cmd = [sys.executable, "-m", "pipeline.cli.main", "batch", str(manifest), "--out", str(out), "--workers", str(workers),
           "--bundle", str(bundle), "--quiet"] + (["--scheduler", scheduler] if scheduler else [])
    peak = {"mb": 0.0, "process_mb": 0.0}
    cluster = [psutil.Process(pid) for pid in (cluster_pids or [])]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                tree = [watched, *watched.children(recursive=True)]
            except psutil.Error:
                tree = []
            try:
                tree_mb = _tree_rss_mb(watched)
            except psutil.Error:  # a process of the tree ended while it was being listed
                tree_mb = 0.0
            peak["mb"] = max(peak["mb"], tree_mb + sum(_process_rss_mb([c]) for c in cluster))
            peak["process_mb"] = max(peak["process_mb"], _process_rss_mb(tree + cluster) if not cluster
                                     else _process_rss_mb(cluster))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    stop.set()
    sampler.join()
    rows = []
    if out.exists():
        with out.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    n_ok = sum(1 for r in rows if r.get("status") == "ok")
    m = re.search(r"\(([\d.]+) s\)", stdout)
    in_batch = float(m.group(1)) if m else None
    for extra in (out, out.with_name(out.name + ".journal.jsonl")):
        extra.unlink(missing_ok=True)
    return {
        "workers": workers, "exit_code": proc.returncode, "n_cases": n_cases, "n_ok": n_ok, "wall_s": wall,
        "cases_per_min": 60.0 * n_ok / wall if wall > 0 else None,
        "batch_reported_s": in_batch,
        "cases_per_min_excl_start": (60.0 * n_ok / in_batch) if in_batch else None,
        "case_seconds": (case_s := [float(r["seconds"]) for r in rows if r.get("seconds")]),
        # steady state: every worker busy, model already loaded (per-case times from the rows)
        "cases_per_min_steady": 60.0 * workers / statistics.median(case_s) if case_s else None,
        "peak_tree_rss_mb": peak["mb"], "peak_process_rss_mb": peak["process_mb"],
        "engine": "dask LocalCluster" if scheduler else "local process pool",
        "stderr_tail": stderr.strip().splitlines()[-3:] if proc.returncode else [],
    }


def dask_rate(manifest: Path, *, bundle: Path, workers: int, n_cases: int, workdir: Path) -> dict[str, Any]:
    """:func:`batch_rate` on a fresh ``distributed.LocalCluster`` of ``workers`` single-threaded
    worker processes (cluster start-up not counted; workers load the bundle on their first case)."""
    import psutil
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        pids = [c.pid for c in psutil.Process().children(recursive=True)]
        return batch_rate(manifest, bundle=bundle, workers=workers, n_cases=n_cases, workdir=workdir,
                          scheduler=cluster.scheduler_address, cluster_pids=pids)


def load_breakdown(case: BenchCase) -> dict[str, float]:
    """Seconds of the ways ``pipeline.inputs.case.load_case`` can read one case: ``streamed_roi_box``
    and ``streamed_case`` (the path a NIfTI pair on one grid takes: the mask streamed to its
    label box, then the CT streamed to the crop and the intensity summary; hashes included),
    then the general path's steps one after the other through the same functions (whole
    volumes: single-pass read + hash of CT and ROI → intensity check → align → label box →
    labels on the box → crop). ``sitk_read_ct`` (a whole SimpleITK read of the CT, not used by
    PleuraRisk) is there for comparison."""
    import SimpleITK as sitk

    from pipeline.inputs.case import _RoiBox, load_case
    from pipeline.core.config import PipelineConfig
    from pipeline.io.readers import read_image_hashed
    from pipeline.preprocess.crop import bbox_crop, roi_bbox
    from pipeline.inputs.validate import align_mask, binarise_mask, check_ct_intensities

    cfg = PipelineConfig()
    v, p = cfg.validation, cfg.preprocess
    t: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        s = time.perf_counter()
        r = fn()
        t[name] = time.perf_counter() - s
        return r

    step("streamed_roi_box", lambda: _RoiBox.streamed(case.roi_path, role="ROI mask", max_voxels=v.max_voxels,
                                                       want_hash=True))
    step("streamed_case", lambda: load_case(case.ct_path, case.roi_path, config=cfg))
    ct, _ = step("read_hash_ct", lambda: read_image_hashed(case.ct_path, role="CT", max_voxels=v.max_voxels))
    roi_raw, _ = step("read_hash_roi", lambda: read_image_hashed(case.roi_path, role="ROI mask",
                                                                  max_voxels=v.max_voxels))
    step("check_ct_intensities", lambda: check_ct_intensities(ct, config=v))
    aligned, _w = step("align_mask", lambda: align_mask(ct, roi_raw, config=v))
    lo, hi = step("label_box", lambda: roi_bbox(aligned.array))
    sub = aligned.with_array(aligned.array[tuple(slice(a, b) for a, b in zip(lo, hi))])
    step("binarise_on_box", lambda: binarise_mask(sub, label=None, min_voxels=v.min_mask_voxels))
    step("crop", lambda: bbox_crop(ct, aligned, lo, hi, margin_mm=p.crop_margin_mm,
                                   min_margin_voxels=p.crop_min_margin_voxels))
    step("sitk_read_ct", lambda: sitk.GetArrayViewFromImage(sitk.ReadImage(str(case.ct_path))))
    return t


def profile_case(case: BenchCase, *, bundle: Path, threads: int | None, out_path: Path, top: int = 30) -> str:
    """cProfile of one ``Scorer.score`` (scorer built and warmed first); writes ``out_path``
    (pstats) and returns the top functions by internal and by cumulative time."""
    import cProfile
    import io
    import pstats

    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.score import Scorer

    scorer = Scorer(bundle, num_threads=threads)
    clinical = parse_clinical(cea=case.cea_ng_ml, ca125=case.ca125_u_ml, age=case.age_years)
    scorer.score(case.ct_path, case.roi_path, clinical)  # warm
    prof = cProfile.Profile()
    prof.enable()
    scorer.score(case.ct_path, case.roi_path, clinical)
    prof.disable()
    prof.dump_stats(str(out_path))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    import torch

    return {"cpu": model or platform.processor(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "torch_threads": torch.get_num_threads(), "niceness": os.nice(0),
            "load_avg_start": list(os.getloadavg()),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _fmt(v: float | None, unit: str = "s", width: int = 9) -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width - len(unit) - 1}.2f} {unit}"


def format_report(result: dict[str, Any]) -> str:
    s, m = result["summary"], result["machine"]
    lines = [
        f"PleuraRisk vs seed pipeline — {result['date']}",
        f"machine: {m['cpu']}, {m['cpu_count']} cores, {m['memory_gb']} GiB; torch threads {m['torch_threads']}; "
        f"niceness {m['niceness']}; load average {m['load_avg_start'][0]:.2f} at start, "
        f"{m['load_avg_end'][0]:.2f} at end",
        f"cases: {s['n_cases']} counted + 1 warm-up, {result['args']['slices']}×{result['args']['size']}×"
        f"{result['args']['size']} (z, y, x) .nii.gz, tumour 15–30 mm; bundle: {result['bundle']['how']}",
        "",
        f"{'stage (median)':<26}{'seed':>11}{'PleuraRisk':>13}",
    ]
    for label, row in s["comparison"].items():
        lines.append(f"{label:<26}{_fmt(row['seed'], width=11)}{_fmt(row['pleura'], width=13)}")
    lines.append(f"{'total (median)':<26}{_fmt(s['seed']['total_s'], width=11)}{_fmt(s['pleura']['total_s'], width=13)}")
    r = s["ratio_pleura_over_seed"]
    if r:
        lines.append(f"ratio PleuraRisk / seed (median totals): {r:.2f} — PleuraRisk is "
                     + (f"{1 / r:.2f}× faster" if r < 1 else f"{r:.2f}× slower"))
    lines.append("peak RSS of the process during a case (max over cases; in brackets the rise above the RSS "
                 "before the case):")
    for side, name in (("seed", "seed"), ("pleura", "PleuraRisk")):
        peak, rise = s[side]["peak_rss_mb"], s[side]["peak_rss_increase_mb"]
        lines.append(f"  {name:<11}{_fmt(peak, 'MiB', 12)}" + (f"  (+{rise:.0f} MiB)" if rise is not None else ""))
    lines.append(f"  whole benchmark process, ru_maxrss: {result['ru_maxrss_mb']:.0f} MiB")
    lines += ["", "seed stages (median): " + ", ".join(f"{k} {v:.2f}" for k, v in s["seed"]["stages_s"].items()),
              "PleuraRisk stages (median): " + ", ".join(f"{k} {v:.2f}" for k, v in s["pleura"]["stages_s"].items())]
    g = result.get("gzip")
    if g:
        lines += ["", f"one CT file ({g['file_mb']:.0f} MB .nii.gz → {g['raw_mb']:.0f} MB): Python gzip "
                      f"{g['python_gzip_s']:.2f} s, isal {_fmt(g.get('isal_s')).strip()}, whole SimpleITK read "
                      f"{g['sitk_read_s']:.2f} s (medians of 3)"]
    seed_total = s["seed"]["total_s"]
    seed_rate = 60.0 / seed_total if seed_total else None
    if result.get("batch") and seed_rate:
        lines += ["", f"seed pipeline run sequentially: {seed_rate:.1f} cases/min (60 s / its median total)"]
    for b in result.get("batch", []):
        how = (f"pleura batch --scheduler (Dask, {b['workers']} worker(s))" if b.get("engine", "").startswith("dask")
               else f"pleura batch --workers {b['workers']}")
        ratio = (f" = {b['cases_per_min'] / seed_rate:.2f}× the seed" if seed_rate and b.get("cases_per_min") else "")
        steady = b.get("cases_per_min_steady")
        steady_txt = (f"; steady state {steady:.1f} cases/min = {steady / seed_rate:.2f}× the seed "
                      f"({b['workers']} × 60 s / median per-case time)" if steady and seed_rate else "")
        lines.append(f"{how}: {b['n_ok']}/{b['n_cases']} ok in {b['wall_s']:.1f} s "
                     f"→ {_fmt(b['cases_per_min'], 'cases/min', 16).strip()}{ratio} (wall, incl. process start and "
                     f"model loading){steady_txt}; "
                     f"peak RSS: all processes {b['peak_tree_rss_mb']:.0f} MiB, largest single process "
                     f"{b.get('peak_process_rss_mb', 0):.0f} MiB"
                     + (f"; exit {b['exit_code']}: {' / '.join(b['stderr_tail'])}" if b['exit_code'] else ""))
    if result.get("ru_maxrss_children_mb"):
        lines.append(f"largest batch process (ru_maxrss of children): {result['ru_maxrss_children_mb']:.0f} MiB")
    if result.get("load_breakdown"):
        lines += ["", "PleuraRisk load_case steps on one case: "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in result["load_breakdown"].items())]
    lines += ["", "Timings on a shared machine are noisy: compare medians, not single cases."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=5, help="counted cases (one more is the warm-up); default 5")
    p.add_argument("--size", type=int, default=512, help="in-plane matrix (voxels); default 512")
    p.add_argument("--slices", type=int, default=300, help="slices; default 300")
    p.add_argument("--seed", type=int, default=0, help="phantom seed; default 0")
    p.add_argument("--skip-batch", action="store_true", help="do not time pleura batch --workers 1/2")
    p.add_argument("--batch-cases", type=int, default=30,
                   help="cases per batch run: the counted cases in turn, repeated under new case ids "
                        "(default 30, so process start and model loading are a batch's share, not most of it)")
    p.add_argument("--out", default=None, help="write all results as JSON here")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pleurarisk-bench"),
                   help="phantoms and the timing bundle are cached here")
    p.add_argument("--bundle", default=None, help="model bundle to score with (default weights/demo, else built)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--profile", default=None, metavar="PSTATS",
                   help="also cProfile one PleuraRisk case (written here) and time load_case's steps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name, value, low in (("--cases", args.cases, 1), ("--size", args.size, 128), ("--slices", args.slices, 40)):
        if value < low:
            raise SystemExit(f"error: {name} must be >= {low}, got {value}")
    t_start = time.perf_counter()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
        "args": vars(args), "machine": machine_info(),
    }
    folder = workdir / f"phantoms-{args.slices}x{args.size}x{args.size}-seed{args.seed}"
    say(f"phantoms in {folder}")
    cases = make_bench_cases(folder, n=args.cases + 1, size=args.size, slices=args.slices, seed=args.seed)
    result["phantoms"] = [dataclasses.asdict(c) | {"ct_path": Path(c.ct_path).name, "roi_path": Path(c.roi_path).name}
                          for c in cases]
    bundle, how = ensure_bundle(workdir, explicit=args.bundle, threads=args.threads)
    result["bundle"] = {"path": str(bundle), "how": how}

    records = run_comparison(cases, bundle=bundle, threads=args.threads)
    result["cases"] = records
    result["summary"] = summarise(records)
    say("gzip decompression: Python gzip vs isal vs SimpleITK")
    result["gzip"] = gzip_comparison(cases[1].ct_path)
    if args.profile:
        say("profiling one PleuraRisk case")
        result["load_breakdown"] = load_breakdown(cases[1])
        result["profile_text"] = profile_case(cases[1], bundle=bundle, threads=args.threads, out_path=Path(args.profile))
    result["ru_maxrss_mb"] = max_rss_mb()
    if not args.skip_batch:
        n_batch = args.batch_cases or args.cases
        # the counted cases in turn, as many times as needed; a repeat is a new case id (its own row)
        batch_cases = [dataclasses.replace(c, case_id=c.case_id + (f"_r{i // args.cases}" if i >= args.cases else ""))
                       for i, c in ((i, cases[1 + i % args.cases]) for i in range(n_batch))]
        manifest = write_manifest(batch_cases, folder / "batch.csv")
        result["batch"] = []
        for workers in (1, 2):
            say(f"pleura batch --workers {workers} on {n_batch} cases")
            result["batch"].append(batch_rate(manifest, bundle=bundle, workers=workers, n_cases=n_batch,
                                              workdir=workdir))
        for workers in (1, 2):
            say(f"pleura batch --scheduler (Dask LocalCluster, {workers} worker(s)) on {n_batch} cases")
            result["batch"].append(dask_rate(manifest, bundle=bundle, workers=workers, n_cases=n_batch,
                                             workdir=workdir))
        result["ru_maxrss_children_mb"] = max_rss_mb(resource.RUSAGE_CHILDREN)
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    result["benchmark_wall_s"] = time.perf_counter() - t_start
    report = format_report(result)
    print(report)
    if args.profile:
        print("\n" + result["profile_text"])
    print(f"\n(benchmark wall time {result['benchmark_wall_s'] / 60:.1f} min)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
