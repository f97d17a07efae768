"""The shared training loop (Adam on mini-batches of pairs, best-validation checkpoint), what a
fit reports, and a surrogate's batched predictions on pairs.

This module knows surrogates only by their methods (``distance``, ``model``,
``training_loss``): :mod:`wbench.surrogate` imports it, never the other way round.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any, Protocol

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.train.checkpoint import (
    MilestoneHooks,
    active_hooks,
    global_rng_state,
    set_global_rng_state,
)
from wbench.train.frozen import eager_only
from wbench.train.milestones import MilestoneLoop, check_finite
from wbench.train.report import FitReport
from wbench.validate import allows_missing, check_predictions


class Predictor(Protocol):
    """What this module needs of a surrogate to predict: row-aligned distances of two
    measure batches, ``(B,)``, in the ground cost's units (a :class:`wbench.surrogate.Surrogate`)."""

    def distance(self, a: Any, b: Any) -> torch.Tensor: ...


Trainable = Any
"""A :class:`wbench.surrogate.TorchSurrogate` (its ``model``, ``training_loss``, ``distance``);
named here without importing it: the surrogate interface sits above the training stage."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible cell."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_pairs(
    surrogate: Predictor, pairs: LabelledPairs, *, batch_size: int = 2048, method: str | None = None,
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
    remote = getattr(type(surrogate), "predict_pairs_remotely", None)
    if remote is not None:  # a method in its own process (wbench.run.sandbox): the loop runs there
        return remote(surrogate, pairs, batch_size=batch_size, method=name, call=call)
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


def validation_mse(surrogate: Predictor, val: LabelledPairs) -> float:
    """MSE between predicted and exact W2 on ``val`` (ground-cost units squared)."""
    if len(val) == 0:
        return math.nan
    predicted = predict_pairs(surrogate, val, call="training (validation)")
    return float(np.mean((predicted - val.pairs.w2) ** 2))


def train_on_pairs(surrogate: Trainable, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
    """Train ``surrogate.model`` with Adam on ``surrogate.training_loss`` within ``budget``.

    The batch order is seeded by ``budget.seed``. Validation points: every epoch end (or
    every few, ``budget.val_every_steps``) and the run's final step. The weights of the best validation (the earliest on ties) are
    restored at the end.

    Milestones (``budget.milestones``, as steps :meth:`Budget.milestone_steps`): at a
    milestone ``m`` the selection set is {epoch-end validations at steps <= m} and the
    validation at ``m``, exactly what a run whose budget stops at ``m`` selects; the running
    best that later milestones see holds epoch-end validations only (``m`` counts as one
    when it ends an epoch). With :func:`wbench.train.checkpoint.milestone_hooks` set, each
    milestone but the last is evaluated there (``hooks.evaluate``) and every milestone is
    checkpointed (``hooks.checkpoint``); ``hooks.resume`` continues a checkpointed run bit
    for bit (same machine and threads).

    :returns: a :class:`FitReport` with the training loss and validation MSE per validation
        (the last entries those of the final, possibly partial, epoch).
    """
    if train.pairs.w2sq is None or val.pairs.w2sq is None:
        raise ValueError("training needs pairs with exact W2^2 (run the oracle first)")
    if len(train) == 0:
        raise ValueError("no training pairs")
    report, weights = _TorchRun(surrogate, train, val, budget, active_hooks()).run()
    if weights is not None:
        surrogate.model.load_state_dict(weights)
    surrogate.model.eval()
    return report


class _TorchRun(MilestoneLoop):
    """The shared loop's torch side: Adam on ``surrogate.training_loss``, state dicts as weights."""

    def __init__(self, surrogate: Trainable, train: LabelledPairs, val: LabelledPairs, budget: Budget,
                 hooks: MilestoneHooks | None) -> None:
        super().__init__(len(train), budget, hooks, name=type(surrogate).__name__)
        self.surrogate = surrogate
        self.device = torch.device(budget.device)
        surrogate.to(self.device)
        self.model = surrogate.model
        self.train = LabelledPairs(train.measures.to(self.device), train.pairs)
        self.val = LabelledPairs(val.measures.to(self.device), val.pairs)
        self.targets = torch.as_tensor(train.pairs.w2sq, dtype=torch.float32, device=self.device)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=budget.lr)

    def train_step(self, idx: np.ndarray) -> float:
        self.model.train()
        a, b, _ = self.train.batch(idx)
        loss = self.surrogate.training_loss(a, b, self.targets[torch.from_numpy(idx).to(self.device)])
        value = check_finite(float(loss.detach()), self.report.steps)  # before the step: the weights stay finite
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return value

    def validate(self) -> float:
        self.model.eval()
        rng = global_rng_state()  # a validation never moves the training's random streams
        try:
            # Eager: the weights change before every validation, and a frozen graph per
            # validation cost a trace (0.1-0.3 s) and ~10 MB that torch's tracer never frees.
            with eager_only():
                return validation_mse(self.surrogate, self.val)
        finally:
            set_global_rng_state(rng)
            self.model.train()

    def snapshot(self) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.model.state_dict())

    def evaluate_with(self, index: int, report: FitReport, weights: dict[str, Any] | None) -> None:
        assert self.hooks is not None and self.hooks.evaluate is not None
        current = copy.deepcopy(self.model.state_dict())
        rng = global_rng_state()
        try:
            if weights is not None:
                self.model.load_state_dict(weights)
            self.model.eval()
            self.hooks.evaluate(index, report)
        finally:
            self.model.load_state_dict(current)
            set_global_rng_state(rng)
            self.surrogate.to(self.device)
            self.model.train()

    def framework_state(self) -> dict[str, Any]:
        best = self.best_weights
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimiser": self.optimiser.state_dict(),
            "rng": global_rng_state(),
            "best_state": None if best is None else {k: v.detach().cpu().clone() for k, v in best.items()},
        }

    def restore_framework(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.surrogate.to(self.device)
        self.optimiser.load_state_dict(state["optimiser"])
        set_global_rng_state(state["rng"])
        best = state["best_state"]
        self.best_weights = None if best is None else {k: v.to(self.device) for k, v in best.items()}
