"""Timing cannot be gamed by memoising: a cost model's ``e`` checked on measures no timing
round has seen."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from wbench.measures import MeasureBatch
from wbench.timing.calls import embedder, perturbed, sample_measures
from wbench.timing.rounds import RoundStats, round_stats

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate


MEMO_RATIO = 1.5
"""A method whose embedding is more than this many times faster in the timing rounds than on
never-seen measures is memoising (caching earlier inputs): its ``e`` is the never-seen one."""

COLD_CALLS = 3
"""Embedding calls on never-seen (perturbed) measures that check the rounds' ``e``."""


def _cold_embed_s(surrogate: Surrogate, measures: MeasureBatch, batch: int, *, seed: int, dev: torch.device) -> RoundStats:
    """Seconds per measure of :data:`COLD_CALLS` embedding calls, each on ``batch`` measures
    that no call has seen (a fresh draw, :func:`perturbed`)."""
    embed = embedder(surrogate)
    times = []
    for i in range(COLD_CALLS):
        x = perturbed(sample_measures(measures, batch, seed=seed + 101 + i, device=dev), seed=seed + 101 + i)
        _synchronise(dev)
        start = time.perf_counter()
        embed(x)
        _synchronise(dev)
        times.append((time.perf_counter() - start) / batch)
    return round_stats(times)


def _synchronise(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def checked_for_memoising(
    model: Any, surrogate: Surrogate, measures: MeasureBatch, *, seed: int, dev: torch.device
) -> Any:
    """``model`` (a :class:`wbench.timing.costmodel.CostModel`) if its ``e`` holds on never-seen measures, else the model with the never-seen
    ``e`` and ``memoised`` set (see :data:`MEMO_RATIO`)."""
    if not model.embedding:
        return model
    cold = _cold_embed_s(surrogate, measures, model.embed_batch, seed=seed, dev=dev)
    if cold.median_s <= MEMO_RATIO * model.embed_s:
        return model
    return replace(model, embed=cold, memoised=True)
