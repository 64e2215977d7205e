"""Applicability domain of the demo model: fit it on training phantoms, measure its false-alarm
rate on held-out in-domain phantoms and its detection rate on out-of-domain ones.

    PYTHONPATH=. .venv/bin/python bench/domain_check.py WORK_DIR [--n-train 300] [--n-heldout 100]
        [--out domain.json] [--attach weights/demo]

Cohorts (phantoms regenerated from fixed seeds into WORK_DIR, reused when present; every case
goes through ``load_case`` — with the ROI plausibility checks — and the bundle's own feature
extractors, exactly as when scoring):

* ``train``   — the first N of the demo model's 1200 training phantoms (``pleura synth --seed 101
  --size medium``; case i does not depend on the cohort size, so these are the very cases the
  model was trained on). The domain is fitted on them.
* ``heldout`` — the first M phantoms of the demo model's held-out test cohort (seed 202, medium,
  standard scanners): in-domain cases never used for fitting; the share called "out" is the
  false-alarm rate.
* out-of-domain: ``huge`` (seed 303, tumours of 45–60 mm volume-equivalent diameter instead of
  12–35 mm), ``thick_noisy`` (the held-out patients on the scanner-shifted profile: 3–5 mm slices,
  35–60 HU noise, softer kernel), ``fine_grid`` (seed 404, 512×512 matrix with 100 slices: pixel
  spacing 0.6–0.9 mm instead of 1.25–1.48 mm). The share called "out" is the detection rate.

Prints one line per cohort (cases, refused, in, out, share out) and writes the fitted
``domain.json`` (``--out``), optionally attached to a bundle (``--attach``: the manifest gets its
sha256 and the bundle id changes; probabilities do not).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# bench/pipeline.py would shadow the pipeline package when this script runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from pipeline.core.errors import PleuraRiskError  # noqa: E402
from pipeline.inputs.case import load_case  # noqa: E402
from pipeline.inputs.clinical import parse_clinical  # noqa: E402
from pipeline.serving.domain import DomainModel, case_descriptors, fit_domain  # noqa: E402
import pipeline.synth as phantom  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Cohort:
    name: str
    seed: int
    n: int
    size: str = "medium"
    scanner: str = "standard"
    n_slices: int | None = None
    diameter_mm: tuple[float, float] | None = None  # override the tumour size draw
    in_domain: bool = True


def _case_files(cohort: Cohort, folder: Path, i: int, child: np.random.SeedSequence) -> tuple[Path, Path, dict] | None:
    """Render (or reuse) case i of a cohort; (ct, roi, clinical) or None when it cannot be placed."""
    import SimpleITK as sitk

    rng = np.random.default_rng(child)
    drawn = phantom.sample_case(rng, size=cohort.size, case_index=i, scanner=cohort.scanner, n_slices=cohort.n_slices)
    spec = drawn.spec
    if cohort.diameter_mm is not None:
        lo, hi = cohort.diameter_mm
        tumour = dataclasses.replace(spec.tumour, diameter_mm=float(rng.uniform(lo, hi)))
        spec = dataclasses.replace(spec, tumour=tumour)
    ct_path, roi_path = folder / f"case_{i:04d}_ct.nii.gz", folder / f"case_{i:04d}_roi.nii.gz"
    if not (ct_path.exists() and roi_path.exists()):
        try:
            ph = phantom.make_phantom(spec)
        except ValueError:
            return None
        sitk.WriteImage(ph.ct.to_sitk(), str(ct_path), useCompression=True)
        sitk.WriteImage(ph.roi.to_sitk(), str(roi_path), useCompression=True)
    c = drawn.clinical
    return ct_path, roi_path, {"cea": f"{c.cea_ng_ml:.4f}", "ca125": f"{c.ca125_u_ml:.4f}", "age": f"{c.age_years:.2f}"}


def run_cohort(cohort: Cohort, work: Path, scorer) -> pd.DataFrame:  # noqa: ANN001 - Scorer
    """One row per case: status, refusal message, model features, descriptors (cached as parquet)."""
    cache = work / f"{cohort.name}_{cohort.n}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    folder = work / cohort.name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for i, child in enumerate(np.random.SeedSequence(cohort.seed).spawn(cohort.n)):
        made = _case_files(cohort, folder, i, child)
        if made is None:
            continue
        ct_path, roi_path, clin = made
        row: dict = {"case_id": f"case_{i:04d}"}
        try:
            case = load_case(ct_path, roi_path, config=scorer.bundle.config, hash_inputs=False)
            vector = scorer.extractors.extract(case, parse_clinical(**clin))
            findings, _ = scorer.assess(case, vector)
            row.update(status="ok", message=" | ".join(case.warnings), **vector.as_dict(),
                       **{f"desc:{k}": v for k, v in case_descriptors(
                           ct_crop=case.ct_crop.array, spacing_xyz=case.ct_spacing_xyz,
                           longest_diameter_mm=findings.longest_diameter_mm, volume_ml=findings.volume_ml).items()})
        except PleuraRiskError as err:
            row.update(status="refused", message=f"{err.code}: {err}")
        rows.append(row)
        if (i + 1) % 25 == 0:
            print(f"  {cohort.name}: {i + 1}/{cohort.n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    table.to_parquet(cache)
    return table


def _split(table: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ok = table[table["status"] == "ok"]
    desc = ok[[c for c in ok.columns if c.startswith("desc:")]].rename(columns=lambda c: c[5:])
    return ok[names].astype(float), desc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="folder for the phantoms and cached feature tables")
    parser.add_argument("--bundle", default=None, help="model bundle (default weights/demo)")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-heldout", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="write the fitted domain.json here")
    parser.add_argument("--attach", default=None, help="attach the fitted domain.json to this bundle")
    parser.add_argument("--n-ood", type=float, default=1.0, help="scale the out-of-domain cohorts' sizes (smoke runs)")
    args = parser.parse_args()
    from pipeline.serving.score import Scorer

    scorer = Scorer(args.bundle, explain=False, num_threads=1)
    scorer.domain = None  # describe every case, whatever the bundle holds
    names = list(scorer.bundle.feature_names)
    args.work.mkdir(parents=True, exist_ok=True)
    train = run_cohort(Cohort("train", 101, args.n_train), args.work, scorer)
    X, desc = _split(train, names)
    source = (f"features of the first {len(X)} of the model's 1200 training phantoms (pleura synth --seed 101 "
              "--size medium), re-extracted with the bundle's own settings; bench/domain_check.py")
    data = fit_domain(X, desc, source=source)
    model = DomainModel.from_dict(data)
    k = lambda n: max(1, int(round(n * args.n_ood)))  # noqa: E731
    cohorts = [Cohort("heldout", 202, args.n_heldout),
               Cohort("huge", 303, k(15), diameter_mm=(45.0, 60.0), in_domain=False),
               Cohort("thick_noisy", 202, k(30), scanner="thick_noisy", in_domain=False),
               Cohort("fine_grid", 404, k(8), size="clinical", n_slices=100, in_domain=False)]
    print(f"domain fitted on {len(X)} training cases ({(train['status'] != 'ok').sum()} refused); "
          f"{len(data['multivariate']['variances'])} principal components, threshold "
          f"{data['multivariate']['threshold']:.1f}")
    print("cohort        cases  refused  in  out  share_out  reasons (first case called out)")
    summary = {}
    for cohort in [Cohort("train", 101, args.n_train)] + cohorts:
        table = train if cohort.name == "train" else run_cohort(cohort, args.work, scorer)
        ok = table[table["status"] == "ok"]
        verdicts = []
        for _, row in ok.iterrows():
            d = {c[5:]: (None if pd.isna(row[c]) else float(row[c])) for c in ok.columns if c.startswith("desc:")}
            verdicts.append(model.verdict({n: float(row[n]) for n in names}, d))
        n_out = sum(v.status == "out" for v in verdicts)
        refused = int((table["status"] == "refused").sum())
        first = next((v.reasons for v in verdicts if v.status == "out"), ())
        share = n_out / max(1, len(verdicts))
        summary[cohort.name] = {"cases": len(table), "refused": refused, "out": n_out, "scored": len(verdicts),
                                "share_out": share, "in_domain": cohort.in_domain}
        print(f"{cohort.name:12s} {len(table):6d} {refused:8d} {len(verdicts) - n_out:3d} {n_out:4d}  "
              f"{100 * share:8.1f} %  {'; '.join(first)[:160]}")
        for msg in table.loc[table["status"] == "refused", "message"].head(2):
            print(f"    refused: {msg[:160]}")
    ood = [s for s in summary.values() if not s["in_domain"]]
    detected = sum(s["out"] for s in ood) / max(1, sum(s["scored"] for s in ood))
    print(f"false-alarm rate (held-out in-domain): {100 * summary['heldout']['share_out']:.1f} %  "
          f"({summary['heldout']['out']}/{summary['heldout']['scored']}); "
          f"detection rate (out-of-domain, scored): {100 * detected:.1f} %")
    data["validation"] = {"false_alarm_rate_heldout": summary["heldout"]["share_out"],
                          "n_heldout": summary["heldout"]["scored"], "detection_rate_ood": detected,
                          "n_ood": sum(s["scored"] for s in ood), "per_cohort": summary}
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.attach:
        from pipeline.serving.bundle import attach_files
        from pipeline.serving.domain import DOMAIN_FILE

        v = data["validation"]
        card = (f"## Applicability domain\n\n`{DOMAIN_FILE}` records what the training data covered: ranges of the "
                f"tumour diameter ({data['descriptors']['tumour_diameter_mm']['min']:.0f}–"
                f"{data['descriptors']['tumour_diameter_mm']['max']:.0f} mm longest axial), volume, pixel and slice "
                "spacing and image noise, the range of each model feature, and a Mahalanobis distance on the "
                "principal components of the model features. It was fitted on the " + source + ". Every result "
                "says whether the case lies inside it (\"domain\": in/out, with reasons). On "
                f"{v['n_heldout']} held-out in-domain phantoms {100 * v['false_alarm_rate_heldout']:.1f} % were called "
                f"out (false alarms); on {v['n_ood']} out-of-domain phantoms (tumours of 45–60 mm, thick-slice noisy "
                f"scanners, 512-matrix grids) {100 * v['detection_rate_ood']:.1f} % were.\n")
        bundle_id = attach_files(args.attach, {DOMAIN_FILE: text.encode()}, card_append=card)
        print(f"attached {DOMAIN_FILE} to {args.attach}; new bundle id {bundle_id[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
