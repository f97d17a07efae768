"""The one timing path: ``wbench run`` ends with one interleaved pass over every model of the
run (``timing.json``), ``wbench retime`` runs it again, and boards show its figures only."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FIXTURES

from wbench.board.report import leaderboard_text
from wbench.board.timing_section import timing_sections
from wbench.cli.main import main
from wbench.records.store import RecordStore
from wbench.records.timing_file import MAX_FIGURES, TIMING_FILE, TimingError
from wbench.run.timing_pass import TimingOptions, time_run

SUITE = """
[suite]
name = "timing"
seeds = [0, 1]

[budget]
steps = [3, 6]
batch_size = 8

[evaluation]
plots = false
timing_rounds = 3
min_round_s = 0.001
pairwise_size = 16
options = {{ n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }}

[[datasets]]
name = "toy-blobs"
params = {{ n = 20, n_pairs = 60 }}

[[surrogates]]
name = "naive"
params = {{ width = 40 }}

[[surrogates]]
name = "{second}"
"""

LOCAL = str(FIXTURES / "local_plugin.py")  # registers the toy-blobs dataset and local-centroid
FAST = TimingOptions(rounds=3, min_round_s=0.001, embed_batch=8, lp_batch=4, solver_batch=4, pairwise_n=16)


def _run(root: Path, *args: str, second: str = "local-centroid") -> Path:
    suite = root / "timing.toml"
    suite.write_text(SUITE.format(second=second))
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(root / "run"), *args]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished toy run: naive at seeds 0 and 1 (milestones 3 and 6) and a solver, timed."""
    return _run(tmp_path_factory.mktemp("timing"))


@pytest.fixture(scope="module")
def registry():
    from wbench.plugin.manager import make_plugin_manager

    return make_plugin_manager([LOCAL]).registry


@pytest.fixture()
def fresh_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_a_run_ends_with_one_pass_over_every_model(run_dir: Path) -> None:
    data = json.loads((run_dir / TIMING_FILE).read_text())
    cells = {(c["label"], c["seed"]): c for c in data["cells"]}
    # each (method, seed) once, at its last milestone; the solver (nothing to fit) built again, at its one seed
    assert sorted(cells) == [("local-centroid", 0), ("naive(width=40)", 0), ("naive(width=40)", 1)]
    assert cells[("naive(width=40)", 0)]["milestone"] == 6 and cells[("naive(width=40)", 0)]["model"].endswith(".pt")
    assert cells[("local-centroid", 0)]["model"] == "built and fitted again"
    records = {r.key: r for r in RecordStore(run_dir).load()}
    for cell in data["cells"]:
        assert records[cell["key"]].finished_at == cell["finished_at"]
        assert len(cell["figures"]) <= MAX_FIGURES
    assert all(len(c["same_model"]) == 1 for (label, _), c in cells.items() if label.startswith("naive"))  # milestone 3
    lp = data["references"]["toy-blobs"]["lp_pairs_per_s"]
    for cell in data["cells"]:
        f = cell["figures"]
        assert f["cost.threads"] == 1 and f["cost.pairwise_n"] == 16
        assert f["cost.independent_pairs_per_s"] == pytest.approx(1 / (2 * f["cost.embed_s"] + f["cost.pair_s"]))
        assert f["speedup.one_core"] == pytest.approx(f["cost.independent_pairs_per_s"] / lp)
        assert f["speedup.pairwise"] == pytest.approx(f["cost.pairwise_pairs_per_s"] / lp)
    assert cells[("local-centroid", 0)]["figures"]["cost.embedding"] == 0.0
    # records hold no timing: the board takes every speed figure from the pass
    assert all(not (r.outcome.throughput if r.outcome else {}) for r in records.values())


def test_the_board_shows_the_pass_at_every_milestone(run_dir: Path) -> None:
    text = leaderboard_text([run_dir])
    assert "Speed: one timing pass over every model of the run" in text
    row = next(line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 "))
    assert "speed-up 1 core pairwise n=16" in text and row.count("|") > 10
    earlier = leaderboard_text([run_dir], milestone=3)  # the same network: the same figures
    assert "speed-up 1 core indep." in earlier
    (section,) = timing_sections([run_dir])
    rows = section.table.set_index("method")
    assert rows.loc["naive(width=40)", "seeds"] == "2" and rows.loc["local-centroid", "CV over seeds"] == "-"


def test_no_timing_leaves_the_folder_untimed_until_retime(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, "--no-timing")
    assert not (run / TIMING_FILE).exists()
    assert "Speed: not timed" in leaderboard_text([run]) and "speed-up 1 core" not in leaderboard_text([run])
    capsys.readouterr()
    assert main(["retime", str(run), "--plugin", LOCAL, "--rounds", "3", "--min-round-s", "0.001"]) == 0
    assert "the timing pass's spread over seeds" in capsys.readouterr().out
    assert (run / TIMING_FILE).is_file() and "speed-up 1 core indep." in leaderboard_text([run])
    assert main(["retime", str(run), "--rounds", "2"]) == 2
    assert "rounds must be an integer >= 3" in capsys.readouterr().err


def test_a_pass_older_than_its_records_is_refused(fresh_run: Path) -> None:
    records = fresh_run / "records.jsonl"
    lines = records.read_text().splitlines()
    remade = [line.replace('"finished_at": "', '"finished_at": "1999', 1) if '"naive"' in line else line for line in lines]
    records.write_text("\n".join(remade) + "\n")
    with pytest.raises(TimingError, match=r"is stale: the record of .* was made again after the pass"):
        leaderboard_text([fresh_run])


def test_a_slow_embedding_is_timed_on_a_smaller_batch(fresh_run: Path, registry) -> None:
    slow = replace(FAST, embed_batch=64, max_embed_call_s=1e-9)
    data = json.loads(time_run(fresh_run, slow, registry=registry).read_text())
    assert {c["figures"]["cost.embed_batch"] for c in data["cells"] if c["label"].startswith("naive")} == {16.0}
    larger = replace(FAST, embed_batch=64, max_embed_call_s=1e9)  # never more than the 20 distinct measures
    data = json.loads(time_run(fresh_run, larger, registry=registry).read_text())
    assert {c["figures"]["cost.embed_batch"] for c in data["cells"] if c["label"].startswith("naive")} == {20.0}


def test_bad_input_is_refused_with_a_message_naming_it(fresh_run: Path, tmp_path: Path, registry) -> None:
    with pytest.raises(TimingError, match="no records.jsonl"):
        time_run(tmp_path / "nowhere", FAST, registry=registry)
    with pytest.raises(TimingError, match="rounds must be an integer >= 3"):
        TimingOptions(rounds=2)
    with pytest.raises(TimingError, match="min_round_s"):
        TimingOptions(min_round_s=float("nan"))
    earlier = (fresh_run / TIMING_FILE).read_bytes()
    named = next(c["model"] for c in json.loads(earlier)["cells"] if c["model"].endswith(".pt"))
    (fresh_run / named).unlink()
    with pytest.raises(TimingError, match=f"names {named}, but it is not in"):
        time_run(fresh_run, FAST, registry=registry)
    assert (fresh_run / TIMING_FILE).read_bytes() == earlier  # nothing written over
    data = json.loads(earlier)
    data["cells"][0]["figures"]["speedup.one_core"] = float("nan")
    (fresh_run / TIMING_FILE).write_text(json.dumps(data))
    with pytest.raises(TimingError, match=r"figure 'speedup.one_core' = nan is not finite"):
        leaderboard_text([fresh_run])
    data["format_version"] = 1
    (fresh_run / TIMING_FILE).write_text(json.dumps(data))
    with pytest.raises(TimingError, match="unsupported timing format 1"):
        leaderboard_text([fresh_run])


def test_invalid_outputs_are_refused_before_any_timing(run_dir: Path, registry) -> None:
    """A model that is fast because it returns nonsense is never timed as if it were valid."""
    import torch

    from wbench.run.timing_pass import check_timed_outputs
    from wbench.surrogate import Solver
    from wbench.validate import InvalidPredictionError

    class Negative(Solver):
        input_kind = "any"

        def distance(self, a, b):
            return -torch.ones(len(a))

    dataset = registry.get("dataset", "toy-blobs").load()(n=20, n_pairs=60).build()
    with pytest.raises(InvalidPredictionError, match="negative"):
        check_timed_outputs(Negative(), dataset, "negative")


def test_the_site_shows_the_pass_on_the_run_page(run_dir: Path, tmp_path: Path) -> None:
    from wbench.board.site.build import build_site

    build_site(run_dir, tmp_path / "site")
    page = (tmp_path / "site" / "run" / "index.html").read_text()
    assert "one timing pass over every model of the run" in page and "CV over seeds" in page
