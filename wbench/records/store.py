"""Run records: one JSON object per line, one line per (dataset, method config, seed).

A record holds a schema version, the cell's identity and key, its status (``ok``,
``failed`` or ``unavailable``) and error, every metric, every throughput figure, the fit
report and the provenance needed to reproduce it.

The file is append-only: each record is one line written and fsynced under an exclusive
lock (:meth:`RecordStore.append`), never rewritten nor lost; the last line of a key wins. A run killed mid-write can leave a torn last line (no final
newline, not valid JSON): loading reports it, and :meth:`RecordStore.drop_torn_tail`
(``wbench run --resume``) removes only that line, keeping its bytes in
``records.jsonl.torn``. A line holding ``NaN`` or an infinity is refused at load, naming
the file and line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from wbench.records.jsonl import RecordFileError, canonical_json, clean_floats, parse_json_line  # noqa: F401
from wbench.util.atomic import append_or_cut_back

SCHEMA_VERSION = 1
RECORDS_FILENAME = "records.jsonl"
TORN_SUFFIX = ".torn"
"""Torn bytes dropped from the end of ``records.jsonl`` are kept in ``records.jsonl.torn``."""
STATUSES = ("ok", "failed", "unavailable")
Status = Literal["ok", "failed", "unavailable"]
IDENTITY_FIELDS = (
    "dataset", "dataset_params", "dataset_label", "method", "method_params", "eval_params", "match_budget",
    "seed", "budget",
)
"""The fields of a record that identify its cell; :func:`cell_key` hashes them."""


def truth_digest(w2sq: Any) -> str:
    """SHA-256 (first 16 hex digits) of exact W2^2 values as float64 bytes, in order."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(w2sq, dtype=np.float64).tobytes()).hexdigest()[:16]


def cell_key(**identity: Any) -> str:
    """A short stable hash of a cell's identity (dataset, method, params, seed, budget).

    The budget's ``train_pairs`` (a fact the dataset parameters already fix, stated in every
    record since issue 34) is left out, so cell keys stay those of earlier records.
    """
    budget = identity.get("budget")
    if isinstance(budget, Mapping) and "train_pairs" in budget:
        identity = {**identity, "budget": {k: v for k, v in budget.items() if k != "train_pairs"}}
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


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
    :param truth_digest: SHA-256 (first 16 hex digits) of the exact W2^2 of the test pairs the
        record was scored on, float64 in pair order (:func:`truth_digest`); None in older records.
    :param method_class: the method's class (``Surrogate.method_class``: learned, hybrid,
        untrained, solver); None in records written before wbench stored it.
    :param side_effects: process-wide settings the cell changed and the harness put back
        (``"torch.default_dtype": "torch.float32 -> torch.float64"``); None when it changed none.
    :param coverage: fraction of the test pairs with a value (below 1 only for a solver that
        reported unsolved pairs as NaN); None in records written before wbench stored it
        (the leaderboard then derives it from ``test.n_failed``).
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
    coverage: float | None = None
    side_effects: Mapping[str, str] | None = None
    method_class: str | None = None
    truth_digest: str | None = None


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))
_OPTIONAL_OUTCOME_FIELDS = (
    "speedup_reference", "n_parameters_inference", "n_parameters_trained", "metric_by_construction", "coverage",
    "side_effects", "method_class", "truth_digest",
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


def parse_record_line(line: str, where: str) -> dict[str, Any]:
    """One line of ``records.jsonl`` as a checked JSON object.

    :param where: ``file:line``, the prefix of every error message.
    :raises RecordFileError: not JSON, a ``NaN`` / ``Infinity`` (or a number that overflows
        to one), not a wbench record, a newer schema, or a bad key or status.
    """
    record = parse_json_line(line, where)
    if not isinstance(record, dict) or "schema_version" not in record:
        raise RecordFileError(f"{where}: not a wbench record (no schema_version)")
    if not isinstance(record["schema_version"], int) or record["schema_version"] > SCHEMA_VERSION:
        raise RecordFileError(
            f"{where}: schema version {record['schema_version']!r} is newer than this wbench ({SCHEMA_VERSION})"
        )
    try:
        Record.from_dict(record)
    except (RecordFileError, TypeError) as exc:
        raise RecordFileError(f"{where}: {exc}") from exc
    return record


class RecordStore:
    """The ``records.jsonl`` file of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RECORDS_FILENAME
        self._lock_path = self.run_dir / ".records.lock"
        self._checked: tuple[int, bytes] = (0, hashlib.sha256().digest())
        """How many leading bytes of the file this store has checked or written, and their digest."""

    def exists(self) -> bool:
        """Whether the run directory holds a non-empty ``records.jsonl``."""
        return self.path.exists() and self.path.stat().st_size > 0

    def load(self) -> list[Record]:
        """The records in file order, one per key (the last line of a key wins).

        :raises RecordFileError: naming the file and line of a line that is not a valid
            record, holds a non-finite number, or is a torn last line.
        """
        return [record for _, record in self.load_numbered()]

    def load_numbered(self) -> list[tuple[int, Record]]:
        """:meth:`load`'s records, each with the number of the file line it was read from
        (so that a later check can name the line)."""
        if not self.path.exists():
            return []
        return [(number, Record.from_dict(data)) for number, data in self._parse_numbered(self.path.read_bytes())]

    def _load_objects(self) -> list[dict[str, Any]]:
        """The JSON objects of the file, each checked to be a readable record, one per key."""
        if not self.path.exists():
            return []
        return self._parse(self.path.read_bytes())

    def _parse(self, data: bytes, start: int = 0) -> list[dict[str, Any]]:
        """The records of ``data[start:]`` (``start``: 0 or the end of a line), one per key,
        each checked; line numbers in errors count from the start of the file.

        :raises RecordFileError: a line that is not a valid record, or a torn last line.
        """
        return [record for _, record in self._parse_numbered(data, start)]

    def _parse_numbered(self, data: bytes, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`_parse`'s records, each with its line number (from the start of the file)."""
        torn = self.torn_tail(data)
        by_key: dict[str, tuple[int, dict[str, Any]]] = {}
        lines = data[start:].decode("utf-8", errors="replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        first = data[:start].count(b"\n") + 1
        last = first + len(lines) - 1
        for number, line in enumerate(lines, start=first):
            if not line.strip():
                continue
            if torn and number == last:
                raise RecordFileError(
                    f"{self.path}:{number}: torn last line ({len(torn)} bytes without a final newline: a run "
                    f"was killed while writing it); `wbench run --resume` drops it and keeps the bytes in "
                    f"{self.path.name}{TORN_SUFFIX}"
                )
            record = parse_record_line(line, f"{self.path}:{number}")
            by_key.pop(record["key"], None)  # the later line of a key supersedes the earlier one
            by_key[record["key"]] = (number, record)
        return list(by_key.values())

    def _check_before_append(self) -> bytes:
        """Refuse to append to a file with a torn or invalid line; return its bytes.

        The bytes this store already checked (or wrote) are parsed again only if they
        changed (their digest differs), so a run of n appends parses each line once, not
        n times over.
        """
        data = self.path.read_bytes() if self.path.exists() else b""
        size, digest = self._checked
        if len(data) < size or hashlib.sha256(data[:size]).digest() != digest:
            size = 0
        self._parse(data, start=size)
        return data

    @staticmethod
    def torn_tail(data: bytes) -> bytes:
        """The bytes after the last newline of ``data`` when they are not a whole JSON line
        (what a kill in the middle of a write leaves), else ``b""``."""
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if not tail.strip():
            return b""
        try:
            json.loads(tail)
        except ValueError:
            return tail
        return b""

    def drop_torn_tail(self) -> bytes:
        """Remove a torn last line (only that line) and keep its bytes in ``records.jsonl.torn``.

        A complete last line that lacks only its newline gets the newline instead.

        :returns: the torn bytes removed (``b""``: nothing was torn).
        """
        if not self.path.exists():
            return b""
        with self._locked():
            data = self.path.read_bytes()
            torn = self.torn_tail(data)
            if torn:
                with open(self.path.with_name(self.path.name + TORN_SUFFIX), "ab") as backup:
                    backup.write(torn + b"\n")
                    backup.flush()
                    os.fsync(backup.fileno())
                with open(self.path, "r+b") as handle:
                    handle.truncate(len(data) - len(torn))
                    handle.flush()
                    os.fsync(handle.fileno())
            elif data and not data.endswith(b"\n"):
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        return torn

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
        """Append one record as one line (one fsynced write) under an exclusive lock.

        A record whose ``key`` is already in the file supersedes the earlier line when the
        file is loaded; nothing already written is rewritten.

        :param record: a :class:`Record` (a mapping is read with :meth:`Record.from_dict`).
        :returns: the record as stored (non-finite floats replaced by None).
        :raises RecordFileError: the file ends in a torn line (drop it first with
            :meth:`drop_torn_tail`) or holds an invalid line (nothing is written then), or the
            write failed (a full disk; the file is cut back to what it held).
        """
        data = clean_floats((record if isinstance(record, Record) else Record.from_dict(record)).as_dict())
        stored = Record.from_dict(data)
        encoded = (json.dumps(data, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
        with self._locked():
            data = self._check_before_append()  # refuse to append after a torn or invalid line
            try:
                append_or_cut_back(self.path, encoded, size_before=len(data))
            except OSError as exc:
                raise RecordFileError(
                    f"cannot append a record to {self.path} ({exc.strerror or exc}); the file holds the "
                    f"records written before it, unchanged: free space and continue with --resume"
                ) from exc
            self._checked = (len(data) + len(encoded), hashlib.sha256(data + encoded).digest())
        return stored

    def finished_keys(self) -> set[str]:
        """Keys of cells that need no re-run: status ``ok`` (failed cells are retried on resume)."""
        return {r.key for r in self.load() if r.ok}
