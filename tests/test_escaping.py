"""Labels cannot break the leaderboard's Markdown, CSV, file names or HTML pages.

Security review findings: ``|`` and newlines in Markdown cells, ``../`` and long labels in
file names, spreadsheet formulas in CSV cells, ``<!--<script>`` in inline chart JSON.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from site_records import record, write_timing

from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import render, summarise, write_speed_accuracy_plots
from wbench.board.learning_curves import write_learning_curve_plots
from wbench.board.site import build_site
from wbench.board.site.charts import chart
from wbench.board.site.html import script_json
from wbench.records.store import Record, RecordStore, cell_key
from wbench.sections import Section, render_section
from wbench.util.filenames import MAX_STEM_BYTES, anchor_id, safe_stem, slug

PRIMARY = "test.w2.rel_mae"
EVIL_TABLE = "a|b\n| injected | row |"
"""A label that would end its Markdown cell and add a row."""
TRAVERSAL = "../../escaped"
"""A dataset label that would write a plot two folders up."""
SCRIPT_BREAKER = "<!--<script>"
"""A label that keeps a browser from running the rest of an inline script."""


def _keyed(r: dict[str, Any]) -> dict[str, Any]:
    """``r`` with the key the harness gives its identity fields."""
    return {**r, "key": cell_key(**Record.from_dict(r).identity())}


def _write_run(folder: Path, methods: dict[str, float], *, dataset: str = "toy", milestones: bool = False) -> Path:
    """A run folder with three seeds of each method (``rel`` its relative MAE)."""
    store = RecordStore(folder)
    for method, rel in methods.items():
        for seed in range(3):
            if milestones:
                for milestone in (100, 200):
                    store.append(_keyed(record(method, seed, rel=rel * 100 / milestone, milestone=milestone, dataset=dataset)))
            else:
                store.append(_keyed(record(method, seed, rel=rel + 0.01 * seed, dataset=dataset)))
    write_timing(folder)
    return folder


def _summary(folder: Path) -> pd.DataFrame:
    return summarise(leaderboard_frame([folder]), primary=PRIMARY)


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def _assert_one_row_per_line(markdown: str, rows: int) -> None:
    """Every table line has the header's cell count, and the table has ``rows`` body rows."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(lines) == rows + 2, markdown  # header, separator, rows
    assert {_unescaped_pipes(line) for line in lines} == {_unescaped_pipes(lines[0])}, markdown


# 1. Markdown tables


def test_markdown_table_cells_escape_pipes_and_newlines(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", {EVIL_TABLE: 0.1, "plain": 0.2}, dataset="ds|x\n| fake | row |")
    text = render(_summary(run), "md", primary=PRIMARY)
    main, every = text.split("\n### ")[1:3]  # the main table, then the one with every column
    _assert_one_row_per_line(main, rows=2)
    _assert_one_row_per_line(every, rows=2)
    assert "a\\|b \\| injected \\| row \\|" in text
    assert any(line.startswith("### ds|x | fake | row | (W2") for line in text.splitlines())  # one line


def test_plugin_section_cells_and_headers_are_escaped() -> None:
    table = pd.DataFrame({"claim|x": [EVIL_TABLE, "ok"], "n": [1, 2]})
    text = render_section(Section("title\n| x |", table), "md")
    _assert_one_row_per_line(text, rows=2)
    assert "### title | x |" in text.splitlines()
    assert "claim\\|x" in text


def test_ordinary_markdown_is_unchanged() -> None:
    table = pd.DataFrame({"method": ["dwe (paper size)", "sinkhorn_reg=1.0_"], "value": ["0.1 ± 0.01", "-2"]})
    assert render_section(Section("Claims", table), "md") == (
        "\n### Claims\n\n"
        "| method            | value      |\n"
        "|-------------------|------------|\n"
        "| dwe (paper size)  | 0.1 ± 0.01 |\n"
        "| sinkhorn_reg=1.0_ | -2         |\n"
    )


# 2. File names


@pytest.mark.parametrize("label", ["..", ".", "", "../../etc/x", "a/b\\c", "...", ".hidden", "\0", "é" * 300,
                                   "x" * 1000, "/" * 300])
def test_safe_stem_and_slug_are_single_bounded_names(label: str, tmp_path: Path) -> None:
    for name in (safe_stem(label), slug(label)):
        assert name and "/" not in name and "\\" not in name and "\0" not in name
        assert ".." not in name and not name.startswith(".")
        assert len(name.encode()) <= MAX_STEM_BYTES
        path = tmp_path / f"speed-accuracy-{name}-seed0-loss.png"
        path.write_bytes(b"")  # no "File name too long", nothing outside tmp_path
        assert path.parent == tmp_path


def test_long_labels_stay_distinct() -> None:
    a, b = "m" * 200 + "-seed0", "m" * 200 + "-seed1"
    assert safe_stem(a) != safe_stem(b) and slug(a) != slug(b)
    assert safe_stem(a).startswith("m" * 100)


@pytest.mark.parametrize(("text", "stem", "url"), [
    ("mnist", "mnist", "mnist"),
    ("digits-deepsets_out_dim=16_-seed0", "digits-deepsets_out_dim=16_-seed0", "digits-deepsets-out-dim-16-seed0"),
    ("distributions-sinkhorn_reg=0.01_-seed0", "distributions-sinkhorn_reg=0.01_-seed0",
     "distributions-sinkhorn-reg-0-01-seed0"),
    ("dwe (paper size)", "dwe__paper_size_", "dwe-paper-size"),
    ("DWE matched", "DWE_matched", "dwe-matched"),
])
def test_ordinary_names_are_unchanged(text: str, stem: str, url: str) -> None:
    assert safe_stem(text) == stem
    assert slug(text) == url


def test_long_html_ids_keep_their_published_form() -> None:
    title = "Roofline of the re-timed networks: FLOPs counted by torch's flop counter " * 3
    assert anchor_id(title) == "-".join(re.findall(r"[a-z0-9]+", title.lower()))  # ids are not file names
    assert len(slug(title).encode()) <= MAX_STEM_BYTES and slug(title).startswith(anchor_id(title)[:100])


def test_published_plot_names_are_unchanged() -> None:
    results = Path(__file__).resolve().parent.parent / "results"
    for png in results.glob("*/*.png"):
        for prefix in ("speed-accuracy-", "learning-curves-"):
            if png.stem.startswith(prefix):
                label = png.stem.removeprefix(prefix)
                assert safe_stem(label) == label, png


def _inside(paths: list[Path], folder: Path) -> bool:
    return all(p.resolve().parent == folder.resolve() for p in paths)


def test_speed_accuracy_plots_stay_in_their_folder(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "runs" / "run", {"good": 0.1, "worse": 0.3}, dataset=TRAVERSAL)
    out = tmp_path / "runs" / "plots" / "here"
    out.mkdir(parents=True)
    paths = write_speed_accuracy_plots([run], out, primary=PRIMARY)
    assert paths and _inside(paths, out) and all(p.is_file() for p in paths)
    assert not list(tmp_path.rglob("escaped*")) and not list((tmp_path / "runs").glob("*.png"))


def test_learning_curve_plots_stay_in_their_folder(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "run", {"good": 0.1, "worse": 0.3}, dataset=TRAVERSAL + "x" * 300, milestones=True)
    out = tmp_path / "plots"
    out.mkdir()
    paths = write_learning_curve_plots(leaderboard_frame([run]), out, primary=PRIMARY)
    assert paths and _inside(paths, out) and all(p.is_file() for p in paths)


# 3. CSV formulas


def test_csv_text_cells_are_not_formulas(tmp_path: Path) -> None:
    methods = {"=HYPERLINK(\"http://x\")": 0.1, "+1+1": 0.2, "-cmd": 0.3, "@SUM(A1)": 0.4, "-1.5": 0.5, "plain": 1.6}
    run = _write_run(tmp_path / "run", methods)
    rows = list(csv.DictReader(io.StringIO(render(_summary(run), "csv", primary=PRIMARY))))
    shown = {row["method"] for row in rows}
    assert shown == {"'=HYPERLINK(\"http://x\")", "'+1+1", "'-cmd", "'@SUM(A1)", "-1.5", "plain"}
    plain = next(row for row in rows if row["method"] == "plain")
    assert float(plain["test.w2.pearson.mean"]) == pytest.approx(-0.61)  # a negative number stays a number
    assert plain["test.w2.pearson.mean"].startswith("-")


# 4. HTML and inline JSON


def _inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, flags=re.S)


@pytest.mark.parametrize("label", [SCRIPT_BREAKER, "</script><b>x</b>", "-->&amp;"])
def test_chart_json_survives_script_breakers(label: str) -> None:
    html = chart("chart-x", [{"name": label, "x": [1.0], "y": [2.0]}], {"meta": {"title": label}})
    (script,) = _inline_scripts(html)
    for breaker in ("<!--", "-->", "<script", "</script", "&"):
        assert breaker not in script.lower()
    start = script.index("(") + 1
    decoder = json.JSONDecoder()
    div, end = decoder.raw_decode(script, start)
    traces, _ = decoder.raw_decode(script, end + 1)
    assert div == "chart-x" and traces[0]["name"] == label


def test_script_json_keeps_ordinary_values() -> None:
    assert script_json({"b": 1.5, "a": ["x"]}) == '{"a":["x"],"b":1.5}'
    assert json.loads(script_json("<b>a & b</b>")) == "<b>a & b</b>"


def test_site_pages_survive_a_script_breaking_label(tmp_path: Path) -> None:
    root = tmp_path / "results"
    _write_run(root / "evil", {SCRIPT_BREAKER: 0.1, "plain": 0.2}, dataset=SCRIPT_BREAKER)
    out = tmp_path / "site"
    build_site(root, out)
    pages = sorted((out / "evil").rglob("*.html"))
    assert pages and all(p.resolve().is_relative_to(out.resolve()) for p in pages)
    charts = 0
    for path in pages:
        text = path.read_text()
        for script in _inline_scripts(text):
            assert "<!--" not in script and "<script" not in script and "-->" not in script, path
            charts += "Plotly.newPlot" in script
        body = text[text.index("<body>"):]
        assert SCRIPT_BREAKER not in body.replace("<script>", "").replace("<script src", ""), path
    assert charts  # the run page draws its charts
    run_page = (out / "evil" / "index.html").read_text()
    assert "&lt;!--&lt;script&gt;" in run_page
