"""The training budget every learned surrogate of a cell receives, identically."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace
from typing import Any


def _check_positive_number(name: str, value: Any) -> None:
    """Refuse a budget setting ``name`` that is not a finite positive number (a string, a
    boolean, ``inf``, ``nan``, zero or below), naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"budget {name} must be a finite positive number, got {type(value).__name__} {value!r}")


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
    :param param_count: which count ``param_target`` matches: ``"inference"`` (the
        parameters that compute distances, the default) or ``"trained"`` (all trained ones).
    :param milestones: points of one training run at which it is evaluated, increasing, in
        the budget's unit (steps when ``steps`` is set, else epochs); the last equals
        ``steps`` (or ``epochs``). None: one evaluation, at the end. A milestone's numbers
        are those of a run whose budget stops there (:meth:`at_milestone`).
    :param val_every_steps: validate at the end of the first epoch that ends at least this
        many optimiser steps after the previous validation (None: at every epoch end). On a
        small training set an epoch is a few steps and a validation can cost more than the
        steps between them; this keeps the validations of a fixed number of steps about as
        many for every training-set size. Milestones and the final step still validate.
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
    param_count: str = "inference"
    milestones: tuple[int, ...] | None = None
    val_every_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None:
            raise ValueError("a budget needs epochs or steps")
        for name in ("epochs", "steps", "batch_size", "val_every_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"budget {name} must be a positive integer, got {value!r}")
        if self.param_target is not None and (
            isinstance(self.param_target, bool) or not isinstance(self.param_target, int) or self.param_target < 1
        ):
            raise ValueError(f"budget param_target must be a positive integer (a parameter count), got {self.param_target!r}")
        if self.time_limit_s is not None:
            _check_positive_number("time_limit_s", self.time_limit_s)
        _check_positive_number("lr", self.lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:
            raise ValueError(f"budget seed must be a non-negative integer below 2**32, got {self.seed!r}")
        if (
            isinstance(self.param_tolerance, bool) or not isinstance(self.param_tolerance, numbers.Real)
            or not 0 <= self.param_tolerance < 1
        ):
            raise ValueError(f"budget param_tolerance must be in [0, 1), got {self.param_tolerance!r}")
        if self.param_count not in ("inference", "trained"):
            raise ValueError(f"budget param_count must be 'inference' or 'trained', got {self.param_count!r}")
        if self.milestones is not None:
            self._check_milestones()

    def _check_milestones(self) -> None:
        milestones = tuple(self.milestones or ())
        object.__setattr__(self, "milestones", milestones)
        if not milestones or any(not isinstance(m, int) or isinstance(m, bool) or m < 1 for m in milestones):
            raise ValueError(f"budget milestones must be positive integers, got {list(milestones)!r}")
        if any(b <= a for a, b in zip(milestones, milestones[1:], strict=False)):
            raise ValueError(f"budget milestones must be strictly increasing, got {list(milestones)!r}")
        last = self.steps if self.steps is not None else self.epochs
        if milestones[-1] != last:
            raise ValueError(
                f"the last budget milestone ({milestones[-1]}) must equal the budget's {self.unit} ({last})"
            )

    @property
    def unit(self) -> str:
        """``"steps"`` or ``"epochs"``: the unit of ``steps`` / ``epochs`` and of the milestones."""
        return "steps" if self.steps is not None else "epochs"

    @property
    def milestone_list(self) -> tuple[int, ...]:
        """The milestones in the budget's unit; a budget without milestones has one, its end."""
        if self.milestones:
            return self.milestones
        return (self.steps if self.steps is not None else self.epochs,)  # type: ignore[return-value]

    def milestone_steps(self, n_train_pairs: int) -> tuple[int, ...]:
        """The milestones as optimiser steps on ``n_train_pairs`` training pairs (increasing)."""
        return tuple(self.at_milestone(m).total_steps(n_train_pairs) for m in self.milestone_list)

    def at_milestone(self, milestone: int) -> Budget:
        """The budget of a run stopped at ``milestone`` (no milestones: the record identity of it).

        :raises ValueError: ``milestone`` is not one of this budget's milestones.
        """
        if milestone not in self.milestone_list:
            raise ValueError(f"{milestone} is not a milestone of this budget ({list(self.milestone_list)})")
        if self.steps is not None:
            return replace(self, steps=milestone, milestones=None)
        return replace(self, epochs=milestone, milestones=None)

    def epochs_per_validation(self, n_train_pairs: int) -> int:
        """Epochs between two validations on ``n_train_pairs`` pairs: 1, or with
        ``val_every_steps`` the fewest whole epochs that take at least that many steps."""
        if self.val_every_steps is None:
            return 1
        steps_per_epoch = max(1, math.ceil(n_train_pairs / self.batch_size))
        return max(1, math.ceil(self.val_every_steps / steps_per_epoch))

    def total_steps(self, n_train_pairs: int) -> int:
        """Optimiser steps this budget allows on ``n_train_pairs`` pairs."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None
        return self.epochs * max(1, math.ceil(n_train_pairs / self.batch_size))

    def as_dict(self) -> dict[str, Any]:
        """The budget as a JSON-ready dict (for records and cell keys).

        ``milestones`` and ``val_every_steps`` appear only when set and ``param_count`` only
        when not the default ``"inference"``, so such budgets keep the dict (and the cell
        keys) of earlier wbench.
        """
        out = asdict(self)
        if self.val_every_steps is None:
            del out["val_every_steps"]
        if self.param_count == "inference":
            del out["param_count"]
        if self.milestones is None:
            del out["milestones"]
        else:
            out["milestones"] = list(self.milestones)
        return out

    def cost(self, n_train_pairs: int) -> dict[str, Any]:
        """The training cost of this budget in its unit: steps, batch size and pairs seen
        (steps x batch size), for every record."""
        steps = self.total_steps(n_train_pairs)
        return {
            "unit": "pairs seen (optimiser steps x batch size)",
            "steps": steps,
            "batch_size": self.batch_size,
            "pairs_seen": steps * self.batch_size,
        }
