"""What a fit did: the report every ``Surrogate.fit`` returns (re-exported by
:mod:`wbench.train.loop` and :mod:`wbench.surrogate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
