"""``pleura pacs find | score | batch``: the PACS over DICOMweb (:mod:`pipeline.pacs`) from the command line.

The connection comes from the administrator's settings (``PLEURA_DICOMWEB_URL``, credentials, CA
bundle, timeout; see :mod:`pipeline.core.env`); nothing about it is given on the command line, so a
password never shows in a process list or a shell history.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli._common import EXIT_CASES_FAILED, EXIT_OK, at_least, progress_bar
from pipeline.core.env import Settings
from pipeline.core.textsafe import printable


def cmd_find(args: argparse.Namespace) -> int:
    from pipeline.pacs.client import PacsClient
    from pipeline.pacs.config import require_pacs_config
    from pipeline.pacs.retrieve import find_studies, is_own_result, list_series

    client = PacsClient(require_pacs_config())
    studies = find_studies(client, patient_id=args.patient_id, accession=args.accession, study_date=args.study_date)
    if args.json:
        print(json.dumps([s.__dict__ for s in studies], indent=2))
        return EXIT_OK
    if not studies:
        print("no study found")
    for s in studies:
        print(printable(f"study {s.study_uid}  date {s.study_date or '?'}  accession {s.accession or '-'}  "
                        f"patient {s.patient_id or '-'}  {s.description}  ({', '.join(s.modalities)})"))
        if args.series:
            for se in list_series(client, s.study_uid):
                own = "  [PleuraRisk result]" if is_own_result(se) else ""
                print(printable(f"  series {se.series_uid}  {se.label()}{own}"))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from pipeline.pacs.run import score_study

    def note(text: str) -> None:
        print(f"note: {printable(text)}", file=sys.stderr)

    done = score_study(study_uid=args.study, series_uid=args.series, roi_series_uid=args.roi_series,
                       roi_name=args.roi_name, cea=args.cea, ca125=args.ca125, age=args.age, store=args.store,
                       bundle=args.bundle, num_threads=args.threads,
                       allow_unsigned=True if args.allow_unsigned else None, on_note=note, audit_source="cli-pacs")
    if args.json:
        print(json.dumps(done.to_dict(), indent=2))
        return EXIT_OK
    r = done.result
    print(f"VPI probability: {r.probability:.3f}  ({r.risk_band} risk band; "
          f"model operating threshold {r.threshold:.2f})")
    print(f"Applicability domain: {r.domain.status}"
          + (f" — {r.domain.notice}" if r.domain.notice else " (inside the model's training data)"))
    for warning in r.warnings:
        print(f"warning: {warning}")
    if done.stored is not None:
        print(f"PACS: {done.stored.summary()}")
    print("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in done.seconds.items()))
    print(f"Model: {r.model_name} ({r.model_id[:12]}), {r.model_signer}")
    print(r.notice)
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from pipeline.pacs.batch import run_pacs_batch

    summary, notice = run_pacs_batch(csv_path=args.csv, out=args.out, bundle=args.bundle, store=args.store,
                                     num_threads=args.threads, allow_unsigned=True if args.allow_unsigned else None,
                                     progress=None if args.quiet else progress_bar("studies"))
    print(f"{summary.n_ok} of {summary.n_cases} studies scored, {summary.n_error} failed"
          f"{f', {summary.n_skipped} already done (resumed)' if summary.n_skipped else ''}; "
          f"results in {summary.out_path} ({summary.seconds:.1f} s)")
    if notice:
        print(notice)
    return EXIT_CASES_FAILED if summary.n_error else EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", action="store_true",
                   help="store the DICOM SEG, SR and PDF report into the study on the PACS (never duplicated)")
    p.add_argument("--bundle", default=None, help="model bundle folder (default weights/demo or $PLEURA_BUNDLE)")
    p.add_argument("--threads", type=at_least(1), default=None, help="torch threads")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="load an unsigned model bundle (results are labelled 'unsigned model')")


def add_pacs(sub: argparse._SubParsersAction, settings: Settings) -> None:
    pacs = sub.add_parser("pacs", help="find, score and store studies on the PACS (DICOMweb; PLEURA_DICOMWEB_URL)")
    cmds = pacs.add_subparsers(dest="pacs_command", metavar="PACS_COMMAND", required=True)

    f = cmds.add_parser("find", help="search studies by the fields the administrator enabled")
    f.add_argument("--patient-id", default=None)
    f.add_argument("--accession", default=None, help="accession number")
    f.add_argument("--study-date", default=None, help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    f.add_argument("--series", action="store_true", help="also list each study's series")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=cmd_find)

    s = cmds.add_parser("score", help="retrieve one study, score it, and with --store put the results back")
    s.add_argument("--study", required=True, metavar="UID", help="Study Instance UID")
    s.add_argument("--series", default=None, metavar="UID", help="the CT series when the study holds several")
    s.add_argument("--roi-series", default=None, metavar="UID",
                   help="the RTSTRUCT/SEG series when the study holds several")
    s.add_argument("--roi-name", default=None, help="RTSTRUCT ROI name or SEG segment label to score (e.g. GTV-1)")
    s.add_argument("--cea", required=True, help="CEA in ng/mL")
    s.add_argument("--ca125", required=True, help="CA125 in U/mL")
    s.add_argument("--age", required=True, help="age in years")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    _common(s)
    s.set_defaults(func=cmd_score)

    b = cmds.add_parser("batch", help="score a CSV of studies (study_uid, cea, ca125, age [, case_id, series_uid, "
                                      "roi_series_uid, roi_name]); resumable")
    b.add_argument("csv", help="CSV of studies")
    b.add_argument("--out", required=True, help="results CSV (re-running resumes)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(b)
    b.set_defaults(func=cmd_batch)
