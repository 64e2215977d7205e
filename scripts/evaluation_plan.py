"""The pre-registered evaluation plan of a synthetic-data bundle (pipeline/training/plan.py).

    python scripts/evaluation_plan.py new PLAN.json --train-n 1200 --train-seed 301 --tuning-n 300 \
        --tuning-seed 302 [--test-n 1000 --cohorts 3 --size clinical --particles 8 --iterations 6]
    python scripts/evaluation_plan.py env PLAN.json          # shell variables for the build script
    python scripts/evaluation_plan.py retire PLAN.json test_2 --reason "WHAT WAS DECIDED AFTER SEEING IT"
    python scripts/evaluation_plan.py score PLAN.json BUNDLE EVAL_ROOT [--attach]

``new`` writes the plan once (the test seeds are drawn at random then) and refuses to overwrite it.
``score`` reads EVAL_ROOT/<cohort>/predictions.csv (``pleura evaluate`` output) of every active test
cohort and EVAL_ROOT/shifted/predictions.csv, scores each cohort once (a ledger next to the plan
refuses a second bundle on the same cohort), writes EVAL_ROOT/plan_results.json and prints one line
per cohort; ``--attach`` stores the results in the bundle's manifest and model card.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.errors import PleuraRiskError  # noqa: E402
from pipeline.training.plan import new_plan, read_plan, retire_cohort, write_plan  # noqa: E402


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _line(name: str, r: dict) -> str:
    m, o = r["model"], r["oracle"]
    ok = all(r["goals_met"].values())
    return (f"{name} ({r['n_cases']} cases): AUC {m['auc']['value']:.3f} ({m['auc']['ci95'][0]:.3f}–"
            f"{m['auc']['ci95'][1]:.3f}) vs oracle {o['auc']['value']:.3f}, gap {r['auc_gap']['value']:+.3f} "
            f"({r['auc_gap']['ci95'][0]:+.3f} to {r['auc_gap']['ci95'][1]:+.3f}); Brier {m['brier']['value']:.3f} vs "
            f"{o['brier']['value']:.3f} (excess {r['brier_excess']['value']:+.3f}, CI {r['brier_excess']['ci95'][0]:+.3f}"
            f" to {r['brier_excess']['ci95'][1]:+.3f}); slope {m['calibration_slope']['value']:.2f} "
            f"({_f(m['calibration_slope']['ci95'][0], '.2f')}–{_f(m['calibration_slope']['ci95'][1], '.2f')}); goals "
            f"{'met' if ok else 'NOT met: ' + ', '.join(k for k, v in r['goals_met'].items() if not v)}")


def cmd_new(a: argparse.Namespace) -> int:
    plan = new_plan(train_n=a.train_n, train_seed=a.train_seed, tuning_n=a.tuning_n, tuning_seed=a.tuning_seed,
                    test_n=a.test_n, n_test_cohorts=a.cohorts, size=a.size, generation=a.generation,
                    shift_n=a.shift_n, pso_particles=a.particles, pso_iterations=a.iterations,
                    outer_folds=a.outer_folds, bootstrap=a.bootstrap, note=a.note)
    write_plan(plan, a.plan)
    print(f"wrote the evaluation plan: test cohorts {[(c['name'], c['seed'], c['n']) for c in plan['test']]}"
          + ("" if plan["release_ready"] else " (a trial plan: a release needs >= 3 cohorts of >= 1000 cases)"))
    return 0


def cmd_env(a: argparse.Namespace) -> int:
    p = read_plan(a.plan)
    v = {"GEN": p["phantoms"]["generation"], "SIZE": p["phantoms"]["size"], "TRAIN_SEED": p["train"]["seed"],
         "TRAIN_N": p["train"]["n"], "TUNING_SEED": p["tuning"]["seed"], "TUNING_N": p["tuning"]["n"],
         "PARTICLES": p["training"]["pso_particles"], "ITERATIONS": p["training"]["pso_iterations"],
         "OUTER_FOLDS": p["training"]["outer_folds"],
         "TESTS": " ".join(f"{c['name']}:{c['seed']}:{c['n']}" for c in p["test"]),
         "SHIFT_OF": p["scanner_shift"]["of"], "SHIFT_N": p["scanner_shift"]["n"],
         "SHIFT_SCANNER": p["scanner_shift"]["scanner"]}
    shift_seed = next(c["seed"] for c in p["test"] if c["name"] == p["scanner_shift"]["of"])
    v["SHIFT_SEED"] = shift_seed
    print("\n".join(f"{k}={shlex.quote(str(x))}" for k, x in v.items()))
    return 0


def cmd_retire(a: argparse.Namespace) -> int:
    plan = read_plan(a.plan)
    new = retire_cohort(plan, a.cohort, reason=a.reason, results_seen=a.results_seen)
    write_plan(plan, a.plan, overwrite=True)
    print(f"retired {a.cohort}; new test cohort {new['name']} (seed {new['seed']}, {new['n']} cases)")
    return 0


def model_identity(bundle: Path) -> str:
    """sha256 over the bundle's model files (not its reports, card, manifest or signature, which
    attaching results changes): the identity a test cohort is scored with."""
    import hashlib

    h = hashlib.sha256()
    skip = {"MODEL_CARD.md", "manifest.json", "signature.json"}
    for f in sorted(Path(bundle).rglob("*")):
        rel = f.relative_to(bundle).as_posix()
        if f.is_file() and rel not in skip and not rel.startswith("report/"):
            h.update(rel.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def cmd_score(a: argparse.Namespace) -> int:
    from pipeline.serving.bundle import attach_files, load_bundle
    from pipeline.training.plan_eval import paired_shift, read_predictions, record_once, score_cohort

    plan = read_plan(a.plan)
    bundle = load_bundle(a.bundle, allow_unsigned=True)
    model_id = model_identity(bundle.path)
    boot = plan["bootstrap"]
    results, lines = {}, []
    for c in plan["test"]:
        pred = a.eval_root / c["name"] / "predictions.csv"
        r = score_cohort(read_predictions(pred), goals=plan["goals"], resamples=boot["resamples"], seed=boot["seed"])
        results[c["name"]] = record_once(a.plan, cohort=c, bundle_id=model_id, predictions=pred, result=r)
        lines.append(_line(c["name"], results[c["name"]]))
    shifted = a.eval_root / "shifted" / "predictions.csv"
    if shifted.exists():
        s = plan["scanner_shift"]
        r = paired_shift(read_predictions(a.eval_root / s["of"] / "predictions.csv"), read_predictions(shifted),
                         goal=plan["goals"]["scanner_shift_drop_max"], resamples=boot["resamples"], seed=boot["seed"])
        results["scanner_shift"] = r
        lines.append(f"scanner shift ({r['n_cases']} paired patients, {s['scanner']}): AUC {r['auc_standard']:.3f} vs "
                     f"{r['auc_shifted']:.3f}, drop {r['drop']['value']:+.3f} ({r['drop']['ci95'][0]:+.3f} to "
                     f"{r['drop']['ci95'][1]:+.3f}); goal {'met' if r['goal_met'] else 'NOT met'}")
    from pipeline.training.evaluate import json_safe

    results = json_safe(results)  # NaN → null, so attaching cannot fail half-way
    (a.eval_root / "plan_results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n",
                                                   encoding="utf-8")
    print("\n".join(lines))
    if a.attach:
        card = "\n".join(["", "Pre-registered test cohorts (scored once):"] + [f"- {x}" for x in lines])
        attach_files(a.bundle, {"report/plan_results.json": json.dumps(results, indent=2).encode()},
                     manifest_updates={"preregistered_evaluation": {"plan": Path(a.plan).name, "results": results}},
                     card_append=card)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(required=True)
    n = sub.add_parser("new")
    n.add_argument("plan", type=Path)
    n.add_argument("--train-n", type=int, required=True)
    n.add_argument("--train-seed", type=int, required=True)
    n.add_argument("--tuning-n", type=int, required=True)
    n.add_argument("--tuning-seed", type=int, required=True)
    n.add_argument("--test-n", type=int, default=1000)
    n.add_argument("--cohorts", type=int, default=3)
    n.add_argument("--size", default="clinical", choices=["small", "medium", "clinical"])
    n.add_argument("--generation", type=int, default=3, choices=[2, 3])
    n.add_argument("--shift-n", type=int, default=300)
    n.add_argument("--particles", type=int, default=8)
    n.add_argument("--iterations", type=int, default=6)
    n.add_argument("--outer-folds", type=int, default=3)
    n.add_argument("--bootstrap", type=int, default=2000)
    n.add_argument("--note", default="")
    n.set_defaults(func=cmd_new)
    e = sub.add_parser("env")
    e.add_argument("plan", type=Path)
    e.set_defaults(func=cmd_env)
    r = sub.add_parser("retire")
    r.add_argument("plan", type=Path)
    r.add_argument("cohort")
    r.add_argument("--reason", required=True)
    r.add_argument("--results-seen", default=None, help="what result was seen (e.g. 'AUC gap 0.041')")
    r.set_defaults(func=cmd_retire)
    s = sub.add_parser("score")
    s.add_argument("plan", type=Path)
    s.add_argument("bundle")
    s.add_argument("eval_root", type=Path)
    s.add_argument("--attach", action="store_true")
    s.set_defaults(func=cmd_score)
    a = ap.parse_args(argv)
    try:
        return a.func(a)
    except (ValueError, FileExistsError, PleuraRiskError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
