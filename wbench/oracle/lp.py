"""The exact LP of one pair, and of one chunk of pairs (the task a worker runs).

POT's network simplex (:func:`ot.emd2`) in float64 on the squared Euclidean cost between
two supports. A pair whose LP stops before optimality (POT result code
``MAX_ITER_REACHED``) is solved again with a :data:`RETRY_FACTOR` times larger iteration
budget; the caller checks the final result code (:class:`OracleError` names a pair that is
still not optimal). :func:`solve_chunk` is the pure function of compact arrays that every
executor backend runs, so the values are bitwise identical wherever it runs.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist

from wbench.errors import InvalidMeasureError, WbenchError
from wbench.oracle.supports import SupportTable, check_masses

__all__ = [
    "COST_NAME",
    "DEFAULT_NUM_ITER_MAX",
    "RESULT_NAMES",
    "RETRY_FACTOR",
    "OracleError",
    "chunk_task",
    "exact_w2sq_pair",
    "solve_chunk",
    "solve_table_chunk",
]

COST_NAME = "sqeuclidean"
"""The ground cost: squared Euclidean distance between support points."""

DEFAULT_NUM_ITER_MAX = 1_000_000
"""Network-simplex iteration budget of the first attempt (POT's own default is 100,000)."""

RETRY_FACTOR = 10
"""A pair that hits the iteration budget is solved again with this many times the budget."""

# POT's network-simplex result codes (ot.lp.emd_wrap.check_result).
RESULT_INFEASIBLE, RESULT_OPTIMAL, RESULT_UNBOUNDED, RESULT_MAX_ITER = 0, 1, 2, 3
RESULT_NAMES = {
    RESULT_INFEASIBLE: "infeasible",
    RESULT_OPTIMAL: "optimal",
    RESULT_UNBOUNDED: "unbounded",
    RESULT_MAX_ITER: "iteration budget reached before optimality",
}
_POT_WARNINGS = r"(numItermax reached|Problem infeasible|Problem unbounded)"


class OracleError(WbenchError, RuntimeError):
    """The exact solver failed on a pair (not optimal even with the larger budget)."""


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


def solve_chunk(
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
                exc.wbench_item = p  # type: ignore[attr-defined]  # which pair of the chunk (see wbench.executor.base)
                raise
    return values, codes


def chunk_task(table: SupportTable, left: np.ndarray, right: np.ndarray, num_iter_max: int) -> tuple[np.ndarray, ...]:
    """The arguments of :func:`solve_chunk` for the pairs ``(left, right)`` of ``table``:
    the chunk's own compact table (only its measures) and the pairs renumbered into it."""
    ids, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    sub = table.subset(ids)
    return sub.points, sub.masses, sub.offsets, local[: len(left)], local[len(left) :], num_iter_max


def solve_table_chunk(table: SupportTable, left: np.ndarray, right: np.ndarray, num_iter_max: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`solve_chunk` on pairs of a whole table: the cluster task (the table reaches
    each worker once, a task carries only pair indices). The worker cuts the same compact
    chunk table the local backend sends (solving from it is also about 20 % faster than
    from slices of the whole table), so the inputs, and the results, are bitwise those of
    the local backend."""
    return solve_chunk(*chunk_task(table, left, right, num_iter_max))


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
        check_masses(w[None, :], np.array([0]), f"measure {name}")
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
        raise OracleError(f"exact W2 not found: the LP was {RESULT_NAMES.get(code, code)} (budget {budget:,} iterations)")
    return max(value, 0.0)
