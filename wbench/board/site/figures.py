"""The site's charts built from records: speed against accuracy, learning curves (run pages),
loss curves and learned weights (method pages)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from wbench.board.learning_curves import (
    off_axis_note,
    references,
    references_on_axis,
    without_milestone_suffix,
)
from wbench.board.site import charts
from wbench.board.site.html import esc
from wbench.board.site.source import RunData, format_number
from wbench.records.columns import speed_columns

ERROR_FLOOR = 1e-6
"""Errors below this (the exact LP's round-off) are drawn on the floor, their value in the hover."""


def style_index(run: RunData) -> dict[str, int]:
    """Method -> index of its marker style: the run's methods sorted, so a method looks the
    same in every chart of the run. A method named ``"<m> (at N)"`` in the table (its own
    milestones stop earlier) and ``<m>`` on its learning curve share one style."""
    names = {str(m) for m in run.summary["method"]}
    if not run.curves.empty:
        names |= {str(m) for m in run.curves["method"]}
    bases = sorted({without_milestone_suffix(name) for name in names})
    index = {base: i for i, base in enumerate(bases)}
    return {name: index[without_milestone_suffix(name)] for name in names}


def seeds_text(n: int) -> str:
    """``"1 seed"`` or ``"n seeds"``."""
    return f"{n} seed" + ("" if n == 1 else "s")


SPEED_CAPTION = (
    "<h3>Speed against accuracy</h3>\n<p>One point per method (mean over seeds; bars: one standard "
    f"deviation). Errors below {ERROR_FLOOR:g} (the exact LP's round-off) are drawn at {ERROR_FLOOR:g}. "
    "Down and to the right is better: lower error, more pairs per second. The dashed line joins the methods on "
    "the accuracy-speed Pareto front (no other method both more accurate and faster). Methods the timing pass did "
    "not time have no point.</p>\n"
)


def speed_charts(run: RunData, dataset: str, block: pd.DataFrame, prefix: str,
                 modes: Sequence[str] = ("independent", "pairwise")) -> str:
    """Two charts, independent and pairwise: pairs/s (log) against relative MAE of W2 (log),
    one trace per method (mean over seeds, error bar one std)."""
    error_key = "test.w2.rel_mae"
    if f"{error_key}.mean" not in block.columns:
        return ""
    styles = style_index(run)
    out = []
    speeds = speed_columns(list(block.columns))  # the cost model's columns where the records have them
    for mode, label in (("independent", "independent"), ("pairwise", "pairwise")):
        if mode not in speeds or mode not in modes:
            continue
        key, axis_title = speeds[mode]
        if key.startswith("cost."):
            axis_title = f"{axis_title}, log"
        else:
            axis_title = f"{label} pairs per second (log)"
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
                     + f"<br>{seeds_text(int(r['seeds']))}")
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
        if mode == "independent":  # the front is defined on the independent speed-up; pairwise orders differ
            traces.extend(_front_trace(block, key, error_key))
        lay = charts.layout(f"{dataset}: {label} mode", axis_title,
                            "relative MAE of W2 (log; lower is better)", x_log=True, y_log=True)
        if any(t["y"][0] <= ERROR_FLOOR for t in traces):  # a plotted method on the floor: say so
            lay["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": ERROR_FLOOR,
                              "y1": ERROR_FLOOR, "line": {"color": "#777777", "dash": "dot", "width": 1}}]
            lay["annotations"] = [{"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": math.log10(ERROR_FLOOR),
                                   "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#555555"},
                                   "text": f"floor: errors below {ERROR_FLOOR:g} (round-off)"}]
        out.append(charts.chart(f"{prefix}-speed-{mode}", traces, lay))
    if not out:
        return ""
    return SPEED_CAPTION + "".join(out)


def _front_trace(block: pd.DataFrame, key: str, error_key: str) -> list[dict[str, Any]]:
    """A dashed line through the methods on the accuracy-speed Pareto front (``front``), fastest last."""
    if "front" not in block.columns:
        return []
    on = block[block["front"].astype(bool)].sort_values(f"{key}.mean")
    on = on[[math.isfinite(v) for v in on[f"{key}.mean"]]]
    if len(on) < 2:
        return []
    return [{"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": list(on[f"{key}.mean"]),
             "y": [max(v, ERROR_FLOOR) for v in on[f"{error_key}.mean"]], "hoverinfo": "skip",
             "line": {"color": "#444444", "dash": "dash", "width": 1.5},
             "marker": {"color": "#444444", "size": 4, "symbol": "circle-open"}}]


def learning_curves(run: RunData, dataset: str, block: pd.DataFrame, prefix: str) -> str:
    """Learning curves, one trace per method: the primary metric against the training
    milestones when the run has them (``run.curves``: two charts, against optimiser steps and
    against training seconds, bars from the lowest to the highest seed, the untrained
    references as horizontal lines), else the validation MSE per epoch from the fit reports
    (mean over seeds); empty when neither is recorded."""
    curves = run.curves[run.curves["dataset"] == dataset] if not run.curves.empty else run.curves
    if not curves.empty:
        return _milestone_curves(run, dataset, curves, prefix)
    styles = style_index(run)
    traces = []
    for method, xs, ys, ns in _epoch_points(run, dataset):
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": method, "x": xs, "y": ys,
            "line": charts.line_style(styles.get(method, 0)),
            "marker": {**charts.style(styles.get(method, 0)), "size": 7},
            "text": [f"<b>{esc(method)}</b><br>epoch {x:g}: validation MSE W2 "
                     f"{format_number(y)}<br>{seeds_text(n)}" for x, y, n in zip(xs, ys, ns, strict=True)],
            "hovertemplate": "%{text}<extra></extra>",
        })
    if not traces:
        return ("<h3>Learning curves</h3>\n<p class=\"muted\">No milestones or per-epoch validation "
                "losses are recorded for this dataset.</p>\n")
    lay = charts.layout(f"{dataset}: validation MSE of W2 per epoch", "epoch", "validation MSE W2 (log)", y_log=True)
    lay["xaxis"].update({"tick0": 1, "dtick": max(1, math.ceil(max(len(t["x"]) for t in traces) / 10))})
    intro = ("The records have no milestones; these are the fit reports' validation MSE per epoch "
             "(mean over seeds) of the learned methods.")
    return f"<h3>Learning curves</h3>\n<p>{intro}</p>\n" + charts.chart(f"{prefix}-learning", traces, lay)


def _milestone_curves(run: RunData, dataset: str, curves: pd.DataFrame, prefix: str) -> str:
    """The two milestone charts of :func:`learning_curves` (steps, seconds), log-log."""
    styles = style_index(run)
    refs = references(run.frame, run.primary)
    refs = refs[refs["dataset"] == dataset]
    drawn, off_axis = references_on_axis(
        {str(r["method"]): float(r["value"]) for _, r in refs.iterrows()},
        [float(v) for k in ("mean", "min", "max") for v in curves[k]],
    )
    out = []
    for axis, title in (("milestone", "optimiser steps"), ("seconds", "training wall time (s)")):
        traces: list[dict[str, Any]] = []
        for method, group in curves.groupby("method", sort=True):
            group = group[(group["seeds"] > 0) & group[axis].notna()].sort_values("milestone")
            if group.empty:
                continue
            style = styles.get(str(method), 0)
            xs = [float(x) for x in group[axis]]
            ys = [float(v) for v in group["mean"]]
            texts = [
                f"<b>{esc(method)}</b><br>{int(r['milestone']):,} steps, {format_number(r['seconds'])} s of training"
                f"<br>{esc(run.primary)} {format_number(r['mean'])}"
                + (f" (seeds from {format_number(r['min'])} to {format_number(r['max'])})" if r["seeds"] > 1 else "")
                + f"<br>{seeds_text(int(r['seeds']))}"
                for _, r in group.iterrows()
            ]
            trace: dict[str, Any] = {
                "type": "scatter", "mode": "lines+markers", "name": str(method), "x": xs, "y": ys,
                "line": charts.line_style(style), "marker": {**charts.style(style), "size": 7},
                "text": texts, "hovertemplate": "%{text}<extra></extra>",
            }
            if (group["seeds"] > 1).any():  # the spread over seeds: lowest to highest
                trace["error_y"] = {"type": "data", "visible": True, "thickness": 1,
                                    "array": [float(v) for v in group["max"] - group["mean"]],
                                    "arrayminus": [float(v) for v in group["mean"] - group["min"]]}
            traces.append(trace)
        if not traces:
            continue
        low = min(min(t["x"]) for t in traces)
        high = max(max(t["x"]) for t in traces)
        for k, (method, value) in enumerate(sorted(drawn.items())):
            traces.append({
                "type": "scatter", "mode": "lines", "name": f"{method} (untrained)", "x": [low, high],
                "y": [value] * 2,
                "line": {"color": "#555555", "width": 1.5, "dash": ("dash", "dot", "dashdot", "longdashdot")[k % 4]},
                "hovertemplate": f"<b>{esc(method)}</b> (untrained): {esc(run.primary)} "
                                 f"{format_number(value)}<extra></extra>",
            })
        lay = charts.layout(f"{dataset}: {run.primary} against {title}", f"{title} (log)", f"{run.primary} (log)",
                            x_log=True, y_log=True)
        out.append(charts.chart(f"{prefix}-learning-{'steps' if axis == 'milestone' else 'seconds'}", traces, lay))
    if not out:
        return ""
    intro = ("The primary metric at each recorded milestone, against optimiser steps and against the training "
             "wall time it took (mean over seeds; bars: lowest to highest seed); the untrained references as "
             "horizontal lines.")
    if off_axis:
        intro += " " + esc(off_axis_note(off_axis))
    return f"<h3>Learning curves</h3>\n<p>{intro}</p>\n" + "".join(out)


Points = tuple[str, list[float], list[float], list[int]]
"""One trace's data: method, x values, mean y values, seeds behind each point."""


def _epoch_points(run: RunData, dataset: str) -> list[Points]:
    """Per learned method of ``dataset``: epochs, the validation MSE per epoch averaged over the
    seeds' fit reports (up to the shortest report), and the number of seeds."""
    recs = [r for r in run.records if (r.get("dataset_label") or r.get("dataset")) == dataset and r.get("status") == "ok"]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_method.setdefault(str(r.get("label") or r.get("method")), []).append(r)
    out = []
    for method in sorted(by_method):
        curves = [list((r.get("fit") or {}).get("val_mse") or []) for r in by_method[method]]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        out.append((method, list(range(1, length + 1)), [sum(c[i] for c in curves) / len(curves) for i in range(length)],
                    [len(curves)] * length))
    return out


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
