"""A fitted method's evaluation in one setting: the pairs it is evaluated on, its metrics,
its transfer to other datasets and its artifacts, as the :class:`~wbench.records.store.Outcome`
of a record. Runs in the run's process, which holds the exact distances; the method itself
may be a :class:`~wbench.run.remote_surrogate.RemoteSurrogate` (:mod:`wbench.run.sandbox`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wbench.data import PairedDataset, PairSet
from wbench.errors import WbenchError
from wbench.oracle.exact_blocks import ExactBlocks
from wbench.records.store import Outcome, truth_digest
from wbench.run.cell_outputs import artifacts_of
from wbench.run.cell_task import CellTask, check_compatible, dataset_memo  # noqa: F401 (re-exported)
from wbench.run.suite import Suite
from wbench.surrogate import Surrogate
from wbench.train.loop import predict_pairs

SUBSET_SEED = 12345  # the solver evaluation subset is the same for every method and seed


def evaluation_dataset(suite: Suite, cls: type[Surrogate], dataset: PairedDataset) -> PairedDataset:
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



def evaluate_setting(
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
    evaluated = evaluation_dataset(suite, cls, dataset)
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
            check_compatible(cls, cls.__name__, target, model=surrogate)
        except WbenchError as exc:
            out[f"{label}.error"] = str(exc)
            continue
        test = evaluation_dataset(task.suite, cls, target).split("test")
        predicted = predict_pairs(surrogate, test, method=task.surrogate.name, call=f"distance (transfer to {label})")
        out.update(pair_metrics(predicted, test.pairs.w2sq, prefix=label))
    return out
