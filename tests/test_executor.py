"""The executor layer without a cluster: choosing the backend, order, errors (tests/test_dask.py has the cluster)."""

from __future__ import annotations

import sys

import pytest

from wbench.executor import (
    SCHEDULER_ENV,
    DaskMissingError,
    LocalExecutor,
    TaskFailedError,
    executor_for,
    map_ordered,
    open_executor,
    use_executor,
)


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        error = ValueError("three is not allowed")
        error.wbench_item = 7  # the item inside the task that failed
        raise error
    return x


def test_local_map_keeps_the_order_in_process_and_in_a_pool() -> None:
    tasks = [(i,) for i in range(10)]
    assert map_ordered(LocalExecutor(1), _square, tasks) == [i * i for i in range(10)]
    assert map_ordered(LocalExecutor(2), _square, tasks) == [i * i for i in range(10)]
    unordered = dict(LocalExecutor(2).map(_square, tasks, ordered=False))
    assert unordered == {i: i * i for i in range(10)}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_task_says_which_where_and_why(n_jobs: int) -> None:
    with pytest.raises(TaskFailedError) as info:
        map_ordered(LocalExecutor(n_jobs), _fail_on_three, [(i,) for i in range(5)])
    error = info.value
    assert (error.index, error.item, error.summary) == (3, 7, "ValueError: three is not allowed")
    assert "process" in error.where and "in _fail_on_three" in error.remote_traceback
    assert str(error).startswith("task 3 failed on ") and "worker traceback:" in str(error)


def test_errors_return_keeps_the_other_results() -> None:
    results = dict(LocalExecutor(1).map(_fail_on_three, [(i,) for i in range(5)], errors="return"))
    assert [results[i] for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    assert isinstance(results[3], TaskFailedError)


def test_the_backend_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert open_executor(None, 1).kind == "local"
    monkeypatch.setenv(SCHEDULER_ENV, "local")
    assert open_executor(None, 1).kind == "local"
    assert open_executor("local", 1).kind == "local"
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `wbench[dask]` were not installed
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.1:8786")
    with pytest.raises(DaskMissingError, match=r'pip install "wbench\[dask\]"'):
        open_executor(None, 1)
    with pytest.raises(DaskMissingError, match="distributed"):
        open_executor("tcp://127.0.0.1:8786", 1)


def test_a_current_executor_is_used_without_new_arguments() -> None:
    chosen = LocalExecutor(1, max_workers=1)
    with use_executor(chosen):
        with executor_for(None, n_jobs=-1) as executor:
            assert isinstance(executor, LocalExecutor) and executor.n_workers == 1  # the bound holds
        with executor_for("local", n_jobs=1) as executor:  # an explicit scheduler wins
            assert executor is not chosen
    with executor_for(None, n_jobs=1) as executor:  # outside the block: a fresh one
        assert executor is not chosen
