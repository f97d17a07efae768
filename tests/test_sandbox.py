"""Cells cannot see what they must not (issue 33, item 1): a method's code runs in a process
that holds the training and validation pairs' exact distances only; the test and ``unseen``
pairs' distances stay in the process that evaluates it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
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


CRASHING = '''
import ctypes
import json
import os
import sys
import time

import torch

from wbench import hookimpl
from wbench.run.sandbox_child import resident_bytes
from wbench.surrogate import EmbeddingSurrogate, FitReport


class _Linear(EmbeddingSurrogate):
    input_kind = "any"

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Linear(64, 3)

    def embed(self, x):
        return self.model(x.weights.to(torch.float32))

    def fit(self, train, val, budget):
        return FitReport(stopped_by="nothing to fit")


class Exits(_Linear):
    def fit(self, train, val, budget):
        os._exit(3)


class Segfaults(_Linear):
    def fit(self, train, val, budget):
        ctypes.string_at(0)


class DiesPredicting(_Linear):
    def distance(self, a, b):
        os._exit(4)


class Innocent(_Linear):
    pass


class Sleeps(_Linear):
    """A long fit: says its process in a file, then computes (sleeps) for ten minutes."""

    def fit(self, train, val, budget):
        with open(os.environ["WBENCH_TEST_FIT_PID"], "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(600)
        return super().fit(train, val, budget)


class Leaky(_Linear):
    """Keeps 800 MB alive after every fit, as a leak would; reports its process and memory."""

    def fit(self, train, val, budget):
        with open(os.environ["WBENCH_TEST_LEAK_REPORT"], "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "resident": resident_bytes()}) + "\\n")
        # held by a module that outlives the cell (this file's globals travel anew with each cell)
        sys.__dict__.setdefault("wbench_test_leak", []).append(b"\\x01" * 800_000_000)
        return super().fit(train, val, budget)


@hookimpl
def wbench_register_surrogates(registry):
    for name, cls in (("exits", "Exits"), ("segfaults", "Segfaults"), ("dies-predicting", "DiesPredicting"),
                      ("innocent", "Innocent"), ("leaky-a", "Leaky"), ("leaky-b", "Leaky"),
                      ("sleeps", "Sleeps")):
        registry.add_surrogate(name, f"{__name__}:{cls}")
'''


def test_a_method_process_that_dies_fails_its_cell_and_the_run_goes_on(tmp_path: Path) -> None:
    plugin = tmp_path / "crashing_plugin.py"
    plugin.write_text(CRASHING)
    records = _run(tmp_path, ["exits", "innocent", "segfaults", "dies-predicting", "innocent"], plugins=(LOCAL, plugin))
    assert records["innocent"]["status"] == "ok", records["innocent"]["error"]
    assert "exited with code 3" in records["exits"]["error"]
    assert "SIGSEGV" in records["segfaults"]["error"]
    assert records["dies-predicting"]["status"] == "failed"
    assert "exited with code 4" in records["dies-predicting"]["error"]
    for name in ("exits", "segfaults", "dies-predicting"):
        assert "SandboxDiedError: the method's process" in records[name]["error"]


def test_a_killed_run_takes_its_method_process_with_it(tmp_path: Path) -> None:
    """A run SIGKILLed in the middle of a fit (a scheduler's kill; ``kill`` leaves the same
    orphan) ends its method process within seconds: the fit does not compute on, for minutes,
    on cores given to the next job."""
    import psutil

    plugin = tmp_path / "crashing_plugin.py"
    plugin.write_text(CRASHING)
    suite = tmp_path / "sandbox.toml"
    suite.write_text(SUITE.format(surrogates='[[surrogates]]\nname = "sleeps"\n'))
    pid_file, log = tmp_path / "fit.pid", tmp_path / "run.log"
    with log.open("w") as output:  # a file, not a pipe: a run never blocks on a full pipe nobody reads
        run = subprocess.Popen(
            [sys.executable, "-m", "wbench.cli", "run", str(suite), "--out", str(tmp_path / "run"), "--no-timing",
             "--plugin", str(LOCAL), "--plugin", str(plugin)],
            env={**os.environ, "WBENCH_TEST_FIT_PID": str(pid_file)}, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while not (pid_file.exists() and pid_file.read_text()):
            assert run.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the fit never started"
            time.sleep(0.2)
        fit = psutil.Process(int(pid_file.read_text()))
        assert fit.ppid() == run.pid  # the method process, not the run
    finally:
        run.kill()
        run.wait()
    try:
        fit.wait(timeout=10)  # reaped by whoever adopted it, or gone
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            if fit.status() != psutil.STATUS_ZOMBIE:
                fit.kill()
                pytest.fail("the method process went on computing after its run was killed")


def test_redacted_keeps_train_and_val_distances_only() -> None:
    import numpy as np

    from wbench.data import PairedDataset, PairSet
    from wbench.measures import MeasureBatch
    from wbench.run.sandbox import redacted
    from wbench.testing import toy_images

    truth = np.ones(3)
    pairs = {split: PairSet([0, 1, 2], [1, 2, 3], truth) for split in ("train", "val", "test", "unseen")}
    full = PairedDataset("toy", {}, MeasureBatch.from_images(toy_images(4, 8, 0)), pairs)
    copy = redacted(full)
    assert copy.pairs["train"].w2sq is not None and copy.pairs["val"].w2sq is not None
    assert copy.pairs["test"].w2sq is None and copy.pairs["unseen"].w2sq is None
    assert np.array_equal(copy.pairs["test"].left, pairs["test"].left)
    assert full.pairs["test"].w2sq is not None  # the run's own copy keeps them

def test_a_method_process_over_its_memory_limit_is_replaced_before_the_next_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leak in a method's code (or torch's) cannot grow across a run: every cell starts in a
    process holding at most the limit (without the replacement the second would start with the
    first cell's 800 MB on top of the process's own 0.6-1 GB)."""
    import wbench.run.sandbox

    limit = int(1.2 * 2**30)
    monkeypatch.setattr(wbench.run.sandbox, "RECYCLE_ABOVE_BYTES", limit)
    report = tmp_path / "leak.jsonl"
    monkeypatch.setenv("WBENCH_TEST_LEAK_REPORT", str(report))
    plugin = tmp_path / "crashing_plugin.py"
    plugin.write_text(CRASHING)
    records = _run(tmp_path, ["leaky-a", "leaky-b"], plugins=(LOCAL, plugin))
    assert all(r["status"] == "ok" for r in records.values()), records
    fits = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(fits) == 2
    assert max(f["resident"] for f in fits) <= limit, fits
    assert fits[0]["pid"] != fits[1]["pid"], fits
