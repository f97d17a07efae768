"""Records: atomic writes, replacement by key, no non-finite numbers, corrupt files."""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from wbench.provenance import provenance
from wbench.records.store import (
    SCHEMA_VERSION,
    Outcome,
    Record,
    RecordFileError,
    RecordStore,
    cell_key,
    clean_floats,
)


def _record(key: str, value: float = 1.0, status: str = "ok") -> dict:
    return {"schema_version": SCHEMA_VERSION, "key": key, "status": status, "metrics": {"m": value}}


def test_append_and_load_round_trip(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a", 1.5))
    store.append(_record("b", 2.5))
    assert [r.outcome.metrics["m"] for r in store.load()] == [1.5, 2.5]
    assert store.finished_keys() == {"a", "b"}


def test_same_key_replaces_instead_of_duplicating(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a", 1.0, status="failed"))
    store.append(_record("a", 2.0))
    records = store.load()
    assert len(records) == 1 and records[0].outcome.metrics["m"] == 2.0 and records[0].status == "ok"


def test_failed_cells_are_not_finished(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a", status="failed"))
    assert store.finished_keys() == set()


def test_non_finite_numbers_are_never_stored(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append({"schema_version": SCHEMA_VERSION, "key": "x", "status": "ok", "metrics": {"nan": math.nan, "inf": math.inf, "ok": 1.0}})
    text = store.path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["metrics"] == {"nan": None, "inf": None, "ok": 1.0}
    assert clean_floats([1.0, float("nan")]) == [1.0, None]


def test_corrupt_line_is_reported_with_its_number_and_never_overwritten(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a"))
    with open(store.path, "a") as handle:
        handle.write('{"schema_version": 1, "key": "b", "sta\n')  # a damaged line in the middle: never dropped
        handle.write(json.dumps(_record("c")) + "\n")
    before = store.path.read_bytes()
    with pytest.raises(RecordFileError, match=r"records.jsonl:2: not a JSON record"):
        store.load()
    with pytest.raises(RecordFileError):
        store.append(_record("c"))
    assert store.path.read_bytes() == before


def _append_many(args: tuple[str, int]) -> None:
    run_dir, worker = args
    store = RecordStore(run_dir)
    for k in range(15):
        store.append(_record(f"w{worker}-{k}", float(k)))


def test_concurrent_writers_lose_nothing(tmp_path) -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_append_many, [(str(tmp_path), w) for w in range(3)]))
    keys = [r.key for r in RecordStore(tmp_path).load()]
    assert sorted(keys) == sorted(f"w{w}-{k}" for w in range(3) for k in range(15))


def test_cell_key_is_stable_and_sensitive() -> None:
    base = {"dataset": "digits", "method": "naive", "seed": 0, "budget": {"epochs": 1}}
    assert cell_key(**base) == cell_key(**dict(reversed(list(base.items()))))
    assert cell_key(**base) != cell_key(**{**base, "seed": 1})


def test_provenance_names_versions_and_device() -> None:
    info = provenance("cpu")
    assert info["versions"]["torch"] and info["versions"]["pot"] and info["versions"]["wbench"]
    assert info["device"] == "cpu" and info["device_name"] and info["torch_threads"] >= 1
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
    assert "git_commit" in info and "git_dirty" in info


RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_published_records_read_as_typed_records_and_write_back_the_same_json() -> None:
    """Every published line (schema 1) reads into a :class:`Record` whose JSON is the line's."""
    lines = [line for path in sorted(RESULTS.glob("*/records.jsonl")) for line in path.read_text().splitlines()]
    assert len(lines) >= 80
    for line in lines:
        data = json.loads(line)
        record = Record.from_dict(data)
        assert json.dumps(record.as_dict(), sort_keys=True, allow_nan=False) == json.dumps(data, sort_keys=True)
        assert record.outcome is not None
        # written only by runs that store it (optional: older lines have no such key)
        assert record.outcome.speedup_reference == data.get("speedup_reference")
        assert record.key == cell_key(**record.identity())


def test_store_rewrites_published_records_byte_for_byte(tmp_path) -> None:
    """Appending the published records one by one gives the published file back."""
    published = (RESULTS / "digits" / "records.jsonl").read_text()
    store = RecordStore(tmp_path)
    for line in published.splitlines():
        store.append(Record.from_dict(json.loads(line)))
    assert store.path.read_text() == published


def test_record_fields_and_bad_records() -> None:
    record = Record(key="k", status="failed", error="boom", seed=3)
    assert record.as_dict()["error"] == "boom" and "metrics" not in record.as_dict()  # no outcome, no outcome keys
    ok = Record(key="k", status="ok", outcome=Outcome(metrics={"m": 1.0}, artifacts=("a.png",), speedup_reference="lp"))
    data = ok.as_dict()
    assert data["artifacts"] == ["a.png"] and data["speedup_reference"] == "lp" and data["metrics"] == {"m": 1.0}
    assert Record.from_dict(data) == ok and Record.from_dict({**data, "future": 1}).extra == {"future": 1}
    with pytest.raises(RecordFileError, match="status 'done' is not one of ok, failed, unavailable"):
        Record(key="k", status="done")
    with pytest.raises(RecordFileError, match="no 'status'"):
        Record.from_dict({"key": "k"})


def test_a_line_that_is_not_a_record_is_named(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.path.write_text('{"schema_version": 1, "key": "a", "status": "finished"}\n')
    with pytest.raises(RecordFileError, match=r"records.jsonl:1: record a: status 'finished'"):
        store.load()


# --------------------------------------------------------------------------- integrity (issue 17)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_number_in_a_line_is_refused_at_load_naming_file_and_line(tmp_path, number) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a"))
    with open(store.path, "a") as handle:
        handle.write(json.dumps(_record("b")).replace('"m": 1.0', f'"m": {number}') + "\n")
    with pytest.raises(RecordFileError, match=rf"records.jsonl:2: non-finite number {number}"):
        store.load()


def test_append_only_one_fsynced_write_per_record_never_rewrites(tmp_path, monkeypatch) -> None:
    import wbench.records.store as records

    store = RecordStore(tmp_path)
    store.append(_record("a"))
    inode, before = store.path.stat().st_ino, store.path.read_bytes()
    synced: list[int] = []
    real_fsync = records.os.fsync
    monkeypatch.setattr(records.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    store.append(_record("b"))
    store.append(_record("a", 5.0))  # a later line of a key supersedes the earlier one at load
    assert store.path.stat().st_ino == inode  # the same file, appended to, not replaced
    assert store.path.read_bytes().startswith(before) and len(store.path.read_text().splitlines()) == 3
    assert len(synced) == 2
    assert [(r.key, r.outcome.metrics["m"]) for r in store.load()] == [("b", 1.0), ("a", 5.0)]


def test_torn_last_line_is_reported_then_dropped_alone_and_kept_in_a_backup(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("a"))
    store.append(_record("b"))
    whole = store.path.read_bytes()
    torn = (json.dumps(_record("c")) + "\n").encode()[:25]  # a kill in the middle of the write
    with open(store.path, "ab") as handle:
        handle.write(torn)
    with pytest.raises(RecordFileError, match=r"records.jsonl:3: torn last line \(25 bytes"):
        store.load()
    with pytest.raises(RecordFileError, match="torn last line"):
        store.append(_record("d"))  # never glued onto the torn bytes
    assert store.drop_torn_tail() == torn
    assert store.path.read_bytes() == whole  # only the torn line went
    assert (tmp_path / "records.jsonl.torn").read_bytes() == torn + b"\n"
    assert [r.key for r in store.load()] == ["a", "b"]
    assert store.drop_torn_tail() == b""  # nothing left to drop


def test_append_checks_each_line_once_yet_sees_a_changed_line(tmp_path, monkeypatch) -> None:
    """Appending parses only the lines added since the store's last check, unless the bytes
    it checked changed: an edit in place is still refused."""
    import wbench.records.store as records

    store = RecordStore(tmp_path)
    store.append(_record("a"))
    store.append(_record("b"))
    parsed: list[str] = []
    real = records.parse_record_line
    monkeypatch.setattr(records, "parse_record_line", lambda line, where: (parsed.append(where), real(line, where))[1])
    store.append(_record("c"))
    assert parsed == []  # lines 1 and 2 were checked (written) by this store already
    lines = store.path.read_bytes().split(b"\n")
    lines[0] = b'{"schema_version": 1, "key": "a", "sta'  # damaged in place, after it was checked
    store.path.write_bytes(b"\n".join(lines))
    with pytest.raises(RecordFileError, match=r"records.jsonl:1: not a JSON record"):
        store.append(_record("d"))
    assert parsed[0].endswith("records.jsonl:1")


def test_a_full_disk_during_a_record_write_leaves_the_file_as_it_was(tmp_path, monkeypatch) -> None:
    """ENOSPC in the middle of a line: the part that reached the file is taken back (no torn
    line), the error names the file and says how to go on, and a later append works."""
    import errno

    import wbench.records.store as records

    store = RecordStore(tmp_path)
    store.append(_record("a"))
    before = store.path.read_bytes()
    real_write = records.os.write
    state = {"wrote": False}

    def write_half_then_fail(fd: int, data) -> int:
        if b'"key": "b"' not in bytes(data) and not state["wrote"]:
            return real_write(fd, data)
        if not state["wrote"]:
            state["wrote"] = True
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.os, "write", write_half_then_fail)
    with pytest.raises(RecordFileError, match=r"records\.jsonl \(No space left on device\).*unchanged.*--resume"):
        store.append(_record("b"))
    monkeypatch.undo()
    assert state["wrote"] and store.path.read_bytes() == before
    store.append(_record("c"))
    assert [r.key for r in store.load()] == ["a", "c"]


def test_a_failed_write_check_leaves_no_probe_file(tmp_path, monkeypatch) -> None:
    import errno

    import wbench.run.lock as lock

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock.os, "fsync", no_space)
    with pytest.raises(lock.RunDirNotWritableError, match="No space left on device"):
        lock.check_writable(tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []
