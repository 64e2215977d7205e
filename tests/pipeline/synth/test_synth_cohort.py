"""Cohorts on disk: readable NIfTI files with matching geometry and a clinical.csv with the
promised columns; a scanner-shifted cohort holds the same patients."""

from __future__ import annotations

import csv

import pytest
import SimpleITK as sitk

from pipeline.synth import SCANNER_PROFILES, write_cohort


def test_write_cohort_files_are_readable_with_matching_geometry_and_columns(tmp_path):
    csv_path = write_cohort(tmp_path / "cohort", n=3, seed=5, size="small")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header[:8] == ["case_id", "ct_path", "roi_path", "CEA", "CA125", "age", "label", "p_true"]
    for column in ("sim_spacing_x_mm", "sim_spacing_z_mm", "sim_slice_thickness_mm", "sim_noise_sd_hu",
                   "sim_diameter_mm", "sim_distance_to_pleura_mm", "sim_solid_fraction", "sim_pleural_tag"):
        assert column in header
    assert [r["case_id"] for r in rows] == ["case_0000", "case_0001", "case_0002"]
    for row in rows:
        ct = sitk.ReadImage(str(csv_path.parent / row["ct_path"]))
        roi = sitk.ReadImage(str(csv_path.parent / row["roi_path"]))
        assert ct.GetPixelID() == sitk.sitkInt16 and roi.GetPixelID() == sitk.sitkUInt8
        assert ct.GetSize() == roi.GetSize() and ct.GetSpacing() == roi.GetSpacing()
        assert ct.GetOrigin() == roi.GetOrigin()
        assert ct.GetSpacing()[0] == pytest.approx(float(row["sim_spacing_x_mm"]))
        assert sitk.GetArrayViewFromImage(roi).max() == 1
        assert row["label"] in ("0", "1") and 0 < float(row["p_true"]) < 1
    with pytest.raises(FileExistsError):
        write_cohort(tmp_path / "cohort", n=1, seed=5)
    # a scanner-shifted cohort with the same seed holds the same patients
    shifted = write_cohort(tmp_path / "shifted", n=1, seed=5, scanner=SCANNER_PROFILES["thick_noisy"])
    with open(shifted, newline="") as fh:
        first = next(csv.DictReader(fh))
    same = ("CEA", "label", "sim_diameter_mm", "sim_distance_to_pleura_mm")
    assert [first[k] for k in same] == [rows[0][k] for k in same]
    assert first["sim_scanner"] == "thick_noisy" and float(first["sim_slice_thickness_mm"]) >= 3.0
