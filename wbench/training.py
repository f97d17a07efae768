"""The shared training loop (Adam on mini-batches of pairs, best-validation checkpoint), what a
fit reports, and a surrogate's batched predictions on pairs.

This module knows surrogates only by their methods (``distance``, ``model``,
``training_loss``): :mod:`wbench.surrogate` imports it, never the other way round.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wbench.budget import Budget
from wbench.checkpoint import MilestoneHooks, active_hooks, global_rng_state, set_global_rng_state
from wbench.data import LabelledPairs
from wbench.progress import progress
from wbench.validate import allows_missing, check_predictions

if TYPE_CHECKING:
    from wbench.surrogate import Surrogate, TorchSurrogate


@dataclass
class FitReport:
    """What a fit did.

    :param train_loss: per-epoch mean training loss (the method's own objective).
    :param val_mse: per-epoch validation MSE on W2 (ground-cost units squared).
    :param best_epoch: epoch (0-based) whose weights were kept, or -1.
    :param steps: optimiser steps taken.
    :param epochs: epochs started.
    :param wall_time_s: seconds of training wall time.
    :param stopped_by: ``"budget"``, ``"time_limit"`` or ``"nothing to fit"``.
    :param extra: method-specific readouts (learned weights ...), JSON-ready.
    """

    train_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0
    epochs: int = 0
    wall_time_s: float = 0.0
    stopped_by: str = "budget"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_loss": self.train_loss,
            "val_mse": self.val_mse,
            "best_epoch": self.best_epoch,
            "steps": self.steps,
            "epochs": self.epochs,
            "wall_time_s": self.wall_time_s,
            "stopped_by": self.stopped_by,
            "extra": self.extra,
        }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible cell."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_pairs(
    surrogate: Surrogate, pairs: LabelledPairs, *, batch_size: int = 2048, method: str | None = None,
    call: str = "distance",
) -> np.ndarray:
    """W2 predictions ``(P,)`` (float64, ground-cost units) of ``surrogate`` on every pair.

    The one batched prediction loop of wbench (the metric helper
    :func:`wbench.evaluation.surrogate_distances` calls it): ``batch_size`` pairs per
    ``surrogate.distance`` call, each batch moved to ``surrogate.device`` when it has one,
    in inference mode. Every batch is checked by :func:`wbench.validate.check_predictions`:
    shape exactly ``(B,)``, finite, non-negative; a solver's NaN (a pair it failed on) is kept.

    :param method: the method's name in error messages (default: the class name).
    :param call: what the predictions are for, in error messages (``distance``,
        ``training (validation)``, ``transfer to X`` ...).
    :raises wbench.validate.InvalidPredictionError: naming the method, the call and the
        first bad pair (index within ``pairs``) and its value.
    """
    name = method or type(surrogate).__name__
    missing_ok = allows_missing(surrogate)
    device = getattr(surrogate, "device", None)
    out = []
    for start in range(0, len(pairs), batch_size):
        a, b, _ = pairs.batch(slice(start, start + batch_size))
        if device is not None:
            a, b = a.to(device), b.to(device)
        distances = surrogate.distance(a, b)
        out.append(
            check_predictions(distances, n=len(a), method=name, call=call, allow_missing=missing_ok, offset=start)
        )
    return np.concatenate(out) if out else np.zeros(0)


def validation_mse(surrogate: Surrogate, val: LabelledPairs) -> float:
    """MSE between predicted and exact W2 on ``val`` (ground-cost units squared)."""
    if len(val) == 0:
        return math.nan
    predicted = predict_pairs(surrogate, val, call="training (validation)")
    return float(np.mean((predicted - val.pairs.w2) ** 2))


def train_on_pairs(surrogate: TorchSurrogate, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
    """Train ``surrogate.model`` with Adam on ``surrogate.training_loss`` within ``budget``.

    The batch order is seeded by ``budget.seed``. Validation points: every epoch end and
    the run's final step. The weights of the best validation (the earliest on ties) are
    restored at the end.

    Milestones (``budget.milestones``, as steps :meth:`Budget.milestone_steps`): at a
    milestone ``m`` the selection set is {epoch-end validations at steps <= m} and the
    validation at ``m``, exactly what a run whose budget stops at ``m`` selects; the running
    best that later milestones see holds epoch-end validations only (``m`` counts as one
    when it ends an epoch). With :func:`wbench.checkpoint.milestone_hooks` set, each
    milestone but the last is evaluated there (``hooks.evaluate``) and every milestone is
    checkpointed (``hooks.checkpoint``); ``hooks.resume`` continues a checkpointed run bit
    for bit (same machine and threads).

    :returns: a :class:`FitReport` with per-epoch training loss and validation MSE (the
        last entries those of the final, possibly partial, epoch).
    """
    if train.pairs.w2sq is None or val.pairs.w2sq is None:
        raise ValueError("training needs pairs with exact W2^2 (run the oracle first)")
    if len(train) == 0:
        raise ValueError("no training pairs")
    return _TrainingRun(surrogate, train, val, budget, active_hooks()).run()


class _TrainingRun:
    """The state of one training loop: what a checkpoint saves and a resume restores."""

    def __init__(self, surrogate: TorchSurrogate, train: LabelledPairs, val: LabelledPairs, budget: Budget,
                 hooks: MilestoneHooks | None) -> None:
        self.surrogate, self.budget, self.hooks = surrogate, budget, hooks
        self.device = torch.device(budget.device)
        surrogate.to(self.device)
        self.model = surrogate.model
        self.n_train = len(train)
        self.train = LabelledPairs(train.measures.to(self.device), train.pairs)
        self.val = LabelledPairs(val.measures.to(self.device), val.pairs)
        self.targets = torch.as_tensor(train.pairs.w2sq, dtype=torch.float32, device=self.device)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=budget.lr)
        self.generator = torch.Generator().manual_seed(budget.seed)
        self.milestones = budget.milestone_steps(self.n_train)
        self.report = FitReport()
        self.best_mse, self.best_state = math.inf, None
        self.order: np.ndarray | None = None  # the current epoch's batch order (None: between epochs)
        self.position = 0
        self.epoch_losses: list[float] = []
        self.final: tuple[FitReport, dict[str, Any]] | None = None
        if hooks is not None and hooks.resume is not None:
            self._restore(hooks.resume)

    # ------------------------------------------------------------------ loop
    def run(self) -> FitReport:
        budget, report = self.budget, self.report
        total_steps = self.milestones[-1]
        self.started = time.perf_counter() - report.wall_time_s
        bar = progress(total=total_steps, initial=report.steps, desc=f"train {type(self.surrogate).__name__}", unit="step")
        try:
            while self.final is None and report.steps < total_steps and report.stopped_by != "time_limit":
                if self.order is None:
                    self.order = torch.randperm(self.n_train, generator=self.generator).numpy()
                    self.position, self.epoch_losses = 0, []
                self.model.train()
                idx = self.order[self.position : self.position + budget.batch_size]
                self.position += len(idx)
                self._step(idx)
                bar.update(1)
                report.wall_time_s = time.perf_counter() - self.started
                if budget.time_limit_s is not None and report.wall_time_s > budget.time_limit_s:
                    report.stopped_by = "time_limit"
                if report.steps in self.milestones:
                    self._milestone(self.milestones.index(report.steps))
                elif self.position >= len(self.order):
                    self._end_epoch()
                if report.val_mse:
                    bar.set_postfix(val_mse=f"{report.val_mse[-1]:.4g}")
            if self.final is None:  # stopped by the time limit between milestones (or resumed past the end)
                if self.order is not None:
                    self._end_epoch()
                report.wall_time_s = time.perf_counter() - self.started
                self.final = (copy.deepcopy(report), self.best_state)
        finally:
            bar.close()
        final_report, state = self.final
        if state is not None:
            self.model.load_state_dict(state)
        self.model.eval()
        return final_report

    def _step(self, idx: np.ndarray) -> None:
        a, b, _ = self.train.batch(idx)
        loss = self.surrogate.training_loss(a, b, self.targets[torch.from_numpy(idx).to(self.device)])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {self.report.steps}")
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.epoch_losses.append(float(loss.detach()))
        self.report.steps += 1

    def _validate(self) -> float:
        self.model.eval()
        rng = global_rng_state()  # a validation never moves the training's random streams
        try:
            return validation_mse(self.surrogate, self.val)
        finally:
            set_global_rng_state(rng)
            self.model.train()

    def _end_epoch(self) -> None:
        """An epoch-end validation point: it joins the running best."""
        report = self.report
        report.epochs += 1
        report.train_loss.append(float(np.mean(self.epoch_losses)) if self.epoch_losses else math.nan)
        mse = self._validate()
        report.val_mse.append(mse)
        if mse < self.best_mse or self.best_state is None:
            self.best_mse, report.best_epoch = mse, report.epochs - 1
            self.best_state = copy.deepcopy(self.model.state_dict())
        self.order = None

    def _milestone(self, index: int) -> None:
        """Select the milestone's weights, evaluate (all but the last), checkpoint."""
        last = index == len(self.milestones) - 1 or self.report.stopped_by == "time_limit"
        if self.position >= len(self.order):  # the milestone ends an epoch: an ordinary validation point
            self._end_epoch()
            chosen, chosen_state = copy.deepcopy(self.report), self.best_state
        else:  # mid-epoch: the validation at m counts for this milestone only
            chosen = copy.deepcopy(self.report)
            chosen.epochs += 1
            chosen.train_loss.append(float(np.mean(self.epoch_losses)))
            mse = self._validate()
            chosen.val_mse.append(mse)
            chosen_state = self.best_state
            if mse < self.best_mse or self.best_state is None:
                chosen.best_epoch = chosen.epochs - 1
                chosen_state = copy.deepcopy(self.model.state_dict())
        hooks = self.hooks
        chosen.wall_time_s = self.report.wall_time_s = time.perf_counter() - self.started
        paused = time.perf_counter()  # evaluating and checkpointing are not training time
        if last:
            self.final = (chosen, chosen_state)
        elif hooks is not None and hooks.evaluate is not None:
            self._evaluate_with(index, chosen, chosen_state)
        if hooks is not None and hooks.checkpoint is not None:
            hooks.checkpoint(index, self._state())
        self.started += time.perf_counter() - paused

    def _evaluate_with(self, index: int, chosen: FitReport, state: dict[str, Any] | None) -> None:
        """Run ``hooks.evaluate`` on the milestone's weights, then put the training state back."""
        assert self.hooks is not None and self.hooks.evaluate is not None
        current = copy.deepcopy(self.model.state_dict())
        rng = global_rng_state()
        try:
            if state is not None:
                self.model.load_state_dict(state)
            self.model.eval()
            self.hooks.evaluate(index, chosen)
        finally:
            self.model.load_state_dict(current)
            set_global_rng_state(rng)
            self.surrogate.to(self.device)
            self.model.train()

    # ------------------------------------------------------------ checkpoint
    def _state(self) -> dict[str, Any]:
        """What a continuing run needs (see :mod:`wbench.checkpoint`)."""
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimiser": self.optimiser.state_dict(),
            "generator": self.generator.get_state(),
            "rng": global_rng_state(),
            "order": None if self.order is None else torch.from_numpy(self.order.copy()),
            "position": self.position,
            "epoch_losses": list(self.epoch_losses),
            "best_mse": self.best_mse,
            "best_state": None if self.best_state is None else {k: v.detach().cpu().clone() for k, v in self.best_state.items()},
            "report": self.report.as_dict(),
            "milestones": list(self.milestones),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        steps = int(state["report"]["steps"])
        if steps > self.milestones[-1]:
            raise ValueError(f"cannot resume at step {steps}: the budget ends at step {self.milestones[-1]}")
        self.model.load_state_dict(state["model"])
        self.surrogate.to(self.device)
        self.optimiser.load_state_dict(state["optimiser"])
        self.generator.set_state(state["generator"])
        set_global_rng_state(state["rng"])
        self.order = None if state["order"] is None else state["order"].numpy().copy()
        self.position = int(state["position"])
        self.epoch_losses = list(state["epoch_losses"])
        self.best_mse = float(state["best_mse"])
        best = state["best_state"]
        self.best_state = None if best is None else {k: v.to(self.device) for k, v in best.items()}
        self.report = FitReport(**state["report"])
