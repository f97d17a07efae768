"""The built site in a real browser (headless Chromium through Playwright), from file://.

Checks: no console errors and no request other than file://, every table sorts numerically
on a header click, every chart draws one trace per method, every link resolves, and the page
body does not overflow at 1280 and 390 px. Screenshots of the index and a run page go to
``$WBENCH_SCREENSHOTS`` (default: a pytest temporary folder); the path is printed.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$WBENCH_CHROMIUM``) and the
``playwright`` package; skipped, saying which is missing, without them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from site_records import INDEPENDENT, copy_run, make_run

from wbench.board.site import build_site

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("WBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ALLOWED_SCHEMES = ("file:", "data:", "about:", "blob:")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install playwright; its browser download is not needed)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set WBENCH_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the fixture runs plus a copy of the published mnist run (when present)."""
    root = make_run(tmp_path_factory.mktemp("results"))
    if (REPO / "results" / "mnist" / "records.jsonl").exists():
        copy_run(REPO / "results" / "mnist", root / "mnist")
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(root, out)
    return out


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("WBENCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


class Visit:
    """A page opened from file:// with its console errors and non-file requests recorded."""

    def __init__(self, browser: object, path: Path, width: int = 1280, *, open_details: bool = True) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(ALLOWED_SCHEMES) else self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")
        if open_details:  # every table shown
            self.page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        if self.page.locator("div.chart").count():
            self.page.wait_for_function(
                "Array.from(document.querySelectorAll('div.chart')).every(d => d.querySelector('.main-svg'))",
                timeout=30_000,
            )

    def close(self) -> None:
        self.context.close()


READ_AGAIN = ("index.html", "toy/index.html", "steps/index.html", "mnist/index.html", "toy/toy/good.html",
              "mnist/mnist/deepkenn.html", "mnist/mnist/odekenn.html")
"""Pages (relative to the site) that several tests only read: :class:`Pages` keeps them open."""


class Pages:
    """Visits at 1280 px with every ``<details>`` open for tests that only read a page's content
    (no click, scroll, resize or screenshot, no size or position held to a limit: those open
    their own :class:`Visit`). A page of :data:`READ_AGAIN` is loaded once for the module and
    kept, any other is closed after its test; a kept page's console errors and requests are
    recorded from its load on. Loading (Plotly's 4.8 MB script, every chart drawn) is most of a
    visit, and the index pages were loaded by up to five tests each."""

    def __init__(self, browser: object, site: Path) -> None:
        self.browser, self.site = browser, site
        self.kept: dict[Path, Visit] = {}

    @contextlib.contextmanager
    def read(self, path: Path) -> Iterator[Visit]:
        if path in self.kept:
            yield self.kept[path]
            return
        visit = Visit(self.browser, path)
        if path.relative_to(self.site).as_posix() in READ_AGAIN:
            self.kept[path] = visit  # closed with the module
            yield visit
            return
        try:
            yield visit
        finally:
            visit.close()

    def close(self) -> None:
        for visit in self.kept.values():
            visit.close()


@pytest.fixture(scope="module")
def pages(browser, site: Path) -> Iterator[Pages]:
    """Read-only visits shared by the module's tests (:class:`Pages`)."""
    kept = Pages(browser, site)
    yield kept
    kept.close()


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _clean(visit: Visit, path: Path) -> None:
    assert visit.errors == [], f"{path}: console errors {visit.errors}"
    assert visit.requests == [], f"{path}: network requests {visit.requests}"


def test_every_page_loads_offline_and_every_link_resolves(pages: Pages, site: Path) -> None:
    paths = _pages(site)
    assert len(paths) > 10
    for path in paths:
        with pages.read(path) as visit:
            _clean(visit, path)
            links = visit.page.eval_on_selector_all(
                "a[href], img[src], script[src], link[href]", "els => els.map(e => e.href || e.src)")
            assert links, f"{path} has no links"
            for url in links:
                parsed = urlparse(url)
                assert parsed.scheme == "file", f"{path}: link {url} is not relative to the site"
                target = Path(unquote(parsed.path))
                assert target.is_file(), f"{path}: link {url} does not resolve"
                if parsed.fragment and target.suffix == ".html":
                    assert f'id="{parsed.fragment}"' in target.read_text(), f"{path}: anchor {url} is missing"
            images = visit.page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert all(w > 0 for w in images), f"{path}: an image did not load"


def _column(page: object, table: str, index: int) -> list[str | None]:
    return page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-v'))")


def test_every_table_sorts_numerically_on_header_click(browser, site: Path) -> None:
    checked = 0
    pages = [site / "toy" / "index.html", site / "toy" / "toy" / "good.html", site / "index.html",
             site / "mnist" / "index.html"]  # mnist: two leaderboards and the transfer matrix
    for path in [p for p in pages if p.exists()]:
        visit = Visit(browser, path)
        try:
            tables = visit.page.eval_on_selector_all("table.sortable[id]", "ts => ts.map(t => t.id)")
            assert tables
            for table in tables:
                headers = visit.page.locator(f"#{table} thead th")
                numeric = 0
                for index in range(headers.count()):
                    before = _column(visit.page, table, index)
                    if not any(before):
                        continue
                    numeric += 1
                    headers.nth(index).click()
                    after = _column(visit.page, table, index)
                    values = [float(v) for v in after if v]
                    assert values == sorted(values), f"{path} #{table} column {index} ascending: {values}"
                    assert not any(after[len(values):]), "empty cells sort last"
                    headers.nth(index).click()
                    values = [float(v) for v in _column(visit.page, table, index) if v]
                    assert values == sorted(values, reverse=True), f"{path} #{table} column {index} descending"
                    checked += 1
                text_only = table == "runs" or table.startswith("paper-claims") or "timing-pass" in table  # text sections
                assert numeric or text_only, f"{path} #{table}: no numeric column"
            _clean(visit, path)
        finally:
            visit.close()
    assert checked >= 10


def test_independent_pairs_per_second_sort_as_numbers_not_text(browser, site: Path) -> None:
    visit = Visit(browser, site / "toy" / "index.html")
    try:
        header = visit.page.locator("#leaderboard-toy thead th", has_text="indep. pairs/s")
        header.click()
        methods = visit.page.eval_on_selector_all("#leaderboard-toy tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
        expected = sorted(INDEPENDENT, key=INDEPENDENT.get)
        assert [m for m in methods if m in INDEPENDENT] == expected  # 5.5 < 100 < 950 < 10200
    finally:
        visit.close()


def _table_methods_with(page: object, table: str, headers: list[str]) -> set[str]:
    """Methods of a leaderboard table whose cells under all ``headers`` hold a number."""
    return set(page.evaluate(
        """([table, wanted]) => {
            const t = document.getElementById(table);
            const names = Array.from(t.tHead.rows[0].cells).map(c => c.textContent.trim());
            // a header may carry its setting after a space, e.g. 'indep. pairs/s (1 thr.)'
            const idx = wanted.map(h => names.findIndex(n => n === h || n.startsWith(h + ' ')));
            if (idx.some(i => i < 0)) { return []; }
            return Array.from(t.tBodies[0].rows)
                .filter(r => idx.every(i => r.cells[i].getAttribute('data-v')))
                .map(r => r.cells[1].textContent.trim());
        }""", [table, headers]))


def test_every_chart_draws_one_trace_per_method(pages: Pages, site: Path) -> None:
    """Run pages: one trace per method (the methods of the leaderboard with the plotted figures);
    method pages: one trace per seed and series. Every trace draws a marker per point."""
    runs = [p for p in (site / "toy" / "index.html", site / "steps" / "index.html", site / "mnist" / "index.html")
            if p.exists()]
    methods = [site / "toy" / "toy" / "good.html", site / "mnist" / "mnist" / "deepkenn.html",
               site / "mnist" / "mnist" / "odekenn.html"]
    charts_checked = 0
    for path in runs + [p for p in methods if p.exists()]:
        with pages.read(path) as visit:
            charts = visit.page.eval_on_selector_all(
                "div.chart", "ds => ds.map(d => ({id: d.id, expected: JSON.parse(d.dataset.traces), kind: d.dataset.kind,"
                " drawn: d.data.map(t => t.name), rendered: d.querySelectorAll('.scatterlayer .trace').length,"
                " points: Array.from(d.querySelectorAll('.scatterlayer .trace')).map(g => g.querySelectorAll('.point').length),"
                " wanted: d.data.map(t => (t.mode || 'markers').includes('markers') ? t.x.length : 0)}))")
            assert charts, f"{path}: no chart"
            for chart in charts:
                drawn = chart["drawn"]
                assert drawn == chart["expected"] and len(set(drawn)) == len(drawn), chart["id"]
                assert chart["rendered"] == len(drawn), f"{chart['id']}: {chart['rendered']} traces rendered"
                assert chart["points"] == chart["wanted"], f"{path} {chart['id']}: markers drawn {chart['points']}"
                if chart["kind"] != "method":
                    charts_checked += 1
                    continue
                dataset = chart["id"].removeprefix("chart-").rsplit("-speed-", 1)[0].rsplit("-learning", 1)[0]
                table = f"leaderboard-{dataset}"
                if "-speed-" in chart["id"]:
                    mode = "indep." if chart["id"].endswith("independent") else "pairwise"
                    want = _table_methods_with(visit.page, table, ["rel. MAE W2", f"{mode} pairs/s"])
                    refs = set(json.loads(visit.page.get_attribute(f"#{chart['id']}", "data-references") or "[]"))
                    points = set(drawn) - {"Pareto front"}
                    # every timed method a point, but a reference off the axis (a line at its speed instead)
                    assert points <= want and want - points <= refs, f"{chart['id']}: drew {drawn}, table has {want}"
                    assert refs <= _table_methods_with(visit.page, table, ["rel. MAE W2"]), chart["id"]
                else:  # learning curves: each method of the table (by its name without "(at N)"), and the references
                    shown = {re.sub(r" \(at [\d,]+\)$", "", m) for m in _table_methods_with(visit.page, table, ["rel. MAE W2"])}
                    assert {m.removesuffix(" (untrained)") for m in drawn} <= shown, chart["id"]
                charts_checked += 1
            _clean(visit, path)
    assert charts_checked >= 7


def test_hover_names_method_value_and_seeds(pages: Pages, site: Path) -> None:
    with pages.read(site / "toy" / "index.html") as visit:
        text = visit.page.evaluate("document.getElementById('chart-toy-speed-independent').data"
                                   ".find(t => t.name === 'good').text[0]")
        assert "good" in text and "rel. MAE W2: 0.11" in text and "3 seeds" in text


@pytest.mark.parametrize("width", [1280, 390])
def test_pages_fit_the_width(browser, site: Path, screenshots: Path, width: int) -> None:
    run_page = site / ("mnist" if (site / "mnist").exists() else "toy") / "index.html"
    for name, path in (("index", site / "index.html"), ("run", run_page), ("method", site / "toy" / "toy" / "good.html")):
        visit = Visit(browser, path, width=width)
        try:
            visit.page.wait_for_timeout(300)  # let the responsive charts settle to the width
            overflow = visit.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} overflows {width} px by {overflow} px"
            font = visit.page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
            assert font >= 14
            if name != "method":
                target = screenshots / f"{name}-{width}.png"
                visit.page.screenshot(path=str(target), full_page=True)
                assert target.stat().st_size > 1000
        finally:
            visit.close()


def test_standalone_leaderboard_page_in_the_browser(browser, site: Path, tmp_path: Path) -> None:
    from wbench.board.report import leaderboard_text

    run = make_run(tmp_path / "results") / "toy"
    page = tmp_path / "board.html"
    page.write_text(leaderboard_text([run], fmt="html"), encoding="utf-8")
    visit = Visit(browser, page)
    try:
        _clean(visit, page)
        headers = visit.page.eval_on_selector_all("#leaderboard-toy thead th", "hs => hs.map(h => h.textContent)")
        index = headers.index("rel. MAE W2")
        visit.page.locator("#leaderboard-toy thead th").nth(index).click()
        values = [float(v) for v in _column(visit.page, "leaderboard-toy", index) if v]
        assert values == sorted(values) and values[0] == pytest.approx(1e-16) and len(values) == 5
        assert visit.page.title() == "wbench leaderboard"
        assert "±" in visit.page.inner_text("#leaderboard-toy")  # the charset is declared: not mojibake
    finally:
        visit.close()


def test_the_index_leads_with_the_headline_chart_classes_and_flags(pages: Pages, site: Path) -> None:
    """Issue 32: the index opens with a speed-accuracy chart (Pareto front drawn) and the top of
    a main table whose class column and flags are visible; the run page shows them too."""
    with pages.read(site / "index.html") as visit:
        _clean(visit, site / "index.html")
        chart = visit.page.locator("#headline ~ div.chart").first
        assert chart.is_visible()
        names = visit.page.eval_on_selector("#headline ~ div.chart", "d => d.data.map(t => t.name)")
        assert "Pareto front" in names
        table = visit.page.locator("#headline-table")
        assert table.is_visible()
        assert re.search(r"learned #1", table.inner_text())
        assert table.locator("th", has_text="flags").is_visible()
    if (site / "mnist" / "index.html").exists():
        with pages.read(site / "mnist" / "index.html") as visit:
            text = visit.page.locator("#main-mnist").inner_text()
            assert "hybrid #1" in text and "solver" in text and "★" in text
            assert "not the authors' defaults: emb_dim 32 (128)" in text


def _mnist(site: Path) -> Path:
    path = site / "mnist" / "index.html"
    if not path.exists():
        pytest.skip("results/mnist is not published in this checkout")
    return path


def _lines(page: object, selector: str) -> list[int]:
    """Per element matched: how many lines its text takes (distinct tops of its line boxes)."""
    return page.eval_on_selector_all(selector, """els => els.map(e => {
        const r = document.createRange(); r.selectNodeContents(e);
        return new Set(Array.from(r.getClientRects()).filter(b => b.width > 0).map(b => Math.round(b.top))).size; })""")


@pytest.mark.parametrize("width", [1280, 390])
def test_main_table_fits_at_1280_and_scrolls_in_its_box_at_390(browser, site: Path, width: int) -> None:
    """Issue 32 item 4.1: at 1280 px the main table (flags column included) fits its box and
    each class cell ("learned #1") is one line; at 390 px the table scrolls inside its own box,
    the page does not."""
    for path, table in ((site / "index.html", "headline-table"), (_mnist(site), "main-mnist")):
        visit = Visit(browser, path, width=width)
        try:
            box = visit.page.eval_on_selector(f"#{table}", """t => { const w = t.parentElement;
                return {cls: w.className, overflow: getComputedStyle(w).overflowX, scroll: w.scrollWidth,
                        client: w.clientWidth}; }""")
            assert box["cls"] == "table-wrap" and box["overflow"] == "auto"
            assert visit.page.evaluate("document.documentElement.scrollWidth") <= width, f"{path}: the page scrolls"
            if width == 1280:
                assert box["scroll"] <= box["client"], f"{path} #{table}: clipped, {box}"
                flags = visit.page.locator(f"#{table} th", has_text="flags")
                assert flags.bounding_box()["x"] + flags.bounding_box()["width"] <= width
                classes = _lines(visit.page, f"#{table} tbody td.nowrap")
                assert classes and classes == [1] * len(classes), f"{path} #{table}: class cells {classes}"
            else:
                assert box["scroll"] > box["client"], f"{path} #{table}: expected to scroll in its box, {box}"
        finally:
            visit.close()


def test_the_index_has_one_heading_above_its_chart(pages: Pages, site: Path) -> None:
    """Issue 32 item 4.2: no second heading ("Speed against accuracy") under "mnist: ... against ..."."""
    with pages.read(site / "index.html") as visit:
        headings = visit.page.evaluate("""() => { const out = []; let e = document.getElementById('headline');
            for (; e && !(e.classList && e.classList.contains('chart')); e = e.nextElementSibling) {
                if (/^H[1-3]$/.test(e.tagName)) { out.push(e.textContent); } } return out; }""")
        assert len(headings) == 1 and "against" in headings[0], headings


@pytest.mark.parametrize("width", [1280, 390])
def test_no_mode_bar_covers_a_legend(browser, site: Path, width: int) -> None:
    """Issue 32 item 4.3: the Plotly mode bar (toolbar) never overlaps a legend entry."""
    checked = 0
    for path in (site / "index.html", _mnist(site)):
        visit = Visit(browser, path, width=width)
        try:
            boxes = visit.page.eval_on_selector_all("div.chart", """ds => ds.map(d => {
                const box = s => { const e = d.querySelector(s); if (!e) { return null; }
                    const r = e.getBoundingClientRect(); return r.width && r.height ? r : null; };
                const l = box('.legend'), m = box('.modebar');
                return {id: d.id, legend: !!l, overlap: !!(l && m && l.left < m.right && m.left < l.right
                    && l.top < m.bottom && m.top < l.bottom)}; })""")
            for b in boxes:
                assert not b["overlap"], f"{path} {b['id']}: the mode bar covers the legend"
                checked += b["legend"]
        finally:
            visit.close()
    assert checked >= 3


def test_speed_charts_draw_references_apart_and_the_exact_lp_does_not_pin_the_axis(pages: Pages, site: Path) -> None:
    """Issue 32 item 4.4: solvers and untrained embeddings are references (open markers or dotted
    lines named on the chart), and the y axis spans the ranked methods, not the exact LP's 1e-16."""
    for path, chart in ((site / "toy" / "index.html", "chart-toy-speed-independent"),
                        (_mnist(site), "chart-mnist-speed-independent")):
        with pages.read(path) as visit:
            info = visit.page.eval_on_selector(f"#{chart}", """d => ({range: d._fullLayout.yaxis.range,
                refs: JSON.parse(d.dataset.references || '[]'), lines: d.querySelectorAll('.shapelayer path').length,
                labels: Array.from(d.querySelectorAll('.annotation-text')).map(a => a.textContent),
                open: d.data.filter(t => t.marker && String(t.marker.symbol).endsWith('-open')
                    && t.name !== 'Pareto front').map(t => t.name)})""")
            assert "exact-lp" in info["refs"] and info["range"][0] > -4, f"{path}: y axis {info['range']}"
            off_axis = visit.page.locator("p", has_text="References off the axis")
            note = off_axis.first.inner_text() if off_axis.count() else ""
            assert info["lines"] >= 1
            for name in info["refs"]:  # an open marker, a line named on the chart, or named off the axis
                assert name in info["open"] or any(label.strip().startswith(name + " ") for label in info["labels"]) \
                    or name + " " in note, f"{path}: reference {name} is not shown"


def test_claims_rows_are_a_few_lines(browser, site: Path) -> None:
    """Issue 32 item 4.5: a claims row is a few lines at 1280 px (long notes open on a click)."""
    visit = Visit(browser, _mnist(site), open_details=False)
    try:
        rows = visit.page.eval_on_selector_all("table.claims tbody tr", """rs => rs.map(r => {
            const line = parseFloat(getComputedStyle(r.cells[0]).lineHeight);
            return (r.getBoundingClientRect().height - 10) / line; })""")
        assert rows and max(rows) <= 6.5, f"claims rows up to {max(rows):.1f} lines"
        assert visit.page.locator("table.claims details.cell").count() > 0
    finally:
        visit.close()


def test_the_run_page_opens_short_with_chart_table_and_claims(browser, site: Path) -> None:
    """Issue 32 item 4.6: secondary sections (every column, learning curves, the pairwise chart,
    timing spreads, transfer) are closed <details>; the chart, main table, flags and claims show.
    A chart opened from a closed <details> fills its box."""
    visit = Visit(browser, _mnist(site), open_details=False)
    try:
        page = visit.page
        assert page.evaluate("document.documentElement.scrollHeight") < 9000  # 15,000 px before
        for selector in ("#chart-mnist-speed-independent", "#main-mnist", "#main-mnist th:has-text('flags')",
                         "table.claims"):
            assert page.locator(selector).first.is_visible(), selector
        for selector in ("#leaderboard-mnist", "#chart-mnist-learning-steps", "#chart-mnist-speed-pairwise",
                         "#transfer"):
            assert not page.locator(selector).is_visible(), f"{selector} is not folded"
        page.locator("summary", has_text="mnist: learning curves").click()
        page.wait_for_timeout(500)
        widths = page.eval_on_selector("#chart-mnist-learning-steps", """d => [d.clientWidth,
            parseFloat(d.querySelector('.main-svg').getAttribute('width'))]""")
        assert abs(widths[0] - widths[1]) <= 2, widths
    finally:
        visit.close()
