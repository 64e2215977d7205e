"""``pleura``: the command-line interface — a thin layer over the pipeline functions.

Every command prints one ``error: …`` line on stderr and exits non-zero for a problem the user
can fix (exit 2), never a traceback (``--debug`` shows one). ``pleura batch`` exits 1 when any
case failed (their rows say why) and 0 when all were scored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from pipeline import __version__
from pipeline.core.textsafe import printable

EXIT_OK, EXIT_CASES_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
ALLOW_UNSIGNED_HELP = ("load the model bundle even if it is unsigned or signed by a key this installation does not "
                       "trust (results are labelled 'unsigned model'); also PLEURA_ALLOW_UNSIGNED=1")


def _progress_bar(total_label: str):  # noqa: ANN202
    from tqdm import tqdm

    state: dict[str, object] = {}

    def update(done: int, total: int, row: dict | None) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=total_label, unit="case", file=sys.stderr,
                       disable=None, dynamic_ncols=True)
            state["bar"] = bar
            return
        bar.update(done - bar.n)
        if row is not None and row.get("status") not in ("ok", None):
            line = f"  {row.get('case_id')}: {row.get('error_type') or ''} {row.get('error')}".rstrip()
            bar.write(printable(line), file=sys.stderr)
        if done >= total:
            bar.close()

    return update


# ------------------------------------------------------------------------------------------------
def cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth import write_cohort

    kwargs = {}
    if args.scanner:
        from pipeline.synth import SCANNER_PROFILES

        if args.scanner not in SCANNER_PROFILES:
            raise ValueError(f"--scanner must be one of {sorted(SCANNER_PROFILES)}")
        kwargs["scanner"] = SCANNER_PROFILES[args.scanner]
    t = time.perf_counter()
    csv_path = write_cohort(args.out, n=args.n, seed=args.seed, size=args.size, **kwargs)
    print(f"wrote {args.n} synthetic cases to {csv_path} in {time.perf_counter() - t:.1f} s")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.serving.bundle import bundle_config
    from pipeline.inputs.case import load_case
    from pipeline.inputs.clinical import parse_clinical

    clinical = parse_clinical(cea=args.cea, ca125=args.ca125, age=args.age)
    # Images are checked (with the model's settings) before the model is loaded, so a bad file
    # is refused in about a second instead of after the imports and weights (10+ s).
    allow_unsigned = True if args.allow_unsigned else None
    config = bundle_config(args.bundle, allow_unsigned=allow_unsigned)
    from pipeline.inputs.dicom_inputs import resolve_inputs

    if args.dicom_out:
        from pipeline.serving.dicom_out import check_output_folder

        check_output_folder(args.dicom_out, inputs=[args.ct] + ([args.roi] if args.roi else []))
    t = time.perf_counter()
    with resolve_inputs(args.ct, args.roi, roi_name=args.roi_name, series_uid=args.series) as inputs:
        case = load_case(inputs.ct_path, inputs.roi_path, config=config, label=args.label)
        for note in inputs.notes:  # after the checks: a refused input prints its one error line only
            print(f"note: {note}", file=sys.stderr)
        timings = {"read_validate_crop": time.perf_counter() - t}
        from pipeline.serving.score import Scorer

        scorer = Scorer(args.bundle, num_threads=args.threads, allow_unsigned=allow_unsigned)
        result = scorer.score_prepared(case, clinical, timings=timings)
        if args.dicom_out:
            from pipeline.serving.dicom_out import write_dicom_results

            for path in write_dicom_results(result, case=case, series=inputs.series, clinical=clinical,
                                            out_dir=args.dicom_out, roi_name=inputs.roi_name):
                print(f"note: wrote {path}", file=sys.stderr)
    from pipeline.serving.audit import log_prediction

    log_prediction(result, source="cli")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    print(f"VPI probability: {result.probability:.3f}  ({result.risk_band} risk band; "
          f"model operating threshold {result.threshold:.2f})")
    if result.tree_p05 is not None:
        print(f"Tree spread (5th–95th percentile of the forest's trees, not a calibrated interval): "
              f"{result.tree_p05:.2f}–{result.tree_p95:.2f}")
    if result.explanation is not None:
        from pipeline.serving.explain import GROUP_LABELS, readable_name

        print("Top contributing features (SHAP, probability units):")
        for name, value, fval in result.explanation.top(args.top):
            print(f"  {value:+.3f}  {readable_name(name)} = {fval:.4g}")
        totals = result.explanation.group_totals()
        print("By feature group: " + ", ".join(f"{GROUP_LABELS.get(g, g)} {v:+.3f}" for g, v in totals.items()))
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"Model: {result.model_name} ({result.model_id[:12]}), {result.model_signer}")
    print(result.notice)
    return EXIT_OK


def _bundle_identity(path: str | None, *, allow_unsigned: bool | None) -> tuple[str, str, str, str]:
    """(bundle path, bundle id, notice, signer label) of a verified bundle (model not loaded)."""
    from pipeline.serving.bundle import check_bundle, default_bundle_path

    bundle_path = Path(path) if path else default_bundle_path()
    manifest, bundle_id, signature = check_bundle(bundle_path, allow_unsigned=allow_unsigned)
    return str(bundle_path), bundle_id, str(manifest.get("notice", "")), signature.label


def cmd_batch(args: argparse.Namespace) -> int:
    from pipeline.serving.audit import append_audit, entry_from_batch_row
    from pipeline.serving.batch import run_batch
    from pipeline.inputs.cohort import discover_cases

    from pipeline.serving.outputs import check_output

    check_output(args.out, inputs=[args.source, args.clinical], folders=[args.bundle])
    allow_unsigned = True if args.allow_unsigned else None
    bundle_path, bundle_id, notice, signer = _bundle_identity(args.bundle, allow_unsigned=allow_unsigned)
    if args.dicom_out:
        from pipeline.serving.dicom_out import check_output_folder

        check_output_folder(args.dicom_out, inputs=[args.source if Path(args.source).is_dir()
                                                    else str(Path(args.source).parent)])
    cases = discover_cases(args.source, clinical_csv=args.clinical, roi_name=args.roi_name)
    bar = None if args.quiet else _progress_bar("scoring")

    def progress(done: int, total: int, row: dict | None) -> None:
        if row is not None and row.get("status") == "ok":
            append_audit(entry_from_batch_row(row, model_name=Path(bundle_path).name, source="cli-batch"))
        if bar is not None:
            bar(done, total, row)

    workers = max(1, args.workers)
    # local pool: cores / workers; on a Dask cluster each worker sizes itself (cores / workers on its machine)
    threads = args.threads or (None if args.scheduler else max(1, (os.cpu_count() or 1) // workers))
    summary = run_batch(cases, out_path=args.out, bundle_path=bundle_path, model_id=bundle_id, notice=notice,
                        workers=workers, label=args.label, num_threads=threads, dicom_out=args.dicom_out,
                        progress=progress, scheduler=args.scheduler, signer=signer, allow_unsigned=allow_unsigned)
    print(f"{summary.n_ok} of {summary.n_cases} cases scored, {summary.n_error} failed"
          f"{f', {summary.n_skipped} already done (resumed)' if summary.n_skipped else ''}; "
          f"results in {summary.out_path} ({summary.seconds:.1f} s)")
    print(f"Model: {Path(bundle_path).name} ({bundle_id[:12]}), {signer}")
    if notice:
        print(notice)
    return EXIT_CASES_FAILED if summary.n_error else EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.core.config import PipelineConfig, RadiomicsConfig
    from pipeline.serving.outputs import check_output
    from pipeline.training.dataset import extract_cohort_features

    check_output(args.out, inputs=[args.cohort])  # e.g. --out cohort.csv would overwrite the cohort
    config = PipelineConfig()
    if args.no_clamp:
        config = PipelineConfig(radiomics=RadiomicsConfig(clamp_hu=None))
    workers = max(1, args.workers)
    table = extract_cohort_features(args.cohort, args.out, config=config, backbone_spec=args.backbone,
                                    workers=workers, num_threads=args.threads or max(1, (os.cpu_count() or 1) // workers),
                                    progress=None if args.quiet else _progress_bar("features"))
    bad = table[table["status"] != "ok"]
    print(f"{len(table) - len(bad)} of {len(table)} cases extracted ({table.shape[1] - 5} features) → {args.out}")
    for _, row in bad.iterrows():
        print(printable(f"  failed: {row['case_id']}: {row['error']}"))
    return EXIT_CASES_FAILED if len(bad) else EXIT_OK


def _backbone_for_table(meta: dict, feature_names: list[str]):  # noqa: ANN202
    if not any(n.startswith("dl_") for n in feature_names):
        return None, ""
    from models.backbones import backbone_fingerprint, resolve_backbone

    from pipeline.core.errors import BundleError

    model, source = resolve_backbone(meta.get("backbone_spec"))
    if meta.get("backbone_fingerprint") and backbone_fingerprint(model) != meta["backbone_fingerprint"]:
        raise BundleError("the backbone available now differs from the one the feature table was extracted with")
    return model, source


def cmd_fit(args: argparse.Namespace) -> int:
    """Minimal model: a plain random forest on every feature (PSO tuning: ``pleura train``)."""
    from sklearn.ensemble import RandomForestClassifier

    from pipeline.serving.bundle import write_bundle
    from pipeline.core.config import PipelineConfig
    from pipeline.training.dataset import read_table, training_arrays

    table, meta = read_table(args.features)
    X, y = training_arrays(table)
    forest = RandomForestClassifier(n_estimators=args.trees, min_samples_leaf=2, class_weight="balanced",
                                    random_state=args.seed, n_jobs=1).fit(X.to_numpy(), y)
    backbone, source = _backbone_for_table(meta, list(X.columns))
    out = write_bundle(args.out, estimator=forest, feature_names=list(X.columns),
                       config=PipelineConfig.from_dict(meta["config"]), backbone=backbone, backbone_source=source,
                       synthetic=args.synthetic,
                       training={"method": "plain random forest (pleura fit)", "n_cases": int(len(y)),
                                 "n_positive": int(y.sum()), "n_trees": args.trees, "seed": args.seed,
                                 "threshold": 0.5})
    print(f"wrote bundle {out} ({len(y)} cases, {X.shape[1]} features); it is unsigned: sign it with "
          "`pleura sign BUNDLE --key PRIVATE.pem` (or load it with --allow-unsigned)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.serving.bundle import load_bundle

    bundle = load_bundle(args.bundle, allow_unsigned=True if args.allow_unsigned else None)
    print(f"ok: {bundle.name} ({bundle.bundle_id}) — {len(bundle.manifest['files'])} files verified, "
          f"{len(bundle.feature_names)} features")
    sig = bundle.signature
    if sig.trusted:
        print(f"signature: valid, signed by {sig.signer} on {sig.signed_at}; key {sig.key_id} is trusted "
              f"({sig.trusted_as})")
    else:
        print(f"signature: NOT TRUSTED: {sig.label}")
    print(bundle.notice)
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from pipeline.serving.bundle import sign_bundle

    sig = sign_bundle(args.bundle, key_path=args.key, signer=args.signer)
    print(f"signed {Path(args.bundle).name} as {sig.signer!r} with key {sig.key_id}")
    if sig.trusted:
        print(f"this installation trusts that key ({sig.trusted_as})")
    else:
        print("this installation does not trust that key: add its public key to $PLEURA_TRUSTED_KEYS "
              "where the bundle is used")
    return EXIT_OK


def cmd_app(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[2]
    os.chdir(root)  # Streamlit reads .streamlit/config.toml from the working directory
    # Two glibc arenas: a long session stays at ~1.0 GB RSS, not 1.4-1.6 GB (Streamlit runs each rerun on a new thread).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.port", str(args.port),
           "--server.address", args.address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.enableXsrfProtection", "true",
           "--server.maxUploadSize", os.environ.get("PLEURA_MAX_UPLOAD_MB", "1024")]
    os.execv(sys.executable, cmd)
    return EXIT_OK  # pragma: no cover


def _label_number(text: str) -> int:
    """``--label``: a label number of a mask image; a name points to ``--roi-name``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a label number of a mask image; for an RTSTRUCT ROI or SEG segment "
                                         f"name use --roi-name {printable(text)[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ------------------------------------------------------------------------------------------------
def _at_least(minimum: int):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {printable(text)[:40]!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"whole number ≥ {minimum}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pleura",
        description="PleuraRisk: visceral pleural invasion risk from chest CT + tumour ROI + CEA/CA125/age. "
                    "Research use only; not a medical device.",
    )
    p.add_argument("--version", action="version", version=f"pleurarisk {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("score", help="score one case (CT + ROI + labs)")
    s.add_argument("ct", help="CT: .nii/.nii.gz/.nrrd/.mha file, DICOM folder or .zip of one (HU)")
    s.add_argument("roi", nargs="?", default=None,
                   help="tumour ROI: mask image on the same CT, DICOM RTSTRUCT or SEG file (or a folder/zip "
                        "holding one); optional when the CT's DICOM folder holds the RTSTRUCT/SEG")
    s.add_argument("--roi-name", default=None,
                   help="RTSTRUCT ROI name or SEG segment label to score (e.g. GTV-1)")
    s.add_argument("--series", default=None, metavar="UID",
                   help="Series Instance UID of the CT series when the DICOM folder holds several")
    s.add_argument("--dicom-out", default=None, metavar="DIR",
                   help="also write a DICOM SEG of the scored ROI, a Comprehensive 3D SR and the PDF report "
                        "(Encapsulated PDF) into DIR (needs a DICOM CT)")
    s.add_argument("--cea", required=True, help="CEA in ng/mL")
    s.add_argument("--ca125", required=True, help="CA125 in U/mL")
    s.add_argument("--age", required=True, help="age in years")
    s.add_argument("--label", type=_label_number, default=None, help="ROI label to use when the mask has several")
    s.add_argument("--bundle", default=None, help="model bundle folder (default weights/demo or $PLEURA_BUNDLE)")
    s.add_argument("--threads", type=_at_least(1), default=None, help="torch threads")
    s.add_argument("--top", type=_at_least(0), default=8, help="number of top features to print")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    s.set_defaults(func=cmd_score)

    b = sub.add_parser("batch", help="score a folder (or manifest CSV) of cases; resumable")
    b.add_argument("source", help="folder of <case>_ct/<case>_roi images, one folder per case, or a manifest CSV")
    b.add_argument("--clinical", default=None, help="CSV with case_id, CEA, CA125, age")
    b.add_argument("--out", required=True, help="results CSV (re-running resumes)")
    b.add_argument("--workers", type=_at_least(1), default=int(os.environ.get("PLEURA_WORKERS", "1")), help="worker processes")
    b.add_argument("--threads", type=_at_least(1), default=None, help="torch threads per worker (default cores / workers)")
    b.add_argument("--bundle", default=None)
    b.add_argument("--label", type=_label_number, default=None)
    b.add_argument("--roi-name", default=None,
                   help="RTSTRUCT ROI / SEG segment to score in every case (a manifest's roi_name column overrides it)")
    b.add_argument("--dicom-out", default=None, metavar="DIR",
                   help="write each case's DICOM SEG, SR and Encapsulated PDF into DIR/<case_id>/ (DICOM CTs only)")
    b.add_argument("--scheduler", default=os.environ.get("PLEURA_DASK_SCHEDULER"),
                   help="Dask scheduler address (tcp://HOST:8786): run cases on that cluster instead of local workers")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    b.set_defaults(func=cmd_batch)

    y = sub.add_parser("synth", help="write a synthetic phantom cohort (NIfTI + clinical.csv)")
    y.add_argument("out")
    y.add_argument("--n", type=int, default=20)
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--size", default="small", choices=["small", "medium", "clinical"])
    y.add_argument("--scanner", default=None, help="scanner profile name (e.g. a shifted test profile)")
    y.set_defaults(func=cmd_synth)

    f = sub.add_parser("features", help="extract all features of a labelled cohort into a parquet table")
    f.add_argument("cohort", help="cohort CSV: case_id, ct_path, roi_path, CEA, CA125, age, label")
    f.add_argument("--out", required=True)
    f.add_argument("--backbone", default="seed:0", help="seed:N, an official MedicalNet .pth, or a .safetensors")
    f.add_argument("--workers", type=_at_least(1), default=int(os.environ.get("PLEURA_WORKERS", "1")))
    f.add_argument("--threads", type=_at_least(1), default=None)
    f.add_argument("--no-clamp", action="store_true", help="do not clamp HU to [-160, 240] before radiomics")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=cmd_features)

    t = sub.add_parser("fit", help="minimal model: plain random forest on a feature table → bundle")
    t.add_argument("features")
    t.add_argument("--out", required=True)
    t.add_argument("--trees", type=int, default=300)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--synthetic", action="store_true", help="the table comes from synthetic phantoms")
    t.set_defaults(func=cmd_fit)

    v = sub.add_parser("verify", help="check a model bundle's files against its manifest")
    v.add_argument("bundle", nargs="?", default=None)
    v.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    v.set_defaults(func=cmd_verify)

    g = sub.add_parser("sign", help="sign a model bundle with an Ed25519 private key (writes signature.json)")
    g.add_argument("bundle", help="model bundle folder")
    g.add_argument("--key", required=True, help="Ed25519 private key, unencrypted PEM (PKCS#8)")
    g.add_argument("--signer", default=None, help="name shown as the bundle's signer (default: the key's name)")
    g.set_defaults(func=cmd_sign)

    a = sub.add_parser("app", help="start the Streamlit app")
    a.add_argument("--port", type=int, default=int(os.environ.get("PLEURA_PORT", "8501")))
    a.add_argument("--address", default=os.environ.get("PLEURA_ADDRESS", "localhost"))
    a.set_defaults(func=cmd_app)

    _extend_parser(sub)
    return p


def _extend_parser(sub) -> None:  # noqa: ANN001
    """Training and validation commands (pipeline.cli.train), added when available."""
    try:
        from pipeline.cli.train import add_commands
    except ImportError:
        return
    add_commands(sub)


def main(argv: list[str] | None = None) -> int:
    from pipeline.core.errors import PleuraRiskError

    parser = build_parser()
    args = parser.parse_args(argv)
    terminated = []

    def on_sigterm(signum: int, _frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt  # unwinds like Ctrl-C: workers stopped, results so far kept

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return int(args.func(args))
    except PleuraRiskError as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        resume = " (finished cases are kept: run the same command again to resume)" if args.command == "batch" else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    except Exception as exc:  # noqa: BLE001
        if args.debug:
            raise
        # an OSError's text names its file, which may carry a patient's name: keep only the reason
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else printable(str(exc))
        print(f"internal error ({type(exc).__name__}): {detail} — rerun with --debug for details", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
