"""bench/roi_robustness.py on phantoms rendered in memory gives the figures of the written cohort."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

from pipeline.synth import write_cohort

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("roi_robustness", ROOT / "bench" / "roi_robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(bench, tmp: Path, name: str, *args: str) -> tuple[list[dict], list[dict]]:
    out = tmp / name
    assert bench.main([str(ROOT / "weights" / "demo"), *args, "--n", "2", "--out", str(out)]) == 0
    with (out / "roi_robustness.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    failed = json.loads((out / "roi_robustness.json").read_text())["failed"]
    return rows, sorted(failed, key=lambda f: (f["case_id"], f["variant"]))


def test_in_memory_phantoms_give_the_written_cohorts_figures(tmp_path: Path) -> None:
    bench = _bench()
    files = write_cohort(tmp_path / "cohort", n=2, seed=11, size="small", generation=3)
    by_files = _run(bench, tmp_path, "files", str(files))
    whole = _run(bench, tmp_path, "whole", "--synth", "11", "--size", "small")  # the segmenter needs the whole CT
    assert whole == by_files and all(r["true"] and r["dilated"] and r["seeded"] for r in by_files[0])
    box = _run(bench, tmp_path, "box", "--synth", "11", "--size", "small", "--no-seeded")  # around the tumour only
    assert box[0] == [{**r, "seeded": ""} for r in by_files[0]]
    assert box[1] == [f for f in by_files[1] if f["variant"] != "seeded"]
