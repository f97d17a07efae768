"""Run records: one JSON object per line, one line per (dataset, method config, seed).

A record holds a schema version, the cell's identity and key, its status (``ok``,
``failed`` or ``unavailable``) and error, every metric, every throughput figure, the fit
report and the provenance needed to reproduce it. The file is rewritten atomically
(temporary file, fsync, ``os.replace``) under an exclusive lock for every new record, so an
interrupted or concurrent run never leaves a partial line nor loses a finished record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError

SCHEMA_VERSION = 1
RECORDS_FILENAME = "records.jsonl"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def cell_key(**identity: Any) -> str:
    """A short stable hash of a cell's identity (dataset, method, params, seed, budget)."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def clean_floats(value: Any) -> Any:
    """Replace NaN and infinities by None recursively, so no non-finite number is stored."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_floats(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return clean_floats(value.item())
    return value


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@cache
def _git_state() -> tuple[str | None, bool | None]:
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(dirty)


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """A human name of the device a cell ran on: the GPU's name or the CPU model."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def provenance(device: str = "cpu") -> dict[str, Any]:
    """Where and with what a record was computed: git commit and dirty flag, versions, device, threads."""
    import torch

    commit, dirty = _git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: _package_version(dist)
            for name, dist in (
                ("wbench", "wbench"), ("torch", "torch"), ("pot", "POT"), ("geomloss", "geomloss"),
                ("numpy", "numpy"), ("torchdiffeq", "torchdiffeq"), ("scikit-learn", "scikit-learn"),
            )
        },
        "device": device,
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def utc_now() -> str:
    """The current UTC time in ISO 8601, seconds precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class RecordFileError(WbenchError):
    """A records file has a line that is not a valid record."""


class RecordStore:
    """The ``records.jsonl`` file of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RECORDS_FILENAME
        self._lock_path = self.run_dir / ".records.lock"

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def load(self) -> list[dict[str, Any]]:
        """All records in file order; raises :class:`RecordFileError` naming a bad line."""
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordFileError(f"{self.path}:{number}: not a JSON record ({exc.msg})") from exc
            if not isinstance(record, dict) or "schema_version" not in record:
                raise RecordFileError(f"{self.path}:{number}: not a wbench record (no schema_version)")
            if record["schema_version"] > SCHEMA_VERSION:
                raise RecordFileError(
                    f"{self.path}:{number}: schema version {record['schema_version']} is newer than this wbench ({SCHEMA_VERSION})"
                )
            records.append(record)
        return records

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Add one record atomically; a record with the same ``key`` replaces the old one.

        :returns: the record as stored (non-finite floats replaced by None).
        """
        stored = clean_floats(dict(record))
        line = json.dumps(stored, sort_keys=True, allow_nan=False)
        with self._locked():
            kept = [r for r in self.load() if r.get("key") != stored.get("key")]
            lines = [json.dumps(r, sort_keys=True, allow_nan=False) for r in kept] + [line]
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        return stored

    def finished_keys(self) -> set[str]:
        """Keys of cells that need no re-run: status ``ok`` (failed cells are retried on resume)."""
        return {r["key"] for r in self.load() if r.get("status") == "ok"}
