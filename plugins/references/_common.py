"""Machinery shared by the reference solvers: supports, the parallel pair map, failure counts.

Private to :mod:`wbench_plugins.references`.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from wbench.data import LabelledPairs
from wbench.executor import executor_for, map_ordered
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport, InputKind, Solver, pairwise_euclidean

Support = tuple[np.ndarray, np.ndarray]
"""One measure restricted to its support: ``(points (k, D) float64, masses (k,) float64)``."""

PairFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[float, bool]]
"""``f(xa, wa, xb, wb) -> (value, ok)``; must be picklable (a module-level function or a
``functools.partial`` of one) because it runs in joblib workers."""

CHUNKS_PER_WORKER = 4
"""Tasks per worker process: enough to balance uneven pairs, few enough to amortise dispatch."""

PARALLEL_MIN_SECONDS = 2.0
"""Work estimated below this many single-core seconds runs in-process: starting joblib's
workers costs seconds (each imports POT and torch); they are reused afterwards."""


def measure_supports(batch: MeasureBatch) -> list[Support]:
    """Every measure of ``batch`` restricted to its support, in float64.

    Same result as ``[batch.measure(i) for i in range(len(batch))]`` (zero masses dropped,
    masses renormalised in float64), with one device transfer for the whole batch.
    """
    weights = batch.weights.detach().cpu().double().numpy()
    support = batch.support.detach().cpu().double().numpy()
    out: list[Support] = []
    for i in range(weights.shape[0]):
        w = weights[i]
        keep = w > 0
        pts = support[keep] if support.ndim == 2 else support[i][keep]
        kept = w[keep]
        out.append((pts, kept / kept.sum()))
    return out


def _aligned_chunk(fn: PairFn, left: Sequence[Support], right: Sequence[Support]) -> tuple[np.ndarray, np.ndarray]:
    values = np.empty(len(left))
    ok = np.empty(len(left), dtype=bool)
    for k, ((xa, wa), (xb, wb)) in enumerate(zip(left, right, strict=True)):
        values[k], ok[k] = fn(xa, wa, xb, wb)
    return values, ok


def _product_block(fn: PairFn, rows: Sequence[Support], cols: Sequence[Support]) -> tuple[np.ndarray, np.ndarray]:
    values = np.empty((len(rows), len(cols)))
    ok = np.empty((len(rows), len(cols)), dtype=bool)
    for i, (xa, wa) in enumerate(rows):
        for j, (xb, wb) in enumerate(cols):
            values[i, j], ok[i, j] = fn(xa, wa, xb, wb)
    return values, ok


def _n_tasks(n_items: int, n_jobs: int, min_per_task: int, seconds: float | None = None) -> int:
    if n_items < 2 * min_per_task or (seconds is not None and seconds < PARALLEL_MIN_SECONDS):
        return 1
    with executor_for(None, n_jobs) as executor:  # the current one (a Dask cluster), or local n_jobs
        workers = executor.n_workers
    if workers <= 1:
        return 1
    return max(1, min(workers * CHUNKS_PER_WORKER, n_items // min_per_task))


def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return func(*args)


def _run(tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]], n_jobs: int) -> list[Any]:
    """Run ``func(*args)`` for each task, in order, through the current executor
    (:mod:`wbench.executor.base`: local processes, or a Dask cluster)."""
    if len(tasks) == 1:
        func, args = tasks[0]
        return [func(*args)]
    with executor_for(None, n_jobs) as executor:
        return map_ordered(executor, _call, tasks, name="wbench-reference")


def map_aligned(
    fn: PairFn, left: Sequence[Support], right: Sequence[Support], *, n_jobs: int = -1, min_per_task: int = 16,
    seconds_per_entry: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` on the row-aligned pairs ``(left[p], right[p])``, in parallel chunks.

    :param seconds_per_entry: rough single-core cost per cost-matrix entry; when the total
        is below :data:`PARALLEL_MIN_SECONDS` the pairs run in-process.
    :returns: ``values (P,)`` float64 and ``ok (P,)`` bool.
    """
    n = len(left)
    if n != len(right):
        raise ValueError(f"row-aligned pairs need equal lengths, got {n} and {len(right)}")
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    seconds = None
    if seconds_per_entry is not None:
        seconds = seconds_per_entry * sum(len(wa) * len(wb) for (_, wa), (_, wb) in zip(left, right, strict=True))
    bounds = np.linspace(0, n, _n_tasks(n, n_jobs, min_per_task, seconds) + 1).astype(int)
    tasks = [(_aligned_chunk, (fn, left[s:e], right[s:e])) for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e > s]
    parts = _run(tasks, n_jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def map_product(
    fn: PairFn, rows: Sequence[Support], cols: Sequence[Support], *, n_jobs: int = -1, min_per_task: int = 16,
    seconds_per_entry: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` on every pair ``(rows[i], cols[j])``, in parallel blocks of rows.

    Each support is extracted once by the caller and shipped once per block.

    :returns: ``values (n, m)`` float64 and ``ok (n, m)`` bool.
    """
    n, m = len(rows), len(cols)
    if n == 0 or m == 0:
        return np.zeros((n, m)), np.zeros((n, m), dtype=bool)
    seconds = None
    if seconds_per_entry is not None:
        seconds = seconds_per_entry * sum(len(w) for _, w in rows) * sum(len(w) for _, w in cols)
    n_blocks = min(n, _n_tasks(n * m, n_jobs, min_per_task, seconds))
    bounds = np.linspace(0, n, n_blocks + 1).astype(int)
    tasks = [(_product_block, (fn, rows[s:e], cols)) for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e > s]
    parts = _run(tasks, n_jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def map_items(
    fn: Callable[[np.ndarray, np.ndarray], Any], items: Sequence[Support], *, n_jobs: int = -1, min_per_task: int = 8,
    seconds_per_item: float | None = None,
) -> list[Any]:
    """``fn(points, masses)`` on every measure, in parallel chunks; results in input order."""
    if not items:
        return []
    seconds = None if seconds_per_item is None else seconds_per_item * len(items)
    bounds = np.linspace(0, len(items), _n_tasks(len(items), n_jobs, min_per_task, seconds) + 1).astype(int)
    tasks = [(_items_chunk, (fn, items[s:e])) for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e > s]
    return [r for part in _run(tasks, n_jobs) for r in part]


def _items_chunk(fn: Callable[[np.ndarray, np.ndarray], Any], items: Sequence[Support]) -> list[Any]:
    return [fn(x, w) for x, w in items]


def check_aligned(a: MeasureBatch, b: MeasureBatch) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` hold the same number of measures."""
    if len(a) != len(b):
        raise ValueError(f"distance needs row-aligned batches, got {len(a)} and {len(b)} measures")


def w2_from_w2sq(w2sq: np.ndarray, ok: np.ndarray) -> torch.Tensor:
    """W2 ``sqrt(max(w2sq, 0))`` as a float64 tensor, NaN where ``ok`` is False or the value is not finite."""
    w2sq = np.asarray(w2sq, dtype=np.float64)
    good = np.asarray(ok, dtype=bool) & np.isfinite(w2sq)
    out = np.full(w2sq.shape, np.nan)
    out[good] = np.sqrt(np.maximum(w2sq[good], 0.0))
    return torch.from_numpy(out)


class CountingSolver(Solver):
    """A :class:`~wbench.surrogate.Solver` that counts the pairs it failed on.

    Contract shared by every reference solver: a pair whose solver did not converge, or
    whose value is not finite, is returned as NaN (never as a number) and counted in
    ``n_failed``; ``n_evaluated`` counts every pair returned. Both appear in
    :meth:`describe`. The evaluation drops and counts the NaN pairs.
    """

    input_kind: ClassVar[InputKind] = "any"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.n_failed = 0
        self.n_evaluated = 0
        self.last_failure = ""

    def _count(self, w2: torch.Tensor) -> torch.Tensor:
        bad = int((~torch.isfinite(w2)).sum())
        self.n_failed += bad
        self.n_evaluated += int(w2.numel())
        return w2

    def reset_counts(self) -> None:
        """Zero ``n_failed`` and ``n_evaluated``."""
        self.n_failed = self.n_evaluated = 0
        self.last_failure = ""

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"n_failed": self.n_failed, "n_evaluated": self.n_evaluated}
        info["failure_rate"] = self.n_failed / self.n_evaluated if self.n_evaluated else 0.0
        if self.last_failure:
            info["last_failure"] = self.last_failure
        return info


class EmbeddingSolver(CountingSolver):
    """A solver ``d(x, y) = scale * |embed_unscaled(x) - embed_unscaled(y)|`` with no trainable parameters.

    Its class is ``untrained`` (an embedding with nothing to learn; a reference row on boards).

    Subclasses implement :meth:`embed_unscaled` (and may override :meth:`prepare`, which
    fixes whatever the embedding needs from the training measures). :meth:`distance`
    embeds both sides; :meth:`pairwise` embeds each measure once and computes one
    distance matrix.

    Fit-time parameters shared by every embedding solver:

    * ``fit_scale`` (default True): in :meth:`fit`, fit one scale ``s`` by least squares
      on up to ``scale_pairs`` training pairs, ``s = sum(d_p w_p) / sum(d_p^2)`` with
      ``d_p`` the unscaled distance and ``w_p`` the exact W2. Without training labels, or
      with ``fit_scale=False``, ``s = 1`` (the unscaled distance).
    * ``scale_pairs`` (default 1,000): how many training pairs (a seeded random subset)
      the scale is fitted on.
    """

    method_class: ClassVar[str] = "untrained"

    metric_by_construction: ClassVar[bool] = True  # a scaled Euclidean distance of embeddings

    pairwise_chunk: ClassVar[int] = 4096
    evaluate_on_all_pairs: ClassVar[bool] = True
    SCALE_SEED: ClassVar[int] = 0

    def __init__(self, *, fit_scale: bool = True, scale_pairs: int = 1000, **params: Any) -> None:
        if int(scale_pairs) < 1:
            raise ValueError(f"scale_pairs must be a positive number of pairs, got {scale_pairs!r}")
        super().__init__(fit_scale=fit_scale, scale_pairs=scale_pairs, **params)
        self.fit_scale = bool(fit_scale)
        self.scale_pairs = int(scale_pairs)
        self.scale = 1.0

    @abstractmethod
    def embed_unscaled(self, x: MeasureBatch) -> torch.Tensor:
        """Embeddings ``(B, k)`` float64; the Euclidean distance between rows is the unscaled estimate of W2."""

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """Embeddings ``(B, k)`` float64 times the fitted scale: row distances estimate W2 (ground-cost units)."""
        emb = self.embed_unscaled(x)
        return emb if self.scale == 1.0 else emb * self.scale

    def prepare(self, train: LabelledPairs) -> dict[str, Any]:
        """Fix what the embedding needs from the training measures; returns readouts for the fit report."""
        return {}

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Any) -> FitReport:
        """:meth:`prepare` on the training measures, then the least-squares scale (see the class docstring).

        The report's ``wall_time_s`` is the whole fit (seconds); ``extra`` holds ``scale``
        and ``scale_pairs`` (pairs it was fitted on, 0 when not fitted) and the
        :meth:`prepare` readouts.
        """
        start = time.perf_counter()
        extra = dict(self.prepare(train))
        self.scale = 1.0
        used = 0
        if self.fit_scale and train.pairs.w2sq is not None and len(train.pairs):
            self.scale, used = self._least_squares_scale(train)
        extra.update(scale=self.scale, scale_pairs=used)
        stopped = "scale fitted" if used else "nothing to fit"
        return FitReport(stopped_by=stopped, wall_time_s=time.perf_counter() - start, extra=extra)

    def _least_squares_scale(self, train: LabelledPairs) -> tuple[float, int]:
        n = len(train.pairs)
        chosen = np.arange(n)
        if n > self.scale_pairs:
            chosen = np.sort(np.random.default_rng(self.SCALE_SEED).permutation(n)[: self.scale_pairs])
        pairs = train.pairs.subset(chosen)
        ids, local = np.unique(np.concatenate([pairs.left, pairs.right]), return_inverse=True)
        emb = self.embed_unscaled(train.measures.index(ids)).double()
        d = (emb[local[: len(chosen)]] - emb[local[len(chosen) :]]).pow(2).sum(dim=1).sqrt().numpy()
        w = np.sqrt(np.maximum(np.asarray(pairs.w2sq, dtype=np.float64), 0.0))
        good = np.isfinite(d) & np.isfinite(w)
        denominator = float(np.sum(d[good] ** 2))
        if not good.any() or denominator == 0.0:
            return 1.0, 0
        return float(np.sum(d[good] * w[good]) / denominator), int(good.sum())

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """``(B,)`` float64 distances between the embeddings of ``a[i]`` and ``b[i]``; NaN marks a failure."""
        check_aligned(a, b)
        ea, eb = self.embed(a), self.embed(b)
        return self._count((ea - eb).pow(2).sum(dim=1).sqrt())

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """``(n, m)`` float64 distances; each measure is embedded once."""
        out = pairwise_euclidean(self.embed(x), self.embed(y), chunk=self.pairwise_chunk)
        return self._count(out)

    def describe(self) -> dict[str, Any]:
        return {"scale": self.scale, "fit_scale": self.fit_scale, **super().describe()}


def lattice(lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """About ``size`` points on a regular lattice filling the box ``[lo, hi]``: ``(K, D)``."""
    dim = len(lo)
    per_axis = max(1, round(size ** (1.0 / dim)))
    axes = [np.linspace(lo[d], hi[d], per_axis) if hi[d] > lo[d] else np.array([lo[d]]) for d in range(dim)]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.reshape(-1) for g in grid], axis=1)
