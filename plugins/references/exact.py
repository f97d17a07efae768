"""``exact-lp``: exact W2 by POT's network simplex (the oracle), parallel over pairs."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from wbench.measures import MeasureBatch
from wbench.oracle import OracleError, exact_w2sq_between, exact_w2sq_block, exact_w2sq_pair
from wbench.surrogate import concat_measures

from ._common import CountingSolver, check_aligned, measure_supports, w2_from_w2sq


class ExactLP(CountingSolver):
    """Exact W2 between discrete measures: the oracle (:mod:`wbench.oracle.solve`) as a method.

    Zero error by construction; it exists so that the exact solver's throughput is
    measured in the same way as every surrogate's. Each call extracts the supports once
    (zero masses dropped, float64) and solves the pairs with POT's network simplex in
    parallel through joblib (the oracle runs small jobs in-process: starting workers
    costs seconds). ``pairwise(x, y)`` solves all ``n * m`` pairs (symmetric duplicates
    once).

    Fit-time parameters
    -------------------
    n_jobs : int, default -1
        joblib workers (-1: all cores).
    num_iter_max : int, default 1_000_000
        network-simplex iteration budget per pair (the oracle retries a pair that hits it
        once with ten times the budget).

    Failure contract: when the LP of a pair is not optimal even after the retry, that
    pair is returned as NaN (never as a number) and counted in ``n_failed``
    (:meth:`describe`); ``n_evaluated`` counts every pair returned. Invalid measures
    (negative or non-finite masses) raise :class:`~wbench.errors.InvalidMeasureError`.
    """

    input_kind = "any"

    def __init__(self, *, n_jobs: int = -1, num_iter_max: int = 1_000_000) -> None:
        super().__init__(n_jobs=n_jobs, num_iter_max=num_iter_max)
        self.n_jobs = int(n_jobs)
        self.num_iter_max = int(num_iter_max)

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Exact W2 ``(B,)`` float64 between ``a[i]`` and ``b[i]`` (pixels for images); NaN marks a failure."""
        check_aligned(a, b)
        try:
            w2sq = exact_w2sq_between(a, b, n_jobs=self.n_jobs, num_iter_max=self.num_iter_max)
            ok = np.ones(len(w2sq), dtype=bool)
        except OracleError as exc:  # some pair failed: solve pair by pair to mark exactly those
            self.last_failure = str(exc)
            w2sq, ok = self._one_by_one(measure_supports(a), measure_supports(b), product=False)
        return self._count(w2_from_w2sq(w2sq, ok))

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """Exact W2 ``(n, m)`` float64 for all pairs ``x[i], y[j]``; NaN marks a failure."""
        n, m = len(x), len(y)
        try:
            both = concat_measures(x, y)
            w2sq = exact_w2sq_block(
                both, np.arange(n), n + np.arange(m), n_jobs=self.n_jobs, progress=False, num_iter_max=self.num_iter_max
            )
            ok = np.ones(w2sq.shape, dtype=bool)
        except OracleError as exc:
            self.last_failure = str(exc)
            w2sq, ok = self._one_by_one(measure_supports(x), measure_supports(y), product=True)
        return self._count(w2_from_w2sq(w2sq, ok))

    def _one_by_one(self, left: list, right: list, *, product: bool) -> tuple[np.ndarray, np.ndarray]:
        """Serial fallback after a failure: W2^2 and an ok mask, NaN for the failed pairs."""
        pairs = [(i, j) for i in range(len(left)) for j in range(len(right))] if product else [(i, i) for i in range(len(left))]
        values = np.full(len(pairs), np.nan)
        for p, (i, j) in enumerate(pairs):
            with contextlib.suppress(OracleError):
                values[p] = exact_w2sq_pair(*left[i], *right[j], num_iter_max=self.num_iter_max)
        shape = (len(left), len(right)) if product else (len(left),)
        return values.reshape(shape), np.isfinite(values).reshape(shape)

    def describe(self) -> dict[str, Any]:
        info = {"solver": "POT emd2 (network simplex) on the supports, via wbench.oracle.solve", "n_jobs": self.n_jobs}
        return {**info, **super().describe()}
