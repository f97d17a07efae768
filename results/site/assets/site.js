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
