"""Budget milestones in one training run, checkpoints and resume (issue 18, items 1-2).

The equivalences are exact: a milestone's weights, predictions and fit report are those of
a run whose budget stops there, and a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from wbench.budget import Budget
from wbench.testing import toy_dataset
from wbench.train.checkpoint import (
    CheckpointError,
    MilestoneHooks,
    load_checkpoint,
    milestone_hooks,
    save_checkpoint,
)
from wbench.train.loop import FitReport, predict_pairs, seed_everything
from wbench_plugins.kenn.models import DeepKENN

SMALL = 40  # a few thousand parameters: milliseconds per step


@pytest.fixture(scope="module")
def data():
    return toy_dataset(n=16, size=8, n_pairs=80)  # 48 training pairs: 6 steps of 8 per epoch


def _model(data) -> DeepKENN:
    seed_everything(3)
    return DeepKENN(**DeepKENN.params_for({"width": SMALL}, data.measures))


def _fit(data, budget: Budget, hooks: MilestoneHooks | None = None) -> tuple[DeepKENN, FitReport]:
    model = _model(data)
    if hooks is None:
        report = model.fit(data.split("train"), data.split("val"), budget)
    else:
        with milestone_hooks(hooks):
            report = model.fit(data.split("train"), data.split("val"), budget)
    return model, report


def _comparable(report: FitReport) -> dict[str, Any]:
    """The report without its wall time and the method's post-fit extras."""
    out = report.as_dict()
    del out["wall_time_s"], out["extra"]
    return out


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class _Recorder:
    """Hooks that keep what each milestone evaluated and every checkpointed state."""

    def __init__(self, model_box: list[DeepKENN], data, checkpoint_dir: Path | None = None):
        self.model_box, self.data, self.checkpoint_dir = model_box, data, checkpoint_dir
        self.seen: dict[int, tuple[FitReport, dict[str, torch.Tensor], np.ndarray]] = {}
        self.checkpoints: dict[int, Path] = {}

    def evaluate(self, index: int, report: FitReport) -> None:
        model = self.model_box[0]
        state = {k: v.clone() for k, v in model.model.state_dict().items()}
        self.seen[index] = (copy.deepcopy(report), state, predict_pairs(model, self.data.split("test")))

    def checkpoint(self, index: int, state: dict[str, Any]) -> None:
        if self.checkpoint_dir is not None:
            path = self.checkpoint_dir / f"m{index}.pt"
            self.checkpoints[index] = save_checkpoint(path, state, identity="toy")


def _fit_with_recorder(data, budget: Budget, recorder: _Recorder, resume: dict | None = None) -> tuple[DeepKENN, FitReport]:
    model = _model(data)
    recorder.model_box[:] = [model]
    hooks = MilestoneHooks(evaluate=recorder.evaluate, checkpoint=recorder.checkpoint, resume=resume)
    with milestone_hooks(hooks):
        report = model.fit(data.split("train"), data.split("val"), budget)
    return model, report


@pytest.mark.parametrize("milestones", [(4, 15), (6, 15), (4, 12)])
def test_milestones_in_one_run_equal_separate_runs(data, milestones: tuple[int, int]) -> None:
    """Milestones [a, b] of one run == a run of a steps and a run of b steps: weights,
    test predictions and fit reports, with a and b mid-epoch or at an epoch end (6 steps)."""
    a, b = milestones
    budget = Budget(epochs=None, steps=b, batch_size=8, lr=3e-3, seed=1, milestones=milestones)
    recorder = _Recorder([], data)
    joint, joint_report = _fit_with_recorder(data, budget, recorder)
    assert list(recorder.seen) == [0]  # the last milestone is what fit returns
    first_report, first_weights, first_predictions = recorder.seen[0]

    alone_a, report_a = _fit(data, Budget(epochs=None, steps=a, batch_size=8, lr=3e-3, seed=1))
    _assert_same_weights(first_weights, alone_a.model.state_dict())
    assert _comparable(first_report) == _comparable(report_a)
    np.testing.assert_array_equal(first_predictions, predict_pairs(alone_a, data.split("test")))
    assert first_report.steps == a

    alone_b, report_b = _fit(data, Budget(epochs=None, steps=b, batch_size=8, lr=3e-3, seed=1))
    _assert_same_weights(joint.model.state_dict(), alone_b.model.state_dict())
    assert _comparable(joint_report) == _comparable(report_b)
    np.testing.assert_array_equal(predict_pairs(joint, data.split("test")), predict_pairs(alone_b, data.split("test")))
    # the validation at a mid-epoch milestone is not an epoch-end point of the longer run
    assert len(report_b.val_mse) == -(-b // 6)


def test_epoch_milestones_are_epoch_ends(data) -> None:
    budget = Budget(epochs=3, batch_size=8, milestones=(1, 3))
    assert budget.milestone_steps(48) == (6, 18)
    assert budget.milestone_steps(50) == (7, 21)
    assert budget.at_milestone(1) == Budget(epochs=1, batch_size=8)


def test_resume_after_the_first_milestone_is_bit_identical(data, tmp_path: Path) -> None:
    """Run only [a] (checkpoint at a), then resume with [a, b]: same weights, report and
    predictions as the uninterrupted [a, b] run."""
    full = Budget(epochs=None, steps=15, batch_size=8, lr=3e-3, seed=2, milestones=(4, 15))
    uninterrupted, report = _fit_with_recorder(data, full, _Recorder([], data))

    short = _Recorder([], data, tmp_path / "short")
    _fit_with_recorder(data, Budget(epochs=None, steps=4, batch_size=8, lr=3e-3, seed=2), short)
    state = load_checkpoint(short.checkpoints[0], identity="toy")
    assert state["report"]["steps"] == 4 and state["position"] == 32  # 4 batches of 8 into the first epoch
    assert state["milestones"] == [4]
    resumed, resumed_report = _fit_with_recorder(data, full, _Recorder([], data), resume=state)

    _assert_same_weights(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert _comparable(resumed_report) == _comparable(report)
    np.testing.assert_array_equal(predict_pairs(resumed, data.split("test")), predict_pairs(uninterrupted, data.split("test")))


def test_resume_after_an_interruption_is_bit_identical(data, tmp_path: Path) -> None:
    """A run of milestones [3, 9, 15] killed after checkpointing 9 (an exception), resumed
    from that checkpoint: bit-identical to the uninterrupted run."""
    budget = Budget(epochs=None, steps=15, batch_size=8, lr=3e-3, seed=4, milestones=(3, 9, 15))
    uninterrupted, report = _fit_with_recorder(data, budget, _Recorder([], data))

    class Interrupted(RuntimeError):
        pass

    recorder = _Recorder([], data, tmp_path)

    def checkpoint_then_die(index: int, state: dict[str, Any]) -> None:
        recorder.checkpoint(index, state)
        if index == 1:
            raise Interrupted

    model = _model(data)
    recorder.model_box[:] = [model]
    with pytest.raises(Interrupted), milestone_hooks(MilestoneHooks(evaluate=recorder.evaluate, checkpoint=checkpoint_then_die)):
        model.fit(data.split("train"), data.split("val"), budget)
    state = load_checkpoint(recorder.checkpoints[1])
    resumed, resumed_report = _fit_with_recorder(data, budget, _Recorder([], data), resume=state)
    _assert_same_weights(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert _comparable(resumed_report) == _comparable(report)


def test_corrupt_or_foreign_checkpoint_names_the_file(data, tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", {"report": {"steps": 1}}, identity="run-a")
    assert load_checkpoint(good, identity="run-a") == {"report": {"steps": 1}}
    with pytest.raises(CheckpointError, match="good.pt belongs to another run"):
        load_checkpoint(good, identity="run-b")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"truncated\.pt is corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt is corrupt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_budget_milestones_are_checked_and_keep_old_keys() -> None:
    plain = Budget(epochs=None, steps=400, batch_size=256)
    assert "milestones" not in plain.as_dict()  # records without milestones keep their keys
    staged = Budget(epochs=None, steps=2000, batch_size=256, milestones=[400, 2000])
    assert staged.milestones == (400, 2000)
    assert staged.at_milestone(400) == plain
    assert staged.as_dict()["milestones"] == [400, 2000]
    assert staged.cost(49_500) == {
        "unit": "pairs seen (optimiser steps x batch size)", "steps": 2000, "batch_size": 256, "pairs_seen": 512_000,
    }
    with pytest.raises(ValueError, match="strictly increasing"):
        Budget(epochs=None, steps=10, milestones=(5, 5, 10))
    with pytest.raises(ValueError, match="must equal the budget's steps"):
        Budget(epochs=None, steps=10, milestones=(5, 8))
    with pytest.raises(ValueError, match="positive integers"):
        Budget(epochs=None, steps=10, milestones=(0, 10))
    with pytest.raises(ValueError, match="not a milestone"):
        staged.at_milestone(1000)


def test_suite_milestones_and_a_methods_own_budget() -> None:
    from wbench.errors import SuiteError
    from wbench.run.suite import budget_for, load_suite, parse_suite

    text = """
[budget]
steps = [400, 2000]
batch_size = 256
[[datasets]]
name = "digits"
[[surrogates]]
name = "naive"
[[surrogates]]
name = "dwe"
budget = { steps = [400] }
[[surrogates]]
name = "deepkenn"
budget = { epochs = [1, 3] }
"""
    suite = parse_suite(text, source="s.toml")
    assert suite.budget.milestones == (400, 2000) and suite.budget.steps == 2000
    naive, dwe, deepkenn = (budget_for(suite, spec) for spec in suite.surrogates)
    assert naive is suite.budget
    assert dwe.milestones == (400,) and dwe.steps == 400 and dwe.batch_size == 256
    assert deepkenn.steps is None and deepkenn.epochs == 3 and deepkenn.milestone_steps(512) == (2, 6)
    with pytest.raises(SuiteError, match=r"surrogate naive: budget: budget milestones must be strictly increasing"):
        parse_suite(text.replace('name = "naive"', 'name = "naive"\nbudget = { steps = [5, 5] }'), source="s.toml")
    with pytest.raises(SuiteError, match=r"budget.*'batch_size'"):  # steps, epochs and lr only
        parse_suite(text.replace("{ steps = [400] }", "{ batch_size = 8 }"), source="s.toml")
    with pytest.raises(SuiteError, match="not both"):
        parse_suite("[budget]\nsteps = [1, 2]\nepochs = [1, 2]\n", source="s.toml")
    mnist = load_suite("mnist")
    assert mnist.budget.milestones == (400, 2000, 10000, 20000) and mnist.budget.param_count == "inference"
    paper_dwe = next(spec for spec in mnist.surrogates if spec.label == "dwe (paper size)")
    assert budget_for(mnist, paper_dwe).milestones == (400, 2000)


def test_progress_saved_between_milestones_resumes_bit_for_bit(data, tmp_path: Path) -> None:
    """A long run hands its state over between milestones (every ``progress_every_s`` of
    training; here every step); a run resumed from the state at step 10 of milestones (4, 15)
    is bit-identical to the uninterrupted one."""
    budget = Budget(epochs=None, steps=15, batch_size=8, lr=3e-3, seed=5, milestones=(4, 15))
    uninterrupted, report = _fit_with_recorder(data, budget, _Recorder([], data))
    saved: dict[int, Path] = {}
    recorder = _Recorder([], data)
    model = _model(data)
    recorder.model_box[:] = [model]
    hooks = MilestoneHooks(
        evaluate=recorder.evaluate, progress_every_s=0.0,
        save_progress=lambda step, state: saved.setdefault(step, save_checkpoint(tmp_path / f"p{step}.pt", state, identity="toy")),
    )
    with milestone_hooks(hooks):
        model.fit(data.split("train"), data.split("val"), budget)
    assert sorted(saved) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # not at the milestones 4 and 15
    state = load_checkpoint(saved[10], identity="toy")
    assert state["report"]["steps"] == 10
    resumed, resumed_report = _fit_with_recorder(data, budget, _Recorder([], data), resume=state)
    _assert_same_weights(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert _comparable(resumed_report) == _comparable(report)
    np.testing.assert_array_equal(predict_pairs(resumed, data.split("test")), predict_pairs(uninterrupted, data.split("test")))


def test_a_cells_progress_checkpoints_keep_the_latest_and_go_at_a_milestone(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from wbench.run.cell_milestones import cell_training_hooks

    ident = {"method": "m", "dataset_label": "d", "budget": {"steps": 20, "milestones": [10, 20]}}
    task = SimpleNamespace(todo=[(0, None, ident)], checkpoint_dir=str(tmp_path), resume=False,
                           surrogate=SimpleNamespace(label="", name="m"), seed=0)
    budget = Budget(epochs=None, steps=20, batch_size=8, milestones=(10, 20))
    hooks = cell_training_hooks(task, budget, 48, lambda index, report: None)
    assert hooks.save_progress is not None and hooks.checkpoint is not None and hooks.progress_every_s == 600.0
    state = {"report": {"steps": 3}}
    hooks.save_progress(3, state)
    hooks.save_progress(7, {"report": {"steps": 7}})
    assert [p.name.rsplit("-", 1)[1] for p in sorted(tmp_path.iterdir())] == ["step000000007.pt"]
    resumed = cell_training_hooks(SimpleNamespace(**{**vars(task), "resume": True}), budget, 48, lambda i, r: None)
    assert resumed.resume is not None and resumed.resume["report"]["steps"] == 7  # the latest state before milestone 10
    resumed.checkpoint(0, {"report": {"steps": 10}})
    assert [p.name.rsplit("-", 1)[1] for p in sorted(tmp_path.iterdir())] == ["step000000010.pt"]


# ------------------------------------------------ validations every few epochs (val_every_steps)
def _cadence(**kw: Any) -> Budget:
    """40 steps of 8 on the 48 training pairs (6 steps an epoch), a validation every 2 epochs."""
    return Budget(epochs=None, **{"steps": 40, "batch_size": 8, "lr": 3e-3, "seed": 6, "val_every_steps": 10, **kw})


def test_val_every_steps_validates_every_few_epochs_and_keeps_the_best(data) -> None:
    from wbench.train.loop import validation_mse

    assert _cadence().epochs_per_validation(48) == 2 and _cadence().epochs_per_validation(500) == 1
    model, report = _fit(data, _cadence())
    # epochs 2, 4 and 6 end at steps 12, 24, 36; the final step (40) is in the 7th epoch
    assert report.val_epochs == [2, 4, 6, 7] and report.epochs == 7 and report.steps == 40
    assert len(report.val_mse) == len(report.train_loss) == 4
    assert report.best_epoch == int(np.argmin(report.val_mse))
    assert validation_mse(model, data.split("val")) == pytest.approx(report.val_mse[report.best_epoch], rel=1e-6)
    assert report.as_dict()["val_epochs"] == [2, 4, 6, 7]

    _, every_epoch = _fit(data, _cadence(val_every_steps=None))
    assert len(every_epoch.val_mse) == 7 and "val_epochs" not in every_epoch.as_dict()


@pytest.mark.parametrize("first", [16, 18, 24])  # mid-epoch, an epoch end between validations, a validation point
def test_milestones_with_val_every_steps_equal_separate_runs(data, first: int) -> None:
    recorder = _Recorder([], data)
    joint, joint_report = _fit_with_recorder(data, _cadence(milestones=(first, 40)), recorder)
    first_report, first_weights, _ = recorder.seen[0]
    alone, alone_report = _fit(data, _cadence(steps=first))
    _assert_same_weights(first_weights, alone.model.state_dict())
    assert _comparable(first_report) == _comparable(alone_report)
    full, full_report = _fit(data, _cadence())
    _assert_same_weights(joint.model.state_dict(), full.model.state_dict())
    assert _comparable(joint_report) == _comparable(full_report)


def test_resume_between_validations_is_bit_identical(data, tmp_path: Path) -> None:
    """Resumed at step 20 (3 epochs ended, the last validation after epoch 2): the run
    validates after epoch 4 as the uninterrupted one does."""
    uninterrupted, report = _fit(data, _cadence())
    saved: dict[int, Path] = {}
    hooks = MilestoneHooks(
        progress_every_s=0.0,
        save_progress=lambda step, state: saved.setdefault(step, save_checkpoint(tmp_path / f"p{step}.pt", state, identity="toy")),
    )
    _fit(data, _cadence(), hooks)
    state = load_checkpoint(saved[20], identity="toy")
    assert state["epochs_since_validation"] == 1
    resumed, resumed_report = _fit_with_recorder(data, _cadence(), _Recorder([], data), resume=state)
    _assert_same_weights(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert _comparable(resumed_report) == _comparable(report)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_a_bad_val_every_steps_is_refused_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match="val_every_steps"):
        Budget(steps=10, val_every_steps=bad)
    assert "val_every_steps" not in Budget(steps=10).as_dict()  # earlier budgets keep their cell keys
