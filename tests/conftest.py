"""Shared fixtures: quiet progress bars, a private ground-truth cache, MNIST discovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _quiet_and_private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WBENCH_PROGRESS", "0")
    monkeypatch.setenv("WBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "wbench-cache"))


@pytest.fixture
def mnist_root() -> Path:
    """The MNIST root folder from ``$WBENCH_MNIST_ROOT``; skips the test when it is not set."""
    root = os.environ.get("WBENCH_MNIST_ROOT")
    if not root:
        pytest.skip("WBENCH_MNIST_ROOT is not set: point it at a folder holding MNIST/raw/ to run this test")
    return Path(root)
