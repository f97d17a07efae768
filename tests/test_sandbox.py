"""Cells cannot see what they must not (issue 33, item 1): a method's code runs in a process
that holds the training and validation pairs' exact distances only; the test and ``unseen``
pairs' distances stay in the process that evaluates it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES

from wbench.cli.main import main

CHEAT = FIXTURES / "cheating_plugin.py"
LOCAL = FIXTURES / "local_plugin.py"

SUITE = """
[suite]
name = "sandbox"
seeds = [0]
[budget]
steps = 4
batch_size = 8
[evaluation]
plots = false
save_models = false
options = {{ n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }}
[[datasets]]
name = "toy-blobs"
params = {{ n = 20, n_pairs = 60 }}
{surrogates}
"""


def _run(tmp_path: Path, names: list[str], plugins: tuple[Path, ...] = (LOCAL, CHEAT)) -> dict[str, dict]:
    suite = tmp_path / "sandbox.toml"
    suite.write_text(SUITE.format(surrogates="".join(f'[[surrogates]]\nname = "{n}"\n' for n in names)))
    out = tmp_path / "run"
    args = ["run", str(suite), "--out", str(out), "--no-timing"]
    for plugin in plugins:
        args += ["--plugin", str(plugin)]
    main(args)
    return {r["method"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def test_a_fit_that_searches_memory_for_the_test_distances_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "cheat.jsonl"
    monkeypatch.setenv("WBENCH_TEST_CHEAT_REPORT", str(report))
    record = _run(tmp_path, ["truth-thief"])["truth-thief"]
    assert record["status"] == "ok", record["error"]
    seen = [json.loads(line) for line in report.read_text().splitlines()]
    assert seen and all(s["found"] == 0 for s in seen), seen
    assert record["metrics"]["test.w2.rel_mae"] > 0.01  # not the exact values


def test_the_datasets_a_fit_can_reach_have_no_test_distances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "cheat.jsonl"
    monkeypatch.setenv("WBENCH_TEST_CHEAT_REPORT", str(report))
    _run(tmp_path, ["truth-thief"])
    datasets = [d for line in report.read_text().splitlines() for d in json.loads(line)["datasets"]]
    assert datasets, "the fit's process holds the redacted copy of its dataset"
    for splits in datasets:
        assert splits["train"] and splits["val"]
        assert not any(has for split, has in splits.items() if split not in ("train", "val")), splits
