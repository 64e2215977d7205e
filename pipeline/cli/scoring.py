"""``pleura score``, ``pleura batch``, ``pleura verify``: arguments → :mod:`pipeline.serving` → printed result."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import sys

from pipeline.cli._common import EXIT_CASES_FAILED, EXIT_OK, at_least, label_number, progress_bar
from pipeline.cli.segment import add_click_options, click_kwargs
from pipeline.core.env import Settings

ALLOW_UNSIGNED_HELP = ("load the model bundle even if it is unsigned or signed by a key this installation does not "
                       "trust (results are labelled 'unsigned model'); also PLEURA_ALLOW_UNSIGNED=1")


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.serving.run import score_files

    def note(text: str) -> None:
        print(f"note: {text}", file=sys.stderr)

    result = score_files(ct=args.ct, roi=args.roi, cea=args.cea, ca125=args.ca125, age=args.age, bundle=args.bundle,
                         label=args.label, num_threads=args.threads, roi_name=args.roi_name, series_uid=args.series,
                         dicom_out=args.dicom_out, on_note=note, allow_unsigned=_allowance(args),
                         audit_source="cli",
                         allow_resample=args.allow_resample, **click_kwargs(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    print(f"VPI probability: {result.probability:.3f}  ({result.risk_band} risk band; "
          f"model operating threshold {result.threshold:.2f})")
    print(f"Applicability domain: {result.domain.status}"
          + (f" — {result.domain.notice}" if result.domain.notice else " (inside the model's training data)"))
    if result.findings is not None:
        print("Findings: " + "; ".join(f"{label} {value}" for label, value in result.findings.rows()))
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


def cmd_batch(args: argparse.Namespace) -> int:
    from pipeline.serving.run import score_folder

    done = score_folder(source=args.source, out=args.out, clinical_csv=args.clinical, bundle=args.bundle,
                        workers=args.workers, num_threads=args.threads, label=args.label, scheduler=args.scheduler,
                        roi_name=args.roi_name, dicom_out=args.dicom_out, allow_unsigned=_allowance(args),
                        progress=None if args.quiet else progress_bar("scoring"), audit_source="cli-batch")
    summary = done.summary
    print(f"{summary.n_ok} of {summary.n_cases} cases scored, {summary.n_error} failed"
          f"{f', {summary.n_skipped} already done (resumed)' if summary.n_skipped else ''}; "
          f"results in {summary.out_path} ({summary.seconds:.1f} s)")
    print(f"Model: {done.model_name} ({done.model_id[:12]}), {done.signer}")
    if done.audit_missing:
        print(f"warning: {done.audit_missing} scored cases have no audit line (the audit log could not be written)",
              file=sys.stderr)
    if done.notice:
        print(done.notice)
    return EXIT_CASES_FAILED if summary.n_error else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.serving.bundle import load_bundle

    bundle = load_bundle(args.bundle, allow_unsigned=_allowance(args))
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


def _allowance(args: argparse.Namespace) -> bool | None:
    """``--allow-unsigned`` given: True; else None (the ``PLEURA_ALLOW_UNSIGNED`` setting decides)."""
    return True if args.allow_unsigned else None


def add_score(sub: argparse._SubParsersAction, settings: Settings) -> None:
    s = sub.add_parser("score", help="score one case (CT + ROI + labs)")
    s.add_argument("ct", help="CT: .nii/.nii.gz/.nrrd/.mha file, DICOM folder or .zip of one (HU)")
    s.add_argument("roi", nargs="?", default=None,
                   help="tumour ROI: mask image on the same CT, DICOM RTSTRUCT or SEG file (or a folder/zip "
                        "holding one); optional when the CT's DICOM folder holds the RTSTRUCT/SEG or with a click "
                        "(--seed-mm / --seed-voxel)")
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
    s.add_argument("--label", type=label_number, default=None, help="ROI label to use when the mask has several")
    s.add_argument("--bundle", default=None, help="model bundle folder (default weights/demo or $PLEURA_BUNDLE)")
    s.add_argument("--threads", type=at_least(1), default=None, help="torch threads")
    s.add_argument("--top", type=at_least(0), default=8, help="number of top features to print")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    s.add_argument("--allow-resample", action="store_true",
                   help="resample a mask stored on another voxel grid onto the CT's (only when they overlap "
                        "near-completely); refused otherwise")
    add_click_options(s, required=False)
    s.set_defaults(func=cmd_score)


def add_batch(sub: argparse._SubParsersAction, settings: Settings) -> None:
    b = sub.add_parser("batch", help="score a folder (or manifest CSV) of cases; resumable")
    b.add_argument("source", help="folder of <case>_ct/<case>_roi images, one folder per case, or a manifest CSV")
    b.add_argument("--clinical", default=None, help="CSV with case_id, CEA, CA125, age")
    b.add_argument("--out", required=True, help="results CSV (re-running resumes)")
    b.add_argument("--workers", type=at_least(1), default=settings.workers, help="worker processes")
    b.add_argument("--threads", type=at_least(1), default=None, help="torch threads per worker (default cores / workers)")
    b.add_argument("--bundle", default=None)
    b.add_argument("--label", type=label_number, default=None)
    b.add_argument("--roi-name", default=None,
                   help="RTSTRUCT ROI / SEG segment to score in every case (a manifest's roi_name column overrides it)")
    b.add_argument("--dicom-out", default=None, metavar="DIR",
                   help="write each case's DICOM SEG, SR and Encapsulated PDF into DIR/<case_id>/ (DICOM CTs only)")
    b.add_argument("--scheduler", default=settings.dask_scheduler,
                   help="Dask scheduler address (tcp://HOST:8786): run cases on that cluster instead of local workers")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    b.set_defaults(func=cmd_batch)


def add_verify(sub: argparse._SubParsersAction, settings: Settings) -> None:
    v = sub.add_parser("verify", help="check a model bundle's files against its manifest")
    v.add_argument("bundle", nargs="?", default=None)
    v.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    v.set_defaults(func=cmd_verify)


def add_sign(sub: argparse._SubParsersAction, settings: Settings) -> None:
    g = sub.add_parser("sign", help="sign a model bundle with an Ed25519 private key (writes signature.json)")
    g.add_argument("bundle", help="model bundle folder")
    g.add_argument("--key", required=True, help="Ed25519 private key, unencrypted PEM (PKCS#8)")
    g.add_argument("--signer", default=None, help="name shown as the bundle's signer (default: the key's name)")
    g.set_defaults(func=cmd_sign)
