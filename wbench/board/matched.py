"""Matched-step comparisons: where a trained method stopped before the run's last milestone
(a per-method budget), every learned method at that method's last milestone, so that it is
read against the others at the same number of steps and not only at theirs."""

from __future__ import annotations

import math

import pandas as pd

from wbench.board.learning_curves import curve_table
from wbench.board.numbers import significant
from wbench.sections import Section
from wbench.surrogate import METHOD_CLASSES


def early_stops(curves: pd.DataFrame) -> pd.DataFrame:
    """(dataset, method, milestone) of each method of :func:`curve_table` whose last milestone
    comes before the last milestone of its dataset."""
    if curves.empty:
        return pd.DataFrame(columns=["dataset", "method", "milestone"])
    last = curves.groupby(["dataset", "method"], as_index=False)["milestone"].max()
    run_last = last.groupby("dataset")["milestone"].transform("max")
    return last[last["milestone"] < run_last].reset_index(drop=True)


def matched_step_tables(df: pd.DataFrame, primary: str) -> dict[tuple[str, int], pd.DataFrame]:
    """(dataset, milestone) -> every trained method's ``primary`` at that milestone (columns
    ``rank`` within its class, ``method``, ``class``, ``mean``, ``std``, ``seeds``,
    ``stopped``; by class, then best first), for each milestone where some method stopped
    (:func:`early_stops`). Empty when no method stopped early."""
    curves = curve_table(df, primary)
    classes = df.groupby(["dataset", "method"])["class"].first() if "class" in df.columns else pd.Series(dtype=str)
    order = {c: i for i, c in enumerate(METHOD_CLASSES)}
    tables = {}
    for (dataset, milestone), stopped in early_stops(curves).groupby(["dataset", "milestone"], sort=True):
        at = curves[(curves["dataset"] == dataset) & (curves["milestone"] == milestone)]
        at = at.assign(**{"class": [str(classes.get((dataset, m), "learned")) for m in at["method"]]})
        at = at.assign(_order=[order.get(c, 0) for c in at["class"]])
        at = at.sort_values(["_order", "mean", "method"], na_position="last")
        at = at.assign(rank=at.groupby("class").cumcount() + 1, stopped=at["method"].isin(stopped["method"]))
        tables[(str(dataset), int(milestone))] = at[["rank", "method", "class", "mean", "std", "seeds", "stopped"]]
    return tables


def _value(mean: float, std: float, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    text = significant(mean * scale)
    if text and math.isfinite(std) and std > 0:
        text += f" ± {significant(std * scale, 2)}"
    return text


def matched_step_sections(df: pd.DataFrame, primary: str, *, unit: str = "steps") -> list[Section]:
    """One section per :func:`matched_step_tables` entry: rank, method (``stopped here``
    marked), ``primary`` (in percent for a relative error) and seeds."""
    percent = primary.endswith("rel_mae")
    sections = []
    for (dataset, milestone), table in matched_step_tables(df, primary).items():
        shown = pd.DataFrame({
            "rank": table["rank"].astype(int),
            "method": [m + (" (stopped here)" if s else "") for m, s in zip(table["method"], table["stopped"], strict=True)],
            "class": table["class"],
            f"{primary}{' (%)' if percent else ''}": [_value(m, s, percent) for m, s in zip(table["mean"], table["std"], strict=True)],
            "seeds": table["seeds"].astype(int),
        })
        title = f"{dataset}: every trained method at {milestone:,} {unit} (matched steps)"
        sections.append(Section(title, shown))
    return sections


def matched_step_lines(df: pd.DataFrame, primary: str, *, unit: str = "steps") -> list[str]:
    """One line per :func:`matched_step_tables` entry for the terminal, its learned methods best
    first: ``"mnist at 400 steps, ...: naive 5.94, wormhole 6.78 (stopped), ..."``."""
    percent = primary.endswith("rel_mae")
    lines = []
    for (dataset, milestone), table in matched_step_tables(df, primary).items():
        learned = table[table["class"] == "learned"]
        cells = [f"{m} {_value(v, math.nan, percent)}" + (" (stopped)" if s else "")
                 for m, v, s in zip(learned["method"], learned["mean"], learned["stopped"], strict=True)]
        suffix = " (%)" if percent else ""
        lines.append(f"{dataset} at {milestone:,} {unit}, {primary}{suffix}: " + ", ".join(cells))
    return lines
