"""run_pool: tasks are drawn lazily (hashing overlaps the work) and nothing starts without a task."""

from __future__ import annotations

from pipeline.serving.batch import run_pool


def test_tasks_are_drawn_as_the_work_needs_them():
    drawn: list[int] = []

    def tasks():
        for i in range(4):
            drawn.append(i)
            yield i, f"k{i}"

    results = run_pool(tasks(), fn=lambda task: {"value": task * 10}, workers=1,
                       initializer=lambda: None, initargs=(), on_crash=lambda task: {})
    first = next(results)
    assert first == ("k0", {"value": 0}) and drawn == [0]  # the rest not hashed yet
    assert list(results) == [("k1", {"value": 10}), ("k2", {"value": 20}), ("k3", {"value": 30})]


def test_no_task_starts_no_worker():
    started: list[bool] = []
    for workers in (1, 2):
        out = list(run_pool(iter(()), fn=lambda task: {}, workers=workers,
                            initializer=lambda: started.append(True), initargs=(), on_crash=lambda task: {}))
        assert out == [] and started == []  # a fully resumed batch loads no model


def test_freed_memory_is_handed_back_only_above_the_limit(monkeypatch):
    from pipeline.serving import worker_memory as batch

    trims: list[bool] = []
    monkeypatch.setattr(batch, "release_free_memory", lambda: trims.append(True))
    rss = batch._resident_mib()
    assert rss is not None and rss > 0  # Linux: /proc/self/statm
    assert batch.release_free_memory_if_large(rss + 1024) is False and trims == []
    assert batch.release_free_memory_if_large(0) is True and trims == [True]
    monkeypatch.setattr(batch, "_resident_mib", lambda: None)  # unknown size: trim, as before
    assert batch.release_free_memory_if_large() is True and trims == [True, True]


def test_in_process_overlap_runs_two_cases_at_once_and_draws_only_what_it_runs():
    import threading

    drawn: list[int] = []
    both_running = threading.Barrier(2, timeout=30)  # broken (an error row) unless two tasks run together

    def tasks():
        for i in range(5):
            drawn.append(i)
            yield i, f"k{i}"

    def fn(task: int) -> dict:
        if task < 2:
            both_running.wait()
        return {"value": task * 10}

    results = run_pool(tasks(), fn=fn, workers=1, initializer=lambda: None, initargs=(),
                       on_crash=lambda task: {}, in_process_overlap=2)
    first = next(results)
    assert first[1]["value"] in (0, 10) and len(drawn) <= 3  # two running, at most one more drawn
    rest = dict(results)
    assert {first[0], *rest} == {f"k{i}" for i in range(5)}
    assert sorted([first[1]["value"], *(r["value"] for r in rest.values())]) == [0, 10, 20, 30, 40]


def test_an_exception_in_an_overlapped_task_reaches_the_caller():
    import pytest

    def fn(task: int) -> dict:
        if task == 1:
            raise RuntimeError("boom")
        return {"value": task}

    with pytest.raises(RuntimeError, match="boom"):
        list(run_pool(((i, f"k{i}") for i in range(3)), fn=fn, workers=1, initializer=lambda: None, initargs=(),
                      on_crash=lambda task: {}, in_process_overlap=2))
