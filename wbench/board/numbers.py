"""How the boards write numbers: significant figures, round-off shown as ``exact``."""

from __future__ import annotations

import math

ROUND_OFF = 1e-12
"""An error below this is the exact solver's floating-point round-off: shown as ``exact``."""


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, without exponents for everyday sizes ("" for NaN)."""
    if value is None or not math.isfinite(value):
        return ""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 6 or magnitude < -4:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    return f"{round(value, decimals):,.{decimals}f}"
