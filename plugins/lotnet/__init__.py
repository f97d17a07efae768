"""Learned surrogates on linear optimal transport (LOT) features: registration only.

* ``lot-residual`` (:class:`.models.LOTResidual`): a residual MLP on the LOT embedding of
  each measure (one exact LP to a reference fitted on the training measures), initialised
  so that, untrained, it returns LOT's distances; trained on exact W2 under the suite's
  budget. The hidden width is the matched-budget knob.

The model lives in :mod:`wbench_plugins.lotnet.models` and is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``lot-residual``."""
    registry.add_surrogate(
        "lot-residual",
        "wbench_plugins.lotnet.models:LOTResidual",
        description="residual MLP on LOT features (exact plan to the mean training measure), starts as LOT, trained on exact W2",
        test_params={"width": 8, "reference_size": 32, "n_jobs": 1},
    )
