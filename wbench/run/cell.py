"""The work of one cell: fit a method once for a seed, evaluate it, time it, measure its
transfer, write its artifacts, and make the records it produces.

A cell is a pure function of its inputs (:func:`compute_cell`), so it runs unchanged in the
client or as a task on a Dask cluster (:mod:`wbench.run.cluster_task`); only the client writes
(:mod:`wbench.run.runner`).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from wbench.budget import Budget
from wbench.data import PairedDataset
from wbench.executor import where, worker_threads
from wbench.oracle.exact_blocks import ExactBlocks
from wbench.provenance import provenance, utc_now
from wbench.records.store import SCHEMA_VERSION, Outcome, Record, Status, cell_key
from wbench.run.cell_evaluation import (  # noqa: F401 (re-exported)
    EVALUATED_SPLITS,
    SUBSET_SEED,
    check_compatible,
    coverage,
    evaluate_setting,
)
from wbench.run.cell_milestones import milestone_fit, skipped_milestone
from wbench.run.cell_task import CellTask, dataset_label, dataset_memo, method_label  # noqa: F401 (re-exported)
from wbench.run.isolation import CellTimeoutError, time_limit, torch_state_guard
from wbench.run.sandbox import CellSession, Sandbox, SandboxDiedError, default_sandbox
from wbench.run.sandbox_wire import FitView
from wbench.run.suite import Suite, SurrogateSpec, budget_for


@dataclass
class CellResult:
    """What a cell hands back to the client, which alone writes.

    :param records: complete records, in evaluation-setting order, not yet stored.
    :param files: artifacts (path relative to the run directory -> bytes) made away from it.
    :param blocks: exact W2^2 blocks solved on a worker: cache key -> ``(values, meta)``.
    :param side_effects: the torch settings the method's process changed during the cell.
    """

    records: list[Record]
    files: dict[str, bytes] = field(default_factory=dict)
    blocks: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)
    side_effects: dict[str, str] = field(default_factory=dict)


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
    emit: Callable[[list[Record]], None] | None = None, sandbox: Sandbox | None = None,
) -> CellResult:
    """:func:`fit_and_evaluate` under the cell's isolation: the method in its own process
    (:mod:`wbench.run.sandbox`), torch's global state as it was before (what the cell changed
    is named in its ``ok`` records' ``side_effects``), and the suite's ``cell_time_limit_s``
    (past it, the method's process is killed and every record still to make is ``failed``,
    saying so).
    """
    emitted: set[str] = set()
    task = with_train_pairs(task, train_pairs(datasets[dataset_memo(task.dataset.name, task.dataset.params)]))

    def emit_and_note(made: list[Record]) -> None:
        emitted.update(r.key for r in made)
        emit(made)  # type: ignore[misc]  # only wrapped when given

    started = utc_now()
    sandbox = sandbox or default_sandbox()
    with contextlib.suppress(SandboxDiedError):  # then the cell fails saying so
        sandbox.start()  # outside the time limit: a new method process takes seconds to import
    with torch_state_guard() as side_effects:
        try:
            with time_limit(task.suite.cell_time_limit_s):
                result = fit_and_evaluate(task, datasets, artifact_dir, blocks, emit_and_note if emit else None, sandbox)
        except CellTimeoutError as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = CellResult([make_record(task.suite, task.surrogate, ident, "failed", started, error=error)
                                 for _, _, ident in task.todo if cell_key(**ident) not in emitted],
                                blocks=blocks.computed)
    changes = {**side_effects, **result.side_effects}
    if changes:
        result.records = [_with_side_effects(r, changes) for r in result.records]
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
    emit: Callable[[list[Record]], None] | None = None, sandbox: Sandbox | None = None,
) -> CellResult:
    """Fit one method once for a seed and evaluate it at each budget milestone: one record
    per (milestone, evaluation setting) still to do.

    The method is built and fitted in its own process (``sandbox``, default: this thread's),
    which holds the datasets without their test and ``unseen`` distances; it is evaluated
    here, where they are, through a :class:`~wbench.run.remote_surrogate.RemoteSurrogate`.
    A pure function of its inputs (where it runs changes only the provenance and the
    timings), except for the checkpoints written to ``task.checkpoint_dir``. Failures of
    the fit, of an evaluation or of the method's process become ``failed`` records.

    :param datasets: :func:`dataset_memo` -> dataset with ground truth, for the cell's
        dataset and its transfer targets.
    :param artifact_dir: where plots and models are written (paths in the records are relative to it).
    :param blocks: the exact blocks the metrics ask for.
    :param emit: called with the records of each milestone but the last as soon as they
        exist (so that an interrupted long run keeps them); those records are then not in
        the result. None: every record is in the result.
    """
    s = task.surrogate
    budget = replace(budget_for(task.suite, s), seed=task.seed, device=task.suite.device)
    started = utc_now()
    dataset = datasets[dataset_memo(task.dataset.name, task.dataset.params)]
    milestones = _MilestoneEvaluation(task, dataset, datasets, budget, len(dataset.split("train")), started,
                                      artifact_dir, blocks)
    try:
        with (sandbox or default_sandbox()).cell(task, datasets) as cell:
            return _drive(cell, milestones, emit)
    except SandboxDiedError as exc:  # the method's process would not start or take the cell
        return CellResult(_failed(task, started, exc, lambda m: m not in milestones.done), blocks=blocks.computed)


def _drive(cell: CellSession, milestones: _MilestoneEvaluation, emit: Callable[[list[Record]], None] | None) -> CellResult:
    """The run's side of a cell in the method's process: evaluate each milestone the fit
    reaches, then those left after it; failed records for what the fit or the process failed."""
    task, started, done = milestones.task, milestones.started, milestones.done
    blocks, evaluate, s = milestones.blocks, milestones.records_at, task.surrogate
    records: list[Record] = []
    try:
        fitted = _fit(cell, evaluate, emit or records.extend)
    except Exception as exc:  # the method's process died, or a milestone's evaluation raised
        records.extend(_failed(task, started, exc, lambda m: m not in done))
        return CellResult(records, blocks=blocks.computed)
    if isinstance(fitted, BaseException):  # building or fitting the method raised
        records.extend(_failed(task, started, fitted, lambda m: m not in done))
        return CellResult(records, blocks=blocks.computed, side_effects=cell.side_effects)
    # the last milestone, and any the run did not reach (stopped by its time limit): the final weights
    for index in sorted({m for m, _, _ in task.todo} - done):
        skipped = skipped_milestone(fitted, milestones.budget, index, milestones.n_train, s.label or s.name)
        records.extend(evaluate(index, fitted, cell.surrogate) if skipped is None
                       else _failed(task, started, skipped, lambda m, i=index: m == i))
    with contextlib.suppress(SandboxDiedError):  # its records are made; a failed one says so
        cell.finish()
    return CellResult(records, blocks=blocks.computed, side_effects=cell.side_effects)


def _fit(
    cell: CellSession, evaluate: Callable[[int, Any, Any], list[Record]], sink: Callable[[list[Record]], None],
) -> FitView | BaseException:
    """Wait for the method's fit, evaluating each milestone it reaches (``sink`` takes the
    records); its final fit report, or the error that failed its building or fitting."""
    event = cell.next_event()
    while event[0] == "milestone":
        sink(evaluate(event[1], event[2], cell.surrogate))
        cell.resume()
        event = cell.next_event()
    return event[1]


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

    def records_at(self, index: int, fit_report: Any, surrogate: Any) -> list[Record]:
        """One record per evaluation setting still to do at milestone ``index`` (``failed``
        records for evaluations that raise); marks the milestone done."""
        task, budget = self.task, self.budget
        out = []
        for milestone, eval_params, ident in task.todo:
            if milestone != index:
                continue
            fit = milestone_fit(fit_report, budget, index, self.n_train)
            try:
                outcome = evaluate_setting(task, surrogate, self.dataset, self.datasets, eval_params, fit, ident,
                                           self.artifact_dir, self.blocks)
                out.append(make_record(task.suite, task.surrogate, ident, "ok", self.started, outcome=outcome))
            except Exception as exc:
                out.append(make_record(task.suite, task.surrogate, ident, "failed", self.started,
                                       error=describe_error(exc)))
        self.done.add(index)
        return out



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


def describe_error(exc: BaseException) -> str:
    """The error of a failed cell: ``Type: message`` then the last frames of its traceback."""
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return f"{type(exc).__name__}: {exc}\n" + "".join(tail).strip()
