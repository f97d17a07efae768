"""The run-directory lock: one ``wbench run`` per output directory at a time.

The lock is an ``fcntl`` lock on ``RUN_DIR/.wbench-run.lock``, which holds the PID of the
process that has it. The operating system releases it when that process exits, however it
exits, so a killed run never leaves a stale lock; a second run on the same directory stops
at once with :class:`RunDirLockedError`, naming the holder's PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from wbench.errors import WbenchError

LOCK_FILENAME = ".wbench-run.lock"


class RunDirLockedError(WbenchError):
    """Another process holds the lock of the run directory."""


class RunDirNotWritableError(WbenchError):
    """The run directory cannot be created or written."""


def check_writable(run_dir: str | Path) -> Path:
    """Create ``run_dir`` if needed and check that a file can be written in it.

    :returns: ``run_dir`` as a :class:`~pathlib.Path`.
    :raises RunDirNotWritableError: naming the directory and the operating system's reason.
    """
    path = Path(run_dir)
    probe = path / f".wbench-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise RunDirNotWritableError(
            f"cannot write to the output directory {path} ({type(exc).__name__}: {exc.strerror or exc}); "
            f"choose another --out, free space or fix its permissions (nothing was computed)"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)  # a failed check leaves no file behind either
    return path


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` for the duration of the ``with`` block.

    :returns: the lock file's path (it holds this process's PID while locked).
    :raises RunDirLockedError: another process holds it; the message names its PID.
    """
    path = check_writable(run_dir) / LOCK_FILENAME
    handle = open(path, "a+")  # noqa: SIM115 - closed in the finally below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunDirLockedError(
                f"{Path(run_dir)} is in use by another wbench run (PID {holder}); wait for it to finish "
                f"or choose another --out (nothing was computed)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
