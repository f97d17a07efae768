"""Reading run directories back into records, with no cell counted twice."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError
from wbench.records.store import Outcome, Record, RecordFileError, RecordStore, cell_key


class DuplicateCellError(WbenchError):
    """Two run directories hold a record of the same cell (same key)."""


class DuplicateCellWarning(UserWarning):
    """A cell held by several run directories: only its newest record is kept (``keep_newest``)."""


class RecordCheckError(RecordFileError):
    """A record reads as JSON but fails :func:`check_record` (a hand-edited or damaged line)."""


ERROR_METRIC_MARKS = ("mse", "mae", "max_abs", "rel_")
"""A metric whose last name part contains one of these is an error: never negative (but a
``*_diff``, a difference of two errors, may be)."""
CORRELATION_MARKS = ("pearson", "spearman")
"""A metric whose last name part contains one of these is a correlation: in [-1, 1]."""
SPEEDUP_NAMES = ("speedup.independent", "speedup.pairwise", "speedup.one_core")
"""Speed-up figures (with every ``*.speedup``): positive."""
PAIRS_PER_S_PREFIXES = ("cost.pairwise.", "cost.direct.")
"""``<prefix><n>``: pairs per second of an ``n x n`` block, positive (as is every ``*pairs_per_s``)."""
CORRELATION_SLACK = 1e-9
"""Rounding a correlation may show beyond +-1 (1.0000000000000002)."""
SPEEDUP_RTOL = 1e-6
"""How far ``speedup.<side>.speedup`` may be from its method's pairs/s over the LP's."""


def check_record(record: Record) -> list[str]:
    """The problems of a record as the leaderboard would show it (empty: none).

    A record is refused when its ``key`` is not :func:`~wbench.records.store.cell_key` of
    its identity fields (an identity field edited after the run), or when a figure is out of
    its valid range: errors (metric names with ``mse``, ``mae``, ``max_abs``, ``rel_``)
    negative, correlations (``pearson``, ``spearman``) outside [-1, 1], a recall or the
    coverage outside [0, 1], a spread (``*_iqr``) negative, a speed-up or a pairs/s figure
    not positive, or a one-core / all-cores speed-up that is not its method's pairs/s over
    the exact LP's. Values stored as None (not finite when measured) are not checked.
    """
    problems: list[str] = []
    expected = cell_key(**record.identity())
    if record.key != expected:
        problems.append(f"key {record.key!r} is not the key of the record's identity fields ({expected}): "
                        f"dataset, method, parameters, seed or budget were changed after the run")
    out = record.outcome
    if out is None:
        return problems
    for section, values in (("metrics", out.metrics), ("throughput", out.throughput), ("transfer", out.transfer)):
        for name, value in (values or {}).items():
            problem = figure_problem(str(name), value)
            if problem:
                problems.append(f"{section} {name!r} = {value!r} {problem}")
    if out.coverage is not None:
        problem = _range_problem(out.coverage, 0.0, 1.0)
        if problem:
            problems.append(f"'coverage' = {out.coverage!r} {problem}")
    problems.extend(_speedup_problems(out.throughput or {}))
    return problems


def figure_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid value of the figure ``name`` (None: it is, or no range is
    known for that name). See :func:`check_record` for the ranges."""
    if value is None:
        return None
    leaf = name.rsplit(".", 1)[-1]
    if any(mark in leaf for mark in CORRELATION_MARKS):
        return _range_problem(value, -1.0 - CORRELATION_SLACK, 1.0 + CORRELATION_SLACK, shown="[-1, 1]")
    if leaf.startswith("recall"):
        return _range_problem(value, 0.0, 1.0)
    if leaf.endswith("_iqr"):
        return _range_problem(value, 0.0, math.inf, shown="non-negative")
    if any(mark in leaf for mark in ERROR_METRIC_MARKS) and not leaf.endswith("_diff"):
        return _range_problem(value, 0.0, math.inf, shown="non-negative (an error)")
    if (name in SPEEDUP_NAMES or leaf == "speedup" or leaf.endswith("pairs_per_s")
            or (name.startswith(PAIRS_PER_S_PREFIXES) and leaf.isdigit())):
        return _range_problem(value, 0.0, math.inf, shown="positive", open_low=True)
    return None


def _range_problem(value: Any, low: float, high: float, *, shown: str | None = None, open_low: bool = False) -> str | None:
    """Why ``value`` is not a finite number in ``[low, high]`` (``(low, high]`` with
    ``open_low``), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    inside = (value > low if open_low else value >= low) and value <= high and math.isfinite(value)
    return None if inside else f"is out of range: must be {shown or f'in [{low:g}, {high:g}]'}"


def _speedup_problems(throughput: Mapping[str, Any]) -> list[str]:
    """A one-core or all-cores speed-up that is not its method's pairs/s over the LP's."""
    problems = []
    for side in ("one_core", "all_cores"):
        figures = [throughput.get(f"speedup.{side}.{k}") for k in ("speedup", "method_pairs_per_s", "lp_pairs_per_s")]
        if not all(isinstance(f, int | float) and not isinstance(f, bool) and f > 0 for f in figures):
            continue  # absent, or already reported as out of range
        speedup, method, lp = figures
        if not math.isclose(speedup, method / lp, rel_tol=SPEEDUP_RTOL):
            problems.append(f"throughput 'speedup.{side}.speedup' = {speedup!r} is not "
                            f"'speedup.{side}.method_pairs_per_s' / 'speedup.{side}.lp_pairs_per_s' "
                            f"({method!r} / {lp!r} = {method / lp:.6g})")
    return problems


def checked_records(store: RecordStore) -> list[Record]:
    """The records of ``store`` (:meth:`RecordStore.load`), each passing :func:`check_record`.

    :raises RecordCheckError: naming the file, line, key and every bad field of the first
        record that fails.
    """
    records = []
    for number, record in store.load_numbered():
        problems = check_record(record)
        if problems:
            cell = f"{record.dataset_label or record.dataset} / {record.label or record.method} / seed {record.seed}"
            raise RecordCheckError(
                f"{store.path}:{number}: record {record.key} ({cell}) is refused: {'; '.join(problems)}. "
                f"wbench never writes such a record: the line was edited or damaged after the run"
            )
        records.append(record)
    return records


def load_records(run_dirs: Iterable[str | Path], *, keep_newest: bool = False) -> list[Record]:
    """All records of the given run directories (or ``records.jsonl`` files), in order.

    A cell (record key) held by two of the directories would count twice: that is a
    :class:`DuplicateCellError` naming the key and both files, unless ``keep_newest``, which
    keeps the record finished last (the later directory on a tie) with a
    :class:`DuplicateCellWarning`. A directory given twice is read once.

    :raises RecordCheckError: a record that fails :func:`check_record` (its file, line, key
        and bad fields named).
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
        for record in checked_records(store):
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


