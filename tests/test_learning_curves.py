"""Leaderboards of runs with budget milestones: the table at a milestone, the learning-curve
plots and the "first beats a reference" section, on records with known values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import keyed

from wbench.board.leaderboard import load_records, records_frame
from wbench.board.learning_curves import (
    UnknownMilestoneError,
    budget_section,
    curve_section,
    curve_table,
    off_axis_note,
    references_on_axis,
    select_milestone,
    write_learning_curve_plots,
)
from wbench.board.report import leaderboard_text
from wbench.cli.main import main
from wbench.records.store import RecordStore

# method -> milestone -> rel. MAE of seeds 0 and 1 (fractions)
LEARNED = {
    "fast": {100: (0.10, 0.12), 1000: (0.04, 0.05), 5000: (0.015, 0.017)},
    "slow": {100: (0.30, 0.34), 1000: (0.09, 0.11), 5000: (0.06, 0.07)},
}
LOT_REL = 0.08


def _record(method: str, seed: int, steps: int, rel: float, *, trainable: bool = True) -> dict:
    budget = {"epochs": 1, "steps": steps, "batch_size": 10}
    fit = {"steps": steps, "wall_time_s": steps / 100, "val_mse": [], "train_loss": []}
    if trainable:
        fit["cost"] = {"steps": steps, "batch_size": 10, "pairs_seen": steps * 10}
    return keyed({
        "schema_version": 1, "key": "", "status": "ok", "dataset": "toy", "dataset_label": "toy",
        "method": method, "label": method, "seed": seed, "budget": budget, "trainable": trainable,
        "n_parameters": 200 if trainable else 0, "n_parameters_inference": 100 if trainable else 0,
        "n_parameters_trained": 200 if trainable else 0,
        "metrics": {"test.w2.rel_mae": rel}, "fit": fit, "unit": "pixel",
    })


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = RecordStore(tmp_path / "run")
    for method, curve in LEARNED.items():
        for steps, values in curve.items():
            for seed, rel in enumerate(values):
                store.append(_record(method, seed, steps, rel))
    store.append(_record("lot", 0, 5000, LOT_REL, trainable=False))
    for steps, rel in ((100, 0.2), (1000, 0.07)):  # a method with its own, shorter milestones
        store.append(_record("short", 0, steps, rel))
    store.append(_record("once", 0, 100, 0.5))  # a learned method with a single milestone
    return tmp_path / "run"


def test_table_at_a_milestone(run_dir: Path) -> None:
    df = records_frame(load_records([run_dir]))
    last, chosen = select_milestone(df)
    # a learned method trained to one milestone only (its own budget, or a run in progress)
    # is named with its milestone, never shown as if trained to the table's
    assert chosen == 5000 and sorted(set(last["method"])) == ["fast", "lot", "once (at 100)", "short (at 1,000)", "slow"]
    assert float(last.loc[last["method"] == "short (at 1,000)", "test.w2.rel_mae"].iloc[0]) == 0.07
    early, chosen = select_milestone(df, 100)
    assert chosen == 100 and len(early) == 7  # two seeds of each learned method, short's and once's one, and lot
    assert "once" in set(early["method"])
    assert sorted(early[early["method"] == "fast"]["test.w2.rel_mae"]) == [0.10, 0.12]
    with pytest.raises(UnknownMilestoneError, match=r"milestone 400; the records have milestones \[100, 1000, 5000\]"):
        select_milestone(df, 400)
    text = leaderboard_text([run_dir], milestone=1000, extras=False)
    assert text.startswith("Ranked by") and text.splitlines()[2].startswith("At training milestone 1,000")
    assert "parameters used to compute distances" in text
    main_row, every_row = [line for line in text.splitlines() if "| fast" in line]
    assert "| 4.50 ± 0.71 " in main_row  # the main table: percent, three figures
    assert "0.045 ± 0.007071" in every_row and "| 100 " in every_row and "| 200 " in every_row


def test_curves_and_first_budget_to_beat_a_reference(run_dir: Path) -> None:
    df = records_frame(load_records([run_dir]))
    curves = curve_table(df, "test.w2.rel_mae")
    fast = curves[curves["method"] == "fast"].sort_values("milestone")
    assert list(fast["milestone"]) == [100, 1000, 5000]
    assert list(fast["mean"]) == pytest.approx([0.11, 0.045, 0.016])
    assert list(fast["min"]) == pytest.approx([0.10, 0.04, 0.015])
    assert list(fast["pairs_seen"]) == [1000, 10000, 50000]
    (section,) = budget_section(df, "test.w2.rel_mae")
    rows = section.table.set_index("method")
    beats = "beats lot (0.08)"
    assert rows.loc["fast", beats] == "1,000 steps (10,000 pairs, 10 s)"
    assert rows.loc["slow", beats] == "5,000 steps (50,000 pairs, 50 s)"
    assert rows.loc["fast", "reaches 2%"] == "5,000 steps (50,000 pairs, 50 s)"
    assert rows.loc["slow", "reaches 5%"] == "not by 5,000 steps"
    # one column for every method, 'short' stopping at its own last milestone, no NaN cells
    last = "test.w2.rel_mae at its last milestone"
    assert [c for c in rows.columns if " at " in c] == [last]
    assert rows.loc["fast", last] == "0.016 (5,000 steps)"
    assert rows.loc["short", last] == "0.07 (1,000 steps)"
    assert not rows.isna().any().any()


def test_curve_section_gives_each_milestone_with_its_wall_time(run_dir: Path) -> None:
    df = records_frame(load_records([run_dir]))
    (section,) = curve_section(df, "test.w2.rel_mae")
    rows = section.table.set_index("method")
    assert list(rows.columns) == ["seeds", "100 steps", "1,000 steps", "5,000 steps"]
    # fast: means 0.11 / 0.045 / 0.016; wall time steps / 100 s in the fit reports
    assert list(rows.loc["fast"]) == ["2", "0.11 (1 s)", "0.045 (10 s)", "0.016 (50 s)"]
    assert list(rows.loc["short"]) == ["1", "0.2 (1 s)", "0.07 (10 s)", "-"]
    assert "lot" not in rows.index  # untrained: no curve
    assert "with the training wall time to reach it" in section.title
    assert "| fast " in leaderboard_text([run_dir]).split("training wall time")[1]


def test_learning_curve_plots_are_written(run_dir: Path, tmp_path: Path) -> None:
    df = records_frame(load_records([run_dir]))
    (path,) = write_learning_curve_plots(df, tmp_path / "plots", primary="test.w2.rel_mae")
    assert path.name == "learning-curves-toy.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["leaderboard", str(run_dir), "--milestone", "100", "--plots", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "learning-curves-toy.png").exists()
    assert main(["leaderboard", str(run_dir), "--milestone", "7"]) != 0


def test_a_run_with_one_milestone_has_no_curves_and_no_budget_section(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "run")
    for seed, rel in enumerate((0.10, 0.12)):
        store.append(_record("fast", seed, 400, rel))
    store.append(_record("lot", 0, 400, LOT_REL, trainable=False))
    df = records_frame(load_records([tmp_path / "run"]))
    assert curve_table(df, "test.w2.rel_mae").empty
    assert budget_section(df, "test.w2.rel_mae") == []
    assert write_learning_curve_plots(df, tmp_path / "plots", primary="test.w2.rel_mae") == []
    text = leaderboard_text([tmp_path / "run"])
    assert "first beats a reference" not in text and "| fast " in text


def test_axiom_audit_only_where_it_can_fail(tmp_path: Path) -> None:
    """Euclidean embeddings show "metric by construction"; solvers show their audit."""
    from wbench_plugins.kenn.models import DeepKENN
    from wbench_plugins.references.exact import ExactLP
    from wbench_plugins.references.lot import LOT
    from wbench_plugins.references.sinkhorn import Sinkhorn

    assert DeepKENN.metric_by_construction and LOT.metric_by_construction
    assert not ExactLP.metric_by_construction and not Sinkhorn.metric_by_construction
    store = RecordStore(tmp_path / "run")
    for method, by_construction, rate in (("embedded", True, 0.0), ("solver", False, 0.125)):
        record = _record(method, 0, 100, 0.1, trainable=by_construction)
        record["metric_by_construction"] = by_construction
        record["metrics"] = {**record["metrics"], "axioms.triangle_violation_rate": rate, "axioms.symmetry_error": rate}
        store.append(record)
    text = leaderboard_text([tmp_path / "run"], extras=False)
    every_column = text[text.index(": every column"):]  # the audit is not among the main table's nine columns
    embedded = next(line for line in every_column.splitlines() if "| embedded" in line)
    solver = next(line for line in every_column.splitlines() if line.startswith("|") and line.split("|")[2].strip() == "solver")
    assert embedded.count("metric by construction") == 2
    assert "metric by construction" not in solver and solver.count("| 0.125 ") == 2


def test_budget_text_groups_thousands_of_seconds() -> None:
    from wbench.board.learning_curves import _budget_text

    row = pd.Series({"milestone": 20000, "pairs_seen": 5_120_000.0, "seconds": 1261.4}, dtype=object)
    assert _budget_text(row, "steps") == "20,000 steps (5,120,000 pairs, 1,261 s)"


def test_references_far_off_the_curves_are_named_not_drawn() -> None:
    """Curves between 0.01 and 0.06: a reference within one decade of that range is a line,
    the exact LP's 1e-16 round-off and anything above 0.6 are named beside the chart."""
    refs = {"exact-lp": 1.3e-16, "sinkhorn": 0.0011, "lot": 0.016, "coarse": 0.7, "zero": 0.0, "nan": float("nan")}
    drawn, off = references_on_axis(refs, [0.011, 0.02, 0.06, float("nan")])
    assert drawn == {"sinkhorn": 0.0011, "lot": 0.016}
    assert off == {"exact-lp": 1.3e-16, "coarse": 0.7}
    assert off_axis_note(off) == "Off the axis (more than 1 decade from the curves): coarse 0.7, exact-lp 1.3e-16."
    assert off_axis_note({}) == ""
    assert references_on_axis({"lot": 0.5}, [])[0] == {"lot": 0.5}  # no curve: nothing to compare with
