"""``pleura synth``, ``features``, ``fit``, ``train``, ``evaluate``: arguments → one library
function (:mod:`pipeline.synth`, :mod:`pipeline.training`) → printed summary."""

from __future__ import annotations

import argparse
import time

from pipeline.cli._common import EXIT_CASES_FAILED, EXIT_OK, at_least, progress_bar
from pipeline.core.textsafe import printable
from pipeline.core.env import Settings, threads_per_worker


def cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth import SCANNER_PROFILES, SCANNER_PROFILES_3, write_cohort

    known = SCANNER_PROFILES if args.generation == 2 else {**SCANNER_PROFILES, **SCANNER_PROFILES_3}
    if args.scanner and args.scanner not in known:
        raise ValueError(f"--scanner must be one of {sorted(known)}")
    t = time.perf_counter()
    if args.features_out:
        from pipeline.training.synth_features import synth_feature_table

        workers = max(1, args.workers)
        table = synth_feature_table(args.out, args.features_out, n=args.n, seed=args.seed, size=args.size,
                                    generation=args.generation, scanner=args.scanner, backbone_spec=args.backbone,
                                    workers=workers, num_threads=threads_per_worker(workers),
                                    progress=None if args.quiet else progress_bar("synth"))
        bad = table[table["status"] != "ok"]
        print(f"{len(table) - len(bad)} of {len(table)} synthetic cases featurised in memory → {args.features_out} "
              f"(clinical.csv in {args.out}, no image files) in {time.perf_counter() - t:.1f} s")
        for _, row in bad.iterrows():
            print(printable(f"  failed: {row['case_id']}: {row['error']}"))
        return EXIT_CASES_FAILED if len(bad) else EXIT_OK
    csv_path = write_cohort(args.out, n=args.n, seed=args.seed, size=args.size, generation=args.generation,
                            **({"scanner": known[args.scanner]} if args.scanner else {}))
    print(f"wrote {args.n} synthetic cases to {csv_path} in {time.perf_counter() - t:.1f} s")
    return EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.core.config import PipelineConfig, RadiomicsConfig
    from pipeline.serving.outputs import check_output
    from pipeline.training.dataset import extract_cohort_features

    check_output(args.out, inputs=[args.cohort])  # e.g. --out cohort.csv would overwrite the cohort
    config = PipelineConfig(radiomics=RadiomicsConfig(clamp_hu=None)) if args.no_clamp else PipelineConfig()
    workers = max(1, args.workers)
    table = extract_cohort_features(args.cohort, args.out, config=config, backbone_spec=args.backbone,
                                    workers=workers, num_threads=args.threads or threads_per_worker(workers),
                                    progress=None if args.quiet else progress_bar("features"))
    bad = table[table["status"] != "ok"]
    print(f"{len(table) - len(bad)} of {len(table)} cases extracted ({table.shape[1] - 5} features) → {args.out}")
    for _, row in bad.iterrows():
        print(printable(f"  failed: {row['case_id']}: {row['error']}"))
    return EXIT_CASES_FAILED if len(bad) else EXIT_OK


def cmd_fit(args: argparse.Namespace) -> int:
    """Minimal model: a plain random forest on every feature (PSO tuning: ``pleura train``)."""
    from pipeline.training.fit import fit_bundle

    fitted = fit_bundle(features=args.features, out=args.out, trees=args.trees, seed=args.seed, synthetic=args.synthetic)
    print(f"wrote bundle {fitted.path} ({fitted.n_cases} cases, {fitted.n_features} features); it is unsigned: sign it "
          "with `pleura sign BUNDLE --key PRIVATE.pem` (or load it with --allow-unsigned)")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.training.build import always_keep_columns, train_bundle
    from pipeline.training.train import TrainConfig

    config = TrainConfig(seed=args.seed, outer_folds=args.outer_folds, inner_folds=args.inner_folds,
                         stack_folds=args.stack_folds, fusion=args.fusion, selection_k=args.k,
                         always_keep=always_keep_columns(args.keep or ["clinical"]), pso_particles=args.particles,
                         pso_iterations=args.iterations, ablation=not args.no_ablation, n_jobs=args.jobs)
    t0 = time.perf_counter()

    def progress(stage: str, step: int, total: int) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {stage} {step}/{total}", flush=True)

    trained = train_bundle(features=args.features, out=args.out, config=config, name=args.name,
                           recalibrate=not args.no_recalibration, synthetic=args.synthetic, progress=progress)
    print(f"wrote bundle {trained.path}: {trained.mode} fusion, {trained.n_features} features, nested-CV AUC "
          f"{trained.nested_cv_auc:.3f}, {trained.wall_time_s} s")
    print("the bundle is unsigned: sign it with `pleura sign BUNDLE --key PRIVATE.pem` (or load it with --allow-unsigned)")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.training.external import evaluate_bundle
    from pipeline.training.model_card import format_metric as _f

    if (args.cohort is None) == (args.features is None):
        raise ValueError("give either a cohort CSV or --features TABLE (a feature table with labels), not both")
    ev = evaluate_bundle(bundle=args.bundle, cohort=args.cohort, features=args.features, out=args.out, name=args.name,
                         workers=args.workers,
                         attach=args.attach, allow_unsigned=True if args.allow_unsigned else None,
                         on_note=lambda text: print(f"note: {text}"))
    m, result = ev.metrics, ev.result
    print(f"{result['cohort']}: {result['n_scored']} cases scored ({result['n_failed']} failed); AUC {_f(m.auc)} "
          f"(95% CI {_f(m.auc_ci_low)}–{_f(m.auc_ci_high)}), Brier {_f(m.brier, 4)}, "
          f"calibration slope {_f(m.calibration_slope)}, intercept {_f(m.calibration_intercept)}; "
          f"sensitivity {_f(m.sensitivity)}, specificity {_f(m.specificity)} at {_f(m.threshold)}")
    if "oracle" in result:
        print(f"oracle (true generative probability): AUC {result['oracle']['auc']:.3f}, "
              f"Brier {result['oracle']['brier']:.4f}")
    print(ev.notice)
    return EXIT_OK


def add_synth(sub: argparse._SubParsersAction, settings: Settings) -> None:
    y = sub.add_parser("synth", help="write a synthetic phantom cohort (NIfTI + clinical.csv)")
    y.add_argument("out")
    y.add_argument("--n", type=int, default=20)
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--size", default="small", choices=["small", "medium", "clinical"])
    y.add_argument("--scanner", default=None, help="scanner profile name (e.g. a shifted test profile); default: "
                   "generation 3 draws one of its profiles per case, generation 2 the standard one")
    y.add_argument("--generation", type=int, default=3, choices=[2, 3],
                   help="phantom generation: 3 (default: 8-100 mm tumours, contact types, fissures, several scanners) "
                        "or 2 (the demo model v2's phantoms, bit-for-bit)")
    y.add_argument("--features-out", default=None, metavar="PARQUET",
                   help="write no image files: render each case around its tumour in memory and write its features "
                        "(as `pleura features` would from the files; resumable) to PARQUET, clinical.csv to OUT")
    y.add_argument("--backbone", default="seed:0", help="with --features-out: as `pleura features --backbone`")
    y.add_argument("--workers", type=at_least(1), default=settings.workers, help="with --features-out: processes")
    y.add_argument("--quiet", action="store_true")
    y.set_defaults(func=cmd_synth)


def add_features(sub: argparse._SubParsersAction, settings: Settings) -> None:
    f = sub.add_parser("features", help="extract all features of a labelled cohort into a parquet table")
    f.add_argument("cohort", help="cohort CSV: case_id, ct_path, roi_path, CEA, CA125, age, label")
    f.add_argument("--out", required=True)
    f.add_argument("--backbone", default="seed:0", help="seed:N, an official MedicalNet .pth, or a .safetensors")
    f.add_argument("--workers", type=at_least(1), default=settings.workers)
    f.add_argument("--threads", type=at_least(1), default=None)
    f.add_argument("--no-clamp", action="store_true", help="do not clamp HU to [-160, 240] before radiomics")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=cmd_features)


def add_fit(sub: argparse._SubParsersAction, settings: Settings) -> None:
    t = sub.add_parser("fit", help="minimal model: plain random forest on a feature table → bundle")
    t.add_argument("features")
    t.add_argument("--out", required=True)
    t.add_argument("--trees", type=int, default=300)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--synthetic", action="store_true", help="the table comes from synthetic phantoms")
    t.set_defaults(func=cmd_fit)


def add_train(sub: argparse._SubParsersAction, settings: Settings) -> None:
    t = sub.add_parser("train", help="PSO-tuned forest with nested CV on a feature table → bundle")
    t.add_argument("features", help="parquet from `pleura features`")
    t.add_argument("--out", required=True, help="bundle folder, e.g. weights/NAME")
    t.add_argument("--name", default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--fusion", default="auto", choices=["auto", "early", "late"])
    t.add_argument("--outer-folds", type=int, default=5)
    t.add_argument("--inner-folds", type=int, default=3, help="folds of the PSO objective (default 3)")
    t.add_argument("--stack-folds", type=int, default=5,
                   help="late fusion: internal folds giving the stacker its out-of-fold inputs (default 5; "
                        "fewer folds make the stacked model under-confident, see TrainConfig)")
    t.add_argument("--k", type=int, default=50, help="features kept by the ranked selection")
    t.add_argument("--keep", action="append", choices=["clinical", "pleura"], default=None, metavar="GROUP",
                   help="feature group kept whole, past every selection filter (repeatable; default: clinical). "
                        "`--keep clinical --keep pleura` keeps the 17 pleura features a univariate ranking "
                        "can drop (docs/demo-model-analysis.md)")
    t.add_argument("--particles", type=int, default=8)
    t.add_argument("--iterations", type=int, default=6)
    t.add_argument("--jobs", type=int, default=1, help="parallel jobs for forests")
    t.add_argument("--no-ablation", action="store_true")
    t.add_argument("--no-recalibration", action="store_true")
    t.add_argument("--synthetic", action="store_true", help="trained on synthetic data (notice on every result)")
    t.set_defaults(func=cmd_train)


def add_evaluate(sub: argparse._SubParsersAction, settings: Settings) -> None:
    e = sub.add_parser("evaluate", help="external validation of a bundle on a labelled cohort CSV")
    e.add_argument("bundle")
    e.add_argument("cohort", nargs="?", default=None,
                   help="cohort CSV: case_id, ct_path, roi_path, CEA, CA125, age, label (or give --features)")
    e.add_argument("--features", default=None, metavar="PARQUET",
                   help="evaluate on a labelled feature table instead of images (`pleura features` or `pleura synth "
                        "--features-out`, extracted with the bundle's settings and backbone): same probabilities as "
                        "scoring the images, without reading them")
    e.add_argument("--out", required=True, help="folder for evaluation.json, predictions.csv and plots")
    e.add_argument("--name", default=None, help="cohort label in the report")
    e.add_argument("--workers", type=int, default=1)
    e.add_argument("--attach", action="store_true",
                   help="also store the results in the bundle (re-seals its manifest and removes its signature)")
    e.add_argument("--allow-unsigned", action="store_true",
                   help="load the bundle even if it is unsigned or signed by a key this installation does not trust")
    e.set_defaults(func=cmd_evaluate)
