"""The terminal's leaderboard (issue 32): within 100 columns, the ranking metric in percent with
a round-off floor, the class, and the full tables one flag away."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from wbench.board.compact import compact_table, fits, significant
from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import summarise
from wbench.board.learning_curves import select_milestone
from wbench.cli.main import main

MNIST = REPO / "results" / "mnist"


def test_significant_figures() -> None:
    assert [significant(v) for v in (0.019024, 72.25, 470.4, 131_000.0, 0.0)] == ["0.0190", "72.2", "470", "131,000", "0"]
    assert significant(float("nan")) == "" and significant(3.2e-9) == "3.20e-09"


def test_the_published_mnist_board_fits_a_terminal() -> None:
    frame, _ = select_milestone(leaderboard_frame([MNIST]))
    text = compact_table(summarise(frame, primary="test.w2.rel_mae"), "test.w2.rel_mae")
    assert fits(text)
    mnist = text[: text.index("\nshapes")]
    lines = {line.split()[1] if line[0].isdigit() else line.split()[0]: line for line in mnist.splitlines()
             if line.strip() and not line.startswith(("rank", "-", "mnist"))}
    assert "exact" in lines["exact-lp"] and "1.28e" not in text  # round-off is not a number to read
    assert lines["naive"].startswith("3 ") and "2.11 ± 0.024" in lines["naive"] and "72x" in lines["naive"]
    assert "hybrid" in lines["lot-residual"] and lines["lot-residual"].startswith("1 ")


def test_the_commands_print_the_compact_table_and_the_full_one_on_request(tmp_path: Path, capsys) -> None:
    assert main(["leaderboard", str(MNIST)]) == 0
    out = capsys.readouterr()
    assert fits(out.out) and "test.w2.rel_mae (%)" in out.out and "--full" in out.err
    assert main(["leaderboard", str(MNIST), "--full"]) == 0
    full = capsys.readouterr().out
    assert "| rank" in full and "Paper claims under this budget" in full


def test_the_compact_table_honours_keep_newest(tmp_path: Path, capsys) -> None:
    """Two folders holding the same cells: an error without --keep-newest, the compact table
    (from the one frame the command reads) with it."""
    import shutil

    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        for name in ("records.jsonl", "timing.json", "suite.json"):
            shutil.copyfile(REPO / "results" / "digits" / name, folder / name)
    assert main(["leaderboard", *map(str, folders)]) == 2
    capsys.readouterr()
    from wbench.records.read import DuplicateCellWarning

    with pytest.warns(DuplicateCellWarning):
        assert main(["leaderboard", *map(str, folders), "--keep-newest"]) == 0
    assert "test.w2.rel_mae (%)" in capsys.readouterr().out
