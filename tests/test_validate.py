"""Issue 17 items 1 and 2: every prediction the harness consumes is checked (shape exactly
``(B,)`` / ``(n, m)``, finite, non-negative); a learned method with invalid outputs fails its
cell, a solver's unsolved pairs lower its coverage and keep it off the ranking, and the
conformance kit rejects what the harness would reject."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from wbench.board.leaderboard import records_frame, summarise
from wbench.board.report import leaderboard_text
from wbench.records.store import Outcome, Record
from wbench.run.timing_pass import check_timed_outputs
from wbench.testing import check_surrogate, toy_dataset
from wbench.train.loop import predict_pairs
from wbench.validate import InvalidPredictionError, check_predictions

BAD = FIXTURES / "bad_outputs_plugin.py"
LOCAL = FIXTURES / "local_plugin.py"


def _bad_module():
    from wbench.plugin.manager import make_plugin_manager

    registry = make_plugin_manager([BAD], use_entry_points=False).registry
    return {name: registry.get("surrogate", name).load() for name in ("nan-half", "column", "no-width", "nan-solver")}


@pytest.fixture(scope="module")
def bad():
    return _bad_module()


@pytest.fixture(scope="module")
def toy():
    return toy_dataset(n=12, n_pairs=40)


# ----------------------------------------------------------------------------- the check itself


def test_check_predictions_accepts_valid_values_and_returns_float64() -> None:
    out = check_predictions(torch.tensor([0.0, 1.5, 2.0]), n=3, method="m", call="distance")
    assert out.dtype == np.float64 and out.tolist() == [0.0, 1.5, 2.0]
    matrix = check_predictions(np.ones((2, 3)), n=(2, 3), method="m", call="pairwise")
    assert matrix.shape == (2, 3)


def test_a_column_never_broadcasts() -> None:
    with pytest.raises(InvalidPredictionError, match=r"m: distance returned shape \(4, 1\), expected exactly \(4,\)"):
        check_predictions(np.ones((4, 1)), n=4, method="m", call="distance")
    with pytest.raises(InvalidPredictionError, match=r"shape \(6,\), expected exactly \(2, 3\)"):
        check_predictions(np.ones(6), n=(2, 3), method="m", call="pairwise")


def test_first_bad_pair_is_named_with_its_index_and_value() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0, np.nan])
    with pytest.raises(InvalidPredictionError, match=r"m: training returned an invalid W2 \(not a number\) at pair 12: nan \(2 of 5"):
        check_predictions(values, n=5, method="m", call="training", offset=10)
    with pytest.raises(InvalidPredictionError, match=r"\(negative\) at pair 1: -0.5"):
        check_predictions(np.array([1.0, -0.5]), n=2, method="m", call="distance")
    with pytest.raises(InvalidPredictionError, match=r"\(infinite\) at pair \(1, 0\): inf"):
        check_predictions(np.array([[1.0, 2.0], [np.inf, 0.0]]), n=(2, 2), method="m", call="pairwise", allow_missing=True)


def test_only_a_solver_may_report_missing_pairs() -> None:
    values = np.array([1.0, np.nan, 2.0])
    assert np.isnan(check_predictions(values, n=3, method="s", call="distance", allow_missing=True)[1])
    with pytest.raises(InvalidPredictionError, match="only a solver may report an unsolved pair as NaN"):
        check_predictions(values, n=3, method="m", call="distance")


# ----------------------------------------------------------------------------- the boundaries


def test_predict_pairs_rejects_nan_from_a_learned_method_naming_the_pair(bad, toy) -> None:
    model = bad["nan-half"]()
    with pytest.raises(InvalidPredictionError, match=r"nan-half: distance \(test pairs\) returned .* at pair 1: nan"):
        predict_pairs(model, toy.split("test"), batch_size=2, method="nan-half", call="distance (test pairs)")


def test_predict_pairs_keeps_a_solvers_nan(bad, toy) -> None:
    got = predict_pairs(bad["nan-solver"](), toy.split("test"))
    assert np.isnan(got[::3]).all() and np.isfinite(got[1::3]).all()


def test_training_rejects_a_column_prediction(bad, toy) -> None:
    model = bad["column"]()
    a, b, w2sq = toy.split("train").batch(slice(0, 8))
    model.predict_w2 = lambda x, y: torch.ones(len(x), 1)  # what broadcasting would silently turn into (8, 8)
    with pytest.raises(InvalidPredictionError, match=r"training returned shape \(8, 1\), expected exactly \(8,\)"):
        model.training_loss(a, b, torch.as_tensor(w2sq))


def test_timing_rejects_invalid_outputs(bad, toy) -> None:
    with pytest.raises(InvalidPredictionError, match=r"column: timing \(distance\) returned shape \(4, 1\)"):
        check_timed_outputs(bad["column"](), toy, "column")
    with pytest.raises(InvalidPredictionError, match="nan-half: timing"):
        check_timed_outputs(bad["nan-half"](), toy, "nan-half")
    check_timed_outputs(bad["nan-solver"](), toy, "nan-solver")  # a solver may leave pairs unsolved


def test_pairwise_matrix_of_the_wrong_shape_fails_the_metric_run(toy) -> None:
    from wbench.evaluation import EvaluationContext, run_metrics, surrogate_matrix
    from wbench.surrogate import Solver

    class Flat(Solver):
        input_kind = "any"

        def distance(self, a, b):
            return torch.zeros(len(a), dtype=torch.float64)

        def pairwise(self, x, y):
            return torch.zeros(len(x) * len(y), dtype=torch.float64)

    ctx = EvaluationContext(Flat(), toy, {}, lambda r, c: np.zeros((len(r), len(c))), seed=0, method="flat")
    with pytest.raises(InvalidPredictionError, match=r"flat: pairwise returned shape \(6,\), expected exactly \(2, 3\)"):
        surrogate_matrix(ctx, np.arange(2), np.arange(3))
    with pytest.raises(InvalidPredictionError):  # not swallowed as one metric's error: the cell fails
        run_metrics(ctx, {"m": lambda c: {"x": float(surrogate_matrix(c, np.arange(2), np.arange(3)).sum())}})


# ----------------------------------------------------------------------------- a whole run


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    from wbench.plugin.manager import make_plugin_manager
    from wbench.run.runner import Runner, RunOptions
    from wbench.run.suite import load_suite

    out = tmp_path_factory.mktemp("bad-run")
    plugins = make_plugin_manager([LOCAL, BAD])
    options = RunOptions(
        out_dir=out, seeds=(0,), surrogates=("local-centroid", "nan-half", "nan-after-fit", "column", "nan-solver"),
        cache_dir=out / "cache", n_jobs=1,
    )
    Runner(load_suite(FIXTURES / "tiny_suite.toml"), plugins, options).run()
    records = {r["method"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    return out, records


def test_a_learned_method_with_nan_on_half_the_pairs_fails_its_cell(bad_run) -> None:
    _, records = bad_run
    record = records["nan-half"]
    assert record["status"] == "failed"
    assert "InvalidPredictionError" in record["error"] and "NaNHalf: training (validation)" in record["error"]
    assert "not a number) at pair 1: nan" in record["error"]


def test_a_learned_method_with_nan_after_its_fit_fails_at_evaluation_naming_it(bad_run) -> None:
    _, records = bad_run
    record = records["nan-after-fit"]
    assert record["status"] == "failed"
    assert "nan-after-fit: distance (train pairs) returned an invalid W2 (not a number) at pair 1: nan" in record["error"]


def test_a_learned_method_returning_a_column_fails_with_a_shape_error(bad_run) -> None:
    _, records = bad_run
    record = records["column"]
    assert record["status"] == "failed" and "expected exactly" in record["error"] and ", 1)" in record["error"]


def test_a_solver_with_unsolved_pairs_is_listed_partial_not_ranked(bad_run) -> None:
    out, records = bad_run
    solver = records["nan-solver"]
    assert solver["status"] == "ok" and solver["metrics"]["test.n_pairs"] == 12
    assert solver["coverage"] == pytest.approx(8 / 12)  # NaN at test pairs 0, 3, 6, 9
    assert records["local-centroid"]["coverage"] == 1.0
    text = leaderboard_text([out], extras=False)
    text = text[text.index(": every column"):]  # coverage and status are not among the main table's columns
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")] for line in text.splitlines() if line.startswith("| ")}
    header = rows.pop("method")
    rank, status, cov = header.index("rank"), header.index("status"), header.index("coverage")
    assert rows["local-centroid"][rank] == "" and rows["local-centroid"][cov] == "1"  # a solver: a reference row
    assert rows["nan-solver"][rank] == "" and rows["nan-solver"][cov] == "0.6667"
    assert rows["nan-solver"][status] == "partial (coverage 0.6667)"
    assert rows["nan-half"][status].startswith("failed") and rows["column"][status].startswith("failed")
    assert rows["nan-half"][rank] == "" and rows["column"][rank] == ""  # failed cells are never ranked
    order = [line.split("|")[2].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    # by class (the failed learned methods, then the solvers), in a class: ranked, partial, failed
    assert order == ["column", "nan-after-fit", "nan-half", "local-centroid", "nan-solver"]


def test_old_records_without_coverage_read_it_from_n_failed() -> None:
    def record(method: str, failed: float | None, rel_mae: float) -> Record:
        metrics = {"test.w2.rel_mae": rel_mae, "test.n_pairs": 10.0}
        if failed is not None:
            metrics["test.n_failed"] = failed
        return Record(key=method, status="ok", dataset="d", method=method, seed=0, outcome=Outcome(metrics=metrics))

    df = records_frame([record("a", None, 0.3), record("b", 0.0, 0.2), record("c", 4.0, 0.1)])
    assert df.set_index("method")["coverage"].to_dict() == {"a": 1.0, "b": 1.0, "c": pytest.approx(0.6)}
    summary = summarise(df, primary="test.w2.rel_mae").set_index("method")
    assert summary.loc["b", "rank"] == 1 and summary.loc["a", "rank"] == 2 and np.isnan(summary.loc["c", "rank"])


# ----------------------------------------------------------------------------- the conformance kit


def test_kit_rejects_a_column_output(bad, toy) -> None:
    with pytest.raises(AssertionError, match=r"Column.fit: Column: training \(validation\) returned shape \(8, 1\), expected exactly \(8,\)"):
        check_surrogate(bad["column"], {}, toy)


def test_kit_rejects_nan_on_half_the_pairs(bad, toy) -> None:
    with pytest.raises(AssertionError, match=r"not a number\) at pair 1"):
        check_surrogate(bad["nan-half"], {}, toy)


def test_kit_rejects_a_learned_method_without_width(bad, toy) -> None:
    with pytest.raises(AssertionError, match="NoWidth is trainable but has no width option"):
        check_surrogate(bad["no-width"], {}, toy)
    check_surrogate(bad["no-width"], {}, toy, match_budget=False)  # fine at its own size


def test_kit_rejects_a_width_that_does_not_change_the_size(toy) -> None:
    from wbench.surrogate import EmbeddingSurrogate

    class Fixed(EmbeddingSurrogate):
        input_kind = "any"
        width_param = "width"

        def __init__(self, width: int = 4) -> None:
            super().__init__(width=width)
            self.model = torch.nn.Linear(2, 2)

        def embed(self, x):
            points, weights = x.point_clouds()
            return self.model(torch.einsum("bn,bnd->bd", weights.float(), points.float()))

    with pytest.raises(AssertionError, match=r"does not grow with width \(6 at 4, 6 at 8\)"):
        check_surrogate(Fixed, {}, toy)


def test_kit_passes_a_valid_learned_method(bad, toy) -> None:
    model = check_surrogate(bad["nan-half"].__mro__[1], {"width": 2}, toy)  # CentroidModel, valid
    assert model.n_parameters == 6



def test_kit_rejects_a_false_metric_by_construction_claim(bad, toy) -> None:
    """The leaderboard skips the axiom audit of a method that declares itself a metric by
    construction, so the kit checks the claim: squared centroid distances break the triangle
    inequality (points 0, 1, 2 on a line: 4 > 1 + 1)."""
    centroid = bad["nan-half"].__mro__[1]

    class SquaredCentroid(centroid):
        def distance(self, a, b):
            return super().distance(a, b) ** 2

        def pairwise(self, x, y):
            return super().pairwise(x, y) ** 2

    assert SquaredCentroid.metric_by_construction  # inherited from EmbeddingSurrogate
    with pytest.raises(AssertionError, match="declares metric_by_construction but violates the triangle inequality"):
        check_surrogate(SquaredCentroid, {"width": 2}, toy, match_budget=False)
