"""Parameter handling shared by the built-in datasets, and the labelled-image base class.

:class:`ParamDataset` merges the caller's keyword arguments over the class's ``defaults``
(unknown names are an error), so ``self.params`` always holds every parameter the build
used: records show the whole configuration. :class:`LabelledImageDataset` is the common
build of ``mnist`` and ``digits``: image subset, unit-mass grid measures, and the
class-combination pair protocol of :mod:`._pairs`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from wbench.data import DatasetPlugin, PairedDataset
from wbench.errors import InvalidMeasureError
from wbench.measures import MeasureBatch

from ._pairs import (
    DEFAULT_FRACTIONS,
    DEFAULT_POOL_FRACTIONS,
    check_fractions,
    class_combination_splits,
    partition,
    seed_streams,
)


class ParamDataset(DatasetPlugin):
    """A dataset plugin whose parameters have defaults and are validated on construction.

    Subclasses set ``defaults`` (every accepted parameter and its default) and extend
    :meth:`validate`, which raises ``ValueError`` naming the parameter.
    """

    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for dataset {self.name!r}; "
                f"known: {', '.join(sorted(self.defaults))}"
            )
        super().__init__(**{**self.defaults, **params})
        self.validate()

    def validate(self) -> None:
        """Check ``self.params``; normalise values in place (e.g. lists to tuples)."""
        if "seed" in self.params:
            self.integer("seed", minimum=0)
        for key in ("fractions", "image_fractions", "set_fractions"):  # pairs; measure groups
            if key in self.params:
                self.params[key] = check_fractions(self.params[key], f"{self.name}: {key}")

    def preflight(self) -> None:
        """Cheap checks of what :meth:`build` needs besides the parameters (data files, folders),
        run by ``wbench run`` before any work; raise an error saying what is missing and how to
        fix it. The default checks nothing."""

    def integer(self, key: str, *, minimum: int = 1, optional: bool = False) -> int | None:
        """The integer parameter ``key`` (>= ``minimum``; None allowed when ``optional``)."""
        value = self.params[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{self.name}: {key} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{self.name}: {key} must be >= {minimum}, got {value}")
        self.params[key] = int(value)
        return int(value)

    def number(self, key: str, *, positive: bool = True) -> float:
        """The real parameter ``key`` (finite; > 0 when ``positive``)."""
        value = self.params[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value):
            raise ValueError(f"{self.name}: {key} must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise ValueError(f"{self.name}: {key} must be > 0, got {value}")
        return float(value)

    def choice(self, key: str, options: Sequence[str]) -> str:
        """The parameter ``key``, which must be one of ``options``."""
        value = self.params[key]
        if value not in options:
            raise ValueError(f"{self.name}: unknown {key} {value!r}; choose one of {', '.join(map(repr, options))}")
        return str(value)


_CHUNK = 8192


def images_to_measures(images: np.ndarray, index: np.ndarray | None = None) -> MeasureBatch:
    """Grid measures from images ``(n, H, W)`` of non-negative intensities.

    Each image is normalised to unit mass in float64 and then stored as float32, so an
    image's weights do not depend on the batch it is in (an integer shift of an image gives
    exactly shifted weights, which the closed-form checks rely on).

    :param index: ``(n,)`` the images' numbers in their source, used in error messages.
    :raises InvalidMeasureError: an image with a negative, non-finite or all-zero
        intensity, naming its source index.
    """
    images = np.asarray(images)
    if images.ndim != 3 or not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise InvalidMeasureError(f"images must be a real array of shape (n, H, W), got {images.dtype} {images.shape}")
    index = np.arange(len(images)) if index is None else np.asarray(index)
    flat = images.reshape(len(images), -1)
    totals = flat.sum(axis=1, dtype=np.float64)
    for what, bad in (
        ("a non-finite intensity", ~np.isfinite(flat).all(axis=1)),
        ("a negative intensity", (flat < 0).any(axis=1)),
        ("no mass (all pixels are zero)", ~(totals > 0)),
    ):
        if bad.any():
            raise InvalidMeasureError(f"image {int(index[np.flatnonzero(bad)[0]])} has {what}")
    weights = np.empty(images.shape, dtype=np.float32)
    for start in range(0, len(images), _CHUNK):  # float64 one chunk at a time (MNIST "all": 70,000 images)
        stop = start + _CHUNK
        weights[start:stop] = images[start:stop] / totals[start:stop, None, None]
    return MeasureBatch.from_images(torch.from_numpy(weights), normalise=False)


class LabelledImageDataset(ParamDataset):
    """Labelled images under the DeepKENN class-combination pair protocol.

    Parameters (subclasses add their own):

    - ``pairs_per_combination``: pairs per class combination ``(a, b)``, ``a <= b``
      (10 classes: 55 combinations).
    - ``split``: ``"random"`` (pairs split at random) or ``"image-disjoint"``: the images
      are first partitioned, stratified by class, into train / val / test groups by
      ``image_fractions`` (default 0.8 / 0.1 / 0.1), and each split's pairs use only its
      own group, so no image of a val or test pair occurs in any training pair.
    - ``fractions``: (train, val, test) fractions of the pairs (default 0.9 / 0.05 / 0.05;
      train and val are rounded down, test takes the rest).
    - ``n_images``: use a seeded random subset of this many images (None: all).
    - ``seed``: the seed of the subset, the partition and the pairs (independent streams).

    ``metadata["source_index"]`` holds each measure's index in the source,
    ``metadata["image_groups"]`` the image groups of the disjoint split.
    """

    defaults: ClassVar[Mapping[str, Any]] = {
        "pairs_per_combination": 1000,
        "split": "random",
        "fractions": DEFAULT_FRACTIONS,
        "image_fractions": DEFAULT_POOL_FRACTIONS,
        "n_images": None,
        "seed": 0,
    }
    SPLIT_MODES: ClassVar[tuple[str, ...]] = ("random", "image-disjoint")

    def validate(self) -> None:
        super().validate()
        self.integer("pairs_per_combination")
        self.integer("n_images", minimum=2, optional=True)
        self.choice("split", self.SPLIT_MODES)

    @abstractmethod
    def load(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """All images ``(n, H, W)`` (non-negative), their labels ``(n,)`` and extra metadata."""

    def build(self) -> PairedDataset:
        p = self.params
        rng_subset, rng_groups, rng_pairs = seed_streams(p["seed"], 3)
        images, labels, metadata = self.load()
        source_index = np.arange(len(images))
        if p["n_images"] is not None:
            if p["n_images"] > len(images):
                raise ValueError(f"{self.name}: n_images={p['n_images']} but only {len(images)} images are available")
            source_index = np.sort(rng_subset.choice(len(images), p["n_images"], replace=False))
            images, labels = images[source_index], labels[source_index]
        labels = np.asarray(labels, dtype=np.int64)
        measures = images_to_measures(images, source_index)
        pools = None
        if p["split"] == "image-disjoint":
            pools = partition(rng_groups, len(labels), p["image_fractions"], labels=labels)
            metadata["image_groups"] = pools
        pairs = class_combination_splits(rng_pairs, labels, p["pairs_per_combination"], p["fractions"], pools=pools)
        metadata["source_index"] = source_index
        return PairedDataset(self.name, dict(p), measures, pairs, labels=labels, metadata=metadata, unit="pixel")
