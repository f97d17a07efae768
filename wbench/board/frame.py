"""Records to a frame: one row per record, with the speed figures the board shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.board.defaults import with_defaults_flags
from wbench.board.flags import val_drop
from wbench.records.columns import (  # noqa: F401
    COLUMNS,
    Column,
    UnknownColumnError,
    _covers,
    _format_number,
    _stated,
    cost_columns,
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
from wbench.records.timing_file import timing_figures


def leaderboard_frame(run_dirs: Iterable[str | Path], *, keep_newest: bool = False) -> pd.DataFrame:
    """:func:`records_frame` of the records of ``run_dirs`` (see :func:`load_records`) with the
    speed figures of each folder's timing pass joined by record key
    (:func:`wbench.records.timing_file.timing_figures`); a record the pass did not time has none.

    :raises wbench.records.timing_file.TimingError: a ``timing.json`` that cannot be read or is stale.
    """
    run_dirs = list(run_dirs)
    records = load_records(run_dirs, keep_newest=keep_newest)
    frame = with_origins(with_registered_classes(records_frame(records), records), records)
    frame = with_defaults_flags(frame, records)
    figures = timing_figures(run_dirs)
    if not figures or frame.empty:
        return frame
    speed = pd.DataFrame([figures.get(key, {}) for key in frame["key"]], index=frame.index)
    return cost_columns(pd.concat([frame, speed], axis=1))


def origin(record: Record) -> tuple[str, str, str]:
    """Where a record was made: (CPU or GPU name, git commit, torch version)."""
    prov = record.provenance or {}
    torch_version = str((prov.get("versions") or {}).get("torch", "?"))
    return str(prov.get("device_name") or "?"), str(prov.get("git_commit") or "?")[:7], f"torch {torch_version}"


def with_origins(frame: pd.DataFrame, records: Sequence[Record]) -> pd.DataFrame:
    """``frame`` with each method label naming its records' origin where a dataset's records
    come from more than one machine, commit or torch version (the parts that differ, e.g.
    ``naive [AMD EPYC, 2a3dbb5]``): such rows are never averaged or tested together, and a
    published folder beside a new run stays its own row."""
    if frame.empty:
        return frame
    origins = {r.key: origin(r) for r in records}
    frame = frame.copy()
    for _, rows in frame.groupby("dataset"):
        found = {origins[k] for k in rows["key"]}
        if len(found) < 2:
            continue
        varying = [i for i in range(3) if len({o[i] for o in found}) > 1]
        for index, row in rows.iterrows():
            parts = ", ".join(origins[row["key"]][i] for i in varying)
            frame.at[index, "method"] = f"{row['method']} [{parts}]"
    return frame


def with_registered_classes(frame: pd.DataFrame, records: Sequence[Record], registry: Any = None) -> pd.DataFrame:
    """``frame`` with the class of each record that does not state one (written before wbench
    stored it) read from its registered method's ``method_class`` (default registry: the
    installed plugins'); a method that cannot be loaded keeps the guess of :func:`records_frame`."""
    missing = sorted({r.method for r in records if r.outcome is not None and r.outcome.method_class is None})
    if not missing or frame.empty:
        return frame
    if registry is None:
        from wbench.plugin.manager import make_plugin_manager

        registry = make_plugin_manager().registry
    found = {}
    for name in missing:
        try:
            found[name] = str(registry.get("surrogate", name).load().method_class)
        except Exception:  # an uninstalled or broken plugin: keep the guess from `trainable`
            continue
    stated = {r.key for r in records if r.outcome is not None and r.outcome.method_class is not None}
    frame = frame.copy()
    for index, row in frame.iterrows():
        if row["key"] not in stated and row["method_name"] in found:
            frame.at[index, "class"] = found[row["method_name"]]
    return frame


def records_frame(records: Sequence[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record: identity columns plus every metric and transfer figure (speed
    figures come from the timing pass: :func:`leaderboard_frame`).

    :param records: :class:`~wbench.records.store.Record` objects (JSON objects are read with
        :meth:`~wbench.records.store.Record.from_dict`).
    """
    rows = []
    for item in records:
        r = item if isinstance(item, Record) else Record.from_dict(item)
        out = r.outcome or Outcome()
        row: dict[str, Any] = {
            "key": r.key,
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
        row.update({f"transfer.{k}": v for k, v in (out.transfer or {}).items()})
        fit = out.fit or {}
        row["fit.steps"] = fit.get("steps")
        row["fit.wall_time_s"] = fit.get("wall_time_s")
        row["fit.val_drop"] = val_drop(fit.get("val_mse"))
        row["class"] = out.method_class or ("learned" if out.trainable or out.trainable is None else "solver")
        if out.metric_by_construction is not None:
            row["metric_by_construction"] = out.metric_by_construction
        if out.n_parameters_trained is not None:  # records before issue 18 lack both: no empty columns
            row["n_parameters_trained"] = out.n_parameters_trained
        if "cost" in fit:
            row["fit.pairs_seen"] = fit["cost"].get("pairs_seen")
        rows.append(row)
    return pd.DataFrame(rows)


