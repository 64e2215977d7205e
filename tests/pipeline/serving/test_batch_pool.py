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
