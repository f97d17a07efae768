"""Records to a frame: reading run directories (no cell counted twice) into one row per record."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.columns import (  # noqa: F401
    COLUMNS,
    LEADERBOARD_PAIRWISE_N,
    Column,
    UnknownColumnError,
    _covers,
    _format_number,
    _stated,
    cost_columns,
    leaderboard_pairwise_n,
    resolve_columns,
    select_columns,
)
from wbench.errors import WbenchError
from wbench.records import Outcome, Record, RecordStore


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


def leaderboard_frame(run_dirs: Iterable[str | Path], *, keep_newest: bool = False, retimed: bool = True) -> pd.DataFrame:
    """:func:`records_frame` of the records of ``run_dirs`` (see :func:`load_records`), with the
    speed figures of a run folder's re-timing pass in place of the cells' in-run ones where
    the pass timed them (``retimed``; :func:`wbench.retimed.with_retimed_figures`).

    :raises wbench.retime.RetimeError: a ``retime.json`` that cannot be read or is stale.
    """
    run_dirs = list(run_dirs)
    records = load_records(run_dirs, keep_newest=keep_newest)
    if retimed:
        from wbench.retimed import with_retimed_figures

        records = with_retimed_figures(records, run_dirs)
    return records_frame(records)


def records_frame(records: Sequence[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record: identity columns plus every metric, throughput and transfer figure.

    :param records: :class:`~wbench.records.Record` objects (JSON objects are read with
        :meth:`~wbench.records.Record.from_dict`).
    """
    rows = []
    for item in records:
        r = item if isinstance(item, Record) else Record.from_dict(item)
        out = r.outcome or Outcome()
        row: dict[str, Any] = {
            "dataset": r.dataset_label or r.dataset,
            "dataset_name": r.dataset,
            "method": r.label or r.method,
            "method_name": r.method,
            "seed": r.seed,
            "status": r.status,
            "error": r.error.splitlines()[0] if r.error else "",
            "n_parameters": out.n_parameters if out.n_parameters_inference is None else out.n_parameters_inference,
            "trainable": out.trainable,
            "milestone": milestone_of(r.budget),
            "milestone_unit": "steps" if (r.budget or {}).get("steps") is not None else "epochs",
            "batch_size": (r.budget or {}).get("batch_size"),
            "device": (r.provenance or {}).get("device_name"),
            "unit": out.unit or "",
        }
        row["coverage"] = record_coverage(r)
        row.update(out.metrics or {})
        row.update(out.throughput or {})
        row.update({f"transfer.{k}": v for k, v in (out.transfer or {}).items()})
        fit = out.fit or {}
        row["fit.steps"] = fit.get("steps")
        row["fit.wall_time_s"] = fit.get("wall_time_s")
        if out.metric_by_construction is not None:
            row["metric_by_construction"] = out.metric_by_construction
        if out.n_parameters_trained is not None:  # records before issue 18 lack both: no empty columns
            row["n_parameters_trained"] = out.n_parameters_trained
        if "cost" in fit:
            row["fit.pairs_seen"] = fit["cost"].get("pairs_seen")
        rows.append(row)
    return cost_columns(pd.DataFrame(rows))


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


