"""The training budget every learned surrogate of a cell receives, identically."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How much training a surrogate gets; the same object for every method of a cell.

    :param epochs: passes over the training pairs (used when ``steps`` is None).
    :param steps: optimiser steps; when set it wins over ``epochs`` (matched budgets).
    :param batch_size: pairs per optimiser step.
    :param lr: Adam learning rate.
    :param seed: seeds the initialisation and the batch order.
    :param device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    :param time_limit_s: stop training after this many seconds of wall time (None: no limit).
    :param param_target: parameter count every learned surrogate is built at (None: its default).
    :param param_tolerance: relative tolerance on ``param_target`` (0.01 = 1 %).
    """

    epochs: int | None = 1
    steps: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    time_limit_s: float | None = None
    param_target: int | None = None
    param_tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None:
            raise ValueError("a budget needs epochs or steps")
        for name in ("epochs", "steps", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"budget {name} must be a positive integer, got {value!r}")
        if self.param_target is not None and (
            isinstance(self.param_target, bool) or not isinstance(self.param_target, int) or self.param_target < 1
        ):
            raise ValueError(f"budget param_target must be a positive integer (a parameter count), got {self.param_target!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"budget time_limit_s must be positive, got {self.time_limit_s!r}")
        if not self.lr > 0:
            raise ValueError(f"budget lr must be positive, got {self.lr!r}")
        if not 0 <= self.param_tolerance < 1:
            raise ValueError(f"budget param_tolerance must be in [0, 1), got {self.param_tolerance!r}")

    def total_steps(self, n_train_pairs: int) -> int:
        """Optimiser steps this budget allows on ``n_train_pairs`` pairs."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None
        return self.epochs * max(1, math.ceil(n_train_pairs / self.batch_size))

    def as_dict(self) -> dict[str, Any]:
        """The budget as a JSON-ready dict (for records)."""
        return asdict(self)
