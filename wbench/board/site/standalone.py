"""``wbench leaderboard --format html``: the leaderboard as one complete, standalone page
(charset, title, inline styles and sorting script) with the Markdown's sections: ranking
line, units, the tables, the paper claims and the transfer matrix."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from wbench.board.site.assets import CSS, SORT_JS
from wbench.board.site.html import esc, page
from wbench.board.site.source import COLUMNS, Column, sections_of, summarise_frame, transfer_of
from wbench.board.site.tables import (
    failed_list,
    leaderboard_table,
    legend,
    plugin_section,
    transfer_section,
)
from wbench.stats import by_dataset
from wbench.util.filenames import anchor_id, slug


def leaderboard_page(
    frame: pd.DataFrame, *, primary: str, columns: Sequence[Column] = COLUMNS, extras: bool = True,
    title: str = "wbench leaderboard",
    note: str = "",
) -> str:
    """A complete HTML document of the leaderboard of ``frame`` (one row per record, from
    :func:`wbench.board.leaderboard.records_frame`), ranked by ``primary``.

    :param extras: add the claims table and the transfer matrix, as the Markdown does.
    :param note: a sentence under the ranking line (e.g. :func:`wbench.board.timing_section.timing_note`).
    """
    summary, shown = summarise_frame(frame, primary=primary, columns=columns)
    parts = [f"<p>Ranked by <code>{esc(primary)}</code> (mean over seeds; ± is the standard deviation over "
             "seeds).</p>\n"]
    if note.strip():
        parts.append(f"<p>{esc(note.strip().replace('`', ''))}</p>\n")
    parts.append(legend(shown, with_vs_best="vs_best" in summary.columns))
    for dataset, block in by_dataset(summary):
        units = sorted({u for u in block["unit"] if u}) if "unit" in block else []
        unit = f" (W2 in {'/'.join(units)}s)" if units else ""
        parts.append(f"<h2>{esc(dataset)}{esc(unit)}</h2>\n")
        parts.append(leaderboard_table(block, shown, table_id=f"leaderboard-{slug(str(dataset))}"))
        parts.append(failed_list(block))
    if extras:
        parts.extend(
            plugin_section(section, table_id=anchor_id(section.title), open_=True) for section in sections_of(frame, primary=primary)
        )
        parts.append(transfer_section(transfer_of(frame), table_id="transfer"))
    return page(title, "".join(parts), root="", inline_css=CSS, inline_js=SORT_JS)
