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

import pandas as pd
from tabulate import tabulate

from wbench.errors import PluginError

if TYPE_CHECKING:
    import pluggy

__all__ = ["Section", "SectionContext", "collect_sections", "markdown_cell", "markdown_line", "markdown_table", "render_section"]

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
