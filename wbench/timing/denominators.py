"""Fair speed-up denominators: a method against the exact LP on the same cores.

Two comparisons, each timed as interleaved rounds (method, LP, method, LP ...; see
:mod:`wbench.timing.rounds`) with the same number of rounds for both, so that drift in the
machine's load hits both sides:

* **one core**: the method pinned to one torch / BLAS thread against the exact LP solved
  in this process on one thread (:func:`wbench.oracle.solve.exact_w2sq_between` with
  ``n_jobs=1``);
* **all cores**: the method on ``all_threads`` threads against the exact LP solved through
  the oracle's parallel executor on all cores (a joblib process pool of
  ``effective_n_jobs(-1)`` workers, forced even for small batches, which the oracle would
  otherwise solve in-process; the pool is started and warmed up before timing).

Both rates are independent pairs/s (row-aligned ``distance`` calls). The record states the
thread and worker counts that were really in effect.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from wbench.measures import MeasureBatch
from wbench.timing.costmodel import sample_measures
from wbench.timing.rounds import (
    DEFAULT_MIN_ROUND_S,
    DEFAULT_ROUNDS,
    RoundStats,
    interleaved_rounds,
    thread_limit,
)
from wbench.timing.throughput import independent_step

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = ["FairSpeedups", "SpeedupSide", "fair_speedups", "forced_parallel_oracle", "lp_callable"]


@dataclass(frozen=True)
class SpeedupSide:
    """One comparison (one core or all cores).

    :param method: seconds per pair of the method (per-pair statistics of its rounds).
    :param lp: seconds per pair of the exact LP.
    :param method_threads: ``torch.get_num_threads()`` while the method ran.
    :param lp_workers: processes that solved the LP (1: in this process).
    :param lp_threads: torch threads in effect in this process while the LP ran.
    :param method_batch: pairs per method call. :param lp_batch: pairs per LP call.
    """

    method: RoundStats
    lp: RoundStats
    method_threads: int
    lp_workers: int
    lp_threads: int
    method_batch: int
    lp_batch: int

    @property
    def method_pairs_per_s(self) -> float:
        """The method's independent pairs/s (median)."""
        return 1.0 / self.method.median_s

    @property
    def lp_pairs_per_s(self) -> float:
        """The exact LP's pairs/s (median)."""
        return 1.0 / self.lp.median_s

    @property
    def speedup(self) -> float:
        """Method pairs/s over LP pairs/s (ratio of the medians)."""
        return self.lp.median_s / self.method.median_s

    def to_record(self, prefix: str) -> dict[str, float]:
        """``{prefix}.speedup``, ``.method_pairs_per_s`` (+ ``_iqr``), ``.lp_pairs_per_s`` (+ ``_iqr``),
        ``.method_threads``, ``.lp_workers``, ``.lp_threads``, ``.rounds``, ``.method_batch``, ``.lp_batch``."""
        return {
            f"{prefix}.speedup": self.speedup,
            f"{prefix}.method_pairs_per_s": self.method_pairs_per_s,
            f"{prefix}.method_pairs_per_s_iqr": _rate_iqr(self.method),
            f"{prefix}.lp_pairs_per_s": self.lp_pairs_per_s,
            f"{prefix}.lp_pairs_per_s_iqr": _rate_iqr(self.lp),
            f"{prefix}.method_threads": float(self.method_threads),
            f"{prefix}.lp_workers": float(self.lp_workers),
            f"{prefix}.lp_threads": float(self.lp_threads),
            f"{prefix}.rounds": float(self.method.rounds),
            f"{prefix}.method_batch": float(self.method_batch),
            f"{prefix}.lp_batch": float(self.lp_batch),
        }


def _rate_iqr(stats: RoundStats) -> float:
    """IQR of the rate 1/t from the quartiles of the seconds per pair."""
    return 1.0 / stats.q1_s - 1.0 / stats.q3_s if stats.q1_s > 0 else 0.0


@dataclass(frozen=True)
class FairSpeedups:
    """Speed-ups over the exact LP, one core against one core and all cores against all cores."""

    one_core: SpeedupSide | None
    all_cores: SpeedupSide | None

    def to_record(self) -> dict[str, float]:
        """Flat columns ``speedup.one_core.*`` and ``speedup.all_cores.*`` (see :meth:`SpeedupSide.to_record`)."""
        out: dict[str, float] = {}
        if self.one_core is not None:
            out.update(self.one_core.to_record("speedup.one_core"))
        if self.all_cores is not None:
            out.update(self.all_cores.to_record("speedup.all_cores"))
        return out


@contextlib.contextmanager
def forced_parallel_oracle() -> Iterator[None]:
    """Make the oracle use its executor for every job, however small (restored on exit).

    The oracle solves jobs under :data:`wbench.oracle.solve.PARALLEL_MIN_SECONDS` of estimated
    work in-process; this sets that threshold to 0, its documented way to always use workers.
    """
    from wbench.oracle import solve as oracle

    before = oracle.PARALLEL_MIN_SECONDS
    oracle.PARALLEL_MIN_SECONDS = 0.0
    try:
        yield
    finally:
        oracle.PARALLEL_MIN_SECONDS = before


def lp_callable(a: MeasureBatch, b: MeasureBatch, *, n_jobs: int) -> Callable[[], Any]:
    """A zero-argument call solving the exact W2^2 of ``a[i], b[i]`` (``n_jobs=1``: in this process;
    otherwise through the executor with ``n_jobs`` workers, forced for small batches)."""
    from wbench.oracle.solve import exact_w2sq_between

    if n_jobs == 1:
        return lambda: exact_w2sq_between(a, b, n_jobs=1)

    def parallel() -> Any:
        with forced_parallel_oracle():
            return exact_w2sq_between(a, b, n_jobs=n_jobs)

    return parallel


def fair_speedups(
    surrogate: Surrogate,
    measures: MeasureBatch,
    *,
    method_batch: int = 1024,
    lp_batch_one_core: int = 64,
    lp_batch_all_cores: int = 256,
    all_threads: int | None = None,
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
    sides: tuple[str, ...] = ("one_core", "all_cores"),
    seed: int = 0,
    reference: Callable[[MeasureBatch, MeasureBatch, int], Callable[[], Any]] | None = None,
) -> FairSpeedups:
    """Speed-ups of ``surrogate`` over the exact LP, one core and all cores (see the module docstring).

    The method runs on the CPU (its device must be the CPU: the LP has no GPU path).

    :param surrogate: a fitted surrogate on the CPU.
    :param measures: measures to draw the pairs from (CPU).
    :param method_batch: row-aligned pairs per method call.
    :param lp_batch_one_core: pairs per in-process LP call.
    :param lp_batch_all_cores: pairs per parallel LP call (enough to keep every worker busy).
    :param all_threads: threads of the "all cores" side (default ``os.cpu_count()``).
    :param rounds: rounds per side and per callable (interleaved).
    :param min_round_s: seconds each round lasts at least.
    :param sides: which comparisons to run (``"one_core"``, ``"all_cores"``).
    :param seed: seeds the draw of the pairs.
    :param reference: ``reference(a, b, n_jobs)`` -> a zero-argument call computing the
        reference's W2^2 of the row-aligned batches ``a, b`` (``n_jobs`` 1: one core, -1:
        all cores); default :func:`lp_callable`, the exact LP. A generic solver gets its own
        call here (it is run under the side's thread limit; ``n_jobs`` may be ignored).
    :raises ValueError: an unknown side, or a surrogate on a GPU.
    """
    _check_request(surrogate, sides)
    all_threads = int(all_threads or os.cpu_count() or 1)
    a = sample_measures(measures, method_batch, seed=seed)
    b = sample_measures(measures, method_batch, seed=seed + 1)

    def method() -> Any:
        return independent_step(surrogate, a, b)

    out: dict[str, SpeedupSide] = {}
    for side in sides:
        threads, n_jobs, lp_batch = (1, 1, lp_batch_one_core) if side == "one_core" else (all_threads, -1, lp_batch_all_cores)
        out[side] = _time_side(
            method, measures, method_batch=method_batch, lp_batch=lp_batch, threads=threads, n_jobs=n_jobs,
            rounds=rounds, min_round_s=min_round_s, seed=seed, reference=reference,
        )
    return FairSpeedups(one_core=out.get("one_core"), all_cores=out.get("all_cores"))


def _check_request(surrogate: Surrogate, sides: tuple[str, ...]) -> None:
    """Refuse an unknown side or a surrogate that is not on the CPU (``ValueError``)."""
    unknown = set(sides) - {"one_core", "all_cores"}
    if unknown:
        raise ValueError(f"unknown side(s) {sorted(unknown)}; known: one_core, all_cores")
    device = getattr(surrogate, "device", torch.device("cpu"))
    if torch.device(device).type != "cpu":
        raise ValueError(f"fair speed-ups compare CPU cores; move the surrogate to the CPU (it is on {device})")


def _time_side(
    method: Callable[[], Any],
    measures: MeasureBatch,
    *,
    method_batch: int,
    lp_batch: int,
    threads: int,
    n_jobs: int,
    rounds: int,
    min_round_s: float,
    seed: int,
    reference: Callable[[MeasureBatch, MeasureBatch, int], Callable[[], Any]] | None,
) -> SpeedupSide:
    """Time ``method`` (one call: ``method_batch`` pairs) against the reference on one side.

    Draws ``lp_batch`` reference pairs (seeds ``seed + 2``, ``seed + 3``), then runs interleaved
    rounds of both callables, each under a limit of ``threads`` threads (``n_jobs``: the
    reference's workers, 1 or -1). Per-pair times are in seconds.
    """
    la = sample_measures(measures, lp_batch, seed=seed + 2)
    lb = sample_measures(measures, lp_batch, seed=seed + 3)
    lp = lp_callable(la, lb, n_jobs=n_jobs) if reference is None else reference(la, lb, n_jobs)
    seen: dict[str, int] = {}

    @contextlib.contextmanager
    def pinned(name: str) -> Iterator[None]:
        with thread_limit(threads) as used:
            seen[name] = used
            yield

    workers = _lp_workers(n_jobs, reference is None)
    stats = interleaved_rounds(
        {"method": method, "lp": lp},
        # a process pool starts its workers over its first calls: two warm-up calls keep
        # that start-up out of the timed rounds
        rounds=rounds, min_round_s=min_round_s, warmup=1 if n_jobs == 1 else 2,
        contexts={"method": lambda: pinned("method"), "lp": lambda: pinned("lp")},
    )
    return SpeedupSide(
        method=stats["method"].per_unit(method_batch),
        lp=stats["lp"].per_unit(lp_batch),
        method_threads=seen["method"],
        lp_workers=workers,
        lp_threads=seen["lp"],
        method_batch=method_batch,
        lp_batch=lp_batch,
    )


def _lp_workers(n_jobs: int, exact_lp: bool) -> int:
    """Worker processes the exact LP's ``n_jobs`` resolves to (1 for another reference)."""
    if n_jobs != 1 and exact_lp:
        from joblib import effective_n_jobs

        return int(effective_n_jobs(n_jobs))
    return 1
