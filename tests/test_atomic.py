"""Atomic writes: the target holds the old bytes or the new ones, never a torn file."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbench.util.atomic import atomic_writer, write_bytes_atomically


def test_write_replaces_the_file_and_creates_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "folder" / "file.bin"
    assert write_bytes_atomically(target, b"first") == target
    write_bytes_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temporary left


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "records.json"
    target.write_bytes(b"kept")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_writer(target) as handle:
        handle.write(b"half of the new cont")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"]
