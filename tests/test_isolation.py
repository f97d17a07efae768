"""Cells cannot break each other (issue 33): torch's global state is the same at the start of
every cell and a cell that changed it is named in its record; a per-cell time limit stops a
hung plugin, records the cell as failed with the reason, and the run goes on."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES

from wbench.cli.main import main
from wbench.errors import SuiteError
from wbench.run.isolation import CellTimeoutError, TorchState, time_limit, torch_state_guard
from wbench.run.suite import parse_suite

PLUGIN = '''
import json
import os
import time

import torch

from wbench import hookimpl
from wbench.surrogate import EmbeddingSurrogate, FitReport


class _Linear(EmbeddingSurrogate):
    input_kind = "any"

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Linear(64, 3)  # in the default dtype at construction

    def embed(self, x):
        return self.model(x.weights.to(torch.float32))

    def fit(self, train, val, budget):
        self.embed(train.measures.index(slice(0, 2)))  # float64 weights against float32 input fail
        return FitReport(stopped_by="nothing to fit")


class StateChanger(_Linear):
    def fit(self, train, val, budget):
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        return FitReport(stopped_by="nothing to fit")


class Innocent(_Linear):
    def fit(self, train, val, budget):
        report = os.environ.get("WBENCH_TEST_STATE_REPORT")
        if report:  # what this cell starts with
            with open(report, "a") as handle:
                handle.write(json.dumps({"threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype())}) + "\\n")
        return super().fit(train, val, budget)


class Hung(_Linear):
    def fit(self, train, val, budget):
        while True:
            try:
                time.sleep(0.05)
            except Exception:  # a plugin that swallows errors still stops
                pass


@hookimpl
def wbench_register_surrogates(registry):
    for name, cls in (("state-changer", "StateChanger"), ("innocent", "Innocent"), ("hung", "Hung")):
        registry.add_surrogate(name, f"{__name__}:{cls}")
'''

SUITE = """
[suite]
name = "isolation"
seeds = [0]
{extra}
[budget]
steps = 4
batch_size = 8
[evaluation]
independent_pairs = 16
pairwise_size = 8
exact_independent_pairs = 8
exact_pairwise_size = 4
timing_rounds = 1
min_round_s = 0.0
direct_n = [4]
speedup_sides = ["one_core"]
plots = false
save_models = false
options = {{ n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }}
[[datasets]]
name = "toy-blobs"
params = {{ n = 20, n_pairs = 60 }}
{surrogates}
"""


def _run(tmp_path: Path, names: list[str], *, extra: str = "", args: tuple[str, ...] = ()) -> dict[str, dict]:
    plugin = tmp_path / "isolation_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    suite = tmp_path / "isolation.toml"
    suite.write_text(SUITE.format(extra=extra, surrogates="".join(f'[[surrogates]]\nname = "{n}"\n' for n in names)))
    out = tmp_path / "run"
    main(["run", str(suite), "--plugin", str(FIXTURES / "local_plugin.py"), "--plugin", str(plugin),
          "--out", str(out), *args])
    return {r["method"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def test_a_cell_that_changes_torch_state_is_named_and_the_next_cell_is_unharmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = TorchState.now()
    report = tmp_path / "state.jsonl"
    monkeypatch.setenv("WBENCH_TEST_STATE_REPORT", str(report))
    records = _run(tmp_path, ["state-changer", "innocent"])
    assert records["innocent"]["status"] == "ok", records["innocent"]["error"]  # before: float64 weights failed it
    seen = json.loads(report.read_text())
    assert seen == {"threads": before.threads, "dtype": "torch.float32"}  # before: 1 thread, float64
    changed = records["state-changer"]["side_effects"]
    assert changed["torch.default_dtype"] == "torch.float32 -> torch.float64"
    assert changed["torch.threads"].endswith("-> 1")
    assert "side_effects" not in records["innocent"]
    assert TorchState.now() == before


def test_a_hung_cell_is_stopped_at_its_time_limit_and_the_run_goes_on(tmp_path: Path) -> None:
    started = time.perf_counter()
    records = _run(tmp_path, ["hung", "innocent"], extra="cell_time_limit_s = 1.5")
    assert time.perf_counter() - started < 60
    assert records["hung"]["status"] == "failed"
    assert "ran past its time limit of 1.5 s" in records["hung"]["error"]
    assert records["innocent"]["status"] == "ok"


def test_the_command_line_limit_overrides_the_suite(tmp_path: Path) -> None:
    records = _run(tmp_path, ["hung"], extra="cell_time_limit_s = 600", args=("--cell-time-limit", "1"))
    assert "time limit of 1 s" in records["hung"]["error"]


@pytest.mark.parametrize("value", ["-1", "0", '"long"', "inf"])
def test_a_bad_time_limit_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(SuiteError, match=r"\[suite\]\.cell_time_limit_s must be a positive number"):
        parse_suite(f'[suite]\nname = "x"\ncell_time_limit_s = {value}\n[[datasets]]\nname = "d"\n'
                    '[[surrogates]]\nname = "m"\n')


def test_the_guard_restores_rng_and_reports_nothing_when_nothing_changed() -> None:
    state = torch.get_rng_state()
    with torch_state_guard() as changes:
        torch.rand(10)
    assert changes == {} and torch.equal(torch.get_rng_state(), state)


def test_time_limit_interrupts_python_code() -> None:
    with pytest.raises(CellTimeoutError), time_limit(0.2):
        while True:
            time.sleep(0.01)


def test_a_long_label_runs_its_cell_and_names_its_files_within_the_limits(tmp_path: Path) -> None:
    """A 360-character label (a file name holds 255 bytes) no longer fails its cell after training."""
    label = "a-very-long-method-label-" * 15
    plugin = tmp_path / "isolation_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    suite = tmp_path / "long.toml"
    text = SUITE.format(extra="", surrogates=f'[[surrogates]]\nname = "innocent"\nlabel = "{label}"\n')
    suite.write_text(text.replace("save_models = false", "save_models = true").replace("plots = false", "plots = true"))
    out = tmp_path / "run"
    assert main(["run", str(suite), "--plugin", str(FIXTURES / "local_plugin.py"), "--plugin", str(plugin),
                 "--out", str(out), "--no-timing"]) == 0
    (record,) = map(json.loads, (out / "records.jsonl").read_text().splitlines())
    assert record["status"] == "ok" and record["label"] == label
    saved = list((out / "models").iterdir())
    assert saved and all(len(p.name.encode()) <= 255 for p in out.rglob("*"))
