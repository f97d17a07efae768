"""Wassmap image manifolds: translations and dilations of a base shape on a pixel grid.

After Hamm, Henscheid and Kang, "Wassmap: Wasserstein isometric mapping for image
manifold learning" (2022): every image is one base shape (``disk``, ``square``, ``ring``
or ``gaussian``) at some scale and position. The translation family is isometric to a
square of R^2 under W2, which gives an analytic check of every solver and surrogate and an
out-of-distribution test set for models trained on digits.

Exactness: translations are integer pixel offsets applied by shifting the unit-mass
rendering of the shape, so two images of the same scale are exact copies shifted by an
integer vector ``v`` with all mass on the grid, and their W2 is exactly ``|v|`` pixels.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from wbench.data import PairedDataset
from wbench.measures import MeasureBatch

from ._common import ParamDataset
from ._pairs import (
    DEFAULT_FRACTIONS,
    DEFAULT_POOL_FRACTIONS,
    partition,
    random_pair_splits,
    seed_streams,
)

SHAPES = ("disk", "square", "ring", "gaussian")
FAMILIES = ("translation", "dilation", "both")
SUPERSAMPLE = 8
"""Sub-samples per pixel side used to anti-alias the rendering (8 x 8 per pixel)."""
RING_INNER = 0.5
"""Inner radius of the ring as a fraction of its outer radius."""
GAUSSIAN_SIGMAS = 3.0
"""The gaussian blob has standard deviation ``scale / 3`` and is cut off at radius ``scale``."""


def render(shape: str, scale: float, size: int) -> np.ndarray:
    """The shape at ``scale`` centred on an ``size x size`` grid, unit mass, float64.

    ``scale`` is the shape's radius in pixels: the disk's radius, the square's half side,
    the ring's outer radius (inner radius ``scale / 2``), the gaussian's cut-off radius
    (standard deviation ``scale / 3``). The centre is the grid's centre
    ``((size - 1) / 2, (size - 1) / 2)``; each pixel holds the shape's mean intensity
    over ``8 x 8`` sub-samples of its square.
    """
    sub = (np.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5 - (size - 1) / 2
    dy, dx = np.meshgrid(sub, sub, indexing="ij")
    radius = np.hypot(dy, dx)
    if shape == "disk":
        fine = (radius <= scale).astype(np.float64)
    elif shape == "square":
        fine = (np.maximum(np.abs(dy), np.abs(dx)) <= scale).astype(np.float64)
    elif shape == "ring":
        fine = ((radius <= scale) & (radius >= RING_INNER * scale)).astype(np.float64)
    elif shape == "gaussian":
        sigma = scale / GAUSSIAN_SIGMAS
        fine = np.where(radius <= scale, np.exp(-(radius**2) / (2 * sigma**2)), 0.0)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    image = fine.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    total = image.sum()
    if total <= 0:
        raise ValueError(f"shape {shape!r} at scale {scale} covers no pixel of a {size}x{size} grid")
    return image / total


def offset_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest integer ``(row, col)`` offsets that keep ``image``'s mass on the grid."""
    rows, cols = np.nonzero(image)
    size = np.array(image.shape)
    low = -np.array([rows.min(), cols.min()])
    high = size - 1 - np.array([rows.max(), cols.max()])
    return low, high


def closed_form_w2(translations: np.ndarray, scales: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact W2 ``(P,)`` in pixels where known: ``|t_left - t_right|`` for pairs of equal
    scale (integer translates of one rendering), NaN for the other pairs."""
    w2 = np.linalg.norm(translations[left] - translations[right], axis=1)
    return np.where(scales[left] == scales[right], w2, np.nan)


class ShapesDataset(ParamDataset):
    """Translated and dilated base shapes on a grid; W2 in pixels.

    Parameters:

    - ``family``: ``"translation"`` (the shape at ``scale``, at ``n_measures`` distinct
      integer offsets, uniform over all offsets that keep it on the grid),
      ``"dilation"`` (centred, scale uniform in ``scale_range``) or ``"both"`` (scale
      uniform in ``scale_range``, then a uniform integer offset that keeps it on the grid).
    - ``shape``: ``"disk"``, ``"square"``, ``"ring"`` or ``"gaussian"`` (see :func:`render`).
    - ``size``: grid side in pixels (default 28).
    - ``scale``: radius in pixels for the translation family; ``scale_range``: (min, max)
      radius for the other two. A radius must be at most ``size / 2``.
    - ``n_measures``, ``n_pairs``: numbers of images and of distinct random pairs.
    - ``split``: ``"random"`` or ``"image-disjoint"`` (images partitioned by
      ``image_fractions`` first, as in ``mnist``); ``fractions``; ``seed``.

    Metadata: ``translations`` ``(n, 2)`` integer (row, col) offsets from the grid centre
    in pixels, ``scales`` ``(n,)`` radii in pixels, and ``closed_form_w2``: split ->
    ``(P,)`` exact W2 where the pair is an integer translate (every pair of the
    translation family), NaN elsewhere.
    """

    name: ClassVar[str] = "shapes"
    defaults: ClassVar[dict[str, Any]] = {
        "family": "translation",
        "shape": "disk",
        "size": 28,
        "scale": 5.0,
        "scale_range": (2.0, 9.0),
        "n_measures": 200,
        "n_pairs": 2000,
        "split": "random",
        "fractions": DEFAULT_FRACTIONS,
        "image_fractions": DEFAULT_POOL_FRACTIONS,
        "seed": 0,
    }

    def validate(self) -> None:
        super().validate()
        p = self.params
        self.choice("family", FAMILIES)
        self.choice("shape", SHAPES)
        self.choice("split", ("random", "image-disjoint"))
        size = self.integer("size", minimum=4)
        self.integer("n_measures", minimum=2)
        self.integer("n_pairs")
        scale = self.number("scale")
        bounds = p["scale_range"]
        if isinstance(bounds, str) or not hasattr(bounds, "__len__") or len(bounds) != 2:
            raise ValueError(f"shapes: scale_range must be (min, max), got {bounds!r}")
        low, high = (float(b) for b in bounds)
        if not 0 < low <= high:
            raise ValueError(f"shapes: scale_range must satisfy 0 < min <= max, got {bounds!r}")
        p["scale_range"] = (low, high)
        largest = scale if p["family"] == "translation" else high
        if largest > size / 2:
            raise ValueError(f"shapes: a radius of {largest} pixels does not fit a {size}x{size} grid (at most {size / 2})")

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images ``(n, size, size)`` float32 of unit mass, translations ``(n, 2)``, scales ``(n,)``."""
        p = self.params
        n, size, shape = p["n_measures"], p["size"], p["shape"]
        if p["family"] == "translation":
            scales = np.full(n, p["scale"])
            low, high = offset_range(render(shape, p["scale"], size))
            extent = high - low + 1
            if n > extent.prod():
                raise ValueError(
                    f"shapes: n_measures={n} but a {shape} of radius {p['scale']} has only "
                    f"{int(extent.prod())} distinct positions on a {size}x{size} grid"
                )
            flat = rng.choice(int(extent.prod()), n, replace=False)
            offsets = np.stack([flat // extent[1], flat % extent[1]], axis=1) + low
        else:
            scales = rng.uniform(*p["scale_range"], size=n)
            offsets = np.zeros((n, 2), np.int64)
        images = np.empty((n, size, size), np.float32)
        cache: dict[float, np.ndarray] = {}
        for k in range(n):
            scale = float(scales[k])
            if scale not in cache:  # one rendering per scale, normalised once: translates are exact
                cache[scale] = render(shape, scale, size).astype(np.float32)
            base = cache[scale]
            if p["family"] == "both":
                low, high = offset_range(base)
                offsets[k] = rng.integers(low, high + 1)
            images[k] = np.roll(base, tuple(int(o) for o in offsets[k]), axis=(0, 1))
        return images, offsets.astype(np.float64), scales

    def build(self) -> PairedDataset:
        p = self.params
        rng_images, rng_groups, rng_pairs = seed_streams(p["seed"], 3)
        images, translations, scales = self._draw(rng_images)
        measures = MeasureBatch.from_images(torch.from_numpy(images), normalise=False)
        pools = partition(rng_groups, len(images), p["image_fractions"]) if p["split"] == "image-disjoint" else None
        pairs = random_pair_splits(rng_pairs, len(images), p["n_pairs"], p["fractions"], pools=pools)
        metadata: dict[str, Any] = {
            "translations": translations,
            "scales": scales,
            "shape": p["shape"],
            "family": p["family"],
            "closed_form_w2": {
                split: closed_form_w2(translations, scales, ps.left, ps.right) for split, ps in pairs.items()
            },
        }
        if pools is not None:
            metadata["image_groups"] = pools
        return PairedDataset(self.name, dict(p), measures, pairs, metadata=metadata, unit="pixel")
