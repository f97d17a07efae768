"""Timing rounds of a minimum duration, their median and interquartile range, interleaving.

A *round* repeats a call until at least ``min_round_s`` seconds have passed (at least once)
and reports the seconds per call of that round; a figure is the median over at least
``rounds`` rounds, stated with its interquartile range (IQR). Short calls are thus timed
over many repetitions (timer resolution and one-off stalls average out) and every round
weighs the same.

:func:`interleaved_rounds` times several callables round by round in turn (A, B, A, B ...),
so that drift in machine load (other processes, frequency scaling) hits all of them alike;
ratios of their medians are then paired measurements.

On a CUDA device each round is bracketed by device synchronisation (``device=``), so the
queued kernels of a round are inside it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from wbench.timing.throughput import synchronize

__all__ = [
    "RoundStats",
    "interleaved_rounds",
    "one_round",
    "round_stats",
    "thread_limit",
    "timed_rounds",
]

DEFAULT_MIN_ROUND_S = 0.2
"""Seconds a round lasts at least (the call is repeated inside it)."""
DEFAULT_ROUNDS = 5
"""Rounds a figure takes at least."""


@dataclass(frozen=True)
class RoundStats:
    """Seconds per call over timed rounds.

    :param median_s: median over rounds of the seconds per call.
    :param q1_s: first quartile (seconds per call).
    :param q3_s: third quartile (seconds per call).
    :param rounds: number of rounds.
    :param calls: calls made in all rounds together.
    :param per_round_s: seconds per call of every round, in order.
    """

    median_s: float
    q1_s: float
    q3_s: float
    rounds: int
    calls: int
    per_round_s: tuple[float, ...]

    @property
    def iqr_s(self) -> float:
        """Interquartile range of the seconds per call."""
        return self.q3_s - self.q1_s

    @property
    def relative_iqr(self) -> float:
        """IQR over the median (0 when the median is 0)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    def per_unit(self, units: int) -> RoundStats:
        """Seconds per call -> seconds per unit (a measure embedded, a pair solved), ``units`` per call."""
        return RoundStats(
            self.median_s / units, self.q1_s / units, self.q3_s / units, self.rounds, self.calls,
            tuple(s / units for s in self.per_round_s),
        )

    def to_record(self, prefix: str) -> dict[str, float]:
        """``{prefix}_s``, ``{prefix}_s_iqr``, ``{prefix}_rounds``, ``{prefix}_calls`` (flat floats)."""
        return {
            f"{prefix}_s": self.median_s,
            f"{prefix}_s_iqr": self.iqr_s,
            f"{prefix}_rounds": float(self.rounds),
            f"{prefix}_calls": float(self.calls),
        }


def round_stats(per_round_s: Sequence[float], calls: int | None = None) -> RoundStats:
    """Median and quartiles (inclusive method) of per-call seconds ``per_round_s``.

    :raises ValueError: no rounds, or a negative time.
    """
    values = [float(v) for v in per_round_s]
    if not values:
        raise ValueError("round_stats needs at least one round")
    if min(values) < 0:
        raise ValueError(f"round times must be non-negative, got {min(values)}")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return RoundStats(statistics.median(values), q1, q3, len(values), len(values) if calls is None else calls, tuple(values))


def one_round(
    fn: Callable[[], Any], *, min_round_s: float = DEFAULT_MIN_ROUND_S, device: str | torch.device | None = None
) -> tuple[float, int]:
    """Repeat ``fn()`` until ``min_round_s`` seconds have passed: ``(seconds per call, calls)``.

    The device is synchronised before the round and after every call, so a CUDA round
    contains its kernels' execution, not only their launch.
    """
    synchronize(device)
    calls = 0
    begin = time.perf_counter()
    while True:
        fn()
        synchronize(device)
        calls += 1
        elapsed = time.perf_counter() - begin
        if elapsed >= min_round_s:
            return elapsed / calls, calls


def _check(rounds: int, min_round_s: float) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if not min_round_s >= 0:
        raise ValueError(f"min_round_s must be non-negative seconds, got {min_round_s!r}")


def timed_rounds(
    fn: Callable[[], Any],
    *,
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
    warmup: int = 1,
    device: str | torch.device | None = None,
) -> RoundStats:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls, then ``rounds`` rounds (:func:`one_round`)."""
    return interleaved_rounds({"fn": fn}, rounds=rounds, min_round_s=min_round_s, warmup=warmup, device=device)["fn"]


def interleaved_rounds(
    fns: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
    warmup: int = 1,
    device: str | torch.device | None = None,
    contexts: Mapping[str, Callable[[], contextlib.AbstractContextManager[Any]]] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[str, RoundStats]:
    """Time every callable of ``fns`` round by round in turn: A, B, A, B ... (same number of rounds).

    :param fns: name -> zero-argument callable (one unit of work; seconds are per call).
    :param rounds: rounds per callable (at least 1; 5 or more for a stated IQR).
    :param min_round_s: seconds each round lasts at least.
    :param warmup: untimed calls of each callable before the first round.
    :param device: synchronised around the calls (a CUDA device), or None / CPU.
    :param contexts: optional name -> factory of a context manager entered around each of
        that callable's rounds and warm-up (e.g. a thread limit).
    :param on_round: called as ``on_round(done, rounds)`` after each round (progress).
    :returns: name -> :class:`RoundStats`, seconds per call.
    """
    _check(rounds, min_round_s)
    if not fns:
        raise ValueError("interleaved_rounds needs at least one callable")
    contexts = contexts or {}

    def context(name: str) -> contextlib.AbstractContextManager[Any]:
        factory = contexts.get(name)
        return factory() if factory is not None else contextlib.nullcontext()

    for name, fn in fns.items():
        with context(name):
            for _ in range(warmup):
                fn()
            synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    calls: dict[str, int] = dict.fromkeys(fns, 0)
    for done in range(1, rounds + 1):
        for name, fn in fns.items():
            with context(name):
                seconds, n = one_round(fn, min_round_s=min_round_s, device=device)
            times[name].append(seconds)
            calls[name] += n
        if on_round is not None:
            on_round(done, rounds)
    return {name: round_stats(times[name], calls[name]) for name in fns}


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads and BLAS / OpenMP pools capped alike.

    ``None`` leaves the settings as they are. Yields the torch thread count in effect
    (``torch.get_num_threads()``), restored on exit.
    """
    if threads is None:
        yield torch.get_num_threads()
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn / joblib users
            limiter: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        else:
            limiter = threadpool_limits(limits=threads)
        with limiter:
            yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
