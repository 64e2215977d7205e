"""Hostile inputs through the app (issue 15): stale uploads of a killed server (item 13),
formula case ids in the batch results (item 7), a session's upload space (item 12)."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from app_helpers import errors, new_app, open_page

from pipeline.io import upload_sweep
from pipeline.io.archive import ArchiveLimits, UploadFolder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from bad_input_corpus import GOOD_CLINICAL  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_KILLED_SERVER = """
import os, sys, time
from pipeline.io.archive import UploadFolder
uploads = UploadFolder(parent=sys.argv[1])
uploads.store_file("ct", suffix=".dcm", data=b"DICM patient name")
print(uploads.root, flush=True)
time.sleep(600)
"""


def _server_with_upload(parent: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SERVER, str(parent)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc, Path(proc.stdout.readline().strip())


def test_app_start_removes_uploads_of_a_killed_server_only(env: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(upload_sweep, "_SWEPT", [])
    killed, killed_folder = _server_with_upload(tmp_path)
    alive, alive_folder = _server_with_upload(tmp_path)
    unmarked = tmp_path / "pleura-upload-unmarked"
    unmarked.mkdir()
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        assert (killed_folder / "ct" / "ct.dcm").exists(), "SIGKILL ran no clean-up"
        at = new_app()  # a restarted server's first page view
        assert not at.exception
        assert not killed_folder.exists()
        assert (alive_folder / "ct" / "ct.dcm").exists(), "a running server's uploads are left alone"
        assert unmarked.exists(), "a folder whose owner cannot be known is left alone"
    finally:
        alive.kill()
        alive.wait(30)


def test_formula_case_ids_are_neutralised_in_the_downloaded_results(env: Path, tmp_path: Path) -> None:
    from pipeline.synth import write_cohort

    src = write_cohort(tmp_path / "src", n=1, seed=7, size="small").parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.write(src / "case_0000_ct.nii.gz", "=HYPERLINK(1)_ct.nii.gz")
        zf.write(src / "case_0000_roi.nii.gz", "=HYPERLINK(1)_roi.nii.gz")
    clinical = f"case_id,CEA,CA125,age\n=HYPERLINK(1),{GOOD_CLINICAL['CEA']},{GOOD_CLINICAL['CA125']},63\n"
    at = open_page("pages/batch.py")
    at.file_uploader(key="batch_zip").set_value(("cases.zip", buf.getvalue(), "application/zip"))
    at.file_uploader(key="batch_csv").set_value(("clinical.csv", clinical.encode(), "text/csv"))
    at.button(key="run_batch").click().run()
    assert not at.exception and not errors(at), errors(at)
    result = at.session_state["batch_result"]
    (row,) = list(csv.DictReader(io.StringIO(result.csv_bytes.decode("utf-8"))))
    assert row["case_id"] == "'=HYPERLINK(1)" and row["status"] == "ok"


def test_a_session_cannot_fill_the_disk_with_uploads(tmp_path: Path) -> None:
    uploads = UploadFolder(parent=tmp_path, limits=ArchiveLimits(max_session_bytes=3_000_000))
    uploads.store_file("clinical", suffix=".csv", data=bytes(2_000_000))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CT/IM0001.dcm", os.urandom(1_500_000))  # incompressible: not a ratio bomb
    from pipeline.core.errors import ArchiveError

    with pytest.raises(ArchiveError, match=r"more than the upload space this session has left \(1 MB of 3 MB\)"):
        uploads.store_image("ct", filename="ct.zip", data=buf.getvalue())
    assert uploads.used_bytes() < 2_100_000, "the refused zip was removed"
    uploads.clear("clinical")
    assert uploads.store_image("ct", filename="ct.zip", data=buf.getvalue()).is_dir()


def test_predict_page_offers_the_series_of_a_two_series_dicom_zip(env: Path, tmp_path: Path) -> None:
    from bad_input_corpus import UID, _small_hu, write_dicom_series

    write_dicom_series(tmp_path / "ct", _small_hu(30), uid=UID + ".30", prefix="A")
    write_dicom_series(tmp_path / "ct" / "other", _small_hu(40), uid=UID + ".40", prefix="B")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((tmp_path / "ct").rglob("*.dcm")):
            zf.write(p, str(p.relative_to(tmp_path)))
    at = open_page("pages/predict.py")
    at.file_uploader(key="ct_upload").set_value(("ct.zip", buf.getvalue(), "application/zip"))
    at.run()
    assert not at.exception and not errors(at), errors(at)
    box = at.selectbox(key="dicom_series")
    assert len(box.options) == 2 and f"{UID}.40, 40 slices" in box.options[0] and f"{UID}.30, 30 slices" in box.options[1]
    assert box.value is None, "nothing preselected: chosen automatically, and the result's notes name the series used"
