"""Reference (non-learned) W2 methods: exact LP, Sinkhorn, LOT and sliced W2 embeddings.

This module only registers the methods; each lives in its own module and is imported
when it is first used (``wbench list`` imports nothing heavy).

* ``exact-lp`` (:class:`.exact.ExactLP`): exact W2 by POT's network simplex (the oracle).
* ``sinkhorn`` (:class:`.sinkhorn.Sinkhorn`): entropic OT with POT or GeomLoss.
* ``lot`` (:class:`.lot.LOT`): the linear optimal transport embedding.
* ``sliced`` (:class:`.sliced.SlicedW2`): sliced W2 as an embedding of projected quantiles.

All are solvers (nothing to learn, ``n_parameters == 0``) that take grid histograms or
point clouds, return W2 estimates as float64 tensors, and return NaN, counted in
``describe()["n_failed"]``, for a pair they could not solve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

_PACKAGE = __name__


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``exact-lp``, ``sinkhorn``, ``lot`` and ``sliced``."""
    registry.add_surrogate(
        "exact-lp",
        f"{_PACKAGE}.exact:ExactLP",
        description="exact W2: POT network simplex on the supports, parallel over pairs (the oracle)",
        test_params={"n_jobs": 1},
    )
    registry.add_surrogate(
        "sinkhorn",
        f"{_PACKAGE}.sinkhorn:Sinkhorn",
        description="entropic OT, POT (epsilon scaling, convergence checked) or GeomLoss (batched, CPU/GPU)",
        test_params={"backend": "pot", "n_jobs": 1},
    )
    registry.add_surrogate(
        "lot",
        f"{_PACKAGE}.lot:LOT",
        description="linear optimal transport embedding (barycentric projections of exact plans from the mean measure)",
        test_params={"reference": "grid", "reference_size": 64, "n_jobs": 1},
    )
    registry.add_surrogate(
        "sliced",
        f"{_PACKAGE}.sliced:SlicedW2",
        description="sliced W2 as an embedding of cell-averaged projected quantiles, scale fitted by least squares",
        test_params={"n_projections": 8, "n_levels": 16, "seed": 0},
    )
