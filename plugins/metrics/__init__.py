"""Built-in metrics of wbench, registered like any third-party plugin.

Light on purpose: only names and ``"module:function"`` strings, so ``wbench list`` imports
nothing heavy. The functions live in :mod:`wbench.evaluation` (context level) and
:mod:`wbench.metrics` (pure, on arrays); their options are described there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

METRICS: dict[str, tuple[str, str]] = {
    "errors": (
        "wbench.evaluation:errors",
        "MSE, RMSE, MAE, rel. MAE, max error, Pearson, Spearman on W2 and W2^2 per split; failed pairs counted",
    ),
    "error_by_range": ("wbench.evaluation:error_by_range", "test W2 errors per quartile (or fixed bins) of the exact W2"),
    "generalisation_gap": ("wbench.evaluation:generalisation_gap", "test vs train MSE on W2: difference and ratio"),
    "retrieval": ("wbench.evaluation:retrieval", "k-nearest-neighbour recall@k against the exact W2"),
    "axioms": ("wbench.evaluation:axioms", "symmetry error, self-distance, triangle-inequality violation rate"),
    "wassmap": (
        "wbench.evaluation:wassmap",
        "Isomap of surrogate vs exact W2 on a translation manifold, Procrustes disparity",
    ),
}
"""name -> (target, description) of every built-in metric."""


@hookimpl
def wbench_register_metrics(registry: Registry) -> None:
    """Register the built-in metrics."""
    for name, (target, description) in METRICS.items():
        registry.add_metric(name, target, description=description)
