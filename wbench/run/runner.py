"""Run a suite: every (dataset, method configuration, seed) cell, one record each.

Data flows one way: dataset -> oracle (cached) -> surrogate fit under the suite's budget ->
metrics and throughput -> one record per cell (and evaluation setting). A cell that
fails is recorded as failed with its error and the other cells still run; ``resume``
skips cells whose record is already ``ok``.

This module orchestrates: which cells, in which order, on which executor, resume, and the
writing of records, artifacts and cache entries (the client alone writes). The work of one
cell is :mod:`wbench.run.cell`; a cell as a cluster task is :mod:`wbench.run.cluster_task`; the
command-line overrides are :mod:`wbench.run.options`.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from wbench.budget import Budget
from wbench.data import PairedDataset
from wbench.errors import CacheError, PluginError, WbenchError
from wbench.executor import Executor, TaskFailedError, executor_for, use_executor
from wbench.oracle.exact_blocks import ExactBlocks
from wbench.plugin.manager import Plugins
from wbench.provenance import utc_now
from wbench.records.store import TORN_SUFFIX, Record, RecordStore, canonical_json, cell_key
from wbench.run.cell import (
    CellResult,
    CellTask,
    compute_cell,
    dataset_label,
    dataset_memo,
    describe_error,
    make_record,
)
from wbench.run.cluster_task import CELL_RESOURCE, dump_task, run_cell_task
from wbench.run.lock import LOCK_FILENAME, check_writable, run_dir_lock
from wbench.run.options import RunOptions, apply_dataset_params, resolve_suite, select_specs
from wbench.run.suite import DatasetSpec, Suite, SurrogateSpec, budget_for
from wbench.run.timing_pass import TimingOptions, default_dataset_for, time_run
from wbench.surrogate import Surrogate
from wbench.train.checkpoint import CHECKPOINT_DIR
from wbench.util.atomic import write_bytes_atomically
from wbench.util.progress import progress

__all__ = [
    "NotARunFolderError", "ResultsExistError", "RunOptions", "Runner", "check_out_dir", "resolve_suite",
    "run_suite", "select_specs",
]

RUN_FOLDER_FILES = ("records.jsonl", "suite.json", LOCK_FILENAME)
"""Files of which any one marks a folder as a wbench run folder (a run writes them first)."""


class ResultsExistError(WbenchError):
    """The output directory already holds records and ``--resume`` was not given."""


class NotARunFolderError(WbenchError):
    """The output directory is a non-empty folder that no wbench run wrote, and ``--force`` was not given."""


def check_out_dir(out_dir: Path, *, force: bool = False) -> None:
    """Refuse to write a run into a non-empty folder that is not a wbench run folder.

    A new or empty folder, or one holding any of :data:`RUN_FOLDER_FILES`, is accepted (an
    existing run folder is then checked for records by :meth:`Runner.check`); ``force``
    accepts any folder.

    :raises NotARunFolderError: naming the folder, before anything is written.
    """
    path = Path(out_dir)
    if force or not path.is_dir() or any((path / name).exists() for name in RUN_FOLDER_FILES):
        return
    if next(path.iterdir(), None) is None:
        return
    raise NotARunFolderError(
        f"the output directory {path} is a non-empty folder that is not a wbench run folder "
        f"(it holds no {' or '.join(RUN_FOLDER_FILES[:2])}); a run would overwrite files in it. "
        f"Choose a new or empty --out, or pass --force to write into it (nothing was written)"
    )


class Runner:
    """Runs one resolved suite into one output directory.

    The client (this object) builds the datasets and their ground truth (through the
    executor), then runs each cell, here or as a task on a Dask cluster, and writes every
    record as it arrives: only the client writes the run directory and the cache.
    """

    def __init__(self, suite: Suite, plugins: Plugins, options: RunOptions):
        self.suite = apply_dataset_params(resolve_suite(suite, options), options.dataset_params, plugins.registry)
        self.plugins = plugins
        self.options = options
        self.store = RecordStore(options.out_dir)
        self._dataset_for = default_dataset_for(options.cache_dir, plugins.registry, n_jobs=options.n_jobs)

    # ----------------------------------------------------------------- checks
    def check(self) -> None:
        """Fail early, before any work: unknown names, parameters the plugins do not declare,
        an unknown ranking metric, existing results without resume, a corrupt records file."""
        from wbench.run.suite_check import check_primary, check_suite, known_metric_columns

        check_suite(self.suite, self.plugins.registry)
        existing = self.store.exists()
        if existing and not self.options.resume:
            raise ResultsExistError(
                f"{self.store.path} already holds records; pass --resume to continue that run "
                f"or --out to write a new one (nothing was overwritten)"
            )
        columns: set[str] = set()
        if existing:
            for record in self.store.load():  # a corrupt records file stops the run before anything is written
                if record.outcome is not None:
                    columns.update(record.outcome.metrics or {})
                    columns.update(record.outcome.throughput or {})
        known = known_metric_columns(self._metric_functions(), columns)
        check_primary(self.suite.primary_metric, known, where=f"{self.suite.source or 'suite'}: [suite].primary_metric")

    # ----------------------------------------------------------------- data
    def dataset(self, name: str, params: Mapping[str, Any]) -> PairedDataset:
        """Build a dataset and attach its (cached) ground truth; memoised per run."""
        return self._dataset_for(name, params)

    def cell_datasets(self, d: DatasetSpec) -> dict[str, PairedDataset]:
        """The datasets a cell of ``d`` needs (``d`` and its transfer targets), by :func:`dataset_memo`."""
        specs = [(d.name, d.params), *((t.name, t.params) for t in d.transfer_to)]
        return {dataset_memo(name, params): self.dataset(name, params) for name, params in specs}

    # ----------------------------------------------------------------- run
    def cells(self) -> list[tuple[DatasetSpec, SurrogateSpec, int]]:
        """Every (dataset, method, seed) cell in run order: seed-major, so that an interrupted
        run has every method on every dataset at its first seed before any at its second."""
        return [
            (d, s, seed)
            for seed in self.suite.seeds
            for d in self.suite.datasets
            for s in self.suite.surrogates
            if (s.seeds is None or seed in s.seeds) and s.runs_on(d)
        ]

    def planned_cells(self) -> list[tuple[DatasetSpec, SurrogateSpec, int]]:
        """The cells of :meth:`cells` that this run will work on: without the cells a solver
        skips (it is evaluated once, at the first seed) and, on resume, the finished ones."""
        done = self.store.finished_keys() if self.options.resume else set()
        return [cell for cell in self.cells() if self._pending(*cell, done)[0]]

    def run(self) -> list[Record]:
        """Run every cell not yet finished; return the records written by this call.

        Cells run in this process one after the other, or, when the executor is a Dask
        cluster (``options.scheduler`` or ``$WBENCH_SCHEDULER``), as cluster tasks, one per
        worker at a time; either way each record is written here as its cell finishes.
        """
        from wbench.run.suite_check import check_suite

        check_suite(self.suite, self.plugins.registry)  # names and parameters: before touching the disk
        check_out_dir(self.options.out_dir, force=self.options.force)  # never write into a stranger's folder
        check_writable(self.options.out_dir)  # before any compute: a clear error, not a traceback after a cell
        with run_dir_lock(self.options.out_dir):  # a second run on this directory stops here, naming our PID
            if self.options.resume:
                self._drop_torn_tail()
            self.check()
            (self.options.out_dir / "suite.json").write_text(
                canonical_json({"suite": dataclasses.asdict(self.suite)}) + "\n"
            )
            written = self._run_cells()
            if self.options.timing and self.suite.evaluation.throughput and any(r.ok for r in self.store.load()):
                self.time_models()  # `throughput = false` or --no-timing: not timed; nothing ok: nothing to time
            return written

    def time_models(self) -> Path:
        """The run's one timing pass over every model it fitted (:func:`wbench.run.timing_pass.time_run`):
        ``timing.json`` beside the records, at the suite's timing settings."""
        options = TimingOptions.of_suite(self.suite.evaluation)
        print(f"wbench: timing every model of the run ({options.rounds} interleaved rounds, "
              f"{options.threads} thread(s)); skip with --no-timing", file=sys.stderr)
        return time_run(self.options.out_dir, options, registry=self.plugins.registry, dataset_for=self.dataset)

    def _drop_torn_tail(self) -> None:
        """On resume: drop a torn last line of ``records.jsonl`` (kept in ``records.jsonl.torn``), saying so."""
        torn = self.store.drop_torn_tail()
        if torn:
            print(
                f"wbench: {self.store.path}: dropped a torn last line ({len(torn)} bytes, a write interrupted "
                f"by a kill; its cell runs again); the bytes are kept in {self.store.path}{TORN_SUFFIX}",
                file=sys.stderr,
            )

    def _run_cells(self) -> list[Record]:
        with executor_for(self.options.scheduler, self.options.n_jobs) as executor, use_executor(executor):
            if executor.kind == "dask":
                return self._run_on_cluster(executor)
            written: list[Record] = []
            bar = progress(self.planned_cells(), desc=f"suite {self.suite.name}", unit="cell")
            for dataset_spec, surrogate_spec, seed in bar:
                bar.set_postfix_str(f"{dataset_label(dataset_spec)} / {surrogate_spec.name} / seed {seed}")
                written.extend(self.run_cell(dataset_spec, surrogate_spec, seed))
            return written

    def run_cell(self, d: DatasetSpec, s: SurrogateSpec, seed: int) -> list[Record]:
        """Fit one method once for a seed, in this process, and write one record per evaluation setting."""
        task = self._prepare(d, s, seed)
        if isinstance(task, list):
            return task
        blocks = ExactBlocks(self.options.cache_dir, self.options.n_jobs, remote=False)
        early: list[Record] = []

        def emit(records: list[Record]) -> None:  # a milestone's records, stored as it finishes
            early.extend(self._store(record) for record in records)

        result = compute_cell(task, self.cell_datasets(d), self.options.out_dir, blocks, emit=emit)
        return early + self._store_result(result)

    def _prepare(self, d: DatasetSpec, s: SurrogateSpec, seed: int) -> CellTask | list[Record]:
        """The cell's task, or the records written instead (nothing to do, unavailable, no data)."""
        done = self.store.finished_keys() if self.options.resume else set()
        todo, cls = self._pending(d, s, seed, done)
        if not todo:
            return []
        started = utc_now()
        if isinstance(cls, PluginError):
            return [self._store(make_record(self.suite, s, ident, "unavailable", started, error=str(cls))) for _, _, ident in todo]
        try:
            self.cell_datasets(d)
        except Exception as exc:
            error = describe_error(exc)
            return [self._store(make_record(self.suite, s, ident, "failed", started, error=error)) for _, _, ident in todo]
        return CellTask(
            suite=self.suite, dataset=d, surrogate=s, seed=seed, todo=todo, surrogate_cls=cls,
            metrics=self._metric_functions(),
            cache_dir=None if self.options.cache_dir is None else str(self.options.cache_dir), n_jobs=self.options.n_jobs,
            checkpoint_dir=str(self.options.out_dir / CHECKPOINT_DIR), resume=self.options.resume,
        )

    def _pending(
        self, d: DatasetSpec, s: SurrogateSpec, seed: int, done: set[str]
    ) -> tuple[tuple[tuple[int, Mapping[str, Any], dict[str, Any]], ...], type[Surrogate] | PluginError]:
        """The (milestone index, evaluation setting, identity) items of a cell still to do (none
        for a solver past the first seed, or already in ``done``), and the method's class (its
        load error when its plugin is unavailable: the items are then recorded so)."""
        budget = replace(budget_for(self.suite, s), seed=seed, device=self.suite.device)
        todo = tuple(
            (index, e, ident)
            for index, milestone in enumerate(budget.milestone_list)
            for e in s.eval
            for ident in [self._identity(d, s, seed, e, budget.at_milestone(milestone))]
            if cell_key(**ident) not in done
        )
        try:
            cls = self.plugins.registry.get("surrogate", s.name).load()
        except PluginError as exc:
            return todo, exc
        if not cls.trainable and seed != self.suite.seeds[0]:
            return (), cls  # solvers have no seed-dependent training: evaluated once, at the first seed
        if not cls.trainable:  # nothing to fit: one evaluation, keyed by the last milestone
            last = len(budget.milestone_list) - 1
            todo = tuple(item for item in todo if item[0] == last)
        return todo, cls

    def _run_on_cluster(self, executor: Executor) -> list[Record]:
        """Ground truth first (here, through the cluster), then every cell as a cluster task."""
        written: list[Record] = []
        tasks: list[CellTask] = []
        for d, s, seed in self.cells():
            task = self._prepare(d, s, seed)
            if isinstance(task, list):
                written.extend(task)
            else:  # workers never write the run directory: no checkpoints on a cluster
                tasks.append(replace(task, checkpoint_dir=None))
        if not tasks:
            return written
        shared: dict[str, Any] = {}
        arguments = []
        for task in tasks:
            needed = {}
            for memo, dataset in self.cell_datasets(task.dataset).items():
                if memo not in shared:
                    shared[memo] = executor.share(dataset)  # sent to each worker once
                needed[memo] = shared[memo]
            arguments.append((dump_task(task), needed))
        bar = progress(total=len(tasks), desc=f"suite {self.suite.name} on {executor.describe()}", unit="cell")
        try:
            for index, result in executor.map(
                run_cell_task, arguments, ordered=False, resources={CELL_RESOURCE: 1}, name="wbench-cell",
                errors="return",
            ):
                task = tasks[index]
                if isinstance(result, TaskFailedError):
                    error = f"cell {task.describe()} failed: {result}"
                    started = utc_now()
                    written.extend(
                        self._store(make_record(self.suite, task.surrogate, ident, "failed", started, error=error))
                        for _, _, ident in task.todo
                    )
                else:
                    written.extend(self._store_result(result))
                bar.set_postfix_str(task.describe())
                bar.update(1)
        finally:
            bar.close()
        return written

    def _store(self, record: Record) -> Record:
        """Write one record, then tell the plugins (``wbench_record_finished`` gets its JSON object)."""
        stored = self.store.append(record)
        self.plugins.manager.hook.wbench_record_finished(record=stored.as_dict())
        return stored

    def _store_result(self, result: CellResult) -> list[Record]:
        """Write a cell's artifacts, its new cache entries, then its records (in that order)."""
        from wbench.oracle.cache import CacheWarning, read_entry, write_entry

        for relative, data in result.files.items():
            write_bytes_atomically(self.options.out_dir / relative, data)
        for key, (values, meta) in result.blocks.items():
            try:
                if read_entry(key, cache_dir=self.options.cache_dir, shape=values.shape) is None:
                    write_entry(key, values, cache_dir=self.options.cache_dir, meta=meta)
            except (CacheError, OSError) as exc:
                warnings.warn(f"could not store the exact block {key[:16]} in the cache: {exc}", CacheWarning, stacklevel=2)
        return [self._store(record) for record in result.records]

    def _identity(self, d: DatasetSpec, s: SurrogateSpec, seed: int, eval_params: Mapping[str, Any], budget: Budget) -> dict[str, Any]:
        return {
            "dataset": d.name,
            "dataset_params": dict(d.params),
            "dataset_label": dataset_label(d),
            "method": s.name,
            "method_params": dict(s.params),
            "eval_params": dict(eval_params),
            "match_budget": s.match_budget,
            "seed": seed,
            "budget": budget.as_dict(),
        }

    def _metric_functions(self) -> dict[str, Callable[..., Mapping[str, float]]]:
        registry = self.plugins.registry
        names = self.suite.evaluation.metrics or registry.names("metric")
        functions = {}
        for name in names:
            try:
                functions[name] = registry.get("metric", name).load()
            except PluginError:
                continue  # listed as unavailable by `wbench list`; the record names the metrics it has
        return functions


def run_suite(suite: Suite, plugins: Plugins, options: RunOptions) -> list[Record]:
    """Run a suite into ``options.out_dir``; see :class:`Runner`."""
    return Runner(suite, plugins, options).run()
