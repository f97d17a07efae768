"""Publishing next to published results (issue 32 item 8): a leaderboard over folders from
different machines, commits or torch versions keeps each origin's rows apart, names them,
and takes each folder's speed figures from its own timing pass."""

from __future__ import annotations

from pathlib import Path

from conftest import keyed
from site_records import write_timing

from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import summarise
from wbench.records.store import SCHEMA_VERSION, RecordStore

PRIMARY = "test.w2.rel_mae"


def _folder(path: Path, device: str, commit: str, rel: float, method: str = "naive") -> Path:
    store = RecordStore(path)
    for seed in range(3):
        store.append(keyed({
            "schema_version": SCHEMA_VERSION, "key": "", "dataset": "d", "dataset_label": "d", "method": method,
            "label": method, "seed": seed, "status": "ok", "error": None, "n_parameters": 10, "trainable": True,
            "method_class": "learned", "finished_at": f"2026-12-0{seed + 1}T00:00:00+00:00",
            "provenance": {"device_name": device, "git_commit": commit, "versions": {"torch": "2.14.1"}},
            "metrics": {PRIMARY: rel + 0.001 * seed},
        }))
    write_timing(path)
    return path


def test_rows_of_two_machines_stay_apart_and_say_where_they_come_from(tmp_path: Path) -> None:
    published = _folder(tmp_path / "published", "Intel Xeon", "0123456789", 0.10)
    mine = _folder(tmp_path / "mine", "AMD EPYC", "abcdef0123", 0.12, method="mine")
    summary = summarise(leaderboard_frame([published, mine]), primary=PRIMARY)
    assert sorted(summary["method"]) == ["mine [AMD EPYC, abcdef0]", "naive [Intel Xeon, 0123456]"]
    assert set(summary["seeds"]) == {3}  # nothing averaged across the two folders


def test_one_origin_keeps_plain_labels(tmp_path: Path) -> None:
    one = _folder(tmp_path / "a", "Intel Xeon", "0123456789", 0.10)
    other = _folder(tmp_path / "b", "Intel Xeon", "0123456789", 0.12, method="mine")
    assert sorted(leaderboard_frame([one, other])["method"].unique()) == ["mine", "naive"]
