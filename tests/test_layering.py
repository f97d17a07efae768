"""The core's layering: no import cycle between surrogates and training, no built-in plugin
named in the statistics and evaluation modules, and the base class declares its hooks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import REPO

from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.surrogate import Solver
from wbench.train.loop import predict_pairs


def test_the_training_stage_does_not_import_the_surrogate_module() -> None:
    code = "import sys, wbench.train.loop; print('wbench.surrogate' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_generic_core_modules_name_no_built_in_method() -> None:
    names = re.compile(r"\b(odekenn|deepkenn|naive|dwe|lot|exact-lp|sinkhorn)\b")
    for module in ("stats.py", "evaluation.py", "board/leaderboard.py", "sections.py", "plugin/hookspecs.py"):
        text = (REPO / "wbench" / module).read_text()
        assert not names.search(text), f"wbench/{module} names {names.search(text).group(0)!r}"


class _Centroids(Solver):
    input_kind = "any"

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        return (a.weights.sum(dim=1) - b.weights.sum(dim=1)).abs()


def test_write_artifacts_is_declared_with_a_no_op_default(tmp_path: Path) -> None:
    assert _Centroids().write_artifacts(tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_predict_pairs_batches_and_keeps_the_order() -> None:
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
    measures = MeasureBatch.from_images(weights.reshape(3, 1, 2), normalise=False)
    pairs = LabelledPairs(measures, PairSet(np.array([0, 1, 2, 0]), np.array([1, 2, 0, 0])))
    got = predict_pairs(_Centroids(), pairs, batch_size=3)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, [0.5, 1.5, 1.0, 0.0])  # |mass difference|, two batches
