"""DWE: architecture and parameter counts, loss, decoder, embedding-space tools, POT references, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from wbench.budget import Budget
from wbench.measures import MeasureBatch
from wbench.surrogate import TorchSurrogate
from wbench.testing import toy_dataset, toy_images
from wbench.train.loop import seed_everything
from wbench.train.sizing import apportion, build_at_parameter_target
from wbench_plugins.dwe import tools
from wbench_plugins.dwe.models import DWE, PAPER_WIDTH, PAPER_WIDTHS, DWEMatched

TINY = {"grid_shape": [8, 8], "width": 24}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy():
    return toy_dataset(n=24, size=8, n_pairs=80)


@pytest.fixture(scope="module")
def fitted(toy) -> DWE:
    seed_everything(0)
    model = DWE(**TINY)
    model.fit(toy.split("train"), toy.split("val"), Budget(epochs=3, batch_size=16, lr=3e-3, seed=0))
    return model


# --------------------------------------------------------------------------- sizes


def test_native_parameter_counts_are_the_papers_network() -> None:
    native = DWE(grid_shape=(28, 28))
    assert native.layer_sizes == {
        "conv1": 20, "bottleneck": 5, "hidden": 100, "embed_dim": 50, "decoder_hidden": 100, "decoder_conv": 20,
    }
    # encoder: conv 1->20 3x3 (200) + conv 20->5 5x5 (2,505) + dense 3920->100 (392,100) + dense 100->50 (5,050)
    assert native.model.encoder_parameters() == 399_855
    # decoder: dense 50->100 (5,100) + dense 100->3920 (395,920) + conv 5->20 5x5 (2,520) + conv 20->1 3x3 (181)
    assert native.model.decoder_parameters() == 403_721
    assert native.n_parameters == native.n_parameters_trained == 803_576  # training updates the decoder too
    assert native.n_parameters_inference == 399_855  # distances use the encoder only
    assert DWE(grid_shape=(8, 8)).n_parameters == 79_976
    assert native.describe()["parameter_count_includes_decoder"] is True


def test_width_apportionment_is_house_monotone() -> None:
    assert apportion(PAPER_WIDTH, PAPER_WIDTHS) == list(PAPER_WIDTHS)
    previous = apportion(1, PAPER_WIDTHS)
    for total in range(2, 400):
        current = apportion(total, PAPER_WIDTHS)
        assert all(c >= p for c, p in zip(current, previous, strict=True))
        previous = current


def test_matched_parameter_count_is_monotone_and_reaches_targets() -> None:
    for attribute in ("n_parameters", "n_parameters_inference"):
        counts = [getattr(DWEMatched(grid_shape=(28, 28), width=w), attribute) for w in range(1, 200)]
        assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))
    for grid, target in (((28, 28), 55_430), ((28, 28), 100_000), ((8, 8), 20_000), ((8, 8), 55_430)):
        model = build_at_parameter_target(DWEMatched, {"grid_shape": list(grid)}, target, tolerance=0.01)
        assert abs(model.n_parameters_inference - target) <= 0.01 * target, (grid, target, model.n_parameters_inference)
    # matched on the encoder by default (width 157: 55,616 encoder + 55,515 decoder) ...
    matched = build_at_parameter_target(DWEMatched, {"grid_shape": [28, 28]}, 55_430)
    assert (matched.params["width"], matched.n_parameters_inference, matched.n_parameters_trained) == (157, 55_616, 111_131)
    # ... or, as before issue 18, on everything trained (width 77: the encoder has 27,816)
    whole = build_at_parameter_target(DWEMatched, {"grid_shape": [28, 28]}, 55_430, count="trained")
    assert (whole.params["width"], whole.n_parameters_inference, whole.n_parameters) == (77, 27_816, 55_531)
    with pytest.raises(ValueError, match="parameter count 'all'"):
        build_at_parameter_target(DWEMatched, {"grid_shape": [28, 28]}, 55_430, count="all")
    with pytest.raises(ValueError, match="no width option"):
        build_at_parameter_target(DWE, {"grid_shape": [28, 28]}, 55_430)


def test_params_for_fills_the_grid_and_rejects_point_clouds(toy) -> None:
    assert DWE.params_for({}, toy.measures)["grid_shape"] == (8, 8)
    assert DWE.params_for({"grid_shape": [4, 4]}, toy.measures)["grid_shape"] == [4, 4]
    clouds = toy_dataset(n=6, n_pairs=10, point_clouds=True).measures
    with pytest.raises(ValueError, match="grid"):
        DWE.params_for({}, clouds)


# --------------------------------------------------------------------------- model and loss


def test_decoder_outputs_valid_histograms() -> None:
    seed_everything(0)
    model = DWE(**TINY)
    z = torch.randn(32, 50) * 5
    out = model.decode(z)
    assert out.shape == (32, 8, 8)
    assert bool((out >= 0).all())
    assert torch.allclose(out.sum(dim=(1, 2)), torch.ones(32), atol=1e-5)
    recon = model.reconstruct(MeasureBatch.from_images(toy_images(5, 8)))
    assert torch.allclose(recon.sum(dim=(1, 2)), torch.ones(5), atol=1e-5) and bool((recon >= 0).all())


def test_loss_terms() -> None:
    seed_everything(0)
    images = MeasureBatch.from_images(toy_images(8, 8))
    a, b = images.index([0, 1, 2, 3]), images.index([4, 5, 6, 7])
    w2sq = torch.tensor([1.0, 2.0, 3.0, 4.0])
    bare = DWE(**TINY, kl_weight=0.0, sparsity_weight=0.0)
    full = DWE(**TINY)
    full.model.load_state_dict(bare.model.state_dict())
    d2 = (bare.embed(a) - bare.embed(b)).pow(2).sum(dim=1)
    expected = (d2 - w2sq).pow(2).mean()
    assert torch.allclose(bare.training_loss(a, b, w2sq), expected, rtol=1e-5)
    # reconstruction and sparsity terms are non-negative and weighted as configured
    assert float(full.training_loss(a, b, w2sq).detach()) > float(expected.detach())


def test_short_fit_improves_validation(toy, fitted) -> None:
    seed_everything(0)
    untrained = DWE(**TINY)
    from wbench.train.loop import validation_mse

    assert validation_mse(fitted, toy.split("val")) < validation_mse(untrained, toy.split("val"))


def test_distance_is_the_diagonal_of_pairwise(toy, fitted) -> None:
    x = toy.measures.index(np.arange(7))
    pair = fitted.pairwise(x, x)
    diag = fitted.distance(x, x.index(np.arange(7)))
    assert torch.allclose(torch.diagonal(pair), diag, atol=1e-4)
    rows = np.repeat(np.arange(7), 7)
    cols = np.tile(np.arange(7), 7)
    aligned = fitted.distance(x.index(rows), x.index(cols)).reshape(7, 7)
    assert torch.allclose(pair, aligned, atol=1e-4, rtol=1e-4)


def test_save_load_round_trip(tmp_path, toy, fitted) -> None:
    x = toy.measures.index(np.arange(6))
    for model in (fitted, DWEMatched(grid_shape=[8, 8], width=30)):
        path = tmp_path / f"{type(model).__name__}.pt"
        model.save(path)
        loaded = TorchSurrogate.load(path)
        assert type(loaded) is type(model) and loaded.params == model.params
        assert torch.equal(loaded.embed_all(x), model.embed_all(x))
        assert torch.equal(tools.reconstruct(loaded, x), tools.reconstruct(model, x))


# --------------------------------------------------------------------------- embedding-space tools


def test_barycenter_of_one_image_is_its_reconstruction(toy, fitted) -> None:
    for i in (0, 3):
        one = toy.measures.index([i])
        assert torch.equal(tools.barycenter(fitted, one, [1.0]), tools.reconstruct(fitted, one)[0])
    # a zero weight removes an image
    three = toy.measures.index([0, 1, 2])
    only_second = tools.barycenter(fitted, three, [0.0, 2.0, 0.0])
    assert torch.allclose(only_second, tools.reconstruct(fitted, toy.measures.index([1]))[0], atol=1e-6)
    with pytest.raises(ValueError):
        tools.barycenter(fitted, three, [1.0, -1.0, 1.0])


def test_interpolation_ends_are_the_reconstructions(toy, fitted) -> None:
    pair = toy.measures.index([0, 5])
    frames = tools.interpolate(fitted, pair, 5)
    assert frames.shape == (5, 8, 8)
    recon = tools.reconstruct(fitted, pair)
    assert torch.allclose(frames[0], recon[0], atol=1e-6) and torch.allclose(frames[-1], recon[1], atol=1e-6)
    assert torch.allclose(frames.sum(dim=(1, 2)), torch.ones(5), atol=1e-5)


def test_pga_components(toy, fitted) -> None:
    result = tools.pga(fitted, toy.measures, n_components=3, n_steps=5, span=2.0)
    assert result.images.shape == (3, 5, 8, 8)
    assert np.allclose(result.components @ result.components.T, np.eye(3), atol=1e-8)
    assert np.all(np.diff(result.stds) <= 1e-12) and np.all(result.explained_variance_ratio > 0)
    # the middle step is the decoded mean
    assert np.allclose(result.images[:, 2], result.mean_image[None], atol=1e-6)
    assert np.allclose(result.images.sum(axis=(2, 3)), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- POT references


@pytest.mark.parametrize("method", ["free_support", "lp"])
def test_pot_barycenter_of_one_image_is_the_image(method) -> None:
    images = MeasureBatch.from_images(toy_images(3, 8))
    points, masses = tools.pot_barycenter(images.index([1]), [1.0], method=method)
    original = images.measure(1)
    assert tools.w2_between(points, masses, *original) < 1e-6
    assert np.allclose(tools.points_to_image(points, masses, (8, 8)), images.weights[1].reshape(8, 8).double().numpy(), atol=1e-8)


def test_pot_barycenter_of_translated_copies_is_the_midpoint() -> None:
    base = np.zeros((2, 12, 12))
    base[0, 2:5, 2:4] = [[1, 2], [3, 1], [2, 2]]
    base[1, 6:9, 4:6] = base[0, 2:5, 2:4]  # shifted by (4, 2)
    images = MeasureBatch.from_images(torch.tensor(base))
    midpoint = np.zeros((12, 12))
    midpoint[4:7, 3:5] = base[0, 2:5, 2:4]
    mid_pts, mid_masses = tools._support(midpoint / midpoint.sum(), np.argwhere(np.ones((12, 12))).astype(float))
    minimum = 0.25 * (4**2 + 2**2)  # alpha_0 alpha_1 W2^2 with W2 = |(4, 2)|
    assert tools.barycenter_cost(mid_pts, mid_masses, images, [0.5, 0.5]) == pytest.approx(minimum, abs=1e-9)
    for method in ("free_support", "lp"):
        points, masses = tools.pot_barycenter(images, [0.5, 0.5], method=method)
        assert tools.w2_between(points, masses, mid_pts, mid_masses) < 1e-6, method
        assert tools.barycenter_cost(points, masses, images, [0.5, 0.5]) == pytest.approx(minimum, abs=1e-9)
    # the L2 mean is a worse barycenter: two half-mass copies cost alpha_0 W2^2 + ... > minimum
    l2_cost = tools.barycenter_cost(*tools.histogram_support(tools.euclidean_mean(images)), images)
    assert l2_cost > minimum + 1.0


def test_barycenter_w2_to_pot_is_finite(toy, fitted) -> None:
    images = toy.measures.index([0, 1, 2])
    for method in ("free_support", "lp", "convolutional"):
        value = tools.barycenter_w2_to_pot(fitted, images, [0.2, 0.3, 0.5], method=method, reg=0.01)
        assert np.isfinite(value) and value >= 0, method


# --------------------------------------------------------------------------- CLI


def test_cli_tools_write_pngs(tmp_path, fitted, capsys) -> None:
    from wbench.cli.main import main

    model_path = tmp_path / "dwe.pt"
    fitted.save(model_path)
    local = str(FIXTURES / "local_plugin.py")
    source = ["--plugin", local, "--model", str(model_path), "--dataset", "toy-blobs", "--param", "n=12"]
    out = tmp_path / "bary.png"
    assert main(["dwe", "barycenter", *source, "--indices", "0-3", "--weights", "1,1,1,2", "--reference", "free_support", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.stat().st_size > 0 and np.isfinite(summary["w2_dwe_vs_pot"])
    # the summary says which model, which images and where it was computed
    assert summary["model"] == str(model_path) and summary["indices"] == [0, 1, 2, 3]
    assert summary["dataset"] == "toy-blobs" and summary["provenance"]["device"] == "cpu"
    # free-support iterations start at the L2 mean and never increase the objective
    assert summary["cost_pot"] <= summary["cost_l2mean"] + 1e-9 and np.isfinite(summary["cost_dwe"])
    assert main(["dwe", "interpolate", *source, "--indices", "0,5", "--steps", "4", "--out", str(tmp_path / "i.png")]) == 0
    assert main(["dwe", "pga", *source, "--components", "2", "--steps", "3", "--out", str(tmp_path / "p.png")]) == 0
    capsys.readouterr()
    assert (tmp_path / "i.png").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0
    # images from a .npy file; a bad index list is a clean error
    np.save(tmp_path / "imgs.npy", toy_images(4, 8).numpy())
    assert main(["dwe", "interpolate", "--model", str(model_path), "--images", str(tmp_path / "imgs.npy"), "--indices", "1,2", "--out", str(tmp_path / "n.png")]) == 0
    assert main(["dwe", "pga", "--model", str(model_path), "--images", str(tmp_path / "imgs.npy"), "--indices", "x", "--out", str(tmp_path / "e.png")]) == 2
    assert "--indices" in capsys.readouterr().err
