"""Run a suite: every (dataset, method configuration, seed) cell, one record each.

Data flows one way: dataset -> oracle (cached) -> surrogate fit under the suite's budget ->
metrics and throughput -> one record per cell (and evaluation setting). A cell that
fails is recorded as failed with its error and the other cells still run; ``resume``
skips cells whose record is already ``ok``.

A cell is a pure function of its inputs (:func:`compute_cell`), so it runs unchanged in
this process or as a task on a Dask cluster (:mod:`wbench.executor`); the client builds
the datasets and their ground truth first and writes every record, artifact and cache
entry as the cells come back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from wbench.budget import Budget
from wbench.data import PairedDataset
from wbench.errors import CacheError, PluginError, WbenchError
from wbench.executor import (
    Executor,
    TaskFailedError,
    executor_for,
    use_executor,
    where,
    worker_threads,
)
from wbench.plugins import Plugins
from wbench.progress import progress
from wbench.records import (
    SCHEMA_VERSION,
    RecordStore,
    canonical_json,
    cell_key,
    provenance,
    utc_now,
)
from wbench.suite import DatasetSpec, Suite, SurrogateSpec
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.training import predict_pairs, seed_everything

EXACT_REFERENCE = "exact-lp"
SUBSET_SEED = 12345  # the solver evaluation subset is the same for every method and seed


class ResultsExistError(WbenchError):
    """The output directory already holds records and ``--resume`` was not given."""


@dataclass(frozen=True)
class RunOptions:
    """Command-line overrides of a suite run.

    :param out_dir: where ``records.jsonl``, plots and models go.
    :param resume: continue a run in ``out_dir``, skipping cells already ``ok``.
    :param device: override the suite's device.
    :param seeds: override the suite's seeds.
    :param surrogates: run only these methods (names not in the suite run at their defaults).
    :param datasets: run only these datasets (likewise).
    :param cache_dir: ground-truth cache directory (default ``$WBENCH_CACHE_DIR``).
    :param n_jobs: oracle worker processes (-1: all cores).
    :param scheduler: a Dask scheduler address or scheduler file: the ground truth and the
        cells run on that cluster (None: ``$WBENCH_SCHEDULER``, else this machine).
    """

    out_dir: Path
    resume: bool = False
    device: str | None = None
    seeds: tuple[int, ...] | None = None
    surrogates: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    n_jobs: int = -1
    scheduler: str | None = None


def select_specs(specs: Sequence[Any], names: Sequence[str] | None, make: Callable[[str], Any]) -> tuple[Any, ...]:
    """The specs named in ``names`` (all when None); a name absent from the suite gets ``make(name)``."""
    if names is None:
        return tuple(specs)
    chosen = []
    for name in names:
        matches = [s for s in specs if s.name == name]
        chosen.extend(matches or [make(name)])
    return tuple(chosen)


def resolve_suite(suite: Suite, options: RunOptions) -> Suite:
    """Apply the command-line overrides to a suite."""
    return replace(
        suite,
        datasets=select_specs(suite.datasets, options.datasets, lambda n: DatasetSpec(name=n)),
        surrogates=select_specs(suite.surrogates, options.surrogates, lambda n: SurrogateSpec(name=n)),
        seeds=options.seeds or suite.seeds,
        device=options.device or suite.device,
    )


def method_label(spec: SurrogateSpec, eval_params: Mapping[str, Any]) -> str:
    """Display name of a method row: its label or name, then its non-default settings."""
    base = spec.label or spec.name
    if spec.params and not spec.label:
        base += "(" + ",".join(f"{k}={v}" for k, v in sorted(spec.params.items())) + ")"
    if eval_params:
        base += "[" + ",".join(f"{k}={v}" for k, v in sorted(eval_params.items())) + "]"
    return base


def dataset_label(spec: DatasetSpec) -> str:
    """Display name of a dataset configuration."""
    return spec.label or spec.name


CELL_RESOURCE = "wbench-cell"
"""The Dask worker resource a cell holds while it runs. Every worker gets one unit (unless
it was started with ``--resources wbench-cell=N``), so a worker runs one cell at a time: a
cell's throughput timing has its worker's cores (threads) to itself."""


@dataclass(frozen=True)
class CellTask:
    """One cell as the input of a pure function: it runs the same here or on a Dask worker.

    :param suite: the resolved suite (budget, evaluation settings, device).
    :param dataset: the cell's dataset spec; ``datasets`` given to :func:`compute_cell` holds
        it and its transfer targets, ground truth attached.
    :param surrogate: the method spec.
    :param seed: the cell's seed.
    :param todo: ``(eval_params, identity)`` of each record still to compute.
    :param surrogate_cls: the loaded surrogate class.
    :param metrics: metric name -> loaded metric function.
    :param exact_cls: the exact LP (the speed-up denominator), or None when unavailable.
    :param cache_dir: the ground-truth cache (exact blocks of the metrics).
    :param n_jobs: local processes for those blocks (bounded by the worker's threads on a worker).
    """

    suite: Suite
    dataset: DatasetSpec
    surrogate: SurrogateSpec
    seed: int
    todo: tuple[tuple[Mapping[str, Any], dict[str, Any]], ...]
    surrogate_cls: type[Surrogate]
    metrics: Mapping[str, Callable[..., Mapping[str, float]]]
    exact_cls: type[Surrogate] | None
    cache_dir: str | None = None
    n_jobs: int = -1

    def describe(self) -> str:
        """``dataset / method / seed N``, as messages name the cell."""
        return f"{dataset_label(self.dataset)} / {self.surrogate.label or self.surrogate.name} / seed {self.seed}"


@dataclass
class CellResult:
    """What a cell hands back to the client, which alone writes.

    :param records: complete records, in evaluation-setting order, not yet stored.
    :param files: artifacts (path relative to the run directory -> bytes) made away from it.
    :param blocks: exact W2^2 blocks solved on a worker: cache key -> ``(values, meta)``.
    """

    records: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)
    blocks: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)


def dataset_memo(name: str, params: Mapping[str, Any]) -> str:
    """The key of a dataset configuration (built once per run)."""
    return canonical_json([name, dict(params)])


def make_record(
    suite: Suite, spec: SurrogateSpec, ident: Mapping[str, Any], status: str, started: str, **fields: Any
) -> dict[str, Any]:
    """A complete record of one cell and evaluation setting (provenance of this process)."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "key": cell_key(**ident),
        "suite": suite.name,
        **ident,
        "label": method_label(spec, ident["eval_params"]),
        "status": status,
        "error": fields.pop("error", None),
        "started_at": started,
        "finished_at": utc_now(),
        "provenance": _provenance(suite.device),
        **fields,
    }
    return record


def _provenance(device: str) -> dict[str, Any]:
    info = provenance(device)
    threads = worker_threads()
    if threads is not None:  # the figures were measured on this worker: say which
        info["dask_worker"] = {"where": where(), "threads": threads}
    return info


class Runner:
    """Runs one resolved suite into one output directory.

    The client (this object) builds the datasets and their ground truth (through the
    executor), then runs each cell, here or as a task on a Dask cluster, and writes every
    record as it arrives: only the client writes the run directory and the cache.
    """

    def __init__(self, suite: Suite, plugins: Plugins, options: RunOptions):
        self.suite = resolve_suite(suite, options)
        self.plugins = plugins
        self.options = options
        self.store = RecordStore(options.out_dir)
        self._datasets: dict[str, PairedDataset] = {}

    # ----------------------------------------------------------------- checks
    def check(self) -> None:
        """Fail early, before any work: unknown names, existing results without resume."""
        registry = self.plugins.registry
        for spec in self.suite.datasets:
            registry.get("dataset", spec.name)
            for target in spec.transfer_to:
                registry.get("dataset", target.name)
        for spec in self.suite.surrogates:
            registry.get("surrogate", spec.name)
        if self.suite.evaluation.metrics is not None:
            for name in self.suite.evaluation.metrics:
                registry.get("metric", name)
        if self.store.exists() and not self.options.resume:
            raise ResultsExistError(
                f"{self.store.path} already holds records; pass --resume to continue that run "
                f"or --out to write a new one (nothing was overwritten)"
            )
        self.store.load()  # a corrupt records file stops the run before anything is written

    # ----------------------------------------------------------------- data
    def dataset(self, name: str, params: Mapping[str, Any]) -> PairedDataset:
        """Build a dataset and attach its (cached) ground truth; memoised per run."""
        from wbench.groundtruth import attach_ground_truth

        memo = dataset_memo(name, params)
        if memo not in self._datasets:
            cls = self.plugins.registry.get("dataset", name).load()
            built = cls(**params).build()
            self._datasets[memo] = attach_ground_truth(
                built, cache_dir=self.options.cache_dir, n_jobs=self.options.n_jobs
            )
        return self._datasets[memo]

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

    def run(self) -> list[dict[str, Any]]:
        """Run every cell not yet finished; return the records written by this call.

        Cells run in this process one after the other, or, when the executor is a Dask
        cluster (``options.scheduler`` or ``$WBENCH_SCHEDULER``), as cluster tasks, one per
        worker at a time; either way each record is written here as its cell finishes.
        """
        self.check()
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        (self.options.out_dir / "suite.json").write_text(
            canonical_json({"suite": dataclasses.asdict(self.suite)}) + "\n"
        )
        with executor_for(self.options.scheduler, self.options.n_jobs) as executor, use_executor(executor):
            if executor.kind == "dask":
                return self._run_on_cluster(executor)
            written: list[dict[str, Any]] = []
            bar = progress(self.cells(), desc=f"suite {self.suite.name}", unit="cell")
            for dataset_spec, surrogate_spec, seed in bar:
                bar.set_postfix_str(f"{dataset_label(dataset_spec)} / {surrogate_spec.name} / seed {seed}")
                written.extend(self.run_cell(dataset_spec, surrogate_spec, seed))
            return written

    def run_cell(self, d: DatasetSpec, s: SurrogateSpec, seed: int) -> list[dict[str, Any]]:
        """Fit one method once for a seed, in this process, and write one record per evaluation setting."""
        task = self._prepare(d, s, seed)
        if isinstance(task, list):
            return task
        blocks = ExactBlocks(self.options.cache_dir, self.options.n_jobs, remote=False)
        return self._store_result(compute_cell(task, self.cell_datasets(d), self.options.out_dir, blocks))

    def _prepare(self, d: DatasetSpec, s: SurrogateSpec, seed: int) -> CellTask | list[dict[str, Any]]:
        """The cell's task, or the records written instead (nothing to do, unavailable, no data)."""
        budget = replace(self.suite.budget, seed=seed, device=self.suite.device)
        identities = [self._identity(d, s, seed, e, budget) for e in s.eval]
        done = self.store.finished_keys() if self.options.resume else set()
        todo = tuple((e, ident) for e, ident in zip(s.eval, identities, strict=True) if cell_key(**ident) not in done)
        if not todo:
            return []
        started = utc_now()
        try:
            cls = self.plugins.registry.get("surrogate", s.name).load()
        except PluginError as exc:
            return [self._store(make_record(self.suite, s, ident, "unavailable", started, error=str(exc))) for _, ident in todo]
        if not cls.trainable and seed != self.suite.seeds[0]:
            return []  # solvers have no seed-dependent training: evaluated once, at the first seed
        try:
            self.cell_datasets(d)
        except Exception as exc:
            error = _describe_error(exc)
            return [self._store(make_record(self.suite, s, ident, "failed", started, error=error)) for _, ident in todo]
        return CellTask(
            suite=self.suite, dataset=d, surrogate=s, seed=seed, todo=todo, surrogate_cls=cls,
            metrics=self._metric_functions(), exact_cls=self._exact_class(),
            cache_dir=None if self.options.cache_dir is None else str(self.options.cache_dir), n_jobs=self.options.n_jobs,
        )

    def _run_on_cluster(self, executor: Executor) -> list[dict[str, Any]]:
        """Ground truth first (here, through the cluster), then every cell as a cluster task."""
        written: list[dict[str, Any]] = []
        tasks: list[CellTask] = []
        for d, s, seed in self.cells():
            task = self._prepare(d, s, seed)
            if isinstance(task, list):
                written.extend(task)
            else:
                tasks.append(task)
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
                        for _, ident in task.todo
                    )
                else:
                    written.extend(self._store_result(result))
                bar.set_postfix_str(task.describe())
                bar.update(1)
        finally:
            bar.close()
        return written

    def _store(self, record: Mapping[str, Any]) -> dict[str, Any]:
        stored = self.store.append(record)
        self.plugins.manager.hook.wbench_record_finished(record=dict(stored))
        return stored

    def _store_result(self, result: CellResult) -> list[dict[str, Any]]:
        """Write a cell's artifacts, its new cache entries, then its records (in that order)."""
        from wbench.cache import CacheWarning, read_entry, write_entry

        for relative, data in result.files.items():
            _write_file_atomically(self.options.out_dir / relative, data)
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

    def _exact_class(self) -> type[Surrogate] | None:
        try:
            return self.plugins.registry.get("surrogate", EXACT_REFERENCE).load()
        except PluginError:
            return None


# --------------------------------------------------------------------------- one cell


def compute_cell(
    task: CellTask, datasets: Mapping[str, PairedDataset], artifact_dir: Path, blocks: ExactBlocks
) -> CellResult:
    """Fit one method once for a seed and evaluate it: one record per evaluation setting.

    A pure function of its inputs (where it runs changes only the provenance and the
    timings). Failures of the fit or of an evaluation become ``failed`` records.

    :param datasets: :func:`dataset_memo` -> dataset with ground truth, for the cell's
        dataset and its transfer targets.
    :param artifact_dir: where plots and models are written (paths in the records are relative to it).
    :param blocks: the exact blocks the metrics ask for.
    """
    suite, s, d, seed = task.suite, task.surrogate, task.dataset, task.seed
    budget = replace(suite.budget, seed=seed, device=suite.device)
    started = utc_now()
    records: list[dict[str, Any]] = []
    cls = task.surrogate_cls
    dataset = datasets[dataset_memo(d.name, d.params)]
    try:
        surrogate, fit_report = _build_and_fit(cls, s, dataset, budget)
    except Exception as exc:
        error = _describe_error(exc)
        records = [make_record(suite, s, ident, "failed", started, error=error) for _, ident in task.todo]
        return CellResult(records, blocks=blocks.computed)
    for eval_params, ident in task.todo:
        try:
            fields = _evaluate(task, surrogate, dataset, datasets, eval_params, fit_report, ident, artifact_dir, blocks)
            records.append(make_record(suite, s, ident, "ok", started, **fields))
        except Exception as exc:
            records.append(make_record(suite, s, ident, "failed", started, error=_describe_error(exc)))
    return CellResult(records, blocks=blocks.computed)


def run_cell_task(payload: bytes, datasets: Mapping[str, PairedDataset]) -> CellResult:
    """The cluster task of a cell: :func:`compute_cell` on a worker, using its threads.

    Artifacts are made in a temporary folder and returned as bytes, exact blocks solved
    here are returned for the client's cache: the worker writes nothing that lasts.
    """
    import pickle

    task: CellTask = pickle.loads(payload)
    threads = worker_threads()
    with tempfile.TemporaryDirectory(prefix="wbench-cell-") as tmp, _torch_threads(threads):
        root = Path(tmp)
        blocks = ExactBlocks(task.cache_dir, task.n_jobs, remote=True)
        result = compute_cell(task, datasets, root, blocks)
        result.files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return result


def dump_task(task: CellTask) -> bytes:
    """Pickle a cell for a worker; classes of local plugin files (``--plugin FILE``) travel
    by value, so the workers need not have those files."""
    import cloudpickle

    from wbench.plugins import LOCAL_PLUGIN_PREFIX

    for name, module in list(sys.modules.items()):
        if name.startswith(LOCAL_PLUGIN_PREFIX) and module is not None:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(task)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch threads inside the block (None: leave as is)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write_file_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_WORKER_BLOCKS: dict[str, np.ndarray] = {}
"""Exact blocks solved in this worker process (cache key -> values), reused by its later cells."""



class ExactBlocks:
    """The exact W2^2 blocks the metrics ask for (retrieval, Wassmap).

    In the client: through the cache (:func:`wbench.groundtruth.exact_pairwise_w2sq`). On a
    worker: from this process's memory, else read from the cache if the worker can see it,
    else solved on the worker and handed back in :attr:`computed` for the client to store.

    :param cache_dir: the cache folder (None: ``$WBENCH_CACHE_DIR`` where this runs).
    :param n_jobs: local processes for a block to solve.
    :param remote: running as a cluster task (never write the cache).
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None, n_jobs: int, *, remote: bool):
        self.cache_dir, self.n_jobs, self.remote = cache_dir, n_jobs, remote
        self.computed: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}

    def function(self, dataset: PairedDataset) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``block(rows, cols) -> (n, m)`` exact W2^2 between measures of ``dataset``."""
        from wbench.cache import read_entry
        from wbench.groundtruth import exact_pairwise_w2sq, plan_pairwise_block

        def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            if not self.remote:
                return exact_pairwise_w2sq(dataset, rows, cols, cache_dir=self.cache_dir, n_jobs=self.n_jobs)
            plan = plan_pairwise_block(dataset, rows, cols)
            values = _WORKER_BLOCKS.get(plan.key)
            if values is None:
                with contextlib.suppress(CacheError, OSError):
                    values = read_entry(plan.key, cache_dir=self.cache_dir, shape=plan.shape)
            if values is None:
                values = plan.solve(n_jobs=self.n_jobs, progress=False)
                self.computed[plan.key] = (values, {**plan.meta, "computed_on": where()})
            _WORKER_BLOCKS[plan.key] = values
            return values

        return block


def _build_and_fit(cls: type[Surrogate], s: SurrogateSpec, dataset: PairedDataset, budget: Budget) -> tuple[Surrogate, Any]:
    from wbench.sizing import build_at_parameter_target

    check_compatible(cls, s.name, dataset)
    params = cls.params_for(s.params, dataset.measures)
    seed_everything(budget.seed)
    if cls.trainable and budget.param_target is not None and s.match_budget:
        surrogate = build_at_parameter_target(cls, params, budget.param_target, tolerance=budget.param_tolerance)
    else:
        surrogate = cls(**params)
    if isinstance(surrogate, TorchSurrogate):
        surrogate.to(budget.device)
    fit_report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
    return surrogate, fit_report


def _evaluation_dataset(suite: Suite, cls: type[Surrogate], dataset: PairedDataset) -> PairedDataset:
    """Solvers are slow: they are evaluated on a fixed seeded subset of the test pairs only
    (learned methods and embeddings that set ``evaluate_on_all_pairs``: on every test pair)."""
    limit = suite.evaluation.solver_eval_pairs
    if cls.trainable or cls.evaluate_on_all_pairs:
        return dataset
    test = dataset.pairs["test"]
    if limit is not None and len(test) > limit:
        chosen = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(test))[:limit])
        test = test.subset(chosen)
    return dataset.with_pairs({"test": test})


def _evaluate(
    task: CellTask,
    surrogate: Surrogate,
    dataset: PairedDataset,
    datasets: Mapping[str, PairedDataset],
    eval_params: Mapping[str, Any],
    fit_report: Any,
    ident: Mapping[str, Any],
    artifact_dir: Path,
    blocks: ExactBlocks,
) -> dict[str, Any]:
    from wbench.evaluation import EvaluationContext, run_metrics

    suite, cls = task.suite, task.surrogate_cls
    surrogate.configure(**{**cls.default_eval_params, **eval_params})  # settings never carry over
    evaluated = _evaluation_dataset(suite, cls, dataset)
    predictions = {
        split: predict_pairs(surrogate, evaluated.split(split)) for split in evaluated.pairs
    }
    ctx = EvaluationContext(
        surrogate=surrogate,
        dataset=evaluated,
        predictions=predictions,
        exact_block=blocks.function(dataset),
        seed=task.seed,
        options=dict(suite.evaluation.options),
    )
    metrics, metric_errors = run_metrics(ctx, dict(task.metrics))
    fields: dict[str, Any] = {
        "n_parameters": surrogate.n_parameters,
        "trainable": cls.trainable,
        "fit": fit_report.as_dict(),
        "describe": surrogate.describe(),
        "metrics": metrics,
        "metric_errors": metric_errors,
        "throughput": _throughput(task, surrogate, dataset) if suite.evaluation.throughput else {},
        "transfer": _transfer(task, surrogate, datasets),
        "unit": dataset.unit,
    }
    fields["artifacts"] = _artifacts(suite, surrogate, fields, predictions, evaluated, ident, artifact_dir)
    return fields


def _throughput(task: CellTask, surrogate: Surrogate, dataset: PairedDataset) -> dict[str, Any]:
    from wbench.throughput import measure_throughput, speedup_columns

    suite = task.suite
    ev = suite.evaluation
    figures = dict(
        measure_throughput(
            surrogate, dataset.measures, n_independent=ev.independent_pairs, n_pairwise=ev.pairwise_size,
            rounds=ev.timing_rounds, device=suite.device, max_time_s=ev.timing_max_s,
        )
    )
    exact = _exact_reference_throughput(task, dataset)
    if exact:
        figures.update({f"exact.{k}": v for k, v in exact.items()})
        figures.update(speedup_columns(figures, exact))
    return figures


def _exact_reference_throughput(task: CellTask, dataset: PairedDataset) -> dict[str, float]:
    """The exact LP timed on the cell's dataset right after the method, in the process that
    runs the cell (on a cluster, on that worker's cores): the denominator of its speed-ups.

    Timed again for every cell (a second or two), so that each speed-up is a ratio of two
    figures taken within seconds of each other under the same load, not against one figure
    taken at another time of the run.
    """
    from wbench.throughput import measure_throughput

    ev = task.suite.evaluation
    if task.exact_cls is None:
        return {}
    try:
        return dict(
            measure_throughput(
                task.exact_cls(), dataset.measures, n_independent=ev.exact_independent_pairs,
                n_pairwise=ev.exact_pairwise_size, rounds=max(1, ev.timing_rounds // 2), device="cpu",
                max_time_s=ev.timing_max_s,
            )
        )
    except WbenchError:
        return {}


def _transfer(task: CellTask, surrogate: Surrogate, datasets: Mapping[str, PairedDataset]) -> dict[str, Any]:
    """Metrics of the fitted model on the test pairs of each ``transfer_to`` dataset."""
    from wbench.metrics import pair_metrics

    cls = task.surrogate_cls
    out: dict[str, Any] = {}
    for spec in task.dataset.transfer_to:
        label = spec.label or spec.name
        target = datasets[dataset_memo(spec.name, spec.params)]
        try:
            check_compatible(cls, surrogate.__class__.__name__, target, model=surrogate)
        except WbenchError as exc:
            out[f"{label}.error"] = str(exc)
            continue
        test = _evaluation_dataset(task.suite, cls, target).split("test")
        predicted = predict_pairs(surrogate, test)
        out.update(pair_metrics(predicted, test.pairs.w2sq, prefix=label))
    return out


def _artifacts(
    suite: Suite, surrogate: Surrogate, fields: Mapping[str, Any], predictions: Mapping[str, np.ndarray],
    dataset: PairedDataset, ident: Mapping[str, Any], out_dir: Path,
) -> list[str]:
    from wbench.plots import plot_loss_curves, plot_predicted_vs_true

    ev = suite.evaluation
    stem = f"{ident['dataset_label']}-{method_label(SurrogateSpec(name=ident['method'], params=ident['method_params']), ident['eval_params'])}-seed{ident['seed']}"
    stem = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in stem)
    paths: list[Path] = []
    if ev.plots:
        title = f"{ident['method']} on {ident['dataset_label']}, seed {ident['seed']}"
        fit = fields["fit"]
        if fit["train_loss"]:
            paths.append(plot_loss_curves(fit["train_loss"], fit["val_mse"], out_dir / "plots" / f"{stem}-loss.png", title=title))
        true_w2 = dataset.pairs["test"].w2
        paths.append(
            plot_predicted_vs_true(predictions["test"], true_w2, out_dir / "plots" / f"{stem}-pred.png", unit=dataset.unit, title=title)
        )
        paths.extend(Path(p) for p in surrogate.write_artifacts(out_dir / "plots" / stem))
    if ev.save_models and isinstance(surrogate, TorchSurrogate) and type(surrogate).trainable:
        model_path = out_dir / "models" / f"{stem}.pt"
        surrogate.save(model_path)
        paths.append(model_path)
    return [str(p.relative_to(out_dir)) for p in paths]


def check_compatible(cls: type[Surrogate], name: str, dataset: PairedDataset, *, model: Surrogate | None = None) -> None:
    """Raise when a grid model meets point clouds, or a fitted model meets another grid."""
    if cls.input_kind == "grid" and not dataset.measures.is_grid:
        raise WbenchError(f"{name} needs images on a grid, but dataset {dataset.name!r} holds point clouds")
    if model is not None and cls.input_kind == "grid":
        fitted = getattr(model, "params", {}).get("grid_shape")
        if fitted is not None and tuple(fitted) != tuple(dataset.measures.grid_shape or ()):
            raise WbenchError(
                f"model was fitted on {tuple(fitted)} images; dataset {dataset.name!r} has {dataset.measures.grid_shape}"
            )


def _describe_error(exc: BaseException) -> str:
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return f"{type(exc).__name__}: {exc}\n" + "".join(tail).strip()


def run_suite(suite: Suite, plugins: Plugins, options: RunOptions) -> list[dict[str, Any]]:
    """Run a suite into ``options.out_dir``; see :class:`Runner`."""
    return Runner(suite, plugins, options).run()
