"""Metric functions on distance matrices: k-NN retrieval, the metric axioms (symmetry, triangle
inequality), and Wassmap (an Isomap embedding of W2 distances) against known parameters.
Re-exported by :mod:`wbench.metrics`."""

from __future__ import annotations

import math
import warnings

import numpy as np


def knn_recall(
    surrogate_d: np.ndarray,
    exact_d: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    rtol: float = 1e-9,
) -> float:
    """Mean recall@k of the surrogate's k nearest neighbours against the exact ones.

    For each query (row), the k database items (columns) with the smallest surrogate
    distance are retrieved; a retrieved item counts as a true neighbour when its exact
    distance is at most the exact k-th smallest distance of that row (times ``1 + rtol``).
    Without ties this is ``|kNN_surrogate ∩ kNN_exact| / k``; with ties in the exact
    distances (translated copies, duplicates) any of the tied items counts, as in
    ann-benchmarks. Non-finite surrogate distances are never retrieved.

    Parameters
    ----------
    surrogate_d, exact_d : (n, m) arrays
        Distances (or any increasing function of them) from n queries to m database items.
    k : int
        Neighbours per query; ``1 <= k <=`` the candidates left per row.
    exclude : (n, m) bool array, optional
        True where the item is the query itself (left out of both rankings).

    Returns
    -------
    float
        Recall in [0, 1], averaged over queries.
    """
    sd = np.array(surrogate_d, dtype=np.float64)
    ed = np.array(exact_d, dtype=np.float64)
    if sd.shape != ed.shape or sd.ndim != 2:
        raise ValueError(f"surrogate and exact matrices must have one (n, m) shape, got {sd.shape} and {ed.shape}")
    sd[~np.isfinite(sd)] = np.inf
    if exclude is not None:
        sd[exclude] = np.inf
        ed[exclude] = np.inf
    candidates = int(np.isfinite(ed).sum(axis=1).min()) if len(ed) else 0
    if not 1 <= k <= candidates:
        raise ValueError(f"k={k} needs at least k candidates per query; the smallest row has {candidates}")
    retrieved = np.argsort(sd, axis=1, kind="stable")[:, :k]
    kth_exact = np.partition(ed, k - 1, axis=1)[:, k - 1]
    retrieved_exact = np.take_along_axis(ed, retrieved, axis=1)
    retrieved_finite = np.take_along_axis(np.isfinite(sd), retrieved, axis=1)
    hits = (retrieved_exact <= kth_exact[:, None] * (1 + rtol)) & retrieved_finite
    return float(hits.sum(axis=1).mean() / k)


def symmetry_error(d_xy: np.ndarray, d_yx: np.ndarray) -> float:
    """``max |d(x, y) - d(y, x)|`` over the given pairs (ground-cost units); NaN pairs skipped."""
    diff = np.abs(np.asarray(d_xy, dtype=np.float64) - np.asarray(d_yx, dtype=np.float64))
    diff = diff[np.isfinite(diff)]
    return float(diff.max()) if len(diff) else math.nan


def sample_triplets(pool: np.ndarray, n_triplets: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered triplets ``(x, y, z)`` of distinct items of ``pool``: ``(T, 3)`` int64.

    When ``pool`` has at most ``n_triplets`` ordered triplets of distinct items, all of them
    are returned (the violation rate is then exact); otherwise ``n_triplets`` are drawn
    uniformly (with replacement among triplets) with ``rng``.
    """
    pool = np.asarray(pool, dtype=np.int64)
    n = len(pool)
    if n < 3:
        raise ValueError(f"need at least 3 measures for triplets, got {n}")
    if n * (n - 1) * (n - 2) <= n_triplets:
        grid = np.array(np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")).reshape(3, -1).T
        keep = (grid[:, 0] != grid[:, 1]) & (grid[:, 1] != grid[:, 2]) & (grid[:, 0] != grid[:, 2])
        return pool[grid[keep]]
    x = rng.integers(0, n, size=n_triplets)
    y = (x + rng.integers(1, n, size=n_triplets)) % n
    z = rng.integers(0, n - 2, size=n_triplets)  # a third index distinct from both x and y
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    z = z + (z >= lo)
    z = z + (z >= hi)
    return pool[np.stack([x, y, z], axis=1)]


def triangle_violations(
    d_xy: np.ndarray, d_yz: np.ndarray, d_xz: np.ndarray, *, atol: float = 1e-6, rtol: float = 1e-5
) -> dict[str, float]:
    """How often ``d(x, z) > d(x, y) + d(y, z) + tol`` with ``tol = atol + rtol (d(x,y) + d(y,z))``.

    The tolerance absorbs float32 rounding of a true metric. Triplets with a non-finite
    distance are skipped.

    :returns: ``rate`` (violating fraction), ``max_excess`` (largest
        ``d(x,z) - d(x,y) - d(y,z)``, clipped at 0, ground-cost units), ``n`` (triplets used).
    """
    d_xy, d_yz, d_xz = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (d_xy, d_yz, d_xz))
    ok = np.isfinite(d_xy) & np.isfinite(d_yz) & np.isfinite(d_xz)
    d_xy, d_yz, d_xz = d_xy[ok], d_yz[ok], d_xz[ok]
    if len(d_xy) == 0:
        return {}
    excess = d_xz - (d_xy + d_yz)
    violated = excess > atol + rtol * (d_xy + d_yz)
    return {"rate": float(violated.mean()), "max_excess": float(max(excess.max(), 0.0)), "n": float(len(d_xy))}


def wassmap_embedding(distances: np.ndarray, *, n_neighbors: int = 8, n_components: int = 2) -> np.ndarray:
    """Isomap (sklearn, ``metric="precomputed"``) of a W2 distance matrix: ``(n, n_components)``.

    ``distances`` ``(n, n)`` is symmetrised (mean with its transpose), its diagonal set to 0
    and negative entries clipped to 0 before the embedding.
    """
    from sklearn.manifold import Isomap

    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"Wassmap needs a square distance matrix, got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("the distance matrix has non-finite entries")
    d = np.maximum(0.5 * (d + d.T), 0.0)
    np.fill_diagonal(d, 0.0)
    n_neighbors = min(n_neighbors, len(d) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # disconnected-graph warnings: sklearn connects the components
        return Isomap(n_neighbors=n_neighbors, n_components=n_components, metric="precomputed").fit_transform(d)


def procrustes_disparity(parameters: np.ndarray, embedding: np.ndarray) -> float:
    """``scipy.spatial.procrustes`` disparity between true parameters and an embedding.

    Both ``(n, p)`` are centred and scaled to unit norm, then the embedding is rotated,
    reflected and scaled onto the parameters; the disparity is the remaining sum of squared
    differences (0: identical up to a similarity transform; at most 1).
    """
    from scipy.spatial import procrustes

    _, _, disparity = procrustes(np.asarray(parameters, dtype=np.float64), np.asarray(embedding, dtype=np.float64))
    return float(disparity)
