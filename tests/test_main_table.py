"""The Pareto front and the nine-column main table (issue 32 items 2 and 4), on small frames
with known answers."""

from __future__ import annotations

import math

import pandas as pd

from wbench.board.main_table import add_front, error_text, main_table, pareto_front, speedup_text
from wbench.board.numbers import significant


def test_the_front_keeps_exactly_the_undominated_points() -> None:
    errors = [0.01, 0.02, 0.03, 0.02, 0.05, math.nan]
    speeds = [1.0, 50.0, 40.0, 50.0, 500.0, 1000.0]
    # 0.03/40 is dominated by 0.02/50; two equal points do not dominate each other; NaN is off
    assert pareto_front(errors, speeds) == [True, True, False, True, True, False]


def _summary() -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": ["d"] * 4, "method": ["slow-good", "fast-bad", "dominated", "lp"],
        "class": ["learned", "learned", "learned", "solver"], "rank": [1, 2, 3, math.nan],
        "seeds": [3, 3, 3, 3], "status": ["ok"] * 4, "flags": ["", "", "1 of 3 seeds", "500 of 2,750 test pairs"],
        "n_parameters.mean": [100, 100, 100, 0],
        "test.w2.rel_mae.mean": [0.019023, 0.025, 0.03, 1.2e-16], "test.w2.rel_mae.std": [0.00079, 0.0005, 0.001, 0.0],
        "test.w2.pearson.mean": [0.99634, 0.99, 0.98, 1.0],
        "speedup.one_core.mean": [49.23, 470.4, 60.0, math.nan], "speedup.one_core.std": [1.373, 8.791, 1.0, math.nan],
        "speedup.lp_relative_iqr": [0.2256, 0.2256, 0.2256, math.nan],
    })


def test_the_front_is_computed_per_dataset_among_rows_with_a_speed() -> None:
    assert list(add_front(_summary())["front"]) == [True, True, False, False]


def test_the_main_table_has_nine_columns_and_honest_precision() -> None:
    table = main_table(_summary())
    assert list(table.columns) == ["dataset", "method", "class", "params", "rel. MAE (%)", "Pearson", "recall",
                                   "speed-up indep.", "speed-up pairwise", "flags"]
    first = table.iloc[0]
    assert first["class"] == "learned #1"
    assert first["rel. MAE (%)"] == "1.90 ± 0.079"
    assert first["Pearson"] == "0.996"
    # the seeds' spread (1.373 / 49.23) and the LP's (0.2256 / 1.349) in quadrature, two figures
    assert first["speed-up indep."] == "49x ± 8.3 ★"
    assert table.iloc[2]["speed-up indep."] == "60x ± 10"
    lp = table.iloc[3]
    assert (lp["class"], lp["rel. MAE (%)"], lp["speed-up indep."]) == ("solver", "exact", "")


def test_deterministic_rows_show_no_spread() -> None:
    row = pd.Series({"class": "untrained", "seeds": 3, "test.w2.rel_mae.mean": 0.01596, "test.w2.rel_mae.std": 1e-18})
    assert error_text(row) == "1.60"
    row = pd.Series({"class": "learned", "seeds": 1, "speedup.one_core.mean": 72.25, "speedup.one_core.std": math.nan})
    assert speedup_text(row, "speedup.one_core") == "72x"


def test_large_figures_are_rounded_to_their_significant_figures() -> None:
    assert (significant(74169, 2), significant(0.0556), significant(1.9023)) == ("74,000", "0.0556", "1.90")


def test_unseen_error_stands_beside_the_test_error() -> None:
    """Issue 34: with errors on unseen measures in the records, the main table and the terminal
    table show them beside the test error (Pearson moves to the every-column table)."""
    from wbench.board.compact import compact_table

    summary = _summary().assign(**{"unseen.w2.rel_mae.mean": [0.0251, 0.031, 0.04, 1.1e-16],
                                   "unseen.w2.rel_mae.std": [0.0012, 0.0007, 0.002, 0.0]})
    table = main_table(summary)
    assert "Pearson" not in table.columns
    columns = list(table.columns)
    assert columns[columns.index("rel. MAE (%)") + 1] == "unseen rel. MAE (%)"
    assert list(table["unseen rel. MAE (%)"]) == ["2.51 ± 0.12", "3.10 ± 0.070", "4.00 ± 0.20", "exact"]
    text = compact_table(summary.assign(**{"speedup.one_core.mean": math.nan}), "test.w2.rel_mae")
    header = text.splitlines()[1]
    assert header.index("test.w2.rel_mae (%)") < header.index("unseen.w2.rel_mae (%)") and "Pearson" not in header
    assert "2.51 ± 0.12" in text
    assert "Pearson" in compact_table(_summary(), "test.w2.rel_mae")  # no unseen errors: as before
