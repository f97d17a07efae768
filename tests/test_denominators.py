"""Fair speed-up denominators: the exact LP on the same cores as the method, interleaved."""

from __future__ import annotations

import time

import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.oracle import solve as oracle
from wbench.surrogate import FitReport, Solver
from wbench.timing.denominators import fair_speedups, forced_parallel_oracle, lp_callable


class SleepyMethod(Solver):
    """A method that records its torch thread count and sleeps 0.1 ms per pair."""

    input_kind = "any"

    def __init__(self) -> None:
        super().__init__()
        self.threads_seen: set[int] = set()

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        self.threads_seen.add(torch.get_num_threads())
        time.sleep(1e-4 * len(a))
        return torch.zeros(len(a))

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport()


@pytest.fixture(scope="module")
def measures() -> MeasureBatch:
    images = torch.rand(40, 6, 6, generator=torch.Generator().manual_seed(0)) + 0.01
    return MeasureBatch.from_images(images)


def test_one_core_side_pins_threads_and_times_the_in_process_lp(measures):
    method = SleepyMethod()
    result = fair_speedups(method, measures, method_batch=32, lp_batch_one_core=8, rounds=3, min_round_s=0.02, sides=("one_core",))
    assert result.all_cores is None
    side = result.one_core
    assert side is not None
    assert method.threads_seen == {1}
    assert (side.method_threads, side.lp_workers, side.lp_threads) == (1, 1, 1)
    assert side.method.rounds == side.lp.rounds == 3
    assert 1e-4 <= side.method.median_s < 5e-4  # seconds per pair of the sleeping method
    assert side.speedup == pytest.approx(side.method_pairs_per_s / side.lp_pairs_per_s)
    record = result.to_record()
    assert record["speedup.one_core.speedup"] == side.speedup
    assert record["speedup.one_core.method_threads"] == 1.0 and record["speedup.one_core.lp_batch"] == 8.0
    assert "speedup.all_cores.speedup" not in record


def test_lp_callable_solves_exactly_and_forced_parallel_restores(measures):
    a, b = measures.index(slice(0, 4)), measures.index(slice(4, 8))
    serial = lp_callable(a, b, n_jobs=1)()
    expected = oracle.exact_w2sq_between(a, b, n_jobs=1)
    assert serial.tolist() == expected.tolist()
    before = oracle.PARALLEL_MIN_SECONDS
    with forced_parallel_oracle():
        assert oracle.PARALLEL_MIN_SECONDS == 0.0
    assert before == oracle.PARALLEL_MIN_SECONDS


def test_bad_side_and_gpu_are_refused(measures):
    with pytest.raises(ValueError, match="unknown side"):
        fair_speedups(SleepyMethod(), measures, sides=("half_core",))


@pytest.mark.slow
def test_all_cores_side_uses_the_executor(measures):
    from joblib import effective_n_jobs

    method = SleepyMethod()
    result = fair_speedups(
        method, measures, method_batch=32, lp_batch_all_cores=64, all_threads=2, rounds=2, min_round_s=0.0,
        sides=("all_cores",),
    )
    side = result.all_cores
    assert side is not None
    assert method.threads_seen == {2} and side.method_threads == 2
    assert side.lp_workers == effective_n_jobs(-1)
    assert side.lp.median_s > 0
