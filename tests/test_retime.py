"""``wbench retime``: a run's saved models timed again in one interleaved pass, shown by the
leaderboard as a section, with the records left untouched."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FIXTURES

from wbench.board.report import leaderboard_text
from wbench.cli.main import main
from wbench.run.retime import RETIME_FILE, RetimeError, RetimeOptions, retime_run, retime_sections
from wbench.sections import render_section

SUITE = """
[suite]
name = "retime"
seeds = [0, 1]

[budget]
steps = [3, 6]
batch_size = 8

[evaluation]
throughput = false
plots = false
options = { n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }

[[datasets]]
name = "toy-blobs"
params = { n = 20, n_pairs = 60 }

[[surrogates]]
name = "naive"
params = { width = 40 }

[[surrogates]]
name = "sliced"
"""

LOCAL = str(FIXTURES / "local_plugin.py")  # registers the toy-blobs dataset
FAST = RetimeOptions(rounds=5, min_round_s=0.001, embed_batch=8, lp_batch=4, pairwise_n=16)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished toy run: naive at seeds 0 and 1, saved at milestones 3 and 6, and sliced."""
    root = tmp_path_factory.mktemp("retime")
    suite = root / "retime.toml"
    suite.write_text(SUITE)
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def registry():
    from wbench.plugin.manager import make_plugin_manager

    return make_plugin_manager([LOCAL]).registry


@pytest.fixture()
def fresh_run(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the toy run (a test may add or break files in it)."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_by_default_only_each_seeds_last_milestone_is_timed(fresh_run: Path, registry) -> None:
    path = retime_run(fresh_run, FAST, registry=registry, log=lambda line: None)
    data = json.loads(path.read_text())
    assert sorted((c["method"], c["seed"], c["milestone"]) for c in data["cells"]) == [("naive", 0, 6), ("naive", 1, 6)]
    assert data["protocol"]["milestones"] == "last of each method and seed"
    # shown at milestone 3 too: the same networks (speed does not depend on the weights)
    section, roofline = retime_sections([fresh_run], milestone=3)
    assert list(section.table["method"]) == ["naive(width=40)"] and list(section.table["seeds"]) == ["2"]
    assert "roofline of the re-timed networks" in roofline.title
    assert list(roofline.table["method"]) == ["naive(width=40)"] and list(roofline.table["seeds"]) == ["2"]


def test_a_slow_embedding_is_timed_on_a_smaller_batch(fresh_run: Path, registry) -> None:
    """A model whose timed call would outlast max_embed_call_s (an LP per measure, say) gets the
    largest power of 2 that fits, at least 16: here nothing fits in a nanosecond. A batch
    larger than the dataset is cut to its number of measures."""
    slow = replace(FAST, embed_batch=64, max_embed_call_s=1e-9)
    data = json.loads(retime_run(fresh_run, slow, registry=registry, log=lambda line: None).read_text())
    assert {c["figures"]["cost.embed_batch"] for c in data["cells"]} == {16.0}
    roomy = replace(FAST, embed_batch=18, max_embed_call_s=1e9)
    data = json.loads(retime_run(fresh_run, roomy, registry=registry, log=lambda line: None).read_text())
    assert {c["figures"]["cost.embed_batch"] for c in data["cells"]} == {18.0}
    # never more than the dataset's 20 measures: the timed batch holds distinct measures
    larger = replace(FAST, embed_batch=64, max_embed_call_s=1e9)
    data = json.loads(retime_run(fresh_run, larger, registry=registry, log=lambda line: None).read_text())
    assert {c["figures"]["cost.embed_batch"] for c in data["cells"]} == {20.0}
    with pytest.raises(RetimeError, match="max_embed_call_s must be a positive number of seconds"):
        RetimeOptions(max_embed_call_s=0)


def test_a_pass_older_than_its_records_is_refused(fresh_run: Path, registry) -> None:
    """Records made again after the pass (or removed) would be shown with another model's
    figures: the leaderboard refuses the stale file and names the command that renews it."""
    retime_run(fresh_run, FAST, registry=registry, log=lambda line: None)
    assert retime_sections([fresh_run])  # current: fine
    records = fresh_run / "records.jsonl"
    lines = records.read_text().splitlines()
    remade = [line.replace('"finished_at": "', '"finished_at": "1999', 1) if '"naive"' in line else line for line in lines]
    records.write_text("\n".join(remade) + "\n")
    with pytest.raises(RetimeError, match=r"is stale: the record of .* was made again after the pass"):
        retime_sections([fresh_run])
    records.write_text("\n".join(line for line in lines if '"naive"' not in line) + "\n")
    with pytest.raises(RetimeError, match=r"is stale: its cell .* has no record .* run `wbench retime"):
        leaderboard_text([fresh_run])


def test_retime_times_every_saved_model_and_leaves_records_alone(fresh_run: Path, registry) -> None:
    records_before = (fresh_run / "records.jsonl").read_bytes()
    lines: list[str] = []
    path = retime_run(fresh_run, replace(FAST, all_milestones=True), registry=registry, log=lines.append)
    assert path == fresh_run / RETIME_FILE
    assert (fresh_run / "records.jsonl").read_bytes() == records_before
    data = json.loads(path.read_text())
    cells = data["cells"]
    # naive at 2 seeds x 2 milestones has a saved model; sliced (nothing trained) has none
    assert sorted((c["method"], c["seed"], c["milestone"]) for c in cells) == [
        ("naive", 0, 3), ("naive", 0, 6), ("naive", 1, 3), ("naive", 1, 6)
    ]
    lp = data["references"]["toy-blobs"]["lp_pairs_per_s"]
    assert lp > 0
    for cell in cells:
        f = cell["figures"]
        assert f["cost.threads"] == 1 and f["cost.rounds"] == 5 and f["cost.pair_rows"] == 16
        assert f["cost.embed_batch"] == 8
        assert f["cost.independent_pairs_per_s"] == pytest.approx(1 / (2 * f["cost.embed_s"] + f["cost.pair_s"]))
        assert f["speedup.one_core"] == pytest.approx(f["cost.independent_pairs_per_s"] / lp)
        assert f["speedup.pairwise"] == pytest.approx(f["cost.pairwise.16"] / lp)
        assert (fresh_run / cell["model"]).is_file()
        # the roofline against the GEMM timed in the same rounds
        gemm = data["references"]["toy-blobs"]["gemm.gflops"]
        assert f["gemm.gflops"] == gemm > 0 and f["gemm.threads"] == 1 and f["gemm.rounds"] == 5
        assert f["roofline.achieved_gflops"] == pytest.approx(f["flops.per_item"] / f["cost.embed_s"] / 1e9)
        assert f["roofline.fraction"] == pytest.approx(f["roofline.achieved_gflops"] / gemm)
        assert f["roofline.pairwise_bound_pairs_per_s"] == pytest.approx(gemm * 1e9 / (2 * f["flops.embedding_dim"]))
    assert data["protocol"]["threads"] == 1 and "git_commit" in data["provenance"]
    assert "4 models and the exact LP" in lines[0]
    assert [line.split(": ")[1] for line in lines[1:]] == [f"round {i}/5 done" for i in range(1, 6)]  # progress


def test_the_leaderboard_shows_the_pass_at_its_milestone(fresh_run: Path, registry) -> None:
    retime_run(fresh_run, replace(FAST, all_milestones=True), registry=registry, log=lambda line: None)
    text = leaderboard_text([fresh_run])
    assert "re-timed in one interleaved pass over the saved models" in text
    section = text[text.index("re-timed in one interleaved pass"):]
    row = next(line for line in section.splitlines() if line.startswith("| naive"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2"  # both seeds, once each: the models of milestone 6 only
    data = json.loads((fresh_run / RETIME_FILE).read_text())
    at6 = [c["figures"]["cost.independent_pairs_per_s"] for c in data["cells"] if c["milestone"] == 6]
    mean = sum(at6) / 2
    shown = float(cells[2].replace(",", ""))
    assert shown == pytest.approx(mean, rel=5e-3)
    assert "sliced" not in section  # not re-timed: no saved model


def _synthetic(path: Path, rates: dict[tuple[str, int, int], float]) -> None:
    """A retime file whose cells have the given independent pairs/s (e = 1 / (2 rate), c = 0)."""
    cells = []
    for (method, seed, milestone), rate in rates.items():
        figures = {
            "cost.independent_pairs_per_s": rate, "cost.embed_s": 0.5 / rate, "cost.embed_s_iqr": 0.05 / rate,
            "cost.pair_s": 0.0, "cost.pair_rows": 64.0, "cost.pairwise.64": 2 * rate, "speedup.one_core": rate / 100.0,
        }
        cells.append({"key": f"{method}{seed}{milestone}", "dataset": "d", "dataset_label": "d", "method": method,
                      "label": method, "seed": seed, "milestone": milestone, "model": "m.pt", "figures": figures})
    data = {"format_version": 1, "cells": cells, "references": {"d": {"lp_pairs_per_s": 100.0}},
            "protocol": {"threads": 1, "rounds": 7, "min_round_s": 0.2}, "provenance": {"git_commit": "abcdef0123"}}
    path.mkdir(parents=True, exist_ok=True)
    (path / RETIME_FILE).write_text(json.dumps(data))


def test_section_reports_the_spread_over_seeds_at_the_chosen_milestone(tmp_path: Path) -> None:
    _synthetic(tmp_path, {("a", 0, 10): 90.0, ("a", 1, 10): 110.0, ("a", 0, 20): 1000.0, ("b", 0, 10): 50.0})
    (section,) = retime_sections([tmp_path], milestone=10)
    rows = section.table.set_index("method")
    assert rows.loc["a", "seeds"] == "2"
    assert rows.loc["a", "independent pairs/s"] == "100"
    assert rows.loc["a", "CV over seeds"] == "14.1%"  # sd 14.14 over mean 100
    assert rows.loc["a", "largest IQR of e"] == "10.0%"
    assert rows.loc["a", "speed-up over exact LP (1 core)"] == "1"
    assert rows.loc["a", "pairwise pairs/s (n x n)"] == "200 (n = 64)"
    assert rows.loc["b", "CV over seeds"] == "-"  # one seed: no spread to state
    assert "git abcdef0" in section.title and "exact LP 100 pairs/s" in section.title
    # the last milestone: seed 0 of "a" at 20, seed 1 still at its 10
    (last,) = retime_sections([tmp_path])
    assert last.table.set_index("method").loc["a", "independent pairs/s"] == "555"
    assert "| a " in render_section(last, "md")


def test_roofline_section_shows_each_network_against_the_gemm_rate(tmp_path: Path) -> None:
    _synthetic(tmp_path, {("a", 0, 10): 1000.0, ("a", 1, 10): 1000.0, ("b", 0, 10): 50.0})
    data = json.loads((tmp_path / RETIME_FILE).read_text())
    data["references"]["d"]["gemm.gflops"] = 100.0
    for cell in data["cells"]:
        if cell["method"] == "a":  # e = 0.5 ms, 2 MFLOP per measure: 4 GFLOP/s, 4 % of 100
            cell["figures"].update({
                "flops.per_item": 2e6, "flops.embedding_dim": 50.0, "roofline.achieved_gflops": 4.0,
                "roofline.fraction": 0.04, "roofline.independent_bound_pairs_per_s": 25_000.0,
                "roofline.pairwise_bound_pairs_per_s": 1e9, "roofline.pairwise_fraction": 0.2,
                "cost.asymptote_pairs_per_s": 2e8,
            })
    (tmp_path / RETIME_FILE).write_text(json.dumps(data))
    timing, roofline = retime_sections([tmp_path])
    assert "roofline of the re-timed networks" in roofline.title and "GEMM 100 GFLOP/s on 1 thread" in roofline.title
    (row,) = roofline.table.to_dict("records")  # "b" carries no roofline: not a row
    assert row == {
        "method": "a", "seeds": "2", "MFLOP per measure": "2", "achieved GFLOP/s": "4", "of GEMM": "4.0%",
        "indep. pairs/s": "1,000", "indep. bound (GEMM / 2 FLOP)": "25,000", "k": "50",
        "asymptote 1/c": "200,000,000", "pairwise bound (GEMM / 2k)": "1,000,000,000", "1/c of bound": "20.0%",
    }
    assert len(timing.table) == 2  # the timing section still lists both


def test_bad_input_is_refused_with_a_message_naming_it(fresh_run: Path, tmp_path: Path, registry) -> None:
    with pytest.raises(RetimeError, match="no records.jsonl"):
        retime_run(tmp_path / "nowhere", FAST, registry=registry)
    with pytest.raises(RetimeError, match="rounds must be an integer >= 5"):
        RetimeOptions(rounds=3)
    with pytest.raises(RetimeError, match="min_round_s"):
        RetimeOptions(min_round_s=float("nan"))
    earlier = b'{"kept": "an earlier pass"}\n'
    (fresh_run / RETIME_FILE).write_bytes(earlier)
    model = next((fresh_run / "models").glob("*.pt"))
    model.unlink()
    with pytest.raises(RetimeError, match=f"{model.name}.*does not exist"):
        retime_run(fresh_run, FAST, registry=registry)
    assert (fresh_run / RETIME_FILE).read_bytes() == earlier  # nothing written over
    with pytest.raises(RetimeError, match="unsupported retime format"):
        leaderboard_text([fresh_run])
    (fresh_run / RETIME_FILE).write_text("{not json")
    with pytest.raises(RetimeError, match="not a readable retime file"):
        retime_sections([fresh_run])


def test_cli_writes_the_file_and_prints_the_section(fresh_run: Path, capsys) -> None:
    argv = ["retime", str(fresh_run), "--plugin", LOCAL, "--rounds", "5", "--min-round-s", "0.001", "--pairwise-n", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "re-timed in one interleaved pass" in out and "| naive" in out
    assert (fresh_run / RETIME_FILE).is_file()
    assert main(["retime", str(fresh_run), "--rounds", "2"]) == 2
    assert "rounds must be an integer >= 5" in capsys.readouterr().err


def test_the_site_shows_the_pass_on_the_run_page(fresh_run: Path, tmp_path: Path, registry) -> None:
    from wbench.board.site.build import build_site

    build_site(fresh_run, tmp_path / "site")
    assert "re-timed in one interleaved pass" not in (tmp_path / "site" / "run" / "index.html").read_text()
    retime_run(fresh_run, FAST, registry=registry, log=lambda line: None)
    build_site(fresh_run, tmp_path / "site")
    page = (tmp_path / "site" / "run" / "index.html").read_text()
    assert "re-timed in one interleaved pass over the saved models" in page and "CV over seeds" in page
