"""The CPU fast paths of the CNN embeddings give the reference path's outputs (float round-off)."""

from __future__ import annotations

import copy

import pytest
import torch

from wbench.measures import MeasureBatch
from wbench_plugins.dwe.models import DWE, DWEMatched
from wbench_plugins.kenn.models import ODEKENN, DeepKENN, NaiveKENN


@pytest.fixture(scope="module")
def images() -> MeasureBatch:
    generator = torch.Generator().manual_seed(0)
    return MeasureBatch.from_images(torch.rand(40, 28, 28, generator=generator) ** 4)


def _reference_copy(model):
    """The same weights in the plain contiguous (NCHW) memory format, run eagerly (no frozen graphs)."""
    plain = copy.deepcopy(model)
    plain.channels_last_on_cpu = False
    plain.frozen_inference_on_cpu = False
    plain.to("cpu")
    return plain


@pytest.mark.parametrize("cls", [DWE, DWEMatched])
def test_dwe_channels_last_and_small_chunks_match_the_plain_path(cls, images, one_torch_thread):
    model = cls()
    assert model.model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = _reference_copy(model)
    assert plain.model.encoder[0].weight.is_contiguous()
    fast = model.embed_all(images)  # chunks of DWE.embed_batch = 256 (here all 40 in one)
    slow = plain.embed_all(images, batch_size=7)  # NCHW, other chunking
    assert fast.shape == (40, 50)
    assert (fast - slow).abs().max() < 1e-5 * max(1.0, float(slow.abs().max()))
    # training path (autograd) agrees too
    a, b = images.index(slice(0, 8)), images.index(slice(8, 16))
    w2sq = torch.rand(8)
    assert model.training_loss(a, b, w2sq).item() == pytest.approx(plain.training_loss(a, b, w2sq).item(), rel=1e-5)


@pytest.mark.parametrize("cls", [NaiveKENN, DeepKENN, ODEKENN])
def test_kenn_channels_last_matches_the_plain_path(cls, images, one_torch_thread):
    model = cls()
    with torch.no_grad():
        if hasattr(model.model, "u"):
            model.model.u.copy_(torch.linspace(-1.0, 2.0, model.model.u.numel()))
    plain = _reference_copy(model)
    fast = model.embed_all(images)
    slow = plain.embed_all(images)
    assert fast.shape == (40, model.embedding_dim)
    assert (fast - slow).abs().max() < 1e-5 * max(1.0, float(slow.abs().max()))


def test_deepkenn_inference_embedding_equals_the_autograd_path(images, one_torch_thread):
    model = DeepKENN()
    with torch.no_grad():
        model.model.u.copy_(torch.tensor([0.3, -1.0, 2.0, 0.0, 1.5, -0.5]))
    model.model.eval()
    x = model._input(images)
    with torch.enable_grad():
        reference = model.model.embed(x)  # the concatenation path used in training
    assert reference.requires_grad
    with torch.inference_mode():
        fast = model.model.embed(x)
    assert not fast.requires_grad
    assert torch.equal(fast, reference.detach())  # the same products: bitwise equal
