"""Audit log: one fsync'ed JSON line per prediction, no identifiers, safe under concurrency."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pipeline.serving.audit import (append_audit, audit_entry, audit_log_path, entry_from_batch_row, read_audit)

SHA_CT, SHA_ROI, MODEL = "c" * 64, "d" * 64, "e" * 64
FIELDS = {"time_utc", "source", "model_name", "model_id", "ct_sha256", "roi_sha256", "probability", "risk_band",
          "n_warnings", "pleurarisk_version"}


def _entry(**kw) -> dict:
    args = dict(model_name="demo", model_id=MODEL, ct_sha256=SHA_CT, roi_sha256=SHA_ROI, probability=0.42,
                risk_band="intermediate", n_warnings=1, source="app")
    args.update(kw)
    return audit_entry(**args)


def test_lines_hold_exactly_the_documented_fields(tmp_path: Path) -> None:
    log = tmp_path / "new" / "folder" / "audit.jsonl"
    append_audit(_entry(), path=log)
    append_audit(_entry(source="cli", probability=0.9, risk_band="high"), path=log)
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == FIELDS
    assert first["time_utc"].endswith("Z") and first["source"] == "app" and first["probability"] == 0.42
    assert [r["source"] for r in read_audit(log)] == ["app", "cli"]


def test_location_follows_env_var_or_defaults_to_cwd_audit_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLEURA_AUDIT_LOG", raising=False)
    assert audit_log_path() == Path("audit/audit.jsonl")
    append_audit(_entry())
    assert (tmp_path / "audit" / "audit.jsonl").is_file()
    monkeypatch.setenv("PLEURA_AUDIT_LOG", str(tmp_path / "elsewhere.jsonl"))
    append_audit(_entry())
    assert len(read_audit(tmp_path / "elsewhere.jsonl")) == 1


def test_invalid_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        _entry(source="web")
    with pytest.raises(ValueError, match="sha256"):
        _entry(ct_sha256="patient_name.nii.gz")
    with pytest.raises(ValueError, match="probability"):
        _entry(probability=float("nan"))
    with pytest.raises(ValueError, match="n_warnings"):
        _entry(n_warnings=-1)


def test_batch_rows_become_entries_and_failed_rows_do_not() -> None:
    row = {"status": "ok", "probability": 0.7, "risk_band": "high", "warnings": "a | b", "model_id": MODEL,
           "ct_sha256": SHA_CT, "roi_sha256": SHA_ROI, "case_id": "PATIENT-123"}
    entry = entry_from_batch_row(row, model_name="demo")
    assert entry is not None and entry["n_warnings"] == 2 and entry["source"] == "app-batch"
    assert "PATIENT-123" not in json.dumps(entry)
    assert entry_from_batch_row({"status": "error", "case_id": "x"}, model_name="demo") is None


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    def write(k: int) -> None:
        for i in range(20):
            append_audit(_entry(probability=(k * 20 + i) / 1000), path=log)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_audit(log)
    assert len(records) == 120 == len(log.read_text().splitlines())
    assert sorted(r["probability"] for r in records) == [i / 1000 for i in range(120)]


def test_torn_last_line_is_skipped_when_reading(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    append_audit(_entry(), path=log)
    with log.open("a") as fh:
        fh.write('{"time_utc": "2026-')
    assert len(read_audit(log)) == 1


def test_an_unwritable_log_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.serving.audit import AuditLogError, ensure_audit_writable
    from pipeline.cli.main import EXIT_INPUT, main

    assert ensure_audit_writable(tmp_path / "new" / "audit.jsonl").is_file()  # created, empty
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    bad = blocker / "audit" / "audit.jsonl"  # its folder cannot be made (root ignores permission bits)
    with pytest.raises(AuditLogError, match="PLEURA_AUDIT_LOG"):
        ensure_audit_writable(bad)
    monkeypatch.setenv("PLEURA_AUDIT_LOG", str(bad))
    # the case files do not exist: the audit log is checked first, so that is the one error reported
    for argv in (["score", "missing-ct.nii.gz", "missing-roi.nii.gz", "--cea", "3", "--ca125", "10", "--age", "60"],
                 ["batch", str(tmp_path / "no-cases"), "--out", str(tmp_path / "results.csv")]):
        assert main(argv) == EXIT_INPUT
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: the audit log") and "set PLEURA_AUDIT_LOG" in err and "nothing was scored" in err
        assert "\n" not in err and "Traceback" not in err and "missing-ct" not in err
    assert not (tmp_path / "results.csv").exists()
