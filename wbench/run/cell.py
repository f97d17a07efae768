"""The work of one cell: fit a method once for a seed, evaluate it, time it, measure its
transfer, write its artifacts, and make the records it produces.

A cell is a pure function of its inputs (:func:`compute_cell`), so it runs unchanged in the
client or as a task on a Dask cluster (:mod:`wbench.run.cluster_task`); only the client writes
(:mod:`wbench.run.runner`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from wbench.budget import Budget
from wbench.data import PairedDataset, PairSet
from wbench.errors import WbenchError
from wbench.executor import where, worker_threads
from wbench.oracle.exact_blocks import ExactBlocks
from wbench.provenance import provenance, utc_now
from wbench.records.store import (
    SCHEMA_VERSION,
    Outcome,
    Record,
    Status,
    canonical_json,
    cell_key,
    truth_digest,
)
from wbench.run.cell_milestones import (
    cell_training_hooks,
    milestone_fit,
    skipped_milestone,
)
from wbench.run.cell_outputs import artifacts_of
from wbench.run.cell_task import CellTask, dataset_label, method_label  # noqa: F401 (re-exported)
from wbench.run.isolation import CellTimeoutError, time_limit, torch_state_guard
from wbench.run.suite import Suite, SurrogateSpec, budget_for
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.train.checkpoint import milestone_hooks
from wbench.train.loop import predict_pairs, seed_everything

SUBSET_SEED = 12345  # the solver evaluation subset is the same for every method and seed


@dataclass
class CellResult:
    """What a cell hands back to the client, which alone writes.

    :param records: complete records, in evaluation-setting order, not yet stored.
    :param files: artifacts (path relative to the run directory -> bytes) made away from it.
    :param blocks: exact W2^2 blocks solved on a worker: cache key -> ``(values, meta)``.
    """

    records: list[Record]
    files: dict[str, bytes] = field(default_factory=dict)
    blocks: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)


def dataset_memo(name: str, params: Mapping[str, Any]) -> str:
    """The key of a dataset configuration (built once per run)."""
    return canonical_json([name, dict(params)])


def make_record(
    suite: Suite, spec: SurrogateSpec, ident: Mapping[str, Any], status: Status, started: str, *,
    error: str | None = None, outcome: Outcome | None = None,
) -> Record:
    """A complete record of one cell and evaluation setting (provenance of this process).

    :param ident: the identity fields (:data:`wbench.records.store.IDENTITY_FIELDS`).
    :param started: when the cell started (UTC ISO 8601); it finishes now.
    """
    return Record(
        schema_version=SCHEMA_VERSION,
        key=cell_key(**ident),
        suite=suite.name,
        **ident,
        label=method_label(spec, ident["eval_params"]),
        status=status,
        error=error,
        started_at=started,
        finished_at=utc_now(),
        provenance=_provenance(suite.device),
        outcome=outcome,
    )


def _provenance(device: str) -> dict[str, Any]:
    info = provenance(device)
    threads = worker_threads()
    if threads is not None:  # the figures were measured on this worker: say which
        info["dask_worker"] = {"where": where(), "threads": threads}
    return info


def compute_cell(
    task: CellTask, datasets: Mapping[str, PairedDataset], artifact_dir: Path, blocks: ExactBlocks,
    emit: Callable[[list[Record]], None] | None = None,
) -> CellResult:
    """:func:`fit_and_evaluate` under the cell's isolation: torch's global state as it was
    before (what the cell changed is named in its ``ok`` records' ``side_effects``), and the
    suite's ``cell_time_limit_s`` (past it, every record still to make is ``failed``, saying so).
    """
    emitted: set[str] = set()
    task = with_train_pairs(task, train_pairs(datasets[dataset_memo(task.dataset.name, task.dataset.params)]))

    def emit_and_note(made: list[Record]) -> None:
        emitted.update(r.key for r in made)
        emit(made)  # type: ignore[misc]  # only wrapped when given

    started = utc_now()
    with torch_state_guard() as side_effects:
        try:
            with time_limit(task.suite.cell_time_limit_s):
                result = fit_and_evaluate(task, datasets, artifact_dir, blocks, emit_and_note if emit else None)
        except CellTimeoutError as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = CellResult([make_record(task.suite, task.surrogate, ident, "failed", started, error=error)
                                 for _, _, ident in task.todo if cell_key(**ident) not in emitted],
                                blocks=blocks.computed)
    if side_effects:
        result.records = [_with_side_effects(r, side_effects) for r in result.records]
    return result


def _with_side_effects(record: Record, side_effects: Mapping[str, str]) -> Record:
    """``record`` naming the global settings its cell changed (ok records; a failed record's
    error gets a line instead)."""
    if record.outcome is not None:
        return replace(record, outcome=replace(record.outcome, side_effects=dict(side_effects)))
    note = "; ".join(f"{k}: {v}" for k, v in side_effects.items())
    return replace(record, error=f"{record.error}\nthe cell changed process-wide settings (put back): {note}")


def fit_and_evaluate(
    task: CellTask, datasets: Mapping[str, PairedDataset], artifact_dir: Path, blocks: ExactBlocks,
    emit: Callable[[list[Record]], None] | None = None,
) -> CellResult:
    """Fit one method once for a seed and evaluate it at each budget milestone: one record
    per (milestone, evaluation setting) still to do.

    A pure function of its inputs (where it runs changes only the provenance and the
    timings), except for the checkpoints written to ``task.checkpoint_dir``. Failures of
    the fit or of an evaluation become ``failed`` records.

    :param datasets: :func:`dataset_memo` -> dataset with ground truth, for the cell's
        dataset and its transfer targets.
    :param artifact_dir: where plots and models are written (paths in the records are relative to it).
    :param blocks: the exact blocks the metrics ask for.
    :param emit: called with the records of each milestone but the last as soon as they
        exist (so that an interrupted long run keeps them); those records are then not in
        the result. None: every record is in the result.
    """
    suite, s, d, seed = task.suite, task.surrogate, task.dataset, task.seed
    budget = replace(budget_for(suite, s), seed=seed, device=suite.device)
    started = utc_now()
    records: list[Record] = []
    cls = task.surrogate_cls
    dataset = datasets[dataset_memo(d.name, d.params)]
    n_train = len(dataset.split("train"))
    milestones = _MilestoneEvaluation(task, dataset, datasets, budget, n_train, started, artifact_dir, blocks)
    evaluate, done = milestones.records_at, milestones.done

    try:
        surrogate = _build(cls, s, dataset, budget)

        def evaluate_milestone(index: int, fit_report: Any) -> None:
            saved = dict(surrogate.eval_params)  # evaluation settings never reach training's validation
            try:
                made = evaluate(index, fit_report, surrogate)
            finally:
                surrogate.eval_params = saved
            if emit is not None:
                emit(made)
            else:
                records.extend(made)

        hooks = cell_training_hooks(task, budget, n_train, evaluate_milestone)
        with milestone_hooks(hooks):
            fit_report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
    except Exception as exc:
        records.extend(_failed(task, started, exc, lambda m: m not in done))
        return CellResult(records, blocks=blocks.computed)
    # the last milestone, and any the run did not reach (stopped by its time limit): the final weights
    for index in sorted({m for m, _, _ in task.todo} - done):
        skipped = skipped_milestone(fit_report, budget, index, n_train, s.label or s.name)
        made = evaluate(index, fit_report, surrogate) if skipped is None else _failed(task, started, skipped,
                                                                                       lambda m, i=index: m == i)
        records.extend(made)
    return CellResult(records, blocks=blocks.computed)


def _failed(task: CellTask, started: str, exc: BaseException, which: Callable[[int], bool]) -> list[Record]:
    """``failed`` records, saying ``exc``, for the items of ``task.todo`` whose milestone ``which`` picks."""
    error = describe_error(exc)
    return [make_record(task.suite, task.surrogate, ident, "failed", started, error=error)
            for m, _, ident in task.todo if which(m)]


@dataclass
class _MilestoneEvaluation:
    """Evaluates a cell's fitted surrogate at a milestone and remembers which milestones are done."""

    task: CellTask
    dataset: PairedDataset
    datasets: Mapping[str, PairedDataset]
    budget: Budget
    n_train: int
    started: str
    artifact_dir: Path
    blocks: ExactBlocks
    done: set[int] = field(default_factory=set)

    def records_at(self, index: int, fit_report: Any, surrogate: Surrogate) -> list[Record]:
        """One record per evaluation setting still to do at milestone ``index`` (``failed``
        records for evaluations that raise); marks the milestone done."""
        task, budget = self.task, self.budget
        out = []
        for milestone, eval_params, ident in task.todo:
            if milestone != index:
                continue
            fit = milestone_fit(fit_report, budget, index, self.n_train)
            try:
                outcome = _evaluate(task, surrogate, self.dataset, self.datasets, eval_params, fit, ident,
                                    self.artifact_dir, self.blocks)
                out.append(make_record(task.suite, task.surrogate, ident, "ok", self.started, outcome=outcome))
            except Exception as exc:
                out.append(make_record(task.suite, task.surrogate, ident, "failed", self.started,
                                       error=describe_error(exc)))
        self.done.add(index)
        return out


def _build(cls: type[Surrogate], s: SurrogateSpec, dataset: PairedDataset, budget: Budget) -> Surrogate:
    """Build the method (at the budget's parameter target when it learns), seeded, on the budget's device."""
    from wbench.train.sizing import build_at_parameter_target

    check_compatible(cls, s.name, dataset)
    params = cls.params_for(s.params, dataset.measures)
    seed_everything(budget.seed)
    if cls.trainable and budget.param_target is not None and s.match_budget:
        surrogate = build_at_parameter_target(
            cls, params, budget.param_target, tolerance=budget.param_tolerance, count=budget.param_count
        )
    else:
        surrogate = cls(**params)
    if isinstance(surrogate, TorchSurrogate):
        surrogate.to(budget.device)
    return surrogate


def _evaluation_dataset(suite: Suite, cls: type[Surrogate], dataset: PairedDataset) -> PairedDataset:
    """Solvers are slow: they are evaluated on a fixed seeded subset of the test pairs only,
    and of the ``unseen`` pairs when the dataset has them, of the same size (learned methods
    and embeddings that set ``evaluate_on_all_pairs``: on every pair of every split)."""
    if cls.trainable or cls.evaluate_on_all_pairs:
        return dataset
    return dataset.with_pairs({split: _solver_subset(suite, dataset.pairs[split])
                               for split in EVALUATED_SPLITS if split in dataset.pairs})


EVALUATED_SPLITS = ("test", "unseen")
"""The splits a solver is evaluated on (each limited by ``solver_eval_pairs``)."""


def _solver_subset(suite: Suite, pairs: PairSet) -> PairSet:
    """The first ``solver_eval_pairs`` of a fixed seeded permutation of ``pairs`` (all when fewer)."""
    limit = suite.evaluation.solver_eval_pairs
    if limit is not None and len(pairs) > limit:
        chosen = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(pairs))[:limit])
        return pairs.subset(chosen)
    return pairs


def train_pairs(dataset: PairedDataset) -> int:
    """The number of distinct exact training pairs of ``dataset`` (unordered, as the oracle
    solves them): ``budget.train_pairs`` of every record of its cells."""
    train = dataset.pairs["train"]
    lo, hi = np.minimum(train.left, train.right), np.maximum(train.left, train.right)
    return int(len(np.unique(np.stack([lo, hi], axis=1), axis=0))) if len(train) else 0


def with_train_pairs(task: CellTask, n: int) -> CellTask:
    """``task`` whose records' budgets state ``train_pairs = n`` (:func:`cell_key` leaves it
    out, so the cell keys stay those of the identities without it)."""
    todo = tuple((m, e, {**ident, "budget": {**ident["budget"], "train_pairs": n}}) for m, e, ident in task.todo)
    return replace(task, todo=todo)


def _evaluate(
    task: CellTask,
    surrogate: Surrogate,
    dataset: PairedDataset,
    datasets: Mapping[str, PairedDataset],
    eval_params: Mapping[str, Any],
    fit: Mapping[str, Any],
    ident: Mapping[str, Any],
    artifact_dir: Path,
    blocks: ExactBlocks,
) -> Outcome:
    """The outcome of one evaluation setting of a fitted model: metrics, transfer, artifacts (its
    speed is measured after the run, for every model together: :mod:`wbench.run.timing_pass`)."""
    from wbench.evaluation import EvaluationContext, run_metrics

    suite, cls = task.suite, task.surrogate_cls
    surrogate.configure(**{**cls.default_eval_params, **eval_params})  # settings never carry over
    evaluated = _evaluation_dataset(suite, cls, dataset)
    name = task.surrogate.name
    predictions = {
        split: predict_pairs(surrogate, evaluated.split(split), method=name, call=f"distance ({split} pairs)")
        for split in evaluated.pairs
    }
    ctx = EvaluationContext(
        surrogate=surrogate,
        dataset=evaluated,
        predictions=predictions,
        exact_block=blocks.function(dataset),
        seed=task.seed,
        options=dict(suite.evaluation.options),
        method=name,
    )
    metrics, metric_errors = run_metrics(ctx, dict(task.metrics))
    return Outcome(
        n_parameters=surrogate.n_parameters,
        n_parameters_inference=surrogate.n_parameters_inference,
        n_parameters_trained=surrogate.n_parameters_trained,
        metric_by_construction=bool(getattr(cls, "metric_by_construction", False)),
        method_class=str(getattr(cls, "method_class", "learned")),
        truth_digest=truth_digest(evaluated.split("test").pairs.w2sq) if "test" in evaluated.pairs else None,
        trainable=cls.trainable,
        fit=fit,
        describe=surrogate.describe(),
        metrics=metrics,
        metric_errors=metric_errors,
        transfer=_transfer(task, surrogate, datasets),
        unit=dataset.unit,
        artifacts=tuple(artifacts_of(suite, surrogate, fit, predictions, evaluated, ident, artifact_dir)),
        coverage=coverage(predictions.get("test")),
    )


def coverage(predicted: np.ndarray | None) -> float | None:
    """Fraction of test pairs with a value (not NaN) in ``predicted`` ``(P,)``; None without test pairs.

    Below 1 only for a solver that reported unsolved pairs as NaN (a learned method's NaN
    fails its cell); the leaderboard ranks only rows with full coverage.
    """
    if predicted is None or len(predicted) == 0:
        return None
    return float(np.isfinite(predicted).sum() / len(predicted))


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
        predicted = predict_pairs(surrogate, test, method=task.surrogate.name, call=f"distance (transfer to {label})")
        out.update(pair_metrics(predicted, test.pairs.w2sq, prefix=label))
    return out


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


def describe_error(exc: BaseException) -> str:
    """The error of a failed cell: ``Type: message`` then the last frames of its traceback."""
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return f"{type(exc).__name__}: {exc}\n" + "".join(tail).strip()
