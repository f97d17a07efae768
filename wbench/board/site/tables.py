"""The site's tables: leaderboard (numeric sort keys, spread beside the mean), failed cells,
column legend, paper claims and the transfer matrix."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from wbench.board.site.html import Cell, esc, table, text_cell
from wbench.board.site.source import Column, format_number
from wbench.sections import Section

COLUMN_HELP: dict[str, str] = {
    "rank": "position within the method's class by the run's primary metric (lower is better unless the metric is a "
            "correlation); reference rows (untrained embeddings, solvers) are not ranked",
    "flags": "what to know before comparing: fewer steps or seeds than the others, validation loss still falling "
             "more than 5 % in the last quarter of training, a solver per new measure, fewer test pairs",
    "class": "learned: no solver at inference; hybrid: a solver per new measure; untrained: an embedding with "
             "nothing to learn; solver: a solver per pair",
    "method": "plugin name; non-default fit parameters in (), evaluation settings in []",
    "seeds": "seeds whose cell finished ok",
    "n_parameters": "trainable parameters actually built (0 for solvers)",
    "test.w2.mse": "mean squared error of predicted W2 against exact W2 on the test pairs",
    "test.w2.rel_mae": "mean of |predicted - exact| / exact on the test pairs with exact > 0",
    "test.w2sq.mse": "mean squared error of predicted squared against exact W2 squared",
    "test.w2.pearson": "linear correlation of predicted and exact W2 on the test pairs",
    "test.w2.spearman": "rank correlation of predicted and exact W2 on the test pairs",
    "gap.w2.mse_ratio": "generalisation gap: test MSE over train MSE (learned methods only)",
    "fit.wall_time_s": "wall-clock seconds of the fit (training; reference and scale for embeddings)",
    "retrieval.recall@": "fraction of the exact k nearest neighbours that the method's k nearest neighbours recover",
    "axioms.triangle_violation_rate": "fraction of random triplets with d(x,z) > d(x,y) + d(y,z)",
    "throughput.independent_pairs_per_s": "pairs per second on unrelated pairs (both sides embedded or solved per pair)",
    "throughput.pairwise_pairs_per_s": "pairs per second for all n x m distances between two sets",
    "speedup.independent": "independent pairs/s over the exact LP's, timed in the same cell",
    "speedup.pairwise": "pairwise pairs/s over the exact LP's, timed in the same cell",
    "cost.independent_pairs_per_s@": "1 / (2e + c) from the cost model (e: s per measure embedded, c: s per pair), "
    "on the threads in the header",
    "cost.pairwise_pairs_per_s@": "n^2 / (o + 2n e + n^2 c): the pairs/s of an n x n matrix at the one n in the header; "
                                  "a solver (nothing to embed) solves every entry, so this is its per-pair rate",
    "cost.asymptote_pairs_per_s": "1 / c: the pairwise rate as n grows without bound",
    "speedup.one_core.speedup": "independent pairs/s on one thread over the exact LP's on one core (interleaved rounds)",
    "speedup.one_core.pairwise@": "the pairwise pairs/s at n over the exact LP's on one core",
    "speedup.all_cores.speedup@": "independent pairs/s on all threads over the exact LP's through the pool of all cores",
    "vs_best": "paired t-test over seeds against the best method of the same class, Holm-corrected: worse at p < 0.05, "
               "else tied",
    "status": "ok, or failed / unavailable / partial with the first line of the error",
}
"""Hover help and legend text per leaderboard column (record key, or summary column)."""


def _help(key: str) -> str:
    for prefix in (k for k in COLUMN_HELP if k.endswith("@")):
        if key.startswith(prefix):
            return COLUMN_HELP[prefix]
    return COLUMN_HELP.get(key, "")


def mean_cell(mean: float, std: float, *, spread: bool = True, column: Column | None = None) -> Cell:
    """``mean`` with ``± std`` beside it (when ``spread`` and the std is known), sorted by the
    mean; printed as ``column`` prints it (e.g. a parameter count in full) when given."""
    text = column.text(mean) if column is not None else format_number(mean)
    if not text:
        return Cell("", math.nan)
    content = esc(text)
    if spread and std is not None and not math.isnan(std):
        content += f'<span class="spread">± {esc(format_number(std))}</span>'
    return Cell(content, float(mean))


def leaderboard_table(
    block: pd.DataFrame,
    columns: Sequence[Column],
    *,
    method_href: Mapping[str, str] | None = None,
    table_id: str = "",
) -> str:
    """The leaderboard of one dataset (rows of a :func:`wbench.board.leaderboard.summarise` table).

    Failed and partial rows are greyed (class ``failed``).
    """
    headers = [("rank", _help("rank")), ("method", _help("method")), ("class", _help("class")), ("seeds", _help("seeds"))]
    headers += [(c.header, _help(c.key)) for c in columns]
    has_vs = "vs_best" in block.columns
    if has_vs:
        headers.append(("vs best in class", _help("vs_best")))
    has_flags = "flags" in block.columns
    if has_flags:
        headers.append(("flags", _help("flags")))
    headers.append(("status", _help("status")))
    rows = []
    for _, r in block.iterrows():
        method = str(r["method"])
        href = (method_href or {}).get(method)
        name = f'<a href="{esc(href)}">{esc(method)}</a>' if href else esc(method)
        ranked = pd.notna(r["rank"])  # partial and failed rows are listed unranked, below the others
        rank_cell = Cell(esc(int(r["rank"])), float(r["rank"])) if ranked else Cell("", math.inf)
        cells = [rank_cell, Cell(name), text_cell(str(r.get("class", ""))), Cell(esc(int(r["seeds"])), float(r["seeds"]))]
        for c in columns:
            cells.append(mean_cell(r[f"{c.key}.mean"], r.get(f"{c.key}.std", math.nan), spread=c.spread, column=c))
        if has_vs:
            cells.append(text_cell(r["vs_best"]))
        if has_flags:
            cells.append(text_cell(str(r["flags"]), "wrap"))
        status = str(r["status"])
        cells.append(text_cell(status if status == "ok" else f"{status}: {r['error']}"[:120], "wrap"))
        rows.append((cells, "" if status == "ok" else "failed"))
    return table(headers, rows, table_id=table_id)


def main_leaderboard_table(block: pd.DataFrame, *, method_href: Mapping[str, str] | None = None,
                           table_id: str = "", limit: int | None = None) -> str:
    """The nine-column main table of one dataset (:func:`wbench.board.main_table.main_table`),
    method names linked to their pages; sorted as shown (class, then rank); the first
    ``limit`` rows when given."""
    from wbench.board.main_table import main_table

    shown = main_table(block).drop(columns=["dataset"])
    if limit is not None:
        shown = shown.head(limit)
    headers = [(str(c), _help(_MAIN_HELP.get(str(c), str(c)))) for c in shown.columns]
    sort_keys = _main_sort_keys(block, list(shown.columns))
    rows = []
    for i, (_, r) in enumerate(shown.iterrows()):
        href = (method_href or {}).get(str(r["method"]))
        name = f'<a href="{esc(href)}">{esc(r["method"])}</a>' if href else esc(r["method"])
        cells = [Cell(name)]
        for c in shown.columns[1:]:
            key = sort_keys.get(c)
            value = float(block.iloc[i][key]) if key is not None and r[c] else math.nan
            css = {"flags": "flags", "class": "nowrap"}.get(str(c), "")
            cells.append(Cell(esc(r[c]), value) if math.isfinite(value) else text_cell(r[c], css))
        rows.append((cells, ""))
    return table(headers, rows, table_id=table_id, css="main")


def _main_sort_keys(block: pd.DataFrame, headers: list[str]) -> dict[str, str]:
    """Main-table header -> the summary column its cells sort by (numbers, not their text)."""
    keys = {"params": "n_parameters.mean", "rel. MAE (%)": "test.w2.rel_mae.mean", "Pearson": "test.w2.pearson.mean",
            "speed-up indep.": "speedup.one_core.mean"}
    for header in headers:
        prefix = "retrieval.recall@" if header.startswith("recall@") else "speedup.pairwise" if header.startswith(
            "speed-up pairwise") else None
        found = [c for c in block.columns if prefix and c.startswith(prefix) and c.endswith(".mean")]
        if found:
            keys[header] = sorted(found)[0]
    return {h: k for h, k in keys.items() if k in block.columns and h in headers}


_MAIN_HELP = {"class": "class", "rel. MAE (%)": "test.w2.rel_mae", "Pearson": "test.w2.pearson",
              "speed-up indep.": "speedup.one_core.speedup", "flags": "flags", "method": "method"}


def failed_list(block: pd.DataFrame) -> str:
    """A list of the failed and partial rows with their error, or an empty string."""
    bad = block[block["status"] != "ok"]
    if bad.empty:
        return ""
    items = "".join(
        f"<li><strong>{esc(r['method'])}</strong>: {esc(r['status'])}"
        + (f" — <code>{esc(r['error'])}</code>" if r["error"] else "") + "</li>"
        for _, r in bad.iterrows()
    )
    return f'<h3>Failed and partial cells</h3>\n<ul class="failed">{items}</ul>\n'


def legend(columns: Sequence[Column], *, with_vs_best: bool) -> str:
    """A definition list explaining each column shown."""
    entries = [("rank", "rank"), ("method", "method"), ("class", "class"), ("seeds", "seeds")]
    entries += [(c.header, c.key) for c in columns]
    if with_vs_best:
        entries.append(("vs best in class", "vs_best"))
    entries.append(("status", "status"))
    items = "".join(f"<dt>{esc(h)}</dt><dd>{esc(_help(k))}</dd>" for h, k in entries if _help(k))
    return (
        '<details class="legend-box"><summary>Column meanings</summary>'
        f'<dl class="legend">{items}</dl>'
        "<p class=\"muted\">Numbers are the mean over the seeds that finished; the grey figure beside "
        "each is the standard deviation over seeds. Click a header to sort.</p></details>\n"
    )


FOLD_CHARS = 48
"""A ``fold`` cell longer than this shows its start; the rest opens on a click."""


def folded_cell(text: str, css: str = "") -> Cell:
    """A long text cell as a ``<details>``: its first clause (up to the first ``;``, cut at a
    word within :data:`FOLD_CHARS` characters) as the summary, the whole text inside; short
    text as is."""
    if len(text) <= FOLD_CHARS:
        return text_cell(text, css)
    head = text.split(";", 1)[0]
    if len(head) > FOLD_CHARS:
        head = head[:FOLD_CHARS].rsplit(" ", 1)[0]
    return Cell(f'<details class="cell"><summary>{esc(head)} …</summary>{esc(text)}</details>', None, css)


def frame_table(frame: pd.DataFrame, *, table_id: str = "", wrap: Sequence[str] = (), fold: Sequence[str] = (),
                css: str = "") -> str:
    """Any data frame as a sortable table: numeric columns sorted numerically and printed
    like the leaderboard, text columns as text (``wrap`` columns may wrap; long text in a
    ``fold`` column shows its first clause, the rest in a closed ``<details>``)."""
    headers = [(str(c), "") for c in frame.columns]
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for c in frame.columns:
            value = r[c]
            if isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(Cell(esc(format_number(float(value))), float(value)))
            else:
                text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
                cls = "wrap" if c in wrap else ""
                cells.append(folded_cell(text, cls) if c in fold else text_cell(text, cls))
        rows.append((cells, ""))
    return table(headers, rows, table_id=table_id, css=css)


CLAIM_WRAP = ("claim", "paper_value", "our_value", "verdict", "budget", "note")
"""Claims-table columns that wrap; ``budget`` and ``note`` fold their long text (:func:`folded_cell`)."""


def is_claims(section: Section) -> bool:
    """Whether ``section`` is a table of the papers' claims (a ``claim`` column)."""
    return "claim" in section.table.columns


def plugin_section(section: Section, *, table_id: str, open_: bool | None = None) -> str:
    """One section a plugin contributed (e.g. the papers' claims) with its heading.

    :param open_: shown under an ``h2`` when true; folded into a closed ``<details>`` (its
        title the summary) when false. By default, the claims are shown and the rest folded.
    """
    shown = is_claims(section) if open_ is None else open_
    columns = section.table.columns
    body = frame_table(section.table, table_id=table_id, wrap=tuple(c for c in CLAIM_WRAP if c in columns),
                       fold=tuple(c for c in ("budget", "note") if c in columns),
                       css="claims" if is_claims(section) else "")
    note = f'<p class="note">{esc(section.note)}</p>\n' if section.note else ""
    if shown:
        return f"<h2>{esc(section.title)}</h2>\n{note}" + body
    return f'<details class="section"><summary>{esc(section.title)}</summary>\n{note}{body}</details>\n'


def transfer_section(matrix: pd.DataFrame, *, table_id: str, folded: bool = False) -> str:
    """The cross-dataset transfer matrix with its heading (in a closed ``<details>`` when
    ``folded``), or an empty string when none."""
    if matrix.empty:
        return ""
    frame = matrix.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    body = ("<p>Test MSE on W2; rows: trained on, columns: tested on (mean over seeds).</p>\n"
            + frame_table(frame, table_id=table_id))
    if folded:
        return f'<details class="section"><summary>Cross-dataset transfer</summary>\n{body}</details>\n'
    return "<h2>Cross-dataset transfer</h2>\n" + body
