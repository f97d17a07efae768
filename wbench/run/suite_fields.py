"""Checks of single suite fields: seeds, run names, time limits (each error names the key)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from wbench.errors import SuiteError

SEED_LIMIT = 2**32


def check_seed(value: Any, where: str) -> int:
    """``value`` as a seed: an integer in ``[0, 2**32)``; else a :class:`SuiteError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SuiteError(f"{where}: a seed must be an integer, got {type(value).__name__} {value!r}")
    if not 0 <= value < SEED_LIMIT:
        raise SuiteError(f"{where}: a seed must be a non-negative integer below 2**32, got {value!r}")
    return value


def check_run_name(value: Any, where: str) -> str:
    """``value`` as a suite name: a plain name, since it names the run folder ``runs/NAME``.

    :raises SuiteError: naming ``where`` for a non-string, an empty name, a name with a path
        separator, ``..``, a leading dot, or an absolute path.
    """
    if not isinstance(value, str):
        raise SuiteError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
    name = value
    if not name.strip():
        raise SuiteError(f"{where}: the suite name is empty")
    bad = (
        "/" in name or "\\" in name or "\0" in name or ".." in name or name.startswith(".")
        or Path(name).is_absolute()
    )
    if bad:
        raise SuiteError(
            f"{where}: the suite name must be a plain name (it names the run folder runs/NAME): "
            f"no path separator, '..', leading dot or absolute path, got {name!r}"
        )
    return name


def check_time_limit(value: Any, where: str) -> float | None:
    """``value`` as seconds (None stays None).

    :raises SuiteError: not a finite positive number, naming ``where``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise SuiteError(f"{where} must be a positive number of seconds, got {value!r}")
    return float(value)
