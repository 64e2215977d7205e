"""Compare RTSTRUCT rasterisers on a real planning export (volume, Dice against PleuraRisk's, time).

Rasterisers compared, each on the same CT grid:

* ``pleurarisk``: :func:`pipeline.io.dicom_roi.rtstruct_mask` (pydicom + scikit-image
  ``draw.polygon``: voxel centre inside the polygon, sub-voxel vertices, XOR per slice);
* ``rt-utils``: ``RTStructBuilder.create_from(...).get_roi_mask_by_name`` (OpenCV ``fillPoly``
  on vertices rounded to whole pixels); it matches contours to slices by the per-contour
  SOP Instance UID, so on a file whose per-contour references were not rewritten by the
  anonymiser it is also run on a copy with those references re-pointed (by z) to the CT slices;
* ``dcmrtstruct2nii``: its ``DcmPatientCoords2Mask`` converter (scikit-image ``polygon2mask``,
  XOR per slice; its own file reader calls ``pydicom.read_file``, gone in pydicom 3, so the
  contours are handed over in its intermediate format);
* ``matplotlib``: ``matplotlib.path.Path.contains_points`` on voxel centres (the approach of
  dicompyler-core), XOR per slice.

Usage (needs rt-utils and, optionally, dcmrtstruct2nii importable):

    python bench/rtstruct_rasterisers.py DICOM_FOLDER --roi GTV-1 --roi "Lung L" --roi "Lung R"
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# ``python bench/rtstruct_rasterisers.py`` puts bench/ first on sys.path, where bench/pipeline.py
# would shadow the package: use the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def rt_utils_mask(series, rtstruct: Path, name: str) -> np.ndarray | None:  # noqa: ANN001
    """rt-utils on a folder holding only the CT slices (it would take the RTDOSE for a slice);
    (z, y, x) uint8, or None when rt-utils finds no contour on any slice."""
    from rt_utils import RTStructBuilder

    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(series.files):
            (Path(tmp) / f"{i}.dcm").symlink_to(Path(f).resolve())
        rt = RTStructBuilder.create_from(dicom_series_path=tmp, rt_struct_path=str(rtstruct), warn_only=True)
        m = rt.get_roi_mask_by_name(name)  # (rows?, cols?, slices): rt-utils builds (Columns, Rows, n)
    m = np.transpose(m, (2, 0, 1)).astype(np.uint8)
    return m if m.any() else None


def repointed_rtstruct(rtstruct: Path, series, grid, out: Path) -> Path:  # noqa: ANN001
    """A copy of the RTSTRUCT whose per-contour image references point (by z position) at the
    CT slices (for rt-utils, which matches by these references)."""
    import pydicom

    ds = pydicom.dcmread(rtstruct)
    for rc in ds.ROIContourSequence:
        for c in rc.get("ContourSequence", []):
            if "ContourImageSequence" not in c or len(c.ContourData) < 3:
                continue
            z = int(round(grid.physical_to_index(np.asarray(c.ContourData[:3], float))[0]))
            if 0 <= z < series.n_slices:
                c.ContourImageSequence[0].ReferencedSOPInstanceUID = series.sop_instance_uids[z]
    ds.save_as(out)
    return out


def contours_of(rtstruct: Path, name: str) -> list[dict]:
    import pydicom

    ds = pydicom.dcmread(rtstruct)
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == name)
    rc = next(rc for rc in ds.ROIContourSequence if int(rc.ReferencedROINumber) == number)
    out = []
    for c in rc.ContourSequence:
        p = np.asarray(c.ContourData, float).reshape(-1, 3)
        out.append({"type": str(c.ContourGeometricType), "points": {"x": p[:, 0], "y": p[:, 1], "z": p[:, 2]}})
    return out


def dcmrtstruct2nii_mask(rtstruct: Path, name: str, grid) -> np.ndarray:  # noqa: ANN001
    import SimpleITK as sitk
    from dcmrtstruct2nii.adapters.convert.rtstructcontour2mask import DcmPatientCoords2Mask

    ref = grid.with_array(np.zeros(grid.shape_zyx, np.uint8)).to_sitk()
    mask = DcmPatientCoords2Mask().convert(contours_of(rtstruct, name), ref, 0, 1)
    return sitk.GetArrayFromImage(mask).astype(np.uint8)


def matplotlib_mask(rtstruct: Path, name: str, grid) -> np.ndarray:  # noqa: ANN001
    from matplotlib.path import Path as MplPath

    nz, ny, nx = grid.shape_zyx
    out = np.zeros(grid.shape_zyx, bool)
    for c in contours_of(rtstruct, name):
        pts = np.column_stack([c["points"]["x"], c["points"]["y"], c["points"]["z"]])
        zyx = grid.physical_to_index(pts)
        k = int(round(float(np.median(zyx[:, 0]))))
        (y0, x0), (y1, x1) = np.floor(zyx[:, 1:].min(0)).astype(int), np.ceil(zyx[:, 1:].max(0)).astype(int)
        y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, ny - 1), min(x1, nx - 1)
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        inside = MplPath(zyx[:, 1:]).contains_points(np.column_stack([yy.ravel(), xx.ravel()]))
        out[k, y0:y1 + 1, x0:x1 + 1] ^= inside.reshape(yy.shape)
    return out.astype(np.uint8)


def main() -> None:
    from pipeline.io.dicom_folder import choose_series, scan_dicom_folder, series_geometry
    from pipeline.io.dicom_roi import rtstruct_mask

    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--roi", action="append", default=None)
    args = ap.parse_args()
    inv = scan_dicom_folder(args.folder)
    series, _note = choose_series(inv)
    grid = series_geometry(series)
    rs = inv.structure_sets[0]
    voxel_ml = float(np.prod(grid.spacing_xyz)) / 1000
    tmp = Path(tempfile.mkdtemp())
    repointed = repointed_rtstruct(rs, series, grid, tmp / "rs.dcm")
    print(f"{'ROI':8} {'rasteriser':28} {'volume mL':>10} {'Dice vs ours':>12} {'time s':>7}")
    for name in args.roi or ["GTV-1"]:
        t = time.perf_counter()
        ours = rtstruct_mask(rs, series=series, grid=grid, roi_name=name).array
        rows = [("pleurarisk (skimage polygon)", ours, time.perf_counter() - t)]
        for label, fn in [("rt-utils (OpenCV), file as is", lambda: rt_utils_mask(series, rs, name)),
                          ("rt-utils, refs re-pointed", lambda: rt_utils_mask(series, repointed, name)),
                          ("dcmrtstruct2nii (converter)", lambda: dcmrtstruct2nii_mask(rs, name, grid)),
                          ("matplotlib Path", lambda: matplotlib_mask(rs, name, grid))]:
            t = time.perf_counter()
            try:
                m = fn()
            except ImportError as exc:
                print(f"{name:8} {label:28} not installed ({exc.name})")
                continue
            rows.append((label, m, time.perf_counter() - t))
        for label, m, sec in rows:
            if m is None:
                print(f"{name:8} {label:28} {'empty':>10} {'-':>12} {sec:7.2f}")
            else:
                print(f"{name:8} {label:28} {m.sum() * voxel_ml:10.2f} {dice(ours, m):12.4f} {sec:7.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
