"""Records to a frame: one row per record, with the speed figures the board shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.records.columns import (  # noqa: F401
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
from wbench.records.read import (  # noqa: F401 (re-exported)
    DuplicateCellError,
    DuplicateCellWarning,
    load_records,
    milestone_of,
    record_coverage,
)
from wbench.records.store import Outcome, Record


def leaderboard_frame(run_dirs: Iterable[str | Path], *, keep_newest: bool = False, retimed: bool = True) -> pd.DataFrame:
    """:func:`records_frame` of the records of ``run_dirs`` (see :func:`load_records`), with the
    speed figures of a run folder's re-timing pass in place of the cells' in-run ones where
    the pass timed them (``retimed``; :func:`wbench.board.retimed.with_retimed_figures`).

    :raises wbench.run.retime.RetimeError: a ``retime.json`` that cannot be read or is stale.
    """
    run_dirs = list(run_dirs)
    records = load_records(run_dirs, keep_newest=keep_newest)
    if retimed:
        from wbench.board.retimed import with_retimed_figures

        records = with_retimed_figures(records, run_dirs)
    return records_frame(records)


def records_frame(records: Sequence[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record: identity columns plus every metric, throughput and transfer figure.

    :param records: :class:`~wbench.records.store.Record` objects (JSON objects are read with
        :meth:`~wbench.records.store.Record.from_dict`).
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
        if "train_pairs" in (r.budget or {}):  # records before issue 34 do not state it: no empty column
            row["budget.train_pairs"] = r.budget["train_pairs"]
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


