"""The "not the authors' defaults" flag and the matched-step comparison (issue 32 item 3),
computed from records whose parameters are known."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from conftest import keyed

from wbench.board.defaults import (
    defaults_text,
    differing_defaults,
    record_parameter,
    with_defaults_flags,
)
from wbench.board.frame import records_frame
from wbench.board.leaderboard import summarise
from wbench.board.matched import (
    early_stops,
    matched_step_lines,
    matched_step_sections,
    matched_step_tables,
)
from wbench.records.store import SCHEMA_VERSION, Record
from wbench.surrogate import Surrogate

PRIMARY = "test.w2.rel_mae"


def _record(method: str, seed: int = 0, *, steps: int = 1000, lr: float = 1e-3, value: float = 0.1,
            params: dict[str, Any] | None = None, describe: dict[str, Any] | None = None) -> Record:
    return Record.from_dict(keyed({
        "schema_version": SCHEMA_VERSION, "key": "", "dataset": "d", "dataset_label": "d", "method": method,
        "label": method, "seed": seed, "status": "ok", "error": None, "n_parameters": 10, "trainable": True,
        "method_class": "learned", "method_params": params or {}, "describe": describe or {},
        "budget": {"steps": steps, "batch_size": 8, "lr": lr},
        "fit": {"steps": steps, "val_mse": [1.0, 0.5, 0.4, 0.4, 0.4], "wall_time_s": 1.0},
        "metrics": {PRIMARY: value, "test.n_pairs": 100},
    }))


class _Registered:
    def __init__(self, cls: type) -> None:
        self.cls = cls

    def load(self) -> type:
        return self.cls


class _Registry:
    """Stands in for the plugin registry: ``worm`` declares its authors' defaults."""

    def get(self, kind: str, name: str) -> _Registered:
        if name != "worm":
            raise KeyError(name)
        return _Registered(_Worm)


class _Worm(Surrogate):
    authors_defaults: ClassVar[dict[str, Any]] = {"emb_dim": 128, "lr": 1e-4, "num_heads": 4, "target": "s2"}


def test_the_surrogate_contract_declares_nothing_by_default() -> None:
    assert Surrogate.authors_defaults == {}


def test_parameters_are_read_from_method_params_budget_and_description() -> None:
    record = _record("worm", params={"target": "exact"}, describe={"sizes": {"emb_dim": 32, "num_heads": 4}})
    assert record_parameter(record, "target") == "exact"
    assert record_parameter(record, "lr") == 1e-3
    assert record_parameter(record, "emb_dim") == 32
    assert record_parameter(record, "dropout") is None


def test_the_flag_lists_each_differing_parameter_with_the_authors_value() -> None:
    record = _record("worm", params={"target": "exact"}, describe={"sizes": {"emb_dim": 32, "num_heads": 4}})
    differing = differing_defaults(record, _Worm.authors_defaults)
    assert differing == [("emb_dim", 32, 128), ("lr", 1e-3, 1e-4), ("target", "exact", "s2")]
    assert defaults_text(differing) == "not the authors' defaults: emb_dim 32 (128), lr 0.001 (0.0001), target exact (s2)"
    same = _record("worm", lr=1e-4, params={"target": "s2"}, describe={"sizes": {"emb_dim": 128}})
    assert differing_defaults(same, _Worm.authors_defaults) == []


def test_board_rows_carry_the_flag_and_undeclared_methods_do_not() -> None:
    records = [_record("worm", describe={"sizes": {"emb_dim": 32}}), _record("plain")]
    frame = with_defaults_flags(records_frame(records), records, _Registry())
    flags = dict(zip(*summarise(frame, primary=PRIMARY)[["method", "flags"]].T.values, strict=True))
    assert flags["worm"] == "not the authors' defaults: emb_dim 32 (128), lr 0.001 (0.0001)"
    assert flags["plain"] == ""


def _staged_run() -> pd.DataFrame:
    records = []
    for seed in range(2):
        for steps, value in ((100, 0.30), (1000, 0.10)):
            records.append(_record("long", seed, steps=steps, value=value + 0.01 * seed))
        for steps, value in ((100, 0.20), (1000, 0.05)):
            records.append(_record("fast", seed, steps=steps, value=value))
    records.append(_record("short", 0, steps=100, value=0.25))
    return records_frame(records)


def test_a_method_that_stopped_early_is_compared_at_its_last_milestone() -> None:
    frame = _staged_run()
    from wbench.board.learning_curves import curve_table

    assert early_stops(curve_table(frame, PRIMARY)).to_dict("records") == [
        {"dataset": "d", "method": "short", "milestone": 100}]
    table = matched_step_tables(frame, PRIMARY)[("d", 100)]
    assert list(table["method"]) == ["fast", "short", "long"]
    assert list(table["rank"]) == [1, 2, 3]
    assert list(table["stopped"]) == [False, True, False]
    assert abs(table["mean"].iloc[2] - 0.305) < 1e-12
    section = matched_step_sections(frame, PRIMARY)[0]
    assert section.title == "d: every trained method at 100 steps (matched steps)"
    assert list(section.table["method"]) == ["fast", "short (stopped here)", "long"]
    assert list(section.table[f"{PRIMARY} (%)"]) == ["20.0", "25.0", "30.5 ± 0.71"]
    assert matched_step_lines(frame, PRIMARY) == [
        "d at 100 steps, test.w2.rel_mae (%): fast 20.0, short 25.0 (stopped), long 30.5"]


def test_no_matched_step_comparison_when_every_method_ran_the_whole_budget() -> None:
    frame = _staged_run()
    frame = frame[frame["method"] != "short"]
    assert matched_step_tables(frame, PRIMARY) == {}
