"""The leaderboard a terminal shows: one table per dataset within 100 columns (rank, method,
class, the ranking metric, Pearson, the one-core speed-up), the failed cells listed below it.
The full tables go to files (``wbench run`` writes ``leaderboard.md``; ``wbench leaderboard
--full`` or ``--out`` gives them)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import summarise
from wbench.board.learning_curves import select_milestone
from wbench.board.main_table import ERROR, FRONT_LEGEND, FRONT_MARK, UNSEEN_ERROR
from wbench.board.matched import matched_step_lines
from wbench.board.numbers import ROUND_OFF, significant  # noqa: F401 (re-exported)
from wbench.board.timing_section import timing_note
from wbench.stats import by_dataset

WIDTH = 100
"""Columns a terminal line may take."""
METHOD_WIDTH = 26


def _primary_text(mean: float, std: float, *, percent: bool) -> str:
    if percent and math.isfinite(mean) and 0 <= mean < ROUND_OFF:
        return "exact"
    scale = 100.0 if percent else 1.0
    text = significant(mean * scale)
    if text and math.isfinite(std) and std > 0:
        text += f" ± {significant(std * scale, 2)}"
    return text


def compact_table(summary: pd.DataFrame, primary: str) -> str:
    """The terminal leaderboard of a :func:`wbench.board.leaderboard.summarise` table."""
    percent = primary.endswith("rel_mae")
    header = f"{primary} (%)" if percent else primary
    second = _second_column(summary, primary)
    parts = []
    for dataset, block in by_dataset(summary):
        rows = [_row(r, primary, percent, second) for _, r in block.iterrows()]
        headers = ["rank", "method", "class", header, f"{second} (%)" if second else "Pearson", "speed-up 1 core"]
        table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
        parts.append(f"{dataset}\n{table}\n")
        parts.append(_failures(block) + _flags(block))
    if "front" in summary.columns and summary["front"].any():
        parts.append(textwrap.fill(FRONT_LEGEND, width=WIDTH) + "\n")
    return "\n".join(p for p in parts if p)


SEEN_AND_UNSEEN = (ERROR, UNSEEN_ERROR)  # the main table's two errors, shown side by side


def _second_column(summary: pd.DataFrame, primary: str) -> str | None:
    """The error shown beside ``primary`` in place of Pearson: the unseen-measure error beside
    the test error (or the reverse) when the records hold both; None: Pearson."""
    if primary not in SEEN_AND_UNSEEN:
        return None
    other = SEEN_AND_UNSEEN[1 - SEEN_AND_UNSEEN.index(primary)]
    column = summary.get(f"{other}.mean")
    return other if column is not None and column.notna().any() else None


def _row(r: pd.Series, primary: str, percent: bool, second: str | None = None) -> list[str]:
    method = str(r["method"])
    if len(method) > METHOD_WIDTH:
        method = method[: METHOD_WIDTH - 1] + "…"
    rank = "" if pd.isna(r.get("rank")) else str(int(r["rank"]))
    speed = r.get("speedup.one_core.mean", math.nan)
    return [
        rank, method, str(r.get("class", "")),
        _primary_text(r.get(f"{primary}.mean", math.nan), r.get(f"{primary}.std", math.nan), percent=percent),
        (_primary_text(r.get(f"{second}.mean", math.nan), r.get(f"{second}.std", math.nan), percent=True) if second
         else _fixed(r.get("test.w2.pearson.mean", math.nan), 4)),
        (f"{significant(speed, 2)}x" + (f" {FRONT_MARK}" if bool(r.get("front")) else "")) if math.isfinite(speed) else "",
    ]


def _fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if value is not None and math.isfinite(value) else ""


def _failures(block: pd.DataFrame) -> str:
    bad = block[block["status"] != "ok"]
    lines = [f"  {r['method']}: {r['status']}" + (f": {r['error']}" if r["error"] else "") for _, r in bad.iterrows()]
    return "".join(line[:WIDTH] + "\n" for line in lines)


def _flags(block: pd.DataFrame) -> str:
    """``  method: flag, flag`` for each flagged row (wrapped to the width)."""
    if "flags" not in block.columns:
        return ""
    lines = [textwrap.fill(f"{r['method']}: {r['flags']}", width=WIDTH, initial_indent="  ", subsequent_indent="      ")
             for _, r in block.iterrows() if r["flags"] and r["status"] == "ok"]
    return ("flags:\n" + "".join(line + "\n" for line in lines)) if lines else ""


def fits(text: str, width: int = WIDTH) -> bool:
    """Whether every line of ``text`` fits ``width`` columns."""
    return all(len(line) <= width for line in text.splitlines())


def terminal_leaderboard(
    run_dirs: Sequence[Path], primary: str, milestone: int | None = None, *, frame: Any = None
) -> str:
    """The compact leaderboard of ``run_dirs`` (:func:`compact_table`) with the
    line saying where its speed figures come from, ending in a newline.

    :param frame: the records of ``run_dirs`` as :func:`wbench.board.frame.leaderboard_frame`
        gives them, when the caller has read them already.
    """
    full = frame if frame is not None else leaderboard_frame(run_dirs)
    if full.empty:
        return "no records\n"
    shown, _ = select_milestone(full, milestone)
    note = textwrap.fill(timing_note(shown, run_dirs).strip(), width=WIDTH)
    matched = "".join(textwrap.fill(line, width=WIDTH, subsequent_indent="    ") + "\n"
                      for line in matched_step_lines(full, primary))
    text = compact_table(summarise(shown, primary=primary), primary)
    if matched:
        text += "\nmethods that stopped early, beside the others at the same steps:\n" + matched
    return text + ("\n" + note if note else "") + "\n"
