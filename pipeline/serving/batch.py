"""Score many cases: resumable, crash-safe, one output row per case; local processes or Dask.

How results are kept safe:

* every finished case is appended to a journal ``<out>.journal.jsonl`` and fsync'ed before the
  next one is reported;
* the results CSV ``<out>`` is rewritten from the journal atomically (temporary file + rename)
  as cases finish and at the end, so it is never truncated and has exactly one row per case;
* a re-run reads the journal and skips every case whose *input key* (sha256 of CT and ROI
  contents, clinical values, ROI label and model id) was already scored — changed inputs or a
  different model are scored again; cases that failed because a worker crashed are retried;
* a broken case becomes a row with ``status=error`` and a message, and the batch goes on.

Workers are separate processes (``--workers N``) that load the model once; a worker that dies
(e.g. out of memory) costs only its case, which is reported and the pool is restarted. With
``scheduler`` (``pleura batch --scheduler tcp://HOST:8786``) the cases run as tasks on a Dask
distributed cluster instead; results stream back into the same journal and CSV. A case's input
key is computed (its files hashed) just before it is handed to a worker, so the hashing overlaps
the workers' start-up and work; a batch with nothing left to do starts no worker.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import itertools
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pipeline.inputs.cohort import CaseInput
from pipeline.core.env import available_cores, threads_per_worker
from pipeline.core.journal import append_journal, open_journal, read_journal
from pipeline.core.journal import journal_path as journal_file
from pipeline.core.errors import PleuraRiskError
from pipeline.core.hashing import bytes_sha256
from pipeline.io.detached import input_sha256
from pipeline.serving.outputs import OutputLock, check_output, spreadsheet_safe
from pipeline.serving.worker_memory import keep_freed_heap_for_reuse, release_free_memory, release_free_memory_if_large
from pipeline.features.findings import FINDING_CSV_COLUMNS

INPUT_COLUMNS = ("CEA_ng_mL", "CA125_U_mL", "age_years")
"""The clinical values each case was scored with (also in a failed row when they were read)."""

RESULT_COLUMNS = (
    "case_id", "status", "probability", "risk_band", "threshold", "above_threshold", *INPUT_COLUMNS,
    "domain", "domain_reasons", "tree_p05", "tree_p95",
    "top_features", *FINDING_CSV_COLUMNS,
    "warnings", "error_type", "error", "model_id", "ct_sha256", "roi_sha256", "input_key", "seconds", "notice",
    "model_signer", "roi_source",
)


@dataclass(frozen=True)
class BatchSummary:
    n_cases: int
    n_ok: int
    n_error: int
    n_skipped: int
    seconds: float
    out_path: str


def _hashes(case: CaseInput) -> tuple[str, str, str | None]:
    """(ct sha256, roi sha256, problem): the hashes of everything the image reader reads
    (:func:`pipeline.io.detached.input_sha256`; ``""`` for a missing path), and why a file that exists
    cannot be opened (no permission, an I/O error), so that case fails in its own row instead of
    stopping the batch."""
    shas, problem = [], None
    for role, path in (("CT", case.ct_path), ("ROI mask", case.roi_path)):
        sha = ""
        if path and os.path.exists(path):
            try:
                sha = input_sha256(path)
            except OSError as exc:
                problem = problem or f"the {role} cannot be opened ({(exc.strerror or type(exc).__name__).lower()})"
        shas.append(sha)
    if not case.roi_path and shas[0]:  # the RTSTRUCT/SEG sits in the CT's DICOM folder: that hash covers it
        shas[1] = shas[0]
    return shas[0], shas[1], problem


def _key(case: CaseInput, ct_sha: str, roi_sha: str, model_id: str, label: int | None) -> str:
    payload = json.dumps({
        "ct": ct_sha, "roi": roi_sha, "clinical": asdict(case.clinical) if case.clinical else None,
        "problem": case.problem, "label": label, "model": model_id, "case_id": case.case_id,
        **({"roi_name": case.roi_name} if case.roi_name else {}),
        **({"seed_mm": list(case.seed_mm)} if getattr(case, "seed_mm", None) else {}),
    }, sort_keys=True)
    return bytes_sha256(payload.encode())


def input_key(case: CaseInput, model_id: str, label: int | None) -> tuple[str, str, str]:
    """(key, ct sha256, roi sha256): identity of a case's inputs for resuming."""
    ct_sha, roi_sha, _problem = _hashes(case)
    return _key(case, ct_sha, roi_sha, model_id, label), ct_sha, roi_sha


def _error_row(case_id: str, error_type: str, message: str) -> dict[str, Any]:
    return {"case_id": case_id, "status": "error", "error_type": error_type, "error": message}


def _ok_row(case_id: str, result) -> dict[str, Any]:  # noqa: ANN001
    top = result.explanation.top(3) if result.explanation is not None else []
    return {
        "case_id": case_id, "status": "ok", "probability": round(result.probability, 6),
        "risk_band": result.risk_band, "threshold": round(float(result.threshold), 6),
        "above_threshold": "yes" if result.probability >= result.threshold else "no",
        "domain": result.domain.status, "domain_reasons": " | ".join(result.domain.reasons),
        **(result.findings.csv_columns() if result.findings is not None else {}),
        "tree_p05": None if result.tree_p05 is None else round(result.tree_p05, 4),
        "tree_p95": None if result.tree_p95 is None else round(result.tree_p95, 4),
        "top_features": "; ".join(f"{n} ({s:+.3f})" for n, s, _v in top),
        "warnings": " | ".join(result.warnings), "error_type": "", "error": "",
        "roi_source": _roi_source_text(getattr(result, "roi_source", None)),
    }


def _roi_source_text(source: dict[str, Any] | None) -> str:
    """The results CSV's ``roi_source`` cell: "mask" or "semi-automatic from click X,Y,Z mm (method)"."""
    if not source:
        return "mask"
    x, y, z = source.get("seed_xyz_mm", ("?", "?", "?"))
    capped = "; capped" if source.get("capped") else ""
    return f"semi-automatic from click {x},{y},{z} mm LPS ({source.get('method', '')}{capped})"


# ---------------------------------------------------------------------------------------------
# worker side
_SCORER = None


def _worker_scorer(bundle_path: str, num_threads: int | None, allow_unsigned: bool | None = None):  # noqa: ANN202
    """A worker process's scorer (pool or Dask): bundle loaded, CNN threads set, memory trimmed.

    Torch is not imported here: a bundle with its ONNX backbone scores without it (importing it
    only to set its thread count cost 2–3 s per worker start); a torch backbone sets its own
    threads around each forward (``models.medicalnet``), and torch's global setting is applied
    too when the bundle loaded torch.
    """
    import sys

    from pipeline.serving.score import Scorer

    keep_freed_heap_for_reuse()
    scorer = Scorer(bundle_path, num_threads=num_threads, allow_unsigned=allow_unsigned)
    if num_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(num_threads)
    release_free_memory()
    return scorer


def _init_worker(bundle_path: str, num_threads: int | None, allow_unsigned: bool | None = None) -> None:
    global _SCORER
    _SCORER = _worker_scorer(bundle_path, num_threads, allow_unsigned)


def _score_in_worker(case: CaseInput, label: int | None, scorer=None,  # noqa: ANN001
                     dicom_out: str | None = None) -> dict[str, Any]:
    """Worker task: :func:`score_one` (the pool worker's scorer unless given), then give freed
    memory back if the case left the process large (:func:`release_free_memory_if_large`)."""
    try:
        return score_one(case, label, scorer, dicom_out=dicom_out)
    finally:
        release_free_memory_if_large()


def score_one(case: CaseInput, label: int | None, scorer=None, *, dicom_out: str | None = None  # noqa: ANN001
              ) -> dict[str, Any]:
    """Score one case into a result row; never raises for a bad case.

    DICOM inputs (a CT folder or zip, an RTSTRUCT/SEG as the ROI or inside the CT folder, the
    case's ``roi_name``) are resolved by :func:`pipeline.inputs.dicom_inputs.resolve_inputs`;
    ``dicom_out``: write the case's SEG/SR/PDF into ``dicom_out/<case_id>/``."""
    scorer = scorer or _SCORER
    t = time.perf_counter()
    if case.problem:
        row = _error_row(case.case_id, case.problem_type or "input", case.problem)
    else:
        try:
            result = _score_resolved(case, label, scorer, dicom_out)
            row = _ok_row(case.case_id, result)
        except PleuraRiskError as err:
            row = _error_row(case.case_id, err.code, str(err))
        except MemoryError:
            row = _error_row(case.case_id, "internal", "out of memory while scoring this case")
        except Exception as exc:  # noqa: BLE001 - a batch never stops for one case
            # an OSError's text names its file, which may carry a patient's name: keep only the reason
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            row = _error_row(case.case_id, "internal", f"internal error ({type(exc).__name__}): {detail}")
    if case.clinical is not None:
        row.update(zip(INPUT_COLUMNS, (case.clinical.cea_ng_ml, case.clinical.ca125_u_ml, case.clinical.age_years)))
    row["seconds"] = round(time.perf_counter() - t, 3)
    return row


def _score_resolved(case: CaseInput, label: int | None, scorer, dicom_out: str | None):  # noqa: ANN001, ANN202
    if case.seed_mm is not None:  # a click instead of a mask: segment, then score that ROI
        import dataclasses

        from pipeline.serving.semiauto import semiauto_roi

        with semiauto_roi(case.ct_path, seed_mm=case.seed_mm) as (roi_path, seg):
            result = _score_resolved(dataclasses.replace(case, roi_path=str(roi_path), seed_mm=None), label, scorer,
                                     dicom_out)
            return dataclasses.replace(result, roi_source=seg.provenance(),
                                       warnings=tuple(result.warnings) + tuple(seg.warnings))
    from pipeline.inputs.dicom_inputs import resolve_inputs

    with resolve_inputs(case.ct_path, case.roi_path, roi_name=case.roi_name) as inputs:
        if not dicom_out:  # the batch already hashed the inputs (input key); don't read the files twice
            return scorer.score(inputs.ct_path, inputs.roi_path, case.clinical, label=label, hash_inputs=False)
        from pipeline.inputs.case import load_case
        from pipeline.serving.dicom_out import write_dicom_results

        prepared = load_case(inputs.ct_path, inputs.roi_path, config=scorer.bundle.config, label=label,
                             hash_inputs=False, runtime=scorer.bundle.runtime)
        result = scorer.score_prepared(prepared, case.clinical)
        write_dicom_results(result, case=prepared, series=inputs.series, clinical=case.clinical,
                            out_dir=Path(dicom_out) / case.case_id, roi_name=inputs.roi_name)
        return result


# ---------------------------------------------------------------------------------------------
# atomic CSV
def write_csv_atomic(path: Path, rows: Iterable[dict[str, Any]], *, columns: Sequence[str] = RESULT_COLUMNS) -> None:
    """Write the results CSV (``columns``, default :data:`RESULT_COLUMNS`) via a temporary file +
    rename; text cells a spreadsheet would run as formulas get a leading ``'``
    (:func:`pipeline.serving.outputs.spreadsheet_safe`, which says how to recover the original)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else spreadsheet_safe(row.get(k))) for k in columns})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
def run_pool(tasks: Iterable[tuple[Any, str]], *, fn: Callable[..., dict[str, Any]], extra_args: tuple = (),
             workers: int, initializer: Callable[..., None], initargs: tuple,
             on_crash: Callable[[Any], dict[str, Any]], in_process_overlap: int = 1,
             ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (key, row) as ``fn(task, *extra_args)`` finishes for each (task, key).

    ``tasks`` is consumed lazily, a few ahead of the workers, so whatever produces them (the
    batch hashes each case's files for its resume key) overlaps the workers' start-up and work.
    ``workers`` ≤ 1 runs in this process (``initializer`` called once), with up to
    ``in_process_overlap`` tasks in flight in threads (only for an ``fn`` that is safe to run
    concurrently; see :func:`_overlapped`); otherwise a spawn-based process pool whose workers
    each run ``initializer`` once. Nothing is started when there is no task. A worker crash
    costs only the case(s) it was running (``on_crash(task)`` row); the pool is restarted for
    the rest.
    """
    source = iter(tasks)
    first = next(source, None)
    if first is None:
        return
    if workers <= 1:
        initializer(*initargs)
        if in_process_overlap > 1:
            yield from _overlapped(itertools.chain([first], source), fn=fn, extra_args=extra_args,
                                   in_flight=in_process_overlap)
            return
        for task, key in itertools.chain([first], source):
            yield key, fn(task, *extra_args)
        return
    retry: list[tuple[Any, str]] = [first]  # tasks to (re)submit before drawing new ones

    def next_task() -> tuple[Any, str] | None:
        return retry.pop(0) if retry else next(source, None)

    exhausted = False
    while not exhausted or retry:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_initializer,
                                 initargs=(initializer, initargs)) as pool, _stopped_on_exit(pool):
            futures: dict[Future, tuple[Any, str]] = {}
            broken = False
            while not broken:
                while not exhausted and len(futures) < 2 * workers:
                    item = next_task()
                    if item is None:
                        exhausted = True
                        break
                    futures[pool.submit(fn, item[0], *extra_args)] = item
                if not futures:
                    break
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    task, key = futures.pop(fut)
                    try:
                        row = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        row = on_crash(task)
                    yield key, row
            if broken:  # the pool is unusable: cases still in flight go back to the queue
                retry[:0] = list(futures.values())
                futures.clear()
                exhausted = False if retry else exhausted


def _overlapped(tasks: Iterator[tuple[Any, str]], *, fn: Callable[..., dict[str, Any]], extra_args: tuple,
                in_flight: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run ``fn`` on up to ``in_flight`` tasks at once in threads of this process, yielding
    (key, row) as each finishes; tasks are drawn here, in the caller's thread, one as a slot frees.

    This is for ``pleura batch --workers 1``: the :class:`~pipeline.serving.score.Scorer` lets one
    case at a time through features, scoring and SHAP, so a second case meanwhile reads and
    checks its images (gzip decompression, ITK and NumPy release the GIL): on 512×512×300 CTs the
    reading of the next case hides behind the current one's features. Leaving early (an
    exception, Ctrl-C, ``close()``) cancels the cases not started; a case already running ends
    before the process does.
    """
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="pleura-case")
    futures: dict[Future, str] = {}
    try:
        exhausted = False
        while True:
            while not exhausted and len(futures) < in_flight:
                item = next(tasks, None)
                if item is None:
                    exhausted = True
                    break
                futures[pool.submit(fn, item[0], *extra_args)] = item[1]
            if not futures:
                return
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in [f for f in futures if f in done]:  # submission order among those done
                yield futures.pop(fut), fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _pool_initializer(initializer: Callable[..., None], initargs: tuple) -> None:
    """A pool worker's start: leave Ctrl-C to the parent (which stops the pool), die with the
    parent (Linux ``PR_SET_PDEATHSIG``: a killed ``pleura batch`` leaves no ~0.7 GB orphan), then
    the real ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(1)
    initializer(*initargs)


@contextlib.contextmanager
def _stopped_on_exit(pool: ProcessPoolExecutor) -> Iterator[None]:
    """Stop ``pool``'s workers at once when the block is left by an exception (Ctrl-C, SIGTERM,
    the consumer closing the generator): ``ProcessPoolExecutor``'s own exit would wait for the
    cases in progress, minutes on a large CT, while the user asked to stop."""
    try:
        yield
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        pool.shutdown(wait=False, cancel_futures=True)
        raise


_DASK_SCORERS: dict[tuple[str, int | None, bool | None], Any] = {}


def score_one_cached(case: CaseInput, label: int | None, bundle_path: str, num_threads: int | None,
                     workers_per_host: dict[str, int] | None = None,
                     allow_unsigned: bool | None = None) -> dict[str, Any]:
    """Dask task: score one case with a Scorer cached per worker process (bundle loaded once).

    Without ``num_threads``, a worker uses its machine's cores divided by the number of worker
    processes there (``workers_per_host``, counted by the client from the scheduler), so two
    workers on one 2-core machine do not each run two torch threads.
    """
    if num_threads is None:
        num_threads = _threads_on_this_host(workers_per_host or {})
    key = (bundle_path, num_threads, allow_unsigned)
    if key not in _DASK_SCORERS:
        _DASK_SCORERS[key] = _worker_scorer(bundle_path, num_threads, allow_unsigned)
    return _score_in_worker(case, label, _DASK_SCORERS[key])


def workers_per_host(client: Any) -> dict[str, int]:  # noqa: ANN401 - a distributed.Client
    """Dask worker processes on each machine of the client's cluster (host → count)."""
    hosts = [info.get("host", "") for info in client.scheduler_info().get("workers", {}).values()]
    return {host: hosts.count(host) for host in set(hosts)}


def _threads_on_this_host(workers_per_host: dict[str, int]) -> int:
    """Cores of this machine / Dask worker processes on it (at least 1)."""
    cores = available_cores()
    try:
        from distributed import get_worker

        host = get_worker().address.split("://")[-1].rsplit(":", 1)[0]
    except (ImportError, ValueError):  # not inside a Dask worker
        return cores
    return threads_per_worker(max(1, workers_per_host.get(host, 1)), cores=cores)


def run_dask(tasks: Iterable[tuple[CaseInput, str]], *, scheduler: str | Any, bundle_path: str, label: int | None,
             num_threads: int | None, allow_unsigned: bool | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (key, row) as cases finish on a Dask distributed cluster.

    ``scheduler`` is an address (``tcp://host:8786``) or a ``distributed.Client``. Every worker
    must see the case files and the bundle at the same paths (shared filesystem). Each worker
    process loads the bundle once and reuses it. A task lost with its worker is retried once by
    Dask, then reported in its row.
    """
    source = iter(tasks)
    first = next(source, None)
    if first is None:
        return
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout="30s")
    try:
        per_host = workers_per_host(client)
        futures = {}
        for case, key in itertools.chain([first], source):
            fut = client.submit(score_one_cached, case, label, bundle_path, num_threads, per_host, allow_unsigned,
                                key=f"pleura-{key}", pure=False, retries=1)
            futures[fut] = (case, key)
        for fut in as_completed(futures):
            case, key = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - worker died twice, or similar
                row = _error_row(case.case_id, "internal", f"the Dask task for this case failed ({type(exc).__name__})")
            yield key, row
    finally:
        if not isinstance(scheduler, Client):
            client.close()


def _crash_row(case: CaseInput) -> dict[str, Any]:
    return _error_row(case.case_id, "internal", "the worker process scoring this case crashed (out of memory?)")


def score_cases(cases: Sequence[CaseInput], *, bundle_path: str | os.PathLike[str], workers: int = 1,
                num_threads: int | None = None, label: int | None = None,
                allow_unsigned: bool | None = None) -> list[dict[str, Any]]:
    """Score ``cases`` with the bundle at ``bundle_path``: one result row per case, in input order.

    Like :func:`run_batch` without its journal and CSV (nothing is written, nothing resumed):
    ``workers`` processes (≤ 1: this process) with ``num_threads`` torch threads each; a broken
    case or a crashed worker becomes that case's ``status=error`` row.
    """
    rows = dict(run_pool(((case, str(i)) for i, case in enumerate(cases)), fn=_score_in_worker, extra_args=(label,),
                         workers=workers, initializer=_init_worker,
                         initargs=(str(bundle_path), num_threads, allow_unsigned), on_crash=_crash_row,
                         in_process_overlap=2))
    return [rows[str(i)] for i in range(len(cases))]


def run_batch(cases: list[CaseInput], *, out_path: str | os.PathLike[str], bundle_path: str | os.PathLike[str],
              model_id: str, notice: str = "", workers: int = 1, label: int | None = None, num_threads: int | None = None,
              progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
              scheduler: str | Any | None = None, dicom_out: str | os.PathLike[str] | None = None,
              signer: str = "", allow_unsigned: bool | None = None) -> BatchSummary:
    """Score ``cases`` into ``out_path`` (CSV), resuming from its journal. See module docstring.

    ``signer`` (who signed the model, or "unsigned model …") goes into every row's ``model_signer``
    next to ``model_id`` and ``notice``; ``allow_unsigned`` is passed to the workers' bundle loading.

    Before any work, ``out_path`` is checked (:func:`pipeline.serving.outputs.check_output`: not a folder,
    not an input, writable) and locked for the whole run (:class:`pipeline.serving.outputs.OutputLock`:
    a second run on it is refused, naming the holder). Interrupted (Ctrl-C, SIGTERM turned into
    an exception by the caller), the workers are stopped at once and the CSV is written from the
    journal, so running the same command again resumes.

    Raises:
        OutputError: ``out_path`` is unsafe, locked by another run, or not writable.
        ValueError: ``workers`` or ``num_threads`` below 1.
    """
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"the number of threads per worker must be at least 1 (got {num_threads})")
    if workers < 1:
        raise ValueError(f"the number of workers must be at least 1 (got {workers})")
    if dicom_out and scheduler is not None:
        raise ValueError("--dicom-out is not available with a Dask scheduler; run the batch with local workers")
    t0 = time.perf_counter()
    out = check_output(out_path, inputs=[p for c in cases for p in (c.ct_path, c.roi_path)],
                       folders=[bundle_path, *(p for c in cases for p in (c.ct_path, c.roi_path)
                                               if p and os.path.isdir(p))])
    with OutputLock(out):
        return _run_locked(cases, out=out, t0=t0, bundle_path=bundle_path, model_id=model_id, notice=notice,
                           workers=workers, label=label, num_threads=num_threads, progress=progress,
                           scheduler=scheduler, dicom_out=dicom_out, signer=signer, allow_unsigned=allow_unsigned)


def _run_locked(cases: list[CaseInput], *, out: Path, t0: float, bundle_path: str | os.PathLike[str], model_id: str,
                notice: str, workers: int, label: int | None, num_threads: int | None,
                progress: Callable[[int, int, dict[str, Any] | None], None] | None,
                scheduler: str | Any | None, dicom_out: str | os.PathLike[str] | None = None, signer: str = "",
                allow_unsigned: bool | None = None) -> BatchSummary:
    journal_path = journal_file(out)
    previous = read_journal(journal_path)
    total = len(cases)
    keys: list[str] = []  # input keys in manifest order, filled as the cases are hashed
    meta: dict[str, tuple[str, str]] = {}
    current: dict[str, dict[str, Any]] = {}
    skipped = 0

    def pending() -> Iterator[tuple[CaseInput, str]]:
        # Each case's files are hashed (its resume key) only when the workers are about to need
        # it, so hashing overlaps their start-up and work instead of delaying it (≈ 0.07 s per
        # 512×512×300 case: over a minute before the first case of a 1000-case cohort).
        nonlocal skipped
        for case in cases:
            ct_sha, roi_sha, problem = _hashes(case)
            if problem and not case.problem:
                case = replace(case, problem=problem, problem_type="read")
            key = _key(case, ct_sha, roi_sha, model_id, label)
            keys.append(key)
            meta[key] = (ct_sha, roi_sha)
            row = previous.get(key)
            if row is not None and row.get("error_type") != "internal":
                current[key] = row  # done in an earlier run: kept, not scored again
                skipped += 1
                if progress:
                    progress(len(current), total, None)
            else:
                yield case, key

    def rows_in_order() -> list[dict[str, Any]]:
        return [current[key] for key in keys if key in current]

    if progress:
        progress(0, total, None)
    last_write = 0.0
    with open_journal(journal_path) as journal:
        if scheduler is not None:
            results = run_dask(pending(), scheduler=scheduler, bundle_path=str(Path(bundle_path).resolve()),
                               label=label, num_threads=num_threads, allow_unsigned=allow_unsigned)
        else:
            results = run_pool(pending(), fn=_score_in_worker,
                               extra_args=(label, None, str(dicom_out) if dicom_out else None), workers=workers,
                               initializer=_init_worker, initargs=(str(bundle_path), num_threads, allow_unsigned),
                               on_crash=_crash_row, in_process_overlap=2)
        try:
            for key, row in results:
                ct_sha, roi_sha = meta[key]
                row.update({"input_key": key, "model_id": model_id, "ct_sha256": ct_sha, "roi_sha256": roi_sha,
                            "notice": notice, "model_signer": signer})
                append_journal(journal, row)
                current[key] = row
                if progress:
                    progress(len(current), total, row)
                if time.monotonic() - last_write > 1.0:
                    write_csv_atomic(out, rows_in_order())
                    last_write = time.monotonic()
        except BaseException:
            results.close()  # stops the workers now (run_pool), not when garbage-collected
            write_csv_atomic(out, rows_in_order())  # what is done so far; a re-run resumes
            raise
    rows = rows_in_order()
    write_csv_atomic(out, rows)
    n_ok = sum(1 for r in rows if r.get("status") == "ok")
    return BatchSummary(len(rows), n_ok, len(rows) - n_ok, skipped, time.perf_counter() - t0, str(out))
