"""pytest-benchmark suite: the step functions ``wbench run`` times, under pytest-benchmark.

Outside the default test paths; run it with::

    pytest benchmarks/bench_throughput.py --benchmark-only
    pytest benchmarks/bench_throughput.py --benchmark-only --benchmark-json=bench.json

It times :func:`wbench.timing.throughput.independent_step` and
:func:`wbench.timing.throughput.pairwise_step` on a small CNN embedding surrogate of about the
papers' size (defined here, untrained: the speed does not depend on the weights) and the exact
LP on a few pairs, on MNIST-sized 28x28 measures (random blobs, so no data files are needed),
on the CPU and, when there is one, on the GPU. pytest-benchmark does the warm-up, the rounds
and the statistics; on a GPU the timed function synchronises the device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate, FitReport, Solver
from wbench.timing.throughput import independent_step, pairwise_step, synchronize

N_INDEPENDENT = 1024
N_PAIRWISE = 512
N_EXACT = 16
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class SmallCNN(EmbeddingSurrogate):
    """A ~55k-parameter CNN embedding (the DeepKENN papers' encoder shape): 28x28 -> 64."""

    def __init__(self, **params):
        super().__init__(**params)
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(288, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
        )

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        return self.model(x.images())

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport(stopped_by="nothing to fit")


class ExactLP(Solver):
    """The exact LP (POT ``emd2`` on the supports), one pair at a time, on the CPU."""

    input_kind = "any"

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        from wbench.oracle.solve import exact_w2sq_pair

        values = [exact_w2sq_pair(*a.measure(i), *b.measure(i)) for i in range(len(a))]
        return torch.tensor(values, dtype=torch.float64).sqrt()


def blob_images(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(n, 2))
    widths = rng.uniform(1.5, 3.5, size=n)
    images = np.exp(-((rows - centres[:, 0, None, None]) ** 2 + (cols - centres[:, 1, None, None]) ** 2) / (2 * widths[:, None, None] ** 2))
    images[images < 0.05] = 0.0
    return torch.tensor(images, dtype=torch.float32)


@pytest.fixture(scope="module")
def measures() -> MeasureBatch:
    return MeasureBatch.from_images(blob_images(2 * N_INDEPENDENT))


def _on(device: str, fn, *args):
    def step():
        out = fn(*args)
        synchronize(device)
        return out

    return step


@pytest.mark.parametrize("device", DEVICES)
def test_independent_embedding(benchmark, measures, device):
    model = SmallCNN().to(device)
    a = measures.index(slice(0, N_INDEPENDENT)).to(device)
    b = measures.index(slice(N_INDEPENDENT, 2 * N_INDEPENDENT)).to(device)
    benchmark.extra_info.update(pairs=N_INDEPENDENT, device=device, threads=torch.get_num_threads())
    out = benchmark.pedantic(_on(device, independent_step, model, a, b), rounds=5, warmup_rounds=1)
    assert out.shape == (N_INDEPENDENT,)


@pytest.mark.parametrize("device", DEVICES)
def test_pairwise_embedding(benchmark, measures, device):
    model = SmallCNN().to(device)
    x = measures.index(slice(0, N_PAIRWISE)).to(device)
    y = measures.index(slice(N_PAIRWISE, 2 * N_PAIRWISE)).to(device)
    benchmark.extra_info.update(shape=f"{N_PAIRWISE} x {N_PAIRWISE}", pairs=N_PAIRWISE**2, device=device,
                                threads=torch.get_num_threads())
    out = benchmark.pedantic(_on(device, pairwise_step, model, x, y), rounds=5, warmup_rounds=1)
    assert out.shape == (N_PAIRWISE, N_PAIRWISE)


def test_independent_exact_lp(benchmark, measures):
    a, b = measures.index(slice(0, N_EXACT)), measures.index(slice(N_EXACT, 2 * N_EXACT))
    benchmark.extra_info.update(pairs=N_EXACT, device="cpu", threads=1)
    out = benchmark.pedantic(independent_step, args=(ExactLP(), a, b), rounds=3, warmup_rounds=1)
    assert out.shape == (N_EXACT,)
