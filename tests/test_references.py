"""The reference solvers of ``wbench_plugins.references`` against exact values on small cases."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import ot
import pytest
import torch

from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench_plugins.references._common import measure_supports
from wbench_plugins.references.exact import ExactLP
from wbench_plugins.references.lot import LOT
from wbench_plugins.references.sinkhorn import Sinkhorn
from wbench_plugins.references.sliced import SlicedW2, cell_average_quantiles, random_directions


# ---------------------------------------------------------------------------- fixtures
def _translated_images(n: int = 4, size: int = 14, seed: int = 0) -> tuple[MeasureBatch, MeasureBatch, np.ndarray]:
    """Random blobs and copies shifted by integer vectors that keep all mass inside: W2 = |v|."""
    rng = np.random.default_rng(seed)
    left, right, shifts = [], [], []
    for _ in range(n):
        patch = rng.random((6, 6)) * (rng.random((6, 6)) > 0.4)
        patch[0, 0] = patch[0, 0] + 0.5  # never empty
        v = rng.integers(-3, 4, size=2)
        a = np.zeros((size, size))
        b = np.zeros((size, size))
        a[4:10, 4:10] = patch
        b[4 + v[0] : 10 + v[0], 4 + v[1] : 10 + v[1]] = patch
        left.append(a)
        right.append(b)
        shifts.append(np.linalg.norm(v))
    return (
        MeasureBatch.from_images(torch.tensor(np.array(left))),
        MeasureBatch.from_images(torch.tensor(np.array(right))),
        np.array(shifts),
    )


def _clouds(n: int = 5, points: int = 7, dim: int = 2, seed: int = 1, scale: float = 3.0) -> MeasureBatch:
    """Weighted point clouds with a padded (zero-mass) last point in every other measure."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, points, dim)) * scale
    w = rng.random((n, points)) + 0.1
    w[::2, -1] = 0.0
    return MeasureBatch.from_point_clouds(torch.tensor(x), torch.tensor(w))


def _exact(a: MeasureBatch, b: MeasureBatch) -> np.ndarray:
    sa, sb = measure_supports(a), measure_supports(b)
    return np.sqrt([ot.emd2(wa, wb, ot.dist(xa, xb)) for (xa, wa), (xb, wb) in zip(sa, sb, strict=True)])


@pytest.fixture(scope="module")
def cloud_pair() -> tuple[MeasureBatch, MeasureBatch, np.ndarray]:
    a, b = _clouds(seed=1), _clouds(seed=2)
    return a, b, _exact(a, b)


# ---------------------------------------------------------------------------- exact-lp
def test_exact_two_diracs() -> None:
    x = torch.tensor([[[0.0, 0.0]], [[1.0, 2.0]], [[-3.0, 0.5]]], dtype=torch.float64)
    y = torch.tensor([[[3.0, 4.0]], [[1.0, 2.0]], [[0.0, 0.0]]], dtype=torch.float64)
    d = ExactLP(n_jobs=1).distance(MeasureBatch.from_point_clouds(x), MeasureBatch.from_point_clouds(y))
    assert d.dtype == torch.float64 and d.shape == (3,)
    np.testing.assert_allclose(d.numpy(), [5.0, 0.0, math.hypot(3.0, 0.5)], atol=1e-9)


def test_exact_1d_sorted_samples() -> None:
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(4, 9, 1)), rng.normal(2.0, 1.5, size=(4, 9, 1))
    expected = np.sqrt(np.mean((np.sort(xs[..., 0], axis=1) - np.sort(ys[..., 0], axis=1)) ** 2, axis=1))
    d = ExactLP(n_jobs=1).distance(MeasureBatch.from_point_clouds(xs), MeasureBatch.from_point_clouds(ys))
    np.testing.assert_allclose(d.numpy(), expected, atol=1e-9)


def test_exact_translated_images() -> None:
    a, b, shifts = _translated_images()
    solver = ExactLP(n_jobs=1)
    np.testing.assert_allclose(solver.distance(a, b).numpy(), shifts, atol=1e-9)
    assert solver.describe()["n_failed"] == 0 and solver.describe()["n_evaluated"] == len(shifts)


def test_exact_n_jobs_and_pairwise_diagonal() -> None:
    a, b = _clouds(n=40, seed=4), _clouds(n=40, seed=5)
    serial = ExactLP(n_jobs=1).distance(a, b)
    parallel = ExactLP(n_jobs=2)
    np.testing.assert_allclose(parallel.distance(a, b).numpy(), serial.numpy(), atol=1e-12)
    pw = parallel.pairwise(a.index(slice(0, 9)), b.index(slice(0, 9)))
    assert pw.shape == (9, 9) and pw.dtype == torch.float64
    np.testing.assert_allclose(torch.diagonal(pw).numpy(), serial[:9].numpy(), atol=1e-12)
    pw_rect = ExactLP(n_jobs=1).pairwise(a.index(slice(0, 3)), b.index(slice(0, 5)))
    np.testing.assert_allclose(pw_rect.numpy(), pw[:3, :5].numpy(), atol=1e-12)


def test_exact_iteration_limit_is_a_counted_nan() -> None:
    a, b = _clouds(n=3, points=12, seed=6), _clouds(n=3, points=12, seed=7)
    solver = ExactLP(n_jobs=1, num_iter_max=1)
    d = solver.distance(a, b)
    assert torch.isnan(d).all()
    assert solver.describe()["n_failed"] == 3 and solver.describe()["n_evaluated"] == 3


# ---------------------------------------------------------------------------- sinkhorn
@pytest.mark.parametrize("debias", [False, True])
def test_pot_sinkhorn_converges_to_exact_as_reg_decreases(cloud_pair, debias: bool) -> None:
    a, b, exact = cloud_pair[0].index(slice(0, 3)), cloud_pair[1].index(slice(0, 3)), cloud_pair[2][:3]
    solver = Sinkhorn(backend="pot", n_jobs=1)
    errors = []
    for reg in (8.0, 2.0, 0.5, 0.2):
        d = solver.configure(reg=reg, debias=debias).distance(a, b).numpy()
        errors.append(np.abs(d - exact).mean())
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-2 * exact.mean()
    assert solver.describe()["n_failed"] == 0


def test_pot_sinkhorn_small_reg_on_grid_images() -> None:
    a, b, shifts = _translated_images(n=2)
    solver = Sinkhorn(backend="pot", n_jobs=1).configure(reg=0.05)
    d = solver.distance(a, b)
    assert solver.n_failed == 0  # zero pixels are dropped: no NaN from the full grid
    np.testing.assert_allclose(d.numpy(), shifts, rtol=2e-2)


@pytest.mark.parametrize("debias", [False, True])
def test_geomloss_converges_to_exact_as_blur_decreases(cloud_pair, debias: bool) -> None:
    a, b, exact = cloud_pair
    solver = Sinkhorn(backend="geomloss", device="cpu", dtype="float64")
    errors = []
    for blur in (3.0, 1.0, 0.3, 0.1):  # scaling near 1: the annealing converges (0.9 stops early)
        d = solver.configure(blur=blur, debias=debias, scaling=0.99).distance(a, b)
        assert d.device.type == "cpu" and d.dtype == torch.float64
        errors.append(np.abs(d.numpy() - exact).mean())
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-2 * exact.mean()


def test_geomloss_factor_two_and_units(cloud_pair) -> None:
    from geomloss import SamplesLoss

    a, b, exact = cloud_pair
    solver = Sinkhorn(backend="geomloss", device="cpu", dtype="float64").configure(blur=0.05, debias=True, scaling=0.95)
    d = solver.distance(a, b).numpy()
    np.testing.assert_allclose(d, exact, rtol=3e-2)  # W2 units, within a few %
    (xa, wa), (xb, wb) = measure_supports(a)[0], measure_supports(b)[0]
    raw = SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.95, debias=True, diameter=solver_diameter(a, b))(
        torch.tensor(wa), torch.tensor(xa), torch.tensor(wb), torch.tensor(xb)
    )
    assert d[0] ** 2 == pytest.approx(2.0 * float(raw), rel=1e-6)


def solver_diameter(a: MeasureBatch, b: MeasureBatch) -> float:
    from wbench_plugins.references.sinkhorn import _diameter

    return _diameter(measure_supports(a) + measure_supports(b))


def test_geomloss_matches_pot_at_equivalent_regularisation(cloud_pair) -> None:
    a, b, _ = cloud_pair
    blur = 0.7
    pot = Sinkhorn(backend="pot", n_jobs=1).configure(reg=2 * blur**2, debias=True).distance(a, b)
    geo = Sinkhorn(backend="geomloss", dtype="float64").configure(blur=blur, debias=True, scaling=0.99).distance(a, b)
    np.testing.assert_allclose(geo.numpy(), pot.numpy(), rtol=5e-3)


@pytest.mark.parametrize("backend", ["pot", "geomloss"])
def test_sinkhorn_distance_is_pairwise_diagonal(cloud_pair, backend: str) -> None:
    a, b = cloud_pair[0].index(slice(0, 3)), cloud_pair[1].index(slice(0, 3))
    params = {"n_jobs": 1} if backend == "pot" else {"dtype": "float64", "batch_size": 3}
    solver = Sinkhorn(backend=backend, **params).configure(reg=1.0, debias=True)
    d = solver.distance(a, b)
    pw = solver.pairwise(a, b)
    assert pw.shape == (len(a), len(b)) and pw.dtype == torch.float64
    np.testing.assert_allclose(torch.diagonal(pw).numpy(), d.numpy(), rtol=1e-7, atol=1e-9)
    assert solver.n_evaluated == len(a) + len(a) * len(b)


def test_pot_non_convergence_is_a_counted_nan() -> None:
    # pair 0: two Diracs (converges at once); pair 1: spread clouds at a small reg, 20 iterations
    x = torch.zeros(2, 6, 2, dtype=torch.float64)
    y = torch.zeros(2, 6, 2, dtype=torch.float64)
    wx = torch.zeros(2, 6, dtype=torch.float64)
    wy = torch.zeros(2, 6, dtype=torch.float64)
    x[0, 0], y[0, 0] = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    wx[0, 0] = wy[0, 0] = 1.0
    rng = np.random.default_rng(8)
    x[1], y[1] = torch.tensor(rng.normal(size=(6, 2)) * 4), torch.tensor(rng.normal(size=(6, 2)) * 4)
    wx[1] = wy[1] = 1.0 / 6
    a, b = MeasureBatch.from_point_clouds(x, wx), MeasureBatch.from_point_clouds(y, wy)
    solver = Sinkhorn(backend="pot", method="sinkhorn_log", n_jobs=1).configure(reg=0.01, max_iter=20, stop_threshold=1e-12)
    d = solver.distance(a, b)
    assert d[0].item() == pytest.approx(math.sqrt(2.0), abs=1e-9)
    assert torch.isnan(d[1])
    info = solver.describe()
    assert info["n_failed"] == 1 and info["n_evaluated"] == 2 and "did not converge" in info["last_failure"]
    # the same pair converges with the default solver and iteration limit
    ok = Sinkhorn(backend="pot", n_jobs=1).configure(reg=0.01)
    assert torch.isfinite(ok.distance(a, b)).all() and ok.n_failed == 0


def test_sinkhorn_eval_params() -> None:
    solver = Sinkhorn(backend="geomloss")
    assert solver.reg == 1.0 and solver.blur == pytest.approx(math.sqrt(0.5))
    solver.configure(blur=0.5)
    assert solver.reg == pytest.approx(0.5) and solver.eval_params["reg"] is None
    solver.configure(reg=0.02)
    assert solver.blur == pytest.approx(0.1) and solver.eval_params["blur"] is None
    with pytest.raises(ValueError, match="not both"):
        solver.configure(reg=1.0, blur=1.0)
    with pytest.raises(ValueError, match="positive"):
        solver.configure(reg=0.0)
    with pytest.raises(ValueError, match="no evaluation parameter"):
        solver.configure(epsilon=1.0)
    with pytest.raises(ValueError, match="backend"):
        Sinkhorn(backend="keops")
    assert "NaN" in (Sinkhorn.__doc__ or "") and "n_failed" in (Sinkhorn.__doc__ or "")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_geomloss_on_cuda(cloud_pair) -> None:
    a, b, _ = cloud_pair
    cpu = Sinkhorn(backend="geomloss", dtype="float64").configure(blur=0.5).distance(a, b)
    gpu = Sinkhorn(backend="geomloss", device="cuda", dtype="float64").configure(blur=0.5).distance(a, b)
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------- lot
def test_lot_exact_for_translations_on_images() -> None:
    """The jittered reference breaks the grid's ties between optimal plans: exact to 1e-9."""
    a, b, shifts = _translated_images()
    for size in (None, 50):
        solver = LOT(reference="grid", reference_size=size, n_jobs=1)
        np.testing.assert_allclose(solver.distance(a, b).numpy(), shifts, atol=1e-9)
        assert solver.n_parameters == 0
    measures = MeasureBatch(torch.cat([a.weights, b.weights]), a.support, a.grid_shape)
    train = LabelledPairs(measures, PairSet(np.arange(len(a)), np.arange(len(a), 2 * len(a))))
    solver = LOT(n_jobs=1)  # the default: the mean image's 200 heaviest pixels
    solver.fit(train, train, budget=None)  # type: ignore[arg-type]
    np.testing.assert_allclose(solver.distance(a, b).numpy(), shifts, atol=1e-9)


def test_lot_exact_for_translations_of_clouds_and_diagonal() -> None:
    a = _clouds(n=4, seed=9)
    shift = torch.tensor([[1.5, -2.0]], dtype=a.support.dtype)
    b = MeasureBatch(a.weights, a.support + shift, None)
    solver = LOT(reference="grid", reference_size=36, n_jobs=1)
    d = solver.distance(a, b)
    np.testing.assert_allclose(d.numpy(), 2.5, atol=1e-9)
    emb = solver.embed(a)
    assert emb.shape == (4, 36 * 2) and emb.dtype == torch.float64
    np.testing.assert_allclose(torch.diagonal(solver.pairwise(a, b)).numpy(), d.numpy(), atol=1e-7)


def test_lot_mean_reference_from_training_pairs() -> None:
    a, b, shifts = _translated_images(n=3)
    measures = MeasureBatch(torch.cat([a.weights, b.weights]), a.support, a.grid_shape)
    train = LabelledPairs(measures, PairSet(np.array([0, 1, 2]), np.array([3, 4, 5])))
    solver = LOT(reference="mean", reference_size=None, n_jobs=1)
    with pytest.raises(ValueError, match="fit"):
        solver.embed(a)
    report = solver.fit(train, train, budget=None)  # type: ignore[arg-type]
    assert report.extra["reference_points"] == int((measures.weights.mean(0) > 0).sum())
    np.testing.assert_allclose(solver.distance(a, b).numpy(), shifts, atol=1e-9)
    exact = ExactLP(n_jobs=1).pairwise(a, b).numpy()
    lot = solver.pairwise(a, b).numpy()
    assert np.all(np.abs(lot - exact) < 0.5 * exact.max())  # an approximation elsewhere


def test_lot_default_reference_exact_for_real_translations_of_weighted_clouds() -> None:
    """Random real coordinates, random masses, translate by v: the unscaled distance is |v| to 1e-9."""
    rng = np.random.default_rng(21)
    a = _clouds(n=6, points=9, dim=3, seed=21)
    v = rng.normal(size=(6, 1, 3)) * 2.0
    b = MeasureBatch(a.weights, a.support + torch.tensor(v), None)
    measures = MeasureBatch(torch.cat([a.weights, b.weights]), torch.cat([a.support, b.support]), None)
    train = LabelledPairs(measures, PairSet(np.arange(6), np.arange(6, 12)))  # no W2 labels: scale stays 1
    solver = LOT(reference_size=16, n_jobs=1)
    assert solver.reference == "mean"
    report = solver.fit(train, train, budget=None)  # type: ignore[arg-type]
    assert report.extra["reference_points"] == 16 and report.extra["scale"] == 1.0
    assert solver.ref_masses is not None and abs(solver.ref_masses.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(solver.distance(a, b).numpy(), np.linalg.norm(v[:, 0], axis=1), atol=1e-9)


def test_lot_mean_image_keeps_the_heaviest_pixels() -> None:
    a, b, _ = _translated_images(n=3)
    measures = MeasureBatch(torch.cat([a.weights, b.weights]), a.support, a.grid_shape)
    train = LabelledPairs(measures, PairSet(np.array([0, 1, 2]), np.array([3, 4, 5])))
    solver = LOT(reference_size=10, jitter=0.0, n_jobs=1)
    solver.fit(train, train, budget=None)  # type: ignore[arg-type]
    w = measures.weights.double()
    mean = (w / w.sum(1, keepdim=True)).mean(0).numpy()
    heaviest = np.sort(np.argsort(-mean, kind="stable")[:10])
    np.testing.assert_array_equal(solver.ref_points, a.support.double().numpy()[heaviest])
    np.testing.assert_allclose(solver.ref_masses, mean[heaviest] / mean[heaviest].sum(), rtol=1e-12)


@pytest.mark.parametrize("name", ["lot", "sliced"])
def test_fitted_scale_is_the_least_squares_scale(name: str, cloud_pair) -> None:
    """Labels exactly twice the unscaled distance give scale 2; fit_scale=False keeps 1."""
    a, b, _ = cloud_pair
    make = {"lot": lambda **k: LOT(reference="grid", reference_size=36, n_jobs=1, **k), "sliced": lambda **k: SlicedW2(n_projections=8, n_levels=16, **k)}[name]
    measures = MeasureBatch(torch.cat([a.weights, b.weights]), torch.cat([a.support, b.support]), None)
    pairs = PairSet(np.arange(len(a)), np.arange(len(a), 2 * len(a)))
    unscaled = make(fit_scale=False)
    unscaled.fit(LabelledPairs(measures, pairs), LabelledPairs(measures, pairs), budget=None)  # type: ignore[arg-type]
    d = unscaled.distance(a, b).numpy()
    labels = LabelledPairs(measures, pairs.with_w2sq((2.0 * d) ** 2))
    assert unscaled.fit(labels, labels, budget=None).extra["scale"] == 1.0  # type: ignore[arg-type]
    scaled = make(scale_pairs=3)
    report = scaled.fit(labels, labels, budget=None)  # type: ignore[arg-type]
    assert report.extra["scale_pairs"] == 3 and report.wall_time_s > 0
    assert scaled.scale == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(scaled.distance(a, b).numpy(), 2.0 * d, rtol=1e-12)
    np.testing.assert_allclose(torch.diagonal(scaled.pairwise(a, b)).numpy(), 2.0 * d, rtol=1e-9)


# ---------------------------------------------------------------------------- sliced
def test_sliced_planar_directions_are_evenly_spread() -> None:
    theta = SlicedW2(n_projections=6).directions(2).numpy()
    angles = np.arctan2(theta[1], theta[0])
    np.testing.assert_allclose(angles, np.pi * np.arange(6) / 6, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=0), 1.0)


def test_sliced_square_matches_pots_1d_w2_within_a_bound_shrinking_with_levels(cloud_pair) -> None:
    """``d^2`` against the mean over the same directions of ``ot.wasserstein_1d`` (p=2, which is W2^2).

    Stated tolerance: ``0 <= SW2^2 - d^2 <= mean_l (R_l(mu) + R_l(nu))^2 / K`` (R_l: the
    spread of the projected support), for every number of levels K.
    """
    a, b, _ = cloud_pair
    supports_a, supports_b = measure_supports(a), measure_supports(b)
    gaps = []
    for n_levels in (4, 16, 64, 256, 1024):
        solver = SlicedW2(n_projections=12, n_levels=n_levels, fit_scale=False)
        d2 = solver.distance(a, b).numpy() ** 2
        theta = solver.directions(2).numpy()
        exact = np.empty(len(a))
        bound = np.empty(len(a))
        for i, ((xa, wa), (xb, wb)) in enumerate(zip(supports_a, supports_b, strict=True)):
            pa, pb = xa @ theta, xb @ theta  # (n, L)
            exact[i] = np.mean([ot.wasserstein_1d(pa[:, j], pb[:, j], wa, wb, p=2) for j in range(theta.shape[1])])
            spread = np.ptp(pa, axis=0) + np.ptp(pb, axis=0)
            bound[i] = np.mean(spread**2) / n_levels
        gap = exact - d2
        assert np.all(gap >= -1e-10) and np.all(gap <= bound + 1e-10), (n_levels, gap, bound)
        gaps.append(gap.max())
    assert gaps[-1] < 0.01 * gaps[0] and all(g2 <= g1 + 1e-12 for g1, g2 in zip(gaps, gaps[1:], strict=False))


def test_sliced_directions_are_pots() -> None:
    from ot.sliced import get_random_projections

    expected = get_random_projections(3, 10, seed=np.random.RandomState(5))
    np.testing.assert_array_equal(SlicedW2(n_projections=10, seed=5).directions(3).numpy(), expected)
    np.testing.assert_array_equal(random_directions(3, 10, 5), expected)


def test_sliced_matches_pot_exactly_for_uniform_clouds() -> None:
    rng = np.random.default_rng(10)
    xs, ys = rng.normal(size=(3, 8, 2)), rng.normal(1.0, 2.0, size=(3, 8, 2))
    solver = SlicedW2(n_projections=16, n_levels=32, seed=0)
    d = solver.distance(MeasureBatch.from_point_clouds(xs), MeasureBatch.from_point_clouds(ys)).numpy()
    theta = solver.directions(2).numpy()
    pot = [ot.sliced_wasserstein_distance(x, y, projections=theta) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(d, pot, rtol=1e-10)


def test_sliced_weighted_close_to_pot_and_below_w2(cloud_pair) -> None:
    a, b, exact = cloud_pair
    solver = SlicedW2(n_projections=32, n_levels=2048, seed=1)
    d = solver.distance(a, b).numpy()
    theta = solver.directions(2).numpy()
    pot = np.array([
        ot.sliced_wasserstein_distance(xa, xb, wa, wb, projections=theta)
        for (xa, wa), (xb, wb) in zip(measure_supports(a), measure_supports(b), strict=True)
    ])
    np.testing.assert_allclose(d, pot, rtol=2e-3)
    assert np.all(d <= pot + 1e-12)  # cell averages never overestimate
    assert np.all(d <= exact + 1e-12)  # SW2 <= W2
    np.testing.assert_allclose(torch.diagonal(solver.pairwise(a, b)).numpy(), d, atol=1e-9)


def test_sliced_grid_path_equals_cloud_path() -> None:
    a, b, shifts = _translated_images(n=3)
    solver = SlicedW2(n_projections=8, n_levels=16)
    pa, wa = a.point_clouds()
    pb, wb = b.point_clouds()
    as_clouds = solver.distance(MeasureBatch(wa, pa.contiguous(), None), MeasureBatch(wb, pb.contiguous(), None))
    np.testing.assert_allclose(solver.distance(a, b).numpy(), as_clouds.numpy(), atol=1e-9)
    assert np.all(as_clouds.numpy() <= shifts + 1e-9)


def test_cell_average_quantiles_of_a_dirac_and_of_two_atoms() -> None:
    v = torch.tensor([[2.0, -1.0, 5.0]], dtype=torch.float64)
    w = torch.tensor([[0.0, 0.25, 0.75]], dtype=torch.float64)
    q = cell_average_quantiles(v, w, 4)
    np.testing.assert_allclose(q.numpy(), [[-1.0, 5.0, 5.0, 5.0]])
    q = cell_average_quantiles(v, w, 2)  # the first cell averages -1 (half) and 5 (half)
    np.testing.assert_allclose(q.numpy(), [[2.0, 5.0]])


# ---------------------------------------------------------------------------- registration
def test_registered_with_test_params() -> None:
    from wbench.plugin.manager import make_plugin_manager

    plugins = make_plugin_manager(disabled=())
    registry = plugins.registry
    assert {"exact-lp", "sinkhorn", "lot", "sliced"} <= set(registry.names("surrogate"))
    a, b = _clouds(n=3, seed=11), _clouds(n=3, seed=12)
    for name in ("exact-lp", "sinkhorn", "lot", "sliced"):
        entry = registry.get("surrogate", name)
        assert entry.plugin == "references"
        solver = entry.load()(**entry.test_params)
        assert solver.trainable is False and solver.n_parameters == 0
        assert solver.input_kind in ("cloud", "any")
        d = solver.distance(a, b)
        assert d.shape == (3,) and torch.isfinite(d).all()
        np.testing.assert_allclose(torch.diagonal(solver.pairwise(a, b)).numpy(), d.numpy(), rtol=1e-6, atol=1e-7)
        assert solver.describe()["n_failed"] == 0


def test_plugin_module_import_is_light() -> None:
    code = (
        "import sys, wbench_plugins.references as r; "
        "heavy = [m for m in ('ot', 'geomloss', 'torch', 'joblib') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
