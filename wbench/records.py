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
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from wbench.errors import WbenchError

SCHEMA_VERSION = 1
RECORDS_FILENAME = "records.jsonl"
STATUSES = ("ok", "failed", "unavailable")
Status = Literal["ok", "failed", "unavailable"]
IDENTITY_FIELDS = (
    "dataset", "dataset_params", "dataset_label", "method", "method_params", "eval_params", "match_budget",
    "seed", "budget",
)
"""The fields of a record that identify its cell; :func:`cell_key` hashes them."""


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


@dataclass(frozen=True)
class Outcome:
    """What an evaluated cell produced (present on ``ok`` records, absent on failed ones).

    :param n_parameters: trainable parameters of the fitted model (count).
    :param n_parameters_inference: parameters used to compute distances (count; None in
        records written before wbench stored it).
    :param n_parameters_trained: parameters training updates (count; None likewise).
    :param metric_by_construction: whether the method's distances are Euclidean distances
        between embeddings (the axiom audit then measures nothing; None: not recorded).
    :param trainable: whether the method learns (False: a solver or embedding).
    :param fit: the fit report (:meth:`wbench.surrogate.FitReport.as_dict`).
    :param describe: the model's own description.
    :param metrics: metric name -> value (None where not finite).
    :param metric_errors: metric plugin name -> the error it raised.
    :param throughput: throughput figures (pairs per second), the speed-up reference's
        (``exact.*``) and the speed-ups.
    :param transfer: ``<target label>.<metric>`` -> value on each transfer dataset.
    :param unit: the dataset's distance unit.
    :param artifacts: files written, relative to the run directory.
    :param speedup_reference: the surrogate whose throughput is the denominator of the
        speed-ups (None: not timed; records written before wbench stored it have None).
    """

    n_parameters: int | None = None
    n_parameters_inference: int | None = None
    n_parameters_trained: int | None = None
    metric_by_construction: bool | None = None
    trainable: bool | None = None
    fit: Mapping[str, Any] = field(default_factory=dict)
    describe: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    metric_errors: Mapping[str, str] = field(default_factory=dict)
    throughput: Mapping[str, float | None] = field(default_factory=dict)
    transfer: Mapping[str, Any] = field(default_factory=dict)
    unit: str = ""
    artifacts: tuple[str, ...] = ()
    speedup_reference: str | None = None


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))
_OPTIONAL_OUTCOME_FIELDS = (
    "speedup_reference", "n_parameters_inference", "n_parameters_trained", "metric_by_construction",
)
"""Outcome keys written only when set, so records read from older files write back unchanged."""


@dataclass(frozen=True)
class Record:
    """One line of ``records.jsonl``: one cell (dataset, method configuration, seed) and
    evaluation setting. On disk the fields are flat JSON keys (those of :attr:`outcome`
    included); :meth:`as_dict` and :meth:`from_dict` convert.

    :param key: :func:`cell_key` of the identity fields (what ``--resume`` matches).
    :param status: ``ok``, ``failed`` or ``unavailable``.
    :param dataset, dataset_params, dataset_label, method, method_params, eval_params,
        match_budget, seed, budget: the cell's identity (:data:`IDENTITY_FIELDS`).
    :param label: the method row's display name.
    :param error: the error of a failed or unavailable cell (None when ``ok``).
    :param started_at, finished_at: UTC ISO 8601 times.
    :param provenance: git commit, versions, device, threads (:func:`provenance`).
    :param outcome: what the evaluation produced (None: the cell failed before it).
    :param extra: keys of the file that this wbench does not know, kept as read.
    """

    key: str
    status: Status
    schema_version: int = SCHEMA_VERSION
    suite: str | None = None
    dataset: str | None = None
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    dataset_label: str | None = None
    method: str | None = None
    method_params: Mapping[str, Any] = field(default_factory=dict)
    eval_params: Mapping[str, Any] = field(default_factory=dict)
    match_budget: bool | None = None
    seed: int | None = None
    budget: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise RecordFileError(f"a record needs a non-empty string key, got {self.key!r}")
        if self.status not in STATUSES:
            raise RecordFileError(f"record {self.key}: status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        """Whether the cell finished (``--resume`` skips it)."""
        return self.status == "ok"

    def identity(self) -> dict[str, Any]:
        """The identity fields, as :func:`cell_key` hashes them."""
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        """The JSON object written to ``records.jsonl`` (flat; outcome keys only when present)."""
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name not in ("outcome", "extra"):
                out[f.name] = _plain(getattr(self, f.name))
        if self.outcome is not None:
            for name in _OUTCOME_FIELDS:
                value = getattr(self.outcome, name)
                if name not in _OPTIONAL_OUTCOME_FIELDS or value is not None:
                    out[name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """A record from its JSON object (any schema up to :data:`SCHEMA_VERSION`).

        Raises :class:`RecordFileError` naming a missing key or a bad status.
        """
        if "key" not in data or "status" not in data:
            missing = "key" if "key" not in data else "status"
            raise RecordFileError(f"not a wbench record: no {missing!r}")
        own = {f.name for f in fields(cls)} - {"outcome", "extra"}
        values = {k: v for k, v in data.items() if k in own}
        result = {k: v for k, v in data.items() if k in _OUTCOME_FIELDS}
        if "artifacts" in result:
            result["artifacts"] = tuple(result["artifacts"] or ())
        extra = {k: v for k, v in data.items() if k not in own and k not in _OUTCOME_FIELDS}
        return cls(**values, outcome=Outcome(**result) if result else None, extra=extra)


def _plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, as JSON reads them back."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


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

    def load(self) -> list[Record]:
        """All records in file order; raises :class:`RecordFileError` naming a bad line."""
        return [Record.from_dict(data) for data in self._load_objects()]

    def _load_objects(self) -> list[dict[str, Any]]:
        """The JSON objects of the file, each checked to be a readable record."""
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
            try:
                Record.from_dict(record)
            except (RecordFileError, TypeError) as exc:
                raise RecordFileError(f"{self.path}:{number}: {exc}") from exc
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

    def append(self, record: Record | Mapping[str, Any]) -> Record:
        """Add one record atomically; a record with the same ``key`` replaces the old one.

        :param record: a :class:`Record` (a mapping is read with :meth:`Record.from_dict`).
        :returns: the record as stored (non-finite floats replaced by None).
        """
        if not isinstance(record, Record):
            record = Record.from_dict(record)
        data = clean_floats(record.as_dict())
        stored = Record.from_dict(data)
        line = json.dumps(data, sort_keys=True, allow_nan=False)
        with self._locked():
            kept = [r for r in self._load_objects() if r.get("key") != stored.key]
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
        return {r.key for r in self.load() if r.ok}
