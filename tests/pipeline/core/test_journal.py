"""The crash-safe journal shared by batch scoring and feature extraction."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.journal import append_journal, journal_path, open_journal, read_journal


def test_torn_last_line_is_skipped_and_ended_before_the_next_row(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "sub" / "results.csv")
    assert path.name == "results.csv.journal.jsonl"
    with open_journal(path) as fh:
        append_journal(fh, {"input_key": "a", "v": 1})
    with path.open("a") as fh:
        fh.write('{"input_key": "b", "v"')  # killed mid-write
    assert set(read_journal(path)) == {"a"}
    with open_journal(path) as fh:
        append_journal(fh, {"input_key": "c", "v": 3})
    assert set(read_journal(path)) == {"a", "c"}


def test_later_rows_win_and_rows_without_a_key_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with open_journal(path) as fh:
        for row in ({"input_key": "a", "v": 1}, {"v": 2}, {"input_key": "a", "v": 3}):
            append_journal(fh, row)
    assert read_journal(path) == {"a": {"input_key": "a", "v": 3}}
