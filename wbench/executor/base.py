"""Where work runs: in this process, in a local process pool (joblib), or on a Dask cluster.

wbench's parallel work (the oracle's chunks of pairs, the reference solvers' chunks, the
cells of a suite) is a list of tasks, each a pure function of its arguments. An
:class:`Executor` runs such a list and yields the results; the caller never knows where
they ran. Two implementations:

* :class:`LocalExecutor` (the default, no extra dependency): a joblib process pool of
  ``n_jobs`` workers on this machine, or this process when one worker is enough.
* :class:`DaskExecutor` (in :mod:`wbench.executor.dask`, importable from :mod:`wbench.executor`): a Dask
  ``distributed`` cluster, reached through a scheduler
  address (``tcp://host:8786``) or a scheduler file. Dask does the scheduling, the retries
  of tasks whose worker died (``distributed.scheduler.allowed-failures``) and the data
  movement. Needs ``pip install "wbench[dask]"``.

The backend is chosen at run time: ``--scheduler ADDRESS`` on ``wbench prepare`` and
``wbench run``, or the environment variable ``WBENCH_SCHEDULER``
(:data:`SCHEDULER_ENV`); without either, work stays local. Code that runs a whole job
(the runner, ``wbench prepare``) opens one executor with :func:`open_executor` and makes
it current with :func:`use_executor`; library functions called inside pick it up through
:func:`executor_for` without new arguments.

Inside a task on a Dask worker, nested work never reaches back to the cluster: it runs
on that worker, on at most as many processes as the worker has threads (the cores it was
given), so a task never takes cores that belong to other tasks.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import platform
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from joblib import Parallel, delayed, effective_n_jobs

from wbench.errors import WbenchError

SCHEDULER_ENV = "WBENCH_SCHEDULER"
"""Environment variable naming the Dask scheduler (address or scheduler file) to use by default."""

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for the Dask scheduler before :class:`SchedulerUnreachableError`."""

DEFAULT_PORT = 8786
"""The Dask scheduler's port when an address names none."""

LOCAL_NAMES = frozenset({"", "local", "none"})
"""Scheduler values that mean "this machine, no Dask" (e.g. ``WBENCH_SCHEDULER=local``)."""


class SchedulerUnreachableError(WbenchError, ConnectionError):
    """The Dask scheduler at the given address (or scheduler file) does not answer."""


class DaskMissingError(WbenchError, ImportError):
    """A Dask scheduler was requested but ``distributed`` is not installed."""


class TaskFailedError(WbenchError, RuntimeError):
    """A task raised (or lost its workers too often); carries where and the worker's traceback.

    :param index: the task's position in the list given to :meth:`Executor.map`.
    :param where: the process that ran it (Dask worker address or pid, and host).
    :param summary: ``"ExceptionType: message"`` of the original error.
    :param remote_traceback: the traceback as formatted where the task ran.
    :param item: the item inside the task that failed (e.g. a pair of an oracle chunk), when known.
    """

    def __init__(self, index: int, where: str, summary: str, remote_traceback: str = "", item: int | None = None):
        super().__init__(index, where, summary, remote_traceback, item)
        self.index, self.where, self.summary = index, where, summary
        self.remote_traceback, self.item = remote_traceback, item

    def __str__(self) -> str:
        text = f"task {self.index} failed on {self.where}: {self.summary}"
        if self.remote_traceback:
            text += "\nworker traceback:\n" + self.remote_traceback.rstrip()
        return text


@runtime_checkable
class Executor(Protocol):
    """Runs lists of independent tasks; the results do not depend on where they ran."""

    kind: str
    """``"local"`` or ``"dask"``."""

    @property
    def n_workers(self) -> int:
        """Tasks that can run at once (processes, or Dask worker threads); for chunk sizing."""
        ...

    def share(self, value: Any) -> Any:
        """A handle to pass as a task argument in place of ``value`` (big data shared by
        many tasks): Dask sends it to each worker once; locally it is ``value`` itself."""
        ...

    def map(
        self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...]], *, ordered: bool = True,
        resources: dict[str, float] | None = None, name: str = "wbench", errors: str = "raise",
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(*task)`` for every task; yield ``(index, result)``.

        :param ordered: yield in task order (else as tasks complete).
        :param resources: Dask worker resources each task holds while it runs (ignored
            locally); every worker is given one unit of each named resource it lacks.
        :param name: prefix of the task keys (what a Dask dashboard shows).
        :param errors: ``"raise"``: the first failure raises :class:`TaskFailedError` and
            cancels the other tasks; ``"return"``: a failed task's result is its
            :class:`TaskFailedError` and the others go on.
        """
        ...

    def describe(self) -> str:
        """One line for the user: the backend, its address and its workers."""
        ...

    def close(self) -> None:
        """Release what this executor opened (a Dask client it created)."""
        ...


# --------------------------------------------------------------------------- tasks


def where() -> str:
    """The process running this code, as error messages name it."""
    worker = _dask_worker()
    if worker is not None:
        return f"Dask worker {worker.address} (host {platform.node()}, pid {os.getpid()})"
    return f"process {os.getpid()} on {platform.node()}"


def _run_task(fn: Callable[..., Any], index: int, args: tuple[Any, ...]) -> Any:
    """Run one task; any exception becomes a picklable :class:`TaskFailedError` with the traceback.

    A task function may set ``exc.wbench_item`` on the exception it lets escape to say which
    item of the task failed.
    """
    try:
        return fn(*args)
    except Exception as exc:
        raise TaskFailedError(
            index, where(), f"{type(exc).__name__}: {exc}", traceback.format_exc(), getattr(exc, "wbench_item", None)
        ) from exc


def _dask_worker() -> Any:
    """The Dask worker running this code, or None (never imports ``distributed``)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except (ValueError, ImportError):
        return None


def worker_threads() -> int | None:
    """Threads (cores) of the Dask worker running this code, or None outside a worker."""
    worker = _dask_worker()
    return None if worker is None else int(worker.state.nthreads)


# --------------------------------------------------------------------------- local


class LocalExecutor:
    """This machine: a joblib process pool of ``n_jobs`` workers, or this process.

    :param n_jobs: joblib's convention: -1 = all cores, 1 = in this process.
    :param max_workers: an upper bound on the processes (the cores of the Dask worker a
        task runs on); None = no bound.
    """

    kind = "local"

    def __init__(self, n_jobs: int = -1, *, max_workers: int | None = None):
        self.n_jobs = int(n_jobs)
        self.max_workers = max_workers

    @property
    def n_workers(self) -> int:
        workers = max(1, effective_n_jobs(self.n_jobs))
        return workers if self.max_workers is None else max(1, min(workers, self.max_workers))

    def with_jobs(self, n_jobs: int) -> LocalExecutor:
        """The same bound with another ``n_jobs``."""
        return LocalExecutor(n_jobs, max_workers=self.max_workers)

    def share(self, value: Any) -> Any:
        return value

    def map(
        self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...]], *, ordered: bool = True,
        resources: dict[str, float] | None = None, name: str = "wbench", errors: str = "raise",
    ) -> Iterator[tuple[int, Any]]:
        capture = _check_errors(errors)
        workers = self.n_workers
        if workers <= 1:
            for index, args in enumerate(tasks):
                yield _indexed_task(fn, index, args, capture)
            return
        parallel = Parallel(n_jobs=workers, return_as="generator" if ordered else "generator_unordered", max_nbytes=None)
        yield from parallel(delayed(_indexed_task)(fn, index, args, capture) for index, args in enumerate(tasks))

    def describe(self) -> str:
        return f"local, {self.n_workers} process{'es' if self.n_workers > 1 else ''}"

    def close(self) -> None:
        pass


def _indexed_task(fn: Callable[..., Any], index: int, args: tuple[Any, ...], capture: bool = False) -> tuple[int, Any]:
    try:
        return index, _run_task(fn, index, args)
    except TaskFailedError as exc:
        if capture:
            return index, exc
        raise


def _check_errors(errors: str) -> bool:
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    return errors == "return"


# --------------------------------------------------------------------------- choosing

_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("wbench_executor", default=None)


def scheduler_from_env() -> str | None:
    """``$WBENCH_SCHEDULER`` when it names a scheduler, else None."""
    value = os.environ.get(SCHEDULER_ENV, "").strip()
    return None if value.lower() in LOCAL_NAMES else value


@contextlib.contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Make ``executor`` current for the code inside the ``with`` block (does not close it)."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def map_ordered(executor: Executor, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """``[fn(*task) for task in tasks]`` through ``executor``, in task order."""
    out: list[Any] = [None] * len(tasks)
    for index, result in executor.map(fn, tasks, ordered=True, **kwargs):
        out[index] = result
    return out
