"""Runs and the command line can neither lose, double-count nor invent a cell (issue 17, items 5-13)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, keyed

from wbench.board.leaderboard import records_frame, summarise
from wbench.cli.main import build_parser, main
from wbench.plugin.manager import make_plugin_manager
from wbench.records.store import SCHEMA_VERSION, RecordStore

TINY = str(FIXTURES / "tiny_suite.toml")
LOCAL = str(FIXTURES / "local_plugin.py")
QUICK_RUN = ["run", TINY, "--plugin", LOCAL, "--surrogate", "local-centroid", "--seeds", "0"]


def _records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- item 5: torn line on resume


def test_resume_drops_a_torn_last_line_reports_it_and_keeps_its_bytes(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*QUICK_RUN, "--out", str(out)]) == 0
    (finished,) = _records(out)
    torn = (json.dumps({**finished, "key": "0123456789abcdef"}) + "\n").encode()[:40]  # killed mid-write
    with open(out / "records.jsonl", "ab") as handle:
        handle.write(torn)
    capsys.readouterr()
    assert main([*QUICK_RUN, "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "dropped a torn last line (40 bytes" in err and "records.jsonl.torn" in err
    assert _records(out) == [finished]  # the finished record is intact, the torn line gone
    assert (out / "records.jsonl.torn").read_bytes() == torn + b"\n"


# --------------------------------------------------------------------------- item 6: writable before compute


def test_unwritable_output_directory_is_a_clear_error_before_any_compute(tmp_path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main([*QUICK_RUN, "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write to the output directory {blocker / 'run'}" in err and "nothing was computed" in err


# --------------------------------------------------------------------------- item 7: one run per directory


def test_a_second_run_on_the_same_out_stops_at_once_naming_the_holder_pid(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from wbench.run.lock import run_dir_lock\n"
            f"with run_dir_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.read()"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO / ".shim"), "PATH": ""},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main([*QUICK_RUN, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another wbench run (PID {holder.pid})" in err
        assert not (out / "records.jsonl").exists()  # nothing computed, nothing written
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main([*QUICK_RUN, "--out", str(out)]) == 0  # released when its holder ended
    assert (out / ".wbench-run.lock").read_text() == ""  # no PID left behind


# --------------------------------------------------------------------------- item 8: overlapping run folders


def _write(run_dir: Path, value: float, finished_at: str) -> None:
    RecordStore(run_dir).append(keyed({
        "schema_version": SCHEMA_VERSION, "key": "", "status": "ok", "dataset": "d",
        "method": "m", "seed": 0, "finished_at": finished_at, "metrics": {"test.w2.rel_mae": value},
    }))


def test_overlapping_run_directories_are_an_error_unless_keep_newest(tmp_path, capsys) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, 0.5, "2026-01-01T00:00:00+00:00")
    _write(new, 0.25, "2026-02-01T00:00:00+00:00")
    assert main(["leaderboard", str(new), str(old), "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert "cell " in err and "(d / m / seed 0)" in err and str(old / "records.jsonl") in err and str(new / "records.jsonl") in err
    with pytest.warns(UserWarning, match="kept the newest"):
        assert main(["leaderboard", str(new), str(old), "--format", "csv", "--keep-newest"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, (row,) = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert row[header.index("seeds")] == "1" and float(row[header.index("test.w2.rel_mae.mean")]) == 0.25


# --------------------------------------------------------------------------- item 4: seeds counts averaged values


def test_seeds_counts_only_the_finite_values_the_mean_averages() -> None:
    records = [
        {"schema_version": 1, "key": f"k{s}", "status": "ok", "dataset": "d", "method": "m", "seed": s,
         "metrics": {"test.w2.rel_mae": value}}
        for s, value in enumerate([0.1, None, 0.3])  # None: a non-finite value, as stored
    ]
    (row,) = summarise(records_frame(records), primary="test.w2.rel_mae").to_dict("records")
    assert row["seeds"] == 2 and row["test.w2.rel_mae.mean"] == pytest.approx(0.2)


# --------------------------------------------------------------------------- item 9: list options


def test_every_list_option_accumulates_and_takes_several_values() -> None:
    parser = build_parser(make_plugin_manager())
    args = parser.parse_args([
        "run", "--surrogate", "a", "--surrogate", "b", "c", "--dataset", "x", "--dataset", "y",
        "--seeds", "0", "--seeds", "1", "2", "--param", "n=1", "--param", "k=2", "m=3", "--plugin", "p.py", "--plugin", "q.py",
    ])
    assert args.surrogate == ["a", "b", "c"] and args.dataset == ["x", "y"] and args.seeds == [0, 1, 2]
    assert args.param == ["n=1", "k=2", "m=3"] and args.plugin == ["p.py", "q.py"]
    prepare = parser.parse_args(["prepare", "--dataset", "digits", "--param", "a=1", "--param", "b=2", "c=3"])
    assert prepare.param == ["a=1", "b=2", "c=3"]


# --------------------------------------------------------------------------- item 10: --param on run; README suite


def test_run_param_sets_the_dataset_options_of_the_run(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*QUICK_RUN, "--out", str(out), "--param", "n=12", "n_pairs=30"]) == 0
    (record,) = _records(out)
    assert record["dataset_params"] == {"n": 12, "n_pairs": 30}
    assert record["metrics"]["test.n_pairs"] == 6.0  # the toy dataset's test split of 30 pairs


def test_run_param_no_dataset_has_is_refused_naming_it() -> None:
    from wbench.errors import SuiteError
    from wbench.run.options import apply_dataset_params
    from wbench.run.suite import load_suite

    registry = make_plugin_manager().registry
    suite = apply_dataset_params(load_suite("quick"), {"pairs_per_combination": 3}, registry)
    assert suite.datasets[0].params["pairs_per_combination"] == 3
    with pytest.raises(SuiteError, match=r"--param root: no dataset of this run has a parameter 'root' \(digits: "):
        apply_dataset_params(load_suite("quick"), {"root": "/data"}, registry)


def test_readme_suite_excerpt_is_the_real_quick_suite() -> None:
    readme = (REPO / "docs" / "suites.md").read_text()
    match = re.search(r"See `wbench/suites/quick.toml`.*?\n```toml\n(.*?)```", readme, flags=re.S)
    assert match, "docs/suites.md must show wbench/suites/quick.toml"
    assert match.group(1) == (REPO / "wbench" / "suites" / "quick.toml").read_text()


# --------------------------------------------------------------------------- item 11: unknown ranking metric


def test_unknown_primary_metric_is_refused_listing_the_known(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*QUICK_RUN, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--primary", "bogus.metric"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'bogus.metric'" in err and "test.w2.rel_mae" in err
    suite = tmp_path / "bogus.toml"
    suite.write_text(Path(TINY).read_text().replace('primary_metric = "test.w2.rel_mae"', 'primary_metric = "bogus.metric"'))
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "[suite].primary_metric: unknown metric 'bogus.metric'" in err and "test.w2.mse" in err
    assert not (tmp_path / "r2" / "records.jsonl").exists()


# --------------------------------------------------------------------------- item 12: whole suite checked first


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[[surrogates]]\nname = \"local-centroid\"", "[[surrogates]]\nname = \"sinkhorn\"\neval = [{ regg = 1.0 }]"),
         r"surrogates\[0\] \(sinkhorn\).eval\[0\]: method 'sinkhorn' \(evaluation settings\) has no parameter 'regg'"),
        (("[[surrogates]]\nname = \"local-centroid\"", "[[surrogates]]\nname = \"naive\"\nparams = { widht = 3 }"),
         r"surrogates\[0\] \(naive\).params: method 'naive' has no parameter 'widht'"),
        (("name = \"toy-blobs\"\nparams = { n = 20, n_pairs = 60 }", "name = \"digits\"\nparams = { pairs_per_combination = -1 }"),
         r"datasets\[0\] \(digits\).params: dataset 'digits' rejects its parameters"),
        (("[[surrogates]]\nname = \"local-centroid\"", "[[surrogates]]\nname = \"local-centroid\"\neval = [{ reg = 1.0 }]"),
         r"method 'local-centroid' has no evaluation-time parameters"),
    ],
)
def test_bad_method_and_dataset_parameters_stop_the_run_before_any_work(tmp_path, capsys, edit, message) -> None:
    suite = tmp_path / "bad.toml"
    text = Path(TINY).read_text()
    assert edit[0] in text
    suite.write_text(text.replace(edit[0], edit[1]))
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(tmp_path / "run")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- item 13: summary and exit status


def test_run_ends_with_a_summary_line_and_fails_when_a_cell_failed(tmp_path, capsys) -> None:
    assert main([*QUICK_RUN, "--out", str(tmp_path / "ok")]) == 0
    assert capsys.readouterr().err.splitlines()[-1].startswith("wbench run: 1 cells: 1 ok, 0 failed, 0 unavailable")
    failing = ["run", TINY, "--plugin", LOCAL, "--surrogate", "failing", "--seeds", "0", "--out", str(tmp_path / "bad")]
    assert main(failing) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("wbench run: 1 cells: 0 ok, 1 failed, 0 unavailable")
