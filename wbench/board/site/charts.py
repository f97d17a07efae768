"""Interactive charts as Plotly figure JSON, written into fixed ``div`` ids (deterministic).

Figures are plain dicts (no ``plotly.graph_objects``), serialised with sorted keys and
numbers rounded to 6 significant digits, so the same records give the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from wbench.board.site.html import esc, script_json

OKABE_ITO: tuple[str, ...] = (
    "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442",
)
"""The Okabe-Ito colour-blind-safe palette (yellow last: weakest on white)."""

SYMBOLS: tuple[str, ...] = (
    "circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star",
    "hexagon", "pentagon", "star-triangle-up", "hourglass", "bowtie", "triangle-left",
)
"""Marker symbols; with the palette, each method of a run gets a distinct (colour, symbol)."""

CONFIG: dict[str, Any] = {"displayModeBar": False, "displaylogo": False, "responsive": True}
"""No mode bar: over the legend above the plot it hid entries; dragging still zooms, a double click resets."""


def style(index: int) -> dict[str, Any]:
    """Marker style of the ``index``-th method of a run: colour, symbol, outline.

    Colours repeat every 8 methods; each repeat shifts the symbols by 5 places, so that two
    methods of one colour never share a symbol (up to ``8 x 14`` methods), and up to 16
    methods never get two round ones (a circle and a hexagon look alike at this size).
    """
    colours = len(OKABE_ITO)
    return {
        "color": OKABE_ITO[index % colours],
        "symbol": SYMBOLS[(index % colours + 5 * (index // colours)) % len(SYMBOLS)],
        "size": 11,
        "line": {"color": "#333333", "width": 1},
    }


def line_style(index: int) -> dict[str, Any]:
    """Line colour and dash of the ``index``-th trace of a line chart."""
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "dash": dashes[(index // len(OKABE_ITO)) % len(dashes)],
            "width": 2}


def clean(value: Any) -> Any:
    """``value`` with floats rounded to 6 significant digits and NaN/inf as None (JSON null)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return clean(value.item())
    return value


def layout(title: str, x_title: str, y_title: str, *, x_log: bool = False, y_log: bool = False,
           **extra: Any) -> dict[str, Any]:
    """A chart layout: axis titles, optional log axes, legend above the plot (it grows upwards
    on narrow screens instead of covering the x-axis title), white background. The chart's
    title is kept in ``meta.title`` and printed by :func:`chart` as an HTML heading."""
    axis = {"gridcolor": "#e5e5e5", "automargin": True, "exponentformat": "power", "zeroline": False}
    base: dict[str, Any] = {
        "meta": {"title": title},
        "xaxis": {**axis, "title": {"text": x_title}, "type": "log" if x_log else "linear"},
        "yaxis": {**axis, "title": {"text": y_title}, "type": "log" if y_log else "linear"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"},
        "margin": {"l": 60, "r": 20, "t": 10, "b": 50},
        "height": 460,
        "autosize": True,
        "hovermode": "closest",
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
    }
    base.update(extra)
    return base


def chart(div_id: str, traces: Sequence[dict[str, Any]], fig_layout: dict[str, Any], *,
          kind: str = "method", caption: str = "", references: Sequence[str] = ()) -> str:
    """HTML for one chart: a ``div`` with a fixed id and the script drawing it.

    :param kind: what one trace stands for (``method``, ``seed``, ``series``); the trace
        names are listed in ``data-traces`` so a browser test can check what was drawn.
    :param references: reference methods shown in the chart, as traces or as lines
        (listed in ``data-references``).
    """
    names = [str(t.get("name", "")) for t in traces]
    refs = f' data-references="{esc(json.dumps(list(references), ensure_ascii=True))}"' if references else ""
    data, lay, config = script_json(clean(list(traces))), script_json(clean(fig_layout)), script_json(CONFIG)
    cap = f'<p class="muted">{caption}</p>\n' if caption else ""
    title = (fig_layout.get("meta") or {}).get("title", "")
    heading = f'<h4 class="chart-title">{esc(title)}</h4>\n' if title else ""
    return (
        f'{heading}<div id="{esc(div_id)}" class="chart" data-kind="{esc(kind)}" '
        f"data-traces=\"{esc(json.dumps(names, ensure_ascii=True))}\"{refs}></div>\n{cap}"
        f"<script>Plotly.newPlot({script_json(div_id)},{data},{lay},{config});</script>\n"
    )
