"""The bad-input corpus (``tests/reliability/bad_input_corpus.py``) through the app's pages.

Every corpus entry a clinician can produce in the app is given to the page it belongs to with
``streamlit.testing.v1.AppTest`` (no browser), with the small clinical-only bundle (the images are
still read and checked, as for any bundle):

* **Predict** — uploaded CT / ROI files (``case`` entries; a DICOM folder is uploaded as a .zip,
  as the page asks), CT uploads that are zips or pictures (``zip``), and lab values typed into the
  form (``clinical``). Each refused entry must show its message in exactly one ``st.error``
  (raised as the entry's error class; a problem found while scoring below the collapsed
  "Prediction failed" status box, not hidden inside it), no exception or traceback, no result;
  the page must then re-render with its form, and for one entry per stage (upload check, image
  check while scoring, mask, DICOM zip, form value) a good prediction in the same session must
  work. Entries accepted with a warning give a result with the warning.
* **Batch** — cases whose clinical row is broken (``row`` entries), and every image-level entry,
  each get their own error row (or an ok row with the warning) next to a good case; broken
  clinical CSVs (``cohort``) and unsafe or damaged zips refuse the whole batch with one
  ``st.error``, after which a good batch runs in the same session.

Not producible in the app: ``clin_text`` and ``clin_infinite`` (the lab fields are number inputs,
which accept only finite numbers) and the ``bundle`` entries (bundles are installed by an
operator, not uploaded; every page's header reports an unusable bundle, see ``test_pages.py``).

Where the app's upload check recognises a file before any image reader sees it, the app's message
is more specific than the library's; :data:`APP_MESSAGE` lists those entries with what the app
says (the CLI, which gets a path and not an upload, says what the corpus says).

All of this takes under a minute on two cores.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from app_helpers import errors, fill_labs, open_page, shown_probability, upload
from streamlit.testing.v1 import AppTest

from pipeline.app import session
from pipeline.io.archive import UploadFolder
from pipeline.serving.bundle import bundle_config
from pipeline.core.errors import (ArchiveError, ClinicalValueError, CohortError, ImageReadError, InputError,
                                  PleuraRiskError)
from pipeline.io.readers import read_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from bad_input_corpus import BY_ID, CORPUS, GOOD_CLINICAL, ZIP_LIMITS, BadInput, Good  # noqa: E402
from hostile_corpus import UPLOAD_DETACHED, write_clinical_row  # noqa: E402

# the follow-up InputError when Predict is pressed without a usable file
UPLOAD_FIRST = ("Upload a CT scan", "Upload a tumour ROI mask", "Predict needs:")  # Predict's list of what is missing

# id → (class, message) the app shows where its upload check speaks before the image reader.
APP_MESSAGE: dict[str, tuple[type[PleuraRiskError], str]] = {
    "ct_nii_gz_not_gzip": (ImageReadError, "CT: the file is not a valid .nii.gz image (its content does not match)"),
    "ct_png_bytes_as_nii_gz": (ImageReadError, "CT: this file is a PNG picture, not a 3-D image"),
    "ct_pdf_bytes_as_nii_gz": (ImageReadError, "CT: this file is a PDF document, not a 3-D image"),
    "ct_png_bytes_as_nrrd": (ImageReadError, "CT: this file is a PNG picture, not a 3-D image"),
    # a header naming a separate data file is refused at upload (nothing beside it to read)
    "ct_nhdr_data_file_outside": (ImageReadError, UPLOAD_DETACHED),
    "ct_nrrd_cr_relative_escape": (ImageReadError, UPLOAD_DETACHED),
    "ct_mha_comment_line_outside": (ImageReadError, UPLOAD_DETACHED),
    "ct_nhdr_file_list": (ImageReadError, UPLOAD_DETACHED),
    "roi_mhd_data_file_outside": (ImageReadError, UPLOAD_DETACHED.replace("CT", "ROI mask")),
}
NOT_IN_THE_FORM = {"clin_text", "clin_infinite", "clin_thousands_separator", "clin_grouped_digits"}  # number inputs accept only finite numbers

PREDICT = [e for e in CORPUS if e.kind in ("case", "zip") or (e.kind == "clinical" and e.id not in NOT_IN_THE_FORM)]
PREDICT_REFUSED = [e for e in PREDICT if e.error is not None]
PREDICT_WARNED = [e for e in PREDICT if e.error is None]
BATCH_ROWS = [e for e in CORPUS if e.kind == "row"]
BATCH_REFUSED = [e for e in CORPUS if e.kind == "cohort" or (e.kind == "zip" and e.id.startswith("zip_"))]

# A good prediction follows these in the same session (one per stage where an input is refused).
THEN_GOOD = {"zip_path_traversal", "ct_nan_voxels", "dicom_two_series", "clin_absurd_age", "roi_several_labels"}


def _ids(entries: list[BadInput]) -> list[str]:
    return [e.id for e in entries]


def _expected(entry: BadInput, *, zip_name: str = "the CT zip") -> tuple[type[PleuraRiskError] | None, str]:
    error, message = APP_MESSAGE.get(entry.id, (entry.error, entry.message))
    return error, message.replace("the CT zip", zip_name)


# ------------------------------------------------------------------------------------------------
# fixtures
@pytest.fixture(scope="module")
def good(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Good:
    """The corpus' good case: case_0000 of the seed-7 small phantom cohort (as the reliability
    tests' ``phantom_cohort`` fixture; a cohort's first cases do not depend on its size)."""
    from pipeline.synth import write_cohort

    src = write_cohort(tmp_path_factory.mktemp("app_bad_good"), n=1, seed=7, size="small").parent
    ct, roi = src / "case_0000_ct.nii.gz", src / "case_0000_roi.nii.gz"
    return Good(ct=ct, roi=roi, ct_vol=read_image(ct), roi_vol=read_image(roi), bundle=weights_dir / "alpha",
                config=bundle_config(weights_dir / "alpha"))


@dataclass
class Shown:
    """The error classes the pages passed to ``show_error`` (the page shows only the message)."""

    classes: list[type[BaseException]]


@pytest.fixture()
def shown(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shown]:
    """The app environment (bundle 'alpha') and a record of the classes of the errors shown."""
    record = Shown([])
    original = session.show_error

    def spy(err: BaseException) -> None:
        record.classes.append(type(err))
        original(err)

    monkeypatch.setattr(session, "show_error", spy)
    yield record


class ScaledUploads(UploadFolder):
    """The session upload folder with the corpus' scaled-down zip limit (for ``zip_bomb``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"limits": ZIP_LIMITS, **kwargs})


def _limits_for(entry: BadInput, monkeypatch: pytest.MonkeyPatch) -> None:
    if entry.id in ("zip_bomb", "zip_expands_1000x"):
        monkeypatch.setattr(session, "UploadFolder", ScaledUploads)


def _file(path: Path) -> tuple[str, bytes]:
    """An upload of ``path``: the file itself, or a zip of a (DICOM) folder as the page asks."""
    if path.is_file():
        return path.name, path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                zf.write(p, f"{path.name}/{p.relative_to(path)}")
    return f"{path.name}.zip", buf.getvalue()


def _form_number(text: str) -> float | None:
    return None if not text.strip() else float(text)


@dataclass(frozen=True)
class PredictInputs:
    ct: tuple[str, bytes]
    roi: tuple[str, bytes]
    labs: dict[str, float | None]


GOOD_LABS = {k.lower(): float(v) for k, v in GOOD_CLINICAL.items()}  # cea, ca125, age


def _predict_inputs(entry: BadInput, good: Good, folder: Path) -> PredictInputs:
    folder.mkdir(parents=True, exist_ok=True)
    out = entry.build(folder, good)
    ct, roi, labs = _file(good.ct), _file(good.roi), GOOD_LABS
    if entry.kind == "case":
        ct, roi = _file(Path(out[0])), _file(Path(out[1]))
    elif entry.kind == "zip":
        ct = out
    else:
        labs = {k: _form_number(v) for k, v in out.items()}
    return PredictInputs(ct, roi, labs)


def _predict(at: AppTest, inputs: PredictInputs) -> None:
    upload(at, "ct_upload", *inputs.ct)
    upload(at, "roi_upload", *inputs.roi)
    fill_labs(at, **inputs.labs)
    at.button(key="predict").click().run()


def _assert_no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = [e.value for e in at.error] + [m.value for m in at.markdown] + [c.value for c in at.get("code")]
    assert not any("Traceback" in t or 'File "/' in t for t in texts), texts


def _assert_form_usable(at: AppTest) -> None:
    at.run()
    _assert_no_traceback(at)
    for key in ("ct_upload", "roi_upload"):
        assert at.file_uploader(key=key) is not None
    for key in ("cea", "ca125", "age"):
        assert at.text_input(key=key) is not None
    assert at.button(key="predict") is not None


# ------------------------------------------------------------------------------------------------
# Predict
@pytest.mark.parametrize("entry", PREDICT_REFUSED, ids=_ids(PREDICT_REFUSED))
def test_predict_page_shows_the_message_of_every_refused_input(shown: Shown, good: Good, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               entry: BadInput) -> None:
    _limits_for(entry, monkeypatch)
    inputs = _predict_inputs(entry, good, tmp_path / entry.id)
    at = open_page("pages/predict.py")
    _predict(at, inputs)

    _assert_no_traceback(at)
    error, message = _expected(entry)
    messages = errors(at)
    # the "Predict needs:" list repeats the errors shown under the fields; an empty field is only in the list
    hits = ([m for m in messages if message in m and not m.startswith("Predict needs:")]
            or [m for m in messages if message in m])
    assert len(hits) == 1, (message, messages)
    assert all(m in hits or m.startswith(UPLOAD_FIRST) for m in messages), messages  # nothing else went wrong
    assert not any("pleura-upload-" in m or str(tmp_path) in m for m in messages), "no file paths"
    if error is ClinicalValueError:  # a lab value is checked as typed and drawn under its field by the form
        assert set(shown.classes) <= {InputError}, shown.classes
    else:
        assert shown.classes.count(error) == 1 and set(shown.classes) <= {error, InputError}, shown.classes
    assert "outcome" not in at.session_state and not at.metric
    if at.status:  # refused while scoring (not at upload or in the form)
        assert at.status[0].state == "error" and at.status[0].label == "Prediction failed"
        assert not at.status[0].error, "the message must not be hidden in the collapsed status box"

    _assert_form_usable(at)
    if entry.id in THEN_GOOD:
        _predict(at, PredictInputs(_file(good.ct), _file(good.roi), GOOD_LABS))
        _assert_no_traceback(at)
        assert not errors(at), errors(at)
        assert len(at.metric) == 1 and 0.0 <= shown_probability(at) <= 1.0
        assert at.status[0].state == "complete"


@pytest.mark.parametrize("entry", PREDICT_WARNED, ids=_ids(PREDICT_WARNED))
def test_predict_page_scores_every_warned_input_and_shows_the_warning(shown: Shown, good: Good, tmp_path: Path,
                                                                     entry: BadInput) -> None:
    at = open_page("pages/predict.py")
    _predict(at, _predict_inputs(entry, good, tmp_path / entry.id))
    _assert_no_traceback(at)
    assert not errors(at) and not shown.classes, errors(at)
    assert len(at.metric) == 1 and at.status[0].state == "complete"
    (validation,) = [w.value for w in at.warning if "Validation warnings" in w.value]
    assert entry.message in validation


# ------------------------------------------------------------------------------------------------
# Batch
def _zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # the images are gzipped already
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, str(p.relative_to(folder)))
    return buf.getvalue()


def _clinical_csv(rows: dict[str, dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["case_id", "CEA", "CA125", "age"])
    for case_id, row in sorted(rows.items()):
        if not write_clinical_row(buf, case_id, row):  # a row given verbatim ({"raw": …})
            writer.writerow([case_id, row["CEA"], row["CA125"], row["age"]])
    return buf.getvalue().encode()


def _add_good_case(good: Good, folder: Path) -> None:
    (folder / "good_1").mkdir(parents=True)
    shutil.copy(good.ct, folder / "good_1" / "ct.nii.gz")
    shutil.copy(good.roi, folder / "good_1" / "roi.nii.gz")


def _good_batch(good: Good, folder: Path) -> tuple[bytes, bytes]:
    _add_good_case(good, folder)
    return _zip_folder(folder), _clinical_csv({"good_1": GOOD_CLINICAL})


def _run_batch(at: AppTest, zip_data: bytes, csv_data: bytes | None) -> None:
    at.file_uploader(key="batch_zip").set_value(("cases.zip", zip_data, "application/zip"))
    if csv_data is not None:
        at.file_uploader(key="batch_csv").set_value(("clinical.csv", csv_data, "text/csv"))
    at.button(key="run_batch").click().run()


def _check_batch_rows(at: AppTest, shown: Shown, entries: list[BadInput]) -> None:
    _assert_no_traceback(at)
    assert not errors(at) and not shown.classes, errors(at)
    table = at.session_state["batch_result"].table  # every CSV column (the screen shows plain names)
    by_id = {row["case_id"]: row for row in table.to_dict("records")}
    assert len(table) == len(by_id) == len(entries) + 1, "one row per case, none lost or repeated"
    assert by_id["good_1"]["status"] == "ok" and 0.0 <= float(by_id["good_1"]["probability"]) <= 1.0
    for entry in entries:
        row = by_id[entry.id]
        if entry.error is None:
            assert row["status"] == "ok" and entry.message in row["warnings"], (entry.id, row)
            continue
        assert row["status"] == "error", (entry.id, row)
        assert row["error_type"] == entry.error.code, (entry.id, row["error_type"], row["error"])
        assert entry.message in row["error"], (entry.id, row["error"])
    n_bad = sum(e.error is not None for e in entries)
    assert [m.value for m in at.metric][:3] == [str(len(by_id)), str(len(by_id) - n_bad), str(n_bad)]


def _batch_of(entries: list[BadInput], good: Good, root: Path) -> tuple[bytes, bytes]:
    """A batch zip (one folder per case) of ``entries`` plus the good case, and its clinical CSV."""
    _add_good_case(good, root)
    rows = {"good_1": dict(GOOD_CLINICAL)}
    for entry in entries:
        out = entry.build(root / entry.id, good)
        if entry.kind == "case":  # the corpus writes ct.* + roi.* or a ct/ DICOM folder
            rows[entry.id] = dict(GOOD_CLINICAL)
        elif out is not None:
            rows[entry.id] = out
    return _zip_folder(root), _clinical_csv(rows)


def test_batch_page_gives_every_broken_clinical_row_its_own_row(shown: Shown, good: Good, tmp_path: Path) -> None:
    """Text in a numeric column, negative or absurd values, an unknown case id, images without a
    clinical row, a case without ROI: each in its own error row; the good case is scored."""
    at = open_page("pages/batch.py")
    _run_batch(at, *_batch_of(BATCH_ROWS, good, tmp_path / "cases"))
    _check_batch_rows(at, shown, BATCH_ROWS)


IMAGE_LEVEL = [e for e in CORPUS if e.kind == "case"]


def test_batch_page_gives_every_broken_case_its_own_row(shown: Shown, good: Good, tmp_path: Path) -> None:
    """As the CLI's batch test: every image-level entry and every row entry in one uploaded zip."""
    at = open_page("pages/batch.py")
    _run_batch(at, *_batch_of(IMAGE_LEVEL + BATCH_ROWS, good, tmp_path / "cases"))
    _check_batch_rows(at, shown, IMAGE_LEVEL + BATCH_ROWS)


@pytest.mark.parametrize("entry", BATCH_REFUSED, ids=_ids(BATCH_REFUSED))
def test_batch_page_refuses_a_broken_csv_or_zip_with_one_message(shown: Shown, good: Good, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                entry: BadInput) -> None:
    _limits_for(entry, monkeypatch)
    out = entry.build(tmp_path / entry.id, good) if entry.kind == "cohort" else None
    good_zip, good_csv = _good_batch(good, tmp_path / "good")
    at = open_page("pages/batch.py")
    if entry.kind == "cohort":
        cases, clinical = out
        _run_batch(at, _zip_folder(cases), clinical.read_bytes())
    else:
        _run_batch(at, entry.build(tmp_path, good)[1], good_csv)

    _assert_no_traceback(at)
    error, message = _expected(entry, zip_name="the batch zip")
    (shown_message,) = errors(at)
    assert message in shown_message and "pleura-upload-" not in shown_message, (message, shown_message)
    assert shown.classes == [error]
    assert not at.dataframe and "batch_result" not in at.session_state

    # the page stays usable: a good batch now runs
    _run_batch(at, good_zip, good_csv)
    _assert_no_traceback(at)
    assert not errors(at), errors(at)
    assert list(at.session_state["batch_result"].table["status"]) == ["ok"]
    assert list(at.dataframe[-1].value["Status"]) == ["scored"]  # the screen's plain names


def test_every_app_entry_is_accounted_for() -> None:
    """Each corpus entry runs through a page or is listed as impossible to give the app."""
    covered = {e.id for e in PREDICT + BATCH_ROWS + BATCH_REFUSED}
    bundles = {e.id for e in CORPUS if e.kind == "bundle"}
    assert covered | NOT_IN_THE_FORM | bundles == {e.id for e in CORPUS}
    assert set(APP_MESSAGE) | THEN_GOOD <= covered
    assert {ArchiveError, CohortError} <= {e.error for e in BATCH_REFUSED}
    assert BY_ID["zip_bomb"] in BATCH_REFUSED and BY_ID["zip_bomb"] in PREDICT
