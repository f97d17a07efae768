"""The published results under ``results/`` are reproducible from what is committed.

* Every leaderboard file (Markdown and CSV) regenerates byte for byte from the records
  next to it, with the command given in ``results/README.md``.
* One published cell re-run with the same seed on the CPU gives its metrics within 1e-6 when
  the numerical libraries are the versions recorded in the cell and the CPU model is the
  recorded one (bit-for-bit reproduction); with other versions or another CPU, within :data:`CROSS_VERSION_RTOL` (see there), and the test says so.
"""

from __future__ import annotations

import json
import math
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
import torch

from wbench.board.report import leaderboard_text

RESULTS = Path(__file__).resolve().parent.parent / "results"
LEADERBOARDS = sorted(RESULTS.glob("*/leaderboard-*.md")) + sorted(RESULTS.glob("*/leaderboard-*.csv"))


def test_results_hold_leaderboards() -> None:
    assert {p.parent.name for p in LEADERBOARDS} >= {"mnist", "digits", "shapes", "distributions"}


@pytest.mark.parametrize("path", LEADERBOARDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_leaderboard_regenerates_byte_for_byte(path: Path) -> None:
    fmt = "csv" if path.suffix == ".csv" else "md"
    assert leaderboard_text([path.parent], fmt=fmt) == path.read_text()


REPRODUCING_PACKAGES = {
    "torch": "torch", "numpy": "numpy", "pot": "POT", "scikit-learn": "scikit-learn",
    "torchdiffeq": "torchdiffeq", "geomloss": "geomloss",
}
"""Record provenance name -> distribution: the libraries whose version changes the numbers."""

SAME_VERSIONS_RTOL = 1e-6
"""Same libraries, same seed, same thread count: the same floating-point operations."""

CROSS_VERSION_RTOL = 0.10
"""Another torch (or NumPy, POT ...) changes kernels and summation orders, so 128 Adam steps
diverge a little: the `naive` digits cell published with torch 2.15.0 was seen 1-3 % apart
under torch 2.14.1 (MEASUREMENTS.md; issue 17: `gap.w2.mse_diff` 0.003167 against 0.003253),
and 5e-6 apart at most (relative; `test.w2.q2.mse`) under torch 2.14.1+cu130 on the shared
2-core machine of the issue-17 work (also above 1e-6). The same 0.003167 came back on 2026-12-05
with the very versions of the published record on an AVX2-only "AMD EPYC": another CPU's
kernels move it as much as another torch does. 10 % keeps a margin over the larger
spread (recall@k moves in steps of one neighbour, about 1 % here) while still catching a
broken metric or a changed protocol, which move these numbers by far more."""

CROSS_VERSION_ATOL = 1e-3
"""Absolute floor for metrics near 0 (a self-distance, a violation rate of 0.002)."""


def cpu_mismatch(recorded_provenance: dict[str, Any]) -> list[str]:
    """``["CPU recorded -> running"]`` when this CPU is not the one the record names, or when
    the record does not name the SIMD kernels torch dispatched (``cpu_capability``; records
    before it was recorded): the same libraries dispatch other SIMD kernels (AVX-512 on a Xeon
    or a newer EPYC, AVX2 on an older one), so summation orders differ (4e-6 relative on the
    digits cell, issue 33; 3 % on its ``gap.w2.mse_diff`` between two machines both named
    "AMD EPYC" with the same versions)."""
    from wbench.provenance import provenance

    keys = ("device_name", "cpu_capability")
    recorded = tuple(recorded_provenance.get(key) for key in keys)
    running = tuple(provenance("cpu")[key] for key in keys)  # as a record made here would state them
    if recorded[1] is None:
        return [f"CPU {recorded[0]} (SIMD kernels not recorded) -> {running[0]} ({running[1]})"]
    return [] if recorded == running else [f"CPU {recorded[0]} ({recorded[1]}) -> {running[0]} ({running[1]})"]


def version_mismatches(recorded: dict[str, Any]) -> list[str]:
    """``name recorded -> running`` for each reproducing library whose version differs."""
    out = []
    for name, dist in REPRODUCING_PACKAGES.items():
        try:
            running = version(dist)
        except PackageNotFoundError:
            running = None
        if recorded.get(name) != running:
            out.append(f"{name} {recorded.get(name)} -> {running}")
    return out


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a record's (flat) metrics; NaN is stored as None and left out."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


@pytest.mark.slow
def test_published_digits_cell_reruns_to_its_metrics(tmp_path: Path) -> None:
    """The `naive` cell at seed 0 of ``results/digits`` (the default suite, bundled data)."""
    from wbench.plugin.manager import make_plugin_manager
    from wbench.run.runner import Runner, RunOptions
    from wbench.run.suite import load_suite

    published = [json.loads(line) for line in (RESULTS / "digits" / "records.jsonl").read_text().splitlines()]
    (cell,) = [r for r in published if r["method"] == "naive" and r["seed"] == 0 and r["status"] == "ok"]
    threads = torch.get_num_threads()
    torch.set_num_threads(cell["provenance"]["torch_threads"])  # the thread count the cell ran with
    try:
        options = RunOptions(out_dir=tmp_path / "rerun", surrogates=("naive",), seeds=(0,), cache_dir=tmp_path / "cache", n_jobs=1)
        (record,) = Runner(load_suite(cell["suite"]), make_plugin_manager(), options).run()
    finally:
        torch.set_num_threads(threads)
    assert record.key == cell["key"] and record.status == "ok"
    before, after = _numbers(cell["metrics"]), _numbers(record.outcome.metrics)
    assert before.keys() == after.keys() and len(before) > 10
    mismatches = version_mismatches(cell["provenance"]["versions"]) + cpu_mismatch(cell["provenance"])
    if mismatches:
        rtol, atol = CROSS_VERSION_RTOL, CROSS_VERSION_ATOL
        warnings.warn(
            f"published cell re-run with other library versions or another CPU ({'; '.join(mismatches)}): checked within "
            f"{rtol:.0%} (relative) or {atol:g} (absolute), not bit for bit; the published files reproduce "
            "exactly only with the versions in their records' provenance",
            stacklevel=1,
        )
    else:
        rtol = atol = SAME_VERSIONS_RTOL
    for name, value in before.items():
        assert math.isclose(after[name], value, rel_tol=rtol, abs_tol=atol), (name, value, after[name], mismatches)


def test_readme_front_page_is_generated_from_the_committed_records() -> None:
    """Every number on the README's front page comes from ``results/mnist`` (``results/front_page.py``)."""
    import runpy

    front_page = runpy.run_path(str(RESULTS / "front_page.py"))
    readme = (RESULTS.parent / "README.md").read_text()
    assert front_page["front_page_block"]() in readme


def test_results_readme_run_facts_are_generated_from_the_committed_records() -> None:
    """results/README.md's block on the MNIST run (wall times, the paper comparison) comes
    from ``results/mnist`` too, and names the commit of every record."""
    import runpy

    front_page = runpy.run_path(str(RESULTS / "front_page.py"))
    block = front_page["run_facts_block"]()
    assert block in (RESULTS / "README.md").read_text()
    commits = {str(json.loads(line)["provenance"]["git_commit"])[:7]
               for line in (RESULTS / "mnist" / "records.jsonl").read_text().splitlines() if line.strip()}
    assert all(commit in block for commit in commits)
    assert "DeepKENN paper" in block and "| naive " in block
    folders = front_page["folders_block"]()
    assert folders in (RESULTS / "README.md").read_text()
    for name in ("mnist", "digits", "shapes", "distributions"):
        assert f"| `{name}/` " in folders


def test_front_page_describes_the_protocol_its_records_were_timed_under() -> None:
    """The front page's sentences about speed-ups and the paper-size DWE: the timing pass's
    protocol, DWE's inference and trained counts where both exist."""
    import runpy

    import pandas as pd

    front_page = runpy.run_path(str(RESULTS / "front_page.py"))
    old = pd.DataFrame({"method": ["dwe (paper size)", "naive"], "n_parameters": [803_576, 55_424]})
    new = old.assign(**{"speedup.one_core": [15.0, 31.0], "n_parameters_inference": [399_855, 55_424],
                        "n_parameters_trained": [803_576, 55_424]})
    text = front_page["_speedup_text"](new, "cpu; git abc")
    assert "one core against one core" in text and "same interleaved rounds of the run's timing pass" in text
    assert text.endswith("git abc.")
    assert front_page["_paper_dwe_size"](old) == "803,576"
    assert front_page["_paper_dwe_size"](new) == "399,855 parameters at inference (803,576 trained, with its decoder)"
    assert [front_page["_epochs_text"](e) for e in (2.069, 103.4)] == ["2.1", "103"]


def test_published_mnist_run_covers_the_paper_protocol() -> None:
    """``results/mnist`` is one complete run: every method the protocol names, the learned ones
    on at least 3 seeds at the matched parameter count, and both directions of the transfer."""
    records = [json.loads(line) for line in (RESULTS / "mnist" / "records.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == len(records)
    assert len({r["provenance"]["git_commit"] for r in records}) == 1
    on_mnist = [r for r in ok if r["dataset"] == "mnist"]
    methods = {r["method"] for r in on_mnist}
    assert methods >= {"naive", "deepkenn", "odekenn", "dwe-matched", "dwe", "deepsets", "exact-lp", "sinkhorn", "lot", "sliced"}
    assert len({json.dumps(r["eval_params"], sort_keys=True) for r in on_mnist if r["method"] == "sinkhorn"}) >= 2
    suite = json.loads((RESULTS / "mnist" / "suite.json").read_text())["suite"]
    budget = suite["budget"]
    target = budget["param_target"]
    for entry in suite["surrogates"]:
        if entry.get("datasets") is not None and "mnist" not in entry["datasets"]:
            continue
        label = entry.get("label") or entry["name"]
        cells = [r for r in on_mnist if r["method"] == entry["name"] and r.get("label", r["method"]) == label]
        if not cells:  # records older than labels name the method only
            cells = [r for r in on_mnist if r["method"] == entry["name"]]
        assert cells, label
        if not cells[0]["trainable"]:
            continue
        seeds = set(entry.get("seeds") or suite["seeds"])
        assert seeds >= {0} and {r["seed"] for r in cells} >= seeds, label
        if entry.get("seeds") is None:
            assert seeds >= {0, 1, 2}, label  # every learned method on 3 seeds unless the suite says otherwise
        # a run with milestones: every seed evaluated at every milestone of the method's budget
        milestones = (entry.get("budget") or {}).get("steps") or budget.get("milestones")
        if isinstance(milestones, list) and len(milestones) > 1:
            for seed in seeds:
                assert sorted(r["budget"]["steps"] for r in cells if r["seed"] == seed) == sorted(milestones), (label, seed)
        if cells[0]["match_budget"]:  # matched on the count used at inference where the records carry it
            counts = [r.get("n_parameters_inference") or r["n_parameters"] for r in cells]
            assert all(abs(n - target) <= 0.01 * target for n in counts), label
    assert all(r["transfer"].get("shapes.w2.mse") is not None for r in on_mnist if r["trainable"])
    from_shapes = [r for r in ok if r["dataset"] == "shapes" and r["trainable"]]
    assert from_shapes and all(r["transfer"].get("mnist.w2.mse") is not None for r in from_shapes)
