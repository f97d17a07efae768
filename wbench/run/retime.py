"""``wbench retime``: time a finished run's saved models again, all in one interleaved pass.

A cell times its method right after training it, so the cells of one architecture (its
seeds, its milestones) are timed minutes or hours apart, and on a shared virtual machine
the speed of the same code drifts that much between runs (measured here: a Naive KENN
embedding took 34 to 65 us on one core from one run to the next while a GEMM stayed
within 2 %). Throughput then differs between seeds for no reason of their own.

This pass loads every saved model of a run folder (``models/*.pt`` named by an ``ok``
record) and measures all their cost models (:func:`wbench.timing.costmodel.measure_cost_models`)
in one series of rounds: round ``r`` times every model's ``e``, ``c`` and ``o`` and the
exact LP (in this process, on the same threads) before round ``r + 1`` begins, so a drift
of the machine hits every model and the LP alike. It writes ``retime.json`` next to the
records; the records themselves are never changed. ``wbench leaderboard`` shows it as a
section (:func:`retime_sections`): independent pairs/s per method, their coefficient of
variation over seeds, pairwise pairs/s at the run's ``n`` and the one-core speed-up over
the exact LP timed in the same rounds; and a roofline section: each torch embedding
network's FLOPs per measure against the dense float32 GEMM rate (a ``torch.mm`` of
``GEMM_SIZE x GEMM_SIZE`` matrices timed in the same rounds, on the same threads).

Methods without a saved model (solvers, LOT, sliced, non-torch models) are not re-timed.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.errors import WbenchError
from wbench.records.read import load_records, milestone_of
from wbench.records.store import Record
from wbench.util.atomic import write_bytes_atomically

__all__ = [
    "RETIME_FILE", "RetimeError", "RetimeOptions", "last_milestones", "read_retime", "retime_files", "retime_run", "retime_sections",
    "saved_models",
]

RETIME_FILE = "retime.json"
"""The file a pass writes into the run folder."""
FORMAT_VERSION = 1
DEFAULT_PAIRWISE_N = 2048
GEMM_SIZE = 1024
"""The GEMM of the pass's roofline: two ``GEMM_SIZE x GEMM_SIZE`` float32 matrices."""


class RetimeError(WbenchError, ValueError):
    """A run folder cannot be re-timed (no records, no saved model, a missing model file)."""


@dataclass(frozen=True)
class RetimeOptions:
    """Settings of one pass.

    :param rounds: rounds per timed call (median and IQR over them; at least 5).
    :param min_round_s: seconds each round lasts at least.
    :param threads: torch / BLAS threads of the whole pass (the exact LP runs in this
        process, so it is the same thread count on both sides of the speed-up).
    :param embed_batch: measures per timed embedding call (``e`` = call seconds / batch); a
        model whose call would last over ``max_embed_call_s`` (one that solves an LP per
        measure, say) gets the largest power of 2 that fits (at least 16).
    :param max_embed_call_s: seconds one timed embedding call may last at most (about).
    :param lp_batch: pairs per timed exact-LP call.
    :param pairwise_n: ``n`` of the ``n x n`` distance block ``c`` is timed on (None: the
        run's own ``cost.pairwise_n``, else 2048).
    :param seed: seeds the draws of measures (the same draws for every model).
    :param all_milestones: time the model saved at every milestone; by default only each
        (dataset, method, seed)'s model at its last milestone: a network's speed does not
        depend on its weights, so the earlier milestones' models would repeat the same
        timing (and a run with 4 milestones would take 4 times as long).
    """

    rounds: int = 7
    min_round_s: float = 0.2
    threads: int = 1
    embed_batch: int = 1024
    max_embed_call_s: float = 1.0
    lp_batch: int = 64
    pairwise_n: int | None = None
    seed: int = 0
    all_milestones: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 5:
            raise RetimeError(f"rounds must be an integer >= 5 (a median and an IQR), got {self.rounds!r}")
        for name in ("min_round_s", "max_embed_call_s"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
                raise RetimeError(f"{name} must be a positive number of seconds, got {seconds!r}")
        for name in ("threads", "embed_batch", "lp_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RetimeError(f"{name} must be a positive integer, got {value!r}")
        if self.pairwise_n is not None and (isinstance(self.pairwise_n, bool) or not isinstance(self.pairwise_n, int)
                                            or self.pairwise_n < 1):
            raise RetimeError(f"pairwise_n must be a positive integer, got {self.pairwise_n!r}")


def saved_models(records: Iterable[Record], run_dir: str | Path) -> list[tuple[Record, Path]]:
    """The ``ok`` records that name a saved model (an artifact ``*.pt``), with its path.

    :raises RetimeError: a record names a model file that is not in ``run_dir`` (copied
        without its models?), or its ``.json`` header is missing.
    """
    run_dir = Path(run_dir)
    out: list[tuple[Record, Path]] = []
    for record in records:
        if not record.ok or record.outcome is None:
            continue
        models = [a for a in record.outcome.artifacts if a.endswith(".pt")]
        if not models:
            continue
        path = run_dir / models[-1]
        for needed in (path, Path(f"{path}.json")):
            if not needed.is_file():
                raise RetimeError(
                    f"record {record.key} ({record.label or record.method}, seed {record.seed}) names {models[-1]}, "
                    f"but {needed} does not exist: re-time the run folder that holds its models"
                )
        out.append((record, path))
    return out


def last_milestones(found: Sequence[tuple[Record, Path]]) -> list[tuple[Record, Path]]:
    """Of :func:`saved_models`' pairs, each (dataset, its parameters, method label, seed)'s
    model at its largest milestone, in the order first met."""
    best: dict[str, tuple[Record, Path]] = {}
    for record, path in found:
        series = json.dumps([record.dataset, dict(record.dataset_params), record.label or record.method, record.seed],
                            sort_keys=True, default=str)
        held = best.get(series)
        if held is None or (milestone_of(record.budget or {}) or 0) > (milestone_of(held[0].budget or {}) or 0):
            best[series] = (record, path)
    return list(best.values())


def _pairwise_n(records: Sequence[Record], options: RetimeOptions) -> int:
    if options.pairwise_n is not None:
        return options.pairwise_n
    for record in records:
        figure = (record.outcome.throughput or {}).get("cost.pairwise_n") if record.outcome else None
        if isinstance(figure, int | float) and figure >= 1:
            return int(figure)
    return DEFAULT_PAIRWISE_N


def _dataset_measures(registry: Any, name: str, params: Mapping[str, Any]) -> Any:
    """The measures of dataset ``name`` built with ``params`` (no ground truth needed)."""
    cls = registry.get("dataset", name).load()
    return cls(**dict(params)).build().measures


def retime_run(
    run_dir: str | Path,
    options: RetimeOptions | None = None,
    *,
    registry: Any = None,
    out: str | Path | None = None,
    log: Any = None,
) -> Path:
    """Re-time every saved model of ``run_dir`` in one interleaved pass; write ``retime.json``.

    Per dataset of the run: its measures are built from the records' dataset parameters,
    every model is loaded through the registry (:meth:`TorchSurrogate.load`), its outputs
    are checked (shape, finite, non-negative) before any timing, and then all models'
    ``e`` (s per measure), ``c`` (s per pair of the ``n x n`` block) and ``o`` (s per
    call) and the exact LP's seconds per pair (in-process, ``options.threads`` threads)
    are timed in the same rounds.

    :param registry: a :class:`wbench.plugin.registry.Registry` (default: the installed plugins').
    :param out: the file to write (default ``run_dir/retime.json``); written whole, by an
        atomic rename, so an interrupted pass leaves an earlier file as it was.
    :param log: a callable taking one line of progress (default: print to stderr).
    :returns: the path written.
    :raises RetimeError: nothing to re-time, or a model named by a record is missing.
    :raises wbench.validate.InvalidPredictionError: a model's outputs are invalid.
    """
    from wbench.provenance import provenance, utc_now

    options = options or RetimeOptions()
    run_dir = Path(run_dir)
    if log is None:
        import sys

        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    if registry is None:
        from wbench.plugin.manager import make_plugin_manager

        registry = make_plugin_manager().registry
    if not (run_dir / "records.jsonl").is_file():
        raise RetimeError(f"{run_dir} holds no records.jsonl: not a run folder")
    target = Path(out) if out is not None else run_dir / RETIME_FILE
    _check_target_writable(target)  # before any timing: the pass takes minutes
    found = saved_models(load_records([run_dir]), run_dir)
    if not options.all_milestones:
        found = last_milestones(found)
    if not found:
        raise RetimeError(f"{run_dir}: no ok record names a saved model (models/*.pt): nothing to re-time")
    began = time.perf_counter()
    groups: dict[str, list[tuple[Record, Path]]] = {}
    for record, path in found:
        groups.setdefault(json.dumps([record.dataset, dict(record.dataset_params)], sort_keys=True), []).append((record, path))
    cells: list[dict[str, Any]] = []
    references: dict[str, dict[str, float]] = {}
    for group in groups.values():
        label, reference, timed = _time_group(group, run_dir, options, registry, log)
        references[label] = reference
        cells += timed
    report = {
        "format_version": FORMAT_VERSION,
        "finished": utc_now(),
        "wall_s": time.perf_counter() - began,
        "protocol": {
            "rounds": options.rounds, "min_round_s": options.min_round_s, "threads": options.threads,
            "embed_batch": options.embed_batch, "max_embed_call_s": options.max_embed_call_s,
            "lp_batch": options.lp_batch, "seed": options.seed,
            "milestones": "all" if options.all_milestones else "last of each method and seed",
            "interleaved": "every model's e, c, o, the exact LP and the GEMM in each round",
            "gemm": f"float32 torch.mm of {GEMM_SIZE} x {GEMM_SIZE} matrices",
        },
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "provenance": provenance("cpu"),
        "references": references,
        "cells": cells,
    }
    return write_bytes_atomically(target, (json.dumps(report, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def _check_target_writable(target: Path) -> None:
    """Refuse a ``retime.json`` target that cannot be written, naming it (its folder is created
    if needed and a probe file written there; the target is replaced by a rename).

    :raises RetimeError: the target is a folder, or its folder cannot be created or written.
    """
    from wbench.run.lock import RunDirNotWritableError, check_writable

    if target.is_dir():
        raise RetimeError(f"the re-timing output {target} is a folder; give the file to write (e.g. {target / RETIME_FILE})")
    try:
        check_writable(target.parent)
    except RunDirNotWritableError as exc:
        raise RetimeError(f"cannot write the re-timing output {target}: {exc}") from exc


def _time_group(
    group: Sequence[tuple[Record, Path]], run_dir: Path, options: RetimeOptions, registry: Any, log: Callable[[str], None]
) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    """Time the saved models of one dataset (``group``: records with their model paths) and
    the exact LP in one interleaved series: the dataset's label, the LP's figures and one
    cell entry per model (its cost-model columns and speed-ups over that LP)."""
    from wbench.run.cell_timing import check_timed_outputs
    from wbench.surrogate import TorchSurrogate
    from wbench.timing.costmodel import measure_cost_models, sample_measures
    from wbench.timing.denominators import lp_callable
    from wbench.timing.roofline import GemmRate, gemm_call, roofline_of

    records = [record for record, _ in group]
    dataset, params = records[0].dataset, dict(records[0].dataset_params)
    label = records[0].dataset_label or str(dataset)
    n = _pairwise_n(records, options)
    measures = _dataset_measures(registry, str(dataset), params)
    surrogates, batches = {}, {}
    for record, path in group:
        surrogate = TorchSurrogate.load(path, registry=registry)
        check_timed_outputs(surrogate, measures, surrogate.device, record.label or str(record.method))
        surrogates[record.key] = surrogate
        batches[record.key] = _embed_batch(surrogate, measures, options)
    lp_a = sample_measures(measures, options.lp_batch, seed=options.seed + 7)
    lp_b = sample_measures(measures, options.lp_batch, seed=options.seed + 8)
    log(f"retime {label}: {len(surrogates)} models and the exact LP, {options.rounds} interleaved rounds "
        f"of >= {options.min_round_s} s, {options.threads} thread(s), c on {n} x {n}")
    models, extra = measure_cost_models(
        surrogates, measures, embed_batch=batches, pair_block=n, rounds=options.rounds,
        min_round_s=options.min_round_s, threads=options.threads, device="cpu", seed=options.seed,
        extra={"lp": lp_callable(lp_a, lp_b, n_jobs=1), "gemm": gemm_call(size=GEMM_SIZE)},
        on_round=lambda done, total: log(f"retime {label}: round {done}/{total} done"),
    )
    lp = extra["lp"].per_unit(options.lp_batch)
    lp_rate = 1.0 / lp.median_s
    gemm = GemmRate(extra["gemm"], GEMM_SIZE, "float32", options.threads, "cpu")
    reference = {"lp_pairs_per_s": lp_rate, "lp_relative_iqr": lp.relative_iqr, "lp_batch": float(options.lp_batch),
                 **gemm.to_record()}
    cells = []
    for record, path in group:
        model = models[record.key]
        figures = model.to_record(pairwise_n=[n])
        figures["speedup.one_core"] = model.independent_pairs_per_s() / lp_rate
        figures["speedup.pairwise"] = model.pairwise_pairs_per_s(n) / lp_rate
        surrogate = surrogates[record.key]
        if model.embedding and isinstance(surrogate, TorchSurrogate):  # as a cell's timing does
            figures.update(roofline_of(surrogate, measures, model, gemm).to_record())
        cells.append({
            "key": record.key, "finished_at": record.finished_at, "dataset": dataset, "dataset_label": label,
            "method": record.method,
            "label": record.label or record.method, "seed": record.seed, "milestone": milestone_of(record.budget or {}),
            "model": path.relative_to(run_dir).as_posix(), "figures": figures,
        })
    return label, reference, cells


def _embed_batch(surrogate: Any, measures: Any, options: RetimeOptions) -> int:
    """``options.embed_batch``, or for a model whose timed call would last over
    ``options.max_embed_call_s`` the largest power of 2 that fits (at least 16), from one
    probe call on 16 measures after a warm-up call (threads as the pass)."""
    from wbench.evaluation import is_embedding
    from wbench.timing.costmodel import embedder, sample_measures
    from wbench.timing.rounds import thread_limit

    if not is_embedding(surrogate):
        return options.embed_batch
    embed = embedder(surrogate)
    probe = sample_measures(measures, 16, seed=options.seed + 9)
    with thread_limit(options.threads):
        embed(probe)
        began = time.perf_counter()
        embed(probe)
        per_measure = (time.perf_counter() - began) / 16
    if per_measure * options.embed_batch <= options.max_embed_call_s:
        return options.embed_batch
    fits = 1 << int(math.floor(math.log2(max(1.0, options.max_embed_call_s / per_measure))))
    return min(options.embed_batch, max(16, fits))


def read_retime(path: str | Path) -> dict[str, Any]:
    """A ``retime.json`` as written by :func:`retime_run`, checked (:func:`retime_problems`).

    :raises RetimeError: unreadable JSON, another format version, missing keys, or a figure
        that is not finite or out of its range (the file and the key named).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RetimeError(f"{path}: not a readable retime file ({error})") from error
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise RetimeError(f"{path}: unsupported retime format {data.get('format_version') if isinstance(data, dict) else None!r}")
    for key in ("cells", "references", "protocol", "provenance"):
        if key not in data:
            raise RetimeError(f"{path}: no {key!r}")
    problems = retime_problems(data)
    if problems:
        raise RetimeError(f"{path}: refused, {'; '.join(problems)}; `wbench retime` never writes such a file "
                          f"(edited or damaged after the pass?): run `wbench retime {path.parent}` again")
    return data


_POSITIVE_TIMES = ("cost.min_round_s",)
"""Seconds that cannot be zero (``cost.embed_s`` too, for an embedding: its rates divide by it)."""


_SIGNED_PREFIXES = ("cost.direct_error.",)
"""Figures that may be negative (a prediction's relative error)."""


def retime_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong in a parsed ``retime.json`` (empty: nothing): ``cells`` not a list of
    objects with a key and figures, a figure or reference value that is not a finite
    number, a negative one, a zero or negative time (``cost.embed_s`` of an embedding), rate
    (``*pairs_per_s``, ``cost.pairwise.<n>``, ``gemm.gflops``) or speed-up, a negative
    ``*_s`` time, or a non-finite ``wall_s``."""
    problems: list[str] = []
    cells, references = data.get("cells"), data.get("references")
    if not isinstance(cells, list):
        return ["'cells' is not a list"]
    if not isinstance(references, dict):
        return ["'references' is not an object"]
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("key"), str) or not isinstance(cell.get("figures"), dict):
            problems.append(f"cells[{index}] is not an object with a string 'key' and an object 'figures'")
            continue
        embedding = cell["figures"].get("cost.embedding", 1.0) != 0  # a non-embedding model has no e
        for name, value in cell["figures"].items():
            problem = _retime_value_problem(str(name), value, positive=embedding and name == "cost.embed_s")
            if problem:
                problems.append(f"cells[{index}] (key {cell['key']}) figure {name!r} = {value!r} {problem}")
    for label, reference in references.items():
        if not isinstance(reference, dict):
            problems.append(f"references[{label!r}] is not an object")
            continue
        for name, value in reference.items():
            problem = _retime_value_problem(str(name), value)
            if problem:
                problems.append(f"references[{label!r}] {name!r} = {value!r} {problem}")
    if "wall_s" in data:
        problem = _retime_value_problem("wall_s", data["wall_s"])
        if problem:
            problems.append(f"'wall_s' = {data['wall_s']!r} {problem}")
    return problems


def _retime_value_problem(name: str, value: Any, *, positive: bool = False) -> str | None:
    """Why ``value`` is not a valid retime figure ``name`` (None: it is); ``positive``: it
    must be above 0 whatever its name."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    if not math.isfinite(value):
        return "is not finite"
    leaf = name.rsplit(".", 1)[-1]
    positive = (positive or name in _POSITIVE_TIMES or name.startswith("speedup.") or leaf.endswith("pairs_per_s")
                or (name.startswith("cost.pairwise.") and leaf.isdigit()) or leaf == "gflops")
    if positive and value <= 0:
        return "must be positive"
    if value < 0 and not name.startswith(_SIGNED_PREFIXES):
        return "must not be negative" if not name.endswith("_s") else "is a negative time"
    return None


def _check_current(data: Mapping[str, Any], path: Path, run_dir: Path) -> None:
    """Refuse a retime file that no longer matches the run's records: a cell whose record is
    gone, or was made again since the pass (its ``finished_at`` differs), would put figures
    of other models on the board.

    :raises RetimeError: naming the first such cell and the command that renews the file.
    """
    if not (run_dir / "records.jsonl").is_file():
        return
    finished = {record.key: record.finished_at for record in load_records([run_dir])}
    for cell in data["cells"]:
        what = f"{cell.get('label')} seed {cell.get('seed')}"
        if cell["key"] not in finished:
            raise RetimeError(f"{path} is stale: its cell {cell['key']} ({what}) has no record in {run_dir} any more; "
                              f"run `wbench retime {run_dir}` again")
        if "finished_at" in cell and cell["finished_at"] != finished[cell["key"]]:
            raise RetimeError(f"{path} is stale: the record of {cell['key']} ({what}) was made again after the pass "
                              f"(finished {finished[cell['key']]}, timed the one of {cell['finished_at']}); "
                              f"run `wbench retime {run_dir}` again")


def _cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample standard deviation over mean); None below 2 values."""
    if len(values) < 2:
        return None
    return statistics.stdev(values) / statistics.mean(values)


def _largest_relative_iqr(figures: Sequence[Mapping[str, float]]) -> str:
    """The largest IQR of ``e`` over its median among ``figures`` ("-" for a model without
    an embedding: a torch model timed per pair)."""
    ratios = [f["cost.embed_s_iqr"] / f["cost.embed_s"] for f in figures if f.get("cost.embed_s", 0) > 0]
    return f"{max(ratios):.1%}" if ratios else "-"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def _at_milestone(cells: Sequence[Mapping[str, Any]], milestone: int | None) -> list[Mapping[str, Any]]:
    """Per (dataset, method, seed) the cell of the largest milestone up to ``milestone``
    (a cell without a milestone always counts; None: the largest). A series re-timed only
    above ``milestone`` (a pass over the last milestones) gives its cell of the smallest
    milestone: the same network, whose speed does not depend on its weights."""
    best: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    above: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for cell in cells:
        at = cell.get("milestone")
        series = (cell["dataset_label"], cell["label"], cell["seed"])
        if milestone is not None and at is not None and at > milestone:
            held = above.get(series)
            if held is None or at < held["milestone"]:
                above[series] = cell
            continue
        held = best.get(series)
        if held is None or (at or 0) > (held.get("milestone") or 0):
            best[series] = cell
    return list(best.values()) + [cell for series, cell in above.items() if series not in best]


def retime_files(run_dirs: Iterable[str | Path]) -> list[Path]:
    """The ``retime.json`` files that exist beside ``run_dirs`` (run folders, or their
    ``records.jsonl``), in order."""
    found = []
    for run_dir in run_dirs:
        folder = Path(run_dir)
        path = (folder.parent if folder.name.endswith(".jsonl") else folder) / RETIME_FILE
        if path.is_file():
            found.append(path)
    return found


def retime_sections(run_dirs: Iterable[str | Path], milestone: int | None = None) -> list[Any]:
    """Leaderboard sections (:class:`wbench.sections.Section`) of the ``retime.json`` files
    in ``run_dirs``: one per file and dataset, a row per method (its seeds pooled).

    Columns: seeds re-timed, independent pairs/s (mean over seeds of each model's median)
    and its coefficient of variation over seeds, the largest relative IQR of ``e`` among
    them, pairwise pairs/s at the pass's ``n``, and the one-core speed-up over the exact
    LP of the same rounds. Each (dataset, method, seed) is shown by its model saved at the
    largest milestone up to ``milestone`` (the one the leaderboard shows; None: its last).

    :raises RetimeError: a retime file that cannot be read.
    """
    from wbench.sections import Section

    sections = []
    for path in retime_files(run_dirs):
        data = read_retime(path)
        _check_current(data, path, path.parent)
        protocol, prov = data["protocol"], data["provenance"]
        cells = _at_milestone(data["cells"], milestone)
        for label in sorted({c["dataset_label"] for c in cells}):
            rows = []
            own = [c for c in cells if c["dataset_label"] == label]
            lp = data["references"].get(label, {})
            for method in sorted({c["label"] for c in own}):
                figs = [c["figures"] for c in own if c["label"] == method]
                rates = [f["cost.independent_pairs_per_s"] for f in figs]
                n = int(figs[0]["cost.pair_rows"])
                pairwise = [f.get(f"cost.pairwise.{n}") for f in figs]
                cv = _cv(rates)
                rows.append({
                    "method": method,
                    "seeds": str(len(figs)),
                    "independent pairs/s": _fmt(statistics.mean(rates)),
                    "CV over seeds": "-" if cv is None else f"{cv:.1%}",
                    "largest IQR of e": _largest_relative_iqr(figs),
                    "pairwise pairs/s (n x n)": f"{_fmt(statistics.mean(pairwise))} (n = {n:,})"
                    if None not in pairwise else "-",
                    "speed-up over exact LP (1 core)": _fmt(statistics.mean(f["speedup.one_core"] for f in figs)),
                })
            if not rows:
                continue
            title = (
                f"{label}: re-timed in one interleaved pass over the saved models (`wbench retime`; "
                f"git {str(prov.get('git_commit') or '?')[:7]}, {protocol['threads']} thread(s), "
                f"{protocol['rounds']} rounds of >= {protocol['min_round_s']} s; exact LP "
                f"{_fmt(lp.get('lp_pairs_per_s'))} pairs/s in the same rounds)"
            )
            sections.append(Section(title, pd.DataFrame(rows)))
            roofline = _roofline_section(label, own, lp, protocol)
            if roofline is not None:
                sections.append(roofline)
    return sections


def _roofline_section(
    label: str, cells: Sequence[Mapping[str, Any]], reference: Mapping[str, Any], protocol: Mapping[str, Any]
) -> Any:
    """The roofline of the re-timed torch embedding networks of one dataset (means over
    seeds), or None when the pass has none (older files: no ``roofline.*`` figures)."""
    from wbench.sections import Section

    rows = []
    for method in sorted({c["label"] for c in cells}):
        figs = [c["figures"] for c in cells if c["label"] == method and "roofline.fraction" in c["figures"]]
        if not figs:
            continue

        def mean(key: str, figs: Sequence[Mapping[str, float]] = figs) -> float | None:
            values = [f[key] for f in figs if key in f]
            return statistics.mean(values) if values else None

        pairwise_fraction = mean("roofline.pairwise_fraction")
        rows.append({
            "method": method,
            "seeds": str(len(figs)),
            "MFLOP per measure": _fmt((mean("flops.per_item") or 0.0) / 1e6),
            "achieved GFLOP/s": _fmt(mean("roofline.achieved_gflops")),
            "of GEMM": f"{mean('roofline.fraction'):.1%}",
            "indep. pairs/s": _fmt(mean("cost.independent_pairs_per_s")),
            "indep. bound (GEMM / 2 FLOP)": _fmt(mean("roofline.independent_bound_pairs_per_s")),
            "k": f"{mean('flops.embedding_dim'):.0f}",
            "asymptote 1/c": _fmt(mean("cost.asymptote_pairs_per_s")),
            "pairwise bound (GEMM / 2k)": _fmt(mean("roofline.pairwise_bound_pairs_per_s")),
            "1/c of bound": "-" if pairwise_fraction is None else f"{pairwise_fraction:.1%}",
        })
    if not rows:
        return None
    gemm = reference.get("gemm.gflops")
    title = (
        f"{label}: roofline of the re-timed networks (FLOPs counted by torch's FLOP counter, matrix products and "
        f"convolutions only; dense float32 GEMM {_fmt(gemm)} GFLOP/s on {protocol['threads']} thread(s), timed in "
        "the same rounds; `of GEMM` = achieved / GEMM rate; the pairwise bound is the distance matrix at the GEMM "
        "rate, 2k FLOPs per pair)"
    )
    return Section(title, pd.DataFrame(rows))
