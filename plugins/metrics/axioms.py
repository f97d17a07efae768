"""Built-in metric: an audit of the metric axioms (symmetry, self-distance, triangle inequality)."""

from __future__ import annotations

import math

import numpy as np

from wbench import metrics as M
from wbench.evaluation import (
    EvaluationContext,
    MetricSkipped,
    evaluation_pool,
    guard_cost,
    surrogate_distances,
)


def axioms(ctx: EvaluationContext) -> dict[str, float]:
    """Audit of the metric axioms on seeded draws from :func:`evaluation_pool`.

    Columns: ``axioms.symmetry_error`` (``max |d(x,y) - d(y,x)|`` over ``n_symmetry`` random
    pairs of distinct measures, ground-cost units), ``axioms.self_distance_mean`` and
    ``axioms.self_distance_max`` (``d(x,x)`` over the same x), ``axioms.triangle_violation_rate``
    (fraction of ``n_triplets`` random ordered triplets of distinct measures with
    ``d(x,z) > d(x,y) + d(y,z) + atol + rtol (d(x,y) + d(y,z))``; all triplets when the pool
    is that small), ``axioms.triangle_max_excess`` and ``axioms.n_triplets``.
    """
    pool = evaluation_pool(ctx.dataset)
    if len(pool) < 3:
        raise MetricSkipped(f"the pool of {len(pool)} measures is too small for the axiom audit")
    rng = ctx.rng()
    n_sym = int(ctx.option("n_symmetry", 200))
    n_triplets = int(ctx.option("n_triplets", 500))
    triplets = M.sample_triplets(pool, n_triplets, rng)
    guard_cost(ctx, 3 * n_sym + 3 * len(triplets), "the axiom audit")

    i = rng.integers(0, len(pool), size=n_sym)
    j = (i + rng.integers(1, len(pool), size=n_sym)) % len(pool)
    x, y = pool[i], pool[j]
    t_x, t_y, t_z = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    # one batched pass: (x,y), (y,x), (x,x), then the triplets' (x,y), (y,z), (x,z)
    left = np.concatenate([x, y, x, t_x, t_y, t_x])
    right = np.concatenate([y, x, x, t_y, t_z, t_z])
    d = surrogate_distances(ctx, left, right)
    d_xy, d_yx, d_xx = d[:n_sym], d[n_sym : 2 * n_sym], d[2 * n_sym : 3 * n_sym]
    tri = d[3 * n_sym :].reshape(3, len(triplets))

    out: dict[str, float] = {"axioms.symmetry_error": M.symmetry_error(d_xy, d_yx)}
    self_d = d_xx[np.isfinite(d_xx)]
    if len(self_d):
        out["axioms.self_distance_mean"] = float(np.mean(self_d))
        out["axioms.self_distance_max"] = float(np.max(np.abs(self_d)))
    violations = M.triangle_violations(
        tri[0], tri[1], tri[2],
        atol=float(ctx.option("triangle_atol", 1e-6)), rtol=float(ctx.option("triangle_rtol", 1e-5)),
    )
    if violations:
        out["axioms.triangle_violation_rate"] = violations["rate"]
        out["axioms.triangle_max_excess"] = violations["max_excess"]
        out["axioms.n_triplets"] = violations["n"]
    return {k: v for k, v in out.items() if math.isfinite(v)}
