"""Timing cannot be gamed by memoising (issue 33): every timed embedding call gets new tensor
storage, and an ``e`` faster on the rounds' repeated measures than on never-seen ones is
detected and replaced by the never-seen figure."""

from __future__ import annotations

import hashlib
import time

import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate, FitReport
from wbench.timing.costmodel import fresh_copies, measure_cost_model, perturbed

SLEEP_S = 1e-3  # seconds per measure on a cache miss


class _Memo(EmbeddingSurrogate):
    """Sleeps ``SLEEP_S`` per measure unless it has seen the call's input before."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torch.nn.Linear(36, 4)
        self.seen: dict[object, torch.Tensor] = {}

    def key(self, x: MeasureBatch) -> object:
        raise NotImplementedError

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        key = self.key(x)
        if key not in self.seen:
            time.sleep(SLEEP_S * len(x))
            self.seen[key] = self.model(x.weights.to(torch.float32))
        return self.seen[key]

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport(stopped_by="nothing to fit")


class AddressMemo(_Memo):
    def key(self, x: MeasureBatch) -> object:
        return (x.weights.data_ptr(), tuple(x.weights.shape))


class ContentMemo(_Memo):
    def key(self, x: MeasureBatch) -> object:
        return hashlib.sha256(x.weights.numpy().tobytes()).hexdigest()


class Honest(_Memo):
    def key(self, x: MeasureBatch) -> object:
        return object()  # never seen: always the full cost


@pytest.fixture(scope="module")
def measures() -> MeasureBatch:
    return MeasureBatch.from_images(torch.rand(40, 6, 6, generator=torch.Generator().manual_seed(1)) + 0.01)


@pytest.mark.parametrize("cls", [AddressMemo, ContentMemo])
def test_a_memoising_embedding_is_timed_at_its_cost_on_new_measures(cls: type[_Memo], measures: MeasureBatch) -> None:
    model = measure_cost_model(cls(), measures, embed_batch=20, pair_block=8, rounds=3, min_round_s=0.02,
                               device="cpu")
    assert model.embed_s >= 0.5 * SLEEP_S  # before: the rounds' cache hits, ~1e-6 s per measure
    if cls is ContentMemo:
        assert model.memoised and model.to_record()["cost.memoised"] == 1.0


def test_an_honest_embedding_is_not_flagged(measures: MeasureBatch) -> None:
    model = measure_cost_model(Honest(), measures, embed_batch=20, pair_block=8, rounds=3, min_round_s=0.02,
                               device="cpu")
    assert not model.memoised and model.to_record()["cost.memoised"] == 0.0
    assert SLEEP_S <= model.embed_s < 3 * SLEEP_S


def test_fresh_copies_have_new_storage_and_equal_values(measures: MeasureBatch) -> None:
    copy = fresh_copies(measures)
    a, b = copy(), copy()
    assert a.weights.data_ptr() != measures.weights.data_ptr() or b.weights.data_ptr() != measures.weights.data_ptr()
    assert torch.equal(a.weights, measures.weights) and torch.equal(b.weights, measures.weights)


def test_perturbed_measures_are_new_content_and_still_probability_measures(measures: MeasureBatch) -> None:
    moved = perturbed(measures, seed=3)
    assert not torch.equal(moved.weights, measures.weights)
    torch.testing.assert_close(moved.weights.sum(dim=1), torch.ones(len(measures), dtype=moved.weights.dtype))
    assert float((moved.weights / measures.weights - 1).abs().max()) < 2e-6
