"""Evaluating one fitted surrogate on one dataset: the context, the metrics, and running them.

The runner builds one :class:`EvaluationContext` per cell (dataset x method configuration x
seed) and calls :func:`run_metrics` with the metric functions registered through the
``wbench_register_metrics`` hook. A metric function takes the context and returns
``{column: float}``; columns are lower case and dot separated (``test.w2.mse``).

Built-in metrics (registered by ``wbench_plugins.metrics``):

=====================  ==============================================================
``errors``             per split: MSE, RMSE, MAE, relative MAE, max error, Pearson and
                       Spearman on W2 and on W2^2; failed pairs counted (``test.n_failed``)
``error_by_range``     test W2 errors per quartile (or fixed bins) of the exact W2
``generalisation_gap`` test vs train MSE on W2 (difference and ratio)
``retrieval``          k-nearest-neighbour recall@k against the exact distances
``axioms``             symmetry error, self-distance, triangle-inequality violation rate
``wassmap``            Isomap on surrogate vs exact distances of an image manifold (shapes),
                       Procrustes disparity to the true translations (and scales)
=====================  ==============================================================

Suite-level options (``[evaluation] options = {...}`` in a suite file), with defaults:

* ``eval_seed`` (12345): seeds every draw of measures, pairs and triplets. It does not
  depend on the cell's seed, so every method and seed is evaluated on the same draws (paired
  comparisons) and the exact blocks are computed once and cached.
* ``range_bins`` (4) or ``range_edges`` (list of W2 edges): the bins of ``error_by_range``.
* ``k`` (10, an int or a list), ``n_queries`` (50), ``n_database`` (500): retrieval.
* ``n_symmetry`` (200) pairs and ``n_triplets`` (500) triplets, ``triangle_atol`` (1e-6),
  ``triangle_rtol`` (1e-5): axioms.
* ``wassmap_n`` (100) measures, ``wassmap_neighbors`` (8), ``wassmap_label`` (the most
  frequent label): Wassmap.
* ``solver_time_budget_s`` (30): a method with nothing to fit (exact LP, Sinkhorn) can be
  slow per pair. Before a metric calls one on many pairs, 8 pairs are timed; a metric whose
  projected time exceeds this budget is skipped and the record's ``metric_errors`` says so
  (with the projection). Learned surrogates are never skipped.
* ``batch_size`` (4096): pairs per ``surrogate.distance`` call.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from wbench import metrics as M
from wbench.data import PairedDataset
from wbench.errors import WbenchError

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate

__all__ = [
    "EVAL_SEED",
    "EvaluationContext",
    "MetricFunction",
    "MetricSkipped",
    "axioms",
    "error_by_range",
    "errors",
    "generalisation_gap",
    "retrieval",
    "run_metrics",
    "wassmap",
]

EVAL_SEED = 12345
"""Default seed of the evaluation draws (the same for every method and cell seed)."""


@dataclass
class EvaluationContext:
    """Everything a metric may use to evaluate one fitted surrogate.

    :param surrogate: fitted, configured with its evaluation parameters, on its device.
    :param dataset: the dataset with ground truth (every split's ``w2sq`` is set).
    :param predictions: split -> predicted W2 ``(P,)`` float64 in ground-cost units, one per
        pair of ``dataset.pairs[split]`` (NaN: the method failed on that pair).
    :param exact_block: ``(rows (n,), cols (m,)) -> (n, m)`` exact W2^2 (squared
        ground-cost units) between measures ``rows[i]`` and ``cols[j]`` of
        ``dataset.measures``, cached by the caller.
    :param seed: the cell's seed.
    :param options: suite-level metric options (see the module docstring); each metric
        has its defaults.
    """

    surrogate: Surrogate
    dataset: PairedDataset
    predictions: dict[str, np.ndarray]
    exact_block: Callable[[np.ndarray, np.ndarray], np.ndarray]
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    """Scratch space shared by the metrics of one context (e.g. a solver's measured speed)."""

    def option(self, name: str, default: Any) -> Any:
        """The option ``name`` or ``default`` when it is absent (or None)."""
        value = self.options.get(name)
        return default if value is None else value

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


def _is_solver(surrogate: Surrogate) -> bool:
    return not getattr(type(surrogate), "trainable", True)


def _guard_cost(ctx: EvaluationContext, n_evaluations: int, what: str) -> None:
    """Skip a metric that would keep a solver busy beyond ``solver_time_budget_s``."""
    if not _is_solver(ctx.surrogate):
        return
    budget = float(ctx.option("solver_time_budget_s", 30.0))
    per_pair = ctx.cache.get("solver_seconds_per_pair")
    if per_pair is None:
        pool = evaluation_pool(ctx.dataset)
        rng = np.random.default_rng(0)
        probe = 8
        left = rng.integers(0, len(pool), size=probe)
        right = (left + rng.integers(1, max(len(pool), 2), size=probe)) % len(pool)
        began = time.perf_counter()
        surrogate_distances(ctx, pool[left], pool[right])
        per_pair = ctx.cache["solver_seconds_per_pair"] = (time.perf_counter() - began) / probe
    projected = per_pair * n_evaluations
    if projected > budget:
        raise MetricSkipped(
            f"{what} needs {n_evaluations} solver evaluations, about {projected:.0f} s at {1e3 * per_pair:.1f} ms each, "
            f"above solver_time_budget_s={budget:g} (raise it in [evaluation] options to run it)"
        )


def _device(surrogate: Surrogate) -> Any:
    return getattr(surrogate, "device", None)


def _as_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def surrogate_distances(ctx: EvaluationContext, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The surrogate's W2 ``(P,)`` (float64) between measures ``left[p]`` and ``right[p]``."""
    import torch

    measures = ctx.dataset.measures
    batch = int(ctx.option("batch_size", 4096))
    device = _device(ctx.surrogate)
    out = []
    with torch.inference_mode():
        for start in range(0, len(left), batch):
            a = measures.index(np.asarray(left[start : start + batch]))
            b = measures.index(np.asarray(right[start : start + batch]))
            if device is not None:
                a, b = a.to(device), b.to(device)
            out.append(_as_numpy(ctx.surrogate.distance(a, b)).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


def surrogate_matrix(ctx: EvaluationContext, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The surrogate's W2 matrix ``(n, m)`` (float64) via ``surrogate.pairwise``."""
    import torch

    measures = ctx.dataset.measures
    x, y = measures.index(np.asarray(rows)), measures.index(np.asarray(cols))
    device = _device(ctx.surrogate)
    if device is not None:
        x, y = x.to(device), y.to(device)
    with torch.inference_mode():
        matrix = _as_numpy(ctx.surrogate.pairwise(x, y))
    if matrix.shape != (len(rows), len(cols)):
        raise ValueError(f"surrogate.pairwise returned shape {matrix.shape}, expected {(len(rows), len(cols))}")
    return matrix


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


def _split_prediction(ctx: EvaluationContext, split: str) -> np.ndarray:
    pred = np.asarray(ctx.predictions[split], dtype=np.float64).reshape(-1)
    pairs = ctx.dataset.pairs[split]
    if len(pred) != len(pairs):
        raise ValueError(f"{len(pred)} predictions for the {len(pairs)} {split} pairs")
    if pairs.w2sq is None:
        raise ValueError(f"split {split!r} has no ground truth")
    return pred


# ----------------------------------------------------------------------------- metrics


def errors(ctx: EvaluationContext) -> dict[str, float]:
    """Per split with predictions: :func:`wbench.metrics.pair_metrics` with the split as prefix.

    Columns ``<split>.n_pairs``, ``<split>.n_failed``, ``<split>.w2.<stat>`` and
    ``<split>.w2sq.<stat>`` for stat in mse, rmse, mae, rel_mae, max_abs, pearson, spearman.
    """
    out: dict[str, float] = {}
    for split in ctx.predictions:
        pred = _split_prediction(ctx, split)
        out.update(M.pair_metrics(pred, ctx.dataset.pairs[split].w2sq, prefix=split))
    return out


def error_by_range(ctx: EvaluationContext) -> dict[str, float]:
    """Test W2 errors by range of the exact W2: :func:`wbench.metrics.error_by_range`.

    Quartiles of the test pairs' exact W2 by default (``test.w2.q1.mse`` .. ``q4``, with
    ``.lo``/``.hi`` edges and ``.n`` counts); option ``range_edges`` gives fixed bins named
    in the column (``test.w2.range_0_2p5.mse``), ``range_bins`` another number of quantiles.
    """
    if "test" not in ctx.predictions:
        return {}
    pred = _split_prediction(ctx, "test")
    edges = ctx.options.get("range_edges")
    return M.error_by_range(
        pred, ctx.dataset.pairs["test"].w2sq, "test.w2",
        edges=None if edges is None else [float(e) for e in edges], n_bins=int(ctx.option("range_bins", 4)),
    )


def generalisation_gap(ctx: EvaluationContext) -> dict[str, float]:
    """``gap.w2.mse_diff`` (test minus train MSE on W2) and ``gap.w2.mse_ratio`` (test / train;
    left out when the train MSE is below 1e-12 of the mean test W2^2, i.e. rounding noise).

    Needs train and test predictions (a solver evaluated on test pairs only gets no column).
    """
    if "train" not in ctx.predictions or "test" not in ctx.predictions:
        return {}
    mse = {}
    for split in ("train", "test"):
        stats = M.pair_metrics(_split_prediction(ctx, split), ctx.dataset.pairs[split].w2sq, prefix=split)
        if f"{split}.w2.mse" not in stats:
            return {}
        mse[split] = stats[f"{split}.w2.mse"]
    # below 1e-12 of the mean squared distance, a train MSE is rounding noise: no ratio
    floor = 1e-12 * float(np.mean(ctx.dataset.pairs["test"].w2sq))
    return M.generalisation_gap(mse["train"], mse["test"], prefix="gap.w2", floor=floor)


def retrieval(ctx: EvaluationContext) -> dict[str, float]:
    """k-nearest-neighbour recall@k of the surrogate against the exact W2.

    ``n_queries`` queries and a database of ``n_database`` measures are drawn independently
    (without replacement each, seeded by ``eval_seed``) from :func:`evaluation_pool`; a query
    found in the database is excluded from its own ranking. The surrogate's matrix comes from
    ``surrogate.pairwise``, the exact one from ``ctx.exact_block``.

    Columns: ``retrieval.recall@<k>`` for each k of option ``k`` (int or list, default 10;
    see :func:`wbench.metrics.knn_recall` for ties), ``retrieval.n_queries``,
    ``retrieval.n_database``, ``retrieval.n_failed`` (non-finite surrogate entries).
    """
    pool = evaluation_pool(ctx.dataset)
    rng = ctx.rng()
    n_queries = min(int(ctx.option("n_queries", 50)), len(pool))
    n_database = min(int(ctx.option("n_database", 500)), len(pool))
    ks = ctx.option("k", 10)
    ks = [int(ks)] if isinstance(ks, numbers.Integral) else [int(k) for k in ks]
    if n_queries < 1 or n_database < 2:
        raise MetricSkipped(f"the pool of {len(pool)} measures is too small for retrieval")
    _guard_cost(ctx, n_queries * n_database, "retrieval")
    queries = np.sort(rng.choice(pool, size=n_queries, replace=False))
    database = np.sort(rng.choice(pool, size=n_database, replace=False))
    exclude = queries[:, None] == database[None, :]
    exact = exact_matrix_w2(ctx, queries, database)
    predicted = surrogate_matrix(ctx, queries, database)
    candidates = n_database - int(exclude.sum(axis=1).max())
    out = {
        "retrieval.n_queries": float(n_queries),
        "retrieval.n_database": float(n_database),
        "retrieval.n_failed": float((~np.isfinite(predicted)).sum()),
    }
    for k in ks:
        if 1 <= k <= candidates:
            out[f"retrieval.recall@{k}"] = M.knn_recall(predicted, exact, k, exclude=exclude)
    return out


def axioms(ctx: EvaluationContext) -> dict[str, float]:
    """Audit of the metric axioms on seeded draws from :func:`evaluation_pool`.

    Columns: ``axioms.symmetry_error`` (``max |d(x,y) - d(y,x)|`` over ``n_symmetry`` random
    pairs of distinct measures, ground-cost units), ``axioms.self_distance_mean`` and
    ``axioms.self_distance_max`` (``d(x,x)`` over the same x), ``axioms.triangle_violation_rate``
    (fraction of ``n_triplets`` random ordered triplets of distinct measures with
    ``d(x,z) > d(x,y) + d(y,z) + atol + rtol (d(x,y) + d(y,z))``; all triplets when the pool
    is that small), ``axioms.triangle_max_excess`` and ``axioms.n_triplets``.
    """
    pool = evaluation_pool(ctx.dataset)
    if len(pool) < 3:
        raise MetricSkipped(f"the pool of {len(pool)} measures is too small for the axiom audit")
    rng = ctx.rng()
    n_sym = int(ctx.option("n_symmetry", 200))
    n_triplets = int(ctx.option("n_triplets", 500))
    triplets = M.sample_triplets(pool, n_triplets, rng)
    _guard_cost(ctx, 3 * n_sym + 3 * len(triplets), "the axiom audit")

    i = rng.integers(0, len(pool), size=n_sym)
    j = (i + rng.integers(1, len(pool), size=n_sym)) % len(pool)
    x, y = pool[i], pool[j]
    t_x, t_y, t_z = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    # one batched pass: (x,y), (y,x), (x,x), then the triplets' (x,y), (y,z), (x,z)
    left = np.concatenate([x, y, x, t_x, t_y, t_x])
    right = np.concatenate([y, x, x, t_y, t_z, t_z])
    d = surrogate_distances(ctx, left, right)
    d_xy, d_yx, d_xx = d[:n_sym], d[n_sym : 2 * n_sym], d[2 * n_sym : 3 * n_sym]
    tri = d[3 * n_sym :].reshape(3, len(triplets))

    out: dict[str, float] = {"axioms.symmetry_error": M.symmetry_error(d_xy, d_yx)}
    self_d = d_xx[np.isfinite(d_xx)]
    if len(self_d):
        out["axioms.self_distance_mean"] = float(np.mean(self_d))
        out["axioms.self_distance_max"] = float(np.max(np.abs(self_d)))
    violations = M.triangle_violations(
        tri[0], tri[1], tri[2],
        atol=float(ctx.option("triangle_atol", 1e-6)), rtol=float(ctx.option("triangle_rtol", 1e-5)),
    )
    if violations:
        out["axioms.triangle_violation_rate"] = violations["rate"]
        out["axioms.triangle_max_excess"] = violations["max_excess"]
        out["axioms.n_triplets"] = violations["n"]
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _wassmap_members(ctx: EvaluationContext, parameters: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(np.all(np.isfinite(parameters), axis=1))
    labels = ctx.dataset.labels
    if labels is not None and len(candidates):
        labels = np.asarray(labels)[candidates]
        chosen = ctx.options.get("wassmap_label")
        if chosen is None:
            values, counts = np.unique(labels, return_counts=True)
            chosen = values[np.argmax(counts)]
        candidates = candidates[labels == chosen]
    return candidates


def manifold_parameters(dataset: PairedDataset) -> np.ndarray | None:
    """The known manifold coordinates ``(n, p)`` of a dataset's measures, or None.

    ``metadata["translations"]`` ``(n, 2)`` (pixels), plus ``metadata["scales"]`` ``(n,)``
    as a third coordinate when present; coordinates that are constant over the dataset
    (the scale of a translation family, the translation of a dilation family) are dropped.
    """
    metadata = dataset.metadata or {}
    if metadata.get("translations") is None:
        return None
    n = len(dataset.measures)
    translations = np.asarray(metadata["translations"], dtype=np.float64)
    if translations.ndim != 2 or translations.shape[0] != n:
        raise ValueError(f"metadata['translations'] has shape {translations.shape}; expected ({n}, 2)")
    columns = [translations]
    if metadata.get("scales") is not None:
        scales = np.asarray(metadata["scales"], dtype=np.float64).reshape(-1, 1)
        if scales.shape[0] != n:
            raise ValueError(f"metadata['scales'] has {scales.shape[0]} entries for {n} measures")
        columns.append(scales)
    parameters = np.concatenate(columns, axis=1)
    finite = np.all(np.isfinite(parameters), axis=1)
    varying = np.ptp(parameters[finite], axis=0) > 0 if finite.any() else np.zeros(parameters.shape[1], bool)
    return parameters[:, varying]


def wassmap(ctx: EvaluationContext) -> dict[str, float]:
    """Wassmap downstream: Isomap of the surrogate's and of the exact W2 matrix of an image
    manifold, compared with the manifold's true coordinates by Procrustes disparity.

    Runs only when ``dataset.metadata["translations"]`` ``(n, 2)`` exists (the ``shapes``
    dataset); otherwise returns ``{}``. The true coordinates are
    :func:`manifold_parameters` (the translation offsets; the scale too for a dilation
    family), and Isomap embeds in as many dimensions. For the translation family the exact W2
    is ``|v_i - v_j|``, so the exact embedding recovers the offsets up to a similarity; for
    dilations the W2 scale axis is stretched by the shape's second moment, so even the exact
    disparity is not 0 and is the floor to compare the surrogate with. When the dataset has
    labels, one label's measures are used (option ``wassmap_label``, default the most
    frequent). ``wassmap_n`` (100) measures are drawn (seeded by ``eval_seed``); Isomap uses
    ``wassmap_neighbors`` (8) neighbours.

    Columns: ``wassmap.procrustes_surrogate``, ``wassmap.procrustes_exact`` (0: the
    coordinates recovered up to a similarity; at most 1), ``wassmap.n`` and
    ``wassmap.n_components``.
    """
    parameters = manifold_parameters(ctx.dataset)
    if parameters is None:
        return {}
    if parameters.shape[1] == 0:
        raise MetricSkipped("the manifold coordinates are constant: nothing to recover")
    members = _wassmap_members(ctx, parameters)
    n = min(int(ctx.option("wassmap_n", 100)), len(members))
    if n < parameters.shape[1] + 3:
        raise MetricSkipped(f"only {len(members)} measures carry manifold coordinates")
    _guard_cost(ctx, n * n, "wassmap")
    idx = np.sort(ctx.rng().choice(members, size=n, replace=False))
    neighbours = int(ctx.option("wassmap_neighbors", 8))
    components = parameters.shape[1]
    predicted = surrogate_matrix(ctx, idx, idx)
    if not np.all(np.isfinite(predicted)):
        raise ValueError(f"the surrogate failed on {(~np.isfinite(predicted)).sum()} of the {n}x{n} pairs")
    exact = exact_matrix_w2(ctx, idx, idx)
    truth = parameters[idx]

    def disparity(distances: np.ndarray) -> float:
        embedding = M.wassmap_embedding(distances, n_neighbors=neighbours, n_components=components)
        return M.procrustes_disparity(truth, embedding)

    return {
        "wassmap.procrustes_surrogate": disparity(predicted),
        "wassmap.procrustes_exact": disparity(exact),
        "wassmap.n": float(n),
        "wassmap.n_components": float(components),
    }
