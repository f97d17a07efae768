"""Reading run directories back into records, with no cell counted twice."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError
from wbench.records.store import Outcome, Record, RecordStore


class DuplicateCellError(WbenchError):
    """Two run directories hold a record of the same cell (same key)."""


class DuplicateCellWarning(UserWarning):
    """A cell held by several run directories: only its newest record is kept (``keep_newest``)."""


def load_records(run_dirs: Iterable[str | Path], *, keep_newest: bool = False) -> list[Record]:
    """All records of the given run directories (or ``records.jsonl`` files), in order.

    A cell (record key) held by two of the directories would count twice: that is a
    :class:`DuplicateCellError` naming the key and both files, unless ``keep_newest``, which
    keeps the record finished last (the later directory on a tie) with a
    :class:`DuplicateCellWarning`. A directory given twice is read once.
    """
    found: dict[str, tuple[Record, Path]] = {}
    seen: set[Path] = set()
    for run_dir in run_dirs:
        path = Path(run_dir)
        store = RecordStore(path.parent if path.name.endswith(".jsonl") else path)
        if not store.path.exists():
            raise FileNotFoundError(f"no records at {store.path}")
        if store.path.resolve() in seen:
            continue
        seen.add(store.path.resolve())
        for record in store.load():
            if record.key not in found:
                found[record.key] = (record, store.path)
                continue
            other, other_path = found[record.key]
            cell = f"cell {record.key} ({record.dataset_label or record.dataset} / {record.label or record.method} / seed {record.seed})"
            if not keep_newest:
                raise DuplicateCellError(
                    f"{cell} is in both {other_path} and {store.path}: it would count twice; "
                    f"pass --keep-newest to keep only its newest record"
                )
            newer = (record.finished_at or "") >= (other.finished_at or "")
            kept, dropped = (store.path, other_path) if newer else (other_path, store.path)
            warnings.warn(f"{cell} is in both {other_path} and {store.path}: kept the newest ({kept}), dropped {dropped}",
                          DuplicateCellWarning, stacklevel=2)
            if newer:
                del found[record.key]  # re-inserted below, at its new position
                found[record.key] = (record, store.path)
    return [record for record, _ in found.values()]


def record_coverage(record: Record) -> float:
    """Fraction of the record's test pairs with a value: its ``coverage``, or for a record
    written before wbench stored it, ``1 - test.n_failed / test.n_pairs`` (1.0 when
    ``test.n_failed`` is 0 or absent). NaN for a record that is not ``ok``."""
    if not record.ok:
        return math.nan
    out = record.outcome or Outcome()
    if out.coverage is not None:
        return float(out.coverage)
    metrics = out.metrics or {}
    failed, pairs = metrics.get("test.n_failed"), metrics.get("test.n_pairs")
    if not failed:
        return 1.0
    if not pairs:
        return 0.0
    return 1.0 - float(failed) / float(pairs)


def milestone_of(budget: Mapping[str, Any]) -> int | None:
    """A record's milestone: the length of its budget in the budget's unit (steps, else epochs)."""
    value = budget.get("steps") if budget.get("steps") is not None else budget.get("epochs")
    return int(value) if value is not None else None


