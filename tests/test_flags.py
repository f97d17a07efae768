"""Flags on board rows (issue 32): fewer steps or seeds than the others, training still
improving, a solver per new measure, fewer test pairs; computed from records."""

from __future__ import annotations

import math

from conftest import keyed

from wbench.board.flags import STILL_FALLING, val_drop
from wbench.board.frame import records_frame
from wbench.board.leaderboard import render, summarise
from wbench.records.store import SCHEMA_VERSION, Record

PRIMARY = "test.w2.rel_mae"


def _record(method: str, seed: int, method_class: str, steps: int, val: list[float], n_test: int) -> Record:
    return Record.from_dict(keyed({
        "schema_version": SCHEMA_VERSION, "key": "", "dataset": "d", "dataset_label": "d", "method": method,
        "label": method, "seed": seed, "status": "ok", "error": None, "n_parameters": 10,
        "trainable": method_class != "solver", "method_class": method_class,
        "budget": {"steps": steps, "batch_size": 8},
        "fit": {"steps": steps, "val_mse": val, "wall_time_s": 1.0},
        "metrics": {PRIMARY: 0.1 + 0.01 * seed, "test.n_pairs": n_test},
    }))


def _flags() -> dict[str, str]:
    flat, falling = [1.0, 0.5, 0.41, 0.40, 0.40], [1.0, 0.8, 0.6, 0.5, 0.4]
    records = [_record("settled", s, "learned", 1000, flat, 200) for s in range(3)]
    records += [_record("short", 0, "learned", 100, falling, 200)]
    records += [_record("hybrid", s, "hybrid", 1000, flat, 200) for s in range(3)]
    records += [_record("solver", 0, "solver", 1000, [], 50)]
    summary = summarise(records_frame(records), primary=PRIMARY)
    return dict(zip(summary["method"], summary["flags"], strict=True))


def test_rows_are_flagged_from_their_records() -> None:
    flags = _flags()
    assert flags["settled"] == ""
    assert flags["short"] == "100 of 1,000 steps, 1 of 3 seeds, not converged (val. loss still -20% in its last quarter)"
    assert flags["hybrid"] == "solver per new measure"
    assert flags["solver"] == "50 of 200 test pairs"


def test_the_validation_trend_decides_convergence() -> None:
    assert val_drop([1.0, 0.5, 0.41, 0.40, 0.40]) == 0.0
    assert val_drop([1.0, 0.8, 0.6, 0.5, 0.4]) > STILL_FALLING
    assert math.isnan(val_drop([1.0, 0.5])) and math.isnan(val_drop(None))


def test_flags_show_in_the_table() -> None:
    from wbench.board.compact import compact_table

    records = [_record("short", 0, "learned", 100, [1.0, 0.8, 0.6, 0.5, 0.4], 200),
               _record("long", 0, "learned", 1000, [1.0, 0.4, 0.4, 0.4, 0.4], 200),
               _record("long", 1, "learned", 1000, [1.0, 0.4, 0.4, 0.4, 0.4], 200)]
    summary = summarise(records_frame(records), primary=PRIMARY)
    assert "| flags" in render(summary, "md", primary=PRIMARY)
    assert "  short: 100 of 1,000 steps, 1 of 2 seeds" in compact_table(summary, PRIMARY)
