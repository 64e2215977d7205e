"""Evaluation from a feature table gives the probabilities and metrics of scoring the images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.errors import CohortError
from pipeline.synth import write_cohort
from pipeline.training.dataset import read_table, write_table
from pipeline.inputs.clinical import parse_clinical
from pipeline.serving.bundle import load_bundle
from pipeline.serving.score import Scorer
from pipeline.training.dataset import read_cohort
from pipeline.training.external import evaluate_bundle, table_probabilities
from pipeline.training.fit import fit_bundle
from pipeline.training.synth_features import synth_feature_table

DEMO = Path(__file__).resolve().parents[3] / "weights" / "demo"


def _same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float):
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-12), k
        else:
            assert x == y, k


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 4 generation-3 phantoms (2 with VPI) as NIfTI files and as an in-memory feature table."""
    root = tmp_path_factory.mktemp("cohort")
    files = write_cohort(root / "files", n=4, seed=11, size="small", generation=3)
    synth_feature_table(root / "mem", root / "mem.parquet", n=4, seed=11, size="small", workers=1, num_threads=1)
    return files, root / "mem.parquet"


@pytest.mark.parametrize("which", ["demo", "fitted"])
def test_table_evaluation_equals_scoring_the_images(which: str, cohort, tmp_path: Path) -> None:
    files, table = cohort
    if which == "demo":  # late fusion of group forests, recalibrated (the shipped bundle)
        bundle = DEMO
    else:  # a plain forest on every feature, deep ones included, fitted on the table itself
        bundle = fit_bundle(features=table, out=tmp_path / "fitted", trees=25, seed=0, synthetic=True).path
    by_files = evaluate_bundle(bundle=bundle, cohort=files, out=tmp_path / "files", name="c", allow_unsigned=True)
    by_table = evaluate_bundle(bundle=bundle, features=table, out=tmp_path / "table", name="c", allow_unsigned=True)
    assert len(by_files.probabilities) == 4 and by_table.probabilities == by_files.probabilities
    # unrounded: the Scorer on each case's files vs the table's row through the same function
    scorer = Scorer(bundle, explain=False, num_threads=1, allow_unsigned=True)
    rows, _cases = table_probabilities(load_bundle(bundle, allow_unsigned=True), table)
    for r, c in zip(rows, read_cohort(files)):
        clinical = parse_clinical(cea=c.cea, ca125=c.ca125, age=c.age)
        p = scorer.score(c.ct_path, c.roi_path, clinical, hash_inputs=False).probability
        assert r["case_id"] == c.case_id and abs(r["probability"] - p) <= 1e-9, c.case_id
    _same_metrics(by_table.result["metrics"], by_files.result["metrics"])
    assert by_table.result["oracle"] == by_files.result["oracle"]
    assert (tmp_path / "table" / "predictions.csv").read_text() == (tmp_path / "files" / "predictions.csv").read_text()


def test_a_table_from_other_settings_or_without_the_models_features_is_refused(cohort, tmp_path: Path) -> None:
    _files, table = cohort
    frame, meta = read_table(table)
    other = {**meta, "config": {**meta["config"], "preprocess": {**meta["config"]["preprocess"],
                                                                   "crop_margin_mm": 99.0}}}
    write_table(frame, tmp_path / "other.parquet", other)
    with pytest.raises(CohortError, match="other settings"):
        evaluate_bundle(bundle=DEMO, features=tmp_path / "other.parquet", out=tmp_path / "o", allow_unsigned=True)
    write_table(frame, tmp_path / "fp.parquet", {**meta, "backbone_fingerprint": "0" * 64})
    with pytest.raises(CohortError, match="another backbone"):
        evaluate_bundle(bundle=DEMO, features=tmp_path / "fp.parquet", out=tmp_path / "f", allow_unsigned=True)
    write_table(frame.drop(columns=["dl_011"]), tmp_path / "short.parquet", meta)
    with pytest.raises(CohortError, match="lacks 1 feature"):
        evaluate_bundle(bundle=DEMO, features=tmp_path / "short.parquet", out=tmp_path / "s", allow_unsigned=True)
    with pytest.raises(CohortError, match="either"):
        evaluate_bundle(bundle=DEMO, out=tmp_path / "n", allow_unsigned=True)


def test_failed_and_non_finite_rows_are_failed_cases(cohort, tmp_path: Path) -> None:
    _files, table = cohort
    frame, meta = read_table(table)
    frame.loc[0, "status"], frame.loc[0, "error"] = "error", "roi: the ROI is empty"
    frame.loc[2, "dl_011"] = float("nan")
    write_table(frame, tmp_path / "t.parquet", meta)
    ev = evaluate_bundle(bundle=DEMO, features=tmp_path / "t.parquet", out=tmp_path / "e", allow_unsigned=True)
    assert ev.result["n_scored"] == 2 and ev.result["n_failed"] == 2
    errors = [f["error"] for f in ev.result["failed"]]
    assert errors[0] == "roi: the ROI is empty" and "dl_011" in errors[1]
    assert json.loads((tmp_path / "e" / "evaluation.json").read_text())["n_failed"] == 2
    assert isinstance(pd.read_csv(tmp_path / "e" / "predictions.csv"), pd.DataFrame)
