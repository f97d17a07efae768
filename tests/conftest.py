"""Shared fixtures: quiet progress bars, a private ground-truth cache, MNIST discovery."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _quiet_and_private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WBENCH_PROGRESS", "0")
    monkeypatch.setenv("WBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "wbench-cache"))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small tensors: one intra-op thread is as fast, deterministic, and immune to the
    OpenMP spin-waiting that slows 2 threads down many times on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mnist_root() -> Path:
    """The MNIST root folder from ``$WBENCH_MNIST_ROOT``; skips the test when it is not set."""
    root = os.environ.get("WBENCH_MNIST_ROOT")
    if not root:
        pytest.skip("WBENCH_MNIST_ROOT is not set: point it at a folder holding MNIST/raw/ to run this test")
    return Path(root)


def records(values: dict[str, list[float]], metric: str = "test.w2.mse", dataset: str = "mnist", **extra: dict) -> pd.DataFrame:
    """A records frame (one row per method and seed, status ok) for the statistics and claims
    tests: ``values[method]`` holds one ``metric`` value per seed; ``extra`` adds columns
    (``a__b`` for the column ``a.b``) as ``{method: value}``."""
    rows = []
    for method, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            row = {"dataset": dataset, "method": method, "method_name": method, "seed": seed, "status": "ok", metric: value}
            for column, by_method in extra.items():
                if method in by_method:
                    row[column.replace("__", ".")] = by_method[method]
            rows.append(row)
    return pd.DataFrame(rows)


def keyed(record: dict) -> dict:
    """``record`` with its real key (:func:`wbench.records.store.cell_key` of its identity
    fields), as the harness writes it: the leaderboard refuses a record whose key is not."""
    from wbench.records.store import Record, cell_key

    record["key"] = cell_key(**Record.from_dict({**record, "key": record.get("key") or "x"}).identity())
    return record
