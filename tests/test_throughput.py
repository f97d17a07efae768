"""Throughput: the protocol (warm-up, rounds, batch sizes, time cap), not the speed."""

from __future__ import annotations

import time

import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport, Solver, Surrogate
from wbench.timing.throughput import (
    time_call,
)


class CountingSurrogate(Surrogate):
    """Records the batch size of every distance / pairwise call; returns zeros."""

    input_kind = "any"

    def __init__(self, sleep_per_pair: float = 0.0):
        super().__init__()
        self.distance_calls: list[int] = []
        self.pairwise_calls: list[tuple[int, int]] = []
        self.sleep_per_pair = sleep_per_pair
        self.grad_enabled: list[bool] = []

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport()

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        assert len(a) == len(b)
        self.distance_calls.append(len(a))
        self.grad_enabled.append(torch.is_grad_enabled())
        time.sleep(self.sleep_per_pair * len(a))
        return torch.zeros(len(a))

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        self.pairwise_calls.append((len(x), len(y)))
        time.sleep(self.sleep_per_pair * len(x) * len(y))
        return torch.zeros(len(x), len(y))


class SlowSolver(CountingSurrogate, Solver):
    pass


@pytest.fixture(scope="module")
def measures() -> MeasureBatch:
    return MeasureBatch.from_images(torch.rand(40, 6, 6) + 0.01)


def test_time_call_measures_elapsed_time():
    assert time_call(lambda: time.sleep(0.02), "cpu") >= 0.015


