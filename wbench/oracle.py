"""Exact Wasserstein-2 (squared) between discrete measures, with POT's network simplex.

Each pair is solved on the supports of its two measures only (same value as the full
problem, far cheaper), in float64, with the squared Euclidean ground cost.
"""

from __future__ import annotations

import numpy as np
import ot
from joblib import Parallel, delayed

from wbench.measures import MeasureBatch


def exact_w2sq_pair(xa: np.ndarray, wa: np.ndarray, xb: np.ndarray, wb: np.ndarray, *, num_iter_max: int = 1_000_000) -> float:
    """Exact W2^2 between ``sum wa_i delta(xa_i)`` and ``sum wb_j delta(xb_j)``.

    :param xa: ``(n, D)`` support points (ground-cost units); :param wa: ``(n,)`` masses summing to 1.
    :param xb: ``(m, D)``; :param wb: ``(m,)``.
    :returns: W2^2 in squared ground-cost units.
    """
    cost = ot.dist(xa, xb, metric="sqeuclidean")
    return float(ot.emd2(wa, wb, cost, numItermax=num_iter_max))


def _solve_chunk(measures: MeasureBatch, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    out = np.empty(len(left))
    for k, (i, j) in enumerate(zip(left, right, strict=True)):
        xa, wa = measures.measure(int(i))
        xb, wb = measures.measure(int(j))
        out[k] = exact_w2sq_pair(xa, wa, xb, wb)
    return out


def exact_w2sq(measures: MeasureBatch, left: np.ndarray, right: np.ndarray, *, n_jobs: int = -1, chunk: int = 256) -> np.ndarray:
    """Exact W2^2 ``(P,)`` for the pairs ``(left[p], right[p])`` of ``measures``, in parallel."""
    left, right = np.asarray(left), np.asarray(right)
    measures = measures.to("cpu")
    starts = range(0, len(left), chunk)
    parts = Parallel(n_jobs=n_jobs)(delayed(_solve_chunk)(measures, left[s : s + chunk], right[s : s + chunk]) for s in starts)
    return np.concatenate(parts) if parts else np.zeros(0)
