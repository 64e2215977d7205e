"""``pleura segment``: a tumour ROI from one click (semi-automatic), and the click options that
``pleura score`` shares (``--seed-mm`` / ``--seed-voxel`` / ``--sensitivity`` / ``--adjust-mm``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipeline.cli._common import EXIT_OK
from pipeline.core.env import Settings


def _point_mm(text: str) -> tuple[float, float, float]:
    from pipeline.serving.semiauto import parse_point

    try:
        return parse_point(text, what="the click")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _point_voxel(text: str) -> tuple[int, int, int]:
    from pipeline.serving.semiauto import parse_point

    try:
        return tuple(int(v) for v in parse_point(text, what="the click", integer=True))  # type: ignore[return-value]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text[:40]!r}") from None


def add_click_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The click and its adjustments (shared by ``segment`` and ``score``)."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--seed-mm", type=_point_mm, default=None, metavar="X,Y,Z",
                   help="a click inside the tumour: physical LPS coordinates in mm exactly as SimpleITK's "
                        "TransformIndexToPhysicalPoint reports them (write --seed-mm=-80.5,12,-140 when X is "
                        "negative); the ROI is segmented semi-automatically")
    g.add_argument("--seed-voxel", type=_point_voxel, default=None, metavar="I,J,K",
                   help="the click as a voxel index in ITK order (x, y, z), counted from 0")
    p.add_argument("--sensitivity", type=_number, default=0.5,
                   help="semi-automatic segmentation: 0..1, higher grows more (default 0.5)")
    p.add_argument("--adjust-mm", type=_number, default=0.0,
                   help="semi-automatic segmentation: grow (+) or shrink (−) the ROI by this many mm")
    p.add_argument("--max-diameter-mm", type=_number, default=120.0,
                   help="semi-automatic segmentation: growth cap in mm (default 120); a capped ROI is flagged")


def click_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``seed_mm``, ``seed_voxel``, ``segment_params`` for :func:`pipeline.serving.run.score_files`."""
    if args.seed_mm is None and args.seed_voxel is None:
        return {}
    from pipeline.segment import SegmentParams

    params = SegmentParams(sensitivity=args.sensitivity, adjust_mm=args.adjust_mm,
                           max_diameter_mm=args.max_diameter_mm)
    return {"seed_mm": args.seed_mm, "seed_voxel": args.seed_voxel, "segment_params": params}


def cmd_segment(args: argparse.Namespace) -> int:
    from pipeline.io.readers import write_image
    from pipeline.serving.semiauto import check_roi_output, segment_ct

    kw = click_kwargs(args)
    out = check_roi_output(args.out, ct=args.ct)
    _ct, seg = segment_ct(args.ct, seed_mm=kw["seed_mm"], seed_voxel=kw["seed_voxel"],
                          params=kw["segment_params"], series_uid=args.series)
    write_image(seg.mask, out)
    if args.json:
        print(json.dumps(seg.provenance(), indent=2))
        return EXIT_OK
    x, y, z = seg.seed_xyz_mm
    print(f"ROI: {seg.volume_ml:.2f} mL, longest diameter {seg.longest_diameter_mm:.1f} mm, from the click at "
          f"({x:.1f}, {y:.1f}, {z:.1f}) mm LPS = voxel {seg.seed_ijk[0]},{seg.seed_ijk[1]},{seg.seed_ijk[2]}")
    print(f"method: {seg.method} (semi-automatic; check the ROI before scoring)")
    for warning in seg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return EXIT_OK


def add_segment(sub: argparse._SubParsersAction, settings: Settings) -> None:
    s = sub.add_parser("segment", help="segment a tumour ROI from one click (semi-automatic)")
    s.add_argument("ct", help="CT: .nii/.nii.gz/.nrrd/.mha file or DICOM folder (HU)")
    add_click_options(s, required=True)
    s.add_argument("--out", required=True, help="ROI mask to write (.nii.gz, .nii, .nrrd, .mha), uint8 0/1 on the CT grid")
    s.add_argument("--series", default=None, metavar="UID",
                   help="Series Instance UID of the CT series when the DICOM folder holds several")
    s.add_argument("--json", action="store_true", help="print one JSON object (provenance, volume, capped)")
    s.set_defaults(func=cmd_segment)
