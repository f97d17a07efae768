"""Page bodies: the index of runs, one page per run, one page per (dataset, method) of a run."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from wbench.site import charts
from wbench.site.html import Cell, esc, page, table, text_cell
from wbench.site.source import RunData, claims, format_number, transfer
from wbench.site.tables import (
    claims_section,
    failed_list,
    leaderboard_table,
    legend,
    transfer_section,
)

ERROR_FLOOR = 1e-6
"""Errors below this (the exact LP's round-off) are drawn on the floor, their value in the hover."""


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: lower case, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


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
    budgets = []
    for b in _unique(json.dumps(r.get("budget") or {}, sort_keys=True) for r in recs):
        d = json.loads(b)
        if not d:
            continue
        parts = []
        if d.get("steps"):
            parts.append(f"{d['steps']:,} steps")
        elif d.get("epochs"):
            parts.append(f"{d['epochs']:,} epochs")
        if d.get("batch_size"):
            parts.append(f"batch {d['batch_size']:,}")
        if d.get("param_target"):
            parts.append(f"{d['param_target']:,} params")
        if d.get("time_limit_s"):
            parts.append(f"{d['time_limit_s']} s limit")
        budgets.append(", ".join(parts))
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
        "<p>Every published run of wbench: learned Wasserstein-2 surrogates against exact and "
        "entropic solvers, at a matched parameter budget. Each run page has the leaderboard, "
        "speed against accuracy, learning curves, the paper claims and, where evaluated, the "
        "cross-dataset transfer matrix; each method has its own page.</p>\n"
        + table(headers, rows, table_id="runs")
    )
    return page("wbench results", body, root="")


def _style_index(run: RunData) -> dict[str, int]:
    return {m: i for i, m in enumerate(sorted({str(m) for m in run.summary["method"]}))}


def _seeds_text(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def speed_charts(run: RunData, dataset: str, block: pd.DataFrame, prefix: str) -> str:
    """Two charts, independent and pairwise: pairs/s (log) against relative MAE of W2 (log),
    one trace per method (mean over seeds, error bar one std)."""
    error_key = "test.w2.rel_mae"
    if f"{error_key}.mean" not in block.columns:
        return ""
    styles = _style_index(run)
    out = []
    for mode, label in (("independent", "independent"), ("pairwise", "pairwise")):
        key = f"throughput.{mode}_pairs_per_s"
        if f"{key}.mean" not in block.columns:
            continue
        traces = []
        for _, r in block.iterrows():
            x, y = r[f"{key}.mean"], r[f"{error_key}.mean"]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            xs, ys = r.get(f"{key}.std", math.nan), r.get(f"{error_key}.std", math.nan)
            shown = max(y, ERROR_FLOOR)
            hover = (f"<b>{esc(r['method'])}</b><br>{label} pairs/s: {format_number(x)}"
                     + (f" ± {format_number(xs)}" if math.isfinite(xs) else "")
                     + f"<br>rel. MAE W2: {format_number(y)}" + (f" ± {format_number(ys)}" if math.isfinite(ys) else "")
                     + (" (round-off, drawn on the floor)" if y < ERROR_FLOOR else "")
                     + f"<br>{_seeds_text(int(r['seeds']))}")
            trace: dict[str, Any] = {
                "type": "scatter", "mode": "markers", "name": str(r["method"]), "x": [x], "y": [shown],
                "marker": charts.style(styles[str(r["method"])]), "text": [hover],
                "hovertemplate": "%{text}<extra></extra>",
            }
            if math.isfinite(xs):
                trace["error_x"] = {"type": "data", "array": [xs], "visible": True, "thickness": 1}
            if math.isfinite(ys) and y >= ERROR_FLOOR:
                trace["error_y"] = {"type": "data", "array": [ys], "visible": True, "thickness": 1}
            traces.append(trace)
        if not traces:
            continue
        lay = charts.layout(f"{dataset}: {label} mode", f"{label} pairs per second (log)",
                            "relative MAE of W2 (log; lower is better)", x_log=True, y_log=True)
        if any(r[f"{error_key}.mean"] < ERROR_FLOOR for _, r in block.iterrows()):
            lay["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": ERROR_FLOOR,
                              "y1": ERROR_FLOOR, "line": {"color": "#777777", "dash": "dot", "width": 1}}]
            lay["annotations"] = [{"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": math.log10(ERROR_FLOOR),
                                   "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#555555"},
                                   "text": f"floor: errors below {ERROR_FLOOR:g} (round-off)"}]
        out.append(charts.chart(f"{prefix}-speed-{mode}", traces, lay))
    if not out:
        return ""
    return (
        "<h3>Speed against accuracy</h3>\n<p>One point per method (mean over seeds; bars: one standard "
        f"deviation). Errors below {ERROR_FLOOR:g} (the exact LP's round-off) are drawn at {ERROR_FLOOR:g}. "
        "Up and to the left is better.</p>\n" + "".join(out)
    )


def learning_curves(run: RunData, dataset: str, block: pd.DataFrame, prefix: str) -> str:
    """Learning curves, one trace per method: the primary metric against the ``milestone``
    steps when the records have milestones, else the validation MSE per epoch from the fit
    reports (mean over seeds); empty when neither is recorded."""
    styles = _style_index(run)
    recs = [r for r in run.records if (r.get("dataset_label") or r.get("dataset")) == dataset and r.get("status") == "ok"]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_method.setdefault(str(r.get("label") or r.get("method")), []).append(r)
    traces = []
    milestones = any(r.get("milestone") is not None for r in recs)
    for method in sorted(by_method):
        rs = by_method[method]
        if milestones:
            points: dict[float, list[float]] = {}
            for r in rs:
                value = (r.get("metrics") or {}).get(run.primary)
                if r.get("milestone") is not None and value is not None:
                    points.setdefault(float(r["milestone"]), []).append(float(value))
            xs = sorted(points)
            ys = [sum(points[x]) / len(points[x]) for x in xs]
            ns = [len(points[x]) for x in xs]
        else:
            curves = [list((r.get("fit") or {}).get("val_mse") or []) for r in rs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            xs = list(range(1, length + 1))
            ys = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
            ns = [len(curves)] * length
        if not xs:
            continue
        what = run.primary if milestones else "validation MSE W2"
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": method, "x": xs, "y": ys,
            "line": charts.line_style(styles.get(method, 0)),
            "marker": {**charts.style(styles.get(method, 0)), "size": 7},
            "text": [f"<b>{esc(method)}</b><br>{'steps' if milestones else 'epoch'} {x:g}: {esc(what)} "
                     f"{format_number(y)}<br>{_seeds_text(n)}" for x, y, n in zip(xs, ys, ns, strict=True)],
            "hovertemplate": "%{text}<extra></extra>",
        })
    if not traces:
        return ("<h3>Learning curves</h3>\n<p class=\"muted\">No milestones or per-epoch validation "
                "losses are recorded for this dataset.</p>\n")
    if milestones:
        lay = charts.layout(f"{dataset}: {run.primary} at each milestone", "optimiser steps", run.primary, y_log=True)
        intro = "The primary metric at each recorded milestone (mean over seeds)."
    else:
        lay = charts.layout(f"{dataset}: validation MSE of W2 per epoch", "epoch", "validation MSE W2 (log)", y_log=True)
        lay["xaxis"].update({"tick0": 1, "dtick": max(1, math.ceil(max(len(t["x"]) for t in traces) / 10))})
        intro = ("The records have no milestones; these are the fit reports' validation MSE per epoch "
                 "(mean over seeds) of the learned methods.")
    return f"<h3>Learning curves</h3>\n<p>{intro}</p>\n" + charts.chart(f"{prefix}-learning", traces, lay)


def run_page(run: RunData, dataset_slugs: Mapping[str, str], methods: Mapping[tuple[str, str], MethodPage]) -> str:
    """One run: per dataset its leaderboard, failed cells, charts; then claims and transfer."""
    facts = run_facts(run)
    fact_rows = "".join(f"<li><strong>{esc(k)}</strong>: {esc(v)}</li>" for k, v in facts.items() if v)
    description = run.suite.get("description")
    parts = [f"<ul>{fact_rows}</ul>\n"]
    if description:
        parts.append(f"<p>{esc(description)}</p>\n")
    parts.append(f"<p>Ranked by <code>{esc(run.primary)}</code> (mean over seeds; the grey figure beside each "
                 "mean is the standard deviation over seeds). Datasets: "
                 + ", ".join(f'<a href="#{esc(dataset_slugs[d])}">{esc(d)}</a>' for d in run.datasets) + ".</p>\n")
    parts.append(legend(run.columns, with_vs_best="vs_best" in run.summary.columns))
    for dataset in run.datasets:
        ds = dataset_slugs[dataset]
        block = run.summary[run.summary["dataset"] == dataset]
        units = sorted({u for u in block["unit"] if u}) if "unit" in block else []
        unit = f" (W2 in {'/'.join(units)}s)" if units else ""
        hrefs = {m: p.href for (d, m), p in methods.items() if d == dataset}
        parts.append(f'<h2 id="{esc(ds)}">{esc(dataset)}{esc(unit)}</h2>\n')
        parts.append(leaderboard_table(block, run.columns, method_href=hrefs, table_id=f"leaderboard-{ds}"))
        parts.append(failed_list(block))
        parts.append(speed_charts(run, dataset, block, f"chart-{ds}"))
        parts.append(learning_curves(run, dataset, block, f"chart-{ds}"))
    parts.append(claims_section(claims(run), table_id="claims"))
    parts.append(transfer_section(transfer(run), table_id="transfer"))
    body = "".join(parts)
    return page(f"{run.name}: {facts['suite']} suite", body, root="../",
                breadcrumbs=[("all runs", "../index.html")], charts="Plotly.newPlot" in body)


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


def loss_chart(recs: Sequence[dict[str, Any]], method: str, div_id: str) -> str:
    """Training loss and validation MSE per epoch from the fit reports, one pair of traces per seed."""
    traces = []
    for r in recs:
        fit = r.get("fit") or {}
        for i, (key, label) in enumerate((("train_loss", "training loss"), ("val_mse", "validation MSE W2"))):
            values = fit.get(key) or []
            if not values:
                continue
            seed = r.get("seed")
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": f"{label}, seed {seed}",
                "x": list(range(1, len(values) + 1)), "y": list(values),
                "line": {**charts.line_style(int(seed or 0)), "dash": "solid" if i == 0 else "dash"},
                "marker": {**charts.style(int(seed or 0)), "size": 7},
                "hovertemplate": f"<b>{esc(method)}</b>, seed {seed}<br>{label}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
            })
    if not traces:
        return ""
    epochs = max(len(t["x"]) for t in traces)
    lay = charts.layout(f"{method}: loss per epoch", "epoch", "loss (log)", y_log=True)
    lay["xaxis"].update({"tick0": 1, "dtick": max(1, math.ceil(epochs / 10))})
    return "<h2>Loss curves</h2>\n" + charts.chart(div_id, traces, lay, kind="series")


def weights_chart(recs: Sequence[dict[str, Any]], method: str, div_id: str) -> str:
    """Learned weights from the fit reports (DeepKENN per layer, ODE-KENN per time point):
    the final weights of each seed and the starting weights of the first seed."""
    traces: list[dict[str, Any]] = []
    title = x_title = ""
    for r in recs:
        extra = (r.get("fit") or {}).get("extra") or {}
        seed = r.get("seed")
        if "layer_weights" in extra:
            w = extra["layer_weights"]
            x = list(w.get("layers") or range(len(w.get("final") or [])))
            title, x_title = f"{method}: learned weight per layer", "layer"
        elif "time_weights" in extra:
            w = extra["time_weights"]
            dt = float(w.get("dt") or 1.0)
            x = [round(i * dt, 6) for i in range(len(w.get("final") or []))]
            title, x_title = f"{method}: learned weight per integration time", "time t"
        else:
            continue
        if not traces and w.get("start"):
            traces.append({"type": "scatter", "mode": "lines+markers", "name": f"start (seed {seed})", "x": x,
                           "y": list(w["start"]), "line": {"color": "#999999", "dash": "dot", "width": 2},
                           "marker": {"color": "#999999", "size": 6},
                           "hovertemplate": "start<br>%{x}: %{y:.4g}<extra></extra>"})
        traces.append({"type": "scatter", "mode": "lines+markers", "name": f"final, seed {seed}", "x": x,
                       "y": list(w.get("final") or []), "line": charts.line_style(int(seed or 0)),
                       "marker": {**charts.style(int(seed or 0)), "size": 8},
                       "hovertemplate": f"final, seed {seed}<br>%{{x}}: %{{y:.4g}}<extra></extra>"})
    if not traces:
        return ""
    lay = charts.layout(title, x_title, "weight (log)", y_log=True)
    if any(isinstance(v, str) for t in traces for v in t["x"]):
        lay["xaxis"]["type"] = "category"  # layer names: a linear axis would draw nothing
    return "<h2>Learned weights</h2>\n" + charts.chart(div_id, traces, lay, kind="series")


def method_page(run: RunData, page_info: MethodPage, run_href: str, dataset_slug: str) -> str:
    """One method on one dataset of a run: per-seed figures, curves, weights, parameters,
    budget and provenance."""
    dataset, method = page_info.dataset, page_info.method
    recs = sorted(
        (r for r in run.records if (r.get("dataset_label") or r.get("dataset")) == dataset
         and str(r.get("label") or r.get("method")) == method),
        key=lambda r: (r.get("milestone") or 0, r.get("seed") if r.get("seed") is not None else -1),
    )
    row = run.summary[(run.summary["dataset"] == dataset) & (run.summary["method"] == method)]
    parts = []
    if not row.empty:
        r0 = row.iloc[0]
        parts.append(f"<p>Rank <strong>{int(r0['rank'])}</strong> on <code>{esc(run.primary)}</code> among "
                     f"{int((run.summary['dataset'] == dataset).sum())} methods on {esc(dataset)}; "
                     f"status {esc(r0['status'])}; {_seeds_text(int(r0['seeds']))} finished.</p>\n")
        parts.append("<h2>Leaderboard row</h2>\n"
                     + leaderboard_table(row, run.columns, table_id="summary"))
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
    parts.append("<h2>Seeds</h2>\n" + table(seed_headers, seed_rows, table_id="seeds"))
    errors = [(r.get("seed"), r.get("error")) for r in recs if r.get("error")]
    if errors:
        parts.append("<h3>Errors</h3>\n" + "".join(f"<p>seed {esc(s)}:</p>" + f'<pre class="json">{esc(e)}</pre>\n'
                                                   for s, e in errors))
    parts.append(loss_chart(recs, method, "chart-loss"))
    if page_info.images:
        figs = "".join(f'<figure class="figure"><img src="{esc(src)}" alt="{esc(cap)}" loading="lazy">'
                       f"<figcaption>{esc(cap)}</figcaption></figure>" for src, cap in page_info.images)
        parts.append("<h2>Predicted against exact</h2>\n<p>Predicted against exact W2 on the test pairs, with the "
                     f"identity line (plots written by the run).</p>\n<div class=\"figures\">{figs}</div>\n")
    parts.append(weights_chart(recs, method, "chart-weights"))
    first = recs[0] if recs else {}
    parts.append("<h2>Parameters</h2>\n<p>Method <code>" + esc(first.get("method")) + "</code>, parameters:</p>\n"
                 + _json_block(first.get("method_params") or {}))
    if first.get("eval_params"):
        parts.append("<p>Evaluation settings:</p>\n" + _json_block(first.get("eval_params")))
    describes = _unique(json.dumps(_compact(r.get("describe") or {}), sort_keys=True) for r in recs)
    if describes and describes != ["{}"]:
        parts.append("<p>What the method reports about itself (<code>describe</code>"
                     + (", first seed" if len(describes) > 1 else "") + "):</p>\n"
                     + _json_block(json.loads(describes[0])))
    parts.append("<h2>Budget</h2>\n" + _json_block(first.get("budget") or {})
                 + f"<p>Matched to the budget: {esc(first.get('match_budget'))}.</p>\n")
    prov_keys = sorted({k for r in recs for k in (r.get("provenance") or {})})
    prov_rows = []
    for k in prov_keys:
        values = _unique(json.dumps((r.get("provenance") or {}).get(k), sort_keys=True) for r in recs)
        prov_rows.append(([text_cell(k), text_cell("; ".join(values), "wrap")], ""))
    parts.append("<h2>Provenance</h2>\n<p>Values across the seeds' records (one when they agree).</p>\n"
                 + table([("field", ""), ("value", "")], prov_rows, sortable=False))
    body = "".join(parts)
    return page(f"{method} on {dataset}", body, root="../../",
                breadcrumbs=[("all runs", "../../index.html"), (run.name, f"../{run_href}#{dataset_slug}")],
                charts="Plotly.newPlot" in body)
