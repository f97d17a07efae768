"""The shared training loop: Adam on mini-batches of pairs, best-validation checkpoint."""

from __future__ import annotations

import copy
import math
import random
import time

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.progress import progress
from wbench.surrogate import FitReport, Surrogate, TorchSurrogate


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible cell."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_pairs(surrogate: Surrogate, pairs: LabelledPairs, *, batch_size: int = 2048) -> np.ndarray:
    """W2 predictions ``(P,)`` (float64, ground-cost units) of ``surrogate`` on every pair."""
    out = []
    for start in range(0, len(pairs), batch_size):
        a, b, _ = pairs.batch(slice(start, start + batch_size))
        out.append(surrogate.distance(a, b).detach().double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def validation_mse(surrogate: Surrogate, val: LabelledPairs) -> float:
    """MSE between predicted and exact W2 on ``val`` (ground-cost units squared)."""
    if len(val) == 0:
        return math.nan
    return float(np.mean((predict_pairs(surrogate, val) - val.pairs.w2) ** 2))


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
