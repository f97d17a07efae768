"""wbench's built-in datasets: ``mnist``, ``digits``, ``shapes`` and ``distributions``.

This module is the entry point ``datasets`` of the ``wbench`` group; it only registers
``"module:Class"`` strings (nothing heavy is imported until a dataset is built). Each
class declares its parameters and their defaults in ``defaults``; the registry reads them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    from wbench.registry import Registry


@hookimpl
def wbench_register_datasets(registry: Registry) -> None:
    """Register the four built-in datasets with tiny test parameters (their defaults are on the classes)."""
    registry.add_dataset(
        "mnist",
        "wbench_plugins.datasets.mnist:MnistDataset",
        description="MNIST 28x28 digits (root: $WBENCH_MNIST_ROOT), DeepKENN pairs: 1,000 per class combination",
        test_params={"n_images": 200, "pairs_per_combination": 1},
    )
    registry.add_dataset(
        "digits",
        "wbench_plugins.datasets.digits:DigitsDataset",
        description="scikit-learn's 8x8 digits (bundled, no download), class-combination pairs",
        test_params={"n_images": 120, "pairs_per_combination": 1},
    )
    registry.add_dataset(
        "shapes",
        "wbench_plugins.datasets.shapes:ShapesDataset",
        description="Wassmap manifolds: translated / dilated shapes, closed-form W2 for translations",
        test_params={"size": 12, "scale": 3.0, "n_measures": 24, "n_pairs": 40},
    )
    registry.add_dataset(
        "distributions",
        "wbench_plugins.datasets.distributions:DistributionsDataset",
        description="paper 002's sample sets: 1-D families (500 samples) or 2-D normals (300), point clouds",
        test_params={"n_sets": 14, "sample_size": 30, "n_pairs": 40},
    )
