"""RG: W2 regressed on sliced Wasserstein lower bounds and lifted upper bounds.

Nguyen, Nguyen & Ho, "Fast Estimation of Wasserstein Distances via Regression on Sliced
Wasserstein Distances" (ICLR 2026, arXiv:2509.20508). Registration only:

* ``rg`` (:class:`.models.RG`): the constrained model, K coefficients for K bound pairs;
* ``rg-ls`` (:class:`.models.RGLeastSquares`): the unconstrained least-squares model, 2K.

Both are fitted in closed form on exact W2 of training pairs and take grids or point
clouds; the models live in :mod:`wbench_plugins.rg.models`, imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

_TEST_PARAMS = {"n_projections": 16, "max_pairs": 200}


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``rg`` and ``rg-ls``."""
    registry.add_surrogate(
        "rg",
        "wbench_plugins.rg.models:RG",
        description="RG (Nguyen et al. 2026): W2 as a constrained combination of sliced lower and "
        "lifted upper bounds (SW/PW, Max-SW/min-SWGG, EBSW), fitted in closed form",
        test_params=dict(_TEST_PARAMS),
    )
    registry.add_surrogate(
        "rg-ls",
        "wbench_plugins.rg.models:RGLeastSquares",
        description="RG-LS: W2 by unconstrained least squares on the same sliced lower and lifted "
        "upper bounds (twice the coefficients of rg)",
        test_params=dict(_TEST_PARAMS),
    )
