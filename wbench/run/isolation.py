"""What one cell may not leave behind for the next: torch's global state, and its time.

Every cell starts from the same torch state (default dtype, intra-op threads, grad mode,
deterministic-algorithm flag, the global RNGs of torch, NumPy and ``random``); a cell that
changed any of it is named in its records (``outcome.side_effects``) and the state is put
back. A per-cell time limit stops a hung plugin: the cell becomes ``failed`` records saying
so, and the run goes on.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class TorchState:
    """The process-wide settings a plugin can change and a later cell would inherit."""

    default_dtype: torch.dtype
    threads: int
    grad_enabled: bool
    deterministic: bool

    @staticmethod
    def now() -> TorchState:
        """The current settings."""
        return TorchState(
            default_dtype=torch.get_default_dtype(),
            threads=torch.get_num_threads(),
            grad_enabled=torch.is_grad_enabled(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
        )

    def restore(self) -> None:
        """Put these settings back."""
        torch.set_default_dtype(self.default_dtype)
        torch.set_num_threads(self.threads)
        torch.set_grad_enabled(self.grad_enabled)
        torch.use_deterministic_algorithms(self.deterministic)

    def changes_to(self, other: TorchState) -> dict[str, str]:
        """``setting -> "before -> after"`` for each setting that differs in ``other``."""
        out = {}
        for name in ("default_dtype", "threads", "grad_enabled", "deterministic"):
            before, after = getattr(self, name), getattr(other, name)
            if before != after:
                out[f"torch.{name}"] = f"{before} -> {after}"
        return out


@contextlib.contextmanager
def torch_state_guard() -> Iterator[dict[str, str]]:
    """Run a cell with torch's settings and the global RNG states put back afterwards.

    Yields a dict that, on exit, holds what the cell changed (``setting -> "before -> after"``;
    empty when nothing); the RNG states are restored silently (every cell seeds its own).
    """
    before = TorchState.now()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    changes: dict[str, str] = {}
    try:
        yield changes
    finally:
        changes.update(before.changes_to(TorchState.now()))
        before.restore()
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])


class CellTimeoutError(BaseException):
    """A cell ran past its time limit.

    A ``BaseException`` (like ``KeyboardInterrupt``): a plugin's ``except Exception`` cannot
    swallow it, so the cell stops where its code was.
    """


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeoutError` in this thread after ``seconds`` (None: no limit).

    Uses ``SIGALRM``: it interrupts Python code (a loop, a sleep) but not a single long call
    into C that never returns to Python, and it works only in the main thread (elsewhere,
    e.g. a cell on a Dask worker's thread, the limit is not enforced).
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CellTimeoutError(f"the cell ran past its time limit of {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
