"""``lot``: the linear optimal transport embedding (Wang et al. 2013; Moosmüller & Cloninger 2020)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import ot
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport

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

    Reference (fit-time ``reference``):

    * ``"grid"`` (default, needs no training data): the uniform measure on a lattice. For
      images it is the pixel grid itself (``reference_size`` None) or a lattice of about
      ``reference_size`` points over the same box; for point clouds, a lattice of about
      ``reference_size`` (default 256) points over the bounding box of the training
      measures (``fit``), or else of the first batch embedded, then kept. The lattice
      points are moved by a seeded jitter of ``jitter`` lattice spacings so that they lie
      in general position: on an exact lattice, ties between optimal plans are common and
      the LP's choice among them would make the embedding depend on pivoting order.
    * ``"mean"``: the average of the training measures (the measures used by the
      training pairs, given to :meth:`fit`), for grid measures only, on the pixels where
      that average is positive (jittered like the lattice). Closer to the data; it needs
      ``fit`` to have seen training data.

    The reference is fixed once set, so ``embed`` is a pure function of the measure.
    ``n_parameters`` is 0.

    Failure contract: a measure whose LP is not solved to optimality gets a NaN
    embedding; each distance involving it is NaN and counted in ``n_failed``
    (:meth:`describe`), with ``n_evaluated`` counting every distance returned.
    """

    input_kind = "any"

    def __init__(
        self,
        *,
        reference: str = "grid",
        reference_size: int | None = None,
        jitter: float = 0.1,
        seed: int = 0,
        n_jobs: int = -1,
    ) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if not 0 <= jitter < 0.5:
            raise ValueError(f"jitter must lie in [0, 0.5) lattice spacings, got {jitter!r}")
        super().__init__(reference=reference, reference_size=reference_size, jitter=jitter, seed=seed, n_jobs=n_jobs)
        self.reference = reference
        self.reference_size = reference_size
        self.jitter = float(jitter)
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.ref_points: np.ndarray | None = None
        self.ref_masses: np.ndarray | None = None
        self.n_lp_failed = 0

    # ---------------------------------------------------------------- reference
    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Fix the reference from the training measures (``"mean"``, or the box of ``"grid"`` clouds)."""
        used = np.unique(np.concatenate([train.pairs.left, train.pairs.right]))
        measures = train.measures.index(used) if len(used) else train.measures
        self.set_reference_from(measures)
        return FitReport(stopped_by="nothing to fit", extra={"reference": self.reference, "reference_points": int(len(self.ref_masses))})

    def set_reference_from(self, measures: MeasureBatch) -> None:
        """Build and fix the reference from ``measures`` (see the class docstring)."""
        if self.reference == "mean":
            if not measures.is_grid:
                raise ValueError("reference='mean' needs measures on a grid (images); use reference='grid' for point clouds")
            mean = measures.weights.detach().double().mean(dim=0).cpu().numpy()
            keep = mean > 0
            points = measures.support.detach().cpu().double().numpy()[keep]
            masses = mean[keep] / mean[keep].sum()
            spacing = 1.0
        elif measures.is_grid and self.reference_size is None:
            points = measures.support.detach().cpu().double().numpy()
            spacing = 1.0
        else:
            supports = measure_supports(measures)
            lo = np.min([x.min(axis=0) for x, _ in supports], axis=0)
            hi = np.max([x.max(axis=0) for x, _ in supports], axis=0)
            if measures.is_grid:
                grid = measures.support.detach().cpu().double().numpy()
                lo, hi = grid.min(axis=0), grid.max(axis=0)
            points = lattice(lo, hi, self.reference_size or 256)
            steps = [np.diff(np.unique(points[:, d])) for d in range(points.shape[1])]
            spacing = min((float(s.min()) for s in steps if len(s)), default=1.0)
        if self.reference == "grid":
            masses = np.full(len(points), 1.0 / len(points))
        rng = np.random.default_rng(self.seed)
        self.ref_points = points + rng.uniform(-self.jitter, self.jitter, size=points.shape) * spacing
        self.ref_masses = masses

    # ---------------------------------------------------------------- embedding
    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """LOT embeddings ``(B, K * D)`` float64 (NaN rows for measures whose LP failed)."""
        if self.ref_points is None:
            if self.reference == "mean":
                raise ValueError("reference='mean' is computed in fit(): call fit with training data first")
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
