"""Where work runs: this process, a local process pool (joblib), or a Dask cluster.

The public face of the executor stage: :func:`executor_for` and :func:`map_ordered` run a
list of tasks on the current executor (what a plugin uses to parallelise its own solves);
:func:`open_executor` and :func:`use_executor` choose one for a whole job. The local pool is
in :mod:`wbench.executor.base`, the Dask backend in :mod:`wbench.executor.dask`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from wbench.executor.base import (  # noqa: F401 (re-exported: the stage's public names)
    _CURRENT,
    CONNECT_TIMEOUT_S,
    DEFAULT_PORT,
    LOCAL_NAMES,
    SCHEDULER_ENV,
    DaskMissingError,
    Executor,
    LocalExecutor,
    SchedulerUnreachableError,
    TaskFailedError,
    map_ordered,
    scheduler_from_env,
    use_executor,
    where,
    worker_threads,
)
from wbench.executor.dask import DaskExecutor, NotADaskSchedulerError  # noqa: F401


def open_executor(scheduler: str | os.PathLike[str] | None = None, n_jobs: int = -1) -> Executor:
    """A new executor: Dask when ``scheduler`` (else ``$WBENCH_SCHEDULER``) names one, else local.

    Inside a task on a Dask worker, always a :class:`LocalExecutor` bounded by the worker's
    threads: nested work stays on the cores of the task's worker.

    :param scheduler: a scheduler address, a scheduler file, or ``"local"``; None: the environment.
    :param n_jobs: local processes (joblib's convention, -1 = all cores); ignored by Dask.
    The caller closes the executor (or uses it as ``with contextlib.closing(...)``).
    """
    threads = worker_threads()
    if threads is not None:
        return LocalExecutor(n_jobs, max_workers=threads)
    target = scheduler_from_env() if scheduler is None else str(scheduler).strip()
    if target is None or target.lower() in LOCAL_NAMES:
        return LocalExecutor(n_jobs)
    return DaskExecutor(target)


@contextlib.contextmanager
def executor_for(scheduler: str | os.PathLike[str] | None = None, n_jobs: int = -1) -> Iterator[Executor]:
    """The executor a function should use, closed afterwards if it was opened here.

    ``scheduler`` given: that one (opened and closed here). Else the current executor
    (:func:`use_executor`; a local one takes ``n_jobs``), else the one named by
    ``$WBENCH_SCHEDULER``, else a :class:`LocalExecutor` of ``n_jobs`` processes.
    """
    current = _CURRENT.get()
    if scheduler is None and current is not None:
        yield current.with_jobs(n_jobs) if isinstance(current, LocalExecutor) else current
        return
    executor = open_executor(scheduler, n_jobs)
    try:
        yield executor
    finally:
        executor.close()
