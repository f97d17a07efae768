"""The framework-free part of a training loop with budget milestones: batch order, epochs,
validation points, the best-validation selection at each milestone, the milestone hooks,
checkpoint and resume.

:class:`MilestoneLoop` owns the rule that makes a milestone's numbers those of a run whose
budget stops there: at a milestone ``m`` the selection set is the validation points up to
``m`` and the validation at ``m``; the running best that later milestones see holds the
validation points only (``m`` counts as one when it is one). Validation points are epoch
ends, or with ``budget.val_every_steps`` every few epoch ends. Batches are drawn
in a fresh ``torch.randperm`` order per epoch from a generator seeded by ``budget.seed``.

A subclass supplies the framework: one optimiser step, a validation, a copy of the current
weights, an evaluation with given weights, and its part of a checkpoint. The shared torch
loop (:mod:`wbench.train.loop`) and Wormhole's JAX loop
(:mod:`wbench_plugins.wormhole.exact_run`) are the two built on it; a plugin with its own
loop can be a third.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch

from wbench.budget import Budget
from wbench.train.checkpoint import MilestoneHooks
from wbench.train.report import FitReport
from wbench.util.progress import progress


class MilestoneLoop:
    """One training run over ``n_train`` pairs within ``budget``, with ``hooks`` (or None).

    :meth:`run` returns the final fit report and the selected weights (those of the best
    validation), as :meth:`snapshot` copied them.
    """

    def __init__(self, n_train: int, budget: Budget, hooks: MilestoneHooks | None, *, name: str,
                 report: FitReport | None = None) -> None:
        """
        :param name: the method, in the progress bar.
        :param report: the report to start from (e.g. with setup seconds already counted).
        """
        self.n_train, self.budget, self.hooks, self.name = n_train, budget, hooks, name
        self.generator = torch.Generator().manual_seed(budget.seed)
        self.milestones = budget.milestone_steps(n_train)
        self.report = report if report is not None else FitReport()
        self.best_mse = math.inf
        self.best_weights: Any = None
        self.order: np.ndarray | None = None  # the current epoch's batch order (None: between epochs)
        self.position = 0
        self.epoch_losses: list[float] = []  # the training losses since the last validation
        self.epochs_per_validation = budget.epochs_per_validation(n_train)
        self.epochs_since_validation = 0
        self.final: tuple[FitReport, Any] | None = None
        self.started = self.saved_at = 0.0  # perf_counter() seconds, set when run() starts

    # ------------------------------------------------------- the framework
    def train_step(self, idx: np.ndarray) -> float:
        """One optimiser step on the training pairs ``idx``; returns its loss.

        :raises FloatingPointError: the loss is not finite (:func:`check_finite`).
        """
        raise NotImplementedError

    def validate(self) -> float:
        """Validation MSE of the current weights (W2, ground-cost units squared); training
        state (mode, random streams) unchanged."""
        raise NotImplementedError

    def snapshot(self) -> Any:
        """A copy of the current weights, as :meth:`evaluate_with` and :meth:`run` take them."""
        raise NotImplementedError

    def evaluate_with(self, index: int, report: FitReport, weights: Any) -> None:
        """Call ``hooks.evaluate(index, report)`` with ``weights`` in the model, then put the
        training weights (and mode, random streams) back."""
        raise NotImplementedError

    def framework_state(self) -> dict[str, Any]:
        """The framework's part of a checkpoint (weights, optimiser, random streams, the best
        weights): tensors, numbers, strings, lists and dicts only."""
        raise NotImplementedError

    def restore_framework(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`framework_state` saved (also ``self.best_weights``)."""
        raise NotImplementedError

    # ------------------------------------------------------------ the loop
    def run(self) -> tuple[FitReport, Any]:
        """Train to the last milestone (or the time limit); resume first when the hooks say so."""
        if self.hooks is not None and self.hooks.resume is not None:
            self._restore(self.hooks.resume)
        budget, report = self.budget, self.report
        total_steps = self.milestones[-1]
        self.started = time.perf_counter() - report.wall_time_s
        bar = progress(total=total_steps, initial=report.steps, desc=f"train {self.name}", unit="step")
        self.saved_at = time.perf_counter()
        try:
            while self.final is None and report.steps < total_steps and report.stopped_by != "time_limit":
                if self.order is None:
                    self.order = torch.randperm(self.n_train, generator=self.generator).numpy()
                    self.position = 0
                idx = self.order[self.position : self.position + budget.batch_size]
                self.position += len(idx)
                self.epoch_losses.append(self.train_step(idx))
                report.steps += 1
                bar.update(1)
                report.wall_time_s = time.perf_counter() - self.started
                if budget.time_limit_s is not None and report.wall_time_s > budget.time_limit_s:
                    report.stopped_by = "time_limit"
                if report.steps in self.milestones:
                    self._milestone(self.milestones.index(report.steps))
                    self.saved_at = time.perf_counter()
                else:
                    if self.position >= len(self.order):
                        self._end_epoch()
                    self._save_progress_when_due()
                if report.val_mse:
                    bar.set_postfix(val_mse=f"{report.val_mse[-1]:.4g}")
            if self.final is None:  # stopped by the time limit between milestones (or resumed past the end)
                if self.order is not None:
                    self._end_epoch(validate=True)
                elif self.epochs_since_validation:
                    self._validation_point()
                report.wall_time_s = time.perf_counter() - self.started
                self.final = (copy.deepcopy(report), self.best_weights)
        finally:
            bar.close()
        return self.final

    def _end_epoch(self, *, validate: bool = False) -> None:
        """The end of an epoch; a validation point when one is due (or ``validate``)."""
        self.report.epochs += 1
        self.order = None
        self.epochs_since_validation += 1
        if validate or self.epochs_since_validation >= self.epochs_per_validation:
            self._validation_point()

    def _validation_point(self) -> None:
        """A validation that joins the running best."""
        report = self.report
        report.train_loss.append(float(np.mean(self.epoch_losses)) if self.epoch_losses else math.nan)
        mse = self.validate()
        report.val_mse.append(mse)
        if self.epochs_per_validation > 1:
            report.val_epochs.append(report.epochs)
        if mse < self.best_mse or self.best_weights is None:
            self.best_mse, report.best_epoch = mse, len(report.val_mse) - 1
            self.best_weights = self.snapshot()
        self.epoch_losses, self.epochs_since_validation = [], 0

    def _milestone(self, index: int) -> None:
        """Select the milestone's weights, evaluate (all but the last), checkpoint."""
        assert self.order is not None
        last = index == len(self.milestones) - 1 or self.report.stopped_by == "time_limit"
        validated = False
        if self.position >= len(self.order):  # the milestone ends an epoch: an ordinary validation point when due
            self._end_epoch()
            validated = self.epochs_since_validation == 0
        if validated:
            chosen, chosen_weights = copy.deepcopy(self.report), self.best_weights
        else:  # between validation points: the validation at m counts for this milestone only
            chosen = copy.deepcopy(self.report)
            if self.order is not None:  # an epoch started and not ended
                chosen.epochs += 1
            chosen.train_loss.append(float(np.mean(self.epoch_losses)))
            mse = self.validate()
            chosen.val_mse.append(mse)
            if self.epochs_per_validation > 1:
                chosen.val_epochs.append(chosen.epochs)
            chosen_weights = self.best_weights
            if mse < self.best_mse or self.best_weights is None:
                chosen.best_epoch = len(chosen.val_mse) - 1
                chosen_weights = self.snapshot()
        hooks = self.hooks
        chosen.wall_time_s = self.report.wall_time_s = time.perf_counter() - self.started
        paused = time.perf_counter()  # evaluating and checkpointing are not training time
        if last:
            self.final = (chosen, chosen_weights)
        elif hooks is not None and hooks.evaluate is not None:
            self.evaluate_with(index, chosen, chosen_weights)
        if hooks is not None and hooks.checkpoint is not None:
            hooks.checkpoint(index, self.checkpoint_state())
        self.started += time.perf_counter() - paused

    def _save_progress_when_due(self) -> None:
        """Hand the state to ``hooks.save_progress`` when ``progress_every_s`` have passed."""
        hooks = self.hooks
        if hooks is None or hooks.save_progress is None or self.report.stopped_by == "time_limit":
            return
        now = time.perf_counter()
        if now - self.saved_at < hooks.progress_every_s:
            return
        hooks.save_progress(self.report.steps, self.checkpoint_state())
        self.saved_at = time.perf_counter()
        self.started += self.saved_at - now  # saving is not training time

    # ---------------------------------------------------------- checkpoint
    def checkpoint_state(self) -> dict[str, Any]:
        """What a continuing run needs: the framework's part and the loop's."""
        return {
            **self.framework_state(),
            "generator": self.generator.get_state(),
            "order": None if self.order is None else torch.from_numpy(self.order.copy()),
            "position": self.position,
            "epoch_losses": list(self.epoch_losses),
            "epochs_since_validation": self.epochs_since_validation,
            "best_mse": self.best_mse,
            "report": self.report.as_dict(),
            "milestones": list(self.milestones),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        steps = int(state["report"]["steps"])
        if steps > self.milestones[-1]:
            raise ValueError(f"cannot resume at step {steps}: the budget ends at step {self.milestones[-1]}")
        self.restore_framework(state)
        self.generator.set_state(state["generator"])
        self.order = None if state["order"] is None else state["order"].numpy().copy()
        self.position = int(state["position"])
        self.epoch_losses = list(state["epoch_losses"])
        self.epochs_since_validation = int(state.get("epochs_since_validation", 0))
        self.best_mse = float(state["best_mse"])
        self.report = FitReport(**state["report"])


def check_finite(loss: float, step: int) -> float:
    """``loss`` when finite.

    :raises FloatingPointError: naming the step (0-based) at which it became NaN or infinite.
    """
    if not math.isfinite(loss):
        raise FloatingPointError(f"training loss became {loss} at step {step}")
    return loss
