"""Metrics on cases with known answers: a translation manifold whose exact W2 is |v_i - v_j|."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from wbench import metrics as M
from wbench.budget import Budget
from wbench.data import LabelledPairs, PairedDataset, PairSet
from wbench.evaluation import EvaluationContext, MetricSkipped, evaluation_pool, run_metrics
from wbench.measures import MeasureBatch
from wbench.surrogate import FitReport, Surrogate
from wbench_plugins.metrics.axioms import axioms
from wbench_plugins.metrics.errors import error_by_range, errors, generalisation_gap
from wbench_plugins.metrics.retrieval import retrieval
from wbench_plugins.metrics.wassmap import wassmap

GRID = 12


def translated_squares(shifts: np.ndarray) -> MeasureBatch:
    """A 2x2 square of uniform mass at (1, 1) translated by each integer shift ``(n, 2)``."""
    images = np.zeros((len(shifts), GRID, GRID))
    for k, (dr, dc) in enumerate(shifts.astype(int)):
        images[k, 1 + dr : 3 + dr, 1 + dc : 3 + dc] = 1.0
    return MeasureBatch.from_images(torch.tensor(images, dtype=torch.float32))


def grid_shifts(side: int = 6) -> np.ndarray:
    return np.array([(i, j) for i in range(side) for j in range(side)], dtype=np.float64)


def translation_dataset(shifts: np.ndarray, *, n_pairs: int = 120, seed: int = 0, translations: bool = True) -> PairedDataset:
    """Measures, random pair splits with the closed-form exact W2^2 = |v_i - v_j|^2."""
    rng = np.random.default_rng(seed)
    n = len(shifts)
    left = rng.integers(0, n, size=n_pairs)
    right = (left + rng.integers(1, n, size=n_pairs)) % n
    w2sq = ((shifts[left] - shifts[right]) ** 2).sum(axis=1)
    cut1, cut2 = n_pairs // 2, 3 * n_pairs // 4
    pairs = {
        "train": PairSet(left[:cut1], right[:cut1], w2sq[:cut1]),
        "val": PairSet(left[cut1:cut2], right[cut1:cut2], w2sq[cut1:cut2]),
        "test": PairSet(left[cut2:], right[cut2:], w2sq[cut2:]),
    }
    metadata = {"translations": shifts.copy()} if translations else {}
    return PairedDataset("translations", {"n": n}, translated_squares(shifts), pairs, metadata=metadata)


class CentroidSurrogate(Surrogate):
    """W2 between translates of one shape is the distance between their centroids.

    :param transform: applied to the exact distance (e.g. squaring it).
    :param asymmetry: added to d(x, y) when x's centroid has the larger coordinate sum.
    :param self_offset: added to d(x, x).
    """

    input_kind = "any"

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor] | None = None, asymmetry: float = 0.0, self_offset: float = 0.0):
        super().__init__()
        self.transform, self.asymmetry, self.self_offset = transform, asymmetry, self_offset
        self.calls = 0

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        return FitReport()

    @staticmethod
    def centroid(x: MeasureBatch) -> torch.Tensor:
        points, weights = x.point_clouds()
        return (weights.double().unsqueeze(-1) * points.double()).sum(dim=1)

    def _d(self, ca: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
        d = (ca - cb).norm(dim=-1)
        if self.transform is not None:
            d = self.transform(d)
        d = d + self.asymmetry * (ca.sum(-1) > cb.sum(-1)).double()
        return d + self.self_offset * (ca == cb).all(-1).double()

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        self.calls += 1
        return self._d(self.centroid(a), self.centroid(b))

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        self.calls += 1
        return self._d(self.centroid(x)[:, None, :], self.centroid(y)[None, :, :])


class SlowSolver(CentroidSurrogate):
    """The exact centroid distance as a solver (nothing to fit), optionally slow per pair."""

    trainable = False

    def __init__(self, sleep_per_pair: float = 0.0):
        super().__init__()
        self.sleep_per_pair = sleep_per_pair

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        time.sleep(self.sleep_per_pair * len(a))
        return super().distance(a, b)

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        time.sleep(self.sleep_per_pair * len(x) * len(y))
        return super().pairwise(x, y)


def exact_predictions(dataset: PairedDataset) -> dict[str, np.ndarray]:
    return {split: np.sqrt(p.w2sq) for split, p in dataset.pairs.items()}


def make_ctx(dataset: PairedDataset, surrogate: Surrogate | None = None, *, predictions=None, options=None) -> EvaluationContext:
    shifts = np.asarray(dataset.metadata.get("translations", grid_shifts()))
    calls: list[tuple[int, int]] = []

    def exact_block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        calls.append((len(rows), len(cols)))
        return ((shifts[rows][:, None, :] - shifts[cols][None, :, :]) ** 2).sum(axis=-1)

    ctx = EvaluationContext(
        surrogate=surrogate or CentroidSurrogate(),
        dataset=dataset,
        predictions=exact_predictions(dataset) if predictions is None else predictions,
        exact_block=exact_block,
        seed=0,
        options=options or {},
    )
    ctx.block_calls = calls  # type: ignore[attr-defined]
    return ctx


@pytest.fixture(scope="module")
def grid_dataset() -> PairedDataset:
    return translation_dataset(grid_shifts(6))


# ----------------------------------------------------------------------------- the fixture itself


def test_closed_form_matches_the_exact_lp(grid_dataset):
    from wbench.oracle.solve import exact_w2sq_pair

    test = grid_dataset.pairs["test"]
    for i, j, w2sq in zip(test.left[:8], test.right[:8], test.w2sq[:8], strict=True):
        lp = exact_w2sq_pair(*grid_dataset.measures.measure(int(i)), *grid_dataset.measures.measure(int(j)))
        assert lp == pytest.approx(w2sq, abs=1e-9)


# ----------------------------------------------------------------------------- pair errors


def test_exact_surrogate_scores_zero_error_and_unit_correlation(grid_dataset):
    values = errors(make_ctx(grid_dataset))
    for split in ("train", "val", "test"):
        for unit in ("w2", "w2sq"):
            for stat in ("mse", "rmse", "mae", "rel_mae", "max_abs"):
                assert values[f"{split}.{unit}.{stat}"] == pytest.approx(0.0, abs=1e-12)
            assert values[f"{split}.{unit}.pearson"] == pytest.approx(1.0)
            assert values[f"{split}.{unit}.spearman"] == pytest.approx(1.0)
        assert values[f"{split}.n_failed"] == 0
        assert values[f"{split}.n_pairs"] == len(grid_dataset.pairs[split])


def test_constant_offset_gives_known_errors(grid_dataset):
    c = 0.5
    true_w2 = grid_dataset.pairs["test"].w2
    values = M.pair_metrics(true_w2 + c, grid_dataset.pairs["test"].w2sq, prefix="test")
    assert values["test.w2.mse"] == pytest.approx(c**2)
    assert values["test.w2.rmse"] == pytest.approx(c)
    assert values["test.w2.mae"] == pytest.approx(c)
    assert values["test.w2.max_abs"] == pytest.approx(c)
    assert values["test.w2.rel_mae"] == pytest.approx(np.mean(c / true_w2))
    assert values["test.w2.pearson"] == pytest.approx(1.0)
    # on W2^2 the error is (w + c)^2 - w^2 = 2 c w + c^2
    sq_err = 2 * c * true_w2 + c**2
    assert values["test.w2sq.mse"] == pytest.approx(np.mean(sq_err**2))
    assert values["test.w2sq.mae"] == pytest.approx(np.mean(sq_err))
    assert values["test.w2sq.max_abs"] == pytest.approx(np.max(sq_err))


def test_failed_predictions_are_dropped_and_counted(grid_dataset):
    true_w2 = grid_dataset.pairs["test"].w2
    pred = true_w2.copy()
    pred[[0, 3, 7]] = np.nan
    pred[5] = np.inf
    values = M.pair_metrics(pred, grid_dataset.pairs["test"].w2sq, prefix="test")
    assert values["test.n_failed"] == 4
    assert values["test.n_pairs"] == len(true_w2)
    assert values["test.w2.mse"] == pytest.approx(0.0, abs=1e-12)
    assert all(math.isfinite(v) for v in values.values())


def test_undefined_statistics_are_omitted_not_nan():
    values = M.pair_metrics(np.array([1.0, 1.0, 1.0]), np.array([1.0, 4.0, 0.0]), prefix="t")
    assert "t.w2.pearson" not in values and "t.w2.spearman" not in values  # constant prediction
    assert values["t.w2.rel_mae"] == pytest.approx(0.25)  # mean over the pairs with true > 0: (0 + 1/2) / 2
    all_failed = M.pair_metrics(np.array([np.nan, np.nan]), np.array([1.0, 2.0]), prefix="t")
    assert all_failed == {"t.n_pairs": 2.0, "t.n_failed": 2.0}


def test_rel_mae_uses_only_positive_truths():
    values = M.pair_metrics(np.array([0.1, 2.0]), np.array([0.0, 1.0]), prefix="")
    assert values["w2.rel_mae"] == pytest.approx(1.0)
    assert values["w2.max_abs"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- error by range


def test_error_by_range_quartile_counts():
    true_w2 = np.arange(1.0, 9.0)
    pred = true_w2 + np.array([0, 0, 1, 1, 0, 0, 2, np.nan])
    values = M.error_by_range(pred, true_w2**2, "test.w2")
    assert [values[f"test.w2.q{b}.n"] for b in (1, 2, 3, 4)] == [2, 2, 2, 2]
    assert values["test.w2.q1.lo"] == 1.0 and values["test.w2.q4.hi"] == 8.0
    assert values["test.w2.q1.mse"] == 0.0
    assert values["test.w2.q2.mse"] == pytest.approx(1.0)
    assert values["test.w2.q4.n_failed"] == 1
    assert values["test.w2.q4.mse"] == pytest.approx(4.0)  # the failed pair is dropped


def test_error_by_range_fixed_edges_are_named_in_the_column():
    true_w2 = np.arange(1.0, 9.0)
    values = M.error_by_range(true_w2, true_w2**2, "test.w2", edges=[0, 2, 5, 10])
    assert values["test.w2.range_0_2.n"] == 1
    assert values["test.w2.range_2_5.n"] == 3
    assert values["test.w2.range_5_10.n"] == 4
    edges = M.error_by_range(true_w2, true_w2**2, "x", edges=[0, 2.5, math.inf])
    assert edges["x.range_0_2p5.n"] == 2 and edges["x.range_2p5_inf.n"] == 6


def test_error_by_range_metric_reads_options(grid_dataset):
    ctx = make_ctx(grid_dataset, options={"range_edges": [0, 3, 100]})
    values = error_by_range(ctx)
    test_w2 = grid_dataset.pairs["test"].w2
    assert values["test.w2.range_0_3.n"] == int((test_w2 < 3).sum())
    assert values["test.w2.range_3_100.n"] == int((test_w2 >= 3).sum())
    default = error_by_range(make_ctx(grid_dataset))
    assert sum(default[f"test.w2.q{b}.n"] for b in range(1, 5)) == len(test_w2)


# ----------------------------------------------------------------------------- generalisation gap


def test_generalisation_gap(grid_dataset):
    preds = exact_predictions(grid_dataset)
    preds["train"] = preds["train"] + 0.1
    preds["test"] = preds["test"] + 0.3
    values = generalisation_gap(make_ctx(grid_dataset, predictions=preds))
    assert values["gap.w2.mse_diff"] == pytest.approx(0.09 - 0.01)
    assert values["gap.w2.mse_ratio"] == pytest.approx(9.0)
    exact_train = exact_predictions(grid_dataset)
    exact_train["test"] = exact_train["test"] + 0.3
    values = generalisation_gap(make_ctx(grid_dataset, predictions=exact_train))
    assert "gap.w2.mse_ratio" not in values  # ratio by a zero train MSE is omitted
    noisy = exact_predictions(grid_dataset)
    noisy["train"] = noisy["train"] * (1 + 1e-15)
    noisy["test"] = noisy["test"] * (1 - 1e-15)
    values = generalisation_gap(make_ctx(grid_dataset, predictions=noisy))
    assert "gap.w2.mse_ratio" not in values  # nor a ratio of rounding errors
    assert values["gap.w2.mse_diff"] == pytest.approx(0.0, abs=1e-20)
    test_only = generalisation_gap(make_ctx(grid_dataset, predictions={"test": exact_train["test"]}))
    assert test_only == {}


# ----------------------------------------------------------------------------- retrieval


def test_knn_recall_known_cases():
    exact = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert M.knn_recall(exact, exact, 2) == 1.0
    assert M.knn_recall(-exact, exact, 2) == 0.0  # reversed ranking
    assert M.knn_recall(np.array([[1.0, 3.0, 2.0, 4.0]]), exact, 2) == 0.5
    # ties in the exact distances: any tied item counts
    tied = np.array([[1.0, 2.0, 2.0, 5.0]])
    assert M.knn_recall(np.array([[0.0, 3.0, 1.0, 9.0]]), tied, 2) == 1.0
    # excluded self-match is never retrieved nor counted
    exclude = np.array([[True, False, False, False]])
    assert M.knn_recall(exact, exact, 2, exclude=exclude) == 1.0
    assert M.knn_recall(np.array([[np.nan, 2.0, 3.0, 4.0]]), exact, 1) == 0.0
    with pytest.raises(ValueError):
        M.knn_recall(exact, exact, 4, exclude=exclude)


def test_retrieval_exact_surrogate_has_full_recall(grid_dataset):
    ctx = make_ctx(grid_dataset, options={"k": [1, 5, 10], "n_queries": 20, "n_database": 25})
    values = retrieval(ctx)
    for k in (1, 5, 10):
        assert values[f"retrieval.recall@{k}"] == pytest.approx(1.0)
    assert values["retrieval.n_queries"] == 20
    assert values["retrieval.n_database"] == 25
    assert ctx.block_calls == [(20, 25)]


def test_retrieval_excludes_the_query_itself(grid_dataset):
    pool = evaluation_pool(grid_dataset)
    # the database is the whole pool, so every query is in it
    ctx = make_ctx(grid_dataset, options={"k": 1, "n_queries": 10, "n_database": 10_000})
    values = retrieval(ctx)
    assert values["retrieval.n_database"] == len(pool)
    assert values["retrieval.recall@1"] == pytest.approx(1.0)


def test_retrieval_of_a_bad_surrogate_is_low(grid_dataset):
    ctx = make_ctx(grid_dataset, CentroidSurrogate(transform=lambda d: 1.0 / (1.0 + d)), options={"k": 5, "n_database": 30})
    assert retrieval(ctx)["retrieval.recall@5"] < 0.2


def test_retrieval_is_skipped_for_a_solver_above_the_size_limit(grid_dataset):
    solver = SlowSolver()
    ctx = make_ctx(grid_dataset, solver, options={"n_queries": 50, "n_database": 25, "solver_max_evaluations": 500})
    with pytest.raises(MetricSkipped, match=r"needs 725 solver evaluations, above solver_max_evaluations=500"):
        retrieval(ctx)
    values, errs = run_metrics(ctx, {"retrieval": retrieval, "axioms": axioms})
    assert values == {} and errs["retrieval"].startswith("skipped:") and errs["axioms"].startswith("skipped:")
    assert solver.calls == 0  # decided from sizes: the solver is never called, never timed
    fast = make_ctx(grid_dataset, SlowSolver(), options={"n_queries": 10, "n_database": 25})
    assert retrieval(fast)["retrieval.recall@10"] == pytest.approx(1.0)


def test_the_column_set_does_not_depend_on_the_machine_speed(grid_dataset, monkeypatch):
    """Issue 17 item 16: the same evaluation gives the same columns on a fast and a slow clock."""
    import wbench.evaluation as evaluation

    def columns(seconds_per_call: float) -> set[str]:
        now = [0.0]

        def clock() -> float:
            now[0] += seconds_per_call
            return now[0]

        monkeypatch.setattr(time, "perf_counter", clock)
        if hasattr(evaluation, "time"):
            monkeypatch.setattr(evaluation.time, "perf_counter", clock)
        options = {"n_queries": 10, "n_database": 25, "n_symmetry": 20, "n_triplets": 50}
        ctx = make_ctx(grid_dataset, SlowSolver(), options=options)
        values, _ = run_metrics(ctx, {"retrieval": retrieval, "axioms": axioms})
        return set(values)

    fast, slow = columns(1e-9), columns(1e3)
    assert fast == slow and "retrieval.recall@10" in fast and "axioms.triangle_violation_rate" in fast


def test_retired_time_budget_option_is_a_clear_error(grid_dataset):
    ctx = make_ctx(grid_dataset, SlowSolver(), options={"solver_time_budget_s": 30})
    values, errs = run_metrics(ctx, {"retrieval": retrieval})
    assert values == {} and "replaced by solver_max_evaluations" in errs["retrieval"]


# ----------------------------------------------------------------------------- axioms


def test_axioms_of_the_exact_distance(grid_dataset):
    values = axioms(make_ctx(grid_dataset))
    assert values["axioms.symmetry_error"] == 0.0
    assert values["axioms.self_distance_mean"] == 0.0
    assert values["axioms.triangle_violation_rate"] == 0.0
    assert values["axioms.n_triplets"] == 500


def test_squared_distance_violates_the_triangle_inequality_at_the_known_rate():
    # collinear translates: with d = W2^2, (x, y, z) violates iff y lies between x and z,
    # which is 2 of the 6 orderings of any 3 distinct points: rate 1/3 over all triplets
    line = translation_dataset(np.array([(0.0, k) for k in range(6)]), n_pairs=40)
    ctx = make_ctx(line, CentroidSurrogate(transform=lambda d: d**2))
    pool = evaluation_pool(line)
    values = axioms(ctx)
    n = len(pool)
    assert values["axioms.n_triplets"] == n * (n - 1) * (n - 2)  # all of them: the rate is exact
    assert values["axioms.triangle_violation_rate"] == pytest.approx(1 / 3)
    assert values["axioms.triangle_max_excess"] == pytest.approx(max((a + b) ** 2 - a**2 - b**2 for a in range(1, n) for b in range(1, n) if a + b < n))


def test_sampled_triangle_violation_rate_matches_the_sampled_triplets(grid_dataset):
    ctx = make_ctx(grid_dataset, CentroidSurrogate(transform=lambda d: d**2), options={"n_triplets": 400})
    values = axioms(ctx)
    # recompute on the same seeded draw
    rng = ctx.rng()
    triplets = M.sample_triplets(evaluation_pool(grid_dataset), 400, rng)
    shifts = grid_dataset.metadata["translations"]

    def d(i, j):
        return ((shifts[i] - shifts[j]) ** 2).sum(axis=1)

    expected = M.triangle_violations(d(triplets[:, 0], triplets[:, 1]), d(triplets[:, 1], triplets[:, 2]), d(triplets[:, 0], triplets[:, 2]))
    assert 0 < expected["rate"] < 1
    assert values["axioms.triangle_violation_rate"] == pytest.approx(expected["rate"])


def test_triangle_violations_on_crafted_distances():
    d_xy = np.array([1.0, 1.0, 1.0, 1.0])
    d_yz = np.array([1.0, 1.0, 1.0, 1.0])
    d_xz = np.array([2.0, 2.5, 1.0, 2.0 + 1e-9])  # equality and float noise are not violations
    result = M.triangle_violations(d_xy, d_yz, d_xz)
    assert result == {"rate": 0.25, "max_excess": pytest.approx(0.5), "n": 4.0}


def test_sample_triplets_are_distinct_and_seeded():
    pool = np.arange(100, 150)
    a = M.sample_triplets(pool, 1000, np.random.default_rng(3))
    b = M.sample_triplets(pool, 1000, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.shape == (1000, 3)
    assert np.all((a[:, 0] != a[:, 1]) & (a[:, 1] != a[:, 2]) & (a[:, 0] != a[:, 2]))
    assert set(np.unique(a)) <= set(pool)


def test_asymmetry_and_self_distance_are_measured(grid_dataset):
    values = axioms(make_ctx(grid_dataset, CentroidSurrogate(asymmetry=0.5, self_offset=0.25)))
    assert values["axioms.symmetry_error"] == pytest.approx(0.5)
    assert values["axioms.self_distance_mean"] == pytest.approx(0.25)
    assert values["axioms.self_distance_max"] == pytest.approx(0.25)


# ----------------------------------------------------------------------------- Wassmap


def test_wassmap_on_the_closed_form_exact_distance():
    shifts = grid_shifts(6)
    exact = np.linalg.norm(shifts[:, None] - shifts[None], axis=-1)
    assert M.procrustes_disparity(shifts, M.wassmap_embedding(exact)) < 5e-3
    noise = np.random.default_rng(0).uniform(0, 5, exact.shape)
    assert M.procrustes_disparity(shifts, M.wassmap_embedding(noise + noise.T)) > 0.3


def test_wassmap_metric(grid_dataset):
    values = wassmap(make_ctx(grid_dataset))
    assert values["wassmap.n"] == 36
    assert values["wassmap.procrustes_exact"] < 5e-3
    assert values["wassmap.procrustes_surrogate"] == pytest.approx(values["wassmap.procrustes_exact"], abs=1e-9)
    bad = wassmap(make_ctx(grid_dataset, CentroidSurrogate(transform=lambda d: torch.sin(3 * d) + 1.0)))
    assert bad["wassmap.procrustes_surrogate"] > 10 * bad["wassmap.procrustes_exact"]


def test_wassmap_on_the_shapes_dataset():
    from wbench.oracle.solve import exact_w2sq_pair
    from wbench_plugins.datasets.shapes import ShapesDataset

    def lp_block(dataset):
        def block(rows, cols):
            m = dataset.measures
            return np.array([[exact_w2sq_pair(*m.measure(int(i)), *m.measure(int(j))) for j in cols] for i in rows])
        return block

    translated = ShapesDataset(family="translation", size=16, scale=3.0, n_measures=40, n_pairs=60).build()
    ctx = make_ctx(translated, predictions={})
    ctx.exact_block = lp_block(translated)
    values = wassmap(ctx)
    assert values["wassmap.n_components"] == 2 and values["wassmap.n"] == 40
    assert values["wassmap.procrustes_exact"] < 1e-2
    assert values["wassmap.procrustes_surrogate"] < 1e-2  # centroids are exact for translates
    # a dilation family: the scale is the coordinate, which centroids cannot see
    dilated = ShapesDataset(family="dilation", size=12, scale_range=(1.5, 5.0), n_measures=16, n_pairs=30).build()
    ctx = make_ctx(dilated, predictions={})
    ctx.exact_block = lp_block(dilated)
    values = wassmap(ctx)
    assert values["wassmap.n_components"] == 1
    assert values["wassmap.procrustes_exact"] < 0.05
    assert values["wassmap.procrustes_surrogate"] > 0.5


def test_wassmap_needs_translations():
    plain = translation_dataset(grid_shifts(4), translations=False)
    assert wassmap(make_ctx(plain)) == {}


# ----------------------------------------------------------------------------- running metrics


def test_run_metrics_isolates_failures(grid_dataset):
    def broken(ctx):
        raise RuntimeError("boom")

    def non_finite(ctx):
        return {"x.nan": float("nan"), "x.ok": 1.0, "x.text": "abc"}

    ctx = make_ctx(grid_dataset)
    values, errs = run_metrics(ctx, {"broken": broken, "errors": errors, "odd": non_finite, "again": errors})
    assert errs["broken"] == "RuntimeError: boom"
    assert "x.nan" in errs["odd"] and "x.text" in errs["odd"]
    assert "already returned" in errs["again"]
    assert values["x.ok"] == 1.0 and values["test.w2.mse"] == pytest.approx(0.0, abs=1e-12)
    assert "x.nan" not in values
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())


def test_every_builtin_metric_runs_through_the_plugin(grid_dataset):
    from wbench.plugin.registry import Registry
    from wbench_plugins import metrics as plugin

    registry = Registry()
    plugin.wbench_register_metrics(registry=registry)
    names = registry.names("metric")
    assert names == sorted(["errors", "error_by_range", "generalisation_gap", "retrieval", "axioms", "wassmap"])
    functions = {name: registry.get("metric", name).load() for name in names}
    ctx = make_ctx(grid_dataset, options={"n_database": 30, "n_triplets": 100})
    values, errs = run_metrics(ctx, functions)
    assert errs == {}
    for column in ("test.w2.mse", "test.w2.q1.mse", "gap.w2.mse_diff", "retrieval.recall@10",
                   "axioms.triangle_violation_rate", "wassmap.procrustes_surrogate", "test.n_failed"):
        assert column in values
    assert all(c == c.lower() for c in values)


def test_a_third_party_metric_registers_and_runs_like_the_builtin_ones(grid_dataset):
    from conftest import FIXTURES

    from wbench.plugin.manager import make_plugin_manager

    registry = make_plugin_manager([FIXTURES / "metric_plugin.py"], use_entry_points=False).registry
    entry = registry.get("metric", "median_w2")
    assert entry.plugin == "metric_plugin"
    values, errs = run_metrics(make_ctx(grid_dataset), {"median_w2": entry.load()})
    assert errs == {}
    exact_median = float(np.median(grid_dataset.pairs["test"].w2))  # the context's predictions are exact
    assert values["test.w2.median"] == pytest.approx(exact_median, abs=1e-12)
    # the centroid surrogate is exact on translations: recomputed through surrogate_distances
    assert values["test.w2.median_again"] == pytest.approx(exact_median, rel=1e-5)


@pytest.mark.parametrize("name", ["lot", "sliced"])
def test_embeddings_get_retrieval_and_axioms_like_learned_methods(grid_dataset, monkeypatch, name):
    """Issue 17 item 16: an embedding needs one embedding per measure in pairwise mode, so it
    gets recall@10 and the axiom audit at the default sizes, on any clock (here a slow one)."""
    from wbench.evaluation import guard_cost, is_embedding
    from wbench.plugin.manager import make_plugin_manager

    entry = make_plugin_manager().registry.get("surrogate", name)
    cls = entry.load()
    solver = cls(**cls.params_for(dict(entry.test_params), grid_dataset.measures))
    solver.fit(grid_dataset.split("train"), grid_dataset.split("val"), Budget(epochs=1))
    assert is_embedding(solver)
    now = [0.0]

    def slow_clock() -> float:
        now[0] += 1e3
        return now[0]

    monkeypatch.setattr(time, "perf_counter", slow_clock)
    ctx = make_ctx(grid_dataset, solver)
    guard_cost(ctx, 10**9, "anything")  # no size limit for an embedding
    values, errs = run_metrics(ctx, {"retrieval": retrieval, "axioms": axioms})
    assert "retrieval" not in errs and "axioms" not in errs, errs
    assert values["retrieval.recall@10"] > 0.5
    assert values["axioms.triangle_violation_rate"] == 0.0  # a Euclidean distance of embeddings
