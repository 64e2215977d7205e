"""The real LUNG1-001 planning study (../shared, never copied into the repository) on the real
Orthanc: retrieved from the PACS with its RTSTRUCT/RTPLAN/RTDOSE series left there, scored, and
the SEG/SR/PDF stored back into it. The ROI is a SEG stored beside the RTSTRUCT: the part of GTV-1
within 15 mm of its centre (the whole GTV-1, 156 mL, is beyond the per-worker memory the ROI checks
allow), so the study holds two ROI series and the one to use is named with --roi-series."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[2]
LUNG1 = REPO.parent / "shared" / "fixtures" / "real_ct" / "nsclc_lung1_001" / "dicom"
DEMO = REPO / "weights" / "demo"


@pytest.fixture(scope="module")
def lung1(orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not LUNG1.is_dir():
        pytest.skip("../shared/fixtures/real_ct/nsclc_lung1_001 is not present")
    import pydicom

    from pipeline.io.dicom_folder import choose_series, scan_dicom_folder, series_geometry
    from pipeline.io.dicom_roi import roi_mask
    from pipeline.serving.dicom_out import write_seg

    inventory = scan_dicom_folder(LUNG1)
    series, _ = choose_series(inventory)
    grid = series_geometry(series)
    gtv = roi_mask(inventory.roi_files[0], series=series, grid=grid, roi_name="GTV-1").array.astype(bool)
    sx, sy, sz = grid.spacing_xyz
    zz, yy, xx = np.nonzero(gtv)
    cz, cy, cx = zz.mean(), yy.mean(), xx.mean()
    z, y, x = np.ogrid[:gtv.shape[0], :gtv.shape[1], :gtv.shape[2]]
    core = gtv & (((z - cz) * sz) ** 2 + ((y - cy) * sy) ** 2 + ((x - cx) * sx) ** 2 <= 15.0 ** 2)
    seg_path = tmp_path_factory.mktemp("lung1-seg") / "core.dcm"
    seg = write_seg(series=series, mask_zyx=core.astype(np.uint8), roi_label="GTV-1 core", out_path=seg_path)
    seg.SeriesNumber, seg.SeriesDescription = 40, "GTV-1 core (test)"
    seg.save_as(seg_path)
    orthanc.upload([*sorted(LUNG1.iterdir()), seg_path])
    study = str(pydicom.dcmread(series.files[0], stop_before_pixels=True).StudyInstanceUID)
    return {"study": study, "seg_series": str(seg.SeriesInstanceUID),
            "core_ml": float(core.sum() * sx * sy * sz / 1000)}


@pytest.mark.slow
def test_lung1_round_trip_through_the_pacs(pacs_env, lung1: dict, capsys):
    study = lung1["study"]
    before = pacs_env.instance_count(study)
    assert before == 138  # 137 files of the export + the test SEG
    t = time.perf_counter()
    assert main(["pacs", "score", "--study", study, "--roi-series", lung1["seg_series"], "--cea", "4", "--ca125", "18",
                 "--age", "66", "--bundle", str(DEMO), "--store", "--json"]) == 0
    seconds = time.perf_counter() - t
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert 0.0 <= result["probability"] <= 1.0
    assert [s["object"] for s in result["pacs"]["stored"]] == ["SEG", "SR", "PDF"]
    assert pacs_env.instance_count(study) == before + 3
    # the CT and the chosen SEG only: not the plan, the dose or the RTSTRUCT's 17 ROIs
    assert "CT (no description) (134 images)" in captured.err and "1 RTSTRUCT/SEG series" in captured.err
    print(f"\nLUNG1-001 round trip: {seconds:.1f} s in all; steps {result['pacs']['seconds']}; "
          f"{result['pacs']['retrieved_mb']} MB retrieved; ROI {lung1['core_ml']:.1f} mL; "
          f"p = {result['probability']:.3f}")
