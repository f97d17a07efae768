"""A cell's training milestones: the fit report of each, and the checkpoints that a resumed
run continues from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wbench.budget import Budget
from wbench.errors import WbenchError
from wbench.records.store import canonical_json
from wbench.run.cell_task import CellTask
from wbench.train.checkpoint import MilestoneHooks, load_checkpoint, save_checkpoint
from wbench.util.filenames import safe_stem


def milestone_fit(fit_report: Any, budget: Budget, index: int, n_train: int) -> dict[str, Any]:
    """The fit report of one milestone as stored in its record (``fit``), with the
    milestone (``fit["milestone"]``: index, value, unit, all milestones) and the training
    cost of the milestone's budget (``fit["cost"]``: steps x batch size = pairs seen)."""
    fit = dict(fit_report.as_dict())
    if fit.get("stopped_by") == "nothing to fit":
        return fit
    milestones = budget.milestone_list
    fit["milestone"] = {
        "index": index, "value": milestones[index], "unit": budget.unit, "of": list(milestones),
        "throughput_timed": "at the last milestone only",
    }
    fit["cost"] = budget.at_milestone(milestones[index]).cost(n_train)
    return fit


class MilestoneSkippedError(WbenchError):
    """A fit trained past a milestone without evaluating it there (its own loop ignores the hooks)."""


def skipped_milestone(fit_report: Any, budget: Budget, index: int, n_train: int, method: str) -> MilestoneSkippedError | None:
    """Why milestone ``index`` cannot be evaluated after the fit, or None when it can.

    After ``fit`` returns, the model holds its final weights. They are the numbers of
    milestone ``index`` only when the run ended there: at the last milestone, or before it
    (a time limit). A fit that trained past an earlier milestone without calling
    ``hooks.evaluate`` there (a plugin with its own loop) would otherwise give that
    milestone the final model's numbers.
    """
    steps = budget.milestone_steps(n_train)
    trained = getattr(fit_report, "steps", None)
    if index == len(steps) - 1 or not isinstance(trained, int) or trained <= steps[index]:
        return None
    value = budget.milestone_list[index]
    return MilestoneSkippedError(
        f"milestone {value} {budget.unit} (step {steps[index]}) was not evaluated: {method}'s fit trained "
        f"{trained} steps without calling the milestone hooks there (wbench.train.checkpoint.active_hooks), so "
        f"only its last milestone has a model to evaluate. Give {method} a single budget "
        f"(budget = {{ {budget.unit} = {budget.milestone_list[-1]} }}) or train with the shared loop "
        "(wbench.train.loop.train_on_pairs) or on wbench.train.milestones.MilestoneLoop"
    )


def checkpoint_identity(ident: Mapping[str, Any]) -> str:
    """What a training run is, whatever its length: the cell identity without the
    evaluation setting and the budget's length (steps, epochs, milestones, time limit)."""
    budget = {k: v for k, v in ident["budget"].items() if k not in ("steps", "epochs", "milestones", "time_limit_s")}
    keep = {k: v for k, v in ident.items() if k not in ("eval_params", "budget", "dataset_label")}
    return canonical_json({**keep, "budget": budget})


def checkpoint_stem(task: CellTask, ident: Mapping[str, Any]) -> str:
    """File-name prefix of this cell's checkpoints: method, dataset, seed and a hash of
    :func:`checkpoint_identity`; each file adds ``-step<N>.pt``."""
    digest = hashlib.sha256(checkpoint_identity(ident).encode()).hexdigest()[:12]
    stem = f"{ident['dataset_label']}-{task.surrogate.label or task.surrogate.name}-seed{task.seed}-{digest}"
    return safe_stem(stem)


def cell_training_hooks(
    task: CellTask, budget: Budget, n_train: int, evaluate: Callable[[int, Any], None]
) -> MilestoneHooks:
    """The training hooks of a cell: evaluate at each milestone, checkpoint there and every
    ten minutes of training between milestones, and on resume the latest checkpoint before the
    first milestone still to evaluate."""
    if not task.todo or task.checkpoint_dir is None:
        return MilestoneHooks(evaluate=evaluate)
    ident = task.todo[0][2]
    identity = checkpoint_identity(ident)
    folder = Path(task.checkpoint_dir)
    stem = checkpoint_stem(task, ident)
    steps = budget.milestone_steps(n_train)

    progress_files: list[Path] = []

    def path_at(step: int) -> Path:
        return folder / f"{stem}-step{step:09d}.pt"

    def checkpoint(index: int, state: dict[str, Any]) -> None:
        save_checkpoint(path_at(steps[index]), state, identity=identity)
        while progress_files:  # superseded by the milestone's
            progress_files.pop().unlink(missing_ok=True)

    def save_progress(step: int, state: dict[str, Any]) -> None:
        """A checkpoint between milestones; the previous one of this run goes (a later state supersedes it)."""
        progress_files.append(save_checkpoint(path_at(step), state, identity=identity))
        while len(progress_files) > 1:
            progress_files.pop(0).unlink(missing_ok=True)

    resume = None
    if task.resume:
        first_missing = steps[min(m for m, _, _ in task.todo)]
        candidates = sorted(
            (int(p.stem.rsplit("-step", 1)[1]), p) for p in folder.glob(f"{stem}-step*.pt")
            if p.stem.rsplit("-step", 1)[1].isdigit()
        )
        usable = [(step, p) for step, p in candidates if step < first_missing]
        if usable:
            step, path = usable[-1]
            resume = load_checkpoint(path, identity=identity)
            if step not in steps:  # a progress checkpoint: the next one supersedes it
                progress_files.append(path)
    return MilestoneHooks(evaluate=evaluate, checkpoint=checkpoint, resume=resume, save_progress=save_progress)


