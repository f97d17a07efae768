"""The frozen-graph CPU fast path (wbench.train.frozen) gives the eager forward's outputs, follows
weight changes, and falls back to the eager forward when a graph cannot be trusted."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from wbench.measures import MeasureBatch
from wbench.train.frozen import FrozenForward, weights_key
from wbench_plugins.kenn.models import ODEKENN, DeepKENN, NaiveKENN


@pytest.fixture(scope="module")
def images() -> MeasureBatch:
    generator = torch.Generator().manual_seed(1)
    return MeasureBatch.from_images(torch.rand(300, 28, 28, generator=generator) ** 4)


def _eager(model, measures: MeasureBatch) -> torch.Tensor:
    model.frozen_inference_on_cpu = False
    try:
        return model.embed_all(measures)
    finally:
        model.frozen_inference_on_cpu = True


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("cls", [NaiveKENN, DeepKENN, ODEKENN])
def test_kenn_embeddings_through_frozen_graphs_equal_the_eager_forward(cls, images, one_torch_thread):
    model = cls()
    assert cls.embed_batch == 256
    fast = model.embed_all(images)  # chunks of 256 and 44: two graphs
    assert model.frozen.disabled is None
    assert len(model.frozen._graphs) == 2
    reference = _eager(model, images)
    assert _close(fast, reference)
    assert not torch.equal(fast, torch.zeros_like(fast))
    assert torch.equal(model.embed_all(images), fast)  # the first call already gives the graph's output
    one = images.index(slice(3, 4))
    assert _close(model.embed_all(one), reference[3:4])
    # the pair distance uses the same path
    a, b = images.index(slice(0, 5)), images.index(slice(5, 10))
    expected = (reference[0:5] - reference[5:10]).norm(dim=1)
    assert torch.allclose(model.distance(a, b), expected, rtol=1e-5, atol=1e-6)


def test_a_training_step_rebuilds_the_graph(images, one_torch_thread):
    model = NaiveKENN()
    batch = images.index(slice(0, 64))
    before = model.embed_all(batch)
    key = weights_key(model.model)
    optimizer = torch.optim.Adam(model.model.parameters(), lr=1e-2)
    model.model.train()
    loss = model.embed(batch).pow(2).mean()
    loss.backward()
    optimizer.step()
    assert weights_key(model.model) != key
    after = model.embed_all(batch)
    assert float((after - before).abs().max()) > 1e-4  # the weights moved: a stale graph would repeat `before`
    assert _close(after, _eager(model, batch))


def test_load_state_dict_rebuilds_the_graph(images, one_torch_thread):
    first = NaiveKENN()
    torch.manual_seed(5)
    second = NaiveKENN()
    batch = images.index(slice(0, 32))
    first.embed_all(batch)
    first.model.load_state_dict(second.model.state_dict())
    assert _close(first.embed_all(batch), _eager(second, batch))


def test_odekenn_graphs_follow_the_evaluation_solver(images, one_torch_thread):
    model = ODEKENN()
    batch = images.index(slice(0, 16))
    rk4 = model.embed_all(batch)
    model.configure(method="euler", substeps=1)
    euler = model.embed_all(batch)
    assert float((euler - rk4).abs().max()) > 1e-6  # a graph traced with rk4 would repeat rk4
    assert _close(euler, _eager(model, batch))


def test_training_and_autograd_do_not_use_the_graphs(images, one_torch_thread):
    model = DeepKENN()
    batch = images.index(slice(0, 8))
    model.model.train()
    out = model.embed(batch)
    assert out.requires_grad
    assert len(model.frozen._graphs) == 0


def test_a_graph_that_disagrees_with_the_eager_forward_is_not_used():
    frozen = FrozenForward()
    net = nn.Linear(3, 3)

    def noisy(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return module(x) + torch.rand_like(x)  # the trace replays another draw: disagrees

    x = torch.ones(4, 3)
    with torch.no_grad():
        frozen(net, noisy, x)
    assert frozen.disabled is not None and "disagrees" in frozen.disabled
    assert len(frozen._graphs) == 0


def test_a_graph_that_cannot_be_built_falls_back_to_the_eager_forward(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("TorchScript is not available here")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    frozen = FrozenForward()
    net = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    with torch.no_grad():
        out = frozen(net, lambda module, t: module(t), x)
        assert torch.equal(out, net(x))
    assert frozen.disabled == "frozen graph not built (RuntimeError: TorchScript is not available here)"


def test_copies_and_pickles_start_without_graphs(images, one_torch_thread):
    model = NaiveKENN()
    model.embed_all(images.index(slice(0, 10)))
    assert len(model.frozen._graphs) == 1
    assert len(copy.deepcopy(model).frozen._graphs) == 0
    restored = pickle.loads(pickle.dumps(model.frozen))
    assert len(restored._graphs) == 0 and restored.max_graphs == model.frozen.max_graphs


def test_graphs_are_kept_per_shape_up_to_the_limit():
    frozen = FrozenForward(max_graphs=2)
    net = nn.Linear(3, 2)
    with torch.no_grad():
        for n in (1, 2, 3):
            frozen(net, lambda module, t: module(t), torch.randn(n, 3))
    assert [key[0][0] for key in frozen._graphs] == [2, 3]


def test_flop_counts_see_the_eager_forward_not_the_graph(images, one_torch_thread):
    from wbench.timing.roofline import embedding_flops

    model = NaiveKENN()
    counts = [embedding_flops(model, images, batch=64).per_item for _ in range(3)]  # build, then through the graph
    model.frozen_inference_on_cpu = False
    eager = embedding_flops(model, images, batch=64).per_item
    assert counts == [eager] * 3
    assert eager == pytest.approx(1.315e6, rel=0.01)  # the paper encoder + head at 28x28


def test_nan_outputs_that_the_eager_forward_gives_too_are_agreement():
    frozen = FrozenForward()
    net = nn.Linear(3, 2)
    x = torch.tensor([[1.0, 2.0, 3.0], [float("nan"), 0.0, 0.0]])
    with torch.no_grad():
        out = frozen(net, lambda module, t: module(t), x)
        expected = net(x)
    assert frozen.disabled is None and len(frozen._graphs) == 1
    assert torch.isnan(out[1]).all() and torch.allclose(out[0], expected[0])


def _resident_mib() -> float:
    """This process's resident memory now (MiB; Linux)."""
    from wbench.run.sandbox_child import resident_bytes

    return resident_bytes() / 2**20


def test_training_validations_build_no_graph_and_memory_stays_flat(one_torch_thread, monkeypatch):
    """Each validation of a fit sees new weights; a frozen graph per validation cost a trace and
    about 10 MB that torch's tracer never frees (the method process of a 4,000-step run at 500
    pairs, a validation every 2 steps, grew to 11 GB). Validations run eager."""
    from wbench.budget import Budget
    from wbench.testing import toy_dataset

    builds = []
    build = FrozenForward._build
    monkeypatch.setattr(FrozenForward, "_build", lambda self, *a: builds.append(1) or build(self, *a))
    data = toy_dataset(n=64, size=16, n_pairs=700, seed=3)
    model = DeepKENN(**DeepKENN.params_for({"width": 8}, data.measures))
    train, val = data.split("train"), data.split("val")
    budget = Budget(steps=60, batch_size=len(train) // 2 + 1, seed=0)  # an epoch of 2 steps: 30 validations
    model.fit(train, val, budget)  # warm: allocator pools, lazily imported modules
    before = _resident_mib()
    report = model.fit(train, val, budget)
    grown = _resident_mib() - before
    assert report.epochs == 30 and len(report.val_mse) == 30
    assert builds == []
    assert grown < 60, f"resident memory grew by {grown:.0f} MiB over 30 validations"
    model.embed_all(val.measures)  # inference after the fit still uses a graph
    assert builds
