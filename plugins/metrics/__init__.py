"""Built-in metrics of wbench, registered like any third-party plugin.

Light on purpose: only names and ``"module:function"`` strings, so ``wbench list`` imports
nothing heavy. Each metric is a function ``f(ctx) -> {column: float}`` of a
:class:`wbench.evaluation.EvaluationContext` (the metric-author API), in the module named by
its target; the array work is in :mod:`wbench.metrics`.

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

Their options (``[evaluation] options = {...}`` in a suite file; the options every metric
shares, ``eval_seed``, ``solver_max_evaluations`` and ``batch_size``, are in
:mod:`wbench.evaluation`), with defaults:

* ``range_bins`` (4) or ``range_edges`` (list of W2 edges): the bins of ``error_by_range``.
* ``k`` (10, an int or a list), ``n_queries`` (50), ``n_database`` (500): retrieval.
* ``n_symmetry`` (200) pairs and ``n_triplets`` (500) triplets, ``triangle_atol`` (1e-6),
  ``triangle_rtol`` (1e-5): axioms.
* ``wassmap_n`` (100) measures, ``wassmap_neighbors`` (8), ``wassmap_label`` (the most
  frequent label): Wassmap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

METRICS: dict[str, tuple[str, str]] = {
    "errors": (
        "wbench_plugins.metrics.errors:errors",
        "MSE, RMSE, MAE, rel. MAE, max error, Pearson, Spearman on W2 and W2^2 per split; failed pairs counted",
    ),
    "error_by_range": ("wbench_plugins.metrics.errors:error_by_range", "test W2 errors per quartile (or fixed bins) of the exact W2"),
    "generalisation_gap": ("wbench_plugins.metrics.errors:generalisation_gap", "test vs train MSE on W2: difference and ratio"),
    "retrieval": ("wbench_plugins.metrics.retrieval:retrieval", "k-nearest-neighbour recall@k against the exact W2"),
    "axioms": ("wbench_plugins.metrics.axioms:axioms", "symmetry error, self-distance, triangle-inequality violation rate"),
    "wassmap": (
        "wbench_plugins.metrics.wassmap:wassmap",
        "Isomap of surrogate vs exact W2 on a translation manifold, Procrustes disparity",
    ),
}
"""name -> (target, description) of every built-in metric."""


@hookimpl
def wbench_register_metrics(registry: Registry) -> None:
    """Register the built-in metrics."""
    for name, (target, description) in METRICS.items():
        registry.add_metric(name, target, description=description)
