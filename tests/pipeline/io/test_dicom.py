"""Choosing among DICOM series (issue 15, item 11): a folder holding two patients' series is
never read silently as the larger one; the series used is named and another can be chosen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.core.errors import DicomError
from pipeline.io.dicom import dicom_series_in
from pipeline.io.readers import read_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reliability"))
from bad_input_corpus import UID, _small_hu, write_dicom_series  # noqa: E402

A, B = UID + ".30", UID + ".40"


@pytest.fixture()
def two_patients(tmp_path: Path) -> Path:
    folder = tmp_path / "ct"
    write_dicom_series(folder, _small_hu(30), uid=A, prefix="A")
    write_dicom_series(folder / "other", _small_hu(40), uid=B, prefix="B", origin_xyz=(0.0, 0.0, 500.0))
    return folder


def test_the_series_used_is_named_and_another_can_be_chosen(two_patients: Path) -> None:
    assert dicom_series_in(two_patients) == [(B, 40), (A, 30)]
    notes: list[str] = []
    assert read_image(two_patients, role="CT", notes=notes).shape_zyx == (40, 10, 12)
    assert notes == [f"the CT folder holds 2 DICOM series; used {B} (40 slices), not {A} (30 slices): if the ROI "
                     "was drawn on another series, choose it (--series UID, or the series box in the app)"]
    notes.clear()
    assert read_image(two_patients, role="CT", series=A, notes=notes).shape_zyx == (30, 10, 12)
    assert notes == [], "a chosen series needs no note"


def test_an_unknown_series_uid_lists_the_series_there_are(two_patients: Path) -> None:
    with pytest.raises(DicomError) as err:
        read_image(two_patients, role="CT", series="1.2.3")
    assert str(err.value) == (f"CT: the folder holds no DICOM series with the chosen UID; it holds {B} (40 slices); "
                              f"{A} (30 slices)")
