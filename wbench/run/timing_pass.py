"""The timing pass: every model of a run folder timed in one interleaved series of rounds.

The one timing path of wbench. ``wbench run`` ends with it (``--no-timing`` skips it) and
``wbench retime RUN_DIR`` runs it again on a finished folder. Cells do not time themselves:
a cell's timing would fall minutes or hours apart from its neighbours', and on a shared
machine the same code's speed drifts that much (measured here: a Naive KENN embedding took
34 to 65 us on one core from one run to the next while a GEMM stayed within 2 %).

For each dataset of the run, round ``r`` times every model's cost model (per-measure
embedding cost ``e``, per-pair cost ``c`` on an ``n x n`` block, per-call overhead ``o``;
:func:`wbench.timing.costmodel.measure_cost_models`, fresh inputs every call) and the exact
LP (POT's network simplex, in this process, on the same threads) before round ``r + 1``
begins, so a drift of the machine hits every model and the LP alike. A model is the saved
one (``models/*.pt``) of each (method, seed) at its last milestone, or, for a method that
learns nothing (a solver, LOT, sliced), the method built and fitted again. The figures
(:func:`cell_figures`) go to ``timing.json`` (:mod:`wbench.records.timing_file`); records
are never changed.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbench.budget import Budget
from wbench.data import PairedDataset
from wbench.evaluation import is_embedding
from wbench.oracle.groundtruth import attach_ground_truth
from wbench.oracle.solve import exact_w2sq_between
from wbench.provenance import provenance, utc_now
from wbench.records.read import load_records, milestone_of
from wbench.records.store import Record
from wbench.records.timing_file import FORMAT_VERSION, TIMING_FILE, TimingError
from wbench.run.cell import dataset_memo
from wbench.run.lock import RunDirNotWritableError, check_writable
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.timing.costmodel import CostModel, embedder, measure_cost_models, sample_measures
from wbench.timing.rounds import thread_limit
from wbench.timing.throughput import independent_step, pairwise_step
from wbench.util.atomic import write_bytes_atomically
from wbench.validate import allows_missing, check_predictions

Log = Callable[[str], None]
DatasetFor = Callable[[str, Mapping[str, Any]], PairedDataset]


@dataclass(frozen=True)
class TimingOptions:
    """Settings of one pass.

    :param rounds: rounds per timed call (median and IQR over them; at least 3).
    :param min_round_s: seconds each round lasts at least.
    :param threads: torch / BLAS threads of models and exact LP alike (1: one core against one).
    :param embed_batch: measures per timed embedding call; a model whose call would last over
        ``max_embed_call_s`` gets the largest power of 2 that fits (at least 16).
    :param max_embed_call_s: seconds one timed embedding call may last at most (about).
    :param lp_batch: pairs per timed exact-LP call.
    :param solver_batch: pairs per timed call of a method without an embedding.
    :param pairwise_n: ``n`` of the ``n x n`` block ``c`` is timed on and pairwise rates quoted at.
    :param seed: seeds the draws of measures (the same draws for every model).
    """

    rounds: int = 7
    min_round_s: float = 0.2
    threads: int = 1
    embed_batch: int = 1024
    max_embed_call_s: float = 1.0
    lp_batch: int = 64
    solver_batch: int = 16
    pairwise_n: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rounds", "threads", "embed_batch", "lp_batch", "solver_batch", "pairwise_n"):
            value, least = getattr(self, name), 3 if name == "rounds" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise TimingError(f"{name} must be an integer >= {least}, got {value!r}")
        for name in ("min_round_s", "max_embed_call_s"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
                raise TimingError(f"{name} must be a non-negative number of seconds, got {seconds!r}")

    @staticmethod
    def of_suite(evaluation: Any) -> TimingOptions:
        """The pass a suite's ``[evaluation]`` asks for (rounds, round length, threads, ``n``)."""
        return TimingOptions(
            rounds=max(3, int(evaluation.timing_rounds)), min_round_s=float(evaluation.min_round_s),
            threads=int(evaluation.cost_threads) or 1, pairwise_n=int(evaluation.pairwise_size),
            max_embed_call_s=min(1.0, float(evaluation.timing_max_s)),
        )


@dataclass
class Series:
    """One (dataset, method, seed) of a run: the record at its last milestone, the keys of its
    earlier milestones (the same network, so the same speed), and the model to time."""

    record: Record
    same_model: list[str]
    surrogate: Surrogate | None = None
    source: str = ""


def series_of(records: Iterable[Record]) -> list[Series]:
    """The ``ok`` records grouped by (dataset, its parameters, method label, seed), each group
    by its record at the largest milestone, in the order first met."""
    found: dict[str, Series] = {}
    for record in records:
        if not record.ok or record.outcome is None:
            continue
        name = json.dumps([record.dataset, dict(record.dataset_params), record.label or record.method, record.seed],
                          sort_keys=True, default=str)
        held = found.get(name)
        if held is None:
            found[name] = Series(record, [])
        elif (milestone_of(record.budget or {}) or 0) > (milestone_of(held.record.budget or {}) or 0):
            found[name] = Series(record, [held.record.key, *held.same_model])
        else:
            held.same_model.append(record.key)
    return list(found.values())


def default_dataset_for(cache_dir: str | Path | None = None, registry: Any = None, *, n_jobs: int = -1) -> DatasetFor:
    """A dataset builder with its (cached) exact ground truth, memoised per configuration
    (:func:`wbench.run.cell.dataset_memo`); a run's cells and its timing pass share one."""
    memo: dict[str, PairedDataset] = {}

    def build(name: str, params: Mapping[str, Any]) -> PairedDataset:
        key = dataset_memo(name, params)
        if key not in memo:
            built = registry.get("dataset", name).load()(**dict(params)).build()
            memo[key] = attach_ground_truth(built, cache_dir=cache_dir, n_jobs=n_jobs)
        return memo[key]

    return build


def model_of(series: Series, run_dir: Path, registry: Any, dataset: PairedDataset) -> tuple[Surrogate | None, str]:
    """The model to time for ``series`` and where it came from: its saved model, or a method
    that learns nothing (or whose class sets ``fit_for_timing = True``: a fit of seconds, e.g.
    a closed-form regression) built and fitted again with the record's seed; ``(None, why)``
    for a learned method whose model was not saved (e.g. a model that is not a torch network).

    :raises TimingError: a record names a saved model that is not in ``run_dir``.
    """
    record = series.record
    saved = [a for a in record.outcome.artifacts if a.endswith(".pt")] if record.outcome else []
    cls = registry.get("surrogate", record.method).load()
    if saved:
        path = run_dir / saved[-1]
        if not path.is_file() or not Path(f"{path}.json").is_file():
            raise TimingError(f"record {record.key} ({record.label or record.method}, seed {record.seed}) names "
                              f"{saved[-1]}, but it is not in {run_dir}: time the run folder that holds its models")
        surrogate, source = TorchSurrogate.load(path, registry=registry), saved[-1]
    elif getattr(cls, "fit_for_timing", not cls.trainable):
        surrogate, source = cls(**cls.params_for(dict(record.method_params), dataset.measures)), "built and fitted again"
        budget = Budget(seed=record.seed, device="cpu")
        surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
    else:
        return None, "a learned model that was not saved"
    surrogate.configure(**{**cls.default_eval_params, **dict(record.eval_params)})
    return surrogate, source


def check_timed_outputs(surrogate: Surrogate, dataset: PairedDataset, method: str) -> None:
    """One small ``distance`` and ``pairwise`` call checked (shape, finite, >= 0) before timing:
    a method that is fast because it returns nonsense is never timed as if it were valid."""
    ok_missing = allows_missing(surrogate)
    a = sample_measures(dataset.measures, 4, seed=11)
    b = sample_measures(dataset.measures, 4, seed=12)
    check_predictions(independent_step(surrogate, a, b), n=4, method=method, call="timing (distance)",
                      allow_missing=ok_missing)
    check_predictions(pairwise_step(surrogate, a, b.index(slice(0, 3))), n=(4, 3), method=method,
                      call="timing (pairwise)", allow_missing=ok_missing)


def time_run(
    run_dir: str | Path,
    options: TimingOptions | None = None,
    *,
    registry: Any,
    dataset_for: DatasetFor | None = None,
    out: str | Path | None = None,
    log: Log | None = None,
) -> Path:
    """Time every model of ``run_dir`` in one interleaved pass per dataset; write ``timing.json``.

    :param dataset_for: builds a dataset with its ground truth (default: through the cache).
    :param out: the file to write (default ``run_dir/timing.json``), by an atomic rename.
    :param log: a callable taking one line of progress (default: nothing).
    :returns: the path written.
    :raises TimingError: no record to time, a saved model missing, or an unwritable target.
    :raises wbench.validate.InvalidPredictionError: a model's outputs are invalid.
    """
    options, run_dir, log = options or TimingOptions(), Path(run_dir), log or (lambda line: None)
    if not (run_dir / "records.jsonl").is_file():
        raise TimingError(f"{run_dir} holds no records.jsonl: not a run folder")
    target = Path(out) if out is not None else run_dir / TIMING_FILE
    _check_target_writable(target)  # before any timing: the pass takes minutes
    dataset_for = dataset_for or default_dataset_for(registry=registry)
    began = time.perf_counter()
    groups: dict[str, list[Series]] = {}
    for item in series_of(load_records([run_dir])):
        groups.setdefault(dataset_memo(str(item.record.dataset), item.record.dataset_params), []).append(item)
    if not groups:
        raise TimingError(f"{run_dir}: no ok record: nothing to time")
    cells: list[dict[str, Any]] = []
    references: dict[str, dict[str, float]] = {}
    skipped: list[dict[str, Any]] = []
    for group in groups.values():
        label, reference, timed, missing = _time_group(group, run_dir, options, registry, dataset_for, log)
        references[label] = reference
        cells += timed
        skipped += missing
    report = {
        "format_version": FORMAT_VERSION, "finished": utc_now(), "wall_s": time.perf_counter() - began,
        "protocol": {**options.__dict__, "interleaved": "every model's e, c, o and the exact LP in each round"},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "provenance": provenance("cpu"), "references": references, "cells": cells, "not_timed": skipped,
    }
    return write_bytes_atomically(target, (json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def _check_target_writable(target: Path) -> None:
    """:raises TimingError: the target is a folder, or its folder cannot be created or written."""
    if target.is_dir():
        raise TimingError(f"the timing output {target} is a folder; give the file to write (e.g. {target / TIMING_FILE})")
    try:
        check_writable(target.parent)
    except RunDirNotWritableError as exc:
        raise TimingError(f"cannot write the timing output {target}: {exc}") from exc


def _time_group(
    group: Sequence[Series], run_dir: Path, options: TimingOptions, registry: Any, dataset_for: DatasetFor, log: Log,
) -> tuple[str, dict[str, float], list[dict[str, Any]], list[dict[str, Any]]]:
    """Time one dataset's models and the exact LP in one interleaved series: the dataset's
    label, the LP's figures, one cell per timed model, and the series not timed (and why)."""
    first = group[0].record
    label = first.dataset_label or str(first.dataset)
    dataset = dataset_for(str(first.dataset), dict(first.dataset_params))
    skipped = []
    for item in group:
        item.surrogate, item.source = model_of(item, run_dir, registry, dataset)
        if item.surrogate is None:
            skipped.append({"dataset_label": label, "label": item.record.label or item.record.method,
                            "seed": item.record.seed, "why": item.source})
        else:
            check_timed_outputs(item.surrogate, dataset, item.record.label or item.record.method)
    timed = [item for item in group if item.surrogate is not None]
    models, lp = _measure(timed, dataset, options, label, log)
    reference = {"lp_pairs_per_s": 1.0 / lp.median_s, "lp_relative_iqr": lp.relative_iqr}
    cells = [_cell(item, models[item.record.key], reference, run_dir, options.pairwise_n, label) for item in timed]
    return label, reference, cells, skipped


def _measure(timed: Sequence[Series], dataset: PairedDataset, options: TimingOptions, label: str, log: Log) -> Any:
    """The cost models of ``timed`` and the exact LP's seconds per pair, in the same rounds."""
    measures = dataset.measures
    surrogates = {item.record.key: item.surrogate for item in timed}
    batches = {key: _embed_batch(s, measures, options) for key, s in surrogates.items()}
    lp_a = sample_measures(measures, options.lp_batch, seed=options.seed + 7)
    lp_b = sample_measures(measures, options.lp_batch, seed=options.seed + 8)
    n = min(options.pairwise_n, len(measures))
    log(f"timing {label}: {len(surrogates)} models and the exact LP, {options.rounds} interleaved rounds "
        f"of >= {options.min_round_s} s, {options.threads} thread(s), c on {n} x {n}")
    models, extra = measure_cost_models(
        surrogates, measures, embed_batch=batches, pair_block=n, solver_batch=options.solver_batch,
        rounds=options.rounds, min_round_s=options.min_round_s, threads=options.threads, device="cpu",
        seed=options.seed, extra={"lp": lambda: exact_w2sq_between(lp_a, lp_b, n_jobs=1)},
        on_round=lambda done, total: log(f"timing {label}: round {done}/{total} done"),
    )
    return models, extra["lp"].per_unit(options.lp_batch)


def _cell(
    item: Series, model: CostModel, reference: Mapping[str, float], run_dir: Path, n: int, label: str
) -> dict[str, Any]:
    """One ``timing.json`` cell: the series' identity and its :func:`cell_figures`."""
    record = item.record
    return {
        "key": record.key, "finished_at": record.finished_at, "same_model": item.same_model,
        "dataset_label": label, "label": record.label or record.method, "seed": record.seed,
        "milestone": milestone_of(record.budget or {}), "model": item.source,
        "figures": cell_figures(model, reference, n),
    }


def cell_figures(model: CostModel, reference: Mapping[str, float], n: int) -> dict[str, float]:
    """The speed figures of one timed model (16 keys): its cost model (``e``, ``c``, ``o`` in
    seconds with the IQRs of ``e`` and ``c``), its rates (independent pairs/s ``1 / (2e + c)``,
    pairwise pairs/s of an ``n x n`` block), the one-core speed-ups over the exact LP of the
    same rounds, and that LP's pairs/s and relative IQR."""
    lp_rate = reference["lp_pairs_per_s"]
    independent, pairwise = model.independent_pairs_per_s(), model.pairwise_pairs_per_s(n)
    return {
        "cost.embedding": float(model.embedding), "cost.embed_s": model.embed_s,
        "cost.embed_s_iqr": model.embed.iqr_s if model.embed is not None else 0.0,
        "cost.embed_batch": float(model.embed_batch), "cost.pair_s": model.pair_s, "cost.pair_s_iqr": model.pair.iqr_s,
        "cost.call_s": model.call_s, "cost.memoised": float(model.memoised), "cost.threads": float(model.threads),
        "cost.independent_pairs_per_s": independent, "cost.pairwise_pairs_per_s": pairwise,
        "cost.pairwise_n": float(n), "speedup.one_core": independent / lp_rate,
        "speedup.pairwise": pairwise / lp_rate, "speedup.lp_pairs_per_s": lp_rate,
        "speedup.lp_relative_iqr": reference["lp_relative_iqr"],
    }


def _embed_batch(surrogate: Any, measures: Any, options: TimingOptions) -> int:
    """``options.embed_batch`` (at most the distinct measures), or for a model whose timed call
    would last over ``options.max_embed_call_s`` the largest power of 2 that fits (at least 16)."""
    batch = min(options.embed_batch, len(measures))
    if not is_embedding(surrogate):
        return batch
    embed = embedder(surrogate)
    probe = sample_measures(measures, 16, seed=options.seed + 9)
    with thread_limit(options.threads):
        embed(probe)
        began = time.perf_counter()
        embed(probe)
        per_measure = (time.perf_counter() - began) / 16
    if per_measure * batch <= options.max_embed_call_s:
        return batch
    fits = 1 << int(math.floor(math.log2(max(1.0, options.max_embed_call_s / per_measure))))
    return min(batch, max(16, fits))
