"""``rg`` and ``rg-ls``: W2 regressed on sliced lower bounds and lifted upper bounds.

Nguyen, Nguyen & Ho, "Fast Estimation of Wasserstein Distances via Regression on Sliced
Wasserstein Distances" (ICLR 2026, arXiv:2509.20508).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import Surrogate
from wbench.training import FitReport

from .bounds import DEFAULT_PAIRS, bound_features, design, parse_pairs
from .regression import as_predictor_weights, fit_constrained, fit_unconstrained
from .slicing import pair_costs, random_directions, slice_measures

SLICE_BUDGET = 1 << 23
"""Elements (measures x directions x points) sliced at once by ``distance`` / ``pairwise``."""


class _SlicedRegression(Surrogate):
    """Shared machinery of :class:`RG` and :class:`RGLeastSquares` (see their docstrings)."""

    input_kind = "any"
    trainable = True
    fit_for_timing: ClassVar[bool] = True
    """No saved model: the run's timing pass fits it again (a closed-form solve of seconds)."""
    constrained: ClassVar[bool] = True

    def __init__(
        self,
        *,
        n_projections: int = 100,
        bounds: str = DEFAULT_PAIRS,
        squared: bool = False,
        max_pairs: int | None = 1000,
        device: str | None = None,
    ) -> None:
        if int(n_projections) < 1:
            raise ValueError(f"n_projections must be positive, got {n_projections}")
        if max_pairs is not None and int(max_pairs) < 1:
            raise ValueError(f"max_pairs must be positive or None, got {max_pairs}")
        super().__init__(
            n_projections=n_projections, bounds=bounds, squared=squared, max_pairs=max_pairs, device=device
        )
        self.n_projections = int(n_projections)
        self.pairs = parse_pairs(bounds)
        self.squared = bool(squared)
        self.max_pairs = None if max_pairs is None else int(max_pairs)
        self.device = torch.device("cpu")
        self.theta: torch.Tensor | None = None  # (D, L) directions, set by fit
        self.coef: np.ndarray | None = None  # the fitted coefficients
        self.weights: torch.Tensor | None = None  # (2K,) weights on [lower, upper]
        self.fit_info: dict[str, Any] = {}

    @property
    def n_parameters(self) -> int:
        """Regression coefficients: K (constrained) or 2K (least squares) for K bound pairs."""
        k = len(self.pairs)
        return k if self.constrained else 2 * k

    # ---- features -------------------------------------------------------------------

    def _require_fit(self, *, coefficients: bool = True) -> torch.Tensor:
        """The directions; raises before a fit (or before its coefficients, by default)."""
        if self.theta is None or (coefficients and self.weights is None):
            raise RuntimeError(f"{type(self).__name__} must be fitted before computing distances")
        return self.theta

    def _chunk(self, batch: MeasureBatch) -> int:
        """Measures per slicing chunk under :data:`SLICE_BUDGET`."""
        return max(1, SLICE_BUDGET // (self.n_projections * max(1, batch.n_points)))

    def _costs(self, a: MeasureBatch, b: MeasureBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected and lifted costs ``(P, L)`` of the row-aligned pairs, in chunks."""
        theta = self._require_fit(coefficients=False)
        step = self._chunk(a)
        parts = [
            pair_costs(
                slice_measures(a.index(slice(s, s + step)), theta),
                slice_measures(b.index(slice(s, s + step)), theta),
            )
            for s in range(0, len(a), step)
        ]
        if not parts:
            empty = theta.new_zeros(0, self.n_projections)
            return empty, empty
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _predict(self, projected: torch.Tensor, lifted: torch.Tensor) -> torch.Tensor:
        """W2 estimates ``(P,)`` (ground units) from the per-direction costs."""
        assert self.weights is not None
        lower, upper = design(bound_features(projected, lifted), self.pairs, squared=self.squared)
        out = (torch.cat([lower, upper], dim=1) @ self.weights).clamp_min(0)
        return out.sqrt() if self.squared else out

    # ---- the surrogate interface -------------------------------------------------------

    @torch.inference_mode()
    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Row-aligned W2 estimates ``(B,)`` float64, ground-cost units, on the fit's device."""
        if len(a) != len(b):
            raise ValueError(
                f"distance needs row-aligned batches, got {len(a)} and {len(b)} measures"
            )
        return self._predict(*self._costs(a, b))

    @torch.inference_mode()
    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """All W2 estimates ``(n, m)`` float64; each measure is projected and sorted once.

        The sliced data of ``y`` is kept for the whole call (``m L N`` cumulative masses);
        ``x`` is sliced one chunk at a time.
        """
        theta = self._require_fit()
        step_y = self._chunk(y)
        ys = [
            slice_measures(y.index(slice(j, j + step_y)), theta) for j in range(0, len(y), step_y)
        ]
        rows = []
        step_x = self._chunk(x)
        for i in range(0, len(x), step_x):
            xs = slice_measures(x.index(slice(i, i + step_x)), theta)
            blocks = [self._block(xs, yb) for yb in ys]
            rows.append(torch.cat(blocks, dim=1) if blocks else theta.new_zeros(len(xs), 0))
        return torch.cat(rows, dim=0) if rows else theta.new_zeros(0, len(y))

    def _block(self, xs: Any, ys: Any) -> torch.Tensor:
        """The ``(len(xs), len(ys))`` block of estimates between two sliced chunks."""
        n, m = len(xs), len(ys)
        device = xs.cum.device
        ia = torch.arange(n, device=device).repeat_interleave(m)
        ib = torch.arange(m, device=device).repeat(n)
        return self._predict(*pair_costs(xs, ys, ia, ib)).reshape(n, m)

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget | None) -> FitReport:
        """Draw the directions and fit the coefficients in closed form on exact W2.

        The budget gives the seed (directions and the subsample of at most ``max_pairs``
        training pairs) and the device; its epochs, steps, batch size and learning rate do
        not apply to a closed-form fit (the report counts the one solve as one step).
        Validation pairs (at most ``max_pairs``) are only evaluated, for the report.
        """
        start = time.perf_counter()
        self.weights, self.coef, self.fit_info = None, None, {}
        seed = 0 if budget is None else int(budget.seed)
        fixed = self.params.get("device")  # a device given at construction wins over the budget's
        self.device = torch.device(fixed or ("cpu" if budget is None else budget.device))
        self.theta = random_directions(train.measures.dim, self.n_projections, seed).to(self.device)
        rng = np.random.default_rng(seed)
        chosen = _subsample(len(train), self.max_pairs, rng)
        lower, upper, target = self._training_design(train, chosen)
        k = len(self.pairs)
        solve = fit_constrained if self.constrained else fit_unconstrained
        self.coef = solve(lower, upper, target)
        weights = as_predictor_weights(self.coef, k, constrained=self.constrained)
        self.weights = torch.as_tensor(weights, dtype=torch.float64, device=self.device)
        fitted = np.maximum(np.concatenate([lower, upper], 1) @ weights, 0)
        truth = train.pairs.w2[chosen]
        sw_col = self._sw_column(lower)
        to_w2 = np.sqrt if self.squared else np.asarray
        self.fit_info = {
            "train_pairs_used": int(len(chosen)),
            "train_rel_mae": _rel_mae(to_w2(fitted), truth),
            "train_rel_mae_sw": None if sw_col is None else _rel_mae(to_w2(sw_col), truth),
        }
        val_mse, val_info = self._validate(val, rng)
        self.fit_info.update(val_info)
        return FitReport(
            train_loss=[],
            val_mse=[val_mse] if val_mse is not None else [],
            best_epoch=0,
            steps=1,
            epochs=1,
            wall_time_s=time.perf_counter() - start,
            stopped_by="closed form",
            extra={**self.describe()},
        )

    def _training_design(self, train: LabelledPairs, chosen: np.ndarray) -> tuple[np.ndarray, ...]:
        """Lower ``(P, K)``, upper ``(P, K)`` bounds and targets ``(P,)`` of the chosen pairs."""
        a, b, w2sq = train.batch(chosen)
        projected, lifted = self._costs(a, b)
        lower, upper = design(bound_features(projected, lifted), self.pairs, squared=self.squared)
        target = np.asarray(w2sq, dtype=np.float64)
        target = np.maximum(target, 0) if self.squared else np.sqrt(np.maximum(target, 0))
        return lower.cpu().numpy(), upper.cpu().numpy(), target

    def _sw_column(self, lower: np.ndarray) -> np.ndarray | None:
        names = [lo for lo, _ in self.pairs]
        return lower[:, names.index("sw")] if "sw" in names else None

    def _validate(
        self, val: LabelledPairs, rng: np.random.Generator
    ) -> tuple[float | None, dict[str, Any]]:
        """Validation MSE on W2 (ground units squared) and relative MAEs of the model and of SW."""
        if len(val) == 0 or val.pairs.w2sq is None:
            return None, {}
        chosen = _subsample(len(val), self.max_pairs, rng)
        a, b, _ = val.batch(chosen)
        projected, lifted = self._costs(a, b)
        predicted = self._predict(projected, lifted).cpu().numpy()
        sw = bound_features(projected, lifted)["sw"].clamp_min(0).sqrt().cpu().numpy()
        truth = val.pairs.w2[chosen]
        info = {
            "val_pairs_used": int(len(chosen)),
            "val_rel_mae": _rel_mae(predicted, truth),
            "val_rel_mae_sw": _rel_mae(sw, truth),
        }
        return float(np.mean((predicted - truth) ** 2)), info

    def describe(self) -> dict[str, Any]:
        """Bounds, directions, the fitted coefficients and the fit's readouts (JSON-ready)."""
        info: dict[str, Any] = {
            "variant": "constrained" if self.constrained else "least squares",
            "bound_pairs": [list(p) for p in self.pairs],
            "n_projections": self.n_projections,
            "target": "W2^2" if self.squared else "W2",
        }
        if self.coef is not None:
            info["coefficients"] = [float(c) for c in self.coef]
        return {**info, **self.fit_info}


def _subsample(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` items (all of them when fewer)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _rel_mae(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean of ``|predicted - truth| / truth`` over pairs with ``truth > 0``."""
    keep = truth > 0
    if not np.any(keep):
        return float("nan")
    return float(np.mean(np.abs(predicted[keep] - truth[keep]) / truth[keep]))


class RG(_SlicedRegression):
    """RG, the constrained model (the paper's): W2 between a lower and an upper bound.

    For K pairs of a sliced lower bound ``l_k`` and a lifted upper bound ``u_k`` of W2,
    all computed on the same L directions drawn uniformly on the sphere from the budget's
    seed, the estimate is ``(1/K) sum_k (lam_k l_k + (1 - lam_k) u_k)``: K coefficients
    ``lam_k``, fitted in closed form by least squares on exact W2 of at most ``max_pairs``
    training pairs (the constraint that each pair's weights sum to one halves the
    parameters of :class:`RGLeastSquares`). Negative estimates are clipped to 0.

    Bounds (``bounds``, ``"lower:upper"`` pairs, default ``"sw:pw,maxsw:minswgg,ebsw:ebpw"``):
    lower ``sw`` (sliced W2), ``maxsw`` (max-sliced W2 over the L directions), ``ebsw``
    (energy-based sliced W2, importance-sampled, energy exp); upper ``pw`` (projected /
    lifted sliced W2: the mean cost in R^D of the lifted 1-D plans), ``minswgg`` (min-SWGG:
    their minimum), ``ebpw`` (their mean under EBSW's weights); see
    :mod:`wbench_plugins.rg.bounds`. Weighted measures (grids, padded clouds) are exact:
    the 1-D plans come from merging the cumulative masses.

    Fit-time parameters: ``n_projections`` (L, default 100), ``bounds``, ``squared``
    (False: regress W2 on the bounds of W2, as the paper regresses the distance; True:
    W2^2 on their squares), ``max_pairs`` (1000; None: every training pair).
    ``n_parameters`` = K (3 by default). The budget's seed and device are used; its steps
    and epochs are not (closed form: the report has one step).
    """

    constrained = True


class RGLeastSquares(_SlicedRegression):
    """RG-LS, the unconstrained model: ``W2 ~ sum_k a_k l_k + sum_k b_k u_k`` (no intercept).

    Same bounds, directions, parameters and fit data as :class:`RG`; the 2K coefficients
    are the ordinary least-squares solution (minimum-norm when bounds are collinear).
    ``n_parameters`` = 2K (6 by default).
    """

    constrained = False
