"""The roofline of an embedding method: its FLOPs, the machine's GEMM rate, and the bounds.

* FLOPs per measure embedded: counted by :class:`torch.utils.flop_counter.FlopCounterMode`
  on one embedding call (it counts matrix products and convolutions, 2 FLOPs per
  multiply-add; element-wise work such as ReLU, pooling and bias additions is not counted,
  so the figure is the dense-algebra work).
* The machine's dense float32 GEMM rate: ``torch.mm`` of two ``size x size`` matrices,
  ``2 size^3`` FLOPs per call, timed in rounds (:mod:`wbench.timing.rounds`) with the same threads
  and in the same run as the method.
* Achieved GFLOP/s ``= flops_per_item / e`` (``e``: seconds per measure, from the cost
  model), its fraction of the GEMM rate, and the bounds the GEMM rate implies:
  measures/s ``= gemm / flops_per_item``, independent pairs/s ``= gemm / (2 flops_per_item)``
  (each pair embeds two measures), and the pairwise physical limit, the GEMM-bound
  pairs/s of the distance matrix in matrix-product form: ``gemm / (2 k)`` for embedding
  dimension ``k`` (one multiply-add per coordinate of every pair).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from wbench.measures import MeasureBatch
from wbench.timing.costmodel import CostModel, embedder, sample_measures
from wbench.timing.rounds import (
    DEFAULT_MIN_ROUND_S,
    DEFAULT_ROUNDS,
    RoundStats,
    thread_limit,
    timed_rounds,
)
from wbench.train.frozen import eager_only

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = ["GemmRate", "Roofline", "count_flops", "embedding_flops", "gemm_call", "gemm_rate", "roofline", "roofline_of"]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn()`` as counted by torch's FLOP counter (matmuls and
    convolutions), with any frozen graph replaced by its eager forward (the counter does not
    see inside a frozen graph; the dense algebra is the same)."""
    with eager_only(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class EmbeddingFlops:
    """FLOPs of a method's embedding.

    :param per_item: FLOPs per measure embedded.
    :param batch: measures in the counted call (a method that shares work across a batch,
        e.g. DeepSets on a shared grid, costs less per item in larger batches).
    :param embedding_dim: ``k``, the embedding's length.
    """

    per_item: float
    batch: int
    embedding_dim: int


def embedding_flops(surrogate: Surrogate, measures: MeasureBatch, *, batch: int = 64, seed: int = 0) -> EmbeddingFlops:
    """Count the FLOPs of embedding ``batch`` measures drawn from ``measures`` (per item and ``k``)."""
    embed = embedder(surrogate)
    device = getattr(surrogate, "device", torch.device("cpu"))
    x = sample_measures(measures, batch, seed=seed, device=device)
    out: list[torch.Tensor] = []
    flops = count_flops(lambda: out.append(embed(x)))
    return EmbeddingFlops(per_item=flops / batch, batch=batch, embedding_dim=int(out[0].shape[1]))


@dataclass(frozen=True)
class GemmRate:
    """Measured dense GEMM rate.

    :param stats: seconds per ``torch.mm`` call (median, IQR over rounds).
    :param size: matrices are ``size x size``. :param dtype: e.g. ``"float32"``.
    :param threads: ``torch.get_num_threads()`` during the timing. :param device: where.
    """

    stats: RoundStats
    size: int
    dtype: str
    threads: int
    device: str

    @property
    def flops_per_call(self) -> float:
        """``2 size^3``."""
        return 2.0 * self.size**3

    @property
    def gflops(self) -> float:
        """Median GFLOP/s."""
        return self.flops_per_call / self.stats.median_s / 1e9

    @property
    def gflops_iqr(self) -> float:
        """IQR of the GFLOP/s (from the quartiles of the call time)."""
        return self.flops_per_call / 1e9 * (1.0 / self.stats.q1_s - 1.0 / self.stats.q3_s)

    def to_record(self) -> dict[str, float]:
        """``gemm.gflops``, ``gemm.gflops_iqr``, ``gemm.size``, ``gemm.threads``, ``gemm.rounds``."""
        return {
            "gemm.gflops": self.gflops,
            "gemm.gflops_iqr": self.gflops_iqr,
            "gemm.size": float(self.size),
            "gemm.threads": float(self.threads),
            "gemm.rounds": float(self.stats.rounds),
        }


def gemm_rate(
    *,
    size: int = 1024,
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
) -> GemmRate:
    """Time ``torch.mm`` of two ``size x size`` matrices: the machine's dense GEMM rate.

    :param threads: torch / BLAS threads (None: as set).
    :raises ValueError: ``size < 1``.
    """
    dev = torch.device(device)
    call = gemm_call(size=size, dtype=dtype, device=dev)
    with thread_limit(threads) as used:
        stats = timed_rounds(call, rounds=rounds, min_round_s=min_round_s, device=dev)
    return GemmRate(stats, size, str(dtype).removeprefix("torch."), int(used), str(dev))


def gemm_call(
    *, size: int = 1024, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Callable[[], torch.Tensor]:
    """One ``torch.mm`` of two seeded ``size x size`` matrices into a preallocated output
    (``2 size^3`` FLOPs per call): what :func:`gemm_rate` times, for callers that time it
    among other callables (``wbench retime``'s interleaved rounds).

    :raises ValueError: ``size < 1``.
    """
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    dev = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=dtype).to(dev)
    b = torch.randn(size, size, generator=generator, dtype=dtype).to(dev)
    out = torch.empty(size, size, dtype=dtype, device=dev)
    return lambda: torch.mm(a, b, out=out)


@dataclass(frozen=True)
class Roofline:
    """A method against the GEMM rate.

    :param flops: the embedding's FLOPs (:func:`embedding_flops`).
    :param gemm: the GEMM rate measured in the same run.
    :param embed_s: ``e``, seconds per measure (cost model).
    :param pair_s: ``c``, seconds per pair of the distance matrix (cost model), or None.
    """

    flops: EmbeddingFlops
    gemm: GemmRate
    embed_s: float
    pair_s: float | None = None

    @property
    def achieved_gflops(self) -> float:
        """``flops_per_item / e`` in GFLOP/s."""
        return self.flops.per_item / self.embed_s / 1e9 if self.embed_s > 0 else math.inf

    @property
    def fraction(self) -> float:
        """Achieved GFLOP/s over the GEMM rate."""
        return self.achieved_gflops / self.gemm.gflops

    @property
    def embed_bound_items_per_s(self) -> float:
        """Measures/s if the embedding ran at the GEMM rate."""
        return self.gemm.gflops * 1e9 / self.flops.per_item if self.flops.per_item > 0 else math.inf

    @property
    def independent_bound_pairs_per_s(self) -> float:
        """Independent pairs/s at the GEMM rate: ``gemm / (2 flops_per_item)``."""
        return self.embed_bound_items_per_s / 2.0

    @property
    def pairwise_bound_pairs_per_s(self) -> float:
        """The pairwise physical limit: ``gemm / (2 k)`` pairs/s (matrix-product form)."""
        return self.gemm.gflops * 1e9 / (2.0 * self.flops.embedding_dim)

    def to_record(self) -> dict[str, float]:
        """``flops.per_item``, ``flops.batch``, ``flops.embedding_dim``, the ``gemm.*`` columns,
        ``roofline.achieved_gflops``, ``roofline.fraction``, ``roofline.embed_bound_items_per_s``,
        ``roofline.independent_bound_pairs_per_s``, ``roofline.pairwise_bound_pairs_per_s``, and
        when ``pair_s`` is known ``roofline.pairwise_fraction`` (``(1 / c)`` over the pairwise bound)."""
        out = {
            "flops.per_item": self.flops.per_item,
            "flops.batch": float(self.flops.batch),
            "flops.embedding_dim": float(self.flops.embedding_dim),
            **self.gemm.to_record(),
            "roofline.achieved_gflops": self.achieved_gflops,
            "roofline.fraction": self.fraction,
            "roofline.embed_bound_items_per_s": self.embed_bound_items_per_s,
            "roofline.independent_bound_pairs_per_s": self.independent_bound_pairs_per_s,
            "roofline.pairwise_bound_pairs_per_s": self.pairwise_bound_pairs_per_s,
        }
        if self.pair_s is not None and self.pair_s > 0:
            out["roofline.pairwise_fraction"] = (1.0 / self.pair_s) / self.pairwise_bound_pairs_per_s
        return out


def roofline(
    surrogate: Surrogate,
    measures: MeasureBatch,
    *,
    embed_s: float,
    pair_s: float | None = None,
    gemm: GemmRate | None = None,
    flops_batch: int,
    threads: int | None = None,
) -> Roofline:
    """The roofline of ``surrogate``: its FLOPs, the GEMM rate (measured now unless given) and the bounds.

    :param embed_s: ``e`` from the cost model, measured with the same ``threads``.
    :param flops_batch: the batch ``e`` was timed at (the cost model's ``embed_batch``): the
        FLOPs are counted at the same batch, since a method that shares work across a batch
        (DeepSets on a shared grid) costs fewer FLOPs per item in a larger one.
    :param pair_s: ``c`` from the cost model (optional).
    """
    flops = embedding_flops(surrogate, measures, batch=flops_batch)
    if gemm is None:
        gemm = gemm_rate(threads=threads, device=getattr(surrogate, "device", "cpu"))
    return Roofline(flops, gemm, float(embed_s), pair_s)


def roofline_of(surrogate: Surrogate, measures: MeasureBatch, model: CostModel, gemm: GemmRate) -> Roofline:
    """The roofline of ``surrogate`` from its measured cost ``model`` (``e``, ``c`` and the
    batch ``e`` was timed at, where its FLOPs are counted) against a measured ``gemm`` rate
    (of the same device and threads): what a cell, the GPU run and the cost-model
    benchmark all report."""
    return roofline(surrogate, measures, embed_s=model.embed_s, pair_s=model.pair_s, gemm=gemm,
                    flops_batch=model.embed_batch)

