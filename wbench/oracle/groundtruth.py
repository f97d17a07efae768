"""Attach exact W2^2 ground truth to a dataset, through the verified cache.

* :func:`attach_ground_truth` fills ``w2sq`` of every pair split with one oracle call over
  the union of all splits' pairs (one cache entry; the splits are slices of it).
* :func:`exact_pairwise_w2sq` returns an exact ``(n, m)`` block (e.g. queries x database
  for the retrieval metric), cached the same way.

Cache keys are computed from exactly what the solver sees (the float64 supports and
masses of the measures involved, and the pair indices into them; see :mod:`wbench.oracle.cache`),
so rebuilding a dataset with the same content reuses its entry, and any change to a
measure, a pair or the oracle computes a new one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
import torch

import wbench
from wbench.data import PairedDataset, PairSet
from wbench.oracle.cache import CacheResult, PathLike, content_key, load_or_compute
from wbench.oracle.solve import COST_NAME, ORACLE_VERSION, solve_pairs
from wbench.oracle.supports import SupportTable, as_index_array, support_table

SEPARATE_SPLITS = ("unseen",)
"""Splits solved as a cache entry of their own (added after the first published runs)."""


@dataclass(frozen=True)
class GroundTruth:
    """A dataset with ground truth, and how it was obtained.

    :param dataset: the dataset, every split carrying ``w2sq``.
    :param cache: the cache lookup (``cache.hit``, ``cache.path``, ``cache.seconds``).
    :param n_pairs: pairs over all splits (before de-duplication).
    :param seconds: wall time of the whole call (support extraction, hashing, lookup, solve).
    :param backend: where the pairs were solved (:func:`wbench.oracle.solve.solve_pairs`'s
        ``on_backend``); ``""`` when nothing was solved (a cache hit).
    :param extra_caches: the lookup of the entry of :data:`SEPARATE_SPLITS` (``unseen``) when
        the dataset has them; ``cache`` is the entry of the other splits.
    """

    dataset: PairedDataset
    cache: CacheResult
    n_pairs: int
    seconds: float
    backend: str = ""
    extra_caches: tuple[CacheResult, ...] = ()


def oracle_key(table: SupportTable, left: np.ndarray, right: np.ndarray, *, kind: str) -> str:
    """The cache key of the oracle's values for pairs ``(left, right)`` into ``table``."""
    return content_key(
        {"oracle_version": ORACLE_VERSION, "cost": COST_NAME, "kind": kind},
        [table.offsets, table.masses, table.points, np.asarray(left, np.int64), np.asarray(right, np.int64)],
    )


def _meta(dataset: PairedDataset, table: SupportTable, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "oracle_version": ORACLE_VERSION,
        "cost": COST_NAME,
        "kind": kind,
        "dataset": dataset.name,
        "params": dict(dataset.params),
        "unit": dataset.unit,
        "n_measures": len(table),
        "wbench": wbench.__version__,
        "pot": ot.__version__,
        **extra,
    }


def compute_ground_truth(
    dataset: PairedDataset,
    *,
    cache_dir: PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    scheduler: str | None = None,
) -> GroundTruth:
    """Like :func:`attach_ground_truth`, also returning the cache path, hit flag and timings.

    The splits (train, val, test and any other a plugin makes) form one cache entry, keyed as
    they always were; the splits of :data:`SEPARATE_SPLITS` (``unseen``) form a second entry
    of their own, so adding them leaves the first entry's key unchanged. A dataset whose training pairs are a subset
    (``metadata["train_pairs_full"]`` and ``["train_subset"]``, the ``train_pairs`` parameter)
    solves the full training set (the entry of the full dataset) and keeps the subset's values.
    """
    start = time.perf_counter()
    full_train = dataset.metadata.get("train_pairs_full")
    base = {name: dataset.pairs[name] for name in dataset.pairs if name not in SEPARATE_SPLITS}
    if full_train is not None and "train" in base:
        base["train"] = full_train
    groups = [base, {name: pairs for name, pairs in dataset.pairs.items() if name in SEPARATE_SPLITS}]
    solved: dict[str, PairSet] = {}
    results: list[CacheResult] = []
    backend: list[str] = []
    n_pairs = 0
    for group in groups:
        if not group and results:
            continue
        values, result = _solve_group(dataset, group, cache_dir, n_jobs, progress, scheduler, backend)
        solved.update(values)
        results.append(result)
        n_pairs += sum(len(p) for p in group.values())
    if full_train is not None and "train" in solved:
        solved["train"] = solved["train"].subset(dataset.metadata["train_subset"])
    pairs = {name: solved[name] for name in dataset.pairs}
    return GroundTruth(dataset.with_pairs(pairs), results[0], n_pairs, time.perf_counter() - start,
                       "; ".join(backend), extra_caches=tuple(results[1:]))


def _solve_group(
    dataset: PairedDataset, group: dict[str, PairSet], cache_dir: PathLike | None, n_jobs: int, progress: bool,
    scheduler: str | None, backend: list[str],
) -> tuple[dict[str, PairSet], CacheResult]:
    """Exact W2^2 of the splits in ``group`` (split -> pairs), as one cache entry."""
    names = list(group)
    sizes = [len(group[name]) for name in names]
    left = np.concatenate([group[name].left for name in names]) if names else np.zeros(0, np.int64)
    right = np.concatenate([group[name].right for name in names]) if names else np.zeros(0, np.int64)
    ids, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    table = support_table(dataset.measures, ids, what=f"dataset {dataset.name!r}")
    local_left, local_right = local[: len(left)], local[len(left) :]
    result = load_or_compute(
        oracle_key(table, local_left, local_right, kind="pairs"),
        lambda: solve_pairs(
            table, local_left, local_right, n_jobs=n_jobs, progress=progress,
            desc=f"exact W2 ({dataset.name})", names=(left, right), scheduler=scheduler, on_backend=backend.append,
        ),
        cache_dir=cache_dir,
        shape=(len(left),),
        meta=_meta(dataset, table, "pairs", splits=dict(zip(names, sizes, strict=True))),
        spot_check=lambda values: spot_check(table, local_left, local_right, values),
    )
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return {name: group[name].with_w2sq(result.values[bounds[k] : bounds[k + 1]]) for k, name in enumerate(names)}, result


SPOT_CHECKS = 3
"""Pairs of a cached entry solved again each time it is read."""


def spot_check(table: SupportTable, left: np.ndarray, right: np.ndarray, values: np.ndarray) -> str | None:
    """What is wrong with cached ``values`` of the pairs ``(left, right)`` of ``table``: a few
    pairs (seeded by the values' count) solved again must agree to 1e-9 relative (None: they do)."""
    if len(values) == 0:
        return None
    picked = np.random.default_rng(len(values)).choice(len(values), size=min(SPOT_CHECKS, len(values)), replace=False)
    fresh = solve_pairs(table, left[picked], right[picked], n_jobs=1, progress=False)
    bad = [int(i) for i, v in zip(picked, fresh, strict=True) if not np.isclose(values[i], v, rtol=1e-9, atol=1e-12)]
    if not bad:
        return None
    i = bad[0]
    return (f"pair {i} holds W2^2 = {values[i]!r} but solves to {fresh[list(picked).index(i)]!r}: the entry's "
            "values are not the oracle's (forged with a recomputed checksum, or from another oracle)")


def attach_ground_truth(
    dataset: PairedDataset,
    *,
    cache_dir: PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    scheduler: str | None = None,
) -> PairedDataset:
    """Return ``dataset`` with exact W2^2 on every split's pairs (cached).

    Values already present are recomputed (from the cache when possible): the oracle is
    the single source of ground truth.

    :param cache_dir: cache folder (default ``$WBENCH_CACHE_DIR`` or ``~/.cache/wbench``).
    :param n_jobs: oracle worker processes (-1: all cores).
    :param progress: show a progress bar while solving.
    :param scheduler: a Dask scheduler address or scheduler file; None: the current
        executor, else ``$WBENCH_SCHEDULER``, else local (see :mod:`wbench.executor.base`). The
        cache is written here, by the client, never by the workers.
    :raises InvalidMeasureError: a measure in a pair has invalid masses.
    :raises OracleError: a pair's LP could not be solved to optimality.
    """
    return compute_ground_truth(
        dataset, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress, scheduler=scheduler
    ).dataset


@dataclass(frozen=True)
class BlockPlan:
    """An exact W2^2 block before it is solved: its cache key, shape and metadata.

    :param key: the cache key (content of the supports and the row and column indices).
    :param shape: ``(n, m)``.
    :param meta: the cache header's metadata.
    """

    key: str
    shape: tuple[int, int]
    meta: dict[str, Any]
    table: SupportTable
    ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    dataset_name: str

    def solve(self, *, n_jobs: int = -1, progress: bool = True, scheduler: str | None = None) -> np.ndarray:
        """The exact block ``(n, m)`` float64 (not cached)."""
        left = np.repeat(self.rows, len(self.cols))
        right = np.tile(self.cols, len(self.rows))
        names = (self.ids[left], self.ids[right])
        return solve_pairs(
            self.table, left, right, n_jobs=n_jobs, progress=progress, desc=f"exact W2 block ({self.dataset_name})",
            names=names, scheduler=scheduler,
        ).reshape(self.shape)


def plan_pairwise_block(
    dataset: PairedDataset, rows: Sequence[int] | np.ndarray | torch.Tensor, cols: Sequence[int] | np.ndarray | torch.Tensor
) -> BlockPlan:
    """The :class:`BlockPlan` of ``dataset.measures[rows]`` x ``[cols]`` (what
    :func:`exact_pairwise_w2sq` looks up or solves)."""
    n = len(dataset.measures)
    rows_arr, cols_arr = as_index_array(rows, n, "rows"), as_index_array(cols, n, "cols")
    ids, local = np.unique(np.concatenate([rows_arr, cols_arr]), return_inverse=True)
    table = support_table(dataset.measures, ids, what=f"dataset {dataset.name!r}")
    local_rows, local_cols = local[: len(rows_arr)], local[len(rows_arr) :]
    return BlockPlan(
        key=oracle_key(table, local_rows, local_cols, kind="block"),
        shape=(len(rows_arr), len(cols_arr)),
        meta=_meta(dataset, table, "block", rows=len(rows_arr), cols=len(cols_arr)),
        table=table, ids=ids, rows=local_rows, cols=local_cols, dataset_name=dataset.name,
    )


def exact_pairwise_w2sq(
    dataset: PairedDataset,
    rows: Sequence[int] | np.ndarray | torch.Tensor,
    cols: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    cache_dir: PathLike | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    scheduler: str | None = None,
) -> np.ndarray:
    """Exact W2^2 ``(len(rows), len(cols))`` between ``dataset.measures[rows]`` and ``[cols]`` (cached).

    :param rows: ``(n,)`` measure indices (e.g. queries).
    :param cols: ``(m,)`` measure indices (e.g. the database).
    :param scheduler: as for :func:`attach_ground_truth`.
    :returns: float64 W2^2 in squared ground-cost units.
    """
    plan = plan_pairwise_block(dataset, rows, cols)
    return load_or_compute(
        plan.key,
        lambda: plan.solve(n_jobs=n_jobs, progress=progress, scheduler=scheduler),
        cache_dir=cache_dir,
        shape=plan.shape,
        meta=plan.meta,
    ).values
