"""The site's static assets: style sheet, table-sorting script and the charting library."""

from __future__ import annotations

from pathlib import Path

CSS = """\
:root { --fg: #1b1b1b; --muted: #5f5f5f; --line: #d7d7d7; --head: #f3f4f6; --link: #0b5cad; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main, header.site, footer.site { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
header.site { padding-top: 12px; border-bottom: 1px solid var(--line); }
header.site nav { font-size: 14px; color: var(--muted); padding-bottom: 8px; overflow-wrap: anywhere; }
footer.site { margin-top: 32px; padding: 12px 16px 24px; border-top: 1px solid var(--line);
  color: var(--muted); font-size: 13px; }
h1 { font-size: 1.6em; margin: 0.6em 0 0.3em; overflow-wrap: anywhere; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 1.1em; margin-top: 1.2em; }
a { color: var(--link); }
p, li, dd { overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em;
  background: #f6f8fa; padding: 0 3px; border-radius: 3px; }
.muted { color: var(--muted); }
.table-wrap { width: 100%; overflow-x: auto; margin: 8px 0 12px; border: 1px solid var(--line); }
table { border-collapse: collapse; font-size: 14px; min-width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: var(--head); position: sticky; top: 0; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9a9a9a; font-size: 0.85em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
.spread { color: var(--muted); font-size: 0.88em; margin-left: 3px; }
tr.failed td { color: #8a8a8a; background: #f5f5f5; }
td.wrap { white-space: normal; min-width: 14em; }
td.nowrap { white-space: nowrap; }
table.main th { white-space: normal; vertical-align: bottom; }
table.main td.flags { white-space: normal; min-width: 12em; font-size: 13px; }
table.claims td { font-size: 13px; }
table.claims td.wrap { min-width: 9em; }
details > summary { cursor: pointer; }
details.cell > summary { color: var(--fg); }
details.cell[open] > summary { color: var(--muted); }
details.section { margin: 1.4em 0 0.6em; }
details.section > summary { font-size: 1.15em; font-weight: 600; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
details.chart-fold > summary { font-weight: 600; margin: 10px 0 6px; }
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 14px; }
dl.legend dt { font-weight: 600; }
dl.legend dd { margin: 0; }
@media (max-width: 600px) { dl.legend { grid-template-columns: 1fr; } dl.legend dd { margin-bottom: 6px; } }
.chart { width: 100%; min-height: 380px; margin: 0 0 16px; }
h4.chart-title { margin: 18px 0 0; font-size: 1em; font-weight: 600; text-align: center; }
.figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures figure { margin: 0; flex: 1 1 320px; max-width: 100%; }
figcaption { font-size: 13px; color: var(--muted); }
pre.json { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 13px; max-width: 100%; }
ul.runs li { margin: 2px 0; }
"""
"""The site's style sheet (also inlined in the standalone leaderboard page)."""

SORT_JS = """\
(function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-v");
    if (v !== null && v !== "") { return { num: true, v: parseFloat(v) }; }
    return { num: false, v: cell.textContent.trim().toLowerCase() };
  }
  function compare(a, b, dir) {
    var ea = !a.num && a.v === "", eb = !b.num && b.v === "";
    if (ea !== eb) { return ea ? 1 : -1; }
    if (a.num && b.num) { return dir * (a.v - b.v); }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return dir * (a.v < b.v ? -1 : (a.v > b.v ? 1 : 0));
  }
  function sortBy(th) {
    var table = th.closest("table");
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(table.querySelectorAll("th"), function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) { return compare(key(r.cells[index]), key(s.cells[index]), dir); });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  // a chart drawn inside a closed <details> has no width yet: size it to its box when opened
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) {
    d.addEventListener("toggle", function () {
      if (!d.open || !window.Plotly) { return; }
      Array.prototype.forEach.call(d.querySelectorAll("div.chart"), function (c) { window.Plotly.Plots.resize(c); });
    });
  });
  // a chart drawn before the page's final layout (fonts, tables) may be wider than its box on
  // a narrow screen: size every chart to its box once the page has loaded
  window.addEventListener("load", function () {
    if (!window.Plotly) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("div.chart"), function (c) {
      if (c.offsetParent !== null) { window.Plotly.Plots.resize(c); }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable th"), function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
})();
"""
"""Sorts a ``table.sortable`` on a header click: numerically by each cell's ``data-v`` where
present (the mean, not the ``mean ± std`` text), else by text; empty cells last."""

PLOTLY_FILE = "plotly.min.js"


def plotly_js() -> str:
    """The plotly.js bundle shipped inside the ``plotly`` Python package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_assets(out_dir: Path) -> list[Path]:
    """Write ``site.css``, ``site.js`` and ``plotly.min.js`` into ``out_dir/assets``.

    :returns: the paths written.
    """
    assets = out_dir / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("site.css", CSS), ("site.js", SORT_JS), (PLOTLY_FILE, plotly_js())):
        path = assets / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written
