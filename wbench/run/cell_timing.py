"""The timing of one cell: cost model, direct timings, fair speed-ups and roofline.

What a cell records under ``outcome.throughput`` (all flat floats):

* the cost model (:func:`wbench.timing.costmodel.measure_cost_model`, ``cost.*``): an embedding
  method's ``e`` (s/measure), ``c`` (s/pair, timed on an ``n x n`` block at the suite's
  ``pairwise_size`` ``n``) and call overhead ``o``; a solver's per-pair cost only
  (``cost.pairwise_is_per_pair = 1``); on the CPU with ``[evaluation] cost_threads`` threads
  (default 1, the papers' "1 CPU"), stated as ``cost.threads``;
* direct timings of the real ``pairwise`` call at ``[evaluation] direct_n`` (embedding
  methods), skipping a size whose predicted timing would not fit its share of
  ``timing_max_s`` (``cost.direct_skipped.<n>`` = the predicted seconds per call), with ``c``
  timed on each such block too (``cost.pair_s.<n>``: ``c`` depends on the block, and each
  direct timing is predicted with its own block's ``c``);
* the fair speed-ups against ``[evaluation] speedup_reference``
  (:func:`wbench.timing.denominators.fair_speedups`, ``speedup.one_core.*`` and
  ``speedup.all_cores.*``, interleaved rounds, the real thread and worker counts), on the
  CPU only (a GPU run has no speed-ups: the LP has no GPU path);
* the roofline of a torch embedding network (``flops.*``, ``gemm.*``, ``roofline.*``);
* the older columns, now derived from the above so that older consumers keep working:
  ``throughput.independent_pairs_per_s = 1 / (2 e + c)``,
  ``throughput.pairwise_pairs_per_s`` at ``n = pairwise_size`` from ``e, c, o``,
  ``speedup.independent`` (the measured speed-up on the side whose threads match the cost
  model's: one core by default), ``speedup.pairwise`` (the cost model's pairwise rate at
  ``n`` over that side's reference rate) and ``exact.throughput.independent_pairs_per_s``
  (that side's reference rate).

Every figure is a median over at least :data:`MIN_ROUNDS` rounds of at least
``[evaluation] min_round_s`` seconds each (:mod:`wbench.timing.rounds`), stated with its IQR.
``cost.timing_s`` is the wall time all of this took in the cell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from wbench.errors import WbenchError
from wbench.measures import MeasureBatch
from wbench.timing.costmodel import (
    CostModel,
    direct_calls,
    measure_cost_model,
    sample_measures,
    with_direct_timings,
)
from wbench.timing.rounds import interleaved_rounds, thread_limit
from wbench.timing.throughput import independent_step, pairwise_step
from wbench.validate import allows_missing, check_predictions

if TYPE_CHECKING:
    from wbench.run.suite import EvaluationSpec
    from wbench.surrogate import Surrogate

__all__ = ["MIN_ROUNDS", "SOLVER_BATCH", "cell_timing", "direct_timings", "legacy_columns", "speedup_columns"]

MIN_ROUNDS = 5
"""Rounds every figure takes at least, whatever ``timing_rounds`` says."""
SOLVER_BATCH = 16
"""Row-aligned pairs per timed call of a solver (its rounds repeat the call)."""
EMBED_BATCH = 1024
"""Measures per timed embedding call at most (``independent_pairs`` when smaller)."""


def direct_timings(
    surrogate: Surrogate,
    measures: MeasureBatch,
    model: CostModel,
    sizes: tuple[int, ...],
    *,
    rounds: int,
    min_round_s: float,
    budget_s: float,
    threads: int | None,
    device: torch.device,
    seed: int = 0,
) -> tuple[CostModel, dict[int, float]]:
    """Time ``pairwise`` of ``n x n`` blocks for the ``sizes`` that fit the budget, and ``c`` on
    each such block (the distance matrix of precomputed embeddings, in the same rounds).

    A size is timed when its predicted cost, ``2 (rounds + 1) max(t, min_round_s)`` for ``t``
    the cost model's predicted seconds per call (two timed calls: ``pairwise`` and the block's
    distance matrix), is at most ``budget_s / len(sizes)``.

    :returns: ``model`` with the direct timings (``direct``) and the blocks' ``c``
        (``pair_by_block``; each timing's prediction uses its own block's ``c``), and, for
        each skipped size, its predicted seconds per call.
    """
    share = budget_s / max(1, len(sizes))
    skipped: dict[int, float] = {}
    timed: list[int] = []
    for n in sizes:
        predicted_s = n * n / model.pairwise_pairs_per_s(n)
        if 2 * (rounds + 1) * max(predicted_s, min_round_s) > share:
            skipped[n] = predicted_s
        else:
            timed.append(n)
    if not timed:
        return model, skipped
    fns = direct_calls(surrogate, measures, timed, pair_block=model.pair_block, seed=seed, dev=device)
    with thread_limit(threads):
        stats = interleaved_rounds(fns, rounds=rounds, min_round_s=min_round_s, warmup=1, device=device)
    return with_direct_timings(model, stats, timed), skipped


def legacy_columns(model: CostModel, pairwise_n: int) -> dict[str, float]:
    """The older ``throughput.*`` columns from the cost model: independent ``1 / (2 e + c)``,
    pairwise at ``pairwise_n x pairwise_n`` (with the call overhead), threads, CUDA flag."""
    return {
        "throughput.independent_pairs_per_s": model.independent_pairs_per_s(),
        "throughput.pairwise_pairs_per_s": model.pairwise_pairs_per_s(pairwise_n),
        "throughput.pairwise_rows": float(pairwise_n),
        "throughput.pairwise_cols": float(pairwise_n),
        "throughput.threads": float(model.threads),
        "throughput.cuda": float(model.device.startswith("cuda")),
    }


def speedup_columns(figures: dict[str, float], pairwise_n: int) -> dict[str, float]:
    """``speedup.independent``, ``speedup.pairwise`` and ``exact.throughput.*`` from the fair
    speed-ups of the side whose method threads match the cost model's (``cost.threads``).

    ``speedup.independent`` is that side's measured (interleaved) speed-up;
    ``speedup.pairwise`` the cost model's pairwise rate at ``pairwise_n`` over that side's
    reference rate. Empty when no side matches.
    """
    threads = figures.get("cost.threads")
    for side in ("one_core", "all_cores"):
        prefix = f"speedup.{side}"
        if f"{prefix}.speedup" in figures and figures.get(f"{prefix}.method_threads") == threads:
            lp = figures[f"{prefix}.lp_pairs_per_s"]
            out = {
                "speedup.independent": figures[f"{prefix}.speedup"],
                "speedup.side_one_core": float(side == "one_core"),
                "exact.throughput.independent_pairs_per_s": lp,
                "exact.throughput.threads": figures[f"{prefix}.lp_threads"],
                "exact.throughput.workers": figures[f"{prefix}.lp_workers"],
            }
            pairwise = figures.get(f"cost.pairwise.{pairwise_n}")
            if pairwise is not None:
                out["speedup.pairwise"] = pairwise / lp
            return out
    return {}


def check_timed_outputs(surrogate: Surrogate, measures: MeasureBatch, device: torch.device, method: str) -> None:
    """One small ``distance`` and ``pairwise`` call checked (shape, finite, >= 0) before timing:
    a method that is fast because it returns nonsense is not timed as if it were valid."""
    ok_missing = allows_missing(surrogate)
    a = sample_measures(measures, 4, seed=11, device=device)
    b = sample_measures(measures, 4, seed=12, device=device)
    check_predictions(independent_step(surrogate, a, b), n=4, method=method, call="throughput independent (distance)",
                      allow_missing=ok_missing)
    check_predictions(pairwise_step(surrogate, a, b.index(slice(0, 3))), n=(4, 3), method=method,
                      call="throughput pairwise", allow_missing=ok_missing)


def _reference_factory(
    reference_name: str, reference_cls: type[Surrogate]
) -> Callable[[MeasureBatch, MeasureBatch, int], Callable[[], Any]] | None:
    """None for the exact LP (the oracle's own in-process and executor calls); otherwise the
    reference's ``distance`` (a generic solver, timed per pair under the side's thread limit)."""
    if reference_name == "exact-lp":
        return None
    reference = reference_cls()

    def factory(a: MeasureBatch, b: MeasureBatch, n_jobs: int) -> Callable[[], Any]:
        return lambda: independent_step(reference, a, b)

    return factory


def cell_timing(
    surrogate: Surrogate,
    measures: MeasureBatch,
    evaluation: EvaluationSpec,
    *,
    device: str,
    reference_name: str | None,
    reference_cls: type[Surrogate] | None,
    method: str,
) -> dict[str, float]:
    """Every timing column of a cell (see the module docstring), as flat floats.

    :param surrogate: fitted and configured, on ``device``.
    :param measures: the cell's dataset measures (drawn from, with replacement when too few).
    :param evaluation: the suite's ``[evaluation]`` settings (sizes, rounds, threads).
    :param device: the suite's device (``"cpu"``, ``"cuda"``...).
    :param reference_name: ``[evaluation] speedup_reference`` (None: no speed-ups).
    :param reference_cls: its loaded class (None: unavailable, no speed-ups).
    :param method: the method's name in error messages.
    :raises wbench.validate.InvalidPredictionError: the method's output is invalid.
    """
    from wbench.surrogate import TorchSurrogate

    began = time.perf_counter()
    ev = evaluation
    dev = torch.device(device)
    rounds = max(MIN_ROUNDS, ev.timing_rounds)
    threads = (ev.cost_threads or None) if dev.type == "cpu" else None
    n = ev.pairwise_size
    check_timed_outputs(surrogate, measures, dev, method)
    model = measure_cost_model(
        surrogate, measures, embed_batch=min(EMBED_BATCH, ev.independent_pairs), pair_block=n,
        solver_batch=SOLVER_BATCH, rounds=rounds, min_round_s=ev.min_round_s, threads=threads, device=dev,
    )
    skipped: dict[int, float] = {}
    if model.embedding and ev.direct_n:
        model, skipped = direct_timings(
            surrogate, measures, model, tuple(ev.direct_n), rounds=rounds, min_round_s=ev.min_round_s,
            budget_s=ev.timing_max_s, threads=threads, device=dev,
        )
    figures = model.to_record(pairwise_n=[n])
    figures["cost.pairwise_n"] = float(n)
    figures.update({f"cost.direct_skipped.{k}": v for k, v in skipped.items()})
    figures.update(legacy_columns(model, n))
    if reference_cls is not None and reference_name is not None and dev.type == "cpu":
        _add_speedups(figures, surrogate, measures, ev, model, rounds=rounds, n=n,
                      reference_name=reference_name, reference_cls=reference_cls)
    if model.embedding and isinstance(surrogate, TorchSurrogate):
        figures.update(_roofline_figures(surrogate, measures, model, rounds=rounds, min_round_s=ev.min_round_s,
                                         threads=threads, device=dev))
    figures["cost.timing_s"] = time.perf_counter() - began
    return {k: float(v) for k, v in figures.items() if not (isinstance(v, float) and math.isnan(v))}


def _add_speedups(
    figures: dict[str, Any],
    surrogate: Surrogate,
    measures: MeasureBatch,
    ev: EvaluationSpec,
    model: CostModel,
    *,
    rounds: int,
    n: int,
    reference_name: str,
    reference_cls: type[Surrogate],
) -> None:
    """Add the fair CPU speed-ups over the reference (and the speed-up columns at pairwise size
    ``n``) to ``figures``; nothing when the reference fails with a :class:`WbenchError`."""
    from wbench.timing.denominators import fair_speedups

    batch = min(EMBED_BATCH, ev.independent_pairs) if model.embedding else SOLVER_BATCH
    try:
        fair = fair_speedups(
            surrogate, measures, method_batch=batch, lp_batch_one_core=ev.exact_independent_pairs,
            lp_batch_all_cores=2 * ev.exact_independent_pairs, rounds=rounds, min_round_s=ev.min_round_s,
            reference=_reference_factory(reference_name, reference_cls),
            sides=tuple(ev.speedup_sides),
        )
    except WbenchError:
        fair = None
    if fair is not None:
        figures.update(fair.to_record())
        figures.update(speedup_columns(figures, n))


def _roofline_figures(
    surrogate: Surrogate,
    measures: MeasureBatch,
    model: CostModel,
    *,
    rounds: int,
    min_round_s: float,
    threads: int | None,
    device: torch.device,
) -> dict[str, Any]:
    """Roofline columns of an embedding method: its measured GEMM rate and how close the
    embedding and pair costs (seconds) come to it."""
    from wbench.timing.roofline import gemm_rate, roofline_of

    gemm = gemm_rate(threads=threads, device=device, rounds=rounds, min_round_s=min_round_s)
    return roofline_of(surrogate, measures, model, gemm).to_record()
