"""The whole ``wbench leaderboard`` command's output: the table in Markdown, CSV or HTML
(a standalone page), with the sections plugins contribute and the learning-curve summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import header_lines, render, sections_markdown, summarise
from wbench.board.learning_curves import budget_section, curve_section, select_milestone
from wbench.board.matched import matched_step_sections
from wbench.board.site.standalone import leaderboard_page
from wbench.board.timing_section import timing_note, timing_sections
from wbench.plugin.manager import Plugins, make_plugin_manager
from wbench.records.columns import COLUMNS, Column
from wbench.run.suite import DEFAULT_PRIMARY_METRIC
from wbench.sections import render_section


def leaderboard_text(
    run_dirs: Iterable[str | Path],
    *,
    fmt: str = "md",
    primary: str = DEFAULT_PRIMARY_METRIC,
    columns: Sequence[Column] = COLUMNS,
    extras: bool = True,
    plugins: Plugins | None = None,
    keep_newest: bool = False,
    milestone: int | None = None,
    frame: pd.DataFrame | None = None,
) -> str:
    """Load records, summarise and render: the whole ``wbench leaderboard`` command.

    Records of a run with budget milestones are shown at ``milestone`` (default: the
    last; :func:`wbench.board.learning_curves.select_milestone`), with the learning-curve
    summary section in Markdown.

    Markdown also carries (``extras``) the sections plugins contribute, e.g. the papers'
    claims, and the transfer matrix when the records allow.

    :param plugins: the loaded plugins asked for sections; default
        :func:`wbench.plugin.manager.make_plugin_manager` (entry points, ``$WBENCH_DISABLE_PLUGINS``).
    :param keep_newest: see :func:`load_records` (default: a cell in two directories is an error).
    :param frame: the records of ``run_dirs`` as :func:`leaderboard_frame` gives them, when the
        caller has read them already (else they are read here, re-timed figures in).

    HTML is a complete standalone page (:mod:`wbench.board.site.standalone`) with the same sections.
    """

    run_dirs = list(run_dirs)
    full = frame if frame is not None else leaderboard_frame(run_dirs, keep_newest=keep_newest)
    if full.empty:
        return "no records\n"
    df, chosen = select_milestone(full, milestone)
    if fmt == "html":  # a complete standalone page, with the same sections as the Markdown
        return leaderboard_page(df, primary=primary, columns=columns, extras=extras, note=timing_note(df, run_dirs))
    text = render(summarise(df, primary=primary, columns=columns), fmt, primary=primary, columns=columns)
    if fmt == "md":  # the milestone and parameter notes follow the "Ranked by" line
        first, _, rest = text.partition("\n")
        header = header_lines(full, chosen) + timing_note(df, run_dirs)
        text = first + "\n" + ("\n" + header if header else "") + rest
    if fmt == "md" and extras:
        if plugins is None:
            plugins = make_plugin_manager()
        text += sections_markdown(df, plugins, primary=primary)
        units = sorted(set(full["milestone_unit"].dropna()))
        unit = units[0] if len(units) == 1 else "steps or epochs"
        text += "".join(render_section(section, "md") for section in matched_step_sections(full, primary, unit=unit))
        text += "".join(render_section(section, "md") for section in curve_section(full, primary, unit=unit))
        text += "".join(render_section(section, "md") for section in budget_section(full, primary, unit=unit))
        text += "".join(render_section(section, "md") for section in timing_sections(run_dirs))
    return text
