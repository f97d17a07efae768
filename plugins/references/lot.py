"""``lot``: the linear optimal transport embedding (Wang et al. 2013; Moosmüller & Cloninger 2020)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import ot
import torch

from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch

from ._common import EmbeddingSolver, lattice, map_items, measure_supports

REFERENCES = ("grid", "mean")
_SECONDS_PER_COST_ENTRY = 6e-8
"""Rough single-core network-simplex time per cost-matrix entry (decides whether to start workers)."""


def _lot_embed(points: np.ndarray, masses: np.ndarray, *, ref_points: np.ndarray, ref_masses: np.ndarray) -> tuple[np.ndarray, bool]:
    """``sqrt(s_i) * (T(x_i) - x_i)`` flattened, T the barycentric projection of the exact plan.

    :returns: the embedding ``(K * D,)`` and whether the LP reported an optimal plan.
    """
    cost = ot.dist(ref_points, points, metric="sqeuclidean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan, log = ot.emd(ref_masses, masses, cost, numItermax=10_000_000, log=True)
    ok = int(log.get("result_code", 1)) == 1
    target = plan @ points / ref_masses[:, None]
    emb = np.sqrt(ref_masses)[:, None] * (target - ref_points)
    return emb.reshape(-1), ok and bool(np.all(np.isfinite(emb)))


def _typical_spacing(points: np.ndarray) -> float:
    """Median distance from each point to its nearest neighbour (the jitter unit of cloud references)."""
    if len(points) < 2:
        return 1.0
    d = ot.dist(points, points, metric="euclidean")
    np.fill_diagonal(d, np.inf)
    spacing = float(np.median(d.min(axis=1)))
    return spacing if np.isfinite(spacing) and spacing > 0 else 1.0


class LOT(EmbeddingSolver):
    """Linear optimal transport: W2 by one exact plan per measure from a fixed reference.

    A measure nu is embedded as ``e(nu)_i = sqrt(s_i) (T_nu(x_i) - x_i)`` for the reference
    points ``x_i`` with masses ``s_i``, where ``T_nu(x_i) = sum_j P_ij y_j / s_i`` is the
    barycentric projection of the exact OT plan ``P`` (``ot.emd``) from the reference to
    nu. Then ``|e(mu) - e(nu)|`` approximates W2(mu, nu) and ``|e(nu)| = W2(ref, nu)``
    whenever the plan is a map. n measures cost n LPs (not n^2); the embedding has
    ``K * D`` coordinates. It is exact for translations (the plan to a translate is the
    same plan, so the maps differ by the translation), and for dilations about the
    origin when the plan does not split the reference's masses.

    Reference (fit-time ``reference``, fixed in :meth:`fit` from the training measures):

    * ``"mean"`` (default): the average of the training measures. For images, the mean
      image kept to its ``reference_size`` heaviest pixels (default 200; None keeps every
      pixel where the mean is positive), renormalised. For point clouds, whose supports
      differ, the mixture of the training clouds compressed to ``reference_size`` points
      (default 256) by weighted k-means (scikit-learn, seeded), each point carrying the
      mass of its cluster.
    * ``"grid"`` (needs no training data): the uniform measure on a lattice. For images
      it is the pixel grid itself (``reference_size`` None) or a lattice of about
      ``reference_size`` points over the same box; for point clouds, a lattice of about
      ``reference_size`` (default 256) points over the bounding box of the training
      measures, or else of the first batch embedded, then kept.

    Either way the reference points are moved by a seeded jitter of ``jitter`` lattice
    spacings (pixels) so that they lie in general position: on an exact lattice the
    optimal plan to an image is rarely unique, and the LP's choice among optimal plans
    would make the embedding (and the translation error) depend on pivoting order.

    The distance is scaled by the least-squares scale of :class:`EmbeddingSolver`
    (``fit_scale``, ``scale_pairs``). The reference is fixed once set, so ``embed`` is a
    pure function of the measure. ``n_parameters`` is 0.

    Failure contract: a measure whose LP is not solved to optimality gets a NaN
    embedding; each distance involving it is NaN and counted in ``n_failed``
    (:meth:`describe`), with ``n_evaluated`` counting every distance returned.
    """

    input_kind = "any"

    def __init__(
        self,
        *,
        reference: str = "mean",
        reference_size: int | None = 200,
        jitter: float = 0.1,
        seed: int = 0,
        n_jobs: int = -1,
        fit_scale: bool = True,
        scale_pairs: int = 1000,
    ) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if not 0 <= jitter < 0.5:
            raise ValueError(f"jitter must lie in [0, 0.5) lattice spacings, got {jitter!r}")
        if reference_size is not None and int(reference_size) < 1:
            raise ValueError(f"reference_size must be a positive number of points or None, got {reference_size!r}")
        super().__init__(
            reference=reference, reference_size=reference_size, jitter=jitter, seed=seed, n_jobs=n_jobs,
            fit_scale=fit_scale, scale_pairs=scale_pairs,
        )
        self.reference = reference
        self.reference_size = None if reference_size is None else int(reference_size)
        self.jitter = float(jitter)
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.ref_points: np.ndarray | None = None
        self.ref_masses: np.ndarray | None = None
        self.n_lp_failed = 0

    # ---------------------------------------------------------------- reference
    def prepare(self, train: LabelledPairs) -> dict[str, Any]:
        """Fix the reference from the measures used by the training pairs (all measures when there are none)."""
        used = np.unique(np.concatenate([train.pairs.left, train.pairs.right]))
        measures = train.measures.index(used) if len(used) else train.measures
        self.set_reference_from(measures)
        assert self.ref_masses is not None
        return {"reference": self.reference, "reference_points": int(len(self.ref_masses))}

    def set_reference_from(self, measures: MeasureBatch) -> None:
        """Build and fix the reference from ``measures`` (see the class docstring)."""
        if len(measures) == 0:
            raise ValueError("the LOT reference needs at least one measure")
        spacing = 1.0
        if self.reference == "mean" and measures.is_grid:
            points, masses = self._mean_image(measures)
        elif self.reference == "mean":
            points, masses = self._mean_cloud(measures)
            spacing = _typical_spacing(points)
        elif measures.is_grid and self.reference_size is None:
            points = measures.support.detach().cpu().double().numpy()
            masses = np.full(len(points), 1.0 / len(points))
        else:
            if measures.is_grid:
                grid = measures.support.detach().cpu().double().numpy()
                lo, hi = grid.min(axis=0), grid.max(axis=0)
            else:
                supports = measure_supports(measures)
                lo = np.min([x.min(axis=0) for x, _ in supports], axis=0)
                hi = np.max([x.max(axis=0) for x, _ in supports], axis=0)
            points = lattice(lo, hi, self.reference_size or 256)
            masses = np.full(len(points), 1.0 / len(points))
            steps = [np.diff(np.unique(points[:, d])) for d in range(points.shape[1])]
            spacing = min((float(s.min()) for s in steps if len(s)), default=1.0)
        rng = np.random.default_rng(self.seed)
        self.ref_points = points + rng.uniform(-self.jitter, self.jitter, size=points.shape) * spacing
        self.ref_masses = masses

    def _mean_image(self, measures: MeasureBatch) -> tuple[np.ndarray, np.ndarray]:
        """The mean image on its ``reference_size`` heaviest positive pixels: ``(K, D)`` points, ``(K,)`` masses."""
        weights = measures.weights.detach().double().cpu()
        mean = (weights / weights.sum(dim=1, keepdim=True)).mean(dim=0).numpy()
        order = np.argsort(-mean, kind="stable")
        order = order[mean[order] > 0]
        if self.reference_size is not None:
            order = np.sort(order[: self.reference_size])
        points = measures.support.detach().cpu().double().numpy()[order]
        masses = mean[order] / mean[order].sum()
        return points, masses

    def _mean_cloud(self, measures: MeasureBatch) -> tuple[np.ndarray, np.ndarray]:
        """The mixture of the clouds, compressed by weighted k-means: ``(K, D)`` centres, ``(K,)`` masses."""
        from sklearn.cluster import KMeans

        supports = measure_supports(measures)
        points = np.concatenate([x for x, _ in supports])
        masses = np.concatenate([w for _, w in supports]) / len(supports)
        distinct = np.unique(points, axis=0)
        k = min(self.reference_size or 256, len(distinct))
        if k == len(distinct):  # nothing to compress: the mixture itself
            inverse = np.unique(points, axis=0, return_inverse=True)[1].reshape(-1)
            return distinct, np.bincount(inverse, weights=masses, minlength=k)
        km = KMeans(n_clusters=k, n_init=1, random_state=self.seed).fit(points, sample_weight=masses)
        cluster_mass = np.bincount(km.labels_, weights=masses, minlength=k)
        keep = cluster_mass > 0
        return km.cluster_centers_[keep].astype(np.float64), cluster_mass[keep] / cluster_mass[keep].sum()

    # ---------------------------------------------------------------- embedding
    def embed_unscaled(self, x: MeasureBatch) -> torch.Tensor:
        """Unscaled LOT embeddings ``(B, K * D)`` float64 (NaN rows for measures whose LP failed)."""
        if self.ref_points is None:
            if self.reference == "mean":
                raise ValueError("reference='mean' is the mean of the training measures: call fit with training data first")
            self.set_reference_from(x)
        assert self.ref_points is not None and self.ref_masses is not None
        if x.dim != self.ref_points.shape[1]:
            raise ValueError(f"measures of dimension {x.dim} do not match the reference's {self.ref_points.shape[1]}")
        fn = functools.partial(_lot_embed, ref_points=self.ref_points, ref_masses=self.ref_masses)
        supports = measure_supports(x)
        mean_size = float(np.mean([len(w) for _, w in supports])) if supports else 0.0
        seconds = _SECONDS_PER_COST_ENTRY * len(self.ref_masses) * mean_size
        results = map_items(fn, supports, n_jobs=self.n_jobs, min_per_task=4, seconds_per_item=seconds)
        emb = np.stack([e for e, _ in results]) if results else np.zeros((0, self.ref_points.size))
        failed = np.array([not ok for _, ok in results], dtype=bool)
        if failed.any():
            emb[failed] = np.nan
            self.n_lp_failed += int(failed.sum())
            self.last_failure = f"{int(failed.sum())} LOT plan(s) not optimal"
        return torch.from_numpy(emb)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"reference": self.reference, "jitter": self.jitter, "n_lp_failed": self.n_lp_failed}
        if self.ref_masses is not None:
            info["reference_points"] = int(len(self.ref_masses))
            info["embedding_dim"] = int(self.ref_points.size) if self.ref_points is not None else 0
        return {**info, **super().describe()}
