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

    The batch order is seeded by ``budget.seed``; after every epoch the validation MSE on
    W2 is measured and the weights of the best epoch are restored at the end.

    :returns: a :class:`FitReport` with per-epoch training loss and validation MSE.
    """
    if train.pairs.w2sq is None or val.pairs.w2sq is None:
        raise ValueError("training needs pairs with exact W2^2 (run the oracle first)")
    if len(train) == 0:
        raise ValueError("no training pairs")
    device = torch.device(budget.device)
    surrogate.to(device)
    model = surrogate.model
    train_on_device = LabelledPairs(train.measures.to(device), train.pairs)
    val_on_device = LabelledPairs(val.measures.to(device), val.pairs)
    targets = torch.as_tensor(train.pairs.w2sq, dtype=torch.float32, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=budget.lr)
    generator = torch.Generator().manual_seed(budget.seed)
    total_steps = budget.total_steps(len(train))
    report = FitReport()
    best_mse, best_state = math.inf, None
    started = time.perf_counter()
    bar = progress(total=total_steps, desc=f"train {type(surrogate).__name__}", unit="step")
    try:
        while report.steps < total_steps:
            order = torch.randperm(len(train), generator=generator).numpy()
            model.train()
            losses: list[float] = []
            for start in range(0, len(order), budget.batch_size):
                if report.steps >= total_steps:
                    break
                idx = order[start : start + budget.batch_size]
                a, b, _ = train_on_device.batch(idx)
                loss = surrogate.training_loss(a, b, targets[torch.from_numpy(idx).to(device)])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {float(loss)} at step {report.steps}")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
                report.steps += 1
                bar.update(1)
                if budget.time_limit_s is not None and time.perf_counter() - started > budget.time_limit_s:
                    report.stopped_by = "time_limit"
                    break
            report.epochs += 1
            report.train_loss.append(float(np.mean(losses)) if losses else math.nan)
            model.eval()
            mse = validation_mse(surrogate, val_on_device)
            report.val_mse.append(mse)
            bar.set_postfix(val_mse=f"{mse:.4g}")
            if mse < best_mse or best_state is None:
                best_mse, report.best_epoch = mse, report.epochs - 1
                best_state = copy.deepcopy(model.state_dict())
            if report.stopped_by == "time_limit":
                break
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report.wall_time_s = time.perf_counter() - started
    return report
