"""Exact squared Wasserstein-2 distances between discrete measures (the ground truth).

The oracle solves the optimal-transport linear program with POT's network simplex
(:func:`ot.emd2`) in float64, with the squared Euclidean ground cost
``c(x, y) = |x - y|^2`` in the ground-cost units of the measures (pixels for images, so
W2^2 is in pixel^2).

* Histograms on a grid: each pair is solved on the *supports* of its two measures only
  (the pixels with positive mass). Zero-mass pixels carry no flow, so the value equals
  the full ``H*W x H*W`` problem and is far cheaper (MNIST: about 150 x 150 instead of
  784 x 784).
* Weighted point clouds in any dimension ``D``: the same, on each measure's points with
  positive mass (padding points of weight 0 are dropped).

Every measure's support points and masses are extracted once, as float64 numpy arrays in a
compact table (:class:`SupportTable`); the masses are renormalised in float64 so that each
measure sums to 1 (unnormalised input is therefore accepted). Pairs are de-duplicated
(W2 is symmetric; a measure against itself is exactly 0) and solved in chunks through an
executor (:mod:`wbench.executor.base`): on all cores through joblib by default, or on a Dask
cluster (``scheduler=`` / ``$WBENCH_SCHEDULER``). Each task is a pure function of compact
arrays and every pair is solved on the same arrays wherever it runs, so the values are
bitwise identical on every backend.

A pair whose LP stops before optimality (POT result code ``MAX_ITER_REACHED``) is solved
again with a :data:`RETRY_FACTOR` times larger iteration budget; if it still is not
optimal, :class:`OracleError` names the pair. A non-optimal value is never returned.

Public functions:

* :func:`exact_w2sq` — ``(P,)`` for pairs ``(left[p], right[p])`` of one batch.
* :func:`exact_w2sq_between` — ``(B,)`` for row-aligned batches ``a[i], b[i]``.
* :func:`exact_w2sq_block` — ``(n, m)`` for all pairs ``rows x cols`` of one batch.
* :func:`exact_w2sq_pair` — one pair given as arrays.
* :func:`support_table` and :func:`solve_pairs` — the two steps the cached ground truth
  (:mod:`wbench.oracle.groundtruth`) uses, so that the cache key is computed from exactly what
  the solver sees.

Where each step lives: support extraction in :mod:`wbench.oracle.supports`, the LP of one pair
(and of one chunk, with the retry) in :mod:`wbench.oracle.lp`, and here the dispatch of many
pairs (de-duplication, chunking, the executor, error reports) and the public functions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from wbench.errors import InvalidMeasureError
from wbench.executor import Executor, LocalExecutor, TaskFailedError, executor_for
from wbench.measures import MeasureBatch
from wbench.oracle.lp import (
    COST_NAME,
    DEFAULT_NUM_ITER_MAX,
    RESULT_INFEASIBLE,
    RESULT_MAX_ITER,
    RESULT_NAMES,
    RESULT_OPTIMAL,
    RESULT_UNBOUNDED,
    RETRY_FACTOR,
    OracleError,
    chunk_task,
    exact_w2sq_pair,
    solve_chunk,
    solve_table_chunk,
)
from wbench.oracle.supports import SupportTable, as_index_array, support_table
from wbench.util.progress import progress as progress_bar

__all__ = [
    "COST_NAME",
    "DEFAULT_NUM_ITER_MAX",
    "ORACLE_VERSION",
    "RESULT_INFEASIBLE",
    "RESULT_MAX_ITER",
    "RESULT_OPTIMAL",
    "RESULT_UNBOUNDED",
    "RETRY_FACTOR",
    "OracleError",
    "SupportTable",
    "exact_w2sq",
    "exact_w2sq_between",
    "exact_w2sq_block",
    "exact_w2sq_pair",
    "solve_pairs",
    "support_table",
]

ORACLE_VERSION = 1
"""Bump when a change could alter any computed value; it is part of every cache key."""

_MIN_CHUNK, _MAX_CHUNK, _CHUNKS_PER_WORKER = 32, 512, 6

PARALLEL_MIN_SECONDS = 5.0
"""Work estimated below this many seconds on one core is solved in-process.

Starting a worker process costs a few seconds (each imports POT, which imports torch), so
small jobs run faster without workers. Set to 0 to always use ``n_jobs`` workers.
"""

_SECONDS_PER_WORK_UNIT = 2.2e-10
"""Rough single-core LP time of an ``n x m`` pair is this times ``n * m * (n + m)``
(MNIST, ~150 x 150: 1.5 ms; 300 x 300 point clouds: ~12 ms)."""


# --------------------------------------------------------------------------- many pairs


def _chunk_size(n_pairs: int, n_workers: int) -> int:
    return max(_MIN_CHUNK, min(_MAX_CHUNK, math.ceil(n_pairs / max(1, n_workers * _CHUNKS_PER_WORKER))))


CLUSTER_TASK_SECONDS = 1.0
"""Estimated single-core work per cluster task: long enough to hide the scheduler's
per-task cost (about a millisecond), short enough to balance and to lose little when a
worker dies."""


def _cluster_chunk_size(n_pairs: int, n_workers: int, estimated_seconds: float) -> int:
    """Pairs per cluster task: about :data:`CLUSTER_TASK_SECONDS` of work, and at least
    two tasks per worker thread so that every thread has work."""
    per_pair = max(estimated_seconds / max(1, n_pairs), 1e-9)
    by_time = math.ceil(CLUSTER_TASK_SECONDS / per_pair)
    by_balance = math.ceil(n_pairs / max(1, 2 * n_workers))
    return max(1, min(by_time, by_balance))


def solve_pairs(
    table: SupportTable,
    left: np.ndarray,
    right: np.ndarray,
    *,
    n_jobs: int = -1,
    progress: bool = True,
    desc: str = "exact W2",
    num_iter_max: int = DEFAULT_NUM_ITER_MAX,
    names: tuple[np.ndarray, np.ndarray] | None = None,
    scheduler: str | None = None,
    on_backend: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Exact W2^2 ``(P,)`` for the pairs ``(left[p], right[p])`` of measures of ``table``.

    Pairs are made canonical (``i < j``) and de-duplicated; ``i == j`` gives exactly 0.
    The unique pairs are solved in chunks through an executor (:mod:`wbench.executor.base`):
    locally on ``n_jobs`` processes (joblib's convention: -1 = all cores), each chunk
    receiving only the supports it needs; on a Dask cluster, the table goes to each worker
    once and each task (about :data:`CLUSTER_TASK_SECONDS` of work) carries only pair
    indices. Every pair is solved by the same function on the same arrays wherever it
    runs, so the values are bitwise identical. Jobs estimated below
    :data:`PARALLEL_MIN_SECONDS` of single-core work run in-process.

    :param names: ``(left_names, right_names)`` ``(P,)`` indices used to name a failing
        pair in the error message (default: ``left``, ``right``).
    :param scheduler: a Dask scheduler address or scheduler file; None: the current
        executor (:func:`wbench.executor.base.use_executor`), else ``$WBENCH_SCHEDULER``, else local.
    :param on_backend: called once with where the pairs are solved (the executor's
        description, or this process for a small job), when any pair needs solving.
    :raises OracleError: a pair's LP is not optimal even after the retry, or a task failed
        (the message names the pair and carries the worker's traceback).
    :raises wbench.executor.base.SchedulerUnreachableError: the scheduler does not answer.
    """
    k = len(table)
    left, right = _checked_pairs(left, right, k)
    out = np.zeros(len(left), dtype=np.float64)
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    solve = lo != hi
    if not solve.any():
        return out
    keys, first, inverse = np.unique(lo[solve] * k + hi[solve], return_index=True, return_inverse=True)
    ulo, uhi = keys // k, keys % k
    name_l, name_r = (left, right) if names is None else names

    def pair_name(u: int) -> str:
        p = int(np.flatnonzero(solve)[first[u]])
        return f"pair {p} (measures {int(name_l[p])} and {int(name_r[p])})"

    values, codes = _solve_unique(
        table, ulo, uhi, pair_name, n_jobs=n_jobs, progress=progress, desc=desc,
        num_iter_max=num_iter_max, scheduler=scheduler, on_backend=on_backend,
    )
    _check_codes(codes, num_iter_max, pair_name)
    out[solve] = np.maximum(values[inverse.reshape(-1)], 0.0)
    return out


def _checked_pairs(left: np.ndarray, right: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``left`` and ``right`` as ``(P,)`` index arrays into ``k`` measures, of equal length."""
    left = as_index_array(left, k, "left")
    right = as_index_array(right, k, "right")
    if left.shape != right.shape:
        raise InvalidMeasureError(f"left and right must have equal length, got {len(left)} and {len(right)}")
    return left, right


def _solve_unique(
    table: SupportTable,
    ulo: np.ndarray,
    uhi: np.ndarray,
    pair_name: Callable[[int], str],
    *,
    n_jobs: int,
    progress: bool,
    desc: str,
    num_iter_max: int,
    scheduler: str | None,
    on_backend: Callable[[str], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the unique pairs ``(ulo[u], uhi[u])`` (``(U,)`` each) of ``table``.

    Small jobs (estimated below :data:`PARALLEL_MIN_SECONDS`) run in this process, others on
    the executor of ``scheduler`` / ``n_jobs``. Returns the W2^2 values ``(U,)`` (float64,
    unclipped) and the LP result codes ``(U,)`` (int8), unchecked.
    """
    n_unique = len(ulo)
    na, nb = np.diff(table.offsets)[ulo].astype(np.float64), np.diff(table.offsets)[uhi].astype(np.float64)
    estimated = float(np.sum(na * nb * (na + nb))) * _SECONDS_PER_WORK_UNIT
    values = np.empty(n_unique, dtype=np.float64)
    codes = np.empty(n_unique, dtype=np.int8)
    small = estimated < PARALLEL_MIN_SECONDS  # in this process: no pool to start, no cluster to reach
    with contextlib.nullcontext(LocalExecutor(1)) if small else executor_for(scheduler, n_jobs) as executor:
        if on_backend is not None:
            on_backend(
                f"in this process: about {estimated:.2g} s of work, below the {PARALLEL_MIN_SECONDS:g} s "
                f"that starting workers or a cluster needs to pay off" if small else executor.describe()
            )
        starts, results = _dispatch(executor, table, ulo, uhi, estimated, num_iter_max)
        bar = progress_bar(total=n_unique, desc=desc, unit="pair") if progress else None
        try:
            _collect(results, starts, values, codes, bar, pair_name)
        finally:
            if bar is not None:
                bar.close()
    return values, codes

def _collect(
    results: Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]], starts: list[int], values: np.ndarray,
    codes: np.ndarray, bar: Any, pair_name: Callable[[int], str],
) -> None:
    """Write each chunk's ``(values, result codes)`` at its start into ``values`` and ``codes``
    (unique pairs); a failed task becomes an :class:`OracleError` naming the pair."""
    try:
        for index, (vals, cds) in results:
            s = starts[index]
            values[s : s + len(vals)] = vals
            codes[s : s + len(cds)] = cds
            if bar is not None:
                bar.update(len(vals))
    except TaskFailedError as exc:
        s = starts[exc.index]
        e = starts[exc.index + 1] if exc.index + 1 < len(starts) else len(values)
        which = pair_name(s + exc.item) if exc.item is not None else f"one of {pair_name(s)} and the {e - s - 1} pairs after it"
        raise OracleError(
            f"exact W2 failed for {which} on {exc.where}: {exc.summary}"
            + (f"\nworker traceback:\n{exc.remote_traceback.rstrip()}" if exc.remote_traceback else "")
        ) from exc


def _check_codes(codes: np.ndarray, num_iter_max: int, pair_name: Callable[[int], str]) -> None:
    """Raise :class:`OracleError` naming the first unique pair whose LP was not optimal."""
    failed = np.flatnonzero(codes != RESULT_OPTIMAL)
    if not len(failed):
        return
    u = int(failed[0])
    code = int(codes[u])
    tried = (
        f"after {num_iter_max:,} and then {num_iter_max * RETRY_FACTOR:,} iterations"
        if code == RESULT_MAX_ITER
        else f"(iteration budget {num_iter_max:,})"
    )
    raise OracleError(
        f"exact W2 failed for {pair_name(u)}: the LP was "
        f"{RESULT_NAMES.get(code, f'unknown result code {code}')} {tried}"
        + (f"; {len(failed) - 1} other pair(s) failed too" if len(failed) > 1 else "")
    )


def _dispatch(
    executor: Executor, table: SupportTable, ulo: np.ndarray, uhi: np.ndarray, estimated: float, num_iter_max: int
) -> tuple[list[int], Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]]:
    """Chunk the unique pairs ``(ulo, uhi)`` for ``executor``: ``(chunk starts, results in order)``."""
    n_unique = len(ulo)
    in_process = executor.kind == "local" and executor.n_workers <= 1
    if executor.kind == "dask":
        size = _cluster_chunk_size(n_unique, executor.n_workers, estimated)
        starts = list(range(0, n_unique, size))
        shared = executor.share(table)  # once per worker, not once per task
        tasks = [(shared, ulo[s : s + size], uhi[s : s + size], num_iter_max) for s in starts]
        return starts, executor.map(solve_table_chunk, tasks, ordered=True, name="wbench-oracle")
    size = _chunk_size(n_unique, 1 if in_process else executor.n_workers)
    starts = list(range(0, n_unique, size))

    tasks = (chunk_task(table, ulo[s : s + size], uhi[s : s + size], num_iter_max) for s in starts)
    return starts, executor.map(solve_chunk, tasks, ordered=True, name="wbench-oracle")


def exact_w2sq(
    measures: MeasureBatch,
    left: Sequence[int] | np.ndarray | torch.Tensor,
    right: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    n_jobs: int = -1,
    progress: bool = True,
    num_iter_max: int = DEFAULT_NUM_ITER_MAX,
    scheduler: str | None = None,
) -> np.ndarray:
    """Exact W2^2 ``(P,)`` float64 for the pairs ``(measures[left[p]], measures[right[p]])``.

    :param measures: ``B`` grid histograms or point clouds (unnormalised masses are normalised).
    :param left: ``(P,)`` measure indices.
    :param right: ``(P,)`` measure indices.
    :param n_jobs: worker processes (joblib's convention: -1 = all cores).
    :param progress: show a progress bar (also off when ``$WBENCH_PROGRESS=0``).
    :param scheduler: a Dask scheduler address or file (see :func:`solve_pairs`); None: as configured.
    :returns: ``(P,)`` W2^2 in squared ground-cost units.
    :raises InvalidMeasureError: bad indices or bad masses (message names the measure).
    :raises OracleError: a pair's LP is not optimal even after the retry (names the pair).
    """
    n = len(measures)
    left_arr, right_arr = as_index_array(left, n, "left"), as_index_array(right, n, "right")
    if left_arr.shape != right_arr.shape:
        raise InvalidMeasureError(f"left and right must have equal length, got {len(left_arr)} and {len(right_arr)}")
    ids, local = np.unique(np.concatenate([left_arr, right_arr]), return_inverse=True)
    table = support_table(measures, ids)
    return solve_pairs(
        table, local[: len(left_arr)], local[len(left_arr) :], n_jobs=n_jobs, progress=progress,
        num_iter_max=num_iter_max, names=(left_arr, right_arr), scheduler=scheduler,
    )


def exact_w2sq_between(
    a: MeasureBatch,
    b: MeasureBatch,
    *,
    n_jobs: int = -1,
    progress: bool = False,
    num_iter_max: int = DEFAULT_NUM_ITER_MAX,
    scheduler: str | None = None,
) -> np.ndarray:
    """Exact W2^2 ``(B,)`` float64 between row-aligned batches: ``a[i]`` and ``b[i]``.

    :param a: ``B`` measures; :param b: ``B`` measures in the same ground space (same ``D``).
    :raises InvalidMeasureError: different lengths or dimensions, or bad masses.
    """
    if len(a) != len(b):
        raise InvalidMeasureError(f"row-aligned batches must have equal length, got {len(a)} and {len(b)}")
    if a.dim != b.dim:
        raise InvalidMeasureError(f"measures live in different dimensions: {a.dim} and {b.dim}")
    table = support_table(a, what="batch a").concat(support_table(b, what="batch b"))
    rows = np.arange(len(a), dtype=np.int64)
    return solve_pairs(
        table, rows, rows + len(a), n_jobs=n_jobs, progress=progress, num_iter_max=num_iter_max, names=(rows, rows),
        scheduler=scheduler,
    )


def exact_w2sq_block(
    measures: MeasureBatch,
    rows: Sequence[int] | np.ndarray | torch.Tensor,
    cols: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    n_jobs: int = -1,
    progress: bool = True,
    num_iter_max: int = DEFAULT_NUM_ITER_MAX,
    scheduler: str | None = None,
) -> np.ndarray:
    """Exact W2^2 ``(len(rows), len(cols))`` float64 between every ``measures[rows[r]]`` and ``measures[cols[c]]``.

    Symmetric duplicates (``rows`` and ``cols`` overlapping) are solved once.
    """
    n = len(measures)
    rows_arr, cols_arr = as_index_array(rows, n, "rows"), as_index_array(cols, n, "cols")
    left = np.repeat(rows_arr, len(cols_arr))
    right = np.tile(cols_arr, len(rows_arr))
    return exact_w2sq(
        measures, left, right, n_jobs=n_jobs, progress=progress, num_iter_max=num_iter_max, scheduler=scheduler
    ).reshape(
        len(rows_arr), len(cols_arr)
    )
