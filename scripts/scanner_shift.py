"""Paired scanner-shift check of a bundle: the same patients scored on two scanner settings.

    python scripts/scanner_shift.py BUNDLE STANDARD_EVAL_DIR SHIFTED_EVAL_DIR [--attach]

Reads the ``predictions.csv`` files written by ``pleura evaluate`` for two cohorts drawn from the
same seed (the same patients, tumours and labels; ``pleura synth --scanner`` changes only slice
thickness and noise), keeps the case ids present in both, and prints the AUC on each and the
paired difference (standard − shifted) with a bootstrap 95% CI (2000 resamples of patients,
seed 0). Issue #3's bar: the drop is at most 0.03. ``--attach`` appends the line to the bundle's
MODEL_CARD.md and the figures to its manifest (``scanner_shift``), re-sealing the manifest.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import roc_auc_score  # noqa: E402

from pipeline.serving.bundle import attach_files  # noqa: E402


def read_predictions(folder: Path) -> dict[str, tuple[int, float]]:
    with (folder / "predictions.csv").open(newline="") as fh:
        return {r["case_id"]: (int(r["label"]), float(r["probability"])) for r in csv.DictReader(fh)}


def paired_drop(standard: dict[str, tuple[int, float]], shifted: dict[str, tuple[int, float]], *,
                n_bootstrap: int = 2000, seed: int = 0) -> dict[str, float]:
    ids = sorted(set(standard) & set(shifted))
    if any(standard[i][0] != shifted[i][0] for i in ids):
        raise SystemExit("the two cohorts give different labels for the same case id: not the same patients")
    y = np.array([standard[i][0] for i in ids])
    a = np.array([standard[i][1] for i in ids])
    b = np.array([shifted[i][1] for i in ids])
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_bootstrap):
        k = rng.integers(0, len(y), len(y))
        if y[k].min() != y[k].max():
            diffs.append(roc_auc_score(y[k], a[k]) - roc_auc_score(y[k], b[k]))
    auc_a, auc_b = roc_auc_score(y, a), roc_auc_score(y, b)
    return {"n_cases": len(ids), "auc_standard": float(auc_a), "auc_shifted": float(auc_b),
            "auc_drop": float(auc_a - auc_b), "ci_low": float(np.percentile(diffs, 2.5)),
            "ci_high": float(np.percentile(diffs, 97.5)), "bar_met": bool(auc_a - auc_b <= 0.03)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("bundle")
    ap.add_argument("standard", type=Path)
    ap.add_argument("shifted", type=Path)
    ap.add_argument("--attach", action="store_true")
    args = ap.parse_args(argv)
    r = paired_drop(read_predictions(args.standard), read_predictions(args.shifted))
    line = (f"- scanner shift, paired: the same {r['n_cases']} patients on standard scanners vs thick slices and more "
            f"noise: AUC {r['auc_standard']:.3f} vs {r['auc_shifted']:.3f}, drop {r['auc_drop']:+.3f} (95% CI "
            f"{r['ci_low']:+.3f} to {r['ci_high']:+.3f}); bar (drop ≤ 0.03): {'met' if r['bar_met'] else 'NOT met'}")
    print(line.lstrip("- "))
    if args.attach:
        attach_files(args.bundle, {}, manifest_updates={"scanner_shift": r}, card_append=line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
