"""Sample sets drawn from parametric families, after paper 002 (DeepSets on sample sets).

- 1-D: uniform, normal, beta, gamma, exponential, Laplace and log-normal with varied
  parameters, ``sample_size`` 500 by default (50 sets per family).
- 2-D: normals with varied mean and covariance, ``sample_size`` 300 (100 sets).

The native view is a batch of point clouds ``(n, sample_size, D)`` with uniform weights;
the oracle's exact W2 is then the distance between the *empirical* sample sets. The
populations' parameters, means and spreads are in the metadata, and for normals the
populations' closed-form (Bures-Wasserstein) W2^2 too, which differs from the empirical
one by sampling error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from wbench.data import PairedDataset
from wbench.measures import MeasureBatch

from ._common import ParamDataset, images_to_measures
from ._pairs import (
    DEFAULT_FRACTIONS,
    DEFAULT_POOL_FRACTIONS,
    partition,
    random_pair_splits,
    seed_streams,
)

Params = dict[str, float]
Sampler = Callable[[np.random.Generator, Params, int], np.ndarray]
Moments = Callable[[Params], tuple[float, float]]


def _lognormal_moments(q: Params) -> tuple[float, float]:
    var = (np.exp(q["sigma"] ** 2) - 1.0) * np.exp(2.0 * q["mu"] + q["sigma"] ** 2)
    return float(np.exp(q["mu"] + q["sigma"] ** 2 / 2.0)), float(np.sqrt(var))


# family -> (draw its parameters, draw samples, population (mean, standard deviation))
_FAMILIES_1D: dict[str, tuple[Callable[[np.random.Generator], Params], Sampler, Moments]] = {
    "uniform": (
        lambda r: {"low": r.uniform(-2.0, 1.0), "width": r.uniform(0.5, 3.0)},
        lambda r, q, n: r.uniform(q["low"], q["low"] + q["width"], n),
        lambda q: (q["low"] + q["width"] / 2.0, q["width"] / np.sqrt(12.0)),
    ),
    "normal": (
        lambda r: {"mean": r.uniform(-2.0, 2.0), "std": r.uniform(0.3, 2.0)},
        lambda r, q, n: r.normal(q["mean"], q["std"], n),
        lambda q: (q["mean"], q["std"]),
    ),
    "beta": (
        lambda r: {"a": r.uniform(0.5, 5.0), "b": r.uniform(0.5, 5.0)},
        lambda r, q, n: r.beta(q["a"], q["b"], n),
        lambda q: (
            q["a"] / (q["a"] + q["b"]),
            np.sqrt(q["a"] * q["b"] / ((q["a"] + q["b"]) ** 2 * (q["a"] + q["b"] + 1.0))),
        ),
    ),
    "gamma": (
        lambda r: {"shape": r.uniform(1.0, 5.0), "scale": r.uniform(0.3, 1.5)},
        lambda r, q, n: r.gamma(q["shape"], q["scale"], n),
        lambda q: (q["shape"] * q["scale"], np.sqrt(q["shape"]) * q["scale"]),
    ),
    "exponential": (
        lambda r: {"scale": r.uniform(0.3, 2.0)},
        lambda r, q, n: r.exponential(q["scale"], n),
        lambda q: (q["scale"], q["scale"]),
    ),
    "laplace": (
        lambda r: {"loc": r.uniform(-2.0, 2.0), "scale": r.uniform(0.3, 1.5)},
        lambda r, q, n: r.laplace(q["loc"], q["scale"], n),
        lambda q: (q["loc"], np.sqrt(2.0) * q["scale"]),
    ),
    "lognormal": (
        lambda r: {"mu": r.uniform(-1.0, 0.5), "sigma": r.uniform(0.2, 0.8)},
        lambda r, q, n: r.lognormal(q["mu"], q["sigma"], n),
        _lognormal_moments,
    ),
}
"""Parameters are numpy's (``Generator.gamma(shape, scale)``, ``lognormal(mu, sigma)`` of
the underlying normal, ...); the moments are the populations' closed forms."""
FAMILIES_1D = tuple(_FAMILIES_1D)
"""The 1-D families, in the order ``family="1d"`` cycles through them."""
FAMILIES = ("1d", *FAMILIES_1D, "normal2d")
SETS_PER_FAMILY_1D = 50
SETS_2D = 100
SAMPLE_SIZE_1D = 500
SAMPLE_SIZE_2D = 300


def bures_wasserstein_sq(m1: np.ndarray | float, c1: np.ndarray | float, m2: np.ndarray | float, c2: np.ndarray | float) -> float:
    """Closed-form W2^2 between the normals ``N(m1, c1)`` and ``N(m2, c2)``.

    ``|m1 - m2|^2 + tr(c1 + c2 - 2 (c1^{1/2} c2 c1^{1/2})^{1/2})`` (the Bures metric on the
    covariances), with ``scipy.linalg.sqrtm``.

    :param m1: ``(D,)`` mean (a scalar for 1-D); :param c1: ``(D, D)`` covariance (a
        variance for 1-D); likewise ``m2``, ``c2``.
    :returns: W2^2 in squared units of the means.
    """
    from scipy.linalg import sqrtm

    m1, m2 = np.atleast_1d(np.asarray(m1, np.float64)), np.atleast_1d(np.asarray(m2, np.float64))
    c1, c2 = np.atleast_2d(np.asarray(c1, np.float64)), np.atleast_2d(np.asarray(c2, np.float64))
    root1 = np.real(sqrtm(c1))
    cross = np.real(sqrtm(root1 @ c2 @ root1))
    return float(max(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2.0 * cross), 0.0))


def normal_shrinking_sets(ns: Sequence[int], sample_size: int = SAMPLE_SIZE_1D, seed: int = 0, *, dim: int = 1) -> MeasureBatch:
    """Paper 002's topology probe: samples of ``N(0, 1/n)`` for each ``n`` in ``ns``, then a Dirac at 0.

    Set ``k`` holds ``sample_size`` samples with standard deviation ``1 / sqrt(ns[k])``
    (per coordinate, ``dim`` coordinates); the last set puts all its points at the origin.
    As ``n`` grows the sets converge to the Dirac in W2 (the populations' W2 to it is
    ``sqrt(dim / n)``); an embedding continuous in W2 should show the same convergence.

    :returns: ``(len(ns) + 1, sample_size, dim)`` point clouds with uniform weights.
    """
    ns = [int(n) for n in ns]
    if not ns or min(ns) < 1:
        raise ValueError(f"ns must be a non-empty sequence of positive integers, got {ns!r}")
    if sample_size < 1 or dim < 1:
        raise ValueError(f"sample_size and dim must be positive, got {sample_size} and {dim}")
    rng = np.random.default_rng(seed)
    points = np.zeros((len(ns) + 1, sample_size, dim))
    for k, n in enumerate(ns):
        points[k] = rng.normal(0.0, 1.0 / np.sqrt(n), size=(sample_size, dim))
    return MeasureBatch.from_point_clouds(torch.from_numpy(points.astype(np.float32)))


def rasterise(points: np.ndarray, grid_size: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Histograms ``(n, grid_size, grid_size)`` of 2-D point sets ``(n, k, 2)`` on ``[-extent, extent]^2``.

    Coordinate 0 goes to rows, coordinate 1 to columns; a pixel is ``2 extent / grid_size``
    wide, so pixel coordinates are ``(x + extent) / pixel - 1/2``. Points outside the square
    are clipped to the border pixels; the number clipped per set is returned too.
    """
    pixel = 2.0 * extent / grid_size
    cells = np.floor((points + extent) / pixel).astype(np.int64)
    clipped = ((cells < 0) | (cells >= grid_size)).any(axis=2).sum(axis=1)
    cells = np.clip(cells, 0, grid_size - 1)
    counts = np.zeros((len(points), grid_size * grid_size))
    flat = cells[..., 0] * grid_size + cells[..., 1]
    for k in range(len(points)):
        counts[k] = np.bincount(flat[k], minlength=grid_size * grid_size)
    return counts.reshape(len(points), grid_size, grid_size), clipped


class DistributionsDataset(ParamDataset):
    """Sample sets from parametric families (paper 002) as uniform-weight point clouds.

    Parameters:

    - ``family``: ``"1d"`` (all seven 1-D families in turn), one 1-D family name
      (``uniform``, ``normal``, ``beta``, ``gamma``, ``exponential``, ``laplace``,
      ``lognormal``), or ``"normal2d"``. Parameter ranges: see ``_FAMILIES_1D``; 2-D normals
      have a mean uniform in ``[-2, 2]^2`` and a covariance ``R diag(s1^2, s2^2) R^T`` with
      ``s`` uniform in ``[0.3, 1.5]`` and ``R`` a rotation by an angle uniform in ``[0, pi)``.
    - ``n_sets``: number of sample sets (default 50 per 1-D family, 100 for ``normal2d``).
    - ``sample_size``: samples per set (default 500 in 1-D, 300 in 2-D).
    - ``n_pairs``: distinct random pairs of sets; ``fractions``; ``seed``.
    - ``split``: ``"random"`` or ``"set-disjoint"`` (sets partitioned by ``set_fractions``
      first, stratified by family, and each split's pairs use only its own sets).
    - ``view``: ``"points"`` (native) or ``"grid"`` (``normal2d`` only): each set is
      rasterised to a ``grid_size x grid_size`` histogram of ``[-extent, extent]^2`` (see
      :func:`rasterise`). The oracle's ground truth is then W2 between the histograms, in
      pixels (``metadata["pixel_size"]`` sample units per pixel), not between the samples.

    Labels are family indices into ``metadata["label_names"]``. Metadata per set:
    ``family`` names, ``family_params`` (dicts), ``mean`` and ``std`` (1-D, population)
    or ``mean`` ``(n, 2)`` and ``cov`` ``(n, 2, 2)`` (2-D, population), and
    ``closed_form_w2sq``: split -> ``(P,)`` the populations' W2^2 where both sets are
    normal (every ``normal2d`` pair), NaN elsewhere, in the dataset's unit squared.
    """

    name: ClassVar[str] = "distributions"
    defaults: ClassVar[dict[str, Any]] = {
        "family": "1d",
        "n_sets": None,
        "sample_size": None,
        "n_pairs": 2000,
        "split": "random",
        "fractions": DEFAULT_FRACTIONS,
        "set_fractions": DEFAULT_POOL_FRACTIONS,
        "view": "points",
        "grid_size": 28,
        "extent": 7.0,
        "seed": 0,
    }

    def validate(self) -> None:
        super().validate()
        p = self.params
        family = self.choice("family", FAMILIES)
        self.choice("split", ("random", "set-disjoint"))
        view = self.choice("view", ("points", "grid"))
        if view == "grid" and family != "normal2d":
            raise ValueError(f"distributions: view='grid' needs family='normal2d' (got {family!r}); 1-D sets have no image view")
        self.integer("n_pairs")
        self.integer("grid_size", minimum=2)
        self.number("extent")
        if p["n_sets"] is None:
            p["n_sets"] = SETS_2D if family == "normal2d" else SETS_PER_FAMILY_1D * (len(FAMILIES_1D) if family == "1d" else 1)
        if p["sample_size"] is None:
            p["sample_size"] = SAMPLE_SIZE_2D if family == "normal2d" else SAMPLE_SIZE_1D
        self.integer("n_sets", minimum=2)
        self.integer("sample_size")

    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[Params], dict[str, np.ndarray]]:
        """Points ``(n, k, D)`` float64, family names, parameters and population moments."""
        p = self.params
        n, k = p["n_sets"], p["sample_size"]
        if p["family"] == "normal2d":
            means = rng.uniform(-2.0, 2.0, size=(n, 2))
            stds = rng.uniform(0.3, 1.5, size=(n, 2))
            angles = rng.uniform(0.0, np.pi, size=n)
            rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], axis=1).reshape(n, 2, 2)
            factors = rot * stds[:, None, :]  # R diag(s)
            covs = factors @ factors.transpose(0, 2, 1)
            points = means[:, None, :] + rng.standard_normal((n, k, 2)) @ factors.transpose(0, 2, 1)
            params = [
                {"mean": m.tolist(), "std_axes": s.tolist(), "angle": float(a)}
                for m, s, a in zip(means, stds, angles, strict=True)
            ]
            return points, ["normal2d"] * n, params, {"mean": means, "cov": covs}
        names = [FAMILIES_1D[i % len(FAMILIES_1D)] for i in range(n)] if p["family"] == "1d" else [p["family"]] * n
        points = np.empty((n, k, 1))
        params = []
        for i, name in enumerate(names):
            draw_params, draw_samples, _ = _FAMILIES_1D[name]
            q = {key: float(v) for key, v in draw_params(rng).items()}
            points[i, :, 0] = draw_samples(rng, q, k)
            params.append(q)
        mean_std = np.array([_FAMILIES_1D[name][2](q) for name, q in zip(names, params, strict=True)], dtype=np.float64)
        moments = {"mean": mean_std[:, 0], "std": mean_std[:, 1]}
        return points, names, params, moments

    def build(self) -> PairedDataset:
        p = self.params
        rng_sets, rng_groups, rng_pairs = seed_streams(p["seed"], 3)
        points, names, params, moments = self._sample(rng_sets)
        label_names = sorted(set(names), key=FAMILIES.index)
        labels = np.array([label_names.index(name) for name in names], dtype=np.int64)
        metadata: dict[str, Any] = {"family": np.array(names), "family_params": params, "label_names": label_names, **moments}
        scale = 1.0
        if p["view"] == "grid":
            images, clipped = rasterise(points, p["grid_size"], p["extent"])
            measures = images_to_measures(images)
            scale = 2.0 * p["extent"] / p["grid_size"]
            metadata.update(pixel_size=scale, n_clipped=clipped)
            unit = "pixel"
        else:
            measures = MeasureBatch.from_point_clouds(torch.from_numpy(points.astype(np.float32)))
            unit = "coordinate"
        pools = partition(rng_groups, len(points), p["set_fractions"], labels=labels) if p["split"] == "set-disjoint" else None
        pairs = random_pair_splits(rng_pairs, len(points), p["n_pairs"], p["fractions"], pools=pools)
        if pools is not None:
            metadata["set_groups"] = pools
        metadata["closed_form_w2sq"] = {
            split: self._closed_form(names, moments, ps.left, ps.right) / scale**2 for split, ps in pairs.items()
        }
        return PairedDataset(self.name, dict(p), measures, pairs, labels=labels, metadata=metadata, unit=unit)

    @staticmethod
    def _closed_form(names: list[str], moments: dict[str, np.ndarray], left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Population W2^2 ``(P,)`` for pairs of normals (1-D or 2-D), NaN for other pairs."""
        out = np.full(len(left), np.nan)
        for k, (i, j) in enumerate(zip(left, right, strict=True)):
            if names[i] == "normal2d" and names[j] == "normal2d":
                out[k] = bures_wasserstein_sq(moments["mean"][i], moments["cov"][i], moments["mean"][j], moments["cov"][j])
            elif names[i] == "normal" and names[j] == "normal":
                out[k] = bures_wasserstein_sq(moments["mean"][i], moments["std"][i] ** 2, moments["mean"][j], moments["std"][j] ** 2)
        return out
