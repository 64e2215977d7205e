"""``pleura batch --scheduler``: cases run as tasks on a Dask distributed cluster (LocalCluster)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.serving.batch import run_batch
from pipeline.serving.bundle import verify_bundle
from pipeline.inputs.cohort import discover_cases


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c, distributed.Client(c) as client:
        yield client


def test_dask_batch_matches_local_batch(cluster, tiny_bundle: Path, phantom_cohort: Path, tmp_path: Path):
    rows = list(csv.DictReader(phantom_cohort.open()))[:4]
    clinical = tmp_path / "clinical.csv"
    with clinical.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "CEA", "CA125", "age"])
        for r in rows:
            w.writerow([r["case_id"], r["CEA"], r["CA125"], r["age"]])
        w.writerow(["ghost", "1", "1", "50"])  # clinical row without images: reported, not lost
    cases = discover_cases(phantom_cohort.parent, clinical_csv=clinical)
    cases = [c for c in cases if c.case_id in {r["case_id"] for r in rows} | {"ghost"}]
    _, model_id = verify_bundle(tiny_bundle)
    dask_out, local_out = tmp_path / "dask.csv", tmp_path / "local.csv"
    s1 = run_batch(cases, out_path=dask_out, bundle_path=tiny_bundle, model_id=model_id, scheduler=cluster)
    s2 = run_batch(cases, out_path=local_out, bundle_path=tiny_bundle, model_id=model_id, workers=1)
    assert (s1.n_ok, s1.n_error) == (4, 1) == (s2.n_ok, s2.n_error)
    a = [(r["case_id"], r["status"], r["probability"]) for r in csv.DictReader(dask_out.open())]
    b = [(r["case_id"], r["status"], r["probability"]) for r in csv.DictReader(local_out.open())]
    assert a == b
    # resuming on the cluster skips everything
    s3 = run_batch(cases, out_path=dask_out, bundle_path=tiny_bundle, model_id=model_id, scheduler=cluster)
    assert s3.n_skipped == 5


def test_each_dask_worker_takes_its_share_of_its_machines_cores(cluster):
    """Two workers on one machine: torch threads = cores // 2 each (not all cores each)."""
    import os

    from pipeline.serving.batch import _threads_on_this_host, workers_per_host

    cores = len(os.sched_getaffinity(0))
    per_host = workers_per_host(cluster)
    assert list(per_host.values()) == [2]
    shares = [cluster.submit(_threads_on_this_host, per_host, pure=False, workers=[address]).result()
              for address in cluster.scheduler_info()["workers"]]  # as a task, like a case
    assert shares == [max(1, cores // 2)] * 2
    assert _threads_on_this_host(per_host) == cores  # outside a worker: the whole machine
