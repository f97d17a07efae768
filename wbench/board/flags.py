"""Flags on board rows, computed from records: what a reader must know before comparing a row
with the others (fewer steps or seeds than the run gave the rest, training still improving,
a solver per new measure, fewer test pairs, hyper-parameters other than the authors')."""

from __future__ import annotations

import math

import pandas as pd

STILL_FALLING = 0.05
"""A fit is "not converged" when its validation loss fell by more than this fraction over the
last quarter of its validation checks (from the value at 3/4 of them to the last)."""


def val_drop(val_mse: list[float] | None) -> float:
    """Relative fall of the validation loss over the last quarter of its checks (NaN: fewer than 3)."""
    values = [v for v in (val_mse or []) if isinstance(v, int | float) and math.isfinite(v)]
    if len(values) < 3:
        return math.nan
    start = values[int(0.75 * (len(values) - 1))]
    return (start - values[-1]) / start if start > 0 else math.nan


def add_flags(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a summary with the helper columns ``_milestone``, ``_unit``, ``_n_test``,
    ``_val_drop``) with a ``flags`` column, the helper columns dropped. References per dataset:
    the largest milestone (same unit) and seed count among the ranked classes, and the
    largest number of test pairs of any row."""
    flags = []
    for _, row in table.iterrows():
        same = table[table["dataset"] == row["dataset"]]
        ranked = same[same["class"].isin(("learned", "hybrid"))]
        flags.append(", ".join(_row_flags(row, same, ranked)))
    helpers = [c for c in ("_milestone", "_unit", "_n_test", "_val_drop", "_not_defaults") if c in table.columns]
    return table.assign(flags=flags).drop(columns=helpers)


def _row_flags(row: pd.Series, same: pd.DataFrame, ranked: pd.DataFrame) -> list[str]:
    out = []
    if row["class"] in ("learned", "hybrid"):
        peers = ranked[ranked["_unit"] == row["_unit"]]["_milestone"].dropna()
        if math.isfinite(row["_milestone"]) and len(peers) and row["_milestone"] < peers.max():
            out.append(f"{int(row['_milestone']):,} of {int(peers.max()):,} {row['_unit']}")
        most = int(ranked["seeds"].max()) if len(ranked) else 0
        if 0 < row["seeds"] < most:
            out.append(f"{int(row['seeds'])} of {most} seeds")
        if math.isfinite(row["_val_drop"]) and row["_val_drop"] > STILL_FALLING:
            out.append(f"not converged (val. loss still -{row['_val_drop']:.0%} in its last quarter)")
        if row.get("_not_defaults"):
            out.append(str(row["_not_defaults"]))
    if row["class"] == "hybrid":
        out.append("solver per new measure")
    most_pairs = same["_n_test"].max()
    if math.isfinite(row["_n_test"]) and math.isfinite(most_pairs) and row["_n_test"] < most_pairs:
        out.append(f"{int(row['_n_test']):,} of {int(most_pairs):,} test pairs")
    return out
