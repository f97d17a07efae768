"""Dask-only pieces, imported only when a Dask cluster is used (needs ``distributed``)."""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin


class ResourceSlot(WorkerPlugin):
    """Gives a worker ``amount`` of the resource ``name`` unless it was started with some.

    Tasks that ask for one unit of it then run one at a time per worker (wbench's cells:
    a cell that times throughput has its worker's cores to itself).
    """

    idempotent = True

    def __init__(self, name: str, amount: float = 1.0):
        self.name, self.amount = name, amount

    async def setup(self, worker: Any) -> None:
        if self.name not in worker.state.total_resources:
            await worker.set_resources(**{self.name: self.amount})
