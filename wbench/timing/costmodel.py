"""The throughput cost model: per-item embedding cost and per-pair distance cost.

An embedding method (``d(x, y) = |E(x) - E(y)|``: every learned
:class:`~wbench.surrogate.EmbeddingSurrogate`, and the LOT and sliced embeddings) spends

* ``e`` seconds per measure embedded (``embed``; measured on a batch of ``embed_batch``
  measures, the way ``distance`` and ``pairwise`` embed), and
* ``c`` seconds per pair of its distance matrix, measured on precomputed embeddings alone
  (``pairwise_euclidean`` of an ``n x m`` block). ``c`` depends on the block: large blocks
  write their output past the caches, a GEMM-bound distance (a wide embedding) runs the
  GEMM at a block-dependent efficiency, and ``torch.cdist`` takes a slow direct path when
  both sides have at most 25 rows (measured on one idle core: DeepKENN, 2,896 dimensions,
  1.8 us per pair at 16 x 16 against 49-65 ns at 1,024-4,096; Naive, 64 dimensions,
  1.9 ns at 1,024 against 5.3 ns at 4,096). So ``c`` is timed on the block whose rate is
  reported (``pair_block``, the headline ``c`` and the asymptote ``1 / c``) and on every
  block of a direct timing; a prediction at ``n`` uses ``c`` of the timed block nearest
  ``n`` (:meth:`CostModel.pair_s_at`).

Then, for any batch size (the quantities the leaderboard reports):

* independent pairs/s (each pair embeds both sides): ``1 / (2 e + c)``;
* pairwise pairs/s for an ``n x m`` matrix (each measure embedded once):
  ``n m / ((n + m) e + n m c)``, which grows with ``n`` towards the asymptote ``1 / c``.

One more term is measured because small blocks need it: ``o``, the fixed seconds of one
``pairwise`` call (Python, the per-layer dispatch of two small embedding calls, the
centring), taken from a timed ``1 x 1`` call as ``o = t(1 x 1) - 2 e - c`` (at least 0).
The predictions of direct timings use ``n m / (o + (n + m) e + n m c)``; ``o`` matters
only for small ``n`` (on an idle 2-core CPU a KENN model's ``o`` is worth roughly ten
embeddings) and is reported as ``cost.call_s``.

A solver (nothing to embed) has only a per-pair cost ``c`` (seconds per pair of a
row-aligned ``distance`` call); its pairwise rate is its per-pair rate, flagged by
``cost.pairwise_is_per_pair = 1``.

:func:`measure_cost_model` measures ``e`` and ``c`` with rounds of a minimum duration
(:mod:`wbench.timing.rounds`; median and IQR) and, at a stated list of ``n``, direct timings of
the real ``pairwise`` call to compare with the prediction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wbench.evaluation import is_embedding
from wbench.measures import MeasureBatch
from wbench.metrics import _check_costs, pairwise_pairs_per_s  # noqa: F401 (re-exported)
from wbench.surrogate import pairwise_euclidean
from wbench.timing.rounds import (
    DEFAULT_MIN_ROUND_S,
    DEFAULT_ROUNDS,
    RoundStats,
    interleaved_rounds,
    round_stats,
    thread_limit,
)
from wbench.timing.throughput import independent_step, pairwise_step

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = [
    "CostModel",
    "DirectTiming",
    "direct_calls",
    "embedder",
    "independent_pairs_per_s",
    "measure_cost_model",
    "measure_cost_models",
    "pairwise_pairs_per_s",
    "sample_measures",
    "with_direct_timings",
]


def independent_pairs_per_s(embed_s: float, pair_s: float) -> float:
    """Independent pairs/s ``1 / (2 e + c)`` from ``e`` (s/measure) and ``c`` (s/pair).

    :raises ValueError: a negative or non-finite cost, or both zero.
    """
    _check_costs(embed_s, pair_s)
    return 1.0 / (2.0 * embed_s + pair_s)


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


@dataclass(frozen=True)
class CostModel:
    """Measured costs of one method, and the rates they imply.

    :param embedding: True for an embedding method, False for a solver (no ``embed_s``).
    :param embed: seconds per measure embedded (None for a solver).
    :param pair: seconds per pair (distance matrix of embeddings, or a solver's pair).
    :param embed_batch: measures per timed embedding call (0 for a solver).
    :param pair_block: ``(n, m)`` of the timed distance matrix (``(B, 1)`` for a solver's
        row-aligned batch of ``B`` pairs).
    :param threads: ``torch.get_num_threads()`` during the measurement.
    :param device: ``"cpu"``, ``"cuda:0"`` ...
    :param min_round_s: seconds each round lasted at least.
    :param direct: direct timings of ``pairwise`` at the stated sizes.
    :param call_s: ``o``, fixed seconds per ``pairwise`` call (0 for a solver: not measured).
    :param pair_by_block: ``(n, per-pair stats)`` of more ``n x n`` distance blocks timed for
        the predictions at those sizes (ascending ``n``; empty: ``c`` of ``pair_block`` for all).
    """

    embedding: bool
    embed: RoundStats | None
    pair: RoundStats
    embed_batch: int
    pair_block: tuple[int, int]
    threads: int
    device: str
    min_round_s: float
    direct: tuple[DirectTiming, ...] = field(default=())
    call_s: float = 0.0
    pair_by_block: tuple[tuple[int, RoundStats], ...] = field(default=())
    memoised: bool = False

    @property
    def embed_s(self) -> float:
        """``e``: median seconds per measure (0 for a solver)."""
        return self.embed.median_s if self.embed is not None else 0.0

    @property
    def pair_s(self) -> float:
        """``c``: median seconds per pair."""
        return self.pair.median_s

    def pair_s_at(self, n: int, m: int | None = None) -> float:
        """``c`` (s/pair) for an ``n x m`` block: that of the timed block whose side is nearest
        ``sqrt(n m)`` on a log scale (ties: the larger block); a solver's ``c`` everywhere."""
        if not self.embedding or not self.pair_by_block:
            return self.pair_s
        side = math.sqrt(n * (n if m is None else m))
        timed = [(math.sqrt(self.pair_block[0] * self.pair_block[1]), self.pair_s)]
        timed += [(float(b), stats.median_s) for b, stats in self.pair_by_block]
        return min(timed, key=lambda item: (abs(math.log(item[0] / side)), -item[0]))[1]

    def independent_pairs_per_s(self) -> float:
        """``1 / (2 e + c)`` (a solver: ``1 / c``)."""
        return independent_pairs_per_s(self.embed_s, self.pair_s)

    def pairwise_pairs_per_s(self, n: int, m: int | None = None, *, with_call: bool = True) -> float:
        """``n m / (o + (n + m) e + n m c)`` with ``c`` of the nearest timed block
        (:meth:`pair_s_at`; ``with_call=False``: ``o = 0``; a solver: ``1 / c``)."""
        return pairwise_pairs_per_s(self.embed_s, self.pair_s_at(n, m), n, m, call_s=self.call_s if with_call else 0.0)

    def asymptote_pairs_per_s(self) -> float:
        """``1 / c``: the pairwise rate as ``n`` grows without bound."""
        return 1.0 / self.pair_s if self.pair_s > 0 else math.inf

    def to_record(self, *, pairwise_n: Sequence[int] = ()) -> dict[str, float]:
        """Flat record columns (all floats).

        ``cost.embedding`` (1/0), ``cost.embed_s``, ``cost.embed_s_iqr``, ``cost.embed_batch``,
        ``cost.pair_s``, ``cost.pair_s_iqr``, ``cost.pair_rows``, ``cost.pair_cols``, ``cost.call_s``,
        ``cost.rounds``, ``cost.min_round_s``, ``cost.threads``, ``cost.cuda``,
        ``cost.independent_pairs_per_s``, ``cost.asymptote_pairs_per_s``,
        ``cost.pairwise_is_per_pair`` (1 for a solver), ``cost.pair_s.<n>`` and
        ``cost.pair_s_iqr.<n>`` (``c`` of each further ``n x n`` block timed),
        ``cost.pairwise.<n>`` (predicted pairs/s of an ``n x n`` matrix, for each
        ``pairwise_n`` and each direct size, with ``c`` of the nearest timed block), and
        per direct timing ``cost.direct.<n>`` (measured pairs/s), ``cost.direct.<n>_iqr``
        (IQR of the pairs/s, from the quartiles of the call time) and
        ``cost.direct_error.<n>`` (predicted / measured - 1).
        """
        out: dict[str, float] = {
            "cost.embedding": float(self.embedding),
            "cost.embed_s": self.embed_s,
            "cost.embed_s_iqr": self.embed.iqr_s if self.embed is not None else 0.0,
            "cost.embed_batch": float(self.embed_batch),
            "cost.pair_s": self.pair_s,
            "cost.pair_s_iqr": self.pair.iqr_s,
            "cost.pair_rows": float(self.pair_block[0]),
            "cost.pair_cols": float(self.pair_block[1]),
            "cost.call_s": self.call_s,
            "cost.rounds": float(self.pair.rounds),
            "cost.min_round_s": self.min_round_s,
            "cost.threads": float(self.threads),
            "cost.cuda": float(self.device.startswith("cuda")),
            "cost.memoised": float(self.memoised),
            "cost.independent_pairs_per_s": self.independent_pairs_per_s(),
            "cost.asymptote_pairs_per_s": self.asymptote_pairs_per_s(),
            "cost.pairwise_is_per_pair": float(not self.embedding),
        }
        for block, stats in self.pair_by_block:
            out[f"cost.pair_s.{block}"] = stats.median_s
            out[f"cost.pair_s_iqr.{block}"] = stats.iqr_s
        for n in sorted({*pairwise_n, *(d.n for d in self.direct if d.n == d.m)}):
            out[f"cost.pairwise.{n}"] = self.pairwise_pairs_per_s(n)
        for d in self.direct:
            key = str(d.n) if d.n == d.m else f"{d.n}x{d.m}"
            pairs = d.n * d.m
            out[f"cost.direct.{key}"] = d.pairs_per_s
            out[f"cost.direct.{key}_iqr"] = pairs / d.stats.q1_s - pairs / d.stats.q3_s if d.stats.q1_s > 0 else 0.0
            out[f"cost.direct_error.{key}"] = d.relative_error
        return out


def embedder(surrogate: Surrogate) -> Callable[[MeasureBatch], torch.Tensor]:
    """The embedding call that ``distance`` / ``pairwise`` use: ``embed_all`` when there is one
    (learned models: evaluation mode, chunks), else ``embed``; run under inference mode.

    :raises TypeError: the surrogate has no ``embed``.
    """
    if not is_embedding(surrogate):
        raise TypeError(f"{type(surrogate).__name__} has no embed(): it is a solver, time it with its pairs")
    function = getattr(surrogate, "embed_all", None) or surrogate.embed

    @torch.inference_mode()
    def run(x: MeasureBatch) -> torch.Tensor:
        return function(x)

    return run


def sample_measures(measures: MeasureBatch, n: int, *, seed: int = 0, device: str | torch.device = "cpu") -> MeasureBatch:
    """``n`` measures drawn from ``measures`` (without replacement when there are enough), on ``device``."""
    if n < 1:
        raise ValueError(f"need at least one measure, got n={n}")
    if len(measures) == 0:
        raise ValueError("cannot draw from an empty MeasureBatch")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(measures), size=n, replace=n > len(measures))
    return measures.index(idx).to(device)


def _device_of(surrogate: Surrogate, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    own = getattr(surrogate, "device", None)
    return torch.device(own) if own is not None else torch.device("cpu")


def measure_cost_model(
    surrogate: Surrogate,
    measures: MeasureBatch,
    *,
    embed_batch: int = 1024,
    pair_block: int | tuple[int, int] = 4096,
    solver_batch: int = 64,
    direct_n: Sequence[int] = (),
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
    warmup: int = 1,
    threads: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> CostModel:
    """Measure ``e`` and ``c`` of ``surrogate`` (see the module docstring), and direct timings.

    :param surrogate: fitted; left on its device (an embedding model in evaluation mode
        through ``embed_all``).
    :param measures: measures to draw from (with replacement when there are too few).
    :param embed_batch: measures per timed embedding call (the per-measure cost is the
        call time over this); capped at ``len(measures)`` so that they are distinct.
    :param pair_block: ``n`` or ``(n, m)`` of the timed distance matrix of embeddings. ``c``
        grows with the block once the output matrix leaves the caches (it is then written
        to memory: on a loaded 2-core CPU, k = 64, one thread, 5.3 / 13.4 / 14.6 / 16.4 /
        19.1 ns per pair at n = 1024 / 2048 / 4096 / 8192 / 16384), so time it at the ``n``
        whose pairwise rate is reported.
    :param solver_batch: row-aligned pairs per timed ``distance`` call of a solver.
    :param direct_n: sizes ``n`` at which the real ``pairwise(x, y)`` of an ``n x n``
        block is timed directly (a solver: ``pairwise`` too, each entry solved).
    :param rounds: rounds per figure (median and IQR over them).
    :param min_round_s: seconds each round lasts at least.
    :param warmup: untimed calls before each figure's rounds.
    :param threads: torch / BLAS threads for the whole measurement (None: as set).
    :param device: where measures go and what is synchronised (default: the surrogate's).
    :param seed: seeds the draws of measures.
    :returns: a :class:`CostModel` (``to_record()`` gives its record columns).
    """
    dev = _device_of(surrogate, device)
    models, _ = measure_cost_models(
        {"": surrogate}, measures, embed_batch=embed_batch, pair_block=pair_block, solver_batch=solver_batch,
        direct_n=direct_n, rounds=rounds, min_round_s=min_round_s, warmup=warmup, threads=threads, device=dev,
        seed=seed,
    )
    return models[""]


def measure_cost_models(
    surrogates: Mapping[str, Surrogate],
    measures: MeasureBatch,
    *,
    embed_batch: int | Mapping[str, int] = 1024,
    pair_block: int | tuple[int, int] = 4096,
    solver_batch: int = 64,
    direct_n: Sequence[int] = (),
    rounds: int = DEFAULT_ROUNDS,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
    warmup: int = 1,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    extra: Mapping[str, Callable[[], Any]] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, CostModel], dict[str, RoundStats]]:
    """:func:`measure_cost_model` of several surrogates in one interleaved series of rounds.

    Round ``r`` times every surrogate's calls in turn (A's ``e``, ``c``, ``o``, then B's ...,
    then the ``extra`` callables) before round ``r + 1`` starts, so a drift of the machine's
    speed during the measurement hits every surrogate alike: differences between them (the
    seeds of one architecture, say) are not the machine's drift. Every surrogate draws the
    same measures (the same ``seed``).

    :param surrogates: name -> fitted surrogate, all on ``device``.
    :param embed_batch: measures per timed embedding call, for all or per surrogate name
        (a name left out: 1,024), e.g. fewer for an embedding that solves an LP per measure.
        Capped at ``len(measures)``, so that the timed batch holds distinct measures (the
        cap is the ``embed_batch`` of the returned models).
    :param direct_n: sizes ``n`` of direct ``pairwise`` timings; an embedding method's ``c`` is
        also timed on each ``n x n`` block (``pair_by_block``) and predicts that size.
    :param extra: more name -> zero-argument callables timed in the same rounds (seconds per
        call, returned as they are), e.g. a reference solver; names must not contain ``/``.
    :param on_round: progress, called as ``on_round(done, rounds)`` after each round.
    :returns: name -> :class:`CostModel`, and the ``extra`` callables' round statistics.
    :raises ValueError: no surrogate and no extra callable, a bad size, or a ``/`` in a name.
    """
    dev = torch.device(device)
    rows, cols = (pair_block, pair_block) if isinstance(pair_block, int) else pair_block
    batches = {name: embed_batch if isinstance(embed_batch, int) else embed_batch.get(name, 1024) for name in surrogates}
    for batch in batches.values() or [1024]:
        _check_sizes(embed_batch=batch, solver_batch=solver_batch, rows=rows, cols=cols, direct_n=direct_n)
    extra = dict(extra or {})
    if not surrogates and not extra:
        raise ValueError("measure_cost_models needs at least one surrogate or extra callable")
    bad = [name for name in [*surrogates, *extra] if "/" in name]
    if bad:
        raise ValueError(f"names must not contain '/': {bad}")
    sizes = [int(n) for n in direct_n]
    fns: dict[str, Callable[[], Any]] = {}
    shapes: dict[str, tuple[bool, int, tuple[int, int]]] = {}
    with thread_limit(threads) as used_threads:
        for name, surrogate in surrogates.items():
            embedding = is_embedding(surrogate)
            if embedding:
                # distinct measures only: an embedding that solves each distinct measure once per
                # call (lot-residual) would otherwise be timed on repeats, faster than on new ones
                batch = min(batches[name], len(measures))
                calls = _embedding_calls(surrogate, measures, embed_batch=batch, rows=rows, cols=cols, seed=seed,
                                         dev=dev)
                shapes[name] = (True, batch, (rows, cols))
            else:
                calls = _solver_calls(surrogate, measures, solver_batch=solver_batch, seed=seed, dev=dev)
                shapes[name] = (False, 0, (solver_batch, 1))
            calls.update(direct_calls(surrogate, measures, sizes, pair_block=shapes[name][2], seed=seed, dev=dev))
            fns.update({f"{name}/{call}": fn for call, fn in calls.items()})
        fns.update(extra)
        # one interleaved series: drift in the machine's load hits e, c, the direct timings
        # and every surrogate alike
        stats = interleaved_rounds(fns, rounds=rounds, min_round_s=min_round_s, warmup=warmup, device=dev,
                                   on_round=on_round)
    models = {}
    for name, (embedding, batch, block) in shapes.items():
        own = {key.partition("/")[2]: value for key, value in stats.items() if key.partition("/")[0] == name and "/" in key}
        model = _cost_model(
            own, embedding=embedding, embed_batch=batch, block=block, sizes=sizes,
            threads=int(used_threads), device=str(dev), min_round_s=float(min_round_s),
        )
        with thread_limit(threads):
            models[name] = checked_for_memoising(model, surrogates[name], measures, seed=seed, dev=dev)
    return models, {name: stats[name] for name in extra}


def _cost_model(
    stats: Mapping[str, RoundStats],
    *,
    embedding: bool,
    embed_batch: int,
    block: tuple[int, int],
    sizes: Sequence[int],
    threads: int,
    device: str,
    min_round_s: float,
) -> CostModel:
    """The :class:`CostModel` of the timed calls' round ``stats`` (seconds per call): ``e`` per
    measure of ``embed_batch``, ``c`` per pair of ``block``, the call overhead ``o`` (embedding
    methods) and the direct timings at ``sizes`` with the rates ``e``, ``c``, ``o`` predict."""
    e_stats = _minus(stats["embed"], stats["copy"]).per_unit(embed_batch) if embedding else None
    c_stats = stats["pair"].per_unit(block[0] * block[1])
    e, c = (e_stats.median_s if e_stats is not None else 0.0), c_stats.median_s
    o = max(0.0, stats["call"].median_s - 2 * e - c) if embedding else 0.0
    model = CostModel(
        embedding=embedding, embed=e_stats, pair=c_stats, embed_batch=embed_batch, pair_block=block,
        threads=threads, device=device, min_round_s=min_round_s, call_s=o,
    )
    return with_direct_timings(model, stats, sizes)


def _minus(calls: RoundStats, overhead: RoundStats) -> RoundStats:
    """Round statistics of ``calls`` less the ``overhead`` timed in the same rounds (never below 0)."""
    return round_stats([max(0.0, a - b) for a, b in zip(calls.per_round_s, overhead.per_round_s, strict=True)], calls.calls)


def with_direct_timings(model: CostModel, stats: Mapping[str, RoundStats], sizes: Sequence[int]) -> CostModel:
    """``model`` with the ``c`` of every block timed in ``stats`` (``pair.<n>``, seconds per
    call of an ``n x n`` matrix; added to the blocks it has) and the direct timings of ``sizes``
    (``direct.<n>``), each predicted with the ``c`` of its nearest timed block."""
    timed = {n: stats[f"pair.{n}"].per_unit(n * n) for n in set(sizes) if f"pair.{n}" in stats}
    model = replace(model, pair_by_block=tuple(sorted({**dict(model.pair_by_block), **timed}.items())))
    return replace(model, direct=tuple(DirectTiming(n, n, stats[f"direct.{n}"], model.pairwise_pairs_per_s(n))
                                       for n in sizes))


def _check_sizes(*, embed_batch: int, solver_batch: int, rows: int, cols: int, direct_n: Sequence[int]) -> None:
    """Refuse a batch or block size that is not a positive integer (``ValueError`` naming it)."""
    for name, value in (("embed_batch", embed_batch), ("solver_batch", solver_batch), ("pair_block rows", rows), ("pair_block cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    bad = [n for n in direct_n if int(n) < 1]
    if bad:
        raise ValueError(f"direct_n sizes must be positive, got {bad}")


def _embedding_calls(
    surrogate: Surrogate, measures: MeasureBatch, *, embed_batch: int, rows: int, cols: int, seed: int, dev: torch.device
) -> dict[str, Callable[[], Any]]:
    """The timed calls of an embedding method: ``embed`` (``embed_batch`` measures), ``pair``
    (the ``rows x cols`` distance matrix of embeddings) and ``call`` (one 1 x 1 ``pairwise``).

    Draws the measures (seeds ``seed``, ``seed + 1``, ``seed + 2``, ``seed + 5``) on ``dev`` and
    embeds the block's rows and columns now, outside the timed calls.
    """
    embed = embedder(surrogate)
    fresh_batch = fresh_copies(sample_measures(measures, embed_batch, seed=seed, device=dev))
    ex = embed(sample_measures(measures, rows, seed=seed + 1, device=dev))
    ey = embed(sample_measures(measures, cols, seed=seed + 2, device=dev))
    chunk = int(getattr(surrogate, "pairwise_chunk", 4096))
    fns: dict[str, Callable[[], Any]] = {}
    fns["embed"] = lambda: embed(fresh_batch())
    fns["copy"] = fresh_batch  # timed in the same rounds and subtracted from ``embed``
    fns["pair"] = lambda: pairwise_euclidean(ex, ey, chunk=chunk)
    one_x = fresh_copies(sample_measures(measures, 1, seed=seed + 5, device=dev))
    one_y = fresh_copies(sample_measures(measures, 1, seed=seed, device=dev))
    fns["call"] = lambda: pairwise_step(surrogate, one_x(), one_y())
    return fns


def fresh_copies(batch: MeasureBatch) -> Callable[[], MeasureBatch]:
    """A zero-argument callable returning a new copy of ``batch`` (new tensor storage) at every
    call, so that a timed call never gets the tensors of an earlier one: a method that caches
    its results by tensor identity or address gains nothing from the repeats of a timing round."""
    per_measure_support = batch.support.dim() == 3

    def copy() -> MeasureBatch:
        support = batch.support.clone() if per_measure_support else batch.support
        return replace(batch, weights=batch.weights.clone(), support=support)

    return copy


def perturbed(batch: MeasureBatch, *, seed: int) -> MeasureBatch:
    """``batch`` with every weight scaled by ``1 + 1e-6 u`` (``u`` uniform in [0, 1), seeded) and
    renormalised: measures no timing round has seen (a cache keyed by content misses), whose W2
    moves by about 1e-6 relative."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch.weights.shape, generator=generator, dtype=batch.weights.dtype)
    weights = batch.weights * (1 + 1e-6 * noise.to(batch.weights.device))
    return replace(batch, weights=weights / weights.sum(dim=1, keepdim=True))


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
    model: CostModel, surrogate: Surrogate, measures: MeasureBatch, *, seed: int, dev: torch.device
) -> CostModel:
    """``model`` if its ``e`` holds on never-seen measures, else the model with the never-seen
    ``e`` and ``memoised`` set (see :data:`MEMO_RATIO`)."""
    if not model.embedding:
        return model
    cold = _cold_embed_s(surrogate, measures, model.embed_batch, seed=seed, dev=dev)
    if cold.median_s <= MEMO_RATIO * model.embed_s:
        return model
    return replace(model, embed=cold, memoised=True)


def _solver_calls(
    surrogate: Surrogate, measures: MeasureBatch, *, solver_batch: int, seed: int, dev: torch.device
) -> dict[str, Callable[[], Any]]:
    """The timed call of a solver: ``pair``, one ``distance`` call on ``solver_batch`` row-aligned
    pairs (drawn with seeds ``seed + 1``, ``seed + 2`` on ``dev``)."""
    a = sample_measures(measures, solver_batch, seed=seed + 1, device=dev)
    b = sample_measures(measures, solver_batch, seed=seed + 2, device=dev)
    return {"pair": lambda: independent_step(surrogate, a, b)}


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
