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


REFERENCE_CLASSES = ("solver", "untrained")
"""Classes drawn as references in the speed-accuracy charts (not ranked against the learned ones)."""

SPEED_CAPTION = (
    "<p>One point per ranked method (mean over seeds; bars: one standard deviation). Down and to the right is "
    "better: lower error, more pairs per second. The dashed line joins the methods on the accuracy-speed Pareto "
    "front (no other method both more accurate and faster). References (solvers and untrained embeddings) are "
    "open grey markers where timed, dotted lines at their error where not (a vertical line at the speed of one "
    "whose error is off the axis). Methods the timing pass did not time have no point.</p>\n"
)


def _is_reference(row: pd.Series) -> bool:
    return str(row.get("class", "")) in REFERENCE_CLASSES


def speed_charts(run: RunData, dataset: str, block: pd.DataFrame, prefix: str,
                 modes: Sequence[str] = ("independent", "pairwise"), *, heading: bool = True,
                 fold: Sequence[str] = ()) -> str:
    """Two charts, independent and pairwise: pairs/s (log) against relative MAE of W2 (log),
    one trace per ranked method (mean over seeds, error bar one std); the references
    (solvers, untrained embeddings) drawn apart (:func:`_reference_marks`).

    :param heading: start with an ``h3`` heading.
    :param fold: modes whose chart goes into a closed ``<details>``.
    """
    error_key = "test.w2.rel_mae"
    if f"{error_key}.mean" not in block.columns:
        return ""
    styles = style_index(run)
    out = []
    notes: list[str] = []
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
        refs = []
        for _, r in block.iterrows():
            x, y = r[f"{key}.mean"], r[f"{error_key}.mean"]
            if _is_reference(r):
                if math.isfinite(y):
                    refs.append((str(r["method"]), x, y, r))
                continue
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            traces.append(_point(r, x, y, key, error_key, label, charts.style(styles[str(r["method"])])))
        if not traces:
            continue
        lay = charts.layout(f"{dataset}: {label} mode", axis_title,
                            "relative MAE of W2 (log; lower is better)", x_log=True, y_log=True)
        lines, off_axis = _reference_marks(refs, traces, key, error_key, label, styles, lay)
        traces.extend(lines)
        if mode == "independent":  # the front is defined on the independent speed-up; pairwise orders differ
            traces.extend(_front_trace(block, key, error_key, {t["name"] for t in traces}))
        if any(t["y"][0] <= ERROR_FLOOR for t in traces):  # a plotted method on the floor: say so
            _floor_mark(lay)
        if off_axis and not notes:
            names = ", ".join(f"{esc(m)} {format_number(v)}" for m, v in sorted(off_axis.items()))
            notes.append(f'<p class="muted">References off the axis (more than half a decade from the ranked '
                         f"methods' errors): {names}.</p>\n")
        html = charts.chart(f"{prefix}-speed-{mode}", traces, lay, references=[n for n, *_ in refs])
        if mode in fold:
            html = f'<details class="chart-fold"><summary>{esc(dataset)}: {esc(label)} mode</summary>\n{html}</details>\n'
        out.append(html)
    if not out:
        return ""
    return ("<h3>Speed against accuracy</h3>\n" if heading else "") + SPEED_CAPTION + "".join(notes) + "".join(out)


def _floor_mark(lay: dict[str, Any]) -> None:
    """Add to ``lay`` a dotted line at :data:`ERROR_FLOOR` and its label."""
    lay.setdefault("shapes", []).append(
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": ERROR_FLOOR,
         "y1": ERROR_FLOOR, "line": {"color": "#777777", "dash": "dot", "width": 1}})
    lay.setdefault("annotations", []).append(
        {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": math.log10(ERROR_FLOOR),
         "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#555555"},
         "text": f"floor: errors below {ERROR_FLOOR:g} (round-off)"})


def _point(r: pd.Series, x: float, y: float, key: str, error_key: str, label: str,
           marker: dict[str, Any]) -> dict[str, Any]:
    """One method's marker: mean over seeds, error bars one std, its figures in the hover."""
    xs, ys = r.get(f"{key}.std", math.nan), r.get(f"{error_key}.std", math.nan)
    shown = max(y, ERROR_FLOOR)
    hover = (f"<b>{esc(r['method'])}</b>" + (f" ({esc(r['class'])})" if _is_reference(r) else "")
             + f"<br>{label} pairs/s: {format_number(x)}"
             + (f" ± {format_number(xs)}" if math.isfinite(xs) else "")
             + f"<br>rel. MAE W2: {format_number(y)}" + (f" ± {format_number(ys)}" if math.isfinite(ys) else "")
             + (" (round-off, drawn on the floor)" if y < ERROR_FLOOR else "")
             + f"<br>{seeds_text(int(r['seeds']))}")
    trace: dict[str, Any] = {
        "type": "scatter", "mode": "markers", "name": str(r["method"]), "x": [x], "y": [shown],
        "marker": marker, "text": [hover], "hovertemplate": "%{text}<extra></extra>",
    }
    if math.isfinite(xs):
        trace["error_x"] = {"type": "data", "array": [xs], "visible": True, "thickness": 1}
    if math.isfinite(ys) and y >= ERROR_FLOOR:
        trace["error_y"] = {"type": "data", "array": [ys], "visible": True, "thickness": 1}
    return trace


SPEED_REFERENCE_MARGIN = 10**0.5
"""A reference is drawn on a speed chart when its error lies within this factor of the ranked
methods' errors (half a decade); one further off would squeeze the ranked methods together."""

REFERENCE_LINE = {"color": "#777777", "dash": "dot", "width": 1.5}
"""The dotted line of a reference method drawn as a line."""


def _reference_marks(refs: list[tuple[str, float, float, pd.Series]], ranked: list[dict[str, Any]], key: str,
                     error_key: str, label: str, styles: dict[str, int],
                     lay: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The reference methods of a speed chart, kept from pinning the axes to their extremes.

    Within :data:`SPEED_REFERENCE_MARGIN` of the ranked methods' errors: a timed one is an open grey marker (a trace), an untimed one a dotted horizontal
    line at its error with its name (a layout shape and annotation, added to ``lay``). Off the
    axis (the exact LP's round-off): a timed one is a dotted vertical line at its speed,
    named with its error; an untimed one only in the returned note.

    :returns: the marker traces, and the untimed references off the axis (method -> error).
    """
    ys = [v for t in ranked for v in t["y"] if v > 0]
    low, high = (min(ys) / SPEED_REFERENCE_MARGIN, max(ys) * SPEED_REFERENCE_MARGIN) if ys else (0, math.inf)
    drawn = {name: y for name, _, y, _ in refs if y > 0 and low <= y <= high}
    off_axis = {name: y for name, _, y, _ in refs if name not in drawn}
    traces: list[dict[str, Any]] = []
    shapes, notes = lay.setdefault("shapes", []), lay.setdefault("annotations", [])
    font = {"size": 11, "color": "#444444"}
    for name, x, y, r in refs:
        timed = math.isfinite(x) and x > 0
        if timed and name in drawn:
            style = charts.style(styles.get(name, 0))
            traces.append(_point(r, x, y, key, error_key, label,
                                 {**style, "symbol": f"{style['symbol']}-open", "color": "#555555",
                                  "line": {"color": "#555555", "width": 2}}))
        elif timed:
            shapes.append({"type": "line", "xref": "x", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1,
                           "line": REFERENCE_LINE})
            notes.append({"xref": "x", "x": math.log10(x), "xanchor": "left", "yref": "paper", "y": 1,
                          "yanchor": "top", "showarrow": False, "font": font,
                          "text": f" {esc(name)} (rel. MAE {format_number(y)})"})
        elif name in drawn:
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                           "line": REFERENCE_LINE})
            notes.append({"xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": math.log10(y),
                          "yanchor": "bottom", "showarrow": False, "font": font,
                          "text": f"{esc(name)} ({esc(r.get('class', ''))}) {format_number(y)}"})
    off = {name: v for name, v in off_axis.items() if not any(n == name and math.isfinite(x) and x > 0
                                                                for n, x, _, _ in refs)}
    if not shapes:
        lay.pop("shapes")
    if not notes:
        lay.pop("annotations")
    return traces, off


def _front_trace(block: pd.DataFrame, key: str, error_key: str, drawn: set[str]) -> list[dict[str, Any]]:
    """A dashed line through the methods on the accuracy-speed Pareto front (``front``) drawn
    as points (``drawn``: a reference off the axis, such as the exact LP, is left out), fastest last."""
    if "front" not in block.columns:
        return []
    on = block[block["front"].astype(bool) & block["method"].astype(str).isin(drawn)].sort_values(f"{key}.mean")
    on = on[[math.isfinite(v) for v in on[f"{key}.mean"]]]
    if len(on) < 2:
        return []
    return [{"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": list(on[f"{key}.mean"]),
             "y": [max(v, ERROR_FLOOR) for v in on[f"{error_key}.mean"]], "hoverinfo": "skip",
             "line": {"color": "#444444", "dash": "dash", "width": 1.5},
             "marker": {"color": "#444444", "size": 4, "symbol": "circle-open"}}]


def learning_curves(run: RunData, dataset: str, block: pd.DataFrame, prefix: str, *, heading: bool = True) -> str:
    """Learning curves, one trace per method: the primary metric against the training
    milestones when the run has them (``run.curves``: two charts, against optimiser steps and
    against training seconds, bars from the lowest to the highest seed, the untrained
    references as horizontal lines), else the validation MSE per epoch from the fit reports
    (mean over seeds); empty when neither is recorded."""
    curves = run.curves[run.curves["dataset"] == dataset] if not run.curves.empty else run.curves
    head = "<h3>Learning curves</h3>\n" if heading else ""
    if not curves.empty:
        return _milestone_curves(run, dataset, curves, prefix, head)
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
        return (f"{head}<p class=\"muted\">No milestones or per-epoch validation "
                "losses are recorded for this dataset.</p>\n")
    lay = charts.layout(f"{dataset}: validation MSE of W2 per epoch", "epoch", "validation MSE W2 (log)", y_log=True)
    lay["xaxis"].update({"tick0": 1, "dtick": max(1, math.ceil(max(max(t["x"]) for t in traces) / 10))})
    intro = ("The records have no milestones; these are the fit reports' validation MSE per epoch "
             "(mean over seeds) of the learned methods.")
    return f"{head}<p>{intro}</p>\n" + charts.chart(f"{prefix}-learning", traces, lay)


def _milestone_curves(run: RunData, dataset: str, curves: pd.DataFrame, prefix: str, head: str) -> str:
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
    return f"{head}<p>{intro}</p>\n" + "".join(out)


Points = tuple[str, list[float], list[float], list[int]]
"""One trace's data: method, x values, mean y values, seeds behind each point."""


def validation_epochs(fit: dict[str, Any], n: int) -> list[int]:
    """Epochs of the first ``n`` validations of a fit report (``val_epochs``, else 1, 2, 3 ...)."""
    return list(fit["val_epochs"][:n]) if fit.get("val_epochs") else list(range(1, n + 1))


def _epoch_points(run: RunData, dataset: str) -> list[Points]:
    """Per learned method of ``dataset``: epochs, the validation MSE per epoch averaged over the
    seeds' fit reports (up to the shortest report), and the number of seeds."""
    recs = [r for r in run.records if (r.get("dataset_label") or r.get("dataset")) == dataset and r.get("status") == "ok"]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_method.setdefault(str(r.get("label") or r.get("method")), []).append(r)
    out = []
    for method in sorted(by_method):
        fits = [r.get("fit") or {} for r in by_method[method]]
        fits = [f for f in fits if f.get("val_mse")]
        if not fits:
            continue
        curves = [list(f["val_mse"]) for f in fits]
        length = min(len(c) for c in curves)
        out.append((method, validation_epochs(fits[0], length),
                    [sum(c[i] for c in curves) / len(curves) for i in range(length)], [len(curves)] * length))
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
                "x": validation_epochs(fit, len(values)), "y": list(values),
                "line": {**charts.line_style(int(seed or 0)), "dash": "solid" if i == 0 else "dash"},
                "marker": {**charts.style(int(seed or 0)), "size": 7},
                "hovertemplate": f"<b>{esc(method)}</b>, seed {seed}<br>{label}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
            })
    if not traces:
        return ""
    lay = charts.layout(f"{method}: loss per epoch", "epoch", "loss (log)", y_log=True)
    lay["xaxis"].update({"tick0": 1, "dtick": max(1, math.ceil(max(max(t["x"]) for t in traces) / 10))})
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
