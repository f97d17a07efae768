"""``lot-residual``: conformance, LOT at initialisation, matched size, the feature cache, units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.testing import check_surrogate, toy_dataset
from wbench.train.sizing import build_at_parameter_target
from wbench_plugins.lotnet.features import FeatureCache, measure_keys
from wbench_plugins.lotnet.models import LOTResidual
from wbench_plugins.references.lot import LOT

SMALL = {"width": 8, "reference_size": 32, "n_jobs": 1}


@pytest.fixture(scope="module")
def toy():
    return toy_dataset()


def _build(dataset, **params) -> LOTResidual:
    return LOTResidual(**LOTResidual.params_for({**SMALL, **params}, dataset.measures))


def test_conforms_on_images_and_clouds(toy) -> None:
    check_surrogate(LOTResidual, SMALL, toy)
    check_surrogate(LOTResidual, SMALL, toy_dataset(point_clouds=True))


def test_untrained_model_returns_lot_distances(toy) -> None:
    model = _build(toy)
    model.prepare(toy.split("train"))
    lot = LOT(reference="mean", reference_size=32, n_jobs=1)
    lot.fit(toy.split("train"), toy.split("val"), None)
    test = toy.pairs["test"]
    a, b = toy.measures.index(test.left), toy.measures.index(test.right)
    ours, theirs = model.distance(a, b).double(), lot.distance(a, b)
    assert float(model.model.lot_scale) == pytest.approx(lot.scale, rel=1e-12)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6), float((ours - theirs).abs().max())
    assert float(theirs.min()) > 0.1  # real distances, not all zero


def test_parameter_count_matches_the_mnist_budget() -> None:
    mnist_like = MeasureBatch.from_images(torch.rand(2, 28, 28))
    params = LOTResidual.params_for({"n_jobs": 1}, mnist_like)
    model = build_at_parameter_target(LOTResidual, params, 55_430, tolerance=0.01)
    assert model.params["width"] == 69
    assert model.n_parameters == (2 * 400 + 1) * 69 + 400 == 55_669
    counts = [LOTResidual(**{**params, "width": w}).n_parameters for w in (1, 2, 50, 51)]
    assert counts == sorted(counts) and len(set(counts)) == 4


def test_fit_solves_one_lp_per_measure_then_stops_caching(toy) -> None:
    model = _build(toy)
    train, val = toy.split("train"), toy.split("val")
    distinct = len(np.unique(np.concatenate([train.pairs.left, train.pairs.right, val.pairs.left, val.pairs.right])))
    report = model.fit(train, val, Budget(epochs=None, steps=12, batch_size=16, lr=1e-3))
    assert report.steps == 12 and report.epochs == 4  # 48 pairs: every measure met in several epochs
    assert report.extra["lp_solved"] == distinct == report.extra["measures_cached"]
    assert report.extra["cache_hits"] > 12 * 2 * 16 - distinct  # every batch after the first pass is served
    before = model.n_lp
    test = toy.pairs["test"]
    model.distance(toy.measures.index(test.left[:5]), toy.measures.index(test.right[:5]))
    model.distance(toy.measures.index(test.left[:5]), toy.measures.index(test.right[:5]))
    assert model.n_lp - before == 20  # after the fit, each call embeds fresh measures: 2 x 10 LPs
    # within one call a repeated measure is solved once (an evaluation split meets each measure often)
    repeated = toy.measures.index(np.repeat(test.left[:3], 4))
    before = model.n_lp
    features = model.lot_features(repeated)
    assert model.n_lp - before == len(np.unique(test.left[:3]))
    assert torch.equal(features[0], features[3]) and torch.equal(features[4], features[7])


def test_cache_keys_by_content_not_by_padding() -> None:
    points = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]])
    weights = torch.tensor([[0.5, 0.5, 0.0]])
    padded = MeasureBatch(weights, points, None)
    bare = MeasureBatch(weights[:, :2], points[:, :2], None)
    other = MeasureBatch(torch.tensor([[0.25, 0.75]]), points[:, :2], None)
    assert measure_keys(padded) == measure_keys(bare) != measure_keys(other)
    cache = FeatureCache(np.array([[0.2, 0.1], [0.7, -0.1]]), np.array([0.5, 0.5]))
    first = cache.features(padded)
    again = cache.features(bare)
    assert cache.n_lp == 1 and cache.n_hits == 1 and torch.equal(first, again)


def _blob(size: int, centre: tuple[float, float], width: float = 1.2) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    image = torch.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * width**2))
    image[image < 1e-3] = 0.0
    return image


def test_translation_distance_in_pixels() -> None:
    """W2 between an image and its shift by an integer vector v is |v| pixels: LOT is exact
    for it, and the trained model stays within a few percent (toy training)."""
    rng = np.random.default_rng(1)
    images = torch.stack([_blob(16, tuple(rng.uniform(5, 10, size=2))) for _ in range(40)])
    measures = MeasureBatch.from_images(images.float())
    left = rng.integers(0, 40, size=200)
    right = (left + rng.integers(1, 40, size=200)) % 40
    from wbench.oracle.solve import exact_w2sq

    w2sq = exact_w2sq(measures, left, right, n_jobs=1)
    train = LabelledPairs(measures, PairSet(left[:160], right[:160], w2sq[:160]))
    val = LabelledPairs(measures, PairSet(left[160:], right[160:], w2sq[160:]))
    model = LOTResidual(**LOTResidual.params_for({"width": 16, "reference_size": 64, "n_jobs": 1}, measures))
    model.fit(train, val, Budget(epochs=None, steps=60, batch_size=32, lr=1e-3))

    base = _blob(16, (7.0, 6.0))
    shifted = torch.roll(base, shifts=(3, 2), dims=(0, 1))  # the blob stays inside the grid
    pair = MeasureBatch.from_images(torch.stack([base, shifted]).float())
    exact = float(np.sqrt(13.0))
    assert float(exact_w2sq(pair, [0], [1], n_jobs=1)[0]) == pytest.approx(13.0, rel=1e-9)
    unscaled_lot = float(model.lot_distance(pair.index([0]), pair.index([1]))[0]) / float(model.model.lot_scale)
    assert unscaled_lot == pytest.approx(exact, rel=1e-6)
    learned = float(model.distance(pair.index([0]), pair.index([1]))[0])
    assert learned == pytest.approx(exact, rel=0.05)


def test_rejects_bad_input(toy) -> None:
    with pytest.raises(ValueError, match="width"):
        LOTResidual(width=0)
    with pytest.raises(ValueError, match="loss"):
        LOTResidual(loss="l1")
    with pytest.raises(ValueError, match="reference"):
        LOTResidual(reference="median")
    with pytest.raises(ValueError, match="fit"):
        _build(toy).distance(toy.measures.index([0]), toy.measures.index([1]))
    model = _build(toy)
    model.prepare(toy.split("train"))
    cloud3d = MeasureBatch.from_point_clouds(torch.rand(1, 4, 3))
    with pytest.raises(ValueError, match="2-D"):
        model.distance(cloud3d, cloud3d)


def test_evaluation_uses_the_weight_average(toy) -> None:
    model = _build(toy, ema=0.9)
    report = model.fit(toy.split("train"), toy.split("val"), Budget(epochs=None, steps=12, batch_size=16, lr=1e-2))
    net = model.model
    assert int(net.average_steps) == 3 * (report.best_epoch + 1)  # the best epoch's state, 3 steps an epoch
    features = torch.randn(5, model.n_features, dtype=torch.float64)
    net.eval()
    averaged = net(features)
    net.train()
    live = net(features)
    net.eval()
    g = features.float() * float(net.lot_scale)
    hidden = torch.nn.functional.gelu((g / float(net.input_unit)) @ net.average_hidden_weight.T + net.average_hidden_bias)
    expected = g + float(net.input_unit) * (hidden @ net.average_out_weight.T + net.average_out_bias)
    assert torch.allclose(averaged, expected, atol=1e-6)
    assert float((averaged - live).abs().max()) > 1e-4  # the average is not the last weights
    plain = _build(toy, ema=0.0)
    assert plain.n_parameters == model.n_parameters and not any("average" in k for k in plain.model.state_dict())


def test_training_skips_pairs_whose_lp_failed(toy) -> None:
    model = _build(toy)
    model.prepare(toy.split("train"))
    a, b = toy.measures.index([0, 1, 2]), toy.measures.index([3, 4, 5])
    w2sq = torch.tensor([1.0, 2.0, 3.0])
    full = model.training_loss(a, b, w2sq)
    real = model.lot_features
    model.lot_features = lambda x: torch.cat([torch.full_like(real(x)[:1], float("nan")), real(x)[1:]])  # measure 0 failed
    skipped = model.training_loss(a, b, w2sq)
    model.lot_features = real
    kept = model.training_loss(a.index([1, 2]), b.index([1, 2]), w2sq[1:])
    assert torch.isfinite(skipped) and float(skipped) == pytest.approx(float(kept), rel=1e-6)
    assert float(skipped) != pytest.approx(float(full), rel=1e-3)
    skipped.backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.model.parameters())


def test_a_large_batch_solves_its_lps_in_one_call(toy, monkeypatch) -> None:
    import wbench_plugins.lotnet.features as features

    model = _build(toy)
    model.prepare(toy.split("train"))
    calls: list[int] = []
    real = features.lot_features

    def counting(measures, *args, **kwargs):
        calls.append(len(measures))
        return real(measures, *args, **kwargs)

    monkeypatch.setattr(features, "lot_features", counting)
    chunked = model.embed_all(toy.measures, batch_size=5)
    assert calls == [len(toy.measures)]
    whole = model.embed_all(toy.measures)
    assert torch.allclose(chunked, whole)
