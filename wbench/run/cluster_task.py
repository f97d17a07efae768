"""A cell as a Dask task: pickling it for a worker, running it there with the worker's threads.

The worker writes nothing that lasts: artifacts come back as bytes and exact blocks solved
there come back for the client's cache (:class:`wbench.run.cell.CellResult`).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from wbench.data import PairedDataset
from wbench.executor import worker_threads
from wbench.oracle.exact_blocks import ExactBlocks
from wbench.run.cell import CellResult, CellTask, compute_cell
from wbench.timing.rounds import thread_limit

CELL_RESOURCE = "wbench-cell"
"""The Dask worker resource a cell holds while it runs. Every worker gets one unit (unless
it was started with ``--resources wbench-cell=N``), so a worker runs one cell at a time: a
cell's throughput timing has its worker's cores (threads) to itself."""


def run_cell_task(payload: bytes, datasets: Mapping[str, PairedDataset]) -> CellResult:
    """The cluster task of a cell: :func:`compute_cell` on a worker, using its threads.

    Artifacts are made in a temporary folder and returned as bytes, exact blocks solved
    here are returned for the client's cache: the worker writes nothing that lasts.
    """
    import pickle

    task: CellTask = pickle.loads(payload)
    threads = worker_threads()
    with tempfile.TemporaryDirectory(prefix="wbench-cell-") as tmp, thread_limit(max(1, threads) if threads is not None else None):
        root = Path(tmp)
        blocks = ExactBlocks(task.cache_dir, task.n_jobs, remote=True)
        result = compute_cell(task, datasets, root, blocks)
        result.files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return result


def dump_task(task: CellTask) -> bytes:
    """Pickle a cell for a worker; classes of local plugin files (``--plugin FILE``) travel
    by value, so the workers need not have those files."""
    import cloudpickle

    from wbench.plugin.manager import LOCAL_PLUGIN_PREFIX

    for name, module in list(sys.modules.items()):
        if name.startswith(LOCAL_PLUGIN_PREFIX) and module is not None:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(task)
