"""Throughput of a surrogate: independent pairs per second and pairwise pairs per second.

The two ways to time a W2 method (DWE paper, section 4):

* **independent**: ``n`` unrelated pairs, ``surrogate.distance(a, b)`` on row-aligned
  batches (an embedding method embeds both sides of every pair);
* **pairwise**: all ``n x m`` distances between two sets, ``surrogate.pairwise(x, y)``
  (an embedding method embeds each item once, then one distance matrix).

The protocol follows POT's ``TorchBackend._bench`` and timm's ``benchmark.py``: data is
prepared and moved to the device outside the timed region; warm-up rounds; every call under
``torch.inference_mode()``; the device is synchronised around each timed call (CUDA events
on a GPU, ``time.perf_counter`` on the CPU); the figure is the median over rounds, stated
with its batch sizes and the number of threads.

The time is bounded: with ``max_time_s`` set, the batch is first grown geometrically
(a ramp that doubles as warm-up) and stops growing before one call would exceed its share
of the budget, so a slow solver is timed on a smaller batch (stated in the result) instead
of running for minutes; timed rounds stop once the budget is spent (at least one round).

:func:`independent_step` and :func:`pairwise_step` are what both ``wbench run`` and the
pytest-benchmark suite (``benchmarks/bench_throughput.py``) time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wbench.measures import MeasureBatch
from wbench.validate import allows_missing, check_predictions

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = [
    "independent_step",
    "measure_throughput",
    "pairwise_step",
    "speedup_columns",
    "synchronize",
    "time_call",
]

@torch.inference_mode()
def independent_step(surrogate: Surrogate, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
    """One timed unit of the independent protocol: ``surrogate.distance(a, b)`` ``(n,)``."""
    return surrogate.distance(a, b)


@torch.inference_mode()
def pairwise_step(surrogate: Surrogate, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
    """One timed unit of the pairwise protocol: ``surrogate.pairwise(x, y)`` ``(n, m)``."""
    return surrogate.pairwise(x, y)


def synchronize(device: str | torch.device | None) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def time_call(function: Callable[[], Any], device: str | torch.device | None = None) -> float:
    """Seconds one call of ``function()`` takes, the device synchronised before and after.

    On a CUDA device the time is read from CUDA events recorded around the call (after
    the end event has completed); on the CPU from ``time.perf_counter``.
    """
    if device is not None and torch.device(device).type == "cuda":
        dev = torch.device(device)
        torch.cuda.synchronize(dev)
        with torch.cuda.device(dev):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    function()
    return time.perf_counter() - begin


def _resolve_device(surrogate: Surrogate, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    own = getattr(surrogate, "device", None)
    return torch.device(own) if own is not None else torch.device("cpu")


def _ramp_sizes(full: int, start: int) -> list[int]:
    sizes, size = [], max(1, min(start, full))
    while size < full:
        sizes.append(size)
        size *= 2
    return [*sizes, full]


def _time_mode(
    call: Callable[[int], Any],
    full: int,
    pairs_at: Callable[[int], int],
    *,
    rounds: int,
    warmup: int,
    device: torch.device,
    max_time_s: float | None,
    ramp_start: int,
) -> dict[str, float]:
    """Ramp (when bounded), warm up and time ``call(size)``; ``pairs_at(size)`` counts its pairs."""
    began = time.perf_counter()
    size = full
    if max_time_s is not None:
        per_call = max_time_s / (rounds + warmup + 1)
        sizes = _ramp_sizes(full, ramp_start)
        call(sizes[0])  # one-off costs (lazy initialisation, kernel selection) stay out of the ramp
        for size in sizes:
            seconds = time_call(lambda s=size: call(s), device)
            growth = pairs_at(min(2 * size, full)) / pairs_at(size)
            if size < full and seconds * growth > per_call:
                break
    for _ in range(warmup):
        time_call(lambda: call(size), device)
    times: list[float] = []
    while len(times) < max(1, rounds):
        times.append(time_call(lambda: call(size), device))
        if max_time_s is not None and time.perf_counter() - began > max_time_s:
            break
    median = statistics.median(times)
    n_pairs = pairs_at(size)
    return {
        "pairs_per_s": n_pairs / median if median > 0 else math.inf,
        "median_s": median,
        "rounds": float(len(times)),
        "size": float(size),
        "n_pairs": float(n_pairs),
    }


def measure_throughput(
    surrogate: Surrogate,
    measures: MeasureBatch,
    *,
    n_independent: int | None = 4096,
    n_pairwise: int | tuple[int, int] | None = 1024,
    rounds: int = 5,
    warmup: int = 1,
    device: str | torch.device | None = None,
    seed: int = 0,
    max_time_s: float | None = 60.0,
    method: str | None = None,
) -> dict[str, float]:
    """Time a surrogate's independent and pairwise throughput on ``measures``.

    Parameters
    ----------
    surrogate : Surrogate
        Fitted and configured; left on its device.
    measures : MeasureBatch
        Measures to draw from (drawn with replacement when there are fewer than needed).
    n_independent : int or None
        Row-aligned pairs per ``distance`` call (None or 0: skip).
    n_pairwise : int, (int, int) or None
        ``n`` (an ``n x n`` matrix) or ``(n, m)`` per ``pairwise`` call (None or 0: skip).
    rounds : int
        Timed rounds; the figure is their median.
    warmup : int
        Untimed calls at the final batch size before the timed rounds.
    device : str, optional
        Where the measures are put and the device synchronised (default: the surrogate's
        device, else the CPU). Time exact LP solvers on the CPU.
    seed : int
        Seeds the draw of the measures.
    max_time_s : float or None
        Soft wall-time budget per protocol (ramp, warm-up and rounds). With None the batch
        sizes are used as given, without a ramp, and exactly ``warmup`` + ``rounds`` calls
        are made per protocol.
    method : str, optional
        The method's name in error messages (default: the class name).

    The output of the last timed call of each protocol is checked (after timing, outside
    the timed region) by :func:`wbench.validate.check_predictions`: shape exactly ``(B,)``
    or ``(n, m)``, finite, non-negative (NaN only from a solver); a method that is fast
    because it returns nonsense is not timed as if it were valid.

    Returns
    -------
    dict
        ``throughput.independent_pairs_per_s`` (pairs/s), ``throughput.independent_batch``
        (pairs per call), ``throughput.independent_median_s``, ``throughput.independent_rounds``;
        ``throughput.pairwise_pairs_per_s`` (matrix entries/s), ``throughput.pairwise_rows``,
        ``throughput.pairwise_cols``, ``throughput.pairwise_median_s``,
        ``throughput.pairwise_rounds``; ``throughput.threads`` (``torch.get_num_threads()``),
        ``throughput.warmup``, and ``throughput.cuda`` (1.0 on a CUDA device, else 0.0).
        A reduced batch (time budget) shows in the batch columns.

    Raises
    ------
    wbench.validate.InvalidPredictionError
        The method returned an invalid output (call ``throughput independent`` or ``throughput pairwise``).
    """
    name = method or type(surrogate).__name__
    missing_ok = allows_missing(surrogate)
    last: dict[str, Any] = {}
    dev = _resolve_device(surrogate, device)
    rng = np.random.default_rng(seed)
    n_measures = len(measures)
    out: dict[str, float] = {
        "throughput.threads": float(torch.get_num_threads()),
        "throughput.warmup": float(warmup),
        "throughput.cuda": float(dev.type == "cuda"),
    }

    if n_independent:
        left = rng.integers(0, n_measures, size=n_independent)
        right = (left + rng.integers(1, n_measures, size=n_independent)) % n_measures if n_measures > 1 else left
        a_full, b_full = measures.index(left).to(dev), measures.index(right).to(dev)
        prepared = {  # every batch a call may use is sliced before anything is timed
            size: (a_full.index(slice(0, size)), b_full.index(slice(0, size)))
            for size in (_ramp_sizes(n_independent, 8) if max_time_s is not None else [n_independent])
        }

        def independent(size: int) -> Any:
            last["independent"] = (size, independent_step(surrogate, *prepared[size]))

        result = _time_mode(
            independent, n_independent, lambda s: s,
            rounds=rounds, warmup=warmup, device=dev, max_time_s=max_time_s, ramp_start=8,
        )
        size, output = last.pop("independent")
        check_predictions(output, n=size, method=name, call="throughput independent (distance)", allow_missing=missing_ok)
        out.update({
            "throughput.independent_pairs_per_s": result["pairs_per_s"],
            "throughput.independent_batch": result["n_pairs"],
            "throughput.independent_median_s": result["median_s"],
            "throughput.independent_rounds": result["rounds"],
        })

    if n_pairwise:
        n, m = (n_pairwise, n_pairwise) if isinstance(n_pairwise, int) else (int(n_pairwise[0]), int(n_pairwise[1]))
        rows = rng.choice(n_measures, size=n, replace=n > n_measures)
        cols = rng.choice(n_measures, size=m, replace=m > n_measures)
        x_full, y_full = measures.index(rows).to(dev), measures.index(cols).to(dev)

        def shape(size: int) -> tuple[int, int]:
            # size is the row count; columns shrink in proportion
            return size, max(1, round(m * size / n))

        blocks: dict[int, tuple[MeasureBatch, MeasureBatch]] = {}
        for size in _ramp_sizes(n, 2) if max_time_s is not None else [n]:
            r, c = shape(size)
            blocks[size] = (x_full.index(slice(0, r)), y_full.index(slice(0, c)))

        def pairwise(size: int) -> Any:
            last["pairwise"] = (size, pairwise_step(surrogate, *blocks[size]))

        result = _time_mode(
            pairwise, n, lambda s: shape(s)[0] * shape(s)[1],
            rounds=rounds, warmup=warmup, device=dev, max_time_s=max_time_s, ramp_start=2,
        )
        size, output = last.pop("pairwise")
        check_predictions(output, n=shape(size), method=name, call="throughput pairwise", allow_missing=missing_ok)
        r, c = shape(int(result["size"]))
        out.update({
            "throughput.pairwise_pairs_per_s": result["pairs_per_s"],
            "throughput.pairwise_rows": float(r),
            "throughput.pairwise_cols": float(c),
            "throughput.pairwise_median_s": result["median_s"],
            "throughput.pairwise_rounds": result["rounds"],
        })
    return out


def speedup_columns(row_throughput: Mapping[str, float], exact_throughput: Mapping[str, float]) -> dict[str, float]:
    """Speed-ups over the exact LP measured in the same run.

    ``speedup.independent`` = the method's independent pairs/s over the LP's independent
    pairs/s; ``speedup.pairwise`` = the method's pairwise pairs/s over the LP's pairwise
    pairs/s (its independent pairs/s when the LP has no pairwise figure: an LP solves every
    entry anyway). The DWE paper divides both of its figures by one LP rate (192 W2^2/s), so
    the two conventions agree up to the LP's small pairwise overhead. A ratio whose inputs are
    missing, zero or non-finite is left out.
    """
    def rate(figures: Mapping[str, float], key: str) -> float | None:
        value = figures.get(f"throughput.{key}_pairs_per_s")
        if value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) and value > 0 else None

    out: dict[str, float] = {}
    exact_independent = rate(exact_throughput, "independent")
    exact_pairwise = rate(exact_throughput, "pairwise") or exact_independent
    for key, denominator in (("independent", exact_independent), ("pairwise", exact_pairwise)):
        numerator = rate(row_throughput, key)
        if numerator is not None and denominator is not None:
            out[f"speedup.{key}"] = numerator / denominator
    return out
