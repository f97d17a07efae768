"""The Dask backend: a LocalCluster of 2 worker processes on loopback gives the local results.

Ground truth bit for bit (digits, an MNIST subset), a worker killed mid-oracle, an
unreachable scheduler, and a small ``wbench run`` whose records match a local run's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES

import wbench.oracle.solve as oracle
from wbench.cli.main import main
from wbench.executor import DaskExecutor, SchedulerUnreachableError, TaskFailedError, use_executor
from wbench.measures import MeasureBatch
from wbench.oracle.groundtruth import compute_ground_truth
from wbench.oracle.solve import OracleError, exact_w2sq
from wbench.records.store import RecordStore

distributed = pytest.importorskip("distributed", reason='the Dask backend needs distributed: pip install "wbench[dask]"')

LOCAL = str(FIXTURES / "local_plugin.py")


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    )
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test jobs go to the workers too (not the in-process fast path)."""
    monkeypatch.setattr(oracle, "PARALLEL_MIN_SECONDS", 0.0)


def _oracle_tasks_during(client: distributed.Client, work) -> tuple[object, list[dict]]:
    """``work()`` and the oracle tasks the scheduler ran meanwhile (with the worker of each)."""
    with distributed.get_task_stream(client=client) as stream:
        result = work()
    return result, [t for t in stream.data if str(t["key"]).startswith("wbench-oracle")]


def _ground_truth(dataset, cache_dir: Path, scheduler: str | None = None) -> dict[str, np.ndarray]:
    gt = compute_ground_truth(dataset, cache_dir=cache_dir, n_jobs=1, progress=False, scheduler=scheduler)
    assert not gt.cache.hit
    return {name: pairs.w2sq for name, pairs in gt.dataset.pairs.items()}


@pytest.mark.slow
def test_digits_ground_truth_is_bitwise_the_local_one(cluster, client, always_parallel, tmp_path: Path) -> None:
    from wbench_plugins.datasets.digits import DigitsDataset

    dataset = DigitsDataset().build()
    local = _ground_truth(dataset, tmp_path / "local")
    remote, tasks = _oracle_tasks_during(client, lambda: _ground_truth(dataset, tmp_path / "dask", cluster.scheduler_address))
    assert len(tasks) >= 2 and {t["worker"] for t in tasks} <= set(client.nthreads())
    assert sum(len(v) for v in local.values()) == 2200
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name])  # bit for bit
    assert list((tmp_path / "dask").rglob("*.npz"))  # the client wrote the cache


@pytest.mark.slow
@pytest.mark.mnist
def test_mnist_subset_ground_truth_is_bitwise_the_local_one(cluster, client, always_parallel, mnist_root, tmp_path) -> None:
    from wbench_plugins.datasets.mnist import MnistDataset

    dataset = MnistDataset(root=str(mnist_root), pairs_per_combination=4).build()
    local = _ground_truth(dataset, tmp_path / "local")
    remote, tasks = _oracle_tasks_during(client, lambda: _ground_truth(dataset, tmp_path / "dask", cluster.scheduler_address))
    # The cluster ran the LP (which of the 2 workers takes each task is the scheduler's
    # choice: on a loaded machine one worker may take them all, as CI once showed).
    assert len(tasks) >= 2 and {t["worker"] for t in tasks} <= set(client.nthreads())
    assert sum(len(v) for v in local.values()) == 220
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name])


def _point_clouds(n: int = 30, k: int = 120, seed: int = 0) -> MeasureBatch:
    rng = np.random.default_rng(seed)
    return MeasureBatch(torch.ones(n, k, dtype=torch.float64), torch.tensor(rng.normal(size=(n, k, 2))))


@pytest.mark.slow
def test_a_worker_killed_mid_oracle_loses_and_duplicates_nothing(cluster, client, always_parallel) -> None:
    batch = _point_clouds()
    left, right = np.triu_indices(len(batch), 1)  # 435 pairs of 120-point clouds: ~1 s of LP
    local = exact_w2sq(batch, left, right, n_jobs=1, progress=False)
    out: dict[str, np.ndarray] = {}
    runner = threading.Thread(
        target=lambda: out.update(v=exact_w2sq(batch, left, right, progress=False, scheduler=cluster.scheduler_address))
    )
    pids = client.run(os.getpid)
    runner.start()
    deadline, busy = time.monotonic() + 30, []
    while not busy and time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items() if any(str(k).startswith("wbench-oracle") for k in keys)]
        time.sleep(0.02)
    assert busy, "no oracle task reached a worker"
    os.kill(pids[busy[0]], signal.SIGKILL)  # mid-task: the nanny restarts it, the scheduler reruns its tasks
    assert runner.is_alive()
    runner.join(timeout=60)
    assert not runner.is_alive()
    np.testing.assert_array_equal(out["v"], local)  # complete and identical


def test_unreachable_scheduler_fails_fast_naming_the_address(always_parallel, capsys) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    began = time.monotonic()
    with pytest.raises(SchedulerUnreachableError, match=f"cannot reach the Dask scheduler at {address}"):
        exact_w2sq(_point_clouds(n=4, k=5), [0, 1], [2, 3], scheduler=address)
    assert main(["prepare", "--dataset", "digits", "--scheduler", address]) == 2
    assert f"cannot reach the Dask scheduler at {address}" in capsys.readouterr().err
    missing = "/no/such/scheduler.json"
    assert main(["prepare", "--dataset", "digits", "--scheduler", missing]) == 2
    assert f"scheduler file {missing} does not exist" in capsys.readouterr().err
    assert time.monotonic() - began < 10


def _serve(handler) -> tuple[str, socket.socket]:
    """A TCP server on 127.0.0.1 answering each connection with ``handler(conn)`` (a thread)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                handler(conn)

    threading.Thread(target=loop, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}", server


def test_an_address_that_answers_but_is_not_a_scheduler_says_what_answered(capsys) -> None:
    def banner(conn: socket.socket) -> None:  # speaks first, like an SSH server
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        time.sleep(0.5)

    def web(conn: socket.socket) -> None:  # waits for a request, like a web server
        conn.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(1024)
            if not chunk:
                return
            request += chunk
        conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    address, server = _serve(banner)
    with server:
        host_port = address.removeprefix("tcp://")
        with pytest.raises(SchedulerUnreachableError, match=re.escape(f"{host_port} answered but is not a Dask scheduler (got b'SSH-2.0")):
            DaskExecutor(address, timeout=3)
    address, server = _serve(web)
    with server:
        assert main(["prepare", "--dataset", "digits", "--scheduler", address]) == 2
        err = capsys.readouterr().err
        assert "answered but is not a Dask scheduler (got an HTTP response: 'HTTP/1.0 404 Not Found')" in err
        assert "MemoryError" not in err


def test_prepare_says_a_small_job_ran_in_this_process_not_on_the_cluster(tmp_path, capsys) -> None:
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=None,
    ) as cluster:
        argv = ["prepare", "--plugin", LOCAL, "--dataset", "toy-blobs", "--param", "n=6", "--param", "n_pairs=10",
                "--scheduler", cluster.scheduler_address, "--cache-dir", str(tmp_path)]
        assert main(argv) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("oracle")]
    assert "in this process: about" in line and "dask" not in line


@pytest.mark.slow
def test_a_failing_task_names_the_pair_and_carries_the_worker_traceback(client, always_parallel) -> None:
    def break_workers() -> None:  # runs on each worker (nested: it travels by value)
        import wbench.oracle.lp as worker_lp

        def failing(*args):
            raise FloatingPointError("deliberate failure")

        worker_lp._real_solve_one = worker_lp._solve_one
        worker_lp._solve_one = failing

    def repair_workers() -> None:
        import wbench.oracle.lp as worker_lp

        worker_lp._solve_one = worker_lp._real_solve_one

    client.wait_for_workers(2, timeout=30)
    client.run(break_workers)
    try:
        with use_executor(DaskExecutor(client=client)), pytest.raises(OracleError) as info:
            exact_w2sq(_point_clouds(n=6, k=5), [0, 2, 4], [1, 3, 5])
    finally:
        client.run(repair_workers)
    message = str(info.value)
    named = re.search(r"exact W2 failed for pair (\d) \(measures (\d) and (\d)\) on Dask worker tcp://127\.0\.0\.1:", message)
    assert named, message  # whichever of the three pairs failed first
    pair, a, b = map(int, named.groups())
    assert (a, b) == ([0, 2, 4][pair], [1, 3, 5][pair])
    assert "FloatingPointError: deliberate failure" in message and "worker traceback:" in message
    assert "in solve_chunk" in message
    assert isinstance(info.value.__cause__, TaskFailedError)


TOY_SUITE = """
[suite]
name = "toy"
seeds = [0, 1]

[budget]
steps = 3
batch_size = 16

[evaluation]
independent_pairs = 32
pairwise_size = 8
exact_independent_pairs = 8
exact_pairwise_size = 4
timing_rounds = 1
min_round_s = 0.005
direct_n = [4]
speedup_sides = ["one_core"]
plots = false
options = { n_queries = 5, n_database = 15, k = 3, n_triplets = 30, n_symmetry = 30 }

[[datasets]]
name = "toy-blobs"
params = { n = 20, n_pairs = 60 }

[[surrogates]]
name = "local-centroid"

[[surrogates]]
name = "naive"
params = { width = 40 }

[[surrogates]]
name = "failing"
"""


def _records(run_dir: Path) -> dict[tuple[str, int], dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return {(r["method"], r["seed"]): r for r in map(json.loads, lines)}


@pytest.mark.slow
def test_a_small_run_through_the_cluster_gives_the_local_records(cluster, tmp_path: Path, one_torch_thread) -> None:
    suite = tmp_path / "toy.toml"
    suite.write_text(TOY_SUITE)
    local_dir, dask_dir = tmp_path / "local", tmp_path / "dask"
    # the "failing" fixture fails its cells, so each run exits with status 1. Only the cluster
    # run ends with the timing pass (it times the models the client wrote from the workers'
    # bytes); the timing pass never changes records, and the local reference and the resume
    # need none (tests/test_timing_pass.py times local runs).
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(local_dir), "--no-timing"]) == 1
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(dask_dir), "--scheduler", cluster.scheduler_address]) == 1
    local, remote = _records(local_dir), _records(dask_dir)
    assert set(local) == set(remote) == {
        ("local-centroid", 0), ("naive", 0), ("naive", 1), ("failing", 0), ("failing", 1)
    }
    for cell, want in local.items():
        got = remote[cell]
        assert (got["key"], got["status"], got.get("n_parameters")) == (
            want["key"], want["status"], want.get("n_parameters"),
        )
        if want["status"] != "ok":
            assert "deliberate failure during fit" in got["error"]
            continue
        assert got["metrics"].keys() == want["metrics"].keys()
        for name, value in want["metrics"].items():  # learned models: 1 torch thread on both sides
            assert got["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
        assert got["throughput"].keys() == want["throughput"].keys()  # timings differ, the figures exist
        assert got["artifacts"] == want["artifacts"]
        for artifact in got["artifacts"]:  # written by the client from the worker's bytes
            assert (dask_dir / artifact).is_file()
        assert got["provenance"]["dask_worker"]["threads"] == 1 and "dask_worker" not in want["provenance"]
        assert got["provenance"]["torch_threads"] == 1
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(dask_dir), "--scheduler", cluster.scheduler_address,
                 "--resume", "--no-timing"]) == 1
    # resume: the 2 failed cells re-run and their new lines are appended; each cell still reads as one record
    assert len((dask_dir / "records.jsonl").read_text().splitlines()) == 7
    assert len(RecordStore(dask_dir).load()) == 5
