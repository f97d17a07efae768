"""Extra leaderboard sections: what a plugin returns from ``wbench_leaderboard_sections``.

A :class:`Section` is a titled, display-ready table (a DataFrame whose column names are the
headers and whose cells are already text), so every renderer (Markdown, HTML, ...) can
draw it without knowing where it came from. The leaderboard asks every plugin for its
sections through :func:`collect_sections` and draws them below the ranked tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from wbench.errors import PluginError

if TYPE_CHECKING:
    import pluggy

__all__ = [
    "LABEL_METRICS", "Section", "SectionContext", "collect_sections", "label_curves", "label_rows", "lp_seconds_per_pair", "markdown_cell",
    "markdown_line", "markdown_table", "render_section",
]
# label_rows, lp_seconds_per_pair, label_curves: what a section or chart over a label-efficiency
# run (records of several budget.train_pairs) reads from the records frame.

_LINE_BREAKS = re.compile("\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
"""What ends a line (``str.splitlines``), ``\\r\\n`` as one break."""


@dataclass(frozen=True)
class Section:
    """One extra leaderboard section.

    :param title: the heading, without Markdown marks (``"Paper claims under this budget"``).
    :param table: rows to show; column names are the headers, cells are shown as given
        (format numbers into strings first for a stable rendering).
    :param note: one paragraph shown under the heading (e.g. the rule behind the verdicts);
        empty: none.
    """

    title: str
    table: pd.DataFrame
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise PluginError(f"a leaderboard section needs a non-empty title, got {self.title!r}")
        if not isinstance(self.table, pd.DataFrame):
            raise PluginError(f"section {self.title!r}: table must be a pandas DataFrame, got {type(self.table).__name__}")
        if not isinstance(self.note, str):
            raise PluginError(f"section {self.title!r}: note must be a string, got {type(self.note).__name__}")


@dataclass(frozen=True)
class SectionContext:
    """What a section provider may want to know besides the records frame.

    :param primary: the metric the leaderboard is ranked by (``"test.w2.rel_mae"``).
    :param fmt: the output format being rendered (``"md"``, ``"html"``, ...).
    :param options: free-form settings for section providers (empty by default).
    """

    primary: str
    fmt: str = "md"
    options: Mapping[str, Any] = field(default_factory=dict)


def collect_sections(manager: pluggy.PluginManager, frame: pd.DataFrame, context: SectionContext) -> list[Section]:
    """Every plugin's sections, through ``manager.hook.wbench_leaderboard_sections``.

    :param frame: the records frame (:func:`wbench.board.leaderboard.records_frame`), one row per record.
    :returns: the sections in pluggy's call order (last registered first, unless a plugin
        marks its implementation ``tryfirst``/``trylast``), empty ones dropped.
    :raises PluginError: a plugin returned something that is not a list of :class:`Section`.
    """
    sections: list[Section] = []
    for returned in manager.hook.wbench_leaderboard_sections(frame=frame, context=context):
        if isinstance(returned, Section) or not isinstance(returned, list | tuple):
            raise PluginError(f"wbench_leaderboard_sections must return a list of Section, got {type(returned).__name__}")
        for section in returned:
            if not isinstance(section, Section):
                raise PluginError(f"wbench_leaderboard_sections returned a {type(section).__name__}, not a Section")
            if not section.table.empty:
                sections.append(section)
    return sections


def markdown_line(text: object) -> str:
    """``text`` on one line: each line break as a space (a heading, a table cell)."""
    return _LINE_BREAKS.sub(" ", str(text))


def markdown_cell(value: object) -> object:
    """A Markdown table cell: text on one line with ``|`` escaped as ``\\|`` (so a label
    cannot end its cell or add rows); other values (numbers) as they are."""
    if not isinstance(value, str):
        return value
    return markdown_line(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub Markdown table, headers and text cells escaped (:func:`markdown_cell`)."""
    escaped = frame.map(markdown_cell)
    escaped.columns = [markdown_cell(str(c)) for c in frame.columns]
    return tabulate(escaped, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def render_section(section: Section, fmt: str = "md") -> str:
    """One section as Markdown (``### title`` and a GitHub table) or HTML (``<h3>`` and a table).

    :raises ValueError: an unknown ``fmt``.
    """
    if fmt == "md":
        note = f"{markdown_line(section.note)}\n\n" if section.note else ""
        return f"\n### {markdown_line(section.title)}\n\n{note}{markdown_table(section.table)}\n"
    if fmt == "html":
        from html import escape

        note = f"<p>{escape(section.note)}</p>\n" if section.note else ""
        return (f"<h3>{escape(section.title)}</h3>\n{note}"
                + section.table.to_html(index=False, border=0, escape=True) + "\n")
    raise ValueError(f"unknown section format {fmt!r}; choose md or html")


LP_RATE_COLUMNS = ("speedup.lp_pairs_per_s",)
"""Where a run's records hold the exact LP's pairs/s on one core, in order of preference: the
LP timed in the same interleaved rounds as each method."""

LABEL_METRICS = ("unseen.w2.rel_mae", "test.w2.rel_mae")
"""The errors drawn against N: on unseen images first (what a user meets), then on test pairs."""


def label_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` records of trained methods that state ``budget.train_pairs`` and have unseen
    and test errors, at the last milestone of their (dataset, method); empty otherwise.

    :param frame: :func:`wbench.board.leaderboard.records_frame` rows, one per record.
    """
    needed = {"budget.train_pairs", *LABEL_METRICS}
    if not needed <= set(frame.columns):
        return frame.iloc[0:0]
    rows = frame[(frame["status"] == "ok") & frame["budget.train_pairs"].notna() & frame["unseen.w2.rel_mae"].notna()]
    if "trainable" in rows:  # a solver's error does not depend on the labels
        rows = rows[rows["trainable"].fillna(False).astype(bool)]
    if "milestone" in rows and rows["milestone"].notna().any():
        last = rows.groupby(["dataset", "method"])["milestone"].transform("max")
        rows = rows[rows["milestone"] == last]
    return rows


def lp_seconds_per_pair(frame: pd.DataFrame) -> float | None:
    """Seconds per pair of the exact LP on one core: 1 / the median of the first of
    :data:`LP_RATE_COLUMNS` that some ``ok`` record holds (None: no record timed it)."""
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    for column in LP_RATE_COLUMNS:
        if column in ok:
            rates = pd.to_numeric(ok[column], errors="coerce").dropna()
            rates = rates[rates > 0]
            if len(rates):
                return 1.0 / float(np.median(rates))
    return None


def label_curves(frame: pd.DataFrame, metric: str = LABEL_METRICS[0]) -> pd.DataFrame:
    """One row per (method, N) of a label-efficiency run: ``metric`` (a fraction) as mean, min
    and max over seeds, and the number of seeds; empty unless the records hold at least two N.

    :returns: columns method, N, mean, min, max, seeds; sorted by method and N.
    """
    rows = label_rows(frame)
    if rows.empty or rows["budget.train_pairs"].nunique() < 2:
        return pd.DataFrame(columns=["method", "N", "mean", "min", "max", "seeds"])
    values = rows.assign(value=pd.to_numeric(rows[metric], errors="coerce"), N=rows["budget.train_pairs"].astype(int))
    out = values.groupby(["method", "N"])["value"].agg(["mean", "min", "max"])
    out["seeds"] = values.groupby(["method", "N"])["seed"].nunique()
    return out.reset_index().sort_values(["method", "N"], ignore_index=True)
