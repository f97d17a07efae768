"""The exact W2^2 blocks that metrics ask for (retrieval, Wassmap), shared by a worker's cells.

Next to :mod:`wbench.oracle.groundtruth`, whose cache holds them: in the client a block goes through
that cache; on a cluster worker it is kept in the process's memory and handed back for the
client to store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from wbench.data import PairedDataset
from wbench.errors import CacheError
from wbench.executor import where

_WORKER_BLOCKS: dict[str, np.ndarray] = {}
"""Exact blocks solved in this worker process (cache key -> values), reused by its later cells."""


class ExactBlocks:
    """The exact W2^2 blocks the metrics ask for (retrieval, Wassmap).

    In the client: through the cache (:func:`wbench.oracle.groundtruth.exact_pairwise_w2sq`). On a
    worker: from this process's memory, else read from the cache if the worker can see it,
    else solved on the worker and handed back in :attr:`computed` for the client to store.

    :param cache_dir: the cache folder (None: ``$WBENCH_CACHE_DIR`` where this runs).
    :param n_jobs: local processes for a block to solve.
    :param remote: running as a cluster task (never write the cache).
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None, n_jobs: int, *, remote: bool):
        self.cache_dir, self.n_jobs, self.remote = cache_dir, n_jobs, remote
        self.computed: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}

    def function(self, dataset: PairedDataset) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``block(rows, cols) -> (n, m)`` exact W2^2 between measures of ``dataset``."""
        from wbench.oracle.cache import read_entry
        from wbench.oracle.groundtruth import exact_pairwise_w2sq, plan_pairwise_block

        def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            if not self.remote:
                return exact_pairwise_w2sq(dataset, rows, cols, cache_dir=self.cache_dir, n_jobs=self.n_jobs)
            plan = plan_pairwise_block(dataset, rows, cols)
            values = _WORKER_BLOCKS.get(plan.key)
            if values is None:
                with contextlib.suppress(CacheError, OSError):
                    values = read_entry(plan.key, cache_dir=self.cache_dir, shape=plan.shape)
            if values is None:
                values = plan.solve(n_jobs=self.n_jobs, progress=False)
                self.computed[plan.key] = (values, {**plan.meta, "computed_on": where()})
            _WORKER_BLOCKS[plan.key] = values
            return values

        return block
