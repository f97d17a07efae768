"""The site's chart of a label-efficiency run: error against the number of exact labels."""

from __future__ import annotations

from wbench.board.site import charts
from wbench.board.site.figures import seeds_text, style_index
from wbench.board.site.html import esc
from wbench.board.site.source import RunData, format_number
from wbench.sections import LABEL_METRICS, label_curves, lp_seconds_per_pair


def label_chart(run: RunData, div_id: str) -> str:
    """A label-efficiency run's chart (:func:`wbench.sections.label_curves`): mean unseen
    relative MAE (%) against the number N of exact training pairs, log-log, one trace per
    method, seeds' min-max as error bars, the labels' exact LP seconds in the hover and the
    caption; empty for any other run."""
    metric = LABEL_METRICS[0]
    curves = label_curves(run.frame, metric)
    if curves.empty:
        return ""
    per_label = lp_seconds_per_pair(run.frame)
    styles = style_index(run)
    traces = []
    for method, points in curves.groupby("method", sort=True):
        mean, low, high = (100 * points[k] for k in ("mean", "min", "max"))
        lp = ["" if per_label is None else f"<br>labels: {n * per_label:,.0f} s of exact LP (one core)" for n in points["N"]]
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": method, "x": list(points["N"]), "y": list(mean),
            "error_y": {"type": "data", "symmetric": False, "array": list(high - mean), "arrayminus": list(mean - low)},
            "line": charts.line_style(styles.get(method, 0)),
            "marker": {**charts.style(styles.get(method, 0)), "size": 9},
            "text": [f"<b>{esc(method)}</b><br>N = {n:,}: {format_number(m)} % {esc(metric)}<br>{seeds_text(k)}{t}"
                     for n, m, k, t in zip(points["N"], mean, points["seeds"], lp, strict=True)],
            "hovertemplate": "%{text}<extra></extra>",
        })
    lay = charts.layout("Error against the number of exact labels", "exact training pairs N (labels)",
                        f"{metric} (%, log)", x_log=True, y_log=True)
    caption = (f"Mean over seeds, bars from the lowest to the highest seed. N exact labels cost N exact LP solves: "
               f"{per_label:.3g} s each on one core in this run." if per_label is not None else
               "Mean over seeds, bars from the lowest to the highest seed (the labels' LP seconds need the timing pass).")
    return "<h2>Error against the number of exact labels</h2>\n" + charts.chart(div_id, traces, lay, caption=caption)
