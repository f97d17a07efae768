"""Pair sampling and train / val / test splits shared by every built-in dataset.

Two protocols, one mechanism:

- :func:`class_combination_splits` (``mnist``, ``digits``; the DeepKENN protocol): for
  every class combination ``(a, b)`` with ``a <= b``, ``per_combination`` distinct random
  pairs whose left measure has class ``a`` and right measure class ``b``.
- :func:`random_pair_splits` (``shapes``, ``distributions``): ``n_pairs`` distinct random
  pairs ``i != j``.

Either way the pair *slots* are shuffled and cut into train / val / test by
:func:`split_sizes`, so every split holds a random share of every combination.

With ``pools`` (from :func:`partition`) the measures themselves are first partitioned
into train / val / test groups and each split's pairs are drawn inside its own group only:
no measure of a val or test pair occurs in any training pair (``split="image-disjoint"``).

Pairs are distinct as unordered pairs within a dataset and never pair a measure with
itself. Everything is a pure function of its arguments and the generator's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wbench.data import SPLITS, PairSet

DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)
"""Pair fractions (train, val, test): the DeepKENN paper's 49,500 / 2,750 / 2,750 of 55,000."""

DEFAULT_POOL_FRACTIONS = (0.8, 0.1, 0.1)
"""Measure fractions (train, val, test) of the disjoint split's measure groups."""

_ROUNDING = 1e-9  # absorbs 0.9 * 550 = 494.99999... before the floor


def check_fractions(fractions: Sequence[float], what: str = "fractions") -> tuple[float, float, float]:
    """Validate ``(train, val, test)`` fractions: three non-negative numbers summing to 1.

    :returns: the fractions as a tuple of floats.
    :raises ValueError: naming the problem.
    """
    problem = ValueError(f"{what} must be three numbers (train, val, test), got {fractions!r}")
    if isinstance(fractions, str | bytes):
        raise problem
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise problem from None
    if len(values) != 3:
        raise problem
    if not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(f"{what} must be finite and non-negative, got {fractions!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"{what} must sum to 1, got {fractions!r} (sum {sum(values):.6g})")
    return values  # type: ignore[return-value]


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of the train / val / test parts of ``n`` items.

    Rounding rule: ``train = floor(f_train * n)``, ``val = floor(f_val * n)`` and test takes
    the rest, so test gets the rounding surplus. Examples with (0.9, 0.05, 0.05):
    55,000 -> 49,500 / 2,750 / 2,750; 2,200 -> 1,980 / 110 / 110; 550 -> 495 / 27 / 28.
    """
    f_train, f_val, _ = check_fractions(fractions)
    n_train = int(np.floor(f_train * n + _ROUNDING))
    n_val = int(np.floor(f_val * n + _ROUNDING))
    return n_train, n_val, n - n_train - n_val


def partition(
    rng: np.random.Generator,
    n: int,
    fractions: Sequence[float] = DEFAULT_POOL_FRACTIONS,
    *,
    labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Partition measures ``0..n-1`` into train / val / test groups (sorted index arrays).

    With ``labels`` the partition is stratified: each class is cut separately with
    :func:`split_sizes`, so every group holds every class.
    """
    strata = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    groups: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for members in strata:
        shuffled = members[rng.permutation(len(members))]
        n_train, n_val, _ = split_sizes(len(members), fractions)
        for split, part in zip(SPLITS, np.split(shuffled, [n_train, n_train + n_val]), strict=True):
            groups[split].append(part)
    return {split: np.sort(np.concatenate(parts)) for split, parts in groups.items()}


@dataclass(frozen=True)
class _Kind:
    """Where the pairs of one kind come from: left from ``left``, right from ``right``.

    ``same`` means both sides come from one set (pairs are then unordered and ``i != j``).
    """

    name: str
    left: np.ndarray
    right: np.ndarray
    same: bool


def _draw_distinct(
    rng: np.random.Generator, kind: _Kind, m: int, where: str, *, hint: str
) -> tuple[np.ndarray, np.ndarray]:
    """``m`` distinct pairs of ``kind`` (rejection sampling: fast while m << capacity)."""
    na, nb = len(kind.left), len(kind.right)
    capacity = na * (na - 1) // 2 if kind.same else na * nb
    if m > capacity:
        raise ValueError(
            f"cannot draw {m} distinct pairs of {kind.name} from {where}: only {capacity} exist "
            f"({na} and {nb} measures); {hint}"
        )
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    n_ids = int(max(kind.left.max(), kind.right.max())) + 1
    left = np.zeros(0, np.int64)
    right = np.zeros(0, np.int64)
    keys = np.zeros(0, np.int64)
    while len(keys) < m:
        need = m - len(keys)
        i = kind.left[rng.integers(0, na, size=2 * need + 16)]
        j = kind.right[rng.integers(0, nb, size=2 * need + 16)]
        if kind.same:
            keep = i != j
            i, j = i[keep], j[keep]
        key = np.minimum(i, j) * n_ids + np.maximum(i, j)
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)  # first occurrences, in draw order
        fresh = first[~np.isin(key[first], keys)][:need]
        left, right, keys = np.r_[left, i[fresh]], np.r_[right, j[fresh]], np.r_[keys, key[fresh]]
    return left, right


def _make_splits(
    rng: np.random.Generator,
    kinds: Sequence[_Kind],
    per_kind: int,
    fractions: Sequence[float],
    pools: Mapping[str, np.ndarray] | None,
    hint: str,
) -> dict[str, PairSet]:
    """Shuffle ``per_kind`` pair slots of each kind into the splits, then fill the slots."""
    n_slots = per_kind * len(kinds)
    sizes = split_sizes(n_slots, fractions)
    for split, size in zip(SPLITS, sizes, strict=True):
        if size == 0:
            raise ValueError(
                f"split {split!r} would get no pairs: {n_slots} pairs cut by fractions "
                f"{tuple(fractions)} give {sizes[0]} / {sizes[1]} / {sizes[2]}; ask for more pairs"
            )
    slot_kind = np.repeat(np.arange(len(kinds)), per_kind)
    order = rng.permutation(n_slots)
    segments = np.split(order, np.cumsum(sizes)[:-1])
    left = np.empty(n_slots, np.int64)
    right = np.empty(n_slots, np.int64)
    if pools is None:
        for k, kind in enumerate(kinds):
            slots = np.flatnonzero(slot_kind == k)
            left[slots], right[slots] = _draw_distinct(rng, kind, len(slots), "all measures", hint=hint)
    else:
        slot_split = np.empty(n_slots, np.int64)
        for s, segment in enumerate(segments):
            slot_split[segment] = s
        for s, split in enumerate(SPLITS):
            pool = pools[split]
            for k, kind in enumerate(kinds):
                slots = np.flatnonzero((slot_kind == k) & (slot_split == s))
                local = _Kind(kind.name, np.intersect1d(kind.left, pool), np.intersect1d(kind.right, pool), kind.same)
                left[slots], right[slots] = _draw_distinct(rng, local, len(slots), f"the {split!r} measure group", hint=hint)
    return {split: PairSet(left[seg], right[seg]) for split, seg in zip(SPLITS, segments, strict=True)}


def class_combinations(labels: np.ndarray) -> list[tuple[int, int]]:
    """The class combinations ``(a, b)``, ``a <= b``, of the classes present in ``labels``."""
    classes = [int(c) for c in np.unique(labels)]
    return [(a, b) for i, a in enumerate(classes) for b in classes[i:]]


def class_combination_splits(
    rng: np.random.Generator,
    labels: np.ndarray,
    per_combination: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    pools: Mapping[str, np.ndarray] | None = None,
) -> dict[str, PairSet]:
    """The DeepKENN protocol: ``per_combination`` pairs for each class combination, split.

    :param labels: ``(n,)`` integer class of each measure.
    :param per_combination: pairs per combination ``(a, b)``, ``a <= b``; the left measure
        has class ``a`` and the right one class ``b``.
    :param fractions: (train, val, test) fractions of all pairs, cut by :func:`split_sizes`.
    :param pools: optional disjoint measure groups per split (:func:`partition`).
    :returns: split name -> :class:`PairSet` without distances.
    :raises ValueError: a class has too few measures for the requested distinct pairs.
    """
    labels = np.asarray(labels)
    members = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    kinds = [
        _Kind(f"classes ({a}, {b})", members[a], members[b], a == b) for a, b in class_combinations(labels)
    ]
    hint = "use more images (n_images) or fewer pairs_per_combination"
    return _make_splits(rng, kinds, per_combination, fractions, pools, hint)


def random_pair_splits(
    rng: np.random.Generator,
    n_measures: int,
    n_pairs: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    pools: Mapping[str, np.ndarray] | None = None,
) -> dict[str, PairSet]:
    """``n_pairs`` distinct random pairs ``i != j`` of ``n_measures`` measures, split.

    :param pools: optional disjoint measure groups per split (:func:`partition`).
    :returns: split name -> :class:`PairSet` without distances.
    """
    everything = np.arange(n_measures)
    kinds = [_Kind("measures", everything, everything, True)]
    return _make_splits(rng, kinds, n_pairs, fractions, pools, "use more measures or fewer pairs")


def seed_streams(seed: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``seed`` (one per stage of a build), so that
    e.g. changing the number of pairs does not change which measures are drawn."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def unseen_pairs(
    rng: np.random.Generator, like: PairSet, labels: np.ndarray, pool: np.ndarray, pool_labels: np.ndarray
) -> PairSet:
    """Pairs of never-paired measures with the class combinations of ``like`` (the test pairs).

    For every class combination ``(a, b)`` that occurs ``k`` times in ``like``, ``k`` distinct
    pairs whose left measure has class ``a`` and right measure class ``b``, both from ``pool``;
    the pairs come back in a seeded random order. The result has ``len(like)`` pairs.

    :param like: ``(P,)`` pairs whose class combinations are copied.
    :param labels: ``(n,)`` class of each measure ``like`` indexes.
    :param pool: ``(m,)`` indices (in the caller's numbering) of the measures to pair.
    :param pool_labels: ``(m,)`` class of each pool measure.
    :raises ValueError: a class has too few pool measures for its pairs (naming the classes).
    """
    a, b = labels[like.left], labels[like.right]
    combos, counts = np.unique(np.stack([a, b], axis=1), axis=0, return_counts=True)
    left, right = [], []
    for (ca, cb), k in zip(combos.tolist(), counts.tolist(), strict=True):
        kind = _Kind(f"classes ({ca}, {cb})", pool[pool_labels == ca], pool[pool_labels == cb], ca == cb)
        i, j = _draw_distinct(rng, kind, int(k), "the unseen pool", hint="too few images occur in no pair")
        left.append(i)
        right.append(j)
    order = rng.permutation(len(like))
    return PairSet(np.concatenate(left)[order], np.concatenate(right)[order])
