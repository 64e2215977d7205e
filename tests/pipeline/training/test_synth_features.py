"""Feature tables of synthetic cohorts rendered in memory equal those of the written NIfTI files."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from pipeline.synth import make_phantom, write_cohort
from pipeline.synth.cohort import draw_case
from pipeline.training.dataset import extract_cohort_features, read_table
from pipeline.training.synth_features import synth_feature_table


@pytest.mark.parametrize("size", ["small"])
def test_box_render_equals_the_whole_render(size: str) -> None:
    for i in range(4):
        case = draw_case(seed=5, index=i, size=size, generation=3)
        whole, box = make_phantom(case.spec), make_phantom(case.spec, around_tumour_mm=20.0)
        cut = tuple(slice(s, s + n) for s, n in zip(box.start_zyx, box.ct.array.shape))
        assert np.array_equal(whole.ct.array[cut], box.ct.array)
        assert np.array_equal(whole.roi.array[cut], box.roi.array)
        assert box.truth == whole.truth and whole.roi.array.sum() == box.roi.array.sum()


def test_in_memory_table_equals_files_then_features(tmp_path) -> None:
    files = write_cohort(tmp_path / "files", n=3, seed=11, size="small", generation=3)
    from_files = extract_cohort_features(files, tmp_path / "files.parquet", workers=1, num_threads=1)
    table = synth_feature_table(tmp_path / "mem", tmp_path / "mem.parquet", n=3, seed=11, size="small", workers=1,
                                num_threads=1)
    assert list(table["status"]) == list(from_files["status"]) == ["ok"] * 3
    cols = [c for c in from_files.columns if c != "error"]
    pd.testing.assert_frame_equal(table[cols], from_files[cols], check_exact=True)
    assert read_table(tmp_path / "mem.parquet")[1] == read_table(tmp_path / "files.parquet")[1]
    with open(files, newline="") as a, open(tmp_path / "mem" / "clinical.csv", newline="") as b:
        ra, rb = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [{k: v for k, v in r.items() if k not in ("ct_path", "roi_path")} for r in ra] == \
           [{k: v for k, v in r.items() if k not in ("ct_path", "roi_path")} for r in rb]
    # resumable: a second run reuses every journalled row, and adds none
    again = synth_feature_table(tmp_path / "mem", tmp_path / "mem.parquet", n=3, seed=11, size="small", workers=1)
    pd.testing.assert_frame_equal(again, table, check_exact=True)
