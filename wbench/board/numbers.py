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
    if abs(round(value, digits - 1 - magnitude)) >= 10 ** (magnitude + 1):  # 0.99999 rounds up to 1.0
        magnitude += 1
    if magnitude >= 6 or magnitude < -4:
        return f"{value:.{digits - 1}e}"
    decimals = digits - 1 - magnitude
    if decimals < 0:  # 74,169 to two figures is 74,000
        return f"{round(value, decimals):,.0f}"
    return f"{round(value, decimals):,.{decimals}f}"
