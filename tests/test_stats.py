"""Multi-seed statistics and the transfer matrix on crafted records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import records

from wbench.stats import holm, significance, transfer_matrix


def test_holm_adjustment():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # monotone: never below an earlier step
    adjusted = holm([0.01, math.nan])
    assert adjusted[0] == pytest.approx(0.01) and math.isnan(adjusted[1])


def test_significance_flags_a_clearly_different_method_and_not_an_identical_one():
    df = records({
        "good": [1.00, 1.10, 0.90, 1.05],
        "bad": [2.00, 2.12, 1.95, 2.08],
        "twin": [1.00, 1.10, 0.90, 1.05],
    })
    out = significance(df, "test.w2.mse").set_index("method")
    assert set(out["best"]) == {"good"} or set(out["best"]) == {"twin"}
    best = out["best"].iloc[0]
    other_good = "twin" if best == "good" else "good"
    assert bool(out.loc["bad", "significant"])
    assert out.loc["bad", "p_holm"] < 0.05
    assert out.loc["bad", "p_holm"] >= out.loc["bad", "p_value"]
    assert not bool(out.loc[other_good, "significant"])
    assert out.loc[other_good, "p_value"] == 1.0
    assert out.loc["bad", "n_seeds"] == 4 and out.loc["bad", "test"] == "ttest"


def test_significance_higher_is_better_and_wilcoxon():
    df = records({"hi": [0.99, 0.98, 0.97, 0.99, 0.985, 0.975, 0.99], "lo": [0.5, 0.52, 0.49, 0.51, 0.5, 0.48, 0.53]},
                 metric="test.w2.pearson")
    out = significance(df, "test.w2.pearson", primary_lower_is_better=False, test="wilcoxon")
    assert out.loc[0, "best"] == "hi" and out.loc[0, "method"] == "lo"
    assert bool(out.loc[0, "significant"])  # 7 seeds: smallest two-sided p = 2/128


def test_significance_needs_two_matched_seeds():
    df = records({"a": [1.0], "b": [2.0]})
    out = significance(df, "test.w2.mse")
    assert out.loc[0, "test"].startswith("n/a") and not bool(out.loc[0, "significant"])
    with pytest.raises(KeyError):
        significance(df, "no.such.metric")


def test_significance_is_per_dataset():
    df = pd.concat([records({"a": [1, 1.1, 0.9], "b": [3, 3.1, 2.9]}, dataset="x"),
                    records({"a": [3, 3.1, 2.9], "b": [1, 1.1, 0.9]}, dataset="y")])
    out = significance(df, "test.w2.mse").set_index("dataset")
    assert out.loc["x", "best"] == "a" and out.loc["y", "best"] == "b"


# ----------------------------------------------------------------------------- transfer


def test_transfer_matrix():
    rows = []
    for seed, noise in enumerate((0.0, 0.2)):
        rows.append({"dataset": "mnist", "method": "dwe", "seed": seed, "status": "ok",
                     "test.w2.mse": 1.0 + noise, "transfer.fashion.w2.mse": 3.0 + noise})
        rows.append({"dataset": "fashion", "method": "dwe", "seed": seed, "status": "ok",
                     "test.w2.mse": 0.5, "transfer.mnist.w2.mse": 4.0})
        rows.append({"dataset": "mnist", "method": "naive", "seed": seed, "status": "ok", "test.w2.mse": 2.0})
    matrix = transfer_matrix(pd.DataFrame(rows))
    assert list(matrix.columns) == ["fashion", "mnist"]
    assert matrix.loc[("dwe", "mnist"), "mnist"] == pytest.approx(1.1)
    assert matrix.loc[("dwe", "mnist"), "fashion"] == pytest.approx(3.1)
    assert matrix.loc[("dwe", "fashion"), "mnist"] == pytest.approx(4.0)
    assert matrix.loc[("dwe", "fashion"), "fashion"] == pytest.approx(0.5)
    assert math.isnan(matrix.loc[("naive", "mnist"), "fashion"])
    off_diagonal = transfer_matrix(pd.DataFrame(rows), include_in_domain=False)
    assert list(off_diagonal.columns) == ["fashion", "mnist"]
    assert ("naive", "mnist") not in off_diagonal.index
