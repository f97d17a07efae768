"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Every file wbench writes that a later run reads back (records' artifacts, checkpoints,
cache entries, ``timing.json``) goes through :func:`atomic_writer`: the bytes go to a
temporary file in the same folder, are flushed to disk, and replace the target by one
rename; an error on the way removes the temporary file and leaves the target as it was.
An append-only file (``records.jsonl``) grows by :func:`append_or_cut_back` instead.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "write_bytes_atomically"]


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` when the block ends without error.

    The parent folder is created when missing. The temporary file (``.<name>.<random>.tmp``
    beside ``path``) is unique, so two writers never share one; the last rename wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (:func:`atomic_writer`); returns ``path``."""
    with atomic_writer(path) as handle:
        handle.write(data)
    return Path(path)


def append_or_cut_back(path: str | Path, data: bytes, *, size_before: int) -> None:
    """Append ``data`` to ``path`` (created when missing) and fsync it; when a write fails (a
    full disk), cut the file back to ``size_before`` bytes, so no part of ``data`` stays, and
    re-raise the ``OSError``. Unbuffered: nothing is left in a buffer to reach the file later."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        rest = memoryview(data)
        while rest:
            rest = rest[os.write(fd, rest):]
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise
    finally:
        os.close(fd)
