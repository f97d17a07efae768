"""Roofline: FLOP counts with known answers, the GEMM rate, and the bounds' arithmetic."""

from __future__ import annotations

import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate, FitReport
from wbench.timing.roofline import (
    EmbeddingFlops,
    GemmRate,
    Roofline,
    count_flops,
    embedding_flops,
    gemm_rate,
    roofline,
)
from wbench.timing.rounds import round_stats


class LinearEmbedding(EmbeddingSurrogate):
    """36 -> 10 -> 4 linear embedding of 6x6 images: 2 * (36*10 + 10*4) = 800 FLOPs per item."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Linear(36, 10), torch.nn.Linear(10, 4))

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        return self.model(x.weights.to(torch.float32))

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport(stopped_by="nothing to fit")


@pytest.fixture(scope="module")
def measures() -> MeasureBatch:
    return MeasureBatch.from_images(torch.rand(20, 6, 6) + 0.01)


def test_count_flops_of_known_operations():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    conv = torch.nn.Conv2d(1, 8, 5, padding=2, bias=False)
    x = torch.randn(3, 1, 28, 28)
    # every output pixel of every channel: 25 multiply-adds
    assert count_flops(lambda: conv(x)) == 2 * 3 * 8 * 28 * 28 * 25


def test_embedding_flops_per_item(measures):
    flops = embedding_flops(LinearEmbedding(), measures, batch=16)
    assert flops == EmbeddingFlops(per_item=800.0, batch=16, embedding_dim=4)


def test_kenn_encoder_flops_match_the_published_count():
    from wbench_plugins.kenn.models import DeepKENN, NaiveKENN

    images = MeasureBatch.from_images(torch.rand(4, 28, 28))
    # conv1 2*8*25*784 + conv2 2*16*72*196 + conv3 2*32*144*49 + fc 2*(288*128 + 128*64) + head 2*64*64
    expected = 2 * (8 * 25 * 784 + 16 * 72 * 196 + 32 * 144 * 49 + 288 * 128 + 128 * 64 + 64 * 64)
    naive = embedding_flops(NaiveKENN(), images, batch=4)
    assert naive.per_item == expected == 1_315_072
    assert naive.embedding_dim == 64
    assert embedding_flops(DeepKENN(), images, batch=4).embedding_dim == 1568 + 784 + 288 + 128 + 64 + 64


def test_gemm_rate_is_measured_on_the_given_threads():
    rate = gemm_rate(size=64, threads=1, rounds=2, min_round_s=0.01)
    assert rate.threads == 1 and rate.size == 64 and rate.dtype == "float32"
    assert rate.flops_per_call == 2 * 64**3
    assert rate.gflops > 0
    record = rate.to_record()
    assert record["gemm.threads"] == 1.0 and record["gemm.gflops"] == rate.gflops
    with pytest.raises(ValueError, match="size"):
        gemm_rate(size=0)


def test_roofline_bounds_arithmetic():
    gemm = GemmRate(round_stats([2.0]), size=1000, dtype="float32", threads=2, device="cpu")  # 1 GFLOP/s
    assert gemm.gflops == pytest.approx(1.0)
    line = Roofline(EmbeddingFlops(per_item=1e6, batch=8, embedding_dim=50), gemm, embed_s=4e-3, pair_s=1e-6)
    assert line.achieved_gflops == pytest.approx(0.25)
    assert line.fraction == pytest.approx(0.25)
    assert line.embed_bound_items_per_s == pytest.approx(1000.0)
    assert line.independent_bound_pairs_per_s == pytest.approx(500.0)
    assert line.pairwise_bound_pairs_per_s == pytest.approx(1e9 / 100)
    record = line.to_record()
    assert record["roofline.pairwise_fraction"] == pytest.approx(1e6 / 1e7)
    assert record["flops.per_item"] == 1e6 and record["flops.embedding_dim"] == 50
    assert record["gemm.gflops"] == pytest.approx(1.0)


def test_roofline_of_a_surrogate(measures):
    line = roofline(LinearEmbedding(), measures, embed_s=1e-6, flops_batch=8, threads=1)
    assert line.flops.per_item == 800.0 and line.gemm.threads == 1
    assert line.achieved_gflops == pytest.approx(800.0 / 1e-6 / 1e9)


def test_deepsets_on_a_shared_grid_costs_fewer_flops_per_item_in_a_larger_batch():
    """Why the roofline counts FLOPs at the batch ``e`` was timed at: counted at 4 images
    and timed at 64, DeepSets (phi applied once to the shared grid) showed more GFLOP/s
    than the machine's GEMM rate."""
    from wbench_plugins.deepsets.models import DeepSets

    images = MeasureBatch.from_images(torch.rand(64, 8, 8) + 0.01)
    model = DeepSets(**DeepSets.params_for({}, images))
    small, large = embedding_flops(model, images, batch=4), embedding_flops(model, images, batch=64)
    assert large.per_item < small.per_item
    assert roofline(model, images, embed_s=1e-6, flops_batch=64, threads=1).flops == large
