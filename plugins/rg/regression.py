"""The two linear models of RG, fitted in closed form (float64 NumPy least squares).

With K pairs of a lower bound ``l_k`` and an upper bound ``u_k`` of the target y:

* unconstrained (``rg-ls``): ``y ~ sum_k a_k l_k + sum_k b_k u_k``, 2K coefficients, no
  intercept (the L2 projection of y on the span of the bounds);
* constrained (``rg``): ``y ~ (1/K) sum_k (lam_k l_k + (1 - lam_k) u_k)``, K coefficients:
  each pair's estimate is a point on the line through its two bounds (lam_k in [0, 1]
  is between them, lam = 1/2 their midpoint); with ``d_k = (l_k - u_k) / K`` and
  ``ubar = mean_k u_k`` it is the least-squares problem ``y - ubar ~ sum_k lam_k d_k``.

Both use ``numpy.linalg.lstsq`` (minimum-norm solution, so collinear bounds, as in 1-D
where every bound equals W2, are handled).
"""

from __future__ import annotations

import numpy as np


def fit_unconstrained(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients ``(2K,)``: K on the lower bounds, then K on the upper.

    :param lower: ``(P, K)`` lower bounds.
    :param upper: ``(P, K)`` upper bounds (same units as ``y``).
    :param y: ``(P,)`` targets.
    """
    x = np.concatenate([lower, upper], axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return coef


def fit_constrained(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares weights ``lam (K,)`` of ``y ~ (1/K) sum_k (lam_k l_k + (1 - lam_k) u_k)``."""
    k = lower.shape[1]
    coef, *_ = np.linalg.lstsq((lower - upper) / k, y - upper.mean(axis=1), rcond=None)
    return coef


def as_predictor_weights(coef: np.ndarray, k: int, *, constrained: bool) -> np.ndarray:
    """The weights ``(2K,)`` on ``[l_1..l_K, u_1..u_K]`` that either model amounts to.

    The constrained model's weights are ``lam_k / K`` and ``(1 - lam_k) / K``.
    """
    if not constrained:
        return np.asarray(coef, dtype=np.float64)
    lam = np.asarray(coef, dtype=np.float64)
    return np.concatenate([lam / k, (1.0 - lam) / k])
