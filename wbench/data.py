"""Pairs of measures with their exact distances, and the dataset plugin interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from wbench.measures import MeasureBatch

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PairSet:
    """Pairs ``(left[p], right[p])`` of indices into a collection of measures.

    :param left: ``(P,)`` int64 indices.
    :param right: ``(P,)`` int64 indices.
    :param w2sq: ``(P,)`` float64 exact squared Wasserstein-2 distances in squared
        ground-cost units (pixel^2 for images), or None before the oracle has run.
    """

    left: np.ndarray
    right: np.ndarray
    w2sq: np.ndarray | None = None

    def __post_init__(self) -> None:
        left = np.asarray(self.left, dtype=np.int64)
        right = np.asarray(self.right, dtype=np.int64)
        if left.ndim != 1 or left.shape != right.shape:
            raise ValueError(f"left and right must be 1-D of equal length, got {left.shape} and {right.shape}")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)
        if self.w2sq is not None:
            w2sq = np.asarray(self.w2sq, dtype=np.float64)
            if w2sq.shape != left.shape:
                raise ValueError(f"w2sq has shape {w2sq.shape}, expected {left.shape}")
            if not np.all(np.isfinite(w2sq)) or np.any(w2sq < -1e-9):
                raise ValueError("w2sq must be finite and non-negative")
            object.__setattr__(self, "w2sq", np.maximum(w2sq, 0.0))

    def __len__(self) -> int:
        return int(self.left.shape[0])

    @property
    def w2(self) -> np.ndarray:
        """``(P,)`` exact W2 in ground-cost units; raises if the oracle has not run."""
        if self.w2sq is None:
            raise ValueError("these pairs have no ground truth yet (run the oracle)")
        return np.sqrt(self.w2sq)

    def with_w2sq(self, w2sq: np.ndarray) -> PairSet:
        """A copy carrying the given exact W2^2 values ``(P,)``."""
        return PairSet(self.left, self.right, w2sq)

    def subset(self, idx: np.ndarray | slice) -> PairSet:
        """The pairs at ``idx``."""
        return PairSet(self.left[idx], self.right[idx], None if self.w2sq is None else self.w2sq[idx])


@dataclass(frozen=True)
class LabelledPairs:
    """What a surrogate is trained or evaluated on: measures and pairs into them."""

    measures: MeasureBatch
    pairs: PairSet

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, idx: np.ndarray | slice) -> tuple[MeasureBatch, MeasureBatch, np.ndarray | None]:
        """Left measures, right measures and W2^2 ``(b,)`` of the pairs at ``idx``."""
        sub = self.pairs.subset(idx)
        return self.measures.index(sub.left), self.measures.index(sub.right), sub.w2sq


@dataclass(frozen=True)
class PairedDataset:
    """A dataset of measures with pair splits.

    :param name: the dataset plugin's name.
    :param params: the parameters it was built with (part of every record).
    :param measures: all measures, ``(n, N)`` weights.
    :param pairs: split name -> :class:`PairSet`; at least ``train``, ``val`` and ``test``.
    :param labels: ``(n,)`` class labels, or None.
    :param metadata: anything else downstream metrics use (e.g. ``translations`` ``(n, 2)``).
    :param unit: the ground-cost unit of W2 (``"pixel"`` for images).
    """

    name: str
    params: Mapping[str, Any]
    measures: MeasureBatch
    pairs: Mapping[str, PairSet]
    labels: np.ndarray | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unit: str = "pixel"

    def split(self, name: str) -> LabelledPairs:
        """The measures together with the pairs of split ``name``."""
        if name not in self.pairs:
            raise KeyError(f"dataset {self.name!r} has no split {name!r}; it has {sorted(self.pairs)}")
        return LabelledPairs(self.measures, self.pairs[name])

    def with_pairs(self, pairs: Mapping[str, PairSet]) -> PairedDataset:
        """A copy with other pair sets (e.g. carrying ground truth)."""
        return replace(self, pairs=dict(pairs))

    @property
    def has_ground_truth(self) -> bool:
        return all(p.w2sq is not None for p in self.pairs.values())


class DatasetPlugin(ABC):
    """Base class of dataset plugins: build measures and pair indices (no distances).

    Subclasses take their options as keyword arguments in ``__init__`` and keep them in
    ``self.params``; :meth:`build` must be a pure function of those params (seeded).
    The exact distances are added by :func:`wbench.oracle.groundtruth.attach_ground_truth`.
    """

    name: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    @abstractmethod
    def build(self) -> PairedDataset:
        """Return the measures and the pair splits (``w2sq`` may be None)."""
