"""Naive, DeepKENN and ODE-KENN (Deep Kuratowski Embedding Neural Networks, 2026).

This module only registers the three surrogates; the models live in
:mod:`wbench_plugins.kenn.models` and are imported when first used, so ``wbench list``
stays fast and needs no data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

_MODELS = "wbench_plugins.kenn.models"
# A tiny width (layer sizes at 15 % of the paper's) for the conformance tests.
TEST_PARAMS = {"width": 150}


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``naive``, ``deepkenn`` and ``odekenn``."""
    registry.add_surrogate(
        "naive",
        f"{_MODELS}:NaiveKENN",
        description="CNN encoder + Linear/Tanh head; Euclidean distance of the final embedding (KENN paper baseline)",
        test_params=TEST_PARAMS,
    )
    registry.add_surrogate(
        "deepkenn",
        f"{_MODELS}:DeepKENN",
        description="DeepKENN: softplus-weighted distances over all six layer outputs of the CNN encoder",
        test_params=TEST_PARAMS,
    )
    registry.add_surrogate(
        "odekenn",
        f"{_MODELS}:ODEKENN",
        description="ODE-KENN: neural ODE on the encoder's feature, softplus-weighted distance along the trajectory (RK4)",
        test_params=TEST_PARAMS,
    )
