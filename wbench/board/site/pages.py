"""Page bodies: the index of runs, one page per run, one page per (dataset, method) of a run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from wbench.board.main_table import FRONT_LEGEND
from wbench.board.site.figures import (
    learning_curves,
    loss_chart,
    seeds_text,
    speed_charts,
    weights_chart,
)
from wbench.board.site.html import Cell, esc, page, table, text_cell
from wbench.board.site.label_chart import label_chart
from wbench.board.site.source import RunData, format_number, sections, transfer
from wbench.board.site.tables import (
    failed_list,
    leaderboard_table,
    legend,
    main_leaderboard_table,
    plugin_section,
    transfer_section,
)
from wbench.board.timing_section import timing_note
from wbench.records.read import milestone_of
from wbench.util.filenames import anchor_id
from wbench.util.filenames import (
    slug as slug,  # re-exported: build.py and standalone.py import it from here
)


@dataclass(frozen=True)
class MethodPage:
    """Where a method's page lives, relative to its run's folder, and the images it shows."""

    dataset: str
    method: str
    href: str
    images: tuple[tuple[str, str], ...] = ()


def _unique(values: Sequence[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None and v != ""})


def run_facts(run: RunData) -> dict[str, str]:
    """What the index lists per run: datasets, suite, budget, commit, device, dates."""
    recs = run.records
    # budgets that differ only in their length (a run's milestones) are listed as one, lengths in order
    lengths: dict[tuple[str, str], set[int]] = {}
    for b in _unique(json.dumps(r.get("budget") or {}, sort_keys=True) for r in recs):
        d = json.loads(b)
        if not d:
            continue
        unit = "steps" if d.get("steps") else ("epochs" if d.get("epochs") else "")
        rest = []
        if d.get("batch_size"):
            rest.append(f"batch {d['batch_size']:,}")
        if d.get("param_target"):
            rest.append(f"{d['param_target']:,} params")
        if d.get("time_limit_s"):
            rest.append(f"{d['time_limit_s']} s limit")
        lengths.setdefault((unit, ", ".join(rest)), set()).update([int(d[unit])] if unit else [])
    budgets = []
    for (unit, rest), values in lengths.items():
        length = f"{', '.join(f'{v:,}' for v in sorted(values))} {unit}" if values else ""
        budgets.append(", ".join(part for part in (length, rest) if part))
    prov = [r.get("provenance") or {} for r in recs]
    commits = _unique(
        (p.get("git_commit") or "")[:7] + ("+dirty" if p.get("git_dirty") else "") for p in prov if p.get("git_commit")
    )
    devices = _unique(
        f"{p.get('device_name') or p.get('device')}" + (f", {p['torch_threads']} thread(s)" if p.get("torch_threads") else "")
        for p in prov if p.get("device_name") or p.get("device")
    )
    dates = _unique((r.get("finished_at") or "")[:10] for r in recs)
    date = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else "")
    return {
        "datasets": ", ".join(run.datasets),
        "suite": str(run.suite.get("name") or ", ".join(_unique(r.get("suite") for r in recs))),
        "budget": "; ".join(_unique(budgets)),
        "commit": ", ".join(commits),
        "device": "; ".join(devices),
        "date": date,
    }


def index_page(runs: Sequence[RunData], hrefs: Mapping[str, str]) -> str:
    """The site's front page: one row per run, linking to the run's page."""
    headers = [("run", "results folder"), ("datasets", "datasets evaluated"), ("suite", "suite name"),
               ("methods", "method configurations"), ("records", "cells recorded (all seeds)"),
               ("budget", "training budget of the learned methods"), ("commit", "git commit of the run"),
               ("device", "device name and torch threads"), ("date", "date the cells finished (UTC)")]
    rows = []
    for run in runs:
        f = run_facts(run)
        n_methods = len(run.summary)
        cells = [Cell(f'<a href="{esc(hrefs[run.name])}">{esc(run.name)}</a>'), text_cell(f["datasets"]),
                 text_cell(f["suite"]), Cell(esc(n_methods), float(n_methods)),
                 Cell(esc(len(run.records)), float(len(run.records))), text_cell(f["budget"], "wrap"),
                 text_cell(f["commit"]), text_cell(f["device"]), text_cell(f["date"])]
        rows.append((cells, ""))
    body = (
        _headline(runs, hrefs)
        + "<h2>Runs</h2>\n<p>Every published run of wbench: learned Wasserstein-2 surrogates against exact and "
        "entropic solvers, at a matched parameter budget. Each run page has the leaderboard, "
        "speed against accuracy, learning curves, the paper claims and, where evaluated, the "
        "cross-dataset transfer matrix; each method has its own page.</p>\n"
        + table(headers, rows, table_id="runs")
    )
    return page("wbench results", body, root="", charts="Plotly.newPlot" in body)


HEADLINE_RUN = "mnist"
"""The run whose first dataset the index leads with (else the first run with a speed chart)."""
HEADLINE_ROWS = 6


def _headline(runs: Sequence[RunData], hrefs: Mapping[str, str]) -> str:
    """The index's first screen: the speed-accuracy chart (Pareto front drawn) of the headline
    run's first dataset and the top of its main table, linking to the run page."""
    ordered = sorted(runs, key=lambda r: r.name != HEADLINE_RUN)
    for run in ordered:
        if not run.datasets:
            continue
        dataset = run.datasets[0]
        block = run.summary[run.summary["dataset"] == dataset]
        charts_html = speed_charts(run, dataset, block, "headline", modes=("independent",), heading=False)
        if not charts_html:
            continue
        href = hrefs[run.name]
        return (f'<h2 id="headline">{esc(dataset)}: speed against accuracy</h2>\n' + charts_html
                + main_leaderboard_table(block, table_id="headline-table", limit=HEADLINE_ROWS)
                + f'<p>{esc(FRONT_LEGEND)} The top {HEADLINE_ROWS} rows; the whole table, the flags explained and '
                f'every column: <a href="{esc(href)}">{esc(run.name)}</a>.</p>\n')
    return ""


def run_page(run: RunData, dataset_slugs: Mapping[str, str], methods: Mapping[tuple[str, str], MethodPage]) -> str:
    """One run: a label-efficiency run's error against N first; per dataset its main table and
    speed-accuracy charts, every column and the learning curves below; then claims, transfer,
    and the run's facts and notes."""
    facts = run_facts(run)
    parts = [f"<p>{esc(FRONT_LEGEND)} Datasets: "
             + ", ".join(f'<a href="#{esc(dataset_slugs[d])}">{esc(d)}</a>' for d in run.datasets) + ".</p>\n"]
    parts.append(label_chart(run, "chart-labels"))  # a label-efficiency run's answer comes first
    for dataset in run.datasets:
        ds = dataset_slugs[dataset]
        block = run.summary[run.summary["dataset"] == dataset]
        units = sorted({u for u in block["unit"] if u}) if "unit" in block else []
        unit = f" (W2 in {'/'.join(units)}s)" if units else ""
        hrefs = {m: p.href for (d, m), p in methods.items() if d == dataset}
        parts.append(f'<h2 id="{esc(ds)}">{esc(dataset)}{esc(unit)}</h2>\n')
        parts.append(speed_charts(run, dataset, block, f"chart-{ds}", fold=("pairwise",)))
        parts.append(main_leaderboard_table(block, method_href=hrefs, table_id=f"main-{ds}"))
        parts.append(failed_list(block))
        parts.append(f"<details><summary>{esc(dataset)}: every column</summary>\n"
                     + leaderboard_table(block, run.columns, method_href=hrefs, table_id=f"leaderboard-{ds}")
                     + "</details>\n")
        parts.append(f'<details class="section"><summary>{esc(dataset)}: learning curves</summary>\n'
                     + learning_curves(run, dataset, block, f"chart-{ds}", heading=False) + "</details>\n")
    parts.extend(plugin_section(section, table_id=anchor_id(section.title)) for section in sections(run))
    parts.append(transfer_section(transfer(run), table_id="transfer", folded=True))
    parts.append(_about_run(run, facts))
    body = "".join(parts)
    return page(f"{run.name}: {facts['suite']} suite", body, root="../",
                breadcrumbs=[("all runs", "../index.html")], charts="Plotly.newPlot" in body)


def _about_run(run: RunData, facts: Mapping[str, str]) -> str:
    """The run's facts, its suite's description, the ranking and timing notes, the column legend."""
    fact_rows = "".join(f"<li><strong>{esc(k)}</strong>: {esc(v)}</li>" for k, v in facts.items() if v)
    parts = [f'<h2 id="about">About this run</h2>\n<ul>{fact_rows}</ul>\n']
    description = run.suite.get("description")
    if description:
        parts.append(f"<p>{esc(description)}</p>\n")
    parts.append(f"<p>Ranked by <code>{esc(run.primary)}</code> within each class (mean over seeds; the grey "
                 "figure or ± is the standard deviation over seeds; a speed-up's ± also holds the exact LP's spread "
                 "over its timing rounds).</p>\n")
    note = timing_note(run.frame, [run.path])
    if note:
        parts.append(f"<p>{esc(note.strip().replace('`', ''))}</p>\n")
    parts.append(legend(run.columns, with_vs_best="vs_best" in run.summary.columns))
    return "".join(parts)


def pretty_json(value: Any, indent: int = 0) -> str:
    """``value`` as indented JSON with sorted keys, lists of scalars kept on one line."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(str(k))}: {pretty_json(value[k], indent + 1)}" for k in sorted(value, key=str)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(pad + pretty_json(v, indent + 1) for v in value) + "\n" + "  " * indent + "]"
    return json.dumps(value, sort_keys=True, default=str)


def _json_block(value: Any) -> str:
    return f'<pre class="json">{esc(pretty_json(value))}</pre>\n'


def _compact(value: Any, limit: int = 12) -> Any:
    """Long lists shortened to their first ``limit`` items and a count, recursively."""
    if isinstance(value, dict):
        return {k: _compact(v, limit) for k, v in value.items()}
    if isinstance(value, list) and len(value) > limit:
        return [_compact(v, limit) for v in value[:limit]] + [f"... {len(value) - limit} more"]
    if isinstance(value, list):
        return [_compact(v, limit) for v in value]
    return value


def method_page(run: RunData, page_info: MethodPage, run_href: str, dataset_slug: str) -> str:
    """One method on one dataset of a run: per-seed figures, curves, weights, parameters,
    budget and provenance."""
    dataset, method = page_info.dataset, page_info.method
    recs = _method_records(run, dataset, method)
    parts = [
        _leaderboard_row_part(run, dataset, method),
        _seeds_part(run, recs),
        _errors_part(recs),
        loss_chart(_last_per_seed(recs), method, "chart-loss"),  # a milestone's fit report is a prefix of the last's
        _figures_part(page_info.images),
        weights_chart(_last_per_seed(recs), method, "chart-weights"),
        _settings_part(recs),
        _provenance_part(recs),
    ]
    body = "".join(parts)
    return page(f"{method} on {dataset}", body, root="../../",
                breadcrumbs=[("all runs", "../../index.html"), (run.name, f"../{run_href}#{dataset_slug}")],
                charts="Plotly.newPlot" in body)


def _method_records(run: RunData, dataset: str, method: str) -> list[dict[str, Any]]:
    """The run's records of ``method`` on ``dataset`` (by label), by milestone then seed."""
    return sorted(
        (r for r in run.records if (r.get("dataset_label") or r.get("dataset")) == dataset
         and str(r.get("label") or r.get("method")) == method),
        key=lambda r: (milestone_of(r.get("budget") or {}) or 0, r.get("seed") if r.get("seed") is not None else -1),
    )


def _last_per_seed(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of records sorted by milestone then seed (:func:`_method_records`), each seed's record at
    its last milestone, by seed (the records themselves when there are no milestones)."""
    last: dict[Any, dict[str, Any]] = {}
    for r in recs:
        last[r.get("seed")] = r
    return sorted(last.values(), key=lambda r: r.get("seed") if r.get("seed") is not None else -1)


def _leaderboard_row_part(run: RunData, dataset: str, method: str) -> str:
    """HTML: the method's rank sentence and its leaderboard row ("" when it has no row)."""
    row = run.summary[(run.summary["dataset"] == dataset) & (run.summary["method"] == method)]
    if row.empty:
        return ""
    r0 = row.iloc[0]
    rank = f"Rank <strong>{int(r0['rank'])}</strong>" if pd.notna(r0["rank"]) else "Not ranked"
    return (f"<p>{rank} on <code>{esc(run.primary)}</code> among "
            f"{int((run.summary['dataset'] == dataset).sum())} methods on {esc(dataset)}; "
            f"status {esc(r0['status'])}; {seeds_text(int(r0['seeds']))} finished.</p>\n"
            + "<h2>Leaderboard row</h2>\n" + leaderboard_table(row, run.columns, table_id="summary"))


def _seeds_part(run: RunData, recs: list[dict[str, Any]]) -> str:
    """HTML: the per-seed table (status, parameters, primary metric, MSE, fit time, steps)."""
    seed_headers = [("seed", ""), ("status", ""), ("params", "trainable parameters"),
                    (run.primary, "the run's primary metric"), ("MSE W2", "test MSE of W2"),
                    ("fit s", "seconds of fitting"), ("steps", "optimiser steps taken"),
                    ("stopped by", "what ended the fit"), ("finished", "UTC")]
    seed_rows = []
    for r in recs:
        m, fit = r.get("metrics") or {}, r.get("fit") or {}
        vals = [m.get(run.primary), m.get("test.w2.mse"), fit.get("wall_time_s")]
        cells = [Cell(esc(r.get("seed")), float(r.get("seed") or 0)), text_cell(r.get("status")),
                 Cell(esc(r.get("n_parameters")), float(r.get("n_parameters") or 0))]
        cells += [Cell(esc(format_number(v)), float(v)) if v is not None else Cell("", math.nan) for v in vals]
        cells += [Cell(esc(fit.get("steps") if fit.get("steps") is not None else ""),
                       float(fit["steps"]) if fit.get("steps") is not None else math.nan),
                  text_cell(fit.get("stopped_by")), text_cell(r.get("finished_at"))]
        seed_rows.append((cells, "" if r.get("status") == "ok" else "failed"))
    return "<h2>Seeds</h2>\n" + table(seed_headers, seed_rows, table_id="seeds")


def _errors_part(recs: list[dict[str, Any]]) -> str:
    """HTML: each failed seed's error ("" when none failed)."""
    errors = [(r.get("seed"), r.get("error")) for r in recs if r.get("error")]
    if not errors:
        return ""
    return "<h3>Errors</h3>\n" + "".join(f"<p>seed {esc(s)}:</p>" + f'<pre class="json">{esc(e)}</pre>\n'
                                        for s, e in errors)


def _figures_part(images: Sequence[tuple[str, str]]) -> str:
    """HTML: the run's predicted-against-exact plots, ``(src, caption)`` each ("" when none)."""
    if not images:
        return ""
    figs = "".join(f'<figure class="figure"><img src="{esc(src)}" alt="{esc(cap)}" loading="lazy">'
                   f"<figcaption>{esc(cap)}</figcaption></figure>" for src, cap in images)
    return ("<h2>Predicted against exact</h2>\n<p>Predicted against exact W2 on the test pairs, with the "
            f"identity line (plots written by the run).</p>\n<div class=\"figures\">{figs}</div>\n")


def _settings_part(recs: list[dict[str, Any]]) -> str:
    """HTML: method and evaluation parameters, what the method describes, and the budget."""
    first = recs[0] if recs else {}
    parts = ["<h2>Parameters</h2>\n<p>Method <code>" + esc(first.get("method")) + "</code>, parameters:</p>\n"
             + _json_block(first.get("method_params") or {})]
    if first.get("eval_params"):
        parts.append("<p>Evaluation settings:</p>\n" + _json_block(first.get("eval_params")))
    describes = _unique(json.dumps(_compact(r.get("describe") or {}), sort_keys=True) for r in recs)
    if describes and describes != ["{}"]:
        parts.append("<p>What the method reports about itself (<code>describe</code>"
                     + (", first seed" if len(describes) > 1 else "") + "):</p>\n"
                     + _json_block(json.loads(describes[0])))
    parts.append("<h2>Budget</h2>\n" + _json_block(first.get("budget") or {})
                 + f"<p>Matched to the budget: {esc(first.get('match_budget'))}.</p>\n")
    return "".join(parts)


def _provenance_part(recs: list[dict[str, Any]]) -> str:
    """HTML: a table of each provenance field's values across the records (one when they agree)."""
    prov_keys = sorted({k for r in recs for k in (r.get("provenance") or {})})
    prov_rows = []
    for k in prov_keys:
        values = _unique(json.dumps((r.get("provenance") or {}).get(k), sort_keys=True) for r in recs)
        prov_rows.append(([text_cell(k), text_cell("; ".join(values), "wrap")], ""))
    return ("<h2>Provenance</h2>\n<p>Values across the seeds' records (one when they agree).</p>\n"
            + table([("field", ""), ("value", "")], prov_rows, sortable=False))
