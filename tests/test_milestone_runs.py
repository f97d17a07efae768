"""Milestones through a whole run: one record per milestone, keyed like a run stopped there,
with the same metrics; ``--resume`` continues from the checkpoint of the last milestone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from wbench.cli.main import main

LOCAL = str(FIXTURES / "local_plugin.py")

SUITE = """
[suite]
name = "milestones"
seeds = [0]
primary_metric = "test.w2.rel_mae"

[budget]
steps = {steps}
batch_size = 8
lr = 0.003

[evaluation]
throughput = false
plots = false
options = {{ n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }}

[[datasets]]
name = "toy-blobs"
params = {{ n = 20, n_pairs = 60 }}

[[surrogates]]
name = "naive"
params = {{ width = 40 }}

[[surrogates]]
name = "local-centroid"
"""


def _run(
    tmp_path: Path, name: str, steps: Any, *extra: str, out: Path | None = None, status: int = 0
) -> dict[tuple[str, int], dict]:
    """Run the toy suite to ``steps``; ``status``: the exit status expected (1: a cell failed)."""
    suite = tmp_path / f"{name}.toml"
    suite.write_text(SUITE.format(steps=json.dumps(steps)))
    out = out or tmp_path / name
    assert main(["run", str(suite), "--plugin", LOCAL, "--out", str(out), *extra]) == status
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return {(r["method"], r["budget"]["steps"]): r for r in records}


@pytest.mark.slow
def test_milestone_records_equal_runs_stopped_there(tmp_path: Path) -> None:
    joint = _run(tmp_path, "joint", [3, 8])
    assert sorted(joint) == [("local-centroid", 8), ("naive", 3), ("naive", 8)]  # a solver once, at the last
    for steps in (3, 8):
        alone = _run(tmp_path, f"alone{steps}", steps)[("naive", steps)]
        record = joint[("naive", steps)]
        assert record["key"] == alone["key"]  # a milestone is keyed as the run stopped there
        assert record["metrics"] == alone["metrics"]
        assert record["fit"]["val_mse"] == alone["fit"]["val_mse"]
        assert record["fit"]["milestone"]["of"] == [3, 8] and record["fit"]["milestone"]["value"] == steps
        assert record["fit"]["cost"]["pairs_seen"] == steps * 8
        assert record["n_parameters_inference"] == record["n_parameters_trained"] == record["n_parameters"]
    assert list((tmp_path / "joint" / "checkpoints").glob("*-step000000003.pt"))


@pytest.mark.slow
def test_resume_extends_a_run_to_a_later_milestone(tmp_path: Path) -> None:
    uninterrupted = _run(tmp_path, "full", [3, 8])
    out = tmp_path / "grown"
    first = _run(tmp_path, "short", 3, out=out)
    assert sorted(first) == [("local-centroid", 3), ("naive", 3)]
    grown = _run(tmp_path, "long", [3, 8], "--resume", out=out)
    assert grown[("naive", 3)]["finished_at"] == first[("naive", 3)]["finished_at"]  # not recomputed
    assert grown[("naive", 8)]["metrics"] == uninterrupted[("naive", 8)]["metrics"]
    assert grown[("naive", 8)]["fit"]["train_loss"] == uninterrupted[("naive", 8)]["fit"]["train_loss"]


@pytest.mark.slow
def test_resume_uses_the_checkpoint_and_names_a_corrupt_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tmp_path, "short", 3, out=out)
    (checkpoint,) = (out / "checkpoints").glob("*-step000000003.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    grown = _run(tmp_path, "long", [3, 8], "--resume", out=out, status=1)
    failed = grown[("naive", 8)]
    assert failed["status"] == "failed"
    assert f"checkpoint {checkpoint} is corrupt" in failed["error"]


OWN_LOOP_PLUGIN = '''
from wbench import hookimpl
from wbench.train.checkpoint import MilestoneHooks, milestone_hooks
from wbench_plugins.kenn.models import NaiveKENN


class OwnLoop(NaiveKENN):
    """A plugin whose fit knows nothing of milestones (the cell's hooks never reach the loop)."""

    def fit(self, train, val, budget):
        with milestone_hooks(MilestoneHooks()):
            return super().fit(train, val, budget)


@hookimpl
def wbench_register_surrogates(registry):
    registry.add_surrogate("own-loop", f"{__name__}:OwnLoop", description="ignores milestone hooks (test)")
'''


@pytest.mark.slow
def test_a_fit_that_ignores_the_milestone_hooks_gets_no_numbers_at_earlier_milestones(tmp_path: Path) -> None:
    """Its final model belongs to the last milestone only: the earlier one is a failed
    record that says why, never the final model's numbers under the earlier key."""
    plugin = tmp_path / "own_loop.py"
    plugin.write_text(OWN_LOOP_PLUGIN)
    suite = tmp_path / "own.toml"
    suite.write_text(SUITE.format(steps="[3, 8]").replace('name = "local-centroid"', 'name = "own-loop"\nparams = { width = 40 }'))
    out = tmp_path / "own"
    assert main(["run", str(suite), "--plugin", LOCAL, "--plugin", str(plugin), "--out", str(out)]) == 1
    records = {(r["method"], r["budget"]["steps"]): r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    assert records[("own-loop", 8)]["status"] == "ok"
    assert records[("own-loop", 8)]["metrics"] == records[("naive", 8)]["metrics"]  # the same training, ended at 8
    skipped = records[("own-loop", 3)]
    assert skipped["status"] == "failed" and "metrics" not in skipped
    assert "milestone 3 steps (step 3) was not evaluated: own-loop's fit trained 8 steps" in skipped["error"]
    assert records[("naive", 3)]["status"] == "ok"
