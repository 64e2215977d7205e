"""The bad-input corpus (``bad_input_corpus.py``) through the library, the CLI and ``pleura batch``.

Every entry of :data:`~bad_input_corpus.CORPUS` is an input a user could plausibly give
PleuraRisk, the error class it must raise and a fragment of the one-sentence message the user
must see. For each:

(a) the library call (``load_case`` / ``parse_clinical`` / ``discover_cases`` / ``load_bundle``)
    raises exactly that class with that message (``discover_cases`` does not raise for a problem
    that concerns one case: it puts the class's ``code`` and the message into that case);
(b) the CLI (``python -m pipeline.cli.main score …`` with the tiny bundle, or ``pleura batch`` for
    cohort files) exits 2 with one ``error: …`` line on stderr and no traceback;
(c) one ``pleura batch`` run over a folder mixing every image-level and per-case cohort entry with
    two good cases gives each bad case its own row (status=error, the class's code, the message),
    the good ones ok, and exits 1.

Entries whose ``error`` is ``None`` are *accepted with a warning*: the message is the warning.
Zip uploads exist only in the app (``pipeline.io.archive``): their library call is the app's
``UploadFolder.store_image`` (b and c do not apply; the CLI refuses any .zip, asking to unzip).
The same corpus through the app's pages: ``tests/app/test_bad_inputs_app.py``.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bad_input_corpus
from hostile_corpus import write_clinical_row
from bad_input_corpus import BOMB_EXTRA_BYTES, BY_ID, CORPUS, GOOD_CLINICAL, RESAMPLED, ZIP_LIMITS, BadInput, Good
from pipeline.io.archive import UploadFolder
from pipeline.serving.bundle import bundle_config, load_bundle
from pipeline.inputs.case import load_case
from pipeline.inputs.clinical import parse_clinical
from pipeline.inputs.cohort import discover_cases
from pipeline.core.errors import PleuraRiskError
from pipeline.io.readers import read_image, write_image

REPO = Path(__file__).resolve().parents[2]
PLEURA = [sys.executable, "-m", "pipeline.cli.main"]
WARNED = [e for e in CORPUS if e.kind == "case" and e.error is None]
IN_BATCH = [e for e in CORPUS if e.kind in ("case", "row")]
NOT_ROWS = [e for e in CORPUS if e.kind != "row"]
GOOD_IDS = ("good_1", "good_2")


def _ids(entries: list[BadInput]) -> list[str]:
    return [e.id for e in entries]


def test_corpus_is_large_distinct_and_documented():
    assert len({e.id for e in CORPUS}) == len(CORPUS)
    assert sum(e.error is not None for e in CORPUS) >= 30
    table = re.findall(r"^(\w+)\s{2,}(\w+|\(warning\))\s{2,}(.+?)\s*$", bad_input_corpus.__doc__, flags=re.M)
    documented = {i: (c, m) for i, c, m in table if i != "id"}
    assert documented == {e.id: (e.error.__name__ if e.error else "(warning)", e.message) for e in CORPUS}


# ------------------------------------------------------------------------------------------------
# build everything once
@dataclass(frozen=True)
class Built:
    good: Good
    batch_root: Path
    batch_clinical: Path
    outputs: dict[str, Any]


@pytest.fixture(scope="module")
def built(phantom_cohort: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    src = phantom_cohort.parent
    base = tmp_path_factory.mktemp("bad_inputs")
    good = Good(ct=src / "case_0000_ct.nii.gz", roi=src / "case_0000_roi.nii.gz",
                ct_vol=read_image(src / "case_0000_ct.nii.gz"), roi_vol=read_image(src / "case_0000_roi.nii.gz"),
                bundle=tiny_bundle, config=bundle_config(tiny_bundle))
    root = base / "batch"
    clinical_rows: dict[str, dict[str, str]] = {}
    for i, case_id in enumerate(GOOD_IDS, start=1):
        (root / case_id).mkdir(parents=True)
        shutil.copy(src / f"case_000{i}_ct.nii.gz", root / case_id / "ct.nii.gz")
        shutil.copy(src / f"case_000{i}_roi.nii.gz", root / case_id / "roi.nii.gz")
        clinical_rows[case_id] = dict(GOOD_CLINICAL)
    outputs: dict[str, Any] = {}
    for entry in CORPUS:
        folder = root / entry.id if entry.kind in ("case", "row") else base / "other" / entry.id
        if entry.kind != "row":
            folder.mkdir(parents=True)
        outputs[entry.id] = out = entry.build(folder, good)
        if entry.kind == "case":
            clinical_rows[entry.id] = dict(GOOD_CLINICAL)
        elif entry.kind == "row" and out is not None:
            clinical_rows[entry.id] = out
    clinical = base / "clinical.csv"
    with clinical.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "CEA", "CA125", "age"])
        for case_id, row in sorted(clinical_rows.items()):
            if not write_clinical_row(fh, case_id, row):  # a row given verbatim ({"raw": …})
                writer.writerow([case_id, row["CEA"], row["CA125"], row["age"]])
    return Built(good, root, clinical, outputs)


# ------------------------------------------------------------------------------------------------
# (a) the library raises exactly the expected class with the expected message
@pytest.mark.parametrize("entry", NOT_ROWS, ids=_ids(NOT_ROWS))
def test_library_refuses_with_the_expected_class_and_message(built: Built, entry: BadInput):
    out = built.outputs[entry.id]
    if entry.kind == "case" and entry.error is None:
        case = load_case(*out, config=built.good.config)
        assert any(entry.message in w for w in case.warnings), case.warnings
        assert case.roi_voxels >= built.good.config.validation.min_mask_voxels
        return
    call = {
        "case": lambda: load_case(*out, config=built.good.config),
        "clinical": lambda: parse_clinical(**out),
        "cohort": lambda: discover_cases(out[0], clinical_csv=out[1]),
        "bundle": lambda: load_bundle(out),
        "zip": lambda: UploadFolder(parent=built.batch_root.parent, limits=ZIP_LIMITS).store_image(
            "ct", filename=out[0], data=out[1]),
    }[entry.kind]
    with pytest.raises(PleuraRiskError) as err:
        call()
    assert type(err.value) is entry.error, f"{type(err.value).__name__}: {err.value}"
    assert entry.message in str(err.value)
    assert "\n" not in str(err.value) and str(built.batch_root.parent) not in str(err.value), "no file paths"


def test_an_uncompressed_nifti_named_nii_gz_is_read_not_called_truncated(built: Built, tmp_path: Path):
    """The content decides: ITK reads such a file fine, so must the completeness check."""
    plain = write_image(built.good.ct_vol, tmp_path / "ct.nii", compress=False)
    misnamed = tmp_path / "ct.nii.gz"
    misnamed.write_bytes(plain.read_bytes())
    np.testing.assert_array_equal(read_image(misnamed).array, built.good.ct_vol.array)


def test_discover_cases_puts_each_per_case_problem_into_its_own_case(built: Built):
    cases = discover_cases(built.batch_root, clinical_csv=built.batch_clinical)
    by_id = {c.case_id: c for c in cases}
    assert len(by_id) == len(cases) == len(IN_BATCH) + len(GOOD_IDS)
    for entry in IN_BATCH:
        case = by_id[entry.id]
        if entry.kind == "row":
            assert case.problem_type == entry.error.code and entry.message in case.problem, (entry.id, case)
        else:
            assert case.problem is None, (entry.id, case.problem)


# A small launcher forks the reader and reports the child's peak RSS with
# getrusage(RUSAGE_CHILDREN): a process started directly from pytest would report pytest's own
# peak, since Linux carries ru_maxrss across fork + exec.
_PEAK_RSS = """
import json, os, resource, sys, time
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    from pipeline.core.errors import InputError
    from pipeline.io.readers import read_image
    t = time.perf_counter()
    try:
        outcome = 'read ' + str(read_image(sys.argv[1], role='CT').shape_zyx)
    except InputError as err:
        outcome = str(err)
    os.write(write, json.dumps({'outcome': outcome, 'seconds': time.perf_counter() - t}).encode())
    os._exit(0)
os.close(write)
report = json.loads(os.read(read, 1 << 16))
os.waitpid(pid, 0)
report['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(report))
"""


def _read_in_fresh_process(path: Path) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_zero_stream_bomb_is_refused_within_bounded_memory_and_time(built: Built):
    """Peak RSS while refusing a 4 MB file that decompresses to 4 GiB stays that of reading the
    good 2 MB CT it was made from, and decompression stops early (a fraction of a second)."""
    path = built.outputs["ct_gzip_bomb_zero_stream"][0]
    assert path.stat().st_size < 8 * 1024**2
    bomb, good = _read_in_fresh_process(path), _read_in_fresh_process(built.good.ct)
    print(f"\nzero-stream gzip bomb ({path.stat().st_size / 1e6:.1f} MB → {BOMB_EXTRA_BYTES / 1024**3:.0f} GiB): "
          f"peak RSS {bomb['peak_rss_mb']:.0f} MB (reading the good CT: {good['peak_rss_mb']:.0f} MB), "
          f"refused in {bomb['seconds']:.2f} s")
    assert BY_ID["ct_gzip_bomb_zero_stream"].message in bomb["outcome"]
    assert good["outcome"] == "read (64, 128, 128)"
    assert bomb["peak_rss_mb"] < min(good["peak_rss_mb"] + 50, 500)
    assert bomb["seconds"] < 10


def test_huge_header_bomb_is_refused_before_any_allocation(built: Built):
    bomb = _read_in_fresh_process(built.outputs["ct_gzip_bomb_huge_dims"][0])
    assert "5000×5000×5000" in bomb["outcome"] and "refused before decompressing" in bomb["outcome"]
    assert bomb["peak_rss_mb"] < 500 and bomb["seconds"] < 5


# ------------------------------------------------------------------------------------------------
# (b) the CLI: exit 2, one "error: …" line, no traceback
def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLEURA, *args], capture_output=True, text=True, cwd=REPO, timeout=600, env=env)


def _cli_args(entry: BadInput, built: Built, out_dir: Path) -> list[str]:
    good, out = built.good, built.outputs[entry.id]
    clinical = ["--cea", GOOD_CLINICAL["CEA"], "--ca125", GOOD_CLINICAL["CA125"], "--age", GOOD_CLINICAL["age"]]
    bundle = ["--bundle", str(good.bundle)]
    if entry.kind == "case":
        return ["score", str(out[0]), str(out[1]), *clinical, *bundle]
    if entry.kind == "clinical":
        return ["score", str(good.ct), str(good.roi), "--cea", out["cea"], "--ca125", out["ca125"], "--age", out["age"],
                *bundle]
    if entry.kind == "cohort":
        return ["batch", str(out[0]), "--clinical", str(out[1]), "--out", str(out_dir / f"{entry.id}.csv"), *bundle,
                "--quiet"]
    return ["score", str(good.ct), str(good.roi), *clinical, "--bundle", str(out)]


CLI_REFUSED = [e for e in CORPUS if e.kind not in ("row", "zip") and e.error is not None]


@pytest.fixture(scope="module")
def cli_runs(built: Built, tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """Every refused entry through the CLI, two processes at a time (each takes about a second:
    the images are checked before the model is loaded)."""
    out_dir = tmp_path_factory.mktemp("cli_out")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(lambda e: (e.id, _run(*_cli_args(e, built, out_dir))), CLI_REFUSED)
        return dict(runs)


@pytest.mark.parametrize("entry", CLI_REFUSED, ids=_ids(CLI_REFUSED))
def test_cli_prints_one_error_line_and_exits_2(cli_runs: dict[str, subprocess.CompletedProcess], entry: BadInput):
    r = cli_runs[entry.id]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert entry.message in lines[0]
    assert r.stdout == ""


def test_cli_reads_a_zipped_ct_and_refuses_a_zip_without_files(built: Built):
    name, data = built.outputs["zip_without_files"]
    path = built.batch_root.parent / name
    path.write_bytes(data)
    r = _run("score", str(path), str(built.good.roi), "--cea", "4.2", "--ca125", "15", "--age", "63",
             "--bundle", str(built.good.bundle))
    assert r.returncode == 2
    assert r.stderr.strip() == "error: the CT zip contains no files"


def _check_warned_cli(built: Built, entry: BadInput) -> None:
    r = _run(*_cli_args(entry, built, Path()))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning: ")]
    assert any(entry.message in w for w in warnings), r.stdout
    assert "VPI probability:" in r.stdout


@pytest.mark.parametrize("entry_id", ["roi_other_direction", "roi_other_spacing"])
def test_cli_resamples_a_mask_on_another_grid_only_when_allowed(built: Built, tmp_path: Path, entry_id: str):
    args = list(_cli_args(BY_ID[entry_id], built, tmp_path))
    refused = _run(*args)
    assert refused.returncode == 2 and "not on the CT's voxel grid" in refused.stderr and "--allow-resample" in refused.stderr
    r = _run(*args, "--allow-resample")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stdout.splitlines() if line.startswith("warning: ")]
    assert any(RESAMPLED in w for w in warnings), r.stdout
    assert "VPI probability:" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("entry", WARNED, ids=_ids(WARNED))
def test_cli_scores_every_warned_input_and_prints_the_warning(built: Built, entry: BadInput):
    _check_warned_cli(built, entry)


# ------------------------------------------------------------------------------------------------
# (c) one batch over every image-level and per-case entry plus two good cases
def test_batch_gives_every_bad_case_its_own_error_row(built: Built, tmp_path: Path):
    out = tmp_path / "results.csv"
    r = _run("batch", str(built.batch_root), "--clinical", str(built.batch_clinical), "--out", str(out),
             "--bundle", str(built.good.bundle), "--workers", "1", "--quiet")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by_id = {row["case_id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(IN_BATCH) + len(GOOD_IDS), "one row per case, none lost or repeated"
    for case_id in GOOD_IDS:
        assert by_id[case_id]["status"] == "ok" and 0 <= float(by_id[case_id]["probability"]) <= 1
    for entry in IN_BATCH:
        row = by_id[entry.id]
        if entry.error is None:
            assert row["status"] == "ok", (entry.id, row["error"])
            assert entry.message in row["warnings"], (entry.id, row["warnings"])
        else:
            assert row["status"] == "error", (entry.id, row)
            assert row["error_type"] == entry.error.code, (entry.id, row["error_type"], row["error"])
            assert entry.message in row["error"], (entry.id, row["error"])
            assert row["probability"] == ""
    n_bad = sum(e.error is not None for e in IN_BATCH)
    assert f"{len(rows) - n_bad} of {len(rows)} cases scored, {n_bad} failed" in r.stdout
