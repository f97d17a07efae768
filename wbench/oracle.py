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
executor (:mod:`wbench.executor`): on all cores through joblib by default, or on a Dask
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
  (:mod:`wbench.groundtruth`) uses, so that the cache key is computed from exactly what
  the solver sees.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist

from wbench.errors import InvalidMeasureError, WbenchError
from wbench.executor import Executor, LocalExecutor, TaskFailedError, executor_for
from wbench.measures import MeasureBatch
from wbench.progress import progress as progress_bar

ORACLE_VERSION = 1
"""Bump when a change could alter any computed value; it is part of every cache key."""

COST_NAME = "sqeuclidean"
"""The ground cost: squared Euclidean distance between support points."""

DEFAULT_NUM_ITER_MAX = 1_000_000
"""Network-simplex iteration budget of the first attempt (POT's own default is 100,000)."""

RETRY_FACTOR = 10
"""A pair that hits the iteration budget is solved again with this many times the budget."""

# POT's network-simplex result codes (ot.lp.emd_wrap.check_result).
RESULT_INFEASIBLE, RESULT_OPTIMAL, RESULT_UNBOUNDED, RESULT_MAX_ITER = 0, 1, 2, 3
_RESULT_NAMES = {
    RESULT_INFEASIBLE: "infeasible",
    RESULT_OPTIMAL: "optimal",
    RESULT_UNBOUNDED: "unbounded",
    RESULT_MAX_ITER: "iteration budget reached before optimality",
}
_POT_WARNINGS = r"(numItermax reached|Problem infeasible|Problem unbounded)"

_MIN_CHUNK, _MAX_CHUNK, _CHUNKS_PER_WORKER = 32, 512, 6

PARALLEL_MIN_SECONDS = 5.0
"""Work estimated below this many seconds on one core is solved in-process.

Starting a worker process costs a few seconds (each imports POT, which imports torch), so
small jobs run faster without workers. Set to 0 to always use ``n_jobs`` workers.
"""

_EXTRACT_BLOCK = 4096
"""Measures converted to dense float64 at a time while extracting supports (bounds memory)."""

_SECONDS_PER_WORK_UNIT = 2.2e-10
"""Rough single-core LP time of an ``n x m`` pair is this times ``n * m * (n + m)``
(MNIST, ~150 x 150: 1.5 ms; 300 x 300 point clouds: ~12 ms)."""


class OracleError(WbenchError, RuntimeError):
    """The exact solver failed on a pair (not optimal even with the larger budget)."""


# --------------------------------------------------------------------------- supports


@dataclass(frozen=True)
class SupportTable:
    """The supports of ``k`` measures, packed: measure ``i`` is ``points[offsets[i]:offsets[i+1]]``.

    :param points: ``(T, D)`` float64 support points with positive mass, ground-cost units.
    :param masses: ``(T,)`` float64 masses, positive, each measure's slice summing to 1.
    :param offsets: ``(k + 1,)`` int64, ``offsets[0] == 0`` and ``offsets[k] == T``.
    """

    points: np.ndarray
    masses: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def measure(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(points (n_i, D), masses (n_i,))`` of measure ``i``."""
        s, e = self.offsets[i], self.offsets[i + 1]
        return self.points[s:e], self.masses[s:e]

    def subset(self, ids: np.ndarray) -> SupportTable:
        """A table of the measures ``ids`` (in that order), copying only their slices."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = self.offsets[ids]
        counts = self.offsets[ids + 1] - starts
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
        return SupportTable(self.points[gather], self.masses[gather], offsets)

    def concat(self, other: SupportTable) -> SupportTable:
        """This table followed by ``other`` (its measures numbered from ``len(self)``)."""
        if other.dim != self.dim:
            raise InvalidMeasureError(f"cannot pair measures of dimension {self.dim} with dimension {other.dim}")
        offsets = np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]])
        return SupportTable(
            np.concatenate([self.points, other.points]), np.concatenate([self.masses, other.masses]), offsets
        )


def _as_index_array(idx: object, n: int, what: str) -> np.ndarray:
    """A 1-D int64 index array with every entry in ``[0, n)``."""
    if isinstance(idx, torch.Tensor):
        idx = idx.detach().cpu().numpy()
    arr = np.asarray(idx)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidMeasureError(f"{what} must be a 1-D array of measure indices, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidMeasureError(f"{what} must hold integer measure indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise InvalidMeasureError(
            f"{what}[{int(np.argmax(bad))}] = {int(arr[bad][0])} is not a measure index (there are {n} measures)"
        )
    return arr


def _check_masses(weights: np.ndarray, ids: np.ndarray, what: str) -> None:
    """Raise :class:`InvalidMeasureError` naming the first measure with bad masses."""
    finite = np.isfinite(weights)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has a non-finite mass (NaN or inf)")
    negative = weights < 0
    if negative.any():
        row = int(np.argmax(negative.any(axis=1)))
        raise InvalidMeasureError(
            f"{what}: measure {int(ids[row])} has negative mass {float(weights[row].min()):.3g}"
        )
    totals = weights.sum(axis=1)
    if (totals <= 0).any():
        row = int(np.argmax(totals <= 0))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has zero total mass (an empty image?)")
    if not np.isfinite(totals).all():
        row = int(np.argmax(~np.isfinite(totals)))
        raise InvalidMeasureError(f"{what}: measure {int(ids[row])} has a total mass that overflows float64")


def support_table(measures: MeasureBatch, ids: Sequence[int] | np.ndarray | None = None, *, what: str = "measures") -> SupportTable:
    """Extract the float64 supports of ``measures[ids]`` (all measures when ``ids`` is None).

    :param measures: a batch of ``B`` measures (grid histograms or point clouds), any device.
    :param ids: ``(k,)`` indices of the measures to extract.
    :param what: how error messages name the batch.
    :returns: a :class:`SupportTable` of ``k`` measures, masses renormalised to sum 1.
    :raises InvalidMeasureError: a negative, non-finite or all-zero mass, or a non-finite
        support point carrying mass; the message names the measure by its index in ``measures``.
    """
    n = len(measures)
    ids = np.arange(n, dtype=np.int64) if ids is None else _as_index_array(ids, n, "measure ids")
    if measures.support.ndim == 2 and not bool(torch.isfinite(measures.support).all()):
        raise InvalidMeasureError(f"{what}: the shared support has a non-finite coordinate")
    parts = [_extract_block(measures, ids[s : s + _EXTRACT_BLOCK], what) for s in range(0, len(ids), _EXTRACT_BLOCK)]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    if not parts:
        return SupportTable(np.zeros((0, measures.dim)), np.zeros(0), offsets)
    np.cumsum(np.concatenate([counts for _, _, counts in parts]), out=offsets[1:])
    points = np.concatenate([pts for pts, _, _ in parts])
    masses = np.concatenate([m for _, m, _ in parts])
    return SupportTable(np.ascontiguousarray(points), masses, offsets)


def _extract_block(measures: MeasureBatch, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points (T, D), masses (T,), counts (k,))`` of the measures ``ids``, masses normalised."""
    index = torch.from_numpy(ids).to(measures.weights.device)
    weights = measures.weights.detach()[index].to("cpu", torch.float64).numpy()
    _check_masses(weights, ids, what)
    rows, cols = np.nonzero(weights)  # row-major: grouped by measure
    masses = weights[rows, cols]
    counts = np.bincount(rows, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    masses = masses / np.repeat(np.add.reduceat(masses, starts), counts)
    if measures.support.ndim == 2:
        points = measures.support.detach().to("cpu", torch.float64).numpy()[cols]
    else:
        per_measure = measures.support.detach()[index].to("cpu", torch.float64).numpy()
        points = per_measure[rows, cols]
        finite = np.isfinite(points).all(axis=1)
        if not finite.all():
            bad = int(ids[rows[int(np.argmin(finite))]])
            raise InvalidMeasureError(f"{what}: measure {bad} has a non-finite support point with positive mass")
    return points, masses, counts


# --------------------------------------------------------------------------- one LP


def _lp_solve(a: np.ndarray, b: np.ndarray, cost: np.ndarray, num_iter_max: int) -> tuple[float, int]:
    """One network-simplex solve: ``(value, POT result code)``. Tests replace this function."""
    value, log = ot.emd2(a, b, cost, numItermax=num_iter_max, log=True, center_dual=False, check_marginals=False)
    return float(value), int(log["result_code"])


def _solve_one(xa: np.ndarray, wa: np.ndarray, xb: np.ndarray, wb: np.ndarray, num_iter_max: int) -> tuple[float, int, int]:
    """``(value, result code, iteration budget of the last attempt)`` with one retry."""
    cost = cdist(xa, xb, "sqeuclidean")
    value, code = _lp_solve(wa, wb, cost, num_iter_max)
    budget = num_iter_max
    if code == RESULT_MAX_ITER:
        budget = num_iter_max * RETRY_FACTOR
        value, code = _lp_solve(wa, wb, cost, budget)
    return value, code, budget


LP_MMAP_THRESHOLD = 4 << 20
"""Bytes: glibc's mmap threshold set in processes where Dask pinned it (see :func:`_tune_allocator`)."""


@functools.cache
def _tune_allocator() -> bool:
    """Let glibc serve an LP's buffers from the heap in a Dask worker; True if changed.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off
    glibc's dynamic mmap threshold: every allocation above 128 KiB (an MNIST pair's cost
    matrix, its flow matrix, the simplex's arrays) becomes a fresh ``mmap`` of zeroed pages,
    making each LP about 20 % slower. Raising the mmap threshold to
    :data:`LP_MMAP_THRESHOLD` restores glibc's default behaviour for such sizes, and keeps
    Dask's trim threshold (memory at the top of the heap is still given back). Nothing
    happens elsewhere: when the variable is unset, when ``MALLOC_MMAP_THRESHOLD_`` is set
    explicitly, or without glibc. Values are unchanged, only the speed.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, LP_MMAP_THRESHOLD))


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _solve_chunk(
    points: np.ndarray, masses: np.ndarray, offsets: np.ndarray, left: np.ndarray, right: np.ndarray, num_iter_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the pairs ``(left[p], right[p])`` of a packed table: ``(values, result codes)``.

    The task function sent to the workers: a pure function of compact numpy arrays.
    """
    _tune_allocator()
    values = np.empty(len(left), dtype=np.float64)
    codes = np.empty(len(left), dtype=np.int8)
    with warnings.catch_warnings():
        # POT warns on a non-optimal result; the result code is checked instead.
        warnings.filterwarnings("ignore", message=_POT_WARNINGS, category=UserWarning)
        for p in range(len(left)):
            i, j = left[p], right[p]
            sa, ea, sb, eb = offsets[i], offsets[i + 1], offsets[j], offsets[j + 1]
            try:
                values[p], codes[p], _ = _solve_one(points[sa:ea], masses[sa:ea], points[sb:eb], masses[sb:eb], num_iter_max)
            except Exception as exc:
                exc.wbench_item = p  # type: ignore[attr-defined]  # which pair of the chunk (see wbench.executor)
                raise
    return values, codes


def _chunk_task(table: SupportTable, left: np.ndarray, right: np.ndarray, num_iter_max: int) -> tuple[np.ndarray, ...]:
    """The arguments of :func:`_solve_chunk` for the pairs ``(left, right)`` of ``table``:
    the chunk's own compact table (only its measures) and the pairs renumbered into it."""
    ids, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    sub = table.subset(ids)
    return sub.points, sub.masses, sub.offsets, local[: len(left)], local[len(left) :], num_iter_max


def _solve_table_chunk(table: SupportTable, left: np.ndarray, right: np.ndarray, num_iter_max: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_solve_chunk` on pairs of a whole table: the cluster task (the table reaches
    each worker once, a task carries only pair indices). The worker cuts the same compact
    chunk table the local backend sends (solving from it is also about 20 % faster than
    from slices of the whole table), so the inputs, and the results, are bitwise those of
    the local backend."""
    return _solve_chunk(*_chunk_task(table, left, right, num_iter_max))


def exact_w2sq_pair(
    xa: np.ndarray | torch.Tensor,
    wa: np.ndarray | torch.Tensor,
    xb: np.ndarray | torch.Tensor,
    wb: np.ndarray | torch.Tensor,
    *,
    num_iter_max: int = DEFAULT_NUM_ITER_MAX,
) -> float:
    """Exact W2^2 between ``sum_i wa_i delta(xa_i)`` and ``sum_j wb_j delta(xb_j)``.

    :param xa: ``(n, D)`` support points, ground-cost units.
    :param wa: ``(n,)`` non-negative masses (normalised here to sum 1).
    :param xb: ``(m, D)`` support points.
    :param wb: ``(m,)`` non-negative masses.
    :param num_iter_max: iteration budget of the first attempt.
    :returns: W2^2 in squared ground-cost units (float64).
    :raises InvalidMeasureError: mismatched shapes, negative / non-finite / zero mass,
        non-finite points.
    :raises OracleError: the LP is not optimal even with the larger budget.
    """
    sides = []
    for name, x, w in (("a", xa, wa), ("b", xb, wb)):
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
        w = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or w.ndim != 1 or x.shape[0] != w.shape[0]:
            raise InvalidMeasureError(
                f"measure {name}: points must be (n, D) and masses (n,), got {x.shape} and {w.shape}"
            )
        _check_masses(w[None, :], np.array([0]), f"measure {name}")
        keep = w > 0
        x, w = x[keep], w[keep]
        if not np.isfinite(x).all():
            raise InvalidMeasureError(f"measure {name} has a non-finite support point")
        sides.append((np.ascontiguousarray(x), w / w.sum()))
    (xa, wa), (xb, wb) = sides
    if xa.shape[1] != xb.shape[1]:
        raise InvalidMeasureError(f"measures live in different dimensions: {xa.shape[1]} and {xb.shape[1]}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_POT_WARNINGS, category=UserWarning)
        value, code, budget = _solve_one(xa, wa, xb, wb, num_iter_max)
    if code != RESULT_OPTIMAL:
        raise OracleError(f"exact W2 not found: the LP was {_RESULT_NAMES.get(code, code)} (budget {budget:,} iterations)")
    return max(value, 0.0)


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
) -> np.ndarray:
    """Exact W2^2 ``(P,)`` for the pairs ``(left[p], right[p])`` of measures of ``table``.

    Pairs are made canonical (``i < j``) and de-duplicated; ``i == j`` gives exactly 0.
    The unique pairs are solved in chunks through an executor (:mod:`wbench.executor`):
    locally on ``n_jobs`` processes (joblib's convention: -1 = all cores), each chunk
    receiving only the supports it needs; on a Dask cluster, the table goes to each worker
    once and each task (about :data:`CLUSTER_TASK_SECONDS` of work) carries only pair
    indices. Every pair is solved by the same function on the same arrays wherever it
    runs, so the values are bitwise identical. Jobs estimated below
    :data:`PARALLEL_MIN_SECONDS` of single-core work run in-process.

    :param names: ``(left_names, right_names)`` ``(P,)`` indices used to name a failing
        pair in the error message (default: ``left``, ``right``).
    :param scheduler: a Dask scheduler address or scheduler file; None: the current
        executor (:func:`wbench.executor.use_executor`), else ``$WBENCH_SCHEDULER``, else local.
    :raises OracleError: a pair's LP is not optimal even after the retry, or a task failed
        (the message names the pair and carries the worker's traceback).
    :raises wbench.executor.SchedulerUnreachableError: the scheduler does not answer.
    """
    k = len(table)
    left = _as_index_array(left, k, "left")
    right = _as_index_array(right, k, "right")
    if left.shape != right.shape:
        raise InvalidMeasureError(f"left and right must have equal length, got {len(left)} and {len(right)}")
    out = np.zeros(len(left), dtype=np.float64)
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    solve = lo != hi
    if not solve.any():
        return out
    keys, first, inverse = np.unique(lo[solve] * k + hi[solve], return_index=True, return_inverse=True)
    ulo, uhi = keys // k, keys % k
    n_unique = len(keys)
    na, nb = np.diff(table.offsets)[ulo].astype(np.float64), np.diff(table.offsets)[uhi].astype(np.float64)
    estimated = float(np.sum(na * nb * (na + nb))) * _SECONDS_PER_WORK_UNIT
    name_l, name_r = (left, right) if names is None else names

    def pair_name(u: int) -> str:
        p = int(np.flatnonzero(solve)[first[u]])
        return f"pair {p} (measures {int(name_l[p])} and {int(name_r[p])})"

    values = np.empty(n_unique, dtype=np.float64)
    codes = np.empty(n_unique, dtype=np.int8)
    small = estimated < PARALLEL_MIN_SECONDS  # in this process: no pool to start, no cluster to reach
    with contextlib.nullcontext(LocalExecutor(1)) if small else executor_for(scheduler, n_jobs) as executor:
        starts, results = _dispatch(executor, table, ulo, uhi, estimated, num_iter_max)
        bar = progress_bar(total=n_unique, desc=desc, unit="pair") if progress else None
        try:
            for index, (vals, cds) in results:
                s = starts[index]
                values[s : s + len(vals)] = vals
                codes[s : s + len(cds)] = cds
                if bar is not None:
                    bar.update(len(vals))
        except TaskFailedError as exc:
            s = starts[exc.index]
            e = starts[exc.index + 1] if exc.index + 1 < len(starts) else n_unique
            which = pair_name(s + exc.item) if exc.item is not None else f"one of {pair_name(s)} and the {e - s - 1} pairs after it"
            raise OracleError(
                f"exact W2 failed for {which} on {exc.where}: {exc.summary}"
                + (f"\nworker traceback:\n{exc.remote_traceback.rstrip()}" if exc.remote_traceback else "")
            ) from exc
        finally:
            if bar is not None:
                bar.close()
    failed = np.flatnonzero(codes != RESULT_OPTIMAL)
    if len(failed):
        u = int(failed[0])
        code = int(codes[u])
        tried = (
            f"after {num_iter_max:,} and then {num_iter_max * RETRY_FACTOR:,} iterations"
            if code == RESULT_MAX_ITER
            else f"(iteration budget {num_iter_max:,})"
        )
        raise OracleError(
            f"exact W2 failed for {pair_name(u)}: the LP was "
            f"{_RESULT_NAMES.get(code, f'unknown result code {code}')} {tried}"
            + (f"; {len(failed) - 1} other pair(s) failed too" if len(failed) > 1 else "")
        )
    out[solve] = np.maximum(values[inverse.reshape(-1)], 0.0)
    return out


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
        return starts, executor.map(_solve_table_chunk, tasks, ordered=True, name="wbench-oracle")
    size = _chunk_size(n_unique, 1 if in_process else executor.n_workers)
    starts = list(range(0, n_unique, size))

    tasks = (_chunk_task(table, ulo[s : s + size], uhi[s : s + size], num_iter_max) for s in starts)
    return starts, executor.map(_solve_chunk, tasks, ordered=True, name="wbench-oracle")


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
    left_arr, right_arr = _as_index_array(left, n, "left"), _as_index_array(right, n, "right")
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
    rows_arr, cols_arr = _as_index_array(rows, n, "rows"), _as_index_array(cols, n, "cols")
    left = np.repeat(rows_arr, len(cols_arr))
    right = np.tile(cols_arr, len(rows_arr))
    return exact_w2sq(
        measures, left, right, n_jobs=n_jobs, progress=progress, num_iter_max=num_iter_max, scheduler=scheduler
    ).reshape(
        len(rows_arr), len(cols_arr)
    )
