"""Leaderboards computed from run records: mean and spread over seeds, ranked by a metric.

Rendering is deterministic (sorted rows, fixed number formats), so regenerating a
leaderboard from the same records gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbench.board.flags import add_flags
from wbench.board.frame import (  # noqa: F401
    DuplicateCellError,
    DuplicateCellWarning,
    leaderboard_frame,
    load_records,
    records_frame,
)
from wbench.board.main_table import FRONT_LEGEND, LP_SPREAD, add_front, main_table
from wbench.plugin.manager import Plugins

# Re-exported: ``wbench.board.leaderboard`` stays the one import for columns and loading.
from wbench.records.columns import (  # noqa: F401
    COLUMNS,
    Column,
    UnknownColumnError,
    _format_number,
    cost_columns,
    resolve_columns,
    select_columns,
    speed_columns,
)
from wbench.run.suite import DEFAULT_PRIMARY_METRIC
from wbench.sections import (
    Section,
    SectionContext,
    collect_sections,
    markdown_line,
    markdown_table,
    render_section,
)
from wbench.stats import by_dataset, natural_key
from wbench.surrogate import METHOD_CLASSES, RANKED_CLASSES
from wbench.util.filenames import safe_stem

BY_CONSTRUCTION = "metric by construction"
"""What the axiom columns show for a method whose records say its distances are Euclidean
distances between embeddings (``metric_by_construction``)."""


def summarise(df: pd.DataFrame, *, primary: str, columns: Sequence[Column] = COLUMNS) -> pd.DataFrame:
    """Per dataset and method: mean (and std over seeds) of each column, ranked by ``primary``.

    Failed or unavailable cells are kept as rows with their status and first error line.
    Only rows with full coverage (every test pair has a value in every seed) and a value of
    ``primary`` are ranked; a row whose solver left pairs unsolved is listed below them,
    unranked (rank NaN), with status ``partial (coverage ...)``, then the rows without a
    value (failed cells), unranked too. The ``coverage`` column (the lowest coverage over the
    row's seeds) is present when some row lacks full coverage.

    ``seeds`` counts the seeds whose ``primary`` value is finite: the values its mean averages.

    :raises wbench.run.suite_check.UnknownMetricError: ``primary`` is not a column of any
        finished record (listing those that are).
    """
    _check_primary_column(df, primary)
    present = resolve_columns(df, columns)
    if primary in df.columns and primary not in {c.key for c in present}:
        present.append(Column(primary, primary))  # the ranking metric is always averaged
    out_rows = [
        _summary_row(dataset, method, group, primary=primary, present=present)
        for (dataset, method), group in df.groupby(["dataset", "method"], sort=True, dropna=False)
    ]
    table = pd.DataFrame(out_rows)
    if table.empty:
        return table
    table = add_front(add_flags(_rank_rows(table, primary)))
    labels = significance_labels(df, primary)
    table["vs_best"] = [labels.get((d, m), "") for d, m in zip(table["dataset"], table["method"], strict=True)]
    return table


def _summary_row(
    dataset: Any, method: Any, group: pd.DataFrame, *, primary: str, present: Sequence[Column]
) -> dict[str, Any]:
    """One leaderboard row for the records ``group`` of one (dataset, method) cell.

    Holds the seed count, unit, column means and stds over the ``ok`` seeds, the lowest
    coverage, the status (``ok``, ``partial ...`` or the failure statuses) and the first error.
    """
    ok = group[group["status"] == "ok"]
    units = sorted({u for u in group["unit"] if u}) if "unit" in group else []
    averaged = pd.to_numeric(ok[primary], errors="coerce") if primary in ok else pd.Series(dtype=float)
    n_seeds = int(np.isfinite(averaged.to_numpy(dtype=float)).sum())
    classes = sorted({str(c) for c in group["class"].dropna()}) if "class" in group else []
    row: dict[str, Any] = {"dataset": dataset, "method": method, "class": classes[0] if len(classes) == 1 else "learned",
                           "seeds": n_seeds, "unit": "/".join(units)}
    if "metric_by_construction" in group.columns:
        flags = ok["metric_by_construction"].dropna()
        row["metric_by_construction"] = bool(len(flags)) and bool(flags.astype(bool).all())
    for column in present:
        values = pd.to_numeric(ok[column.key], errors="coerce").dropna() if len(ok) else pd.Series(dtype=float)
        row[f"{column.key}.mean"] = float(values.mean()) if len(values) else math.nan
        row[f"{column.key}.std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    covered = pd.to_numeric(ok["coverage"], errors="coerce").dropna() if "coverage" in ok and len(ok) else []
    row["coverage"] = float(min(covered)) if len(covered) else math.nan
    statuses = sorted(set(group["status"]) - {"ok"})
    row["status"] = "ok" if not statuses else ("partial: " if len(ok) else "") + "/".join(statuses)
    if row["coverage"] < 1.0:
        row["status"] = f"partial (coverage {row['coverage']:.4g})" + ("" if not statuses else "; " + row["status"])
    errors = [e for e in group["error"] if e]
    row["error"] = errors[0] if errors else ""
    row.update(_flag_facts(ok))
    return row


def _flag_facts(ok: pd.DataFrame) -> dict[str, Any]:
    """What :func:`wbench.board.flags.add_flags` reads of a row's ``ok`` records."""
    def largest(column: str) -> float:
        values = pd.to_numeric(ok[column], errors="coerce").dropna() if column in ok and len(ok) else []
        return float(max(values)) if len(values) else math.nan

    units = sorted(set(ok["milestone_unit"].dropna())) if "milestone_unit" in ok and len(ok) else []
    drops = pd.to_numeric(ok["fit.val_drop"], errors="coerce").dropna() if "fit.val_drop" in ok and len(ok) else []
    texts = [t for t in ok["not_defaults"] if t] if "not_defaults" in ok and len(ok) else []
    return {"_milestone": largest("milestone"), "_unit": units[0] if units else "", "_n_test": largest("test.n_pairs"),
            "_val_drop": float(np.mean(drops)) if len(drops) else math.nan, "_not_defaults": texts[0] if texts else "",
            LP_SPREAD: largest(LP_SPREAD)}


def _rank_rows(table: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Sort the non-empty summary ``table`` per dataset and insert the ``rank`` column.

    Rows are listed by class (:data:`wbench.surrogate.METHOD_CLASSES`: learned, hybrid, then
    the reference classes). Within a ranked class, ranked rows (full coverage, a ``primary``
    mean) come first by that mean and get ranks 1, 2, ... of their class; then partial rows,
    then rows without the primary metric, both unranked (rank NaN). Reference rows (untrained
    embeddings, solvers) are never ranked. ``coverage`` is dropped when every row has full
    coverage; ranks are ints when every row is ranked.
    """
    key = f"{primary}.mean"
    if key not in table.columns:  # e.g. every cell failed: rank by nothing, render the statuses
        table[key] = math.nan
        table[f"{primary}.std"] = math.nan
    partial = table["coverage"] < 1.0
    table["_partial"] = partial
    # ranked rows first, then partial ones, then rows without the primary metric (failed)
    table["_group"] = partial.astype(int) + 2 * table[key].isna().astype(int)
    order = {c: i for i, c in enumerate(METHOD_CLASSES)}
    table["_class"] = [order.get(c, 0) for c in table["class"]]
    table["_dataset"] = table["dataset"].map({d: i for i, d in enumerate(sorted(set(table["dataset"]), key=natural_key))})
    table = table.sort_values(["_dataset", "_class", "_group", key, "method"], na_position="last",
                              kind="mergesort").reset_index(drop=True)
    rankable = (table["_group"] == 0) & table["class"].isin(RANKED_CLASSES)
    ranks = table[rankable].groupby(["dataset", "class"]).cumcount() + 1
    table.insert(1, "rank", ranks.reindex(table.index).astype(float))
    if not table["_partial"].any():
        table = table.drop(columns=["coverage"])
    if rankable.all():
        table["rank"] = table["rank"].astype(int)
    return table.drop(columns=["_partial", "_group", "_class", "_dataset"])

_NOT_METRICS = frozenset({"key", "class", "dataset", "method", "method_name", "seed", "status", "error", "trainable", "device", "unit"})


def _check_primary_column(df: pd.DataFrame, primary: str) -> None:
    """Refuse ranking by a column no finished record has (it would rank by nothing)."""
    from wbench.run.suite_check import check_primary

    if primary in df.columns or "status" not in df.columns or not (df["status"] == "ok").any():
        return  # nothing finished: the rows show their statuses, whatever the metric
    check_primary(primary, [c for c in df.columns if c not in _NOT_METRICS], where="ranking metric (--primary)")


def significance_labels(df: pd.DataFrame, primary: str) -> dict[tuple[str, str], str]:
    """(dataset, ranked method) -> how it compares with the best method of its class on ``primary``.

    ``best``, ``worse (p=...)`` when a paired t-test over seeds (Holm-corrected) rejects
    equality at 5 %, ``tied (p=...)`` when it does not, or ``n/a`` with fewer than two
    matched seeds. Reference rows (untrained embeddings, solvers) are not compared.
    """
    if "class" not in df.columns:
        return _class_labels(df, primary)
    labels: dict[tuple[str, str], str] = {}
    for name in RANKED_CLASSES:
        labels.update(_class_labels(df[df["class"] == name], primary))
    return labels


def _class_labels(df: pd.DataFrame, primary: str) -> dict[tuple[str, str], str]:
    """:func:`significance_labels` among the methods of ``df`` (one class)."""
    from wbench.stats import significance

    if "class" not in df.columns and "trainable" in df.columns:
        df = df[[bool(v) if pd.notna(v) else False for v in df["trainable"]]]
    if df.empty or primary not in df.columns or df[df["status"] == "ok"].empty:
        return {}
    lower = next((c.lower_is_better for c in COLUMNS if c.key == primary), True)
    table = significance(df, primary, primary_lower_is_better=lower is not False)
    labels: dict[tuple[str, str], str] = {}
    for _, row in table.iterrows():
        dataset = row.get("dataset")
        labels[(dataset, row["best"])] = "best"
        if str(row["test"]).startswith("n/a"):
            labels[(dataset, row["method"])] = "n/a"
        else:
            verdict = "worse" if row["significant"] else "tied"
            labels[(dataset, row["method"])] = f"{verdict} (p={_format_number(float(row['p_holm']))})"
    return labels


def _means_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's ``<key>.mean`` columns under their record keys (one row per method)."""
    means = [k for k in summary.columns if k.endswith(".mean")]
    return pd.DataFrame({k.removesuffix(".mean"): summary[k] for k in means}, index=summary.index)


def display_table(summary: pd.DataFrame, *, columns: Sequence[Column] = COLUMNS) -> pd.DataFrame:
    """The human-readable table: ``mean ± std`` strings, headers from ``columns``."""
    shown = [
        c for c in resolve_columns(_means_frame(summary), columns)
        if f"{c.key}.mean" in summary.columns
    ]
    rows = []
    for _, r in summary.iterrows():
        rank = "" if pd.isna(r["rank"]) else int(r["rank"])
        row = {"dataset": r["dataset"], "rank": rank, "method": r["method"], "class": r.get("class", ""),
               "seeds": int(r["seeds"])}
        if "coverage" in summary.columns:
            row["coverage"] = _format_number(r["coverage"])
        by_construction = bool(r.get("metric_by_construction", False) is True)
        for c in shown:
            mean, std = r[f"{c.key}.mean"], r[f"{c.key}.std"]
            text = c.text(mean)
            if c.spread and text and not math.isnan(std):
                text += f" ± {_format_number(std)}"
            if by_construction and c.key.startswith("axioms."):
                text = BY_CONSTRUCTION  # Euclidean embeddings: the audit can only show round-off
            row[c.header] = text
        if "vs_best" in summary.columns:
            row["vs best in class"] = r["vs_best"]
        if "flags" in summary.columns:
            row["flags"] = r["flags"]
        row["status"] = r["status"] if r["status"] == "ok" or not r["error"] else f"{r['status']}: {r['error']}"[:120]
        rows.append(row)
    return pd.DataFrame(rows)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a CSV text cell as a formula (OWASP "CSV injection")."""

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``= + - @``
    (or a tab, a carriage return) gets a leading ``'``; numbers, and text that is just a
    number (``-1.5``), stay as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS) or _NUMBER.fullmatch(value):
        return value
    return "'" + value


def render_csv(summary: pd.DataFrame) -> str:
    """The summary as CSV (raw means and stds), formula-like text neutralised (:func:`csv_cell`)."""
    safe = summary.copy()
    for key in safe.columns[[not pd.api.types.is_numeric_dtype(t) for t in safe.dtypes]]:
        safe[key] = safe[key].map(csv_cell).astype(safe[key].dtype)  # map would infer a float dtype
    safe.columns = [csv_cell(str(c)) for c in summary.columns]
    return safe.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def render_markdown(summary: pd.DataFrame, table: pd.DataFrame, *, primary: str, main: bool = True) -> str:
    """The display ``table`` of ``summary`` as Markdown: per dataset the nine-column main table
    (:func:`wbench.board.main_table.main_table`, unless ``main`` is False), then every column
    under ``### dataset: every column``; labels cannot break out of their cell or heading line."""
    legend = ("; a speed-up's ± also holds the exact LP's spread over its timing rounds). " + FRONT_LEGEND) if main else ")."
    parts = [f"Ranked by `{primary}` within each class (mean over seeds; ± is the standard deviation over seeds{legend}\n"]
    units = summary.groupby("dataset")["unit"].agg(lambda u: "/".join(sorted({x for x in u if x})))
    main_rows = main_table(summary) if main else pd.DataFrame(columns=["dataset"])
    for dataset, block in by_dataset(main_rows):
        unit = units.get(dataset, "")
        parts.append("\n" + markdown_line(f"### {dataset}" + (f" (W2 in {unit}s)" if unit else "")) + "\n\n")
        parts.append(markdown_table(block.drop(columns=["dataset"])))
        parts.append("\n")
    for dataset, block in by_dataset(table):
        heading = f"### {dataset}: every column" if main else f"### {dataset}" + (f" (W2 in {units.get(dataset)}s)" if units.get(dataset) else "")
        parts.append("\n" + markdown_line(heading) + "\n\n")
        parts.append(markdown_table(block.drop(columns=["dataset"])))
        parts.append("\n")
    return "".join(parts)


def render(summary: pd.DataFrame, fmt: str, *, primary: str, columns: Sequence[Column] = COLUMNS) -> str:
    """Render a summary as ``md`` (GitHub Markdown via tabulate), ``csv`` (raw means/stds) or ``html``
    (the bare table; :func:`leaderboard_text` gives the complete standalone page)."""
    if fmt == "csv":
        return render_csv(summary)
    table = display_table(summary, columns=columns)
    if fmt == "md":
        return render_markdown(summary, table, primary=primary, main=columns is COLUMNS)
    if fmt == "html":
        return table.to_html(index=False, border=0, escape=True) + "\n"
    raise ValueError(f"unknown leaderboard format {fmt!r}; choose md, csv or html")


def transfer_section(df: pd.DataFrame) -> list[Section]:
    """The core's own extra section: the cross-dataset transfer matrix, when recorded."""
    from wbench.stats import transfer_matrix

    if not any(c.startswith("transfer.") for c in df.columns):
        return []
    matrix = transfer_matrix(df)
    if matrix.empty:
        return []
    shown = matrix.map(lambda v: _format_number(float(v)) if pd.notna(v) else "")
    title = "Cross-dataset transfer (test MSE on W2; rows: trained on, columns: tested on)"
    return [Section(title, shown.reset_index())]


def sections_markdown(df: pd.DataFrame, plugins: Plugins, *, primary: str) -> str:
    """Markdown of the sections plugins contribute (``wbench_leaderboard_sections``, e.g. the
    papers' claims), then the transfer matrix when the records carry one."""
    context = SectionContext(primary=primary, fmt="md")
    sections = collect_sections(plugins.manager, df, context) + transfer_section(df)
    return "".join(render_section(section, "md") for section in sections)



def header_lines(df: pd.DataFrame, milestone: int | None) -> str:
    """The lines above a Markdown table: its milestone, and which parameters ``params`` counts
    (only for records that say: published leaderboards of older records stay unchanged)."""
    from wbench.board.learning_curves import milestone_values

    lines = []
    if milestone is not None:
        shown = ", ".join(f"{m:,}" for m in milestone_values(df))
        lines.append(
            f"At training milestone {milestone:,} (budget length in its unit, steps unless the suite counts epochs; "
            f"milestones of this run: {shown}). Methods with nothing to fit are evaluated once.\n"
        )
    if "n_parameters_trained" in df.columns:
        lines.append(
            "`params`: parameters used to compute distances (matched budgets match this count); "
            "`trained params`: all parameters training updates (e.g. DWE's decoder too).\n"
        )
    if "cost.pairwise_is_per_pair" in df.columns:
        solvers = df.loc[pd.to_numeric(df["cost.pairwise_is_per_pair"], errors="coerce") == 1, "method"]
        names = sorted({str(m) for m in solvers.dropna()})
        if names:
            lines.append(
                f"Solvers ({', '.join(names)}) have nothing to embed: their pairwise pairs/s is their per-pair "
                "rate (each of the n x n entries solved), and their asymptote the same figure.\n"
            )
    return "".join(line + "\n" for line in lines)


def write_speed_accuracy_plots(
    run_dirs: Iterable[str | Path], out_dir: Path, *, primary: str = DEFAULT_PRIMARY_METRIC, milestone: int | None = None,
    keep_newest: bool = False, frame: pd.DataFrame | None = None,
) -> list[Path]:
    """One speed against accuracy chart per dataset: independent and pairwise pairs/s against relative MAE.

    A run with milestones is drawn at ``milestone`` (default: the last).
    :param keep_newest: see :func:`load_records`.
    :param frame: the records already read (:func:`records_frame`); else read from ``run_dirs``.

    :returns: the PNG paths written, ``out_dir/speed-accuracy-<dataset>.png`` (the dataset
        label through :func:`wbench.util.filenames.safe_stem`).
    """
    from wbench.board.learning_curves import select_milestone
    from wbench.board.plots import plot_speed_accuracy

    full = frame if frame is not None else leaderboard_frame(run_dirs, keep_newest=keep_newest)
    df, _ = select_milestone(full, milestone)
    summary = summarise(df, primary=primary)
    speeds = speed_columns(list(summary.columns))  # the cost model's columns where the records have them
    error = "test.w2.rel_mae.mean"
    paths = []
    if set(speeds) != {"independent", "pairwise"} or error not in summary.columns:
        return paths
    (independent, x_independent), (pairwise, x_pairwise) = speeds["independent"], speeds["pairwise"]
    for dataset, block in by_dataset(summary):
        path = out_dir / f"speed-accuracy-{safe_stem(dataset)}.png"
        paths.append(
            plot_speed_accuracy(
                list(block["method"]), list(block[f"{independent}.mean"]), list(block[f"{pairwise}.mean"]),
                list(block[error]), path,
                title=f"{dataset}: speed against accuracy (device: {', '.join(sorted(set(df['device'].dropna())))})",
                x_labels=(x_independent, x_pairwise),
            )
        )
    return paths
