"""Direct timings: a method's real ``pairwise`` of ``n x n`` blocks, timed beside the cost
model that predicts them (the check of the cost model's predictions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from wbench.evaluation import is_embedding
from wbench.measures import MeasureBatch
from wbench.surrogate import pairwise_euclidean
from wbench.timing.calls import embedder, sample_measures
from wbench.timing.rounds import RoundStats
from wbench.timing.throughput import pairwise_step

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate


@dataclass(frozen=True)
class DirectTiming:
    """One direct timing of the real ``pairwise`` call on an ``n x m`` block.

    :param n: rows. :param m: columns.
    :param stats: seconds per call (median, IQR over rounds).
    :param predicted_pairs_per_s: the cost model's prediction for this block.
    """

    n: int
    m: int
    stats: RoundStats
    predicted_pairs_per_s: float

    @property
    def pairs_per_s(self) -> float:
        """Measured pairs/s (``n m`` over the median seconds per call)."""
        return self.n * self.m / self.stats.median_s if self.stats.median_s > 0 else math.inf

    @property
    def relative_error(self) -> float:
        """``predicted / measured - 1``."""
        return self.predicted_pairs_per_s / self.pairs_per_s - 1.0


def with_direct_timings(model: Any, stats: Mapping[str, RoundStats], sizes: Sequence[int]) -> Any:
    """``model`` with the ``c`` of every block timed in ``stats`` (``pair.<n>``, seconds per
    call of an ``n x n`` matrix; added to the blocks it has) and the direct timings of ``sizes``
    (``direct.<n>``), each predicted with the ``c`` of its nearest timed block."""
    timed = {n: stats[f"pair.{n}"].per_unit(n * n) for n in set(sizes) if f"pair.{n}" in stats}
    model = replace(model, pair_by_block=tuple(sorted({**dict(model.pair_by_block), **timed}.items())))
    return replace(model, direct=tuple(DirectTiming(n, n, stats[f"direct.{n}"], model.pairwise_pairs_per_s(n))
                                       for n in sizes))


def direct_calls(
    surrogate: Surrogate,
    measures: MeasureBatch,
    sizes: Sequence[int],
    *,
    pair_block: tuple[int, int],
    seed: int,
    dev: torch.device,
) -> dict[str, Callable[[], Any]]:
    """Timed calls ``direct.<n>``: the real ``pairwise`` of an ``n x n`` block for each size
    ``n`` (measures drawn with seeds ``seed + 3 + n``, ``seed + 4 + n`` on ``dev``); for an
    embedding method also ``pair.<n>``, the distance matrix of those measures' embeddings
    (embedded now), on every such block but ``pair_block`` (timed already), so that ``c``
    can be read at the block a prediction is made for."""
    embed = embedder(surrogate) if is_embedding(surrogate) else None
    chunk = int(getattr(surrogate, "pairwise_chunk", 4096))
    fns: dict[str, Callable[[], Any]] = {}
    for n in sizes:
        x = sample_measures(measures, n, seed=seed + 3 + n, device=dev)
        y = sample_measures(measures, n, seed=seed + 4 + n, device=dev)
        fns[f"direct.{n}"] = lambda x=x, y=y: pairwise_step(surrogate, x, y)
        if embed is not None and (n, n) != tuple(pair_block):
            ex, ey = embed(x), embed(y)
            fns[f"pair.{n}"] = lambda ex=ex, ey=ey: pairwise_euclidean(ex, ey, chunk=chunk)
    return fns
