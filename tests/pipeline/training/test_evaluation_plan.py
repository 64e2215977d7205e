"""The pre-registered evaluation plan: test seeds drawn before training and written down, each test
cohort scored once, retired cohorts kept with their reason, and figures with CIs and oracle gaps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.training.plan import GOALS, new_plan, read_plan, retire_cohort, write_plan
from pipeline.training.plan_eval import paired_shift, record_once, score_cohort

ROOT = Path(__file__).resolve().parents[3]


def _plan(**kw):
    return new_plan(train_n=1200, train_seed=301, tuning_n=300, tuning_seed=302, **kw)


def test_plan_lists_three_fresh_test_cohorts_and_the_goals(tmp_path):
    plan = _plan()
    seeds = [c["seed"] for c in plan["test"]]
    assert len(plan["test"]) == 3 and all(c["n"] == 1000 for c in plan["test"]) and plan["release_ready"]
    assert len(set(seeds) | {301, 302}) == 5  # no test seed is a training or tuning seed
    assert plan["goals"] == GOALS and plan["goals"]["auc_gap_max"] == 0.03
    assert _plan()["test"][0]["seed"] != seeds[0]  # drawn at random, not chosen
    path = write_plan(plan, tmp_path / "plan.json")
    assert read_plan(path)["test"] == plan["test"]
    with pytest.raises(FileExistsError, match="written once"):
        write_plan(_plan(), path)
    assert not _plan(test_n=100, n_test_cohorts=1)["release_ready"]


def test_retiring_a_cohort_keeps_it_with_its_reason_and_draws_a_new_one():
    plan = _plan()
    old = plan["test"][0]
    new = retire_cohort(plan, "test_1", reason="changed the stacker folds after its AUC", results_seen="gap 0.041")
    assert plan["retired"][0]["seed"] == old["seed"] and plan["retired"][0]["reason"].startswith("changed")
    assert new["name"] == "test_1~2" and new["seed"] != old["seed"] and plan["test"][0] == new
    assert plan["scanner_shift"]["of"] == "test_1~2"
    with pytest.raises(ValueError, match="say why"):
        retire_cohort(plan, "test_2", reason=" ")


def _preds(n=400, noise=0.0, seed=1):
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < p_true).astype(int)
    p = np.clip(p_true + rng.normal(0, noise, n), 0.001, 0.999)
    return {f"c{i}": (int(y[i]), float(p[i]), float(p_true[i])) for i in range(n)}


def test_scores_have_cis_and_gaps_to_the_oracle():
    exact = score_cohort(_preds(), goals=GOALS, resamples=200)
    assert exact["auc_gap"]["value"] == pytest.approx(0.0) and all(exact["goals_met"].values())
    noisy = score_cohort(_preds(noise=0.25), goals=GOALS, resamples=200)
    assert noisy["auc_gap"]["value"] > 0.03 and not noisy["goals_met"]["auc_gap"]
    lo, hi = noisy["model"]["auc"]["ci95"]
    assert lo < noisy["model"]["auc"]["value"] < hi
    shift = paired_shift(_preds(), _preds(noise=0.25), goal=0.03, resamples=200)
    assert shift["drop"]["value"] > 0.03 and not shift["goal_met"]


def test_a_test_cohort_is_scored_once(tmp_path):
    plan_path = tmp_path / "plan.json"
    pred = tmp_path / "predictions.csv"
    pred.write_text("case_id,label,probability,p_true\nc0,1,0.7,0.6\n")
    cohort = {"name": "test_1", "seed": 123}
    first = record_once(plan_path, cohort=cohort, bundle_id="model-a", predictions=pred, result={"auc": 0.8})
    assert record_once(plan_path, cohort=cohort, bundle_id="model-a", predictions=pred, result={"auc": 0.9}) == first
    with pytest.raises(ValueError, match="scored once"):
        record_once(plan_path, cohort=cohort, bundle_id="model-b", predictions=pred, result={"auc": 0.9})


def test_plan_script_writes_env_and_refuses_a_second_plan(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "evaluation_plan.py")]
    plan = tmp_path / "plan.json"
    args = ["new", str(plan), "--train-n", "60", "--train-seed", "1", "--tuning-n", "0", "--tuning-seed", "2",
            "--test-n", "100", "--cohorts", "1", "--size", "medium"]
    assert subprocess.run(script + args, capture_output=True, text=True).returncode == 0
    again = subprocess.run(script + args, capture_output=True, text=True)
    assert again.returncode == 2 and "written once" in again.stderr and "Traceback" not in again.stderr
    env = subprocess.run(script + ["env", str(plan)], capture_output=True, text=True, check=True).stdout
    seed = json.loads(plan.read_text())["test"][0]["seed"]
    assert f"TESTS=test_1:{seed}:100" in env and "SIZE=medium" in env
