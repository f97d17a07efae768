"""benchmarks/bench_cost_model.py: the report is written after each method and resumes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cost_model.py"
TINY = ["--methods", "naive", "--sizes", "2,8", "--seeds", "0", "--threads", "1", "--rounds", "1",
        "--min-round-s", "0.01", "--tolerance", "10"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cost_model", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cost_model"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_cost_model"]


@pytest.fixture(scope="module")
def first_report(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "report.json"
    assert bench.main([*TINY, "--out", str(out)]) == 0
    return out


def test_report_holds_the_method_with_its_direct_timings(first_report):
    report = json.loads(first_report.read_text())
    entry = report["methods"]["naive"]
    assert entry["seeds"] == [0]
    (record,) = entry["per_seed"]
    assert record["n_parameters_inference"] == pytest.approx(55_430, rel=0.01)
    assert {"cost.direct_error.2", "cost.direct_error.8"} <= record.keys()
    assert record["cost.threads"] == 1.0
    assert report["failures"] == []


def test_resume_keeps_measured_methods(bench, first_report, capsys):
    before = json.loads(first_report.read_text())["methods"]["naive"]
    assert bench.main([*TINY, "--out", str(first_report), "--resume"]) == 0
    assert "naive: kept from" in capsys.readouterr().out
    assert json.loads(first_report.read_text())["methods"]["naive"] == before


def test_resume_refuses_other_settings(bench, first_report):
    other = [a if a != "2,8" else "2,16" for a in TINY]
    with pytest.raises(SystemExit, match="--sizes 2,8, not 2,16"):
        bench.main([*other, "--out", str(first_report), "--resume"])


def test_resume_refuses_a_file_that_is_not_a_report(bench, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="is not a report of this benchmark"):
        bench.main([*TINY, "--out", str(out), "--resume"])


def test_failures_name_each_miss_beyond_the_tolerance(bench):
    report = {
        "args": {"seeds": "0,1"},
        "methods": {"naive": {"seeds": [0, 1], "per_seed": [
            {"cost.direct_error.16": 0.20, "cost.direct_error.64": -0.05},
            {"cost.direct_error.16": -0.16, "cost.direct_error.64": 0.149},
        ]}},
    }
    assert bench.failures_of(report, 0.15) == ["naive seed 0 n=16: +20.0%", "naive seed 1 n=16: -16.0%"]
