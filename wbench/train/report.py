"""What a fit did: the report every ``Surrogate.fit`` returns (re-exported by
:mod:`wbench.train.loop` and :mod:`wbench.surrogate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FitReport:
    """What a fit did.

    :param train_loss: mean training loss (the method's own objective) per validation
        interval: per epoch, or the epochs since the previous validation.
    :param val_mse: validation MSE on W2 (ground-cost units squared), one per validation:
        at every epoch end, or every few epochs (``budget.val_every_steps``).
    :param best_epoch: index (0-based) into ``val_mse`` of the validation whose weights were
        kept (the epoch when every epoch validates), or -1.
    :param steps: optimiser steps taken.
    :param epochs: epochs started.
    :param wall_time_s: seconds of training wall time.
    :param stopped_by: ``"budget"``, ``"time_limit"`` or ``"nothing to fit"``.
    :param extra: method-specific readouts (learned weights ...), JSON-ready.
    :param val_epochs: the epochs started at each validation, when they are not 1, 2, 3 ...
        (empty: every epoch validated).
    """

    train_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0
    epochs: int = 0
    wall_time_s: float = 0.0
    stopped_by: str = "budget"
    extra: dict[str, Any] = field(default_factory=dict)
    val_epochs: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict; ``val_epochs`` only when recorded."""
        out: dict[str, Any] = {
            "train_loss": self.train_loss,
            "val_mse": self.val_mse,
            "best_epoch": self.best_epoch,
            "steps": self.steps,
            "epochs": self.epochs,
            "wall_time_s": self.wall_time_s,
            "stopped_by": self.stopped_by,
            "extra": self.extra,
        }
        if self.val_epochs:
            out["val_epochs"] = self.val_epochs
        return out
