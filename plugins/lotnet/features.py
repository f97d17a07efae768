"""LOT features of measures against a fixed reference, with an optional per-measure cache.

The feature of a measure nu is the linear optimal transport embedding of
:mod:`wbench_plugins.references.lot`: ``e(nu)_i = sqrt(s_i) (T_nu(x_i) - x_i)`` for the
reference points ``x_i`` (masses ``s_i``), ``T_nu`` the barycentric projection of the exact
plan from the reference to nu. One exact LP (POT's network simplex) per measure.

:class:`FeatureCache` keys a measure by a hash of its content (its masses and support
points), so a measure met again in a later batch is not solved again. It is meant to live
for the duration of a fit only (see :class:`~wbench_plugins.lotnet.models.LOTResidual`).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from wbench.measures import MeasureBatch
from wbench_plugins.references._common import map_items, measure_supports
from wbench_plugins.references.lot import _SECONDS_PER_COST_ENTRY, _lot_embed


def lot_features(
    measures: MeasureBatch, ref_points: np.ndarray, ref_masses: np.ndarray, *, n_jobs: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled LOT features of every measure: one exact LP each.

    :param measures: B measures of dimension D (grid or point clouds).
    :param ref_points: ``(K, D)`` reference points, ground-cost units.
    :param ref_masses: ``(K,)`` reference masses summing to 1.
    :param n_jobs: worker processes for the LPs (-1: all cores; small batches run in-process).
    :returns: features ``(B, K * D)`` float64 in ground-cost units (NaN rows where the LP
        failed) and ``ok (B,)`` bool.
    :raises ValueError: the measures' dimension differs from the reference's.
    """
    if measures.dim != ref_points.shape[1]:
        raise ValueError(f"measures of dimension {measures.dim} do not match the LOT reference's {ref_points.shape[1]}")
    supports = measure_supports(measures)
    if not supports:
        return np.zeros((0, ref_points.size)), np.zeros(0, dtype=bool)
    fn = functools.partial(_lot_embed, ref_points=ref_points, ref_masses=ref_masses)
    mean_size = float(np.mean([len(w) for _, w in supports]))
    seconds = _SECONDS_PER_COST_ENTRY * len(ref_masses) * mean_size
    results = map_items(fn, supports, n_jobs=n_jobs, min_per_task=4, seconds_per_item=seconds)
    features = np.stack([e for e, _ in results])
    ok = np.array([good for _, good in results], dtype=bool)
    features[~ok] = np.nan
    return features, ok


def measure_keys(measures: MeasureBatch) -> list[bytes]:
    """A content key per measure (16-byte BLAKE2b digest).

    Grid batches hash each row of masses (with the dtype and a digest of the shared grid);
    point clouds hash their support points and masses after dropping zero masses, so the
    same cloud padded differently gets the same key.
    """
    if measures.support.ndim == 2:
        support = measures.support.detach().cpu().numpy()
        prefix = hashlib.blake2b(support.tobytes() + str(support.dtype).encode(), digest_size=16).digest()
        weights = np.ascontiguousarray(measures.weights.detach().cpu().numpy())
        tag = str(weights.dtype).encode()
        return [hashlib.blake2b(prefix + tag + row.tobytes(), digest_size=16).digest() for row in weights]
    return [
        hashlib.blake2b(points.tobytes() + masses.tobytes(), digest_size=16).digest()
        for points, masses in measure_supports(measures)
    ]


class FeatureCache:
    """LOT features by measure content: each distinct measure costs one LP, however often it is met.

    :param ref_points: ``(K, D)`` reference points.
    :param ref_masses: ``(K,)`` reference masses.
    :param n_jobs: worker processes for the LPs of the measures not yet cached.

    ``n_lp`` counts the LPs solved, ``n_hits`` the measures served from the cache.
    """

    def __init__(self, ref_points: np.ndarray, ref_masses: np.ndarray, *, n_jobs: int = 1) -> None:
        self.ref_points = ref_points
        self.ref_masses = ref_masses
        self.n_jobs = n_jobs
        self._store: dict[bytes, torch.Tensor] = {}
        self.n_lp = 0
        self.n_hits = 0
        self.n_failed = 0

    def __len__(self) -> int:
        return len(self._store)

    def features(self, measures: MeasureBatch) -> torch.Tensor:
        """Unscaled LOT features ``(B, K * D)`` float64 (CPU), solving only the measures not cached."""
        keys = measure_keys(measures)
        missing: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._store and key not in missing:
                missing[key] = i
        if missing:
            new, ok = lot_features(measures.index(list(missing.values())), self.ref_points, self.ref_masses, n_jobs=self.n_jobs)
            self.n_lp += len(missing)
            self.n_failed += int((~ok).sum())
            for key, row in zip(missing, torch.from_numpy(new), strict=True):
                self._store[key] = row
        self.n_hits += len(keys) - len(missing)
        if not keys:
            return torch.zeros((0, self.ref_points.size), dtype=torch.float64)
        return torch.stack([self._store[key] for key in keys])
