"""Multi-seed statistics, the claims table and the transfer matrix on crafted records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wbench.stats import (
    claims_table,
    holm,
    significance,
    significance_over_pairs,
    summarise,
    transfer_matrix,
)


def records(values: dict[str, list[float]], metric: str = "test.w2.mse", dataset: str = "mnist", **extra) -> pd.DataFrame:
    rows = []
    for method, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            row = {"dataset": dataset, "method": method, "method_name": method, "seed": seed, "status": "ok", metric: value}
            for column, by_method in extra.items():
                if method in by_method:
                    row[column.replace("__", ".")] = by_method[method]
            rows.append(row)
    return pd.DataFrame(rows)


def test_summarise_mean_and_std_over_seeds():
    df = records({"a": [1.0, 2.0, 3.0], "b": [5.0, 5.0, 5.0]})
    df.loc[len(df)] = {"dataset": "mnist", "method": "a", "method_name": "a", "seed": 9, "status": "failed", "test.w2.mse": 100.0}
    out = summarise(df, ["test.w2.mse", "absent"]).set_index("method")
    assert out.loc["a", "test.w2.mse.mean"] == pytest.approx(2.0)
    assert out.loc["a", "test.w2.mse.std"] == pytest.approx(1.0)
    assert out.loc["a", "n_seeds"] == 3  # the failed row is left out
    assert out.loc["b", "test.w2.mse.std"] == 0.0
    assert math.isnan(out.loc["a", "absent.mean"])
    single = summarise(records({"a": [1.0]}), ["test.w2.mse"])
    assert math.isnan(single.loc[0, "test.w2.mse.std"])


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


def test_significance_over_pairs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    out = significance_over_pairs({"m1": base, "m2": base + 0.2, "m3": base.copy()}).set_index("method")
    assert bool(out.loc["m2", "significant"]) and not bool(out.loc[out.index.difference(["m2"])[0], "significant"])
    assert out.loc["m2", "n_pairs"] == 200


# ----------------------------------------------------------------------------- claims


def paper_like_records(*, ode: float = 0.8, params: dict | None = None, pearson: float = 0.997,
                       speedup_independent: float = 25.0, speedup_pairwise: float = 500.0) -> pd.DataFrame:
    params = params or {"odekenn": 55434, "deepkenn": 55430, "naive": 55424, "dwe": 400000}
    df = records(
        {"odekenn": [ode, ode + 0.01, ode - 0.01], "deepkenn": [1.0, 1.02, 0.98], "naive": [1.1, 1.12, 1.08],
         "dwe": [1.2, 1.2, 1.2]},
        n_parameters=params,
    )
    df.loc[df["method"] == "dwe", "test.w2sq.pearson"] = pearson
    df.loc[df["method"] == "dwe", "speedup.independent"] = speedup_independent
    df.loc[df["method"] == "dwe", "speedup.pairwise"] = speedup_pairwise
    df.loc[df["method"] == "dwe", "throughput.threads"] = 2.0
    return df


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    def key(claim: str) -> str:
        if "ODE-KENN" in claim:
            return "a"
        if "Pearson" in claim:
            return "b"
        return "c_independent" if "independent" in claim else "c_pairwise"

    return {key(c): v for c, v in zip(table["claim"], table["verdict"], strict=True)}


def test_claims_hold_on_crafted_records():
    table = claims_table(paper_like_records())
    assert list(table.columns) == ["claim", "dataset", "method", "paper_value", "our_value", "verdict", "note"]
    assert verdicts(table) == {"a": "holds", "b": "holds", "c_independent": "holds", "c_pairwise": "does not hold"}
    a = table[table["claim"].str.contains("ODE-KENN")].iloc[0]
    assert "20.0% below" in a["our_value"] and "p=" in a["note"]
    c = table[table["claim"].str.contains("pairwise")].iloc[0]
    assert c["our_value"] == "500.0x" and "1,111.4x" in c["paper_value"]


def test_claims_do_not_hold_on_crafted_records():
    table = claims_table(paper_like_records(ode=1.05, pearson=0.95, speedup_independent=10.0, speedup_pairwise=2000.0))
    assert verdicts(table) == {"a": "does not hold", "b": "does not hold", "c_independent": "does not hold", "c_pairwise": "holds"}


def test_claims_need_matched_parameters():
    table = claims_table(paper_like_records(params={"odekenn": 80000, "deepkenn": 55430, "naive": 55424}))
    row = table[table["claim"].str.contains("ODE-KENN")].iloc[0]
    assert row["verdict"] == "not measured" and "parameter counts differ" in row["note"]


def test_claims_not_measured_without_the_methods():
    table = claims_table(records({"sinkhorn": [1.0, 1.1]}))
    assert set(table["verdict"]) == {"not measured"}
    assert len(table) == 4
    partial = claims_table(records({"odekenn": [1.0], "naive": [2.0]}))
    a = partial[partial["claim"].str.contains("ODE-KENN")].iloc[0]
    assert a["verdict"] == "not measured" and "deepkenn" in a["note"]


def test_speedup_claim_from_throughput_columns_of_the_exact_rows():
    df = records({"dwe-small": [1.0, 1.0], "exact-lp": [0.0, 0.0]})
    df["method_name"] = df["method"]
    df.loc[df["method"] == "dwe-small", "throughput.independent_pairs_per_s"] = 20000.0
    df.loc[df["method"] == "dwe-small", "throughput.pairwise_pairs_per_s"] = 1e6
    df.loc[df["method"] == "exact-lp", "throughput.independent_pairs_per_s"] = 700.0
    df.loc[df["method"] == "exact-lp", "throughput.pairwise_pairs_per_s"] = 650.0
    table = claims_table(df)
    c = table[table["claim"].str.contains("independent")].iloc[0]
    assert c["method"] == "dwe-small" and c["verdict"] == "holds"
    assert c["our_value"] == f"{20000 / 700:,.1f}x"
    p = table[table["claim"].str.contains("pairwise")].iloc[0]
    assert p["our_value"] == f"{1e6 / 650:,.1f}x" and p["verdict"] == "holds"
    b = table[table["claim"].str.contains("Pearson")].iloc[0]
    assert b["verdict"] == "not measured"


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


def test_lot_baseline_claim_one_row_per_learned_method():
    df = records({"deepkenn": [0.04, 0.042, 0.038], "naive": [0.06, 0.061, 0.059], "lot": [0.05], "exact-lp": [0.0]},
                 metric="test.w2.rel_mae", trainable={"deepkenn": True, "naive": True, "lot": False, "exact-lp": False})
    table = claims_table(df)
    rows = table[table["claim"].str.contains("LOT")].set_index("method")
    assert sorted(rows.index) == ["deepkenn", "naive"]  # learned methods only
    assert rows.loc["deepkenn", "verdict"] == "holds" and "20.0% below" in rows.loc["deepkenn", "our_value"]
    assert rows.loc["naive", "verdict"] == "does not hold" and "20.0% above" in rows.loc["naive", "our_value"]
    assert "p=" in rows.loc["naive", "note"]
    without_lot = claims_table(records({"deepkenn": [0.04]}, trainable={"deepkenn": True}))
    assert not without_lot["claim"].str.contains("LOT").any()
