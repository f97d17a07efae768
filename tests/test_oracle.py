"""The exact W2 oracle: known values, the support restriction, validation, non-convergence."""

from __future__ import annotations

import gzip

import numpy as np
import ot
import pytest
import torch
from joblib import parallel_config

import wbench.executor.base as executor_module
import wbench.oracle.lp as lp
import wbench.oracle.solve as oracle
import wbench.oracle.supports as supports
from wbench.errors import InvalidMeasureError
from wbench.measures import MeasureBatch, grid_coordinates
from wbench.oracle.solve import (
    OracleError,
    exact_w2sq,
    exact_w2sq_between,
    exact_w2sq_block,
    exact_w2sq_pair,
    support_table,
)


def blob_image(size: int = 28, seed: int = 0, margin: int = 7) -> np.ndarray:
    """A random non-negative image whose mass stays ``margin`` pixels away from the border."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size))
    inner = rng.random((size - 2 * margin, size - 2 * margin))
    inner[inner < 0.4] = 0.0
    img[margin : size - margin, margin : size - margin] = inner
    return img


def shifted(img: np.ndarray, v: tuple[int, int]) -> np.ndarray:
    out = np.roll(img, v, axis=(0, 1))
    assert out.sum() == pytest.approx(img.sum())  # nothing wrapped around
    return out


@pytest.mark.parametrize("v", [(0, 1), (3, -2), (-5, 4), (7, 7), (0, -6)])
def test_translation_gives_the_shift_length(v: tuple[int, int]) -> None:
    img = blob_image(seed=sum(v) + 10)
    batch = MeasureBatch.from_images(np.stack([img, shifted(img, v)]))
    expected = float(v[0] ** 2 + v[1] ** 2)
    assert exact_w2sq(batch, [0], [1], n_jobs=1)[0] == pytest.approx(expected, abs=1e-9)
    assert exact_w2sq(batch, [1], [0], n_jobs=1)[0] == pytest.approx(expected, abs=1e-9)
    assert exact_w2sq_between(batch.index([0]), batch.index([1]), n_jobs=1)[0] == pytest.approx(expected, abs=1e-9)
    assert np.sqrt(exact_w2sq(batch, [0], [1], n_jobs=1)[0]) == pytest.approx(np.hypot(*v), abs=1e-9)


def test_float32_images_and_unnormalised_masses() -> None:
    img = blob_image(seed=3)
    f32 = MeasureBatch.from_images(torch.tensor(np.stack([img, shifted(img, (2, 1))]), dtype=torch.float32))
    assert exact_w2sq(f32, [0], [1], n_jobs=1)[0] == pytest.approx(5.0, abs=1e-9)
    raw = MeasureBatch.from_images(np.stack([img * 7.0, shifted(img, (2, 1)) * 0.01]), normalise=False)
    assert exact_w2sq(raw, [0], [1], n_jobs=1)[0] == pytest.approx(5.0, abs=1e-9)


def test_matches_the_full_grid_problem_on_synthetic_images() -> None:
    imgs = np.stack([blob_image(size=12, seed=s, margin=2) for s in range(6)])
    batch = MeasureBatch.from_images(imgs)
    grid = grid_coordinates(12, 12, dtype=torch.float64).numpy()
    cost = ot.dist(grid, grid)
    left, right = np.array([0, 1, 2, 3, 4]), np.array([5, 4, 3, 2, 1])
    ours = exact_w2sq(batch, left, right, n_jobs=1)
    w = imgs.reshape(6, -1) / imgs.reshape(6, -1).sum(1, keepdims=True)
    full = [ot.emd2(w[i], w[j], cost, numItermax=10**7) for i, j in zip(left, right, strict=True)]
    np.testing.assert_allclose(ours, full, rtol=0, atol=1e-9)


@pytest.mark.mnist
def test_matches_the_full_784_problem_on_mnist(mnist_root) -> None:
    path = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with gzip.open(path) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(images), size=24, replace=False)
    batch = MeasureBatch.from_images(torch.from_numpy(images[picked].astype(np.float32)))
    left, right = np.arange(12), np.arange(12, 24)
    ours = exact_w2sq(batch, left, right, n_jobs=1)
    grid = grid_coordinates(28, 28, dtype=torch.float64).numpy()
    cost = ot.dist(grid, grid)
    w = batch.weights.double().numpy()
    w = w / w.sum(1, keepdims=True)
    full = np.array([ot.emd2(w[i], w[j], cost, numItermax=10**7) for i, j in zip(left, right, strict=True)])
    np.testing.assert_allclose(ours, full, rtol=0, atol=1e-9)
    assert np.sqrt(ours).min() > 0.5 and np.sqrt(ours).max() < 7.0  # pixels, the expected MNIST range


def test_two_diracs_in_3d() -> None:
    x, y = np.array([[1.0, -2.0, 0.5]]), np.array([[4.0, 2.0, -0.5]])
    assert exact_w2sq_pair(x, [1.0], y, [3.0]) == pytest.approx(float(((x - y) ** 2).sum()), abs=1e-12)
    batch = MeasureBatch.from_point_clouds(np.stack([x, y]))
    assert exact_w2sq(batch, [0], [1], n_jobs=1)[0] == pytest.approx(26.0, abs=1e-12)


def test_equal_weight_samples_on_a_line_in_3d() -> None:
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=40), rng.gamma(2.0, size=40)
    direction = np.array([2.0, -1.0, 2.0]) / 3.0  # unit vector
    offset = np.array([0.3, 5.0, -1.0])
    xs, xt = s[:, None] * direction + offset, t[:, None] * direction + offset
    expected = float(np.mean((np.sort(s) - np.sort(t)) ** 2))
    batch = MeasureBatch.from_point_clouds(torch.tensor(np.stack([xs, xt])))
    assert exact_w2sq(batch, [0], [1], n_jobs=1)[0] == pytest.approx(expected, abs=1e-9)
    assert exact_w2sq_pair(s, np.ones(40), t, np.ones(40)) == pytest.approx(expected, abs=1e-9)


def test_point_clouds_match_pot_and_ignore_zero_weight_padding() -> None:
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(4, 30, 3))
    w = rng.random((4, 30))
    w[:, 25:] = 0.0  # padding
    pts[:, 25:] = 1e6  # far away: would change the value if it were used
    batch = MeasureBatch(torch.tensor(w), torch.tensor(pts))
    ours = exact_w2sq(batch, [0, 1, 2], [1, 2, 3], n_jobs=1)
    for k, (i, j) in enumerate([(0, 1), (1, 2), (2, 3)]):
        a, b = w[i, :25] / w[i, :25].sum(), w[j, :25] / w[j, :25].sum()
        ref = ot.emd2(a, b, ot.dist(pts[i, :25], pts[j, :25]), numItermax=10**7)
        assert ours[k] == pytest.approx(ref, abs=1e-10)


def _toy_batch(n: int = 8, size: int = 6, seed: int = 0) -> MeasureBatch:
    rng = np.random.default_rng(seed)
    imgs = rng.random((n, size, size))
    imgs[imgs < 0.5] = 0.0
    return MeasureBatch.from_images(imgs)


def test_symmetric_duplicate_and_self_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _toy_batch()
    calls = []
    real = lp._lp_solve

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(lp, "_lp_solve", counting)
    values = exact_w2sq(batch, [0, 1, 0, 3, 3], [1, 0, 1, 3, 2], n_jobs=1)
    assert len(calls) == 2  # (0, 1) once, (2, 3) once, (3, 3) not at all
    assert values[0] == values[1] == values[2] > 0
    assert values[3] == 0.0
    assert values[4] > 0


def test_block_matches_pairs_and_is_symmetric() -> None:
    batch = _toy_batch(n=7)
    rows, cols = np.array([0, 2, 5]), np.array([1, 2, 3, 6])
    block = exact_w2sq_block(batch, rows, cols, n_jobs=1)
    assert block.shape == (3, 4)
    np.testing.assert_array_equal(block.ravel(), exact_w2sq(batch, np.repeat(rows, 4), np.tile(cols, 3), n_jobs=1))
    square = exact_w2sq_block(batch, np.arange(7), np.arange(7), n_jobs=1)
    np.testing.assert_array_equal(square, square.T)
    np.testing.assert_array_equal(np.diag(square), 0.0)
    assert exact_w2sq(batch, [], [], n_jobs=1).shape == (0,)


def test_parallel_chunks_keep_the_pair_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oracle, "PARALLEL_MIN_SECONDS", 0.0)
    batch = _toy_batch(n=30)
    rng = np.random.default_rng(5)
    left, right = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    serial = exact_w2sq(batch, left, right, n_jobs=1)
    made = []
    real_parallel = executor_module.Parallel

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real_parallel(*args, **kwargs)

    monkeypatch.setattr(executor_module, "Parallel", spy)
    with parallel_config(backend="threading"):
        threaded = exact_w2sq(batch, left, right, n_jobs=3, progress=True)
    assert len(made) == 1
    np.testing.assert_array_equal(serial, threaded)


@pytest.mark.slow
def test_worker_processes_give_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oracle, "PARALLEL_MIN_SECONDS", 0.0)
    batch = _toy_batch(n=40)
    rng = np.random.default_rng(6)
    left, right = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    np.testing.assert_array_equal(exact_w2sq(batch, left, right, n_jobs=1), exact_w2sq(batch, left, right, n_jobs=2))


def test_between_batches() -> None:
    a, b = _toy_batch(n=5, seed=1), _toy_batch(n=5, seed=2)
    both = MeasureBatch(torch.cat([a.weights, b.weights]), a.support, a.grid_shape)
    np.testing.assert_allclose(
        exact_w2sq_between(a, b, n_jobs=1), exact_w2sq(both, np.arange(5), np.arange(5, 10), n_jobs=1), atol=1e-12
    )


# ------------------------------------------------------------------ invalid input


def _grid_batch_with(row: np.ndarray) -> MeasureBatch:
    weights = np.full((3, 4), 0.25)
    weights[1] = row
    return MeasureBatch(torch.tensor(weights), grid_coordinates(2, 2, dtype=torch.float64), (2, 2))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (np.array([0.5, -0.1, 0.3, 0.3]), "measure 1 has negative mass"),
        (np.array([0.5, np.nan, 0.3, 0.2]), "measure 1 has a non-finite mass"),
        (np.array([0.5, np.inf, 0.3, 0.2]), "measure 1 has a non-finite mass"),
        (np.zeros(4), "measure 1 has zero total mass"),
    ],
)
def test_bad_masses_are_named(row: np.ndarray, message: str) -> None:
    batch = _grid_batch_with(row)
    with pytest.raises(InvalidMeasureError, match=message):
        exact_w2sq(batch, [0], [1], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match=message):
        exact_w2sq_block(batch, [1], [0, 2], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match=message.replace("measure 1", "measure 0")):
        exact_w2sq_pair(np.zeros((4, 2)), row, np.zeros((4, 2)), np.full(4, 0.25))
    # a bad measure that no pair uses is not an error
    assert exact_w2sq(batch, [0], [2], n_jobs=1)[0] == pytest.approx(0.0, abs=1e-12)


def test_mismatched_shapes_and_indices() -> None:
    batch = _toy_batch(n=4)
    with pytest.raises(InvalidMeasureError, match="equal length"):
        exact_w2sq(batch, [0, 1], [2], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match="not a measure index"):
        exact_w2sq(batch, [0], [4], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match="not a measure index"):
        exact_w2sq(batch, [-1], [0], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match="integer"):
        exact_w2sq(batch, [0.5], [1], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match="1-D"):
        exact_w2sq(batch, [[0, 1]], [[1, 2]], n_jobs=1)
    with pytest.raises(InvalidMeasureError, match="equal length"):
        exact_w2sq_between(batch, batch.index([0, 1]), n_jobs=1)
    clouds = MeasureBatch.from_point_clouds(np.zeros((4, 3, 3)))
    with pytest.raises(InvalidMeasureError, match="dimension"):
        exact_w2sq_between(batch, clouds, n_jobs=1)
    with pytest.raises(InvalidMeasureError, match=r"points must be \(n, D\) and masses \(n,\)"):
        exact_w2sq_pair(np.zeros((3, 2)), np.ones(4), np.zeros((3, 2)), np.ones(3))
    with pytest.raises(InvalidMeasureError, match="different dimensions"):
        exact_w2sq_pair(np.zeros((3, 2)), np.ones(3), np.zeros((3, 3)), np.ones(3))
    with pytest.raises(InvalidMeasureError, match="non-finite support point"):
        exact_w2sq_pair(np.array([[0.0, np.nan]]), [1.0], np.zeros((1, 2)), [1.0])
    nan_cloud = MeasureBatch(torch.full((2, 2), 0.5), torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[np.nan, 0.0], [1.0, 1.0]]]))
    with pytest.raises(InvalidMeasureError, match="measure 1 has a non-finite support point"):
        exact_w2sq(nan_cloud, [0], [1], n_jobs=1)


# ------------------------------------------------------------------ non-convergence


def test_not_converged_is_retried_with_a_larger_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _toy_batch(n=4)
    expected = exact_w2sq(batch, [0, 2], [1, 3], n_jobs=1)
    budgets: list[int] = []
    real = lp._lp_solve

    def flaky(a, b, cost, num_iter_max):
        budgets.append(num_iter_max)
        value, code = real(a, b, cost, num_iter_max)
        return (value * 0.5, oracle.RESULT_MAX_ITER) if num_iter_max < 10**7 else (value, code)

    monkeypatch.setattr(lp, "_lp_solve", flaky)
    values = exact_w2sq(batch, [0, 2], [1, 3], n_jobs=1, num_iter_max=10**6)
    np.testing.assert_array_equal(values, expected)
    assert budgets == [10**6, 10**7, 10**6, 10**7]


def test_never_converging_pair_raises_naming_the_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _toy_batch(n=6)
    budgets: list[int] = []

    def stuck(a, b, cost, num_iter_max):
        budgets.append(num_iter_max)
        return 1.0, oracle.RESULT_MAX_ITER

    monkeypatch.setattr(lp, "_lp_solve", stuck)
    with pytest.raises(OracleError, match=r"pair 1 \(measures 4 and 5\).*1,000 and then 10,000 iterations"):
        exact_w2sq(batch, [3, 4], [3, 5], n_jobs=1, num_iter_max=1000)
    assert budgets == [1000, 10000]
    with pytest.raises(OracleError, match="iteration budget"):
        exact_w2sq_pair(np.zeros((2, 1)), [1, 1], np.ones((2, 1)), [1, 1])


def test_infeasible_result_is_not_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp, "_lp_solve", lambda a, b, cost, n: (0.0, oracle.RESULT_INFEASIBLE))
    with pytest.raises(OracleError, match="infeasible"):
        exact_w2sq(_toy_batch(n=3), [0], [1], n_jobs=1)


def test_real_solver_reports_max_iter() -> None:
    """POT's own result code for a too-small budget reaches the retry logic."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    w = np.full(60, 1 / 60)
    with pytest.warns(UserWarning, match="numItermax"):
        value, code = lp._lp_solve(w, w, ot.dist(x, y), 5)
    assert code == oracle.RESULT_MAX_ITER
    value, code = lp._lp_solve(w, w, ot.dist(x, y), 10**6)
    assert code == oracle.RESULT_OPTIMAL


def test_support_table_packs_only_positive_mass() -> None:
    batch = _toy_batch(n=3)
    table = support_table(batch)
    assert len(table) == 3
    for i in range(3):
        pts, masses = table.measure(i)
        assert (masses > 0).all() and masses.sum() == pytest.approx(1.0, abs=1e-15)
        assert len(pts) == int((batch.weights[i] > 0).sum())
    sub = table.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.measure(0)[0], table.measure(2)[0])
    np.testing.assert_array_equal(sub.measure(1)[1], table.measure(0)[1])


def test_support_table_in_blocks_matches_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _toy_batch(n=10)
    clouds = MeasureBatch(batch.weights.clone(), batch.point_clouds()[0].clone())
    for measures in (batch, clouds):
        whole = support_table(measures, np.array([9, 2, 4, 4, 0, 7, 1]))
        monkeypatch.setattr(supports, "_EXTRACT_BLOCK", 3)
        blocks = support_table(measures, np.array([9, 2, 4, 4, 0, 7, 1]))
        monkeypatch.undo()
        for field in ("points", "masses", "offsets"):
            np.testing.assert_array_equal(getattr(blocks, field), getattr(whole, field))


@pytest.mark.slow
def test_allocator_is_tuned_only_where_dask_pinned_it() -> None:
    """Dask workers run with MALLOC_TRIM_THRESHOLD_ set, which pins glibc's mmap threshold
    and slows each LP ~20 %; the oracle raises that threshold there, and only there."""
    import subprocess
    import sys

    code = (
        "import os, wbench.oracle.lp as o\n"
        "os.environ.pop('MALLOC_TRIM_THRESHOLD_', None); print(o._tune_allocator())\n"
        "o._tune_allocator.cache_clear(); os.environ['MALLOC_TRIM_THRESHOLD_'] = '65536'; print(o._tune_allocator())\n"
        "o._tune_allocator.cache_clear(); os.environ['MALLOC_MMAP_THRESHOLD_'] = '131072'; print(o._tune_allocator())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert out == ["False", "True" if sys.platform.startswith("linux") else out[1], "False"]
