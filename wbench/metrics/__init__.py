"""Pure metric functions on arrays: errors, correlations, retrieval, metric axioms, Wassmap.

Nothing here knows about surrogates or datasets; :mod:`wbench.evaluation` feeds these
functions from an evaluation context. Every function returns plain Python floats and never
a NaN or an infinity: failed predictions (non-finite values) are dropped and counted, and a
figure that cannot be computed (a correlation of a constant, a ratio by zero) is left out of
the returned mapping.

Units: W2 is in ground-cost units (pixels for images), W2^2 in squared units. Column
names are lower case and dot separated: ``<prefix>.w2.mse``, ``<prefix>.w2sq.pearson``,
``<prefix>.n_failed`` ...
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from wbench.metrics.geometry import (  # noqa: F401 (the public names of wbench.metrics)
    knn_recall,
    procrustes_disparity,
    sample_triplets,
    symmetry_error,
    triangle_violations,
    wassmap_embedding,
)

__all__ = [
    "ERROR_STATISTICS",
    "error_by_range",
    "error_statistics",
    "format_edge",
    "generalisation_gap",
    "knn_recall",
    "pair_metrics",
    "procrustes_disparity",
    "range_edges",
    "sample_triplets",
    "symmetry_error",
    "triangle_violations",
    "wassmap_embedding",
]

ERROR_STATISTICS = ("mse", "rmse", "mae", "rel_mae", "max_abs", "pearson", "spearman")
"""The statistics :func:`error_statistics` reports (each may be absent when undefined)."""


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def _correlation(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    """Pearson or Spearman correlation, NaN when undefined (fewer than 2 points, a constant)."""
    from scipy import stats

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.pearsonr(x, y) if kind == "pearson" else stats.spearmanr(x, y)
    return float(result.statistic)


def error_statistics(pred: np.ndarray, true: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Error statistics of ``pred`` against ``true`` (both finite, same units).

    Parameters
    ----------
    pred : (P,) array
        Predictions (finite).
    true : (P,) array
        Exact values (finite, non-negative).
    prefix : str
        Prepended to every key with a dot.

    Returns
    -------
    dict
        ``mse``, ``rmse`` (units^2, units), ``mae``, ``max_abs`` (units), ``rel_mae`` (mean of
        ``|pred - true| / true`` over the pairs with ``true > 0``, a fraction), ``pearson``
        and ``spearman`` (scipy.stats); a statistic that is undefined is absent.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    true = np.asarray(true, dtype=np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"pred has shape {pred.shape}, true has {true.shape}")
    if len(pred) == 0:
        return {}
    err = pred - true
    abs_err = np.abs(err)
    mse = float(np.mean(err**2))
    positive = true > 0
    out = {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(abs_err)),
        "rel_mae": float(np.mean(abs_err[positive] / true[positive])) if positive.any() else math.nan,
        "max_abs": float(np.max(abs_err)),
        "pearson": _correlation("pearson", pred, true),
        "spearman": _correlation("spearman", pred, true),
    }
    return _finite({_join(prefix, k): v for k, v in out.items()})


def _split_valid(pred_w2: np.ndarray, true_w2sq: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    pred_w2 = np.asarray(pred_w2, dtype=np.float64).reshape(-1)
    true_w2sq = np.asarray(true_w2sq, dtype=np.float64).reshape(-1)
    if pred_w2.shape != true_w2sq.shape:
        raise ValueError(f"{len(pred_w2)} predictions for {len(true_w2sq)} exact values")
    valid = np.isfinite(pred_w2)
    return pred_w2[valid], np.maximum(true_w2sq[valid], 0.0), int((~valid).sum())


def pair_metrics(pred_w2: np.ndarray, true_w2sq: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Errors of predicted W2 on a set of pairs, on W2 and on W2^2.

    Parameters
    ----------
    pred_w2 : (P,) array
        Predicted W2 in ground-cost units; NaN (or any non-finite value) marks a pair on
        which the method failed: it is dropped and counted.
    true_w2sq : (P,) array
        Exact W2^2 in squared ground-cost units.
    prefix : str
        Column prefix, e.g. ``"test"``.

    Returns
    -------
    dict
        ``<prefix>.n_pairs`` and ``<prefix>.n_failed`` (counts), then
        ``<prefix>.w2.<stat>`` (prediction vs exact W2) and ``<prefix>.w2sq.<stat>``
        (squared prediction vs exact W2^2) for each stat of :data:`ERROR_STATISTICS` that
        is defined on the valid pairs.
    """
    pred, true_sq, n_failed = _split_valid(pred_w2, true_w2sq)
    out = {_join(prefix, "n_pairs"): float(len(pred) + n_failed), _join(prefix, "n_failed"): float(n_failed)}
    out.update(error_statistics(pred, np.sqrt(true_sq), _join(prefix, "w2")))
    out.update(error_statistics(pred**2, true_sq, _join(prefix, "w2sq")))
    return out


def format_edge(value: float) -> str:
    """A bin edge as it appears in a column name: ``2.5 -> "2p5"``, ``inf -> "inf"``."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:g}"
    return text.replace("-", "m").replace(".", "p")


def range_edges(true_w2: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Quantile edges ``(n_bins + 1,)`` of the exact W2 (quartiles by default), ends included."""
    true_w2 = np.asarray(true_w2, dtype=np.float64)
    if len(true_w2) == 0:
        raise ValueError("no exact distances to take quantiles of")
    return np.quantile(true_w2, np.linspace(0.0, 1.0, n_bins + 1))


def error_by_range(
    pred_w2: np.ndarray,
    true_w2sq: np.ndarray,
    prefix: str = "",
    *,
    edges: Sequence[float] | None = None,
    n_bins: int = 4,
) -> dict[str, float]:
    """W2 errors per range of the exact W2 (small distances matter most downstream).

    Bins are half open ``[lo, hi)`` except the last, which is closed; a pair is binned by
    its exact W2, failed predictions are dropped (and counted per bin).

    Parameters
    ----------
    pred_w2 : (P,) array
        Predicted W2 (NaN: failed).
    true_w2sq : (P,) array
        Exact W2^2.
    prefix : str
        E.g. ``"test.w2"``.
    edges : sequence of float, optional
        Fixed increasing bin edges in W2 units. The columns then name the bin:
        ``<prefix>.range_<lo>_<hi>.<stat>`` (``2.5`` written ``2p5``). Pairs outside
        ``[edges[0], edges[-1]]`` are left out.
    n_bins : int
        Without ``edges``: quantile bins of the exact W2 of these pairs (4: quartiles),
        columns ``<prefix>.q1.<stat>`` (smallest distances) .. ``<prefix>.q<n_bins>.<stat>``,
        with the bin's edges in ``.lo`` and ``.hi``.

    Returns
    -------
    dict
        Per bin: ``n`` (pairs in the bin), ``n_failed``, ``mse``, ``mae``, ``rel_mae``,
        ``max_abs`` on W2; and ``lo``, ``hi`` for quantile bins.
    """
    pred_w2 = np.asarray(pred_w2, dtype=np.float64).reshape(-1)
    true_w2 = np.sqrt(np.maximum(np.asarray(true_w2sq, dtype=np.float64).reshape(-1), 0.0))
    if pred_w2.shape != true_w2.shape:
        raise ValueError(f"{len(pred_w2)} predictions for {len(true_w2)} exact values")
    if len(true_w2) == 0:
        return {}
    quantile = edges is None
    bin_edges = range_edges(true_w2, n_bins) if quantile else np.asarray(edges, dtype=np.float64)
    if bin_edges.ndim != 1 or len(bin_edges) < 2 or np.any(np.diff(bin_edges) < 0):
        raise ValueError(f"bin edges must be an increasing sequence of at least 2 values, got {bin_edges}")
    index = _bin_index(true_w2, bin_edges)
    out: dict[str, float] = {}
    for b in range(len(bin_edges) - 1):
        lo, hi = float(bin_edges[b]), float(bin_edges[b + 1])
        name = f"q{b + 1}" if quantile else f"range_{format_edge(lo)}_{format_edge(hi)}"
        out.update(_bin_errors(pred_w2, true_w2, index == b, _join(prefix, name), bounds=(lo, hi) if quantile else None))
    return _finite(out)


def _bin_index(true_w2: np.ndarray, bin_edges: np.ndarray) -> np.ndarray:
    """Bin number of each exact W2 (``(P,)`` array, W2 units) for increasing ``bin_edges``.

    Bin ``b`` holds ``edges[b] <= w < edges[b+1]``; the top edge is included in the last bin.
    Values below the first edge get -1, values above the last get ``len(bin_edges) - 1``.
    """
    index = np.searchsorted(bin_edges, true_w2, side="right") - 1
    index[true_w2 == bin_edges[-1]] = len(bin_edges) - 2
    return index


def _bin_errors(
    pred_w2: np.ndarray, true_w2: np.ndarray, in_bin: np.ndarray, key: str, *, bounds: tuple[float, float] | None
) -> dict[str, float]:
    """Error columns ``<key>.<stat>`` of the pairs selected by the boolean mask ``in_bin``.

    ``pred_w2`` and ``true_w2`` are ``(P,)`` arrays in W2 units (NaN prediction: failed, counted
    in ``n_failed`` and dropped); ``bounds`` (the bin's ``lo``, ``hi``) is written when given.
    """
    pred, true = pred_w2[in_bin], true_w2[in_bin]
    valid = np.isfinite(pred)
    out: dict[str, float] = {f"{key}.n": float(in_bin.sum()), f"{key}.n_failed": float((~valid).sum())}
    if bounds is not None:
        out[f"{key}.lo"], out[f"{key}.hi"] = bounds
    stats = error_statistics(pred[valid], true[valid])
    out.update({f"{key}.{s}": stats[s] for s in ("mse", "mae", "rel_mae", "max_abs") if s in stats})
    return out


def generalisation_gap(train_mse: float, test_mse: float, prefix: str = "gap.w2", *, floor: float = 0.0) -> dict[str, float]:
    """Test minus train MSE and test over train MSE.

    :param floor: the ratio is left out unless ``train_mse > floor`` (a ratio of rounding
        errors, e.g. for an exact method, means nothing).
    :returns: ``<prefix>.mse_diff`` (units^2) and ``<prefix>.mse_ratio``.
    """
    out = {f"{prefix}.mse_diff": test_mse - train_mse}
    if train_mse > max(floor, 0.0):
        out[f"{prefix}.mse_ratio"] = test_mse / train_mse
    return _finite(out)


def pairwise_pairs_per_s(embed_s: float, pair_s: float, n: int, m: int | None = None, *, call_s: float = 0.0) -> float:
    """Pairwise pairs/s of an ``n x m`` matrix: ``n m / (o + (n + m) e + n m c)`` (``m`` defaults to ``n``).

    ``call_s`` is ``o``, the fixed seconds of one ``pairwise`` call (0: the plain model
    ``n m / ((n + m) e + n m c)``). With ``embed_s = 0`` and ``o = 0`` (a solver) this is the
    per-pair rate ``1 / c``.

    :raises ValueError: a negative or non-finite cost, both zero, or ``n, m < 1``.
    """
    _check_costs(embed_s, pair_s)
    if not (math.isfinite(call_s) and call_s >= 0):
        raise ValueError(f"call_s must be a non-negative number of seconds, got {call_s!r}")
    m = n if m is None else m
    if n < 1 or m < 1:
        raise ValueError(f"a pairwise block needs n, m >= 1, got {n} x {m}")
    if embed_s == 0 and call_s == 0:
        return 1.0 / pair_s  # a solver: exactly its per-pair rate at every n (no rounding by n m)
    return n * m / (call_s + (n + m) * embed_s + n * m * pair_s)


def _check_costs(embed_s: float, pair_s: float) -> None:
    for name, value in (("embed_s", embed_s), ("pair_s", pair_s)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    if embed_s == 0 and pair_s == 0:
        raise ValueError("embed_s and pair_s are both 0: the rate would be infinite")
