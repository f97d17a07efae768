"""Naive, DeepKENN and ODE-KENN: the paper's parameter counts, the width option, metric
properties, the stacked ODE solve, save / load, solver options, weights readout, training."""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.testing import toy_dataset, toy_images
from wbench.train.loop import predict_pairs, seed_everything
from wbench.train.sizing import build_at_parameter_target
from wbench_plugins.kenn.encoder import (
    PAPER_WIDTH,
    EncoderDims,
    KennEncoder,
    count_parameters,
    encoder_dims,
)
from wbench_plugins.kenn.models import DEEPKENN_LAYERS, N_TIMES, ODEKENN, DeepKENN, NaiveKENN

MODELS = (NaiveKENN, DeepKENN, ODEKENN)
SMALL = 300  # layer sizes at 30 % of the paper's: fast, still every layer non-trivial


@pytest.fixture(scope="module")
def blobs() -> MeasureBatch:
    """Twelve 28x28 images of one or two Gaussian blobs (real-ish, unit mass)."""
    return MeasureBatch.from_images(toy_images(12, 28, seed=3))


def _randomise_weights(model: DeepKENN | ODEKENN | NaiveKENN, seed: int = 0) -> None:
    """Spread the softplus weights so the weighted distances are not trivially uniform."""
    u = getattr(model.model, "u", None)
    if u is not None:
        with torch.no_grad():
            u.copy_(torch.randn(u.shape, generator=torch.Generator().manual_seed(seed)))


# ---------------------------------------------------------------- architecture


def test_paper_configuration_parameter_counts() -> None:
    dims = encoder_dims()
    assert dims == EncoderDims((8, 16, 32), 128, 64, (28, 28))
    assert dims.flat_sizes == (1568, 784, 288, 128, 64)
    assert sum(p.numel() for p in KennEncoder(dims).parameters()) == 51_264
    assert NaiveKENN().n_parameters == 55_424
    assert DeepKENN().n_parameters == 55_430
    assert ODEKENN().n_parameters == 55_434
    assert DeepKENN().embedding_dim == 1568 + 784 + 288 + 128 + 64 + 64
    assert ODEKENN().embedding_dim == 10 * 64


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("grid", "target"), [((28, 28), 20_000), ((28, 28), 200_000), ((8, 8), 20_000)])
def test_width_reaches_parameter_targets(cls, grid, target) -> None:
    model = build_at_parameter_target(cls, {"grid_shape": grid}, target, tolerance=0.01)
    assert abs(model.n_parameters - target) <= 0.01 * target
    assert model.params["width"] != PAPER_WIDTH


@pytest.mark.parametrize("grid", [(28, 28), (8, 8), (16, 12)])
def test_parameter_count_is_non_decreasing_in_width(grid) -> None:
    spatial = (grid[0] // 8) * (grid[1] // 8)
    counts = []
    for width in range(1, 3001):
        d = encoder_dims(width, grid)
        counts.append(count_parameters(d.channels, d.fc1, d.dim, spatial))
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))
    for width in (1, 150, 777, 2500):  # the formula is the model's count (+0 / +6 / +10)
        n = counts[width - 1]
        assert NaiveKENN(width=width, grid_shape=grid).n_parameters == n
        assert DeepKENN(width=width, grid_shape=grid).n_parameters == n + 6
        assert ODEKENN(width=width, grid_shape=grid).n_parameters == n + 10
    # At width 1000 every grid gets the paper's layer sizes.
    paper = encoder_dims(PAPER_WIDTH, grid)
    assert (paper.channels, paper.fc1, paper.dim) == ((8, 16, 32), 128, 64)


def test_small_grids_and_grid_shape_from_the_data() -> None:
    digits = MeasureBatch.from_images(toy_images(6, 8))
    params = ODEKENN.params_for({"width": SMALL}, digits)
    assert params["grid_shape"] == (8, 8)
    model = ODEKENN(**params)
    assert model.dims.pooled == ((4, 4), (2, 2), (1, 1))
    d = model.distance(digits.index([0, 1, 2]), digits.index([3, 4, 5]))
    assert d.shape == (3,) and bool(torch.isfinite(d).all())
    assert ODEKENN.params_for({"grid_shape": (28, 28)}, digits)["grid_shape"] == (28, 28)
    with pytest.raises(ValueError, match="at least 8x8"):
        NaiveKENN(grid_shape=(7, 9))
    with pytest.raises(ValueError, match="28x28 images"):
        NaiveKENN(width=SMALL).distance(digits.index([0]), digits.index([1]))
    with pytest.raises(ValueError, match="positive integer"):
        NaiveKENN(width=0)


# ---------------------------------------------------------------- distances


@pytest.mark.parametrize("cls", MODELS)
def test_symmetry_and_triangle_inequality(cls, blobs) -> None:
    seed_everything(0)
    model = cls(width=SMALL)
    _randomise_weights(model)
    rng = np.random.default_rng(0)
    i, j, k = (torch.from_numpy(rng.integers(0, len(blobs), size=40)) for _ in range(3))
    x, y, z = blobs.index(i), blobs.index(j), blobs.index(k)
    dxy, dyx = model.distance(x, y), model.distance(y, x)
    torch.testing.assert_close(dxy, dyx, rtol=1e-5, atol=1e-6)
    slack = 1e-5 * (1 + dxy)
    assert bool((dxy <= model.distance(x, z) + model.distance(z, y) + slack).all())
    assert bool((model.distance(x, x) <= 1e-6).all())
    assert float(dxy.max()) > 0


@pytest.mark.parametrize("cls", MODELS)
def test_distance_is_the_diagonal_of_pairwise(cls, blobs) -> None:
    seed_everything(1)
    model = cls(width=SMALL)
    _randomise_weights(model, seed=1)
    x, y = blobs.index(slice(0, 6)), blobs.index(slice(6, 12))
    matrix = model.pairwise(x, y)
    assert matrix.shape == (6, 6)
    torch.testing.assert_close(torch.diagonal(matrix), model.distance(x, y), rtol=1e-4, atol=1e-5)
    rows = torch.arange(6).repeat_interleave(6)
    cols = torch.arange(6).repeat(6)
    torch.testing.assert_close(matrix.reshape(-1), model.distance(x.index(rows), y.index(cols)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [DeepKENN, ODEKENN])
def test_weighted_distance_formula(cls, blobs) -> None:
    """The embedding's Euclidean distance is the paper's weighted sum over layers / time points."""
    seed_everything(2)
    model = cls(width=SMALL).to("cpu")
    _randomise_weights(model, seed=2)
    a, b = blobs.index(slice(0, 5)), blobs.index(slice(5, 10))
    model.model.eval()
    with torch.no_grad():
        w = model.model.weights()
        if cls is DeepKENN:
            fa, fb = (model.model.layer_outputs(model._input(m)) for m in (a, b))
            assert len(fa) == len(DEEPKENN_LAYERS) == 6
            terms = [w[i] * (fa[i] - fb[i]).pow(2).sum(dim=1) for i in range(6)]
        else:
            solver = {k: model.eval_params[k] for k in ("method", "substeps", "rtol", "atol")}
            za, zb = (model.model.trajectory(model.model.encoder(model._input(m)), **solver) for m in (a, b))
            assert za.shape[0] == N_TIMES
            terms = [w[k] * (za[k] - zb[k]).pow(2).sum(dim=1) / (N_TIMES - 1) for k in range(N_TIMES)]
    expected = torch.stack(terms).sum(dim=0).sqrt()
    torch.testing.assert_close(model.distance(a, b), expected, rtol=1e-5, atol=1e-6)


def test_ode_stacked_solve_equals_separate_solves(blobs) -> None:
    seed_everything(3)
    model = ODEKENN(width=SMALL)
    _randomise_weights(model, seed=3)
    a, b = blobs.index(slice(0, 6)), blobs.index(slice(6, 12))
    stacked = model.distance(a, b)  # one encoder pass and one odeint call on 12 rows
    with torch.inference_mode():
        model.model.eval()
        ea, eb = model.embed(a), model.embed(b)  # two separate solves
    separate = (ea - eb).pow(2).sum(dim=1).sqrt()
    assert float((stacked - separate).abs().max()) <= 1e-6
    # Training embeds both sides in one call too (predict_w2).
    model.model.train()
    torch.testing.assert_close(model.predict_w2(a, b).detach(), separate, rtol=0, atol=1e-6)


def test_ode_solver_options_are_evaluation_time(blobs) -> None:
    seed_everything(4)
    model = ODEKENN(width=SMALL)
    _randomise_weights(model, seed=4)
    with torch.no_grad():  # a field strong enough for the step size to matter
        model.model.field.linear.weight.mul_(4.0)
    a, b = blobs.index(slice(0, 6)), blobs.index(slice(6, 12))
    n_params = model.n_parameters
    base = model.distance(a, b)
    assert model.eval_params["method"] == "rk4" and model.eval_params["substeps"] == 1
    finer = model.configure(substeps=8).distance(a, b)
    adaptive = model.configure(method="dopri5", rtol=1e-7, atol=1e-9).distance(a, b)
    euler = model.configure(method="euler", substeps=1).distance(a, b)
    assert model.n_parameters == n_params
    rel = lambda u, v: float(((u - v).abs() / v).max())  # noqa: E731
    assert 0 < rel(base, finer) < 1e-2  # RK4 with 9 steps is already close
    assert rel(finer, adaptive) < rel(base, finer)  # the finer grid converges to the accurate solve
    assert rel(euler, finer) > rel(base, finer)  # a first-order method is further off
    # Training keeps the fit-time solver whatever the evaluation setting.
    model.model.train()
    torch.testing.assert_close(model.predict_w2(a, b).detach(), base, rtol=0, atol=1e-6)
    model.model.eval()
    with pytest.raises(ValueError, match="unknown ODE method"):
        model.configure(method="leapfrog")
    with pytest.raises(ValueError, match="substeps"):
        model.configure(substeps=0)
    with pytest.raises(ValueError, match="no evaluation parameter"):
        model.configure(steps=3)
    assert model.eval_params["method"] == "euler"  # a rejected setting changes nothing
    assert NaiveKENN.default_eval_params == {} and DeepKENN.default_eval_params == {}


@pytest.mark.parametrize("cls", MODELS)
def test_save_load_round_trip(cls, blobs, tmp_path: Path) -> None:
    seed_everything(5)
    model = cls(width=SMALL)
    _randomise_weights(model, seed=5)
    if cls is ODEKENN:
        model.configure(substeps=3)
    if cls is DeepKENN:
        with torch.no_grad():
            model.model.u_start.copy_(torch.linspace(-2, 2, 6))
    a, b = blobs.index(slice(0, 6)), blobs.index(slice(6, 12))
    before = model.distance(a, b)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = cls.load(path)
    assert type(loaded) is cls
    assert loaded.params == model.params and loaded.eval_params == model.eval_params
    assert torch.equal(loaded.distance(a, b), before)
    assert loaded.describe() == model.describe()
    for key, value in model.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


# ---------------------------------------------------------------- weights readout and training


def test_deepkenn_balanced_starting_weights() -> None:
    data = toy_dataset(n=16, size=8, n_pairs=60)
    seed_everything(6)
    model = DeepKENN(**DeepKENN.params_for({"width": SMALL}, data.measures))
    train = data.split("train")
    w = model.balance_layer_weights(train, n_pairs=len(train), seed=0)
    a, b, w2sq = train.batch(np.arange(len(train)))
    with torch.no_grad():
        fa, fb = (model.model.layer_outputs(model._input(m)) for m in (a, b))
        contributions = torch.stack([w[i] * (fa[i] - fb[i]).pow(2).sum(dim=1).mean() for i in range(6)])
    torch.testing.assert_close(contributions, torch.full((6,), float(w2sq.mean()) / 6, dtype=contributions.dtype), rtol=1e-3, atol=0)
    torch.testing.assert_close(torch.nn.functional.softplus(model.model.u_start), w)
    # fit balances on one seeded training batch, then trains; both ends are reported.
    budget = Budget(epochs=2, batch_size=16, seed=0)
    expected = copy.deepcopy(model).balance_layer_weights(train, n_pairs=16, seed=0)
    report = model.fit(train, data.split("val"), budget)
    weights = report.extra["layer_weights"]
    assert weights["layers"] == list(DEEPKENN_LAYERS)
    assert weights["start"] == pytest.approx(expected.tolist(), rel=1e-6)
    assert weights["final"] == model.describe()["layer_weights"]["final"]
    assert weights["final"] != weights["start"]


def test_describe_and_artifacts(tmp_path: Path) -> None:
    data = toy_dataset(n=16, size=8, n_pairs=40)
    budget = Budget(epochs=1, batch_size=8)
    for cls in MODELS:
        seed_everything(7)
        model = cls(**cls.params_for({"width": SMALL}, data.measures))
        report = model.fit(data.split("train"), data.split("val"), budget)
        facts = model.describe()
        json.dumps(facts, allow_nan=False)
        json.dumps(report.as_dict(), allow_nan=False)
        assert facts["architecture"]["grid_shape"] == [8, 8]
        files = model.write_artifacts(tmp_path / cls.__name__)
        for file in files:
            assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if cls is NaiveKENN:
            assert files == []
        elif cls is DeepKENN:
            assert [p.name for p in files] == ["deepkenn_layer_weights.png"]
            assert len(facts["layer_weights"]["final"]) == 6
        else:
            assert [p.name for p in files] == ["odekenn_time_weights.png"]
            times = facts["time_weights"]
            assert times["t"] == pytest.approx(np.linspace(0, 1, 10).tolist())
            assert times["start"] == pytest.approx([math.log(2.0)] * 10)
            assert len(times["final"]) == 10 and times["final"] == report.extra["time_weights"]["final"]
            assert facts["solver"]["fit"]["method"] == "rk4"


def _mnist_images(root: Path, n: int) -> np.ndarray:
    try:
        from wbench_plugins.datasets.mnist import load_part
    except ImportError:  # the datasets plugin is optional here: decode the IDX file directly
        with gzip.open(root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", "rb") as handle:
            data = handle.read()
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    return load_part(root, "test")[0][:n]


@pytest.mark.slow
@pytest.mark.mnist
def test_training_on_mnist_beats_the_mean_predictor(mnist_root: Path) -> None:
    """600 training pairs, 10 short epochs at 45 % of the paper's width: every model's
    validation MSE ends far below that of predicting the mean training W2."""
    from wbench.oracle.solve import exact_w2sq

    measures = MeasureBatch.from_images(_mnist_images(mnist_root, 300).copy())
    rng = np.random.default_rng(0)
    n_train, n_val = 600, 200
    left = rng.integers(0, len(measures), size=n_train + n_val)
    right = (left + rng.integers(1, len(measures), size=n_train + n_val)) % len(measures)
    w2sq = exact_w2sq(measures, left, right, n_jobs=2)
    train = LabelledPairs(measures, PairSet(left[:n_train], right[:n_train], w2sq[:n_train]))
    val = LabelledPairs(measures, PairSet(left[n_train:], right[n_train:], w2sq[n_train:]))
    mean_predictor = float(np.mean((val.pairs.w2 - train.pairs.w2.mean()) ** 2))
    budget = Budget(epochs=10, batch_size=32, lr=3e-3, seed=0)
    for cls in MODELS:
        seed_everything(0)
        model = cls(width=450)
        report = model.fit(train, val, budget)
        mse = float(np.mean((predict_pairs(model, val) - val.pairs.w2) ** 2))
        assert mse == pytest.approx(min(report.val_mse), rel=1e-4)  # best checkpoint kept
        assert mse < 0.5 * mean_predictor, (cls.__name__, mse, mean_predictor, report.val_mse)
