"""Pre-registered evaluation plan of a synthetic-data bundle (demo model v3 onwards).

Written *before* any training, the plan fixes which phantom cohorts are for what:

* ``train``: the training cohort (seed, size);
* ``tuning``: a cohort for every modelling decision (feature choices, PSO budget, folds…); look at
  it as often as needed;
* ``test``: at least three cohorts of at least 1000 cases whose seeds are drawn at random when
  the plan is made (``secrets``), so no decision can have seen them; each is scored exactly once
  (:mod:`pipeline.training.plan_eval`);
* ``scanner_shift``: the first patients of the first test cohort re-imaged on a shifted scanner
  profile (a paired comparison);
* ``goals``: AUC gap to the oracle, Brier excess over the oracle, calibration slope range, paired
  scanner-shift drop.

If a decision is taken after a test result has been seen, that cohort is *retired* with the
reason (:func:`retire_cohort`) and a new one with a fresh random seed takes its place; the plan
keeps every retired cohort. The plan file is JSON; the same plan always rebuilds the same cohorts.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from pathlib import Path
from typing import Any, Optional

__all__ = ["GOALS", "new_plan", "read_plan", "write_plan", "retire_cohort", "active_test_cohorts"]

GOALS: dict[str, Any] = {"auc_gap_max": 0.03, "brier_excess_max": 0.02, "calibration_slope_range": [0.8, 1.2],
                         "scanner_shift_drop_max": 0.03}
"""The quality bar each test cohort must meet (issue #22)."""

_PLAN_VERSION = 1


def _fresh_seed(taken: set[int]) -> int:
    while True:
        seed = 10_000 + secrets.randbelow(2**31 - 10_000)
        if seed not in taken:
            return seed


def _seeds(plan: dict[str, Any]) -> set[int]:
    cohorts = [plan["train"], plan["tuning"], *plan["test"], *plan.get("retired", [])]
    return {int(c["seed"]) for c in cohorts}


def new_plan(*, train_n: int, train_seed: int, tuning_n: int, tuning_seed: int, test_n: int = 1000,
             n_test_cohorts: int = 3, size: str = "clinical", generation: int = 3, shift_n: int = 300,
             shift_scanner: str = "thick_noisy", pso_particles: int = 8, pso_iterations: int = 6,
             outer_folds: int = 3, bootstrap: int = 2000, note: str = "") -> dict[str, Any]:
    """A new plan (module docstring); the test seeds are drawn at random now.

    Args:
        train_n, train_seed: training cohort size and seed.
        tuning_n, tuning_seed: tuning/selection cohort size and seed.
        test_n: cases per test cohort (>= 1000 for a release; smaller only for trial runs).
        n_test_cohorts: number of test cohorts (>= 3 for a release).
        size: phantom size preset; generation: phantom generation.
        shift_n: patients of the first test cohort re-imaged on ``shift_scanner``.
        pso_particles, pso_iterations, outer_folds: the training budget (``pleura train``).
        bootstrap: bootstrap resamples of the confidence intervals (seed 0).
        note: free text (why the plan was made).
    """
    for name, value, low in (("train_n", train_n, 20), ("tuning_n", tuning_n, 0), ("test_n", test_n, 20),
                             ("n_test_cohorts", n_test_cohorts, 1), ("shift_n", shift_n, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if train_seed == tuning_seed:
        raise ValueError("the training and tuning cohorts need different seeds")
    plan: dict[str, Any] = {
        "plan_version": _PLAN_VERSION,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "note": note,
        "phantoms": {"generation": generation, "size": size},
        "train": {"name": "train", "seed": int(train_seed), "n": train_n},
        "tuning": {"name": "tuning", "seed": int(tuning_seed), "n": tuning_n,
                   "use": "every modelling decision (selection, tuning, budget); may be looked at freely"},
        "test": [],
        "retired": [],
        "scanner_shift": {"of": "test_1", "n": min(shift_n, test_n), "scanner": shift_scanner},
        "training": {"pso_particles": pso_particles, "pso_iterations": pso_iterations, "outer_folds": outer_folds},
        "bootstrap": {"resamples": bootstrap, "seed": 0},
        "goals": dict(GOALS),
        "release_ready": test_n >= 1000 and n_test_cohorts >= 3,
    }
    for k in range(n_test_cohorts):
        plan["test"].append({"name": f"test_{k + 1}", "seed": _fresh_seed(_seeds(plan)), "n": test_n})
    return plan


def write_plan(plan: dict[str, Any], path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the plan as JSON; an existing plan is never replaced unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"the evaluation plan {p.name} already exists: a plan is written once, before "
                              "training; retire a cohort instead of drawing the plan again")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p


def read_plan(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a plan file."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"the evaluation plan cannot be read ({type(err).__name__})") from None
    if not isinstance(plan, dict) or plan.get("plan_version") != _PLAN_VERSION:
        raise ValueError("the evaluation plan is not a version-1 plan file")
    for key in ("train", "tuning", "test", "retired", "goals", "phantoms"):
        if key not in plan:
            raise ValueError(f"the evaluation plan has no {key!r} entry")
    return plan


def active_test_cohorts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The test cohorts in force (retired ones are in ``plan["retired"]``)."""
    return list(plan["test"])


def retire_cohort(plan: dict[str, Any], name: str, *, reason: str, results_seen: Optional[str] = None) -> dict[str, Any]:
    """Retire test cohort ``name`` (a decision was taken after seeing its result) and put a new
    cohort with a fresh random seed in its place; returns the new cohort. The plan is changed in
    place; write it with :func:`write_plan` (``overwrite=True``)."""
    if not reason.strip():
        raise ValueError("say why the cohort is retired (the decision its result led to)")
    for i, c in enumerate(plan["test"]):
        if c["name"] == name:
            break
    else:
        raise ValueError(f"no active test cohort named {name!r}")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    plan["retired"].append({**c, "retired_utc": now, "reason": reason, "results_seen": results_seen})
    generation = 1 + sum(1 for r in plan["retired"] if r["name"].split("~")[0] == name.split("~")[0])
    new = {"name": f"{name.split('~')[0]}~{generation}", "seed": _fresh_seed(_seeds(plan)), "n": c["n"]}
    plan["test"][i] = new
    shift = plan.get("scanner_shift")
    if shift and shift.get("of") == name:
        shift["of"] = new["name"]
    return new
