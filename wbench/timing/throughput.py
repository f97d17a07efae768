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

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from wbench.measures import MeasureBatch

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = [
    "independent_step",
    "pairwise_step",
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


