"""Wasserstein Wormhole (Haviv et al., 2024) through the authors' JAX package: registration only.

The surrogate lives in :mod:`wbench_plugins.wormhole.models`, which imports the optional
extra (``wassersteinwormhole``, JAX, Flax, OTT-JAX) when first used. Without the extra the
entry is listed as unavailable, with the install command in its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry

INSTALL_COMMAND = "pip install 'wbench[wormhole]'"
"""How a user gets the optional extra this plugin needs."""

# Tiny transformer for the conformance tests: one layer, 8-d embedding, few Sinkhorn iterations.
TEST_PARAMS = {"emb_dim": 8, "num_heads": 2, "num_layers": 1, "width": 16, "num_sinkhorn_iter": 50}


@hookimpl
def wbench_register_surrogates(registry: Registry) -> None:
    """Register ``wormhole``."""
    registry.add_surrogate(
        "wormhole",
        "wbench_plugins.wormhole.models:Wormhole",
        description=(
            "Wasserstein Wormhole (Haviv et al., 2024): the authors' JAX transformer over weighted "
            f"point clouds, mean-pooled; needs the extra: {INSTALL_COMMAND}"
        ),
        test_params=TEST_PARAMS,
    )
