"""The claims plugin: the papers' claims table on crafted records, and leaderboard sections
contributed by plugins (the built-in claims and a third party's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import keyed, records

from wbench.board.leaderboard import records_frame, sections_markdown
from wbench.board.report import leaderboard_text
from wbench.errors import PluginError
from wbench.plugin.manager import make_plugin_manager
from wbench.records.store import SCHEMA_VERSION, RecordStore
from wbench_plugins.claims.table import EXTENSION, NOT_SIGNIFICANT, claims_table

FIXTURES = Path(__file__).parent / "fixtures"




def paper_like_records(*, ode: float = 0.8, params: dict | None = None, pearson: float = 0.997,
                       speedup_independent: float = 25.0, speedup_pairwise: float = 500.0) -> pd.DataFrame:
    params = params or {"odekenn": 55434, "deepkenn": 55430, "naive": 55424, "dwe": 400000}
    df = records(
        {"odekenn": [ode, ode + 0.01, ode - 0.01], "deepkenn": [1.0, 1.02, 0.98], "naive": [1.1, 1.12, 1.08],
         "dwe": [1.2, 1.2, 1.2]},
        n_parameters=params,
    )
    df.loc[df["method"] == "dwe", "test.w2sq.pearson"] = pearson + np.array([0.0, 2e-4, -2e-4])  # a spread to test
    # the timing pass's figures: the pairwise claim is the cost model at the paper's n = 59,
    # 59 / (2 e) pairs/s (c = o = 0) over the LP's 100 pairs/s
    lp = 100.0
    for key, value in {"speedup.one_core": speedup_independent, "cost.embed_s": 59 / (2 * speedup_pairwise * lp),
                       "cost.pair_s": 0.0, "cost.call_s": 0.0, "cost.threads": 1.0, "speedup.lp_pairs_per_s": lp}.items():
        df.loc[df["method"] == "dwe", key] = value
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
    assert list(table.columns) == ["claim", "dataset", "method", "paper_value", "our_value", "verdict", "budget", "note"]
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
    # measured_only (the board's section) drops the claims whose methods or metrics are missing,
    # keeping a claim measured but not comparable (DWE present, never timed)
    assert claims_table(records({"sinkhorn": [1.0, 1.1]}), measured_only=True).empty
    untimed = claims_table(records({"dwe": [1.2, 1.3]}), measured_only=True)
    assert list(untimed["claim"].str.contains("faster")) == [True, True]
    assert all("was not timed" in note for note in untimed["note"])


def test_lot_baseline_claim_one_row_per_learned_method():
    df = records({"deepkenn": [0.04, 0.042, 0.038], "naive": [0.06, 0.061, 0.059], "lot": [0.05], "exact-lp": [0.0]},
                 metric="test.w2.rel_mae", trainable={"deepkenn": True, "naive": True, "lot": False, "exact-lp": False})
    table = claims_table(df)
    rows = table[table["claim"].str.contains("LOT")].set_index("method")
    assert sorted(rows.index) == ["deepkenn", "naive"]  # learned methods only
    assert rows.loc["deepkenn", "verdict"] == "holds" and "20.0% below" in rows.loc["deepkenn", "our_value"]
    assert rows.loc["naive", "verdict"] == "does not hold" and "20.0% above" in rows.loc["naive", "our_value"]
    assert "p(worse)=" in rows.loc["naive", "note"]
    without_lot = claims_table(records({"deepkenn": [0.04]}, trainable={"deepkenn": True}))
    assert not without_lot["claim"].str.contains("LOT").any()


def test_paper_claims_on_other_datasets_are_extensions_without_verdicts():
    mnist = paper_like_records()
    shapes = paper_like_records(ode=1.05).assign(dataset="shapes", method_name=lambda d: d["method"])
    table = claims_table(pd.concat([mnist, shapes], ignore_index=True))
    on_shapes = table[table["dataset"] == "shapes"]
    assert len(on_shapes) == 4 and set(on_shapes["verdict"]) == {EXTENSION}
    assert "above" in on_shapes[on_shapes["claim"].str.contains("ODE-KENN")].iloc[0]["our_value"]  # numbers kept
    assert verdicts(table[table["dataset"] == "mnist"])["a"] == "holds"


def test_claims_state_their_budget_and_a_small_share_of_the_papers_training():
    df = paper_like_records(ode=1.05).assign(trainable=True, batch_size=256)
    df["fit.steps"] = 400
    table = claims_table(df)
    a = table[table["claim"].str.contains("ODE-KENN")].iloc[0]
    # 400 x 256 = 102,400 pairs of the paper's 2,000 x 49,500 = 99,000,000: about 0.1 %
    assert a["budget"] == "102,400 training pairs seen (steps x batch size); 0.10% of the paper's 99,000,000"
    assert a["verdict"] == "does not hold at 0.1 % of the paper's training"
    df["fit.steps"] = 200_000  # 51.2M pairs: over half the paper's, the verdict stands alone
    assert claims_table(df).iloc[0]["verdict"] == "does not hold"
    assert set(claims_table(paper_like_records())["budget"]) == {"not recorded"}


def test_each_claim_states_the_budget_of_its_own_methods():
    """A DWE checked after 400 steps is not stated at the KENN models' 20,000 (the mean of all
    learned methods' budgets gave 3,865,600 pairs for a 400-step DWE)."""
    df = paper_like_records().assign(trainable=True, batch_size=256)
    df["fit.steps"] = 20_000
    df.loc[df["method"] == "dwe", "fit.steps"] = 400
    table = claims_table(df)
    a = table[table["claim"].str.contains("ODE-KENN")].iloc[0]
    b = table[table["claim"].str.contains("Pearson")].iloc[0]
    assert a["budget"].startswith("5,120,000 training pairs seen")
    assert b["budget"] == "102,400 training pairs seen (steps x batch size)"


# ----------------------------------------------------------------------------- sections


def _record(method: str, seed: int, rel: float, transfer: float | None = None) -> dict:
    record = {
        "schema_version": SCHEMA_VERSION, "key": f"{method}-{seed}", "dataset": "digits", "dataset_label": "digits",
        "method": method, "label": method, "seed": seed, "status": "ok", "error": None, "n_parameters": 100,
        "trainable": method != "lot", "metrics": {"test.w2.rel_mae": rel, "test.w2.mse": 2 * rel},
    }
    if transfer is not None:
        record["transfer"] = {"shapes.w2.mse": transfer}
    return keyed(record)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = RecordStore(tmp_path)
    for seed, rel in enumerate([0.10, 0.12, 0.11]):
        store.append(_record("deepkenn", seed, rel, transfer=1.5 + seed))
    store.append(_record("lot", 0, 0.20))
    return tmp_path


def test_the_claims_plugin_contributes_the_lot_section(run_dir: Path) -> None:
    builtin = make_plugin_manager()
    assert "claims" in {info.name for info in builtin.infos if info.status == "ok"}
    text = leaderboard_text([run_dir], fmt="md", plugins=builtin)
    claims = text.index("### Paper claims under this budget")
    transfer = text.index("### Cross-dataset transfer")
    assert claims < transfer  # plugin sections first, then the core's transfer matrix
    assert "| A learned surrogate beats the untrained LOT embedding" in text
    assert "deepkenn 0.11; lot 0.2 (deepkenn 45.0% below)" in text
    # columns digits, shapes: in-domain test MSE 2 x 0.11, transfer mean of 1.5, 2.5, 3.5
    assert "| deepkenn | digits  | 0.22     | 2.5      |" in text


def test_without_the_claims_plugin_only_the_core_sections_remain(run_dir: Path) -> None:
    none = make_plugin_manager(use_entry_points=False)
    text = leaderboard_text([run_dir], fmt="md", plugins=none)
    assert "Paper claims" not in text and "### Cross-dataset transfer" in text
    disabled = make_plugin_manager(disabled={"claims"})
    assert "Paper claims" not in leaderboard_text([run_dir], fmt="md", plugins=disabled)


def test_a_third_party_plugin_adds_a_section(run_dir: Path) -> None:
    plugins = make_plugin_manager([FIXTURES / "section_plugin.py"], use_entry_points=False)
    frame = records_frame(RecordStore(run_dir).load())
    text = sections_markdown(frame, plugins, primary="test.w2.rel_mae")
    assert text.startswith("\n### Seeds per method\n\n| method   | ok records   | best test.w2.rel_mae   |\n")
    assert "| deepkenn | 3            | 0.100                  |" in text
    assert "| lot      | 1            | 0.200                  |" in text
    cli_text = leaderboard_text([run_dir], fmt="md", plugins=plugins)
    assert "### Seeds per method" in cli_text and "Paper claims" not in cli_text


def test_a_section_hook_returning_the_wrong_type_is_named(tmp_path: Path, run_dir: Path) -> None:
    bad = tmp_path / "bad_section.py"
    bad.write_text(
        "from wbench import hookimpl\n\n"
        "@hookimpl\n"
        "def wbench_leaderboard_sections(frame, context):\n"
        "    return ['not a section']\n"
    )
    plugins = make_plugin_manager([bad], use_entry_points=False)
    with pytest.raises(PluginError, match="returned a str, not a Section"):
        leaderboard_text([run_dir], fmt="md", plugins=plugins)


# --- the throughput claims at the paper's effective n (issue 21) -------------------------------

def test_effective_n_from_the_papers_two_figures() -> None:
    from wbench_plugins.claims.table import PAPER, effective_n

    # 213,384 / 3,633 = 58.73...: pairwise/independent = n (2e + c) / (2e + n c) = n when c << e
    assert PAPER.pairwise_over_independent == pytest.approx(58.735, abs=1e-3)
    assert PAPER.effective_n == 59
    # a model with c = 0 gives back its n exactly: independent 1/(2e), pairwise n/(2n e) * n = n/(2e)
    e = 1e-3
    assert effective_n(1 / (2 * e), 100 / (2 * e)) == 100
    with pytest.raises(ValueError, match="below independent"):
        effective_n(10.0, 5.0)
    with pytest.raises(ValueError, match="positive"):
        effective_n(0.0, 5.0)


def cost_model_records(*, embed_s: float, pair_s: float, call_s: float, lp: float, one_core: float) -> pd.DataFrame:
    df = paper_like_records()
    dwe = df["method"] == "dwe"
    for key, value in {
        "cost.embed_s": embed_s, "cost.pair_s": pair_s, "cost.call_s": call_s, "cost.threads": 1.0,
        "speedup.one_core": one_core, "speedup.lp_pairs_per_s": lp,
    }.items():
        df.loc[dwe, key] = value
    return df


def test_pairwise_claim_uses_the_cost_model_at_the_effective_n_not_the_batch_setting() -> None:
    # e = 1 ms, c = 0, o = 0: pairwise at n = 59 is 59 / (2 e) = 29,500 pairs/s; LP 20 pairs/s -> 1,475x
    table = claims_table(cost_model_records(embed_s=1e-3, pair_s=0.0, call_s=0.0, lp=20.0, one_core=25.0))
    rows = {("independent" if "independent" in c else "pairwise"): r for c, r in
            zip(table["claim"], table.to_dict("records"), strict=True) if "faster" in c}
    assert rows["pairwise"]["our_value"] == "1,475.0x" and rows["pairwise"]["verdict"] == "holds"
    assert "pairwise at n = 59" in rows["pairwise"]["note"] and "timed at n" not in rows["pairwise"]["note"]
    assert rows["independent"]["our_value"] == "25.0x" and rows["independent"]["verdict"] == "holds"
    # a slower embedding (e = 5 ms): 59 / 10 ms = 5,900 pairs/s over 20 -> 295.0x < 1,111.4x
    slow = claims_table(cost_model_records(embed_s=5e-3, pair_s=0.0, call_s=0.0, lp=20.0, one_core=5.0))
    assert verdicts(slow)["c_pairwise"] == "does not hold" and verdicts(slow)["c_independent"] == "does not hold"
    assert "295.0x" in set(slow["our_value"])


def test_beating_lot_needs_significance_over_seeds(tmp_path: Path) -> None:
    """Claim (d): three seeds below LOT's 0.20 with little spread hold (one-sided t-test p <
    0.05); a mean below LOT's with seeds on both sides of it is "not significant"."""
    store = RecordStore(tmp_path)
    for seed, (clear, unclear) in enumerate([(0.10, 0.05), (0.12, 0.30), (0.11, 0.20)]):
        store.append(_record("deepkenn", seed, clear))
        store.append(_record("naive", seed, unclear))
    store.append(_record("lot", 0, 0.20))
    table = claims_table(records_frame(store.load()))
    rows = table[table["claim"].str.startswith("A learned surrogate beats")].set_index("method")
    assert rows.loc["deepkenn", "verdict"] == "holds"
    assert "one-sided one-sample t-tests of 3 seeds: p(better)=0.00" in rows.loc["deepkenn", "note"]
    assert rows.loc["naive", "verdict"] == NOT_SIGNIFICANT  # mean 0.183 < 0.20, p about 0.4


def test_a_speed_up_claim_inside_the_timing_noise_gets_no_verdict() -> None:
    """Issue 21: a speed-up 7 % above the paper's with timings good to +-10 % is no "holds"."""
    from wbench_plugins.claims.table import DOES_NOT_HOLD, HOLDS, WITHIN_NOISE, _speed_verdict

    # one record: its timing margin decides
    assert _speed_verdict(20.2, 18.9, [20.2], 0.10, 0.05)[0] == WITHIN_NOISE
    assert _speed_verdict(20.2, 18.9, [20.2], 0.05, 0.05)[0] == HOLDS  # 20.2 x 0.95 = 19.19 >= 18.9
    assert _speed_verdict(15.0, 18.9, [15.0], 0.10, 0.05)[0] == DOES_NOT_HOLD  # 15 x 1.1 = 16.5 < 18.9
    verdict, note = _speed_verdict(20.2, 18.9, [20.2], float("nan"), 0.05)
    assert verdict == HOLDS and "no timing spread recorded" in note
    # three seeds: one-sided t-tests against the paper's ratio
    assert _speed_verdict(30.0, 18.9, [29.0, 30.0, 31.0], 0.1, 0.05)[0] == HOLDS
    assert _speed_verdict(10.0, 18.9, [9.0, 10.0, 11.0], 0.1, 0.05)[0] == DOES_NOT_HOLD
    verdict, note = _speed_verdict(19.5, 18.9, [17.0, 20.0, 21.5], 0.1, 0.05)
    assert verdict == WITHIN_NOISE and "p(above)=" in note and "3 seeds" in note


def test_the_deepkenn_papers_rel_mae_one_row_per_kenn_method() -> None:
    """Naive 1.63 %, DeepKENN 1.52 %, ODE-KENN 1.37 % (the paper, 2,000 epochs): ours per
    method, with the sd over seeds, the ratio, the budget and its share of the paper's."""
    df = records({"naive": [0.0212, 0.0210, 0.0214], "deepkenn": [0.0150, 0.0151, 0.0149], "odekenn": [0.0181]},
                 metric="test.w2.rel_mae")
    df = df.assign(trainable=True, batch_size=256)
    df["fit.steps"] = 20_000
    rows = claims_table(df)
    rows = rows[rows["claim"].str.contains("paper's test rel. MAE")].set_index("method")
    assert list(rows.index) == ["naive", "deepkenn", "odekenn"]
    assert rows.loc["naive", "paper_value"] == "1.63% (MNIST test, 2,000 epochs)"
    assert rows.loc["naive", "our_value"] == "2.12% ± 0.02% (sd): 1.30x the paper's"
    # 20,000 x 256 = 5,120,000 pairs of the paper's 99,000,000: 5.2 %
    assert rows.loc["naive", "verdict"] == "does not hold at 5.2 % of the paper's training"
    # 1.50 % below 1.52 %: one-sided t = -3.46 over 3 seeds, p = 0.037 < 0.05
    assert rows.loc["deepkenn", "verdict"] == "holds at 5.2 % of the paper's training"
    # one seed: no test, so no verdict, whatever its value (the one significance rule)
    assert rows.loc["odekenn", "our_value"] == "1.81%: 1.32x the paper's"
    assert rows.loc["odekenn", "verdict"] == NOT_SIGNIFICANT and rows.loc["odekenn", "note"].endswith("no test")
    shapes = claims_table(df.assign(dataset="shapes"))
    assert set(shapes.loc[shapes["claim"].str.contains("paper's test rel. MAE"), "verdict"]) == {EXTENSION}
    assert not claims_table(paper_like_records())["claim"].str.contains("rel. MAE").any()  # not recorded: no rows


def test_seeds_over_one_shared_lp_timing_are_not_t_tested() -> None:
    """A re-timing pass divides every seed's rate by the same LP figure: three seeds at
    21.0-21.6x (t-test against 18.9x: p < 0.05) over one LP timing whose rounds spread +-12.5 %
    are "within the timing noise"; the same seeds over three separate LP timings are t-tested."""
    df = cost_model_records(embed_s=1e-3, pair_s=0.0, call_s=0.0, lp=225.0, one_core=21.3)
    dwe = df.index[df["method"] == "dwe"]
    df.loc[dwe, "speedup.one_core"] = [21.0, 21.3, 21.6]
    df.loc[dwe, "cost.embed_s_iqr"] = 0.02 * 1e-3
    df.loc[dwe, "speedup.lp_relative_iqr"] = 0.25
    shared = claims_table(df)
    row = shared[shared["claim"].str.contains("independent W2")].iloc[0]
    assert row["verdict"] == "within the timing noise", row["note"]
    assert "the LP's spread counts once" in row["note"] and "p(above)" not in row["note"]
    df.loc[dwe, "speedup.lp_pairs_per_s"] = [224.0, 225.0, 226.0]  # one LP timing per seed
    separate = claims_table(df)
    row = separate[separate["claim"].str.contains("independent W2")].iloc[0]
    assert row["verdict"] == "holds" and "p(above)=" in row["note"], row["note"]


def test_the_significance_rule_is_stated_once_under_the_claims_heading() -> None:
    """Issue 32 item 5: one rule, stated where the verdicts are shown (Markdown and HTML)."""
    from wbench.board.leaderboard import sections_markdown
    from wbench.plugin.manager import make_plugin_manager

    frame = paper_like_records().assign(status="ok", trainable=True)
    text = sections_markdown(frame, make_plugin_manager(), primary="test.w2.mse")
    heading = text.index("### Paper claims under this budget\n\n")
    rule = text.index("p < 0.05, Holm-corrected over the tests of one row", heading)
    assert rule < text.index("| claim", heading) and text.count("Holm-corrected over the tests") == 1
