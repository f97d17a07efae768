"""Throughput: the protocol (warm-up, rounds, batch sizes, time cap), not the speed."""

from __future__ import annotations

import math
import time

import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport, Solver, Surrogate
from wbench.throughput import (
    independent_step,
    measure_throughput,
    pairwise_step,
    speedup_columns,
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


def test_warmup_and_rounds_are_respected(measures):
    fake = CountingSurrogate()
    figures = measure_throughput(fake, measures, n_independent=64, n_pairwise=(12, 20), rounds=4, warmup=2, max_time_s=None)
    assert fake.distance_calls == [64] * (2 + 4)
    assert fake.pairwise_calls == [(12, 20)] * (2 + 4)
    assert not any(fake.grad_enabled)  # inference mode
    assert figures["throughput.independent_batch"] == 64
    assert figures["throughput.independent_rounds"] == 4
    assert (figures["throughput.pairwise_rows"], figures["throughput.pairwise_cols"]) == (12, 20)
    assert figures["throughput.pairwise_rounds"] == 4
    assert figures["throughput.warmup"] == 2
    assert figures["throughput.threads"] == torch.get_num_threads()
    for key in ("throughput.independent_pairs_per_s", "throughput.pairwise_pairs_per_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0


def test_more_measures_than_available_are_drawn_with_replacement(measures):
    fake = CountingSurrogate()
    figures = measure_throughput(fake, measures, n_independent=100, n_pairwise=64, rounds=1, warmup=0, max_time_s=None)
    assert fake.pairwise_calls == [(64, 64)]
    assert figures["throughput.independent_batch"] == 100


def test_a_protocol_can_be_skipped(measures):
    fake = CountingSurrogate()
    figures = measure_throughput(fake, measures, n_independent=16, n_pairwise=None, rounds=2, warmup=0, max_time_s=None)
    assert fake.pairwise_calls == [] and "throughput.pairwise_pairs_per_s" not in figures
    assert len(fake.distance_calls) == 2


def test_the_time_budget_bounds_a_slow_method(measures):
    slow = SlowSolver(sleep_per_pair=2e-4)  # 4096 pairs would take 0.8 s per call
    began = time.perf_counter()
    figures = measure_throughput(slow, measures, n_independent=4096, n_pairwise=None, rounds=5, warmup=1, max_time_s=0.7)
    elapsed = time.perf_counter() - began
    assert figures["throughput.independent_batch"] < 4096
    assert 1 <= figures["throughput.independent_rounds"] <= 5
    assert elapsed < 3.0
    # the ramp grew the batch geometrically before settling on the stated batch
    assert slow.distance_calls[-1] == figures["throughput.independent_batch"]
    assert figures["throughput.independent_pairs_per_s"] == pytest.approx(1 / 2e-4, rel=0.5)


def test_the_time_budget_keeps_full_batches_of_a_fast_method(measures):
    fake = CountingSurrogate()
    figures = measure_throughput(fake, measures, n_independent=256, n_pairwise=32, rounds=3, warmup=1, max_time_s=30)
    assert figures["throughput.independent_batch"] == 256
    assert figures["throughput.pairwise_rows"] == 32 and figures["throughput.pairwise_cols"] == 32
    assert fake.distance_calls[-4:] == [256] * 4  # warm-up + rounds at the full batch


def test_real_embedding_surrogate_on_cpu(measures):
    from wbench.surrogate import EmbeddingSurrogate

    class Linear(EmbeddingSurrogate):
        input_kind = "grid"

        def __init__(self, **params):
            super().__init__(**params)
            self.model = torch.nn.Linear(36, 8)

        def embed(self, x: MeasureBatch) -> torch.Tensor:
            return self.model(x.weights)

    model = Linear()
    figures = measure_throughput(model, measures, n_independent=128, n_pairwise=16, rounds=2, warmup=1, device="cpu")
    assert figures["throughput.cuda"] == 0.0
    assert figures["throughput.independent_batch"] == 128 and figures["throughput.pairwise_rows"] == 16
    assert all(math.isfinite(v) and v >= 0 for v in figures.values())
    a = measures.index(slice(0, 5))
    assert independent_step(model, a, a).shape == (5,)
    assert pairwise_step(model, a, measures).shape == (5, len(measures))


def test_time_call_measures_elapsed_time():
    assert time_call(lambda: time.sleep(0.02), "cpu") >= 0.015


def test_speedup_columns():
    row = {"throughput.independent_pairs_per_s": 3633.0, "throughput.pairwise_pairs_per_s": 213384.0}
    exact = {"throughput.independent_pairs_per_s": 192.0}
    speedups = speedup_columns(row, exact)
    assert speedups["speedup.independent"] == pytest.approx(3633 / 192)
    assert speedups["speedup.pairwise"] == pytest.approx(213384 / 192)
    exact["throughput.pairwise_pairs_per_s"] = 100.0
    assert speedup_columns(row, exact)["speedup.pairwise"] == pytest.approx(2133.84)
    assert speedup_columns(row, {}) == {}
    assert speedup_columns({"throughput.independent_pairs_per_s": 5.0}, {"throughput.independent_pairs_per_s": 0.0}) == {}
