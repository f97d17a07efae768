"""The oracle stage: exact squared Wasserstein-2 distances (the ground truth).

Its public face, for plugins that need exact distances (the ``exact-lp`` reference, a
method's own tools): the names of :mod:`wbench.oracle.solve`, re-exported here. The LP of
one pair is in :mod:`wbench.oracle.lp`, support tables in :mod:`wbench.oracle.supports`,
the verified cache in :mod:`wbench.oracle.cache`, a dataset's ground truth in
:mod:`wbench.oracle.groundtruth` and the blocks metrics ask for in
:mod:`wbench.oracle.exact_blocks`.
"""

from __future__ import annotations

from wbench.oracle.solve import (
    COST_NAME,
    DEFAULT_NUM_ITER_MAX,
    ORACLE_VERSION,
    RESULT_INFEASIBLE,
    RESULT_MAX_ITER,
    RESULT_OPTIMAL,
    RESULT_UNBOUNDED,
    RETRY_FACTOR,
    OracleError,
    SupportTable,
    exact_w2sq,
    exact_w2sq_between,
    exact_w2sq_block,
    exact_w2sq_pair,
    solve_pairs,
    support_table,
)

__all__ = [
    "COST_NAME",
    "DEFAULT_NUM_ITER_MAX",
    "ORACLE_VERSION",
    "RESULT_INFEASIBLE",
    "RESULT_MAX_ITER",
    "RESULT_OPTIMAL",
    "RESULT_UNBOUNDED",
    "RETRY_FACTOR",
    "OracleError",
    "SupportTable",
    "exact_w2sq",
    "exact_w2sq_between",
    "exact_w2sq_block",
    "exact_w2sq_pair",
    "solve_pairs",
    "support_table",
]
