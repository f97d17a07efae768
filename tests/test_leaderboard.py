"""Leaderboards: aggregation over seeds, ranking, failed rows, byte-identical regeneration."""

from __future__ import annotations

import math

import pytest
from conftest import keyed

from wbench.board.leaderboard import records_frame, render, summarise
from wbench.board.report import leaderboard_text
from wbench.records.store import SCHEMA_VERSION, RecordStore


def _record(method: str, seed: int, rel: float, mse: float, status: str = "ok", error: str | None = None) -> dict:
    return keyed({
        "schema_version": SCHEMA_VERSION, "key": f"{method}-{seed}", "dataset": "digits", "dataset_label": "digits",
        "method": method, "label": method, "seed": seed, "status": status, "error": error, "n_parameters": 100,
        "trainable": True,
        "metrics": {} if status != "ok" else {"test.w2.rel_mae": rel, "test.w2.mse": mse},
    })


@pytest.fixture
def run_dir(tmp_path):
    store = RecordStore(tmp_path)
    for seed, (a, b) in enumerate([(0.10, 0.30), (0.12, 0.28), (0.11, 0.32)]):
        store.append(_record("good", seed, a, a * 2))
        store.append(_record("worse", seed, b, b * 2))
    store.append(_record("broken", 0, 0, 0, status="failed", error="RuntimeError: boom\ntrace"))
    return tmp_path


def test_mean_spread_and_rank(run_dir) -> None:
    summary = summarise(records_frame(RecordStore(run_dir).load()), primary="test.w2.rel_mae")
    rows = summary.set_index("method")
    assert list(summary["method"]) == ["good", "worse", "broken"]
    assert rows.loc["good", "rank"] == 1 and rows.loc["good", "seeds"] == 3
    assert rows.loc["good", "test.w2.rel_mae.mean"] == pytest.approx(0.11)
    assert rows.loc["good", "test.w2.rel_mae.std"] == pytest.approx(0.01)
    assert rows.loc["broken", "status"] == "failed" and rows.loc["broken", "error"] == "RuntimeError: boom"
    assert math.isnan(rows.loc["broken", "test.w2.rel_mae.mean"])


def test_markdown_shows_mean_and_spread_and_failure(run_dir) -> None:
    text = leaderboard_text([run_dir], fmt="md")
    assert "| good" in text and "0.11 ± 0.01" in text
    assert "failed: RuntimeError: boom" in text
    assert "Ranked by `test.w2.rel_mae`" in text


def test_significance_against_the_best_method(run_dir) -> None:
    summary = summarise(records_frame(RecordStore(run_dir).load()), primary="test.w2.rel_mae").set_index("method")
    assert summary.loc["good", "vs_best"] == "best"
    assert summary.loc["worse", "vs_best"].startswith("worse (p=")


@pytest.mark.parametrize("fmt", ["md", "csv", "html"])
def test_regeneration_is_byte_identical(run_dir, fmt) -> None:
    assert leaderboard_text([run_dir], fmt=fmt) == leaderboard_text([run_dir], fmt=fmt)


def test_ranking_by_another_metric(run_dir) -> None:
    summary = summarise(records_frame(RecordStore(run_dir).load()), primary="test.w2.mse")
    assert list(summary["method"])[:2] == ["good", "worse"]


def test_unknown_format_is_rejected(run_dir) -> None:
    summary = summarise(records_frame(RecordStore(run_dir).load()), primary="test.w2.rel_mae")
    with pytest.raises(ValueError, match="unknown leaderboard format"):
        render(summary, "pdf", primary="test.w2.rel_mae")


def test_column_selection(run_dir) -> None:
    from wbench.board.leaderboard import select_columns

    text = leaderboard_text([run_dir], columns=select_columns(["test.w2.mse"]), extras=False)
    assert "MSE W2" in text and "rel. MAE" not in text
    with pytest.raises(ValueError, match="unknown leaderboard column 'nope'"):
        select_columns(["nope"])
    assert select_columns(["rel. MAE W2", "fit.wall_time_s"]) == select_columns(["test.w2.rel_mae", "fit s"])


def test_unknown_column_on_the_command_line_is_a_clear_error(run_dir, capsys) -> None:
    from wbench.cli.main import main

    assert main(["leaderboard", str(run_dir), "--columns", "params,nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wbench: error: unknown leaderboard column 'nope'") and "Traceback" not in err


def test_a_run_where_every_cell_failed_still_renders(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a", 0, 0, 0, status="failed", error="ValueError: bad dataset params"))
    for fmt in ("md", "csv", "html"):
        assert "bad dataset params" in leaderboard_text([tmp_path], fmt=fmt)


def test_speed_accuracy_chart_places_every_method_in_both_modes() -> None:
    """One point per method in each panel at (pairs/s, error); the exact solver's round-off error
    sits on the floor line; a method without a throughput is left out of that panel only."""
    import matplotlib.pyplot as plt
    import numpy as np

    from wbench.board.plots import ERROR_FLOOR, speed_accuracy_figure

    fig = speed_accuracy_figure(
        ["exact", "fast", "untimed"], [500.0, 2e4, float("nan")], [450.0, 3e7, 1e5], [1e-16, 0.05, 0.2], title="t"
    )
    try:
        independent, pairwise = (np.concatenate([c.get_offsets() for c in ax.collections]) for ax in fig.axes[:2])
        np.testing.assert_allclose(independent, [[500.0, ERROR_FLOOR], [2e4, 0.05]])
        np.testing.assert_allclose(pairwise, [[450.0, ERROR_FLOOR], [3e7, 0.05], [1e5, 0.2]])
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [
            "exact", "fast", "Pareto front (lower error, faster)", "untimed"]
        # both timed points are on the front (one more accurate, one faster): one dashed line
        front = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
        assert len(front) == 1 and list(front[0].get_xdata()) == [500.0, 2e4]
        assert any(line.get_linestyle() == ":" for line in fig.axes[0].get_lines())  # the floor, in use
    finally:
        plt.close(fig)


def test_the_error_floor_line_is_drawn_only_when_a_point_sits_on_it() -> None:
    """Without an error below the floor, its dotted line would pin the log axis at 1e-6, far
    below every method (the published mnist chart squeezed the methods into its top third)."""
    import matplotlib.pyplot as plt

    from wbench.board.plots import ERROR_FLOOR, speed_accuracy_figure

    fig = speed_accuracy_figure(["a", "b", "c"], [100.0, 1e4, 5e3], [1e5, 1e7, 1e6], [0.01, 0.02, 0.03])
    try:
        assert not any(line.get_linestyle() == ":" for ax in fig.axes[:2] for line in ax.get_lines())
        assert fig.axes[0].get_ylim()[0] > 10 * ERROR_FLOOR
        front = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
        assert list(front[0].get_xdata()) == [100.0, 1e4]  # c (slower and worse than b) is off the front
    finally:
        plt.close(fig)


def test_parameter_counts_print_in_full() -> None:
    """A matched budget is read off the count: 803,576 must not print as 8.04e+05."""
    from wbench.records.columns import COLUMNS

    by_key = {c.key: c for c in COLUMNS}
    assert by_key["n_parameters"].text(803576.0) == "803576"
    assert by_key["n_parameters_trained"].text(111131.0) == "111131"
    assert by_key["n_parameters"].text(float("nan")) == ""
    assert by_key["test.w2.mse"].text(803576.0) == "8.04e+05"  # other columns keep 4 significant digits


def test_a_solvers_pairwise_rate_is_said_to_be_its_per_pair_rate() -> None:
    """Issue 21: solvers have no embedding, so their pairwise column is their per-pair rate, stated as such."""
    import pandas as pd

    from wbench.board.leaderboard import header_lines

    frame = pd.DataFrame({"method": ["exact-lp", "naive", "sinkhorn"], "cost.pairwise_is_per_pair": [1.0, 0.0, 1.0]})
    assert "Solvers (exact-lp, sinkhorn) have nothing to embed: their pairwise pairs/s is their per-pair rate" in \
        header_lines(frame, None)
    assert "Solvers" not in header_lines(frame.assign(**{"cost.pairwise_is_per_pair": 0.0}), None)
