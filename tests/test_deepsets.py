"""DeepSets: invariances, weighted pooling, grid / cloud equivalence, sizes, regularisers, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wbench.budget import Budget
from wbench.measures import MeasureBatch
from wbench.surrogate import TorchSurrogate
from wbench.testing import toy_images
from wbench.train.loop import seed_everything
from wbench.train.sizing import apportion, build_at_parameter_target
from wbench_plugins.deepsets.models import PAPER_WIDTH, PAPER_WIDTHS, DeepSets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clouds(n: int = 6, k: int = 40, dim: int = 2, seed: int = 0) -> MeasureBatch:
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(n, k, dim, generator=g, dtype=torch.float64) * 2 + 1
    weights = torch.rand(n, k, generator=g, dtype=torch.float64) + 0.1
    return MeasureBatch.from_point_clouds(points, weights)


@pytest.fixture
def model() -> DeepSets:
    seed_everything(0)
    return DeepSets(dim=2, out_dim=4, coord_center=[1.0, 1.0], coord_scale=0.5)


# --------------------------------------------------------------------------- invariances


def test_permutation_invariance(model) -> None:
    x = _clouds()
    perm = torch.randperm(x.n_points, generator=torch.Generator().manual_seed(1))
    shuffled = MeasureBatch(x.weights[:, perm], x.support[:, perm])
    assert torch.allclose(model.embed_all(x), model.embed_all(shuffled), atol=1e-5, rtol=1e-5)
    model.model.double()  # in float64 the only difference is the summation order
    model_out = model._encode(x.support, x.weights)
    assert torch.allclose(model_out, model._encode(shuffled.support, shuffled.weights), atol=1e-12, rtol=0)


def test_zero_weight_padding_contributes_nothing(model) -> None:
    x = _clouds()
    pad_points = torch.randn(len(x), 13, 2, dtype=torch.float64) * 50  # far away: would matter if counted
    padded = MeasureBatch(
        torch.cat([x.weights, torch.zeros(len(x), 13, dtype=torch.float64)], dim=1),
        torch.cat([x.support, pad_points], dim=1),
    )
    assert torch.allclose(model.embed_all(x), model.embed_all(padded), atol=1e-5, rtol=1e-5)


def test_weights_scale_the_pooled_features(model) -> None:
    # a set with duplicated points and halved weights is the same measure
    x = _clouds(n=3)
    doubled = MeasureBatch(torch.cat([x.weights, x.weights], dim=1) / 2, torch.cat([x.support, x.support], dim=1))
    assert torch.allclose(model.embed_all(x), model.embed_all(doubled), atol=1e-5)
    # uniform sample sets of different sizes from one point are one Dirac
    one = MeasureBatch.from_point_clouds(torch.full((1, 5, 2), 0.3))
    many = MeasureBatch.from_point_clouds(torch.full((1, 500, 2), 0.3))
    assert torch.allclose(model.embed_all(one), model.embed_all(many), atol=1e-5)


def test_images_are_weighted_clouds_of_pixel_coordinates() -> None:
    seed_everything(0)
    images = MeasureBatch.from_images(toy_images(5, 8))
    params = DeepSets.params_for({"out_dim": 3}, images)
    assert params["dim"] == 2 and params["coord_center"] == [3.5, 3.5]
    assert params["coord_scale"] == pytest.approx(1 / np.sqrt(5.25), rel=1e-5)  # pixel std of an 8-grid
    model = DeepSets(**params)
    points, weights = images.point_clouds()
    clouds = MeasureBatch(weights.clone(), points.clone(), None)
    assert torch.allclose(model.embed_all(images), model.embed_all(clouds), atol=1e-5)
    d = model.distance(images.index([0, 1]), images.index([2, 3]))
    assert torch.allclose(d, model.distance(clouds.index([0, 1]), clouds.index([2, 3])), atol=1e-5)


def test_params_for_ignores_padding_and_respects_user_values() -> None:
    x = _clouds(n=2, k=10, dim=1)
    padded = MeasureBatch(
        torch.cat([x.weights, torch.zeros(2, 5, dtype=torch.float64)], dim=1),
        torch.cat([x.support, torch.full((2, 5, 1), 1e3, dtype=torch.float64)], dim=1),
    )
    assert DeepSets.params_for({}, padded)["coord_center"] == DeepSets.params_for({}, x)["coord_center"]
    given = DeepSets.params_for({"dim": 1, "coord_center": [0.0], "coord_scale": 2.0}, x)
    assert given["coord_center"] == [0.0] and given["coord_scale"] == 2.0


def test_output_is_in_ground_cost_units() -> None:
    # the same network on data scaled by c, with the standardisation following the data,
    # gives encodings scaled by c
    seed_everything(0)
    x = _clouds(n=4)
    m1 = DeepSets(**DeepSets.params_for({}, x))
    scaled = MeasureBatch(x.weights, x.support * 10)
    m10 = DeepSets(**DeepSets.params_for({}, scaled))
    m10.model.load_state_dict(m1.model.state_dict())
    assert torch.allclose(m10.embed_all(scaled), 10 * m1.embed_all(x), rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------- sizes


def test_parameter_counts() -> None:
    assert apportion(PAPER_WIDTH, PAPER_WIDTHS) == list(PAPER_WIDTHS)
    paper = DeepSets(dim=2, out_dim=2)
    assert paper.layer_sizes == {"phi": [50, 100, 36], "rho": [30, 30, 10], "out_dim": 2}
    assert paper.n_parameters == 11_258
    assert DeepSets(dim=1, out_dim=2).n_parameters == 11_208
    counts = [DeepSets(dim=2, out_dim=16, width=w).n_parameters for w in range(1, 600)]
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))
    for dim, out_dim, target in ((2, 2, 55_430), (2, 16, 20_000), (1, 2, 5_000), (2, 2, 250_000)):
        built = build_at_parameter_target(DeepSets, {"dim": dim, "out_dim": out_dim}, target)
        assert abs(built.n_parameters - target) <= 0.01 * target, (dim, out_dim, target, built.n_parameters)
    assert build_at_parameter_target(DeepSets, {"dim": 2, "out_dim": 2}, 55_430).n_parameters == 55_366


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="dim"):
        DeepSets(dim=0)
    with pytest.raises(ValueError, match="coord_center"):
        DeepSets(dim=2, coord_center=[0.0])
    with pytest.raises(ValueError, match="scale_range"):
        DeepSets(scale_range=(2.0, 1.0))


# --------------------------------------------------------------------------- round trip and pairwise


def test_save_load_and_pairwise(tmp_path, model) -> None:
    x = _clouds(n=5).to(dtype=torch.float32)
    path = tmp_path / "deepsets.pt"
    model.save(path)
    loaded = TorchSurrogate.load(path)
    assert type(loaded) is DeepSets and loaded.params == model.params
    assert torch.equal(loaded.embed_all(x), model.embed_all(x))
    matrix = model.pairwise(x, x)
    assert torch.allclose(torch.diagonal(matrix), model.distance(x, x), atol=1e-5)
    assert torch.allclose(torch.diagonal(matrix), torch.zeros(5), atol=1e-3)
    rows, cols = np.repeat(np.arange(5), 5), np.tile(np.arange(5), 5)
    assert torch.allclose(matrix, model.distance(x.index(rows), x.index(cols)).reshape(5, 5), atol=1e-4)


# --------------------------------------------------------------------------- regularisers


def _distributions():
    from wbench.oracle.groundtruth import attach_ground_truth
    from wbench_plugins.datasets.distributions import DistributionsDataset

    dataset = DistributionsDataset(n_sets=70, sample_size=100, n_pairs=600, seed=0).build()
    return attach_ground_truth(dataset, n_jobs=1, progress=False)


def _translation_error(model: DeepSets, dataset, n_draws: int = 16) -> float:
    """Mean of ``| |H(X+v) - H(Y+v)| - |H(X) - H(Y)| |`` over test pairs and random v."""
    pairs = dataset.pairs["test"]
    a, b = dataset.measures.index(pairs.left), dataset.measures.index(pairs.right)
    base = model.distance(a, b)
    g = torch.Generator().manual_seed(123)
    std = 1.0 / model.params["coord_scale"]
    errors = []
    for _ in range(n_draws):
        v = torch.randn(1, generator=g) * std
        moved = model.distance(MeasureBatch(a.weights, a.support + v), MeasureBatch(b.weights, b.support + v))
        errors.append(float((moved - base).abs().mean()))
    return float(np.mean(errors))


@pytest.mark.slow
def test_translation_regulariser_reduces_translation_error() -> None:
    dataset = _distributions()
    budget = Budget(epochs=None, steps=200, batch_size=32, lr=3e-3, seed=0)
    errors = {}
    for weight in (0.0, 3.0):
        seed_everything(0)
        model = DeepSets(**DeepSets.params_for({"width": 128, "translation_weight": weight}, dataset.measures))
        model.fit(dataset.split("train"), dataset.split("val"), budget)
        errors[weight] = _translation_error(model, dataset)
    assert errors[3.0] < 0.6 * errors[0.0], errors


def test_regularised_loss_adds_non_negative_terms() -> None:
    seed_everything(0)
    x = _clouds(n=8).to(dtype=torch.float32)
    a, b = x.index([0, 1, 2, 3]), x.index([4, 5, 6, 7])
    w2sq = torch.tensor([1.0, 2.0, 3.0, 4.0])
    plain = DeepSets(dim=2)
    regularised = DeepSets(dim=2, translation_weight=1.0, scaling_weight=1.0)
    regularised.model.load_state_dict(plain.model.state_dict())
    base = plain.training_loss(a, b, w2sq)
    assert torch.allclose(base, (plain.predict_w2(a, b) - w2sq.sqrt()).pow(2).mean(), rtol=1e-5)
    total = regularised.training_loss(a, b, w2sq)
    assert float(total.detach()) >= float(base.detach()) - 1e-6
    total.backward()
    assert all(p.grad is not None for p in regularised.model.parameters())
