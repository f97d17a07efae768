"""The timing of a cell under the cost-model protocol (issue 21): a tiny suite run through the
CLI records the cost model, thread counts and both speed-ups; the leaderboard shows the new
columns with ``n`` and the threads in their headers; older records render as before."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURES

from wbench.board.leaderboard import COLUMNS, cost_columns, resolve_columns
from wbench.board.report import leaderboard_text
from wbench.cli.main import main
from wbench.records.store import RecordStore
from wbench.run.cell_timing import MIN_ROUNDS

LOCAL = str(FIXTURES / "local_plugin.py")

SUITE = """
[suite]
name = "timing"
seeds = [0]

[budget]
steps = 2
batch_size = 16
param_target = 2000

[evaluation]
independent_pairs = 64
pairwise_size = 32
exact_independent_pairs = 16
timing_rounds = 2
min_round_s = 0.005
direct_n = [4, 16, 1000000]
plots = false
save_models = false
speedup_reference = "local-centroid"
options = { n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }

[[datasets]]
name = "toy-blobs"

[[surrogates]]
name = "deepsets"

[[surrogates]]
name = "local-centroid"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timing")
    suite = root / "timing.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(root / "run")]) == 0
    return root / "run"


def figures(run_dir: Path, method: str) -> dict[str, float]:
    (record,) = [r for r in RecordStore(run_dir).load() if r.method == method]
    assert record.ok and record.outcome.speedup_reference == "local-centroid"
    return dict(record.outcome.throughput)


def test_an_embedding_method_records_its_cost_model_threads_and_both_speedups(run_dir: Path) -> None:
    f = figures(run_dir, "deepsets")
    e, c, o, n = f["cost.embed_s"], f["cost.pair_s"], f["cost.call_s"], 32
    assert f["cost.embedding"] == 1 and f["cost.pairwise_is_per_pair"] == 0
    assert e > 0 and c > 0 and o >= 0 and f["cost.pairwise_n"] == n and (f["cost.pair_rows"], f["cost.pair_cols"]) == (n, n)
    assert f["cost.rounds"] == MIN_ROUNDS and f["cost.min_round_s"] == 0.005  # timing_rounds = 2 is raised to 5
    assert f["cost.threads"] == 1  # [evaluation] cost_threads defaults to one core
    # the older columns, derived from the cost model
    assert f["throughput.independent_pairs_per_s"] == pytest.approx(1 / (2 * e + c))
    assert f["throughput.pairwise_pairs_per_s"] == pytest.approx(n * n / (o + 2 * n * e + n * n * c))
    assert f["cost.pairwise.32"] == pytest.approx(f["throughput.pairwise_pairs_per_s"])
    assert f["cost.asymptote_pairs_per_s"] == pytest.approx(1 / c)
    # direct timings at the stated sizes; the one that cannot fit the time budget is skipped, saying so
    assert f["cost.direct.4"] > 0 and f["cost.direct.16"] > 0 and "cost.direct.1000000" not in f
    assert f["cost.direct_skipped.1000000"] > 1.0  # predicted seconds per call
    # fair speed-ups: one core against one core, all cores against all cores, real thread counts
    assert f["speedup.one_core.method_threads"] == 1 and f["speedup.one_core.lp_threads"] == 1
    assert f["speedup.all_cores.method_threads"] == (os.cpu_count() or 1) == f["speedup.all_cores.lp_threads"]
    assert f["speedup.one_core.rounds"] == MIN_ROUNDS and f["speedup.all_cores.rounds"] == MIN_ROUNDS
    for side in ("one_core", "all_cores"):
        assert f[f"speedup.{side}.speedup"] == pytest.approx(
            f[f"speedup.{side}.method_pairs_per_s"] / f[f"speedup.{side}.lp_pairs_per_s"]
        )
    # the speed-up reference's columns use the one-core side (the cost model's threads)
    assert f["speedup.independent"] == f["speedup.one_core.speedup"]
    assert f["exact.throughput.independent_pairs_per_s"] == f["speedup.one_core.lp_pairs_per_s"]
    assert f["speedup.pairwise"] == pytest.approx(f["cost.pairwise.32"] / f["speedup.one_core.lp_pairs_per_s"])
    # roofline of a torch embedding network, its GEMM timed on the same thread count
    assert f["flops.per_item"] > 0 and f["gemm.threads"] == 1 and f["gemm.gflops"] > 0
    assert f["roofline.achieved_gflops"] == pytest.approx(f["flops.per_item"] / e / 1e9)
    assert f["flops.batch"] == f["cost.embed_batch"]  # FLOPs counted at the batch e was timed at
    assert 0 < f["cost.timing_s"] < 120


def test_a_solver_records_a_per_pair_cost_only(run_dir: Path) -> None:
    f = figures(run_dir, "local-centroid")
    assert f["cost.embedding"] == 0 and f["cost.pairwise_is_per_pair"] == 1 and f["cost.embed_s"] == 0
    assert f["throughput.independent_pairs_per_s"] == pytest.approx(1 / f["cost.pair_s"])
    assert f["throughput.pairwise_pairs_per_s"] == pytest.approx(1 / f["cost.pair_s"])
    assert not any(k.startswith(("cost.direct", "flops.", "roofline.")) for k in f)
    assert f["speedup.one_core.method_threads"] == 1  # itself against itself: about 1, both measured


def test_leaderboard_shows_the_cost_columns_with_n_and_threads(run_dir: Path) -> None:
    text = leaderboard_text([run_dir], fmt="md")
    header = next(line for line in text.splitlines() if line.startswith("| rank"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    threads = os.cpu_count() or 1
    for expected in ("indep. pairs/s (1 thr.)", "pairwise pairs/s n=32", "asymptote pairs/s 1/c",
                     "speed-up 1 core indep.", "speed-up 1 core pairwise n=32",
                     f"speed-up all cores ({threads} thr.) indep."):
        assert expected in cells, expected
    for superseded in ("indep. pairs/s", "pairwise pairs/s", "speed-up indep.", "speed-up pairwise"):
        assert superseded not in cells
    csv = pd.read_csv(pd.io.common.StringIO(leaderboard_text([run_dir], fmt="csv")))
    row = csv[csv["method"] == "deepsets"].iloc[0]
    f = figures(run_dir, "deepsets")
    assert row["cost.pairwise_pairs_per_s@32.mean"] == pytest.approx(f["cost.pairwise.32"], rel=1e-5)
    assert row["speedup.one_core.pairwise@32.mean"] == pytest.approx(f["speedup.pairwise"], rel=1e-5)


def test_the_pairwise_column_uses_one_n_for_every_row_from_e_and_c() -> None:
    df = pd.DataFrame([
        {"method": "a", "cost.embed_s": 1e-3, "cost.pair_s": 1e-6, "cost.call_s": 0.0, "cost.threads": 1.0,
         "cost.pairwise_n": 1024.0, "cost.independent_pairs_per_s": 1 / (2e-3 + 1e-6)},
        {"method": "b", "cost.embed_s": 0.0, "cost.pair_s": 1e-4, "cost.call_s": 0.0, "cost.threads": 1.0,
         "cost.pairwise_n": 1024.0, "cost.independent_pairs_per_s": 1e4},
        {"method": "old", "throughput.pairwise_pairs_per_s": 5.0},
    ])
    out = cost_columns(df)
    n = 1024
    assert out.loc[0, "cost.pairwise_pairs_per_s@1024"] == pytest.approx(n / (2e-3 + n * 1e-6))
    assert out.loc[1, "cost.pairwise_pairs_per_s@1024"] == pytest.approx(1e4)  # a solver: its per-pair rate
    assert math.isnan(out.loc[2, "cost.pairwise_pairs_per_s@1024"])
    # a mixed frame keeps the older column: one of its rows has no cost model
    keys = [c.key for c in resolve_columns(out, COLUMNS)]
    assert "throughput.pairwise_pairs_per_s" in keys and "cost.pairwise_pairs_per_s@1024" in keys


def test_records_without_cost_keys_get_no_new_columns() -> None:
    df = pd.DataFrame([{"method": "old", "throughput.pairwise_pairs_per_s": 5.0, "speedup.pairwise": 2.0}])
    assert cost_columns(df).equals(df)
    assert [c.key for c in resolve_columns(df, COLUMNS)] == ["throughput.pairwise_pairs_per_s", "speedup.pairwise"]


@pytest.mark.slow
def test_the_exact_lp_all_cores_side_runs_through_the_oracles_executor(tmp_path: Path) -> None:
    """The default reference: all cores means the oracle's process pool (its start-up, several
    seconds on a loaded machine, is what makes this test slow; it is kept out of the rounds)."""
    from joblib import effective_n_jobs

    suite = tmp_path / "lp.toml"
    suite.write_text(SUITE.replace('speedup_reference = "local-centroid"\n', "").replace(
        '[[surrogates]]\nname = "deepsets"\n', ""))
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(tmp_path / "run")]) == 0
    (record,) = RecordStore(tmp_path / "run").load()
    f = record.outcome.throughput
    assert record.outcome.speedup_reference == "exact-lp"
    assert f["speedup.all_cores.lp_workers"] == effective_n_jobs(-1)
    assert f["speedup.one_core.lp_workers"] == 1 and f["speedup.one_core.lp_threads"] == 1
    assert f["speedup.all_cores.lp_batch"] == 32 and f["speedup.one_core.lp_batch"] == 16
