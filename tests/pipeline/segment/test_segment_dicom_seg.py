"""A semi-automatic ROI written as DICOM SEG says so: Segment Algorithm Type SEMIAUTOMATIC, the
algorithm's name, and the click; a given mask stays MANUAL."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from dicom_factory import phantom, write_ct_series  # noqa: E402

from pipeline.io.dicom_folder import choose_series, scan_dicom_folder  # noqa: E402
from pipeline.segment import segment_from_seed  # noqa: E402
from pipeline.serving.dicom_out import write_seg  # noqa: E402


def test_seg_of_a_clicked_roi_is_semiautomatic_with_the_click(tmp_path: Path):
    ph = phantom()
    write_ct_series(ph.ct, tmp_path / "ct")
    series, _ = choose_series(scan_dicom_folder(tmp_path / "ct"))
    seg = segment_from_seed(ph.ct, seed_xyz_mm=ph.truth.tumour_centre_xyz_mm)
    write_seg(series=series, mask_zyx=seg.mask.array, roi_label="tumour", out_path=tmp_path / "semi.dcm",
              roi_source=seg.provenance())
    item = pydicom.dcmread(tmp_path / "semi.dcm").SegmentSequence[0]
    assert item.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert item.SegmentAlgorithmName == seg.method[:64]
    params = item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert "seed_xyz_mm_lps" in params
    write_seg(series=series, mask_zyx=ph.roi.array, roi_label="tumour", out_path=tmp_path / "manual.dcm")
    assert pydicom.dcmread(tmp_path / "manual.dcm").SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
