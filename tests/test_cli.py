"""End to end through the command line: list, run, resume, leaderboard, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO

from wbench.cli.main import main
from wbench.records.store import RecordStore

LOCAL = str(FIXTURES / "local_plugin.py")
TINY = str(FIXTURES / "tiny_suite.toml")


def wbench(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the wbench command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "wbench.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, cwd=cwd, timeout=600,
    )


def test_list_shows_builtin_and_local_plugins(capsys) -> None:
    assert main(["list", "--plugin", LOCAL]) == 0
    out = capsys.readouterr().out
    for name in ("naive", "deepkenn", "odekenn", "exact-lp", "sinkhorn", "digits", "mnist", "local-centroid", "toy-blobs"):
        assert name in out
    assert "local file" in out


def test_plugins_command_lists_distributions(capsys) -> None:
    assert main(["plugins", "--plugin", LOCAL]) == 0
    out = capsys.readouterr().out
    assert "wbench 0.1.0" in out and "local_plugin" in out


def test_run_writes_records_and_prints_leaderboard(tmp_path, capsys) -> None:
    out_dir = tmp_path / "run"
    assert main(["run", TINY, "--plugin", LOCAL, "--out", str(out_dir)]) == 1  # a cell failed: non-zero status
    captured = capsys.readouterr()
    printed = captured.out
    assert "local-centroid" in printed and "failed: RuntimeError: deliberate failure during fit" in printed
    assert "wbench run: 3 cells: 1 ok, 2 failed, 0 unavailable" in captured.err.splitlines()[-1]
    records = [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3  # the solver runs once (first seed); the failing model once per seed
    by_method = {(r["method"], r["seed"]): r for r in records}
    ok = by_method[("local-centroid", 0)]
    assert ok["status"] == "ok" and ok["schema_version"] == 1
    assert ok["metrics"]["test.w2.mae"] > 0  # centroid distance is a strict lower bound on blobs
    assert ok["provenance"]["versions"]["torch"] and ok["budget"]["steps"] == 4
    assert not ok.get("throughput")  # speed is the run's timing pass, beside the records
    timing = json.loads((out_dir / "timing.json").read_text())
    assert [c["key"] for c in timing["cells"]] == [ok["key"]] and timing["cells"][0]["figures"]["speedup.one_core"] > 0
    failed = by_method[("failing", 1)]
    assert failed["status"] == "failed" and "deliberate failure during fit" in failed["error"]
    assert (out_dir / "leaderboard.md").read_text().startswith("Ranked by")


@pytest.mark.slow
def test_killed_run_resumes_with_exactly_one_record_per_cell(tmp_path, capsys) -> None:
    """A run SIGKILLed (in a subprocess) after its second record leaves those two; a run without
    ``--resume`` refuses that folder; ``--resume`` finishes it with one record per cell.

    The two later runs go through the same ``main`` in this process: only the kill needs a
    process of its own, and each further ``wbench`` process paid Python, torch and the plugins'
    start-up again."""
    out_dir = tmp_path / "run"
    killed = wbench("run", TINY, "--plugin", LOCAL, "--out", str(out_dir), env={"WBENCH_TEST_KILL_AFTER": "2"})
    assert killed.returncode != 0
    assert len((out_dir / "records.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert main(["run", TINY, "--plugin", LOCAL, "--out", str(out_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
    resumed = main(["run", TINY, "--plugin", LOCAL, "--out", str(out_dir), "--resume"])
    assert resumed == 1, capsys.readouterr().err  # the failing fixture fails again: non-zero status
    records = RecordStore(out_dir).load()  # append-only: a re-run cell's newer line supersedes its older one
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 3
    assert {(r.method, r.seed) for r in records} == {("local-centroid", 0), ("failing", 0), ("failing", 1)}


def test_unknown_surrogate_lists_known_names_and_writes_nothing(tmp_path, capsys) -> None:
    out_dir = tmp_path / "run"
    assert main(["run", TINY, "--plugin", LOCAL, "--surrogate", "nope", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert "unknown surrogate 'nope'" in err and "local-centroid" in err and "naive" in err
    assert not out_dir.exists()


def test_unknown_dataset_lists_known_names(tmp_path, capsys) -> None:
    assert main(["run", TINY, "--plugin", LOCAL, "--dataset", "imagenet", "--out", str(tmp_path / "r")]) == 2
    assert "unknown dataset 'imagenet'; known datasets:" in capsys.readouterr().err


def test_malformed_suite_names_the_key(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(Path(TINY).read_text().replace("batch_size = 16", "batch_sise = 16"))
    assert main(["run", str(bad), "--plugin", LOCAL, "--out", str(tmp_path / "r")]) == 2
    assert "[budget]: unknown key 'batch_sise'" in capsys.readouterr().err


def test_leaderboard_command_renders_formats(tmp_path, capsys) -> None:
    out_dir = tmp_path / "run"
    assert main(["run", TINY, "--plugin", LOCAL, "--out", str(out_dir), "--surrogate", "local-centroid", "--seeds", "0"]) == 0
    capsys.readouterr()
    for fmt in ("md", "csv", "html"):
        target = tmp_path / f"board.{fmt}"
        assert main(["leaderboard", str(out_dir), "--format", fmt, "--out", str(target)]) == 0
        first = target.read_bytes()
        assert main(["leaderboard", str(out_dir), "--format", fmt, "--out", str(target)]) == 0
        assert target.read_bytes() == first and b"local-centroid" in first


@pytest.fixture(scope="module")
def example_package(tmp_path_factory) -> Path:
    """The README's example plugin package, pip-installed into a private target folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(REPO / "examples" / "wbench-example-plugin")],
        check=True, capture_output=True, timeout=300,
    )
    return target


@pytest.mark.slow
def test_third_party_package_appears_in_list_and_leaderboard(example_package, tmp_path, monkeypatch, capsys) -> None:
    """The pip-installed package is found through its ``wbench`` entry point, listed with its
    distribution, and its method runs a cell to an ``ok`` record.

    On ``sys.path`` of this process (what ``PYTHONPATH`` gives a new one; the method's process
    gets this ``sys.path`` with each cell): entry points are looked up on every
    ``make_plugin_manager``, and a ``wbench`` process per command paid Python, torch and every
    plugin's imports (JAX for the wormhole's parameter count in ``list``) again."""
    monkeypatch.syspath_prepend(str(example_package))
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr()
    line = next((line for line in listing.out.splitlines() if line.startswith("moments-mlp")), None)
    assert line is not None, listing.out + listing.err
    assert "wbench-example-plugin 0.1.0" in line and "ok" in line
    status = main(["run", TINY, "--plugin", LOCAL, "--surrogate", "moments-mlp", "--seeds", "0", "--out", str(tmp_path / "r")])
    run = capsys.readouterr()
    assert status == 0, run.err
    assert "moments-mlp" in run.out
    record = json.loads((tmp_path / "r" / "records.jsonl").read_text().splitlines()[0])
    assert record["status"] == "ok" and record["n_parameters"] > 0 and record["fit"]["steps"] == 4


def test_unknown_speedup_reference_stops_the_run_before_any_work(tmp_path, capsys) -> None:
    suite = tmp_path / "bad.toml"
    suite.write_text(Path(TINY).read_text().replace("plots = false", 'plots = false\nspeedup_reference = "nope"'))
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(tmp_path / "run")]) == 2
    assert "unknown surrogate 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_a_plugin_file_before_the_command_is_a_plugin_not_the_command(capsys) -> None:
    """``wbench --plugin a.py list``: the flag takes one file, so ``list`` stays the command."""
    assert main(["--plugin", LOCAL, "list"]) == 0
    assert "toy-blobs" in capsys.readouterr().out
