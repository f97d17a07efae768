"""The main table shows the re-timing pass's speed figures where the pass timed the model
(``wbench.board.retimed``), says so, and leaves the records alone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import FIXTURES
from test_retime import FAST, SUITE

from wbench.board.leaderboard import leaderboard_frame
from wbench.board.report import leaderboard_text
from wbench.board.retimed import RETIMED_COLUMN, _overlaid
from wbench.cli.main import main
from wbench.records.columns import _format_number
from wbench.run.retime import retime_run

LOCAL = str(FIXTURES / "local_plugin.py")


@pytest.fixture(scope="module")
def retimed_run(tmp_path_factory) -> Path:
    """The toy run of ``test_retime`` (naive at seeds 0 and 1, milestones 3 and 6; sliced),
    re-timed: the pass times naive's last milestone."""
    from wbench.plugin.manager import make_plugin_manager

    root = tmp_path_factory.mktemp("retimed")
    suite = root / "retime.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(root / "run")]) == 0
    retime_run(root / "run", FAST, registry=make_plugin_manager([LOCAL]).registry, log=lambda line: None)
    return root / "run"


def test_rows_the_pass_timed_show_its_figures(retimed_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(retimed_run, tmp_path / "run"))
    stored = (run / "records.jsonl").read_bytes()
    cells = {c["key"]: c["figures"] for c in json.loads((run / "retime.json").read_text())["cells"]}
    keys = [json.loads(line)["key"] for line in stored.decode().splitlines()]
    frame = leaderboard_frame([run])
    frame["key"] = keys
    timed = frame[frame["key"].isin(cells)]
    assert sorted(zip(timed["method_name"], timed["milestone"], strict=True)) == [("naive", 6), ("naive", 6)]
    assert (timed[RETIMED_COLUMN] == 1.0).all()
    for _, row in timed.iterrows():
        figures = cells[row["key"]]
        assert row["cost.independent_pairs_per_s"] == figures["cost.independent_pairs_per_s"]
        assert row["throughput.independent_pairs_per_s"] == figures["cost.independent_pairs_per_s"]
        assert row["speedup.one_core.speedup"] == figures["speedup.one_core"]
        assert row["cost.embed_s"] == figures["cost.embed_s"]
    others = frame[~frame["key"].isin(cells)]
    assert others[RETIMED_COLUMN].isna().all()  # milestone 3 and sliced: not timed by the pass
    # the suite timed nothing in-run, so those rows have no speed figure at all
    assert others["cost.independent_pairs_per_s"].isna().all()
    assert (run / "records.jsonl").read_bytes() == stored  # the records are never rewritten
    assert RETIMED_COLUMN not in leaderboard_frame([run], retimed=False).columns


def test_the_leaderboard_prints_the_pass_figure_and_says_whose(retimed_run: Path) -> None:
    cells = json.loads((retimed_run / "retime.json").read_text())["cells"]
    mean = pd.Series([c["figures"]["cost.independent_pairs_per_s"] for c in cells]).mean()
    text = leaderboard_text([retimed_run])
    row = next(line for line in text.splitlines() if re.match(r"\| \d+ +\| naive\(width=40\) ", line))  # ranked row
    assert _format_number(mean) in row
    assert "Speed columns of naive(width=40): the re-timing pass over the saved models (`retime.json`: git " in text
    assert ", 5 rounds, " in text  # FAST's rounds
    assert "sliced: in-run figures (no saved model to re-time)" in text


def test_in_run_timing_leaves_the_pass_out_of_the_table(retimed_run: Path, capsys) -> None:
    assert main(["leaderboard", str(retimed_run), "--in-run-timing"]) == 0
    text = capsys.readouterr().out
    assert "Speed columns of" not in text
    assert "re-timed in one interleaved pass" in text  # the pass's own section is still there
    assert main(["leaderboard", str(retimed_run)]) == 0
    assert "Speed columns of naive(width=40)" in capsys.readouterr().out
    assert main(["leaderboard", str(retimed_run), "--format", "html"]) == 0
    assert "<p>Speed columns of naive(width=40): the re-timing pass" in capsys.readouterr().out


def test_overlay_keeps_what_the_pass_does_not_time() -> None:
    in_run = {
        "cost.embed_s": 1e-3, "cost.pair_s": 1e-8, "cost.independent_pairs_per_s": 499.0,
        "cost.pairwise.512": 9e4, "cost.direct.16": 7e3, "cost.direct_error.16": 0.3, "cost.pairwise_n": 512.0,
        "speedup.one_core.speedup": 9.0, "speedup.one_core.lp_pairs_per_s": 55.0,
        "speedup.one_core.lp_pairs_per_s_iqr": 4.0, "speedup.all_cores.speedup": 11.0,
        "speedup.side_one_core": 1.0, "speedup.independent": 9.0, "speedup.pairwise": 1600.0,
        "throughput.independent_pairs_per_s": 499.0, "roofline.fraction": 0.5, "roofline.stale_only_in_run": 1.0,
    }
    figures = {
        "cost.embed_s": 4e-3, "cost.embed_s_iqr": 2e-4, "cost.pair_s": 1e-8, "cost.independent_pairs_per_s": 125.0, "cost.pair_rows": 512.0,
        "cost.pairwise.512": 2.5e4, "cost.embed_batch": 200.0, "cost.threads": 1.0, "roofline.fraction": 0.2,
        "speedup.one_core": 2.5, "speedup.pairwise": 500.0,
    }
    out = _overlaid(dict(in_run), figures, {"lp_pairs_per_s": 50.0, "lp_batch": 64.0, "lp_relative_iqr": 0.1}, {"rounds": 21, "threads": 1})
    assert out["cost.independent_pairs_per_s"] == out["throughput.independent_pairs_per_s"] == 125.0
    assert out["throughput.pairwise_pairs_per_s"] == 2.5e4 and out["cost.pairwise.512"] == 2.5e4
    assert out["speedup.one_core.speedup"] == out["speedup.independent"] == 2.5
    assert out["speedup.one_core.lp_pairs_per_s"] == out["exact.throughput.independent_pairs_per_s"] == 50.0
    assert out["speedup.pairwise"] == 500.0 and out["speedup.one_core.rounds"] == 21.0
    # the spreads are the pass's rounds': the LP's 10 % relative IQR, e's 5 %
    assert out["speedup.one_core.lp_pairs_per_s_iqr"] == pytest.approx(5.0)
    assert out["speedup.one_core.method_pairs_per_s_iqr"] == pytest.approx(125.0 * 0.05)
    assert out["speedup.all_cores.speedup"] == 11.0 and out["cost.direct.16"] == 7e3  # not re-timed: kept
    assert "cost.direct_error.16" not in out and "roofline.stale_only_in_run" not in out
    assert out["roofline.fraction"] == 0.2 and out[RETIMED_COLUMN] == 1.0
