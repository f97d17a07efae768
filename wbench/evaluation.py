"""The metric-author API: the evaluation context of one fitted surrogate on one dataset, the
helpers a metric uses, and running the metrics.

The runner builds one :class:`EvaluationContext` per cell (dataset x method configuration x
seed) and calls :func:`run_metrics` with the metric functions registered through the
``wbench_register_metrics`` hook. A metric function takes the context and returns
``{column: float}``; columns are lower case and dot separated (``test.w2.mse``). The
built-in metrics (``errors``, ``error_by_range``, ``generalisation_gap``, ``retrieval``,
``axioms``, ``wassmap``) are a plugin like any other: ``wbench_plugins.metrics``, which
lists them with their options. Pure array metrics (pair errors, k-NN recall, Procrustes)
are in :mod:`wbench.metrics`, for any metric plugin to reuse.

Helpers for metric authors: :func:`surrogate_distances` (pairs), :func:`surrogate_matrix`
(``pairwise``), :func:`exact_matrix_w2` (the cached exact blocks), :func:`evaluation_pool`
(measures to draw from), :func:`split_prediction` (checked predictions of a split),
:func:`guard_cost` (skip a metric too large for a per-pair solver), :func:`is_embedding`,
:class:`MetricSkipped`. Every surrogate output a helper returns is checked by
:func:`wbench.validate.check_predictions`; an invalid one raises
:class:`~wbench.validate.InvalidPredictionError`, which :func:`run_metrics` lets through so
that it fails the cell.

Suite-level options (``[evaluation] options = {...}`` in a suite file) read here, with defaults:

* ``eval_seed`` (12345): seeds every draw of measures, pairs and triplets (:meth:`EvaluationContext.rng`).
  It does not depend on the cell's seed, so every method and seed is evaluated on the same
  draws (paired comparisons) and the exact blocks are computed once and cached.
* ``solver_max_evaluations`` (1000): a per-pair solver (nothing to fit and no embedding:
  it solves one transport problem per pair) can be slow per pair. A metric that would call
  one on more pairs than this is skipped and the record's ``metric_errors`` says so. The
  decision depends on sizes only, never on a clock, so identical runs produce the same
  columns on any machine. Learned surrogates and embeddings (a method with an ``embed``
  method: its pairwise mode embeds each measure once) are never skipped.
* ``batch_size`` (4096): pairs per ``surrogate.distance`` call.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from wbench.data import LabelledPairs, PairedDataset, PairSet
from wbench.errors import WbenchError
from wbench.validate import InvalidPredictionError, allows_missing, check_predictions

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = [
    "EVAL_SEED",
    "EvaluationContext",
    "MetricFunction",
    "MetricSkipped",
    "evaluation_pool",
    "exact_matrix_w2",
    "guard_cost",
    "is_embedding",
    "is_solver",
    "run_metrics",
    "split_prediction",
    "surrogate_distances",
    "surrogate_matrix",
]

EVAL_SEED = 12345
"""Default seed of the evaluation draws (the same for every method and cell seed)."""


@dataclass
class EvaluationContext:
    """Everything a metric may use to evaluate one fitted surrogate.

    :param surrogate: fitted, configured with its evaluation parameters, on its device. In a
        run it is a stand-in whose calls the method's own process answers (it never holds
        the test distances: :mod:`wbench.run.sandbox`); inputs stay on the CPU here.
    :param dataset: the dataset with ground truth (every split's ``w2sq`` is set).
    :param predictions: split -> predicted W2 ``(P,)`` float64 in ground-cost units, one per
        pair of ``dataset.pairs[split]`` (NaN: the method failed on that pair).
    :param exact_block: ``(rows (n,), cols (m,)) -> (n, m)`` exact W2^2 (squared
        ground-cost units) between measures ``rows[i]`` and ``cols[j]`` of
        ``dataset.measures``, cached by the caller.
    :param seed: the cell's seed.
    :param options: suite-level metric options (see the module docstring); each metric
        has its defaults.
    :param method: the method's name in error messages (default: the surrogate's class name).
    """

    surrogate: Surrogate
    dataset: PairedDataset
    predictions: dict[str, np.ndarray]
    exact_block: Callable[[np.ndarray, np.ndarray], np.ndarray]
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    method: str = ""
    cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    """Scratch space shared by the metrics of one context (e.g. a solver's measured speed)."""

    def option(self, name: str, default: Any) -> Any:
        """The option ``name`` or ``default`` when it is absent (or None)."""
        value = self.options.get(name)
        return default if value is None else value

    @property
    def method_name(self) -> str:
        """The method's name as error messages give it."""
        return self.method or type(self.surrogate).__name__

    def rng(self) -> np.random.Generator:
        """A fresh generator seeded with the ``eval_seed`` option."""
        return np.random.default_rng(int(self.option("eval_seed", EVAL_SEED)))


MetricFunction = Callable[[EvaluationContext], Mapping[str, float]]


class MetricSkipped(WbenchError):
    """Raised by a metric that deliberately does not run (too costly for this method)."""


def run_metrics(ctx: EvaluationContext, metrics: Mapping[str, MetricFunction]) -> tuple[dict[str, float], dict[str, str]]:
    """Run each metric on ``ctx``.

    :param metrics: metric name -> function ``f(ctx) -> {column: float}``.
    :returns: ``(values, errors)``: every column of every metric (floats, all finite), and
        metric name -> message for each metric that raised (the others still run), that
        was skipped (``"skipped: ..."``), or that returned a non-finite or non-numeric
        value (that column is dropped) or a column another metric already returned.
    :raises wbench.validate.InvalidPredictionError: the surrogate returned an invalid
        prediction to a metric (wrong shape, negative, infinite, or NaN from a learned
        method): the method is broken, not the metric, so the cell fails.
    """
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name, function in metrics.items():
        try:
            result = function(ctx)
        except MetricSkipped as exc:
            errors[name] = f"skipped: {exc}"
            continue
        except InvalidPredictionError:
            raise
        except Exception as exc:  # one broken metric must not lose the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        problems = []
        for column, value in dict(result or {}).items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                problems.append(f"{column} is not a number ({type(value).__name__})")
            elif not math.isfinite(float(value)):
                problems.append(f"{column} is {value}")
            elif column in values:
                problems.append(f"{column} was already returned by metric {owner[column]!r}")
            else:
                values[column] = float(value)
                owner[column] = name
        if problems:
            errors[name] = "dropped: " + "; ".join(problems)
    return values, errors


# ----------------------------------------------------------------------------- helpers


def is_solver(surrogate: Surrogate) -> bool:
    """Whether ``surrogate``'s class has nothing to fit (``trainable = False``: an OT solver)."""
    return not getattr(type(surrogate), "trainable", True)


def is_embedding(surrogate: Surrogate) -> bool:
    """Whether ``surrogate`` computes its distances from one embedding per measure (it has a
    callable ``embed``): its pairwise mode costs one embedding per item, not one solve per pair."""
    return callable(getattr(surrogate, "embed", None))


DEFAULT_SOLVER_MAX_EVALUATIONS = 1000
"""Default of the ``solver_max_evaluations`` option (pair distances a metric may ask of a per-pair solver)."""


def guard_cost(ctx: EvaluationContext, n_evaluations: int, what: str) -> None:
    """Raise :class:`MetricSkipped` when a per-pair solver would have to compute more than the
    ``solver_max_evaluations`` option's number of pair distances (default 1000).

    Decided from sizes only, never from a clock: the same suite gives the same columns on
    any machine and under any load. Learned surrogates and embeddings (:func:`is_embedding`)
    always pass. ``what`` names the metric in the message.

    :raises WbenchError: the suite still sets the retired ``solver_time_budget_s`` option.
    """
    if "solver_time_budget_s" in ctx.options:
        raise WbenchError(
            "option solver_time_budget_s was replaced by solver_max_evaluations (a number of pair "
            "distances, not seconds): wall-clock decisions made column sets depend on the machine's load"
        )
    if not is_solver(ctx.surrogate) or is_embedding(ctx.surrogate):
        return
    limit = int(ctx.option("solver_max_evaluations", DEFAULT_SOLVER_MAX_EVALUATIONS))
    if n_evaluations > limit:
        raise MetricSkipped(
            f"{what} needs {n_evaluations} solver evaluations, above solver_max_evaluations={limit} "
            "(raise it in [evaluation] options to run it)"
        )


def _device(surrogate: Surrogate) -> Any:
    return getattr(surrogate, "device", None)


def surrogate_distances(ctx: EvaluationContext, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The surrogate's W2 ``(P,)`` (float64) between measures ``left[p]`` and ``right[p]`` of
    ``ctx.dataset.measures`` (indices ``(P,)``), ``batch_size`` pairs per call (option, 4096):
    :func:`wbench.train.loop.predict_pairs` on those pairs."""
    from wbench.train.loop import predict_pairs

    pairs = LabelledPairs(ctx.dataset.measures, PairSet(np.asarray(left), np.asarray(right)))
    return predict_pairs(ctx.surrogate, pairs, batch_size=int(ctx.option("batch_size", 4096)), method=ctx.method_name)


def surrogate_matrix(ctx: EvaluationContext, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The surrogate's W2 matrix ``(n, m)`` (float64) via ``surrogate.pairwise``, checked by
    :func:`wbench.validate.check_predictions` (shape exactly ``(n, m)``, finite, non-negative;
    NaN only from a solver)."""
    import torch

    measures = ctx.dataset.measures
    x, y = measures.index(np.asarray(rows)), measures.index(np.asarray(cols))
    device = _device(ctx.surrogate)
    if device is not None:
        x, y = x.to(device), y.to(device)
    with torch.inference_mode():
        matrix = ctx.surrogate.pairwise(x, y)
    return check_predictions(
        matrix, n=(len(rows), len(cols)), method=ctx.method_name, call="pairwise",
        allow_missing=allows_missing(ctx.surrogate),
    )


def exact_matrix_w2(ctx: EvaluationContext, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact W2 ``(n, m)`` from the context's cached exact W2^2 block."""
    block = np.asarray(ctx.exact_block(np.asarray(rows), np.asarray(cols)), dtype=np.float64)
    if block.shape != (len(rows), len(cols)):
        raise ValueError(f"exact_block returned shape {block.shape}, expected {(len(rows), len(cols))}")
    return np.sqrt(np.maximum(block, 0.0))


def evaluation_pool(dataset: PairedDataset) -> np.ndarray:
    """Indices of the measures the retrieval and axiom metrics draw from: those of the test
    pairs (all measures when there is no test split), sorted.

    The pool follows ``dataset.pairs["test"]``: a context whose test split is a subset
    (the runner evaluates solvers on a subset of the test pairs) draws from fewer measures.
    """
    test = dataset.pairs.get("test")
    if test is None or len(test) == 0:
        return np.arange(len(dataset.measures))
    return np.unique(np.concatenate([test.left, test.right]))


def split_prediction(ctx: EvaluationContext, split: str) -> np.ndarray:
    """The predicted W2 ``(P,)`` of ``split``, checked: one per pair, and the split has ground truth.

    :raises ValueError: a length mismatch, or a split without exact W2^2.
    """
    pred = np.asarray(ctx.predictions[split], dtype=np.float64).reshape(-1)
    pairs = ctx.dataset.pairs[split]
    if len(pred) != len(pairs):
        raise ValueError(f"{len(pred)} predictions for the {len(pairs)} {split} pairs")
    if pairs.w2sq is None:
        raise ValueError(f"split {split!r} has no ground truth")
    return pred
