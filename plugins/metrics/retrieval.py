"""Built-in metric: k-nearest-neighbour retrieval against the exact W2."""

from __future__ import annotations

import numbers

import numpy as np

from wbench import metrics as M
from wbench.evaluation import (
    EvaluationContext,
    MetricSkipped,
    evaluation_pool,
    exact_matrix_w2,
    guard_cost,
    surrogate_matrix,
)


def retrieval(ctx: EvaluationContext) -> dict[str, float]:
    """k-nearest-neighbour recall@k of the surrogate against the exact W2.

    ``n_queries`` queries and a database of ``n_database`` measures are drawn independently
    (without replacement each, seeded by ``eval_seed``) from :func:`evaluation_pool`; a query
    found in the database is excluded from its own ranking. The surrogate's matrix comes from
    ``surrogate.pairwise``, the exact one from ``ctx.exact_block``.

    Columns: ``retrieval.recall@<k>`` for each k of option ``k`` (int or list, default 10;
    see :func:`wbench.metrics.knn_recall` for ties), ``retrieval.n_queries``,
    ``retrieval.n_database``, ``retrieval.n_failed`` (non-finite surrogate entries).
    """
    pool = evaluation_pool(ctx.dataset)
    rng = ctx.rng()
    n_queries = min(int(ctx.option("n_queries", 50)), len(pool))
    n_database = min(int(ctx.option("n_database", 500)), len(pool))
    ks = ctx.option("k", 10)
    ks = [int(ks)] if isinstance(ks, numbers.Integral) else [int(k) for k in ks]
    if n_queries < 1 or n_database < 2:
        raise MetricSkipped(f"the pool of {len(pool)} measures is too small for retrieval")
    guard_cost(ctx, n_queries * n_database, "retrieval")
    queries = np.sort(rng.choice(pool, size=n_queries, replace=False))
    database = np.sort(rng.choice(pool, size=n_database, replace=False))
    exclude = queries[:, None] == database[None, :]
    exact = exact_matrix_w2(ctx, queries, database)
    predicted = surrogate_matrix(ctx, queries, database)
    candidates = n_database - int(exclude.sum(axis=1).max())
    out = {
        "retrieval.n_queries": float(n_queries),
        "retrieval.n_database": float(n_database),
        "retrieval.n_failed": float((~np.isfinite(predicted)).sum()),
    }
    for k in ks:
        if 1 <= k <= candidates:
            out[f"retrieval.recall@{k}"] = M.knn_recall(predicted, exact, k, exclude=exclude)
    return out
