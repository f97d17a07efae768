"""``rg`` / ``rg-ls``: bounds against POT and the exact W2, exactness in 1-D, accuracy,
reproducibility, conformance and pairwise == distance."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs, PairedDataset, PairSet
from wbench.measures import MeasureBatch
from wbench.oracle import exact_w2sq
from wbench.registry import Registry
from wbench.testing import check_surrogate, toy_dataset
from wbench_plugins import rg as rg_plugin
from wbench_plugins.rg.bounds import bound_features
from wbench_plugins.rg.models import RG, RGLeastSquares
from wbench_plugins.rg.slicing import pair_costs, random_directions, slice_measures

BUDGET = Budget(epochs=1, seed=3)


def _clouds(n: int, n_points: int, dim: int, seed: int) -> MeasureBatch:
    """``n`` weighted clouds in R^dim: two random Gaussian blobs, random masses, some zero."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4, 4, size=(n, 2, dim))
    scales = rng.uniform(0.3, 1.5, size=(n, 2, 1, dim))
    pick = rng.integers(0, 2, size=(n, n_points))
    noise = rng.normal(size=(n, n_points, dim))
    points = centres[np.arange(n)[:, None], pick] + noise * scales[np.arange(n)[:, None], pick, 0]
    masses = rng.uniform(0.2, 1.0, size=(n, n_points))
    masses[:, :3] = 0.0  # padding-like zero-mass points
    return MeasureBatch.from_point_clouds(torch.tensor(points), torch.tensor(masses))


def _dataset(measures: MeasureBatch, n_train: int, n_test: int, seed: int) -> PairedDataset:
    rng = np.random.default_rng(seed)
    n, total = len(measures), n_train + 2 * n_test
    left = rng.integers(0, n, size=total)
    right = (left + rng.integers(1, n, size=total)) % n
    w2sq = exact_w2sq(measures, left, right, n_jobs=1, progress=False)
    cut = [n_train, n_train + n_test]
    pairs = {
        "train": PairSet(left[: cut[0]], right[: cut[0]], w2sq[: cut[0]]),
        "val": PairSet(left[cut[0] : cut[1]], right[cut[0] : cut[1]], w2sq[cut[0] : cut[1]]),
        "test": PairSet(left[cut[1] :], right[cut[1] :], w2sq[cut[1] :]),
    }
    return PairedDataset("synthetic", {"seed": seed}, measures, pairs)


@pytest.fixture(scope="module")
def clouds2d() -> PairedDataset:
    return _dataset(_clouds(30, 24, 2, seed=1), n_train=80, n_test=60, seed=2)


def _test_batches(dataset: PairedDataset) -> tuple[MeasureBatch, MeasureBatch, np.ndarray]:
    test = dataset.pairs["test"]
    return dataset.measures.index(test.left), dataset.measures.index(test.right), test.w2


def _fitted(cls: type, dataset: PairedDataset, budget: Budget = BUDGET, **params: object):
    model = cls(**params)
    model.fit(dataset.split("train"), dataset.split("val"), budget)
    return model


def _rel_mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - truth) / truth))


def test_bounds_match_pot_and_sandwich_the_exact_w2() -> None:
    measures = _clouds(2, 20, 2, seed=5)
    theta = random_directions(2, 12, seed=0)
    projected, lifted = pair_costs(
        slice_measures(measures.index([0]), theta), slice_measures(measures.index([1]), theta)
    )
    (xa, wa), (xb, wb) = measures.measure(0), measures.measure(1)
    th = theta.numpy()
    feats = {k: float(v[0]) for k, v in bound_features(projected, lifted).items()}
    assert np.sqrt(feats["sw"]) == pytest.approx(
        ot.sliced_wasserstein_distance(xa, xb, wa, wb, projections=th), rel=1e-10
    )
    assert np.sqrt(feats["maxsw"]) == pytest.approx(
        ot.max_sliced_wasserstein_distance(xa, xb, wa, wb, projections=th), rel=1e-10
    )
    cost = ot.dist(xa, xb)
    for k in range(th.shape[1]):  # lifted cost = the cost in R^D of POT's 1-D optimal plan
        plan = ot.emd_1d(xa @ th[:, k], xb @ th[:, k], wa, wb)
        assert float(lifted[0, k]) == pytest.approx(float((plan * cost).sum()), rel=1e-10)
    w2sq = ot.emd2(wa, wb, cost)
    assert feats["sw"] <= feats["ebsw"] <= feats["maxsw"] <= w2sq + 1e-12
    assert w2sq - 1e-12 <= feats["minswgg"] <= min(feats["pw"], feats["ebpw"])


def test_lifted_bounds_match_pot_on_uniform_clouds() -> None:
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(25, 3)), rng.normal(size=(25, 3)) + 1.0
    batch = MeasureBatch.from_point_clouds(torch.tensor(np.stack([xa, xb])))
    theta = random_directions(3, 10, seed=1)
    projected, lifted = pair_costs(
        slice_measures(batch.index([0]), theta), slice_measures(batch.index([1]), theta)
    )
    _, costs = ot.sliced.sliced_plans(xa, xb, projections=theta.numpy())[:2]
    assert np.allclose(lifted[0].numpy(), np.asarray(costs), rtol=1e-10)
    _, min_cost = ot.sliced.min_sliced_transport_plan(xa, xb, projections=theta.numpy())[:2]
    assert float(lifted[0].min()) == pytest.approx(float(min_cost), rel=1e-10)


@pytest.mark.parametrize("cls", [RG, RGLeastSquares])
def test_exact_on_one_dimensional_measures(cls: type) -> None:
    dataset = _dataset(_clouds(12, 15, 1, seed=7), n_train=20, n_test=15, seed=8)
    a, b, truth = _test_batches(dataset)
    predicted = _fitted(cls, dataset, n_projections=8).distance(a, b).cpu().numpy()
    assert np.max(np.abs(predicted - truth) / truth) < 1e-6


def test_both_variants_beat_sliced_w2(clouds2d: PairedDataset) -> None:
    a, b, truth = _test_batches(clouds2d)
    rg, ls = _fitted(RG, clouds2d), _fitted(RGLeastSquares, clouds2d)
    theta = rg.theta
    assert theta is not None
    projected, _ = pair_costs(slice_measures(a, theta), slice_measures(b, theta))
    sw = projected.mean(-1).sqrt().cpu().numpy()
    errors = {"sw": _rel_mae(sw, truth)}
    for name, model in (("rg", rg), ("rg-ls", ls)):
        predicted = model.distance(a, b).cpu().numpy()
        assert (
            predicted.shape == truth.shape
            and np.all(np.isfinite(predicted))
            and np.all(predicted >= 0)
        )
        errors[name] = _rel_mae(predicted, truth)
    assert errors["rg"] < errors["sw"] and errors["rg-ls"] < errors["sw"], errors
    assert rg.n_parameters == len(rg.coef) == 3 and ls.n_parameters == len(ls.coef) == 6
    assert 2 * rg.n_parameters == ls.n_parameters
    assert rg.describe()["val_rel_mae"] < rg.describe()["val_rel_mae_sw"]


def test_squared_target_and_bound_choice(clouds2d: PairedDataset) -> None:
    a, b, truth = _test_batches(clouds2d)
    model = _fitted(RG, clouds2d, bounds="sw:pw", squared=True)
    assert model.n_parameters == len(model.coef) == 1
    predicted = model.distance(a, b).cpu().numpy()
    assert np.all(np.isfinite(predicted)) and _rel_mae(predicted, truth) < 0.5
    with pytest.raises(ValueError):
        RG(bounds="pw:sw")


@pytest.mark.parametrize("cls", [RG, RGLeastSquares])
def test_same_seed_same_predictions(cls: type, clouds2d: PairedDataset) -> None:
    a, b, _ = _test_batches(clouds2d)
    first = _fitted(cls, clouds2d, max_pairs=50).distance(a, b)
    again = _fitted(cls, clouds2d, max_pairs=50).distance(a, b)
    other = _fitted(cls, clouds2d, Budget(epochs=1, seed=4), max_pairs=50).distance(a, b)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", ["rg", "rg-ls"])
def test_registered_plugin_conforms(name: str) -> None:
    registry = Registry()
    rg_plugin.wbench_register_surrogates(registry=registry)
    entry = registry.get("surrogate", name)
    cls = entry.load()
    assert cls is {"rg": RG, "rg-ls": RGLeastSquares}[name] and cls.input_kind == "any"
    for dataset in (toy_dataset(), toy_dataset(point_clouds=True)):
        check_surrogate(cls, entry.test_params, dataset, match_budget=False)


@pytest.mark.parametrize("grid", [True, False])
def test_pairwise_equals_distance(grid: bool, clouds2d: PairedDataset) -> None:
    dataset = toy_dataset(n=12) if grid else clouds2d
    model = _fitted(RG, dataset, n_projections=20)
    x, y = dataset.measures.index(np.arange(5)), dataset.measures.index(np.arange(3, 10))
    matrix = model.pairwise(x, y)
    rows, cols = np.repeat(np.arange(5), 7), np.tile(np.arange(7), 5)
    aligned = model.distance(x.index(rows), y.index(cols)).reshape(5, 7)
    assert matrix.shape == (5, 7)
    assert torch.allclose(matrix, aligned, rtol=1e-10, atol=1e-12)


def test_fit_report_and_device(clouds2d: PairedDataset) -> None:
    train: LabelledPairs = clouds2d.split("train")
    report = RG(max_pairs=30).fit(train, clouds2d.split("val"), BUDGET)
    assert report.steps == 1 and report.stopped_by == "closed form"
    assert report.extra["train_pairs_used"] == 30 and len(report.val_mse) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(clouds2d: PairedDataset) -> None:
    a, b, _ = _test_batches(clouds2d)
    cpu = _fitted(RG, clouds2d).distance(a, b)
    gpu_model = _fitted(RG, clouds2d, Budget(epochs=1, seed=3, device="cuda"))
    gpu = gpu_model.distance(a, b)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-8)
    assert torch.allclose(
        gpu_model.pairwise(a.index([0, 1]), b.index([2, 3])).cpu(),
        gpu_model.distance(a.index([0, 0, 1, 1]), b.index([2, 3, 2, 3])).reshape(2, 2).cpu(),
    )


def test_atoms_without_mass_are_dropped_and_change_no_cost(monkeypatch) -> None:
    """Sparse grid measures (as MNIST digits): the merge keeps only atoms with mass, and the
    projected and lifted costs equal those of the full merge to round-off."""
    import wbench_plugins.rg.slicing as slicing

    generator = torch.Generator().manual_seed(3)
    side = 12
    axis = torch.arange(side, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    weights = torch.rand(6, side * side, generator=generator, dtype=torch.float64)
    weights[weights < 0.8] = 0
    weights /= weights.sum(1, keepdim=True)
    batch = MeasureBatch(weights=weights, support=grid, grid_shape=(side, side))
    theta = random_directions(2, 16, 0)
    pruned = slice_measures(batch, theta)
    assert pruned.values.shape == (6, 16, int((weights > 0).sum(1).max()))
    left, right = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 4, 3, 2, 2])
    projected, lifted = pair_costs(pruned, pruned, left, right)
    monkeypatch.setattr(slicing, "_drop_empty_atoms", lambda values, order, masses: (values, order, masses))
    full = slice_measures(batch, theta)
    assert full.values.shape == (1, 16, side * side)
    projected_full, lifted_full = pair_costs(full, full, left, right)
    torch.testing.assert_close(projected, projected_full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lifted, lifted_full, rtol=1e-12, atol=1e-12)
    assert bool((projected <= lifted + 1e-12).all())
