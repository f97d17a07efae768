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

from wbench.data import DatasetPlugin, PairedDataset, PairSet
from wbench.errors import InvalidMeasureError
from wbench.measures import MeasureBatch

from ._pairs import (
    DEFAULT_FRACTIONS,
    DEFAULT_POOL_FRACTIONS,
    check_fractions,
    class_combination_splits,
    partition,
    seed_streams,
    unseen_pairs,
)

NO_UNSEEN_POOL = (
    "no held-out measures: it generates only the measures its pairs are drawn from, and nearly "
    "every one of them is in a train or val pair"
)
"""The default reason a dataset offers no ``unseen`` pair set (``wbench list`` shows it)."""


class ParamDataset(DatasetPlugin):
    """A dataset plugin whose parameters have defaults and are validated on construction.

    Subclasses set ``defaults`` (every accepted parameter and its default) and extend
    :meth:`validate`, which raises ``ValueError`` naming the parameter.
    """

    defaults: ClassVar[Mapping[str, Any]] = {}
    no_unseen_reason: ClassVar[str | None] = NO_UNSEEN_POOL
    """Why the dataset has no ``unseen`` pair set (None: it offers one, parameter ``unseen``)."""

    def __init__(self, **params: Any) -> None:
        if params.get("unseen") and self.no_unseen_reason is not None:
            raise ValueError(f"{self.name}: unseen: this dataset has no unseen pair set: {self.no_unseen_reason}")
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
    - ``unseen``: also build an ``unseen`` pair set: as many pairs as the test set, with
      its class combinations, between images that occur in no train or val pair (images of
      the source no pair uses, and those of :meth:`extra_images`); exact distances are
      attached like the other splits'. Off by default; the other splits do not change.
    - ``train_pairs``: keep this many distinct training pairs, a seeded subset of the full
      training set (None: all); val, test and unseen are those of the full set.

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
        "unseen": False,
        "train_pairs": None,
    }
    no_unseen_reason: ClassVar[str | None] = None
    SPLIT_MODES: ClassVar[tuple[str, ...]] = ("random", "image-disjoint")

    def validate(self) -> None:
        super().validate()
        self.integer("pairs_per_combination")
        self.integer("n_images", minimum=2, optional=True)
        self.choice("split", self.SPLIT_MODES)
        self.integer("train_pairs", optional=True)
        if not isinstance(self.params["unseen"], bool):
            raise ValueError(f"{self.name}: unseen must be true or false, got {self.params['unseen']!r}")

    @abstractmethod
    def load(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """All images ``(n, H, W)`` (non-negative), their labels ``(n,)`` and extra metadata."""

    def extra_images(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Images ``(m, H, W)`` and labels ``(m,)`` outside :meth:`load` that may join the
        ``unseen`` pool (e.g. MNIST's other file); None (the default): none."""
        return None

    def build(self) -> PairedDataset:
        p = self.params
        rng_subset, rng_groups, rng_pairs, rng_unseen, rng_train = seed_streams(p["seed"], 5)
        all_images, all_labels, metadata = self.load()
        source_index = np.arange(len(all_images))
        if p["n_images"] is not None:
            if p["n_images"] > len(all_images):
                raise ValueError(f"{self.name}: n_images={p['n_images']} but only {len(all_images)} images are available")
            source_index = np.sort(rng_subset.choice(len(all_images), p["n_images"], replace=False))
        images, labels = all_images[source_index], np.asarray(all_labels[source_index], dtype=np.int64)
        measures = images_to_measures(images, source_index)  # invalid images fail before the pairs
        pools = None
        if p["split"] == "image-disjoint":
            pools = partition(rng_groups, len(labels), p["image_fractions"], labels=labels)
            metadata["image_groups"] = pools
        pairs = class_combination_splits(rng_pairs, labels, p["pairs_per_combination"], p["fractions"], pools=pools)
        metadata["source_index"] = source_index
        if p["unseen"]:  # its images are appended after the others: their indices do not move
            pairs["unseen"], chosen, all_images, all_labels = self._unseen(
                rng_unseen, pairs, all_images, all_labels, source_index, labels, metadata)
            images = np.concatenate([images, all_images[chosen]])
            labels = np.concatenate([labels, np.asarray(all_labels[chosen], dtype=np.int64)])
            measures = images_to_measures(images, np.concatenate([source_index, chosen]))
        if p["train_pairs"] is not None:
            pairs["train"] = self._train_subset(rng_train, pairs["train"], metadata)
        return PairedDataset(self.name, dict(p), measures, pairs, labels=labels, metadata=metadata, unit="pixel")

    def _train_subset(self, rng: np.random.Generator, train: PairSet, metadata: dict[str, Any]) -> PairSet:
        """A seeded subset of ``train_pairs`` of the training pairs (in their order); the full
        set stays in ``metadata["train_pairs_full"]`` and the chosen positions in
        ``metadata["train_subset"]`` (the oracle solves the full set: one cache entry for every N)."""
        n = self.params["train_pairs"]
        if n > len(train):
            raise ValueError(f"{self.name}: train_pairs={n} but the protocol gives only {len(train)} training pairs")
        chosen = np.sort(rng.permutation(len(train))[:n])
        metadata["train_pairs_full"], metadata["train_subset"] = train, chosen
        return train.subset(chosen)

    def _unseen(
        self, rng: np.random.Generator, pairs: Mapping[str, PairSet], all_images: np.ndarray, all_labels: np.ndarray,
        source_index: np.ndarray, labels: np.ndarray, metadata: dict[str, Any],
    ) -> tuple[PairSet, np.ndarray, np.ndarray, np.ndarray]:
        """The ``unseen`` pairs (indices past the ``len(labels)`` measures of the other splits),
        the source numbers of their images (to append, in this order), and the source images
        and labels with :meth:`extra_images` appended.

        The pool: every source image (``load`` then :meth:`extra_images`, numbered in that
        order) whose measure occurs in no train or val pair. ``metadata["unseen_source_index"]``
        holds the appended measures' numbers in that order.
        """
        extra = self.extra_images()
        if extra is not None:
            all_images = np.concatenate([all_images, extra[0]])
            all_labels = np.concatenate([all_labels, extra[1]])
        all_labels = np.asarray(all_labels, dtype=np.int64)
        seen = [pairs[s].left for s in ("train", "val")] + [pairs[s].right for s in ("train", "val")]
        used = source_index[np.unique(np.concatenate(seen))]
        pool = np.setdiff1d(np.arange(len(all_images)), used)
        drawn = unseen_pairs(rng, pairs["test"], labels, pool, all_labels[pool])
        chosen, local = np.unique(np.concatenate([drawn.left, drawn.right]), return_inverse=True)
        offset = len(labels)
        metadata["unseen_source_index"] = chosen
        metadata["unseen_pool_size"] = len(pool)
        unseen = PairSet(offset + local[: len(drawn)], offset + local[len(drawn):])
        return unseen, chosen, all_images, all_labels
