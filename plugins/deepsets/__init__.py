"""DeepSets encoder of weighted point sets (paper 002): registration only.

Light on purpose: the model lives in :mod:`wbench_plugins.deepsets.models` and is
imported when the surrogate is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``deepsets``."""
    registry.add_surrogate(
        "deepsets",
        "wbench_plugins.deepsets.models:DeepSets",
        description="DeepSets encoder of weighted point clouds (paper 002), sum pooling, MSE on W2",
        test_params={"width": 32},
    )
