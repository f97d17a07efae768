"""Leaderboards computed from run records: mean and spread over seeds, ranked by a metric.

Rendering is deterministic (sorted rows, fixed number formats), so regenerating a
leaderboard from the same records gives the same bytes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from wbench.errors import WbenchError
from wbench.plugins import Plugins, make_plugin_manager
from wbench.records import Outcome, Record, RecordStore
from wbench.sections import Section, SectionContext, collect_sections, render_section
from wbench.suite import DEFAULT_PRIMARY_METRIC


@dataclass(frozen=True)
class Column:
    """A leaderboard column: record column ``key``, header text, and whether lower is better."""

    key: str
    header: str
    lower_is_better: bool | None = True
    spread: bool = True
    replaces: tuple[str, ...] = ()
    """Older columns this one supersedes: hidden when every record that has them has this one."""


COLUMNS: tuple[Column, ...] = (
    Column("n_parameters", "params", None, spread=False),
    Column("n_parameters_trained", "trained params", None, spread=False),
    Column("test.w2.mse", "MSE W2"),
    Column("test.w2.rel_mae", "rel. MAE W2"),
    Column("test.w2sq.mse", "MSE W2²"),
    Column("test.w2.pearson", "Pearson W2", False),
    Column("test.w2.spearman", "Spearman W2", False),
    Column("gap.w2.mse_ratio", "test/train MSE"),
    Column("fit.wall_time_s", "fit s"),
    Column("retrieval.recall@", "recall@k", False),
    Column("axioms.triangle_violation_rate", "triangle viol."),
    Column("axioms.symmetry_error", "symmetry err."),
    Column("throughput.independent_pairs_per_s", "indep. pairs/s", False),
    Column("throughput.pairwise_pairs_per_s", "pairwise pairs/s", False),
    Column("speedup.independent", "speed-up indep.", False),
    Column("speedup.pairwise", "speed-up pairwise", False),
    # the cost model's columns (records timed under the cost-model protocol only; see cost_columns)
    Column("cost.independent_pairs_per_s@", "indep. pairs/s (@k thr.)", False,
           replaces=("throughput.independent_pairs_per_s",)),
    Column("cost.pairwise_pairs_per_s@", "pairwise pairs/s n=@k", False, replaces=("throughput.pairwise_pairs_per_s",)),
    Column("cost.asymptote_pairs_per_s", "asymptote pairs/s 1/c", False),
    Column("speedup.one_core.speedup", "speed-up 1 core indep.", False, replaces=("speedup.independent",)),
    Column("speedup.one_core.pairwise@", "speed-up 1 core pairwise n=@k", False, replaces=("speedup.pairwise",)),
    Column("speedup.all_cores.speedup@", "speed-up all cores (@k thr.) indep.", False),
)
"""The columns shown by default, in order (absent ones are skipped)."""

LEADERBOARD_PAIRWISE_N = 1024
"""The ``n`` of the pairwise column when no record states its suite's ``pairwise_size``."""

BY_CONSTRUCTION = "metric by construction"
"""What the axiom columns show for a method whose records say its distances are Euclidean
distances between embeddings (``metric_by_construction``)."""


class DuplicateCellError(WbenchError):
    """Two run directories hold a record of the same cell (same key)."""


class DuplicateCellWarning(UserWarning):
    """A cell held by several run directories: only its newest record is kept (``keep_newest``)."""


def load_records(run_dirs: Iterable[str | Path], *, keep_newest: bool = False) -> list[Record]:
    """All records of the given run directories (or ``records.jsonl`` files), in order.

    A cell (record key) held by two of the directories would count twice: that is a
    :class:`DuplicateCellError` naming the key and both files, unless ``keep_newest``, which
    keeps the record finished last (the later directory on a tie) with a
    :class:`DuplicateCellWarning`. A directory given twice is read once.
    """
    found: dict[str, tuple[Record, Path]] = {}
    seen: set[Path] = set()
    for run_dir in run_dirs:
        path = Path(run_dir)
        store = RecordStore(path.parent if path.name.endswith(".jsonl") else path)
        if not store.path.exists():
            raise FileNotFoundError(f"no records at {store.path}")
        if store.path.resolve() in seen:
            continue
        seen.add(store.path.resolve())
        for record in store.load():
            if record.key not in found:
                found[record.key] = (record, store.path)
                continue
            other, other_path = found[record.key]
            cell = f"cell {record.key} ({record.dataset_label or record.dataset} / {record.label or record.method} / seed {record.seed})"
            if not keep_newest:
                raise DuplicateCellError(
                    f"{cell} is in both {other_path} and {store.path}: it would count twice; "
                    f"pass --keep-newest to keep only its newest record"
                )
            newer = (record.finished_at or "") >= (other.finished_at or "")
            kept, dropped = (store.path, other_path) if newer else (other_path, store.path)
            warnings.warn(f"{cell} is in both {other_path} and {store.path}: kept the newest ({kept}), dropped {dropped}",
                          DuplicateCellWarning, stacklevel=2)
            if newer:
                del found[record.key]  # re-inserted below, at its new position
                found[record.key] = (record, store.path)
    return [record for record, _ in found.values()]


def records_frame(records: Sequence[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record: identity columns plus every metric, throughput and transfer figure.

    :param records: :class:`~wbench.records.Record` objects (JSON objects are read with
        :meth:`~wbench.records.Record.from_dict`).
    """
    rows = []
    for item in records:
        r = item if isinstance(item, Record) else Record.from_dict(item)
        out = r.outcome or Outcome()
        row: dict[str, Any] = {
            "dataset": r.dataset_label or r.dataset,
            "dataset_name": r.dataset,
            "method": r.label or r.method,
            "method_name": r.method,
            "seed": r.seed,
            "status": r.status,
            "error": r.error.splitlines()[0] if r.error else "",
            "n_parameters": out.n_parameters if out.n_parameters_inference is None else out.n_parameters_inference,
            "trainable": out.trainable,
            "milestone": _milestone(r.budget),
            "milestone_unit": "steps" if (r.budget or {}).get("steps") is not None else "epochs",
            "batch_size": (r.budget or {}).get("batch_size"),
            "device": (r.provenance or {}).get("device_name"),
            "unit": out.unit or "",
        }
        row["coverage"] = record_coverage(r)
        row.update(out.metrics or {})
        row.update(out.throughput or {})
        row.update({f"transfer.{k}": v for k, v in (out.transfer or {}).items()})
        fit = out.fit or {}
        row["fit.steps"] = fit.get("steps")
        row["fit.wall_time_s"] = fit.get("wall_time_s")
        if out.metric_by_construction is not None:
            row["metric_by_construction"] = out.metric_by_construction
        if out.n_parameters_trained is not None:  # records before issue 18 lack both: no empty columns
            row["n_parameters_trained"] = out.n_parameters_trained
        if "cost" in fit:
            row["fit.pairs_seen"] = fit["cost"].get("pairs_seen")
        rows.append(row)
    return cost_columns(pd.DataFrame(rows))


def _stated(values: pd.Series) -> str:
    """One value as an integer string, or ``mixed`` when the rows disagree."""
    found = sorted({int(v) for v in pd.to_numeric(values, errors="coerce").dropna()})
    return str(found[0]) if len(found) == 1 else "mixed"


def leaderboard_pairwise_n(df: pd.DataFrame) -> int:
    """The one ``n`` of the pairwise column: the ``cost.pairwise_n`` most records state (ties:
    the largest), else :data:`LEADERBOARD_PAIRWISE_N`."""
    if "cost.pairwise_n" not in df.columns:
        return LEADERBOARD_PAIRWISE_N
    counts = pd.to_numeric(df["cost.pairwise_n"], errors="coerce").dropna().astype(int).value_counts()
    if counts.empty:
        return LEADERBOARD_PAIRWISE_N
    return int(max(counts.index, key=lambda n: (counts[n], n)))


def cost_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add the leaderboard's cost-model columns to a records frame (records without the
    ``cost.*`` keys get none, so older leaderboards render unchanged).

    * ``cost.independent_pairs_per_s@<threads>``: ``1 / (2 e + c)`` (pairs/s), the key naming
      the cost model's thread count (``mixed`` when records differ);
    * ``cost.pairwise_pairs_per_s@<n>``: ``n^2 / (o + 2 n e + n^2 c)`` at ONE ``n`` for every
      row (:func:`leaderboard_pairwise_n`), computed from each record's ``e``, ``c``, ``o``;
    * ``speedup.one_core.pairwise@<n>``: that rate over the one-core reference rate, for
      records whose cost model ran on one thread;
    * ``speedup.all_cores.speedup@<threads>``: the all-cores speed-up, the key naming the
      method's threads on that side.
    """
    if "cost.pair_s" not in df.columns:
        return df
    from wbench.costmodel import pairwise_pairs_per_s

    n = leaderboard_pairwise_n(df)
    has = pd.to_numeric(df["cost.pair_s"], errors="coerce").notna()
    out = df.copy()

    def rate(row: pd.Series) -> float:
        e, c = float(row.get("cost.embed_s", 0.0) or 0.0), float(row["cost.pair_s"])
        o = row.get("cost.call_s", 0.0)
        o = 0.0 if o is None or pd.isna(o) else float(o)
        try:
            return pairwise_pairs_per_s(e, c, n, call_s=o)
        except ValueError:
            return math.nan

    pairwise = pd.Series([rate(r) if h else math.nan for (_, r), h in zip(df.iterrows(), has, strict=True)],
                         index=df.index, dtype=float)
    threads = _stated(df.loc[has, "cost.threads"]) if "cost.threads" in df.columns else "mixed"
    out[f"cost.independent_pairs_per_s@{threads}"] = pd.to_numeric(df.get("cost.independent_pairs_per_s"), errors="coerce")
    out[f"cost.pairwise_pairs_per_s@{n}"] = pairwise
    if "speedup.one_core.lp_pairs_per_s" in df.columns:
        one_thread = pd.to_numeric(df.get("cost.threads"), errors="coerce") == 1
        lp = pd.to_numeric(df["speedup.one_core.lp_pairs_per_s"], errors="coerce")
        out[f"speedup.one_core.pairwise@{n}"] = (pairwise / lp).where(one_thread)
    if "speedup.all_cores.speedup" in df.columns:
        side = pd.to_numeric(df["speedup.all_cores.speedup"], errors="coerce")
        out[f"speedup.all_cores.speedup@{_stated(df.loc[side.notna(), 'speedup.all_cores.method_threads'])}"] = side
    return out


def record_coverage(record: Record) -> float:
    """Fraction of the record's test pairs with a value: its ``coverage``, or for a record
    written before wbench stored it, ``1 - test.n_failed / test.n_pairs`` (1.0 when
    ``test.n_failed`` is 0 or absent). NaN for a record that is not ``ok``."""
    if not record.ok:
        return math.nan
    out = record.outcome or Outcome()
    if out.coverage is not None:
        return float(out.coverage)
    metrics = out.metrics or {}
    failed, pairs = metrics.get("test.n_failed"), metrics.get("test.n_pairs")
    if not failed:
        return 1.0
    if not pairs:
        return 0.0
    return 1.0 - float(failed) / float(pairs)


def _milestone(budget: Mapping[str, Any]) -> int | None:
    """A record's milestone: the length of its budget in the budget's unit (steps, else epochs)."""
    value = budget.get("steps") if budget.get("steps") is not None else budget.get("epochs")
    return int(value) if value is not None else None


def _format_number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3g}"
    if float(value).is_integer() and magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.4g}"


def resolve_columns(df: pd.DataFrame, columns: Sequence[Column]) -> list[Column]:
    """The columns present in ``df``; a key ending in ``@`` matches e.g. ``recall@10`` (its
    header's ``@k`` becomes ``@10``; ``cost.pairwise_pairs_per_s@1024``'s ``n=@k``, ``n=1024``).
    A column whose ``replaces`` are all covered (every row with a value there has one in the
    new column) hides them."""
    present = []
    for column in columns:
        if column.key.endswith("@"):
            matches = sorted(c for c in df.columns if c.startswith(column.key))
            if matches:
                k = matches[0].removeprefix(column.key)
                at = "@" if column.key.endswith("recall@") else ""
                present.append(Column(matches[0], column.header.replace("@k", f"{at}{k}"), column.lower_is_better,
                                      column.spread, column.replaces))
        elif column.key in df.columns:
            present.append(column)
    hidden = {old for c in present for old in c.replaces if old in df.columns and _covers(df, c.key, old)}
    return [c for c in present if c.key not in hidden]


def _covers(df: pd.DataFrame, new: str, old: str) -> bool:
    """Whether every row with a value of ``old`` has one of ``new`` (an empty frame: yes)."""
    if df.empty:
        return True
    return bool((df[new].notna() | df[old].isna()).all())


def summarise(df: pd.DataFrame, *, primary: str, columns: Sequence[Column] = COLUMNS) -> pd.DataFrame:
    """Per dataset and method: mean (and std over seeds) of each column, ranked by ``primary``.

    Failed or unavailable cells are kept as rows with their status and first error line.
    Only rows with full coverage (every test pair has a value in every seed) and a value of
    ``primary`` are ranked; a row whose solver left pairs unsolved is listed below them,
    unranked (rank NaN), with status ``partial (coverage ...)``, then the rows without a
    value (failed cells), unranked too. The ``coverage`` column (the lowest coverage over the
    row's seeds) is present when some row lacks full coverage.

    ``seeds`` counts the seeds whose ``primary`` value is finite: the values its mean averages.

    :raises wbench.suite_check.UnknownMetricError: ``primary`` is not a column of any
        finished record (listing those that are).
    """
    _check_primary_column(df, primary)
    present = resolve_columns(df, columns)
    out_rows = []
    for (dataset, method), group in df.groupby(["dataset", "method"], sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        units = sorted({u for u in group["unit"] if u}) if "unit" in group else []
        averaged = pd.to_numeric(ok[primary], errors="coerce") if primary in ok else pd.Series(dtype=float)
        n_seeds = int(np.isfinite(averaged.to_numpy(dtype=float)).sum())
        row: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": n_seeds, "unit": "/".join(units)}
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
        out_rows.append(row)
    table = pd.DataFrame(out_rows)
    if table.empty:
        return table
    key = f"{primary}.mean"
    if key not in table.columns:  # e.g. every cell failed: rank by nothing, render the statuses
        table[key] = math.nan
        table[f"{primary}.std"] = math.nan
    partial = table["coverage"] < 1.0
    table["_partial"] = partial
    # ranked rows first, then partial ones, then rows without the primary metric (failed)
    table["_group"] = partial.astype(int) + 2 * table[key].isna().astype(int)
    table = table.sort_values(["dataset", "_group", key, "method"], na_position="last", kind="mergesort").reset_index(drop=True)
    rankable = table["_group"] == 0
    ranks = table[rankable].groupby("dataset").cumcount() + 1
    table.insert(1, "rank", ranks.reindex(table.index).astype(float))
    if not table["_partial"].any():
        table = table.drop(columns=["coverage"])
    if rankable.all():
        table["rank"] = table["rank"].astype(int)
    table = table.drop(columns=["_partial", "_group"])
    labels = significance_labels(df, primary)
    table["vs_best"] = [labels.get((d, m), "") for d, m in zip(table["dataset"], table["method"], strict=True)]
    return table


_NOT_METRICS = frozenset({"dataset", "method", "method_name", "seed", "status", "error", "trainable", "device", "unit"})


def _check_primary_column(df: pd.DataFrame, primary: str) -> None:
    """Refuse ranking by a column no finished record has (it would rank by nothing)."""
    from wbench.suite_check import check_primary

    if primary in df.columns or "status" not in df.columns or not (df["status"] == "ok").any():
        return  # nothing finished: the rows show their statuses, whatever the metric
    check_primary(primary, [c for c in df.columns if c not in _NOT_METRICS], where="ranking metric (--primary)")


def significance_labels(df: pd.DataFrame, primary: str) -> dict[tuple[str, str], str]:
    """(dataset, learned method) -> how it compares with the best learned method on ``primary``.

    ``best``, ``worse (p=...)`` when a paired t-test over seeds (Holm-corrected) rejects
    equality at 5 %, ``tied (p=...)`` when it does not, or ``n/a`` with fewer than two
    matched seeds. Solvers are deterministic and run once, so they are not compared.
    """
    from wbench.stats import significance

    if "trainable" in df.columns:
        df = df[[bool(v) if pd.notna(v) else False for v in df["trainable"]]]
    if primary not in df.columns or df[df["status"] == "ok"].empty:
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
        row = {"dataset": r["dataset"], "rank": rank, "method": r["method"], "seeds": int(r["seeds"])}
        if "coverage" in summary.columns:
            row["coverage"] = _format_number(r["coverage"])
        by_construction = bool(r.get("metric_by_construction", False) is True)
        for c in shown:
            mean, std = r[f"{c.key}.mean"], r[f"{c.key}.std"]
            text = _format_number(mean)
            if c.spread and text and not math.isnan(std):
                text += f" ± {_format_number(std)}"
            if by_construction and c.key.startswith("axioms."):
                text = BY_CONSTRUCTION  # Euclidean embeddings: the audit can only show round-off
            row[c.header] = text
        if "vs_best" in summary.columns:
            row["vs best learned"] = r["vs_best"]
        row["status"] = r["status"] if r["status"] == "ok" or not r["error"] else f"{r['status']}: {r['error']}"[:120]
        rows.append(row)
    return pd.DataFrame(rows)


def render(summary: pd.DataFrame, fmt: str, *, primary: str, columns: Sequence[Column] = COLUMNS) -> str:
    """Render a summary as ``md`` (GitHub Markdown via tabulate), ``csv`` (raw means/stds) or ``html``
    (the bare table; :func:`leaderboard_text` gives the complete standalone page)."""
    if fmt == "csv":
        return summary.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    table = display_table(summary, columns=columns)
    if fmt == "md":
        parts = [f"Ranked by `{primary}` (mean over seeds; ± is the standard deviation over seeds).\n"]
        units = summary.groupby("dataset")["unit"].agg(lambda u: "/".join(sorted({x for x in u if x})))
        for dataset, block in table.groupby("dataset", sort=True):
            unit = units.get(dataset, "")
            parts.append(f"\n### {dataset}" + (f" (W2 in {unit}s)" if unit else "") + "\n\n")
            parts.append(tabulate(block.drop(columns=["dataset"]), headers="keys", tablefmt="github", showindex=False, disable_numparse=True))
            parts.append("\n")
        return "".join(parts)
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


class UnknownColumnError(WbenchError, ValueError):
    """A leaderboard column that is neither a known record key nor a known header."""


def select_columns(keys: Sequence[str]) -> tuple[Column, ...]:
    """The default columns restricted to ``keys``, each a record key (``retrieval.recall@``
    for recall@k) or a header as printed (``"rel. MAE W2"``), in the order given."""
    known = {c.key: c for c in COLUMNS} | {c.header: c for c in COLUMNS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        listing = ", ".join(f"{c.key} ({c.header})" for c in COLUMNS)
        raise UnknownColumnError(f"unknown leaderboard column {unknown[0]!r}; known: {listing}")
    return tuple(known[k] for k in keys)


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
) -> str:
    """Load records, summarise and render: the whole ``wbench leaderboard`` command.

    Records of a run with budget milestones are shown at ``milestone`` (default: the
    last; :func:`wbench.learning_curves.select_milestone`), with the learning-curve
    summary section in Markdown.

    Markdown also carries (``extras``) the sections plugins contribute, e.g. the papers'
    claims, and the transfer matrix when the records allow.

    :param plugins: the loaded plugins asked for sections; default
        :func:`wbench.plugins.make_plugin_manager` (entry points, ``$WBENCH_DISABLE_PLUGINS``).
    :param keep_newest: see :func:`load_records` (default: a cell in two directories is an error).

    HTML is a complete standalone page (:mod:`wbench.site.standalone`) with the same sections.
    """
    from wbench.learning_curves import budget_section, select_milestone

    full = records_frame(load_records(run_dirs, keep_newest=keep_newest))
    if full.empty:
        return "no records\n"
    df, chosen = select_milestone(full, milestone)
    if fmt == "html":  # a complete standalone page, with the same sections as the Markdown
        from wbench.site.standalone import leaderboard_page

        return leaderboard_page(df, primary=primary, columns=columns, extras=extras)
    text = render(summarise(df, primary=primary, columns=columns), fmt, primary=primary, columns=columns)
    if fmt == "md":  # the milestone and parameter notes follow the "Ranked by" line
        first, _, rest = text.partition("\n")
        header = _header(full, chosen)
        text = first + "\n" + ("\n" + header if header else "") + rest
    if fmt == "md" and extras:
        if plugins is None:
            plugins = make_plugin_manager()
        text += sections_markdown(df, plugins, primary=primary)
        units = sorted(set(full["milestone_unit"].dropna()))
        unit = units[0] if len(units) == 1 else "steps or epochs"
        text += "".join(render_section(section, "md") for section in budget_section(full, primary, unit=unit))
    return text


def _header(df: pd.DataFrame, milestone: int | None) -> str:
    """The lines above a Markdown table: its milestone, and which parameters ``params`` counts
    (only for records that say: published leaderboards of older records stay unchanged)."""
    from wbench.learning_curves import milestone_values

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
    return "".join(line + "\n" for line in lines)


def write_speed_accuracy_plots(
    run_dirs: Iterable[str | Path], out_dir: Path, *, primary: str = DEFAULT_PRIMARY_METRIC, milestone: int | None = None,
    keep_newest: bool = False,
) -> list[Path]:
    """One speed against accuracy chart per dataset: independent and pairwise pairs/s against relative MAE.

    A run with milestones is drawn at ``milestone`` (default: the last).
    :param keep_newest: see :func:`load_records`.

    :returns: the PNG paths written, ``out_dir/speed-accuracy-<dataset>.png``.
    """
    from wbench.learning_curves import select_milestone
    from wbench.plots import plot_speed_accuracy

    df, _ = select_milestone(records_frame(load_records(run_dirs, keep_newest=keep_newest)), milestone)
    summary = summarise(df, primary=primary)
    independent, pairwise = "throughput.independent_pairs_per_s.mean", "throughput.pairwise_pairs_per_s.mean"
    error = "test.w2.rel_mae.mean"
    paths = []
    if not {independent, pairwise, error} <= set(summary.columns):
        return paths
    for dataset, block in summary.groupby("dataset", sort=True):
        path = out_dir / f"speed-accuracy-{dataset}.png"
        paths.append(
            plot_speed_accuracy(
                list(block["method"]), list(block[independent]), list(block[pairwise]), list(block[error]), path,
                title=f"{dataset}: speed against accuracy (device: {', '.join(sorted(set(df['device'].dropna())))})",
            )
        )
    return paths
