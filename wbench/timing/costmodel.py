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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from wbench.evaluation import is_embedding
from wbench.measures import MeasureBatch
from wbench.metrics import _check_costs, pairwise_pairs_per_s  # noqa: F401 (re-exported)
from wbench.timing.calls import (  # noqa: F401 (re-exported: the calls a cost model times)
    check_request,
    embedder,
    embedding_calls,
    fresh_copies,
    perturbed,
    sample_measures,
    solver_calls,
)
from wbench.timing.direct import DirectTiming, direct_calls, with_direct_timings
from wbench.timing.memo import checked_for_memoising
from wbench.timing.rounds import (
    DEFAULT_MIN_ROUND_S,
    DEFAULT_ROUNDS,
    RoundStats,
    interleaved_rounds,
    round_stats,
    thread_limit,
)

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
    speed hits every surrogate alike. Every surrogate draws the same measures (``seed``).

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
    extra = dict(extra or {})
    check_request(surrogates, extra, batches, solver_batch, (rows, cols), direct_n)
    sizes = [int(n) for n in direct_n]
    with thread_limit(threads) as used_threads:
        fns, shapes = _timed_calls(surrogates, measures, batches, (rows, cols), solver_batch, sizes, seed, dev)
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


def _timed_calls(
    surrogates: Mapping[str, Surrogate], measures: MeasureBatch, batches: Mapping[str, int],
    block: tuple[int, int], solver_batch: int, sizes: Sequence[int], seed: int, dev: torch.device,
) -> tuple[dict[str, Callable[[], Any]], dict[str, tuple[bool, int, tuple[int, int]]]]:
    """Every surrogate's timed calls (``"name/call"`` -> callable) and its shape: whether it
    embeds, its embedding batch and the block its ``c`` is timed on."""
    fns: dict[str, Callable[[], Any]] = {}
    shapes: dict[str, tuple[bool, int, tuple[int, int]]] = {}
    for name, surrogate in surrogates.items():
        if is_embedding(surrogate):
            # distinct measures only: an embedding that solves each distinct measure once per
            # call (lot-residual) would otherwise be timed on repeats, faster than on new ones
            batch = min(batches[name], len(measures))
            calls = embedding_calls(surrogate, measures, embed_batch=batch, rows=block[0], cols=block[1], seed=seed,
                                    dev=dev)
            shapes[name] = (True, batch, block)
        else:
            calls = solver_calls(surrogate, measures, solver_batch=solver_batch, seed=seed, dev=dev)
            shapes[name] = (False, 0, (solver_batch, 1))
        calls.update(direct_calls(surrogate, measures, sizes, pair_block=shapes[name][2], seed=seed, dev=dev))
        fns.update({f"{name}/{call}": fn for call, fn in calls.items()})
    return fns, shapes


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


