"""The one place the site reads records: run discovery, loading and the leaderboard figures.

Every other module of :mod:`wbench.board.site` gets records, leaderboards, claims and transfer
through this module (and :class:`RunData`), so when the core's record or leaderboard API
changes (or plugins contribute sections through a hook), this adapter is the single module
to re-point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.board.frame import leaderboard_frame
from wbench.board.leaderboard import (
    COLUMNS,
    Column,
    _format_number,
    load_records,
    records_frame,
    resolve_columns,
    summarise,
)
from wbench.board.learning_curves import curve_table, select_milestone
from wbench.board.timing_section import timing_sections
from wbench.errors import WbenchError
from wbench.run.suite import DEFAULT_PRIMARY_METRIC
from wbench.sections import Section, SectionContext, collect_sections
from wbench.stats import natural_key

__all__ = [
    "COLUMNS", "Column", "RunData", "SiteInputError", "sections", "sections_of", "find_runs",
    "format_number", "load_records", "load_run", "records_frame", "summarise_frame", "transfer", "transfer_of",
]

PRIMARY_DEFAULT = "test.w2.rel_mae"
RECORDS_FILE = "records.jsonl"


class SiteInputError(WbenchError, ValueError):
    """A results folder the site cannot be built from (no runs, unreadable records)."""


@dataclass(frozen=True)
class RunData:
    """One published run: its records and the tables computed from them.

    ``frame`` has one row per record (:func:`wbench.board.leaderboard.records_frame`), ``summary``
    one row per (dataset, method) with ``<key>.mean`` / ``<key>.std`` columns, ranked by
    ``primary``; ``columns`` are the leaderboard columns present in ``summary``. A run with
    budget milestones is summarised at its last one (:func:`wbench.board.learning_curves.select_milestone`,
    as ``wbench leaderboard`` does), and ``curves`` holds its learning curves
    (:func:`wbench.board.learning_curves.curve_table`: one row per dataset, method and milestone;
    empty without milestones); ``milestone`` is the milestone summarised (None: none).
    """

    name: str
    path: Path
    records: list[dict[str, Any]]
    frame: pd.DataFrame
    summary: pd.DataFrame
    columns: list[Column]
    primary: str
    suite: dict[str, Any] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    milestone: int | None = None

    @property
    def datasets(self) -> list[str]:
        """The dataset labels of the run, in :func:`~wbench.stats.natural_key` order."""
        return sorted({str(d) for d in self.frame["dataset"].dropna()}, key=natural_key)


def format_number(value: float | None) -> str:
    """A number as the Markdown leaderboard prints it (4 significant digits, ``e`` notation
    outside [1e-3, 1e5)); empty for None or NaN."""
    if value is None:
        return ""
    return _format_number(float(value))


def find_runs(root: str | Path) -> list[Path]:
    """The run folders under ``root``: ``root`` itself when it holds ``records.jsonl``, else
    each direct sub-folder that does, sorted by name.

    :raises SiteInputError: when there is no such folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise SiteInputError(f"results folder {root} does not exist or is not a folder")
    if (root / RECORDS_FILE).is_file():
        return [root]
    runs = sorted(p for p in root.iterdir() if p.is_dir() and (p / RECORDS_FILE).is_file())
    if not runs:
        raise SiteInputError(f"no run folders (sub-folders holding {RECORDS_FILE}) under {root}")
    return runs


def load_run(path: str | Path, *, name: str | None = None, primary: str | None = None) -> RunData:
    """Load a run folder (records and, when present, ``suite.json``) and summarise it.

    :param primary: ranking metric; default the suite's ``primary_metric``, else ``test.w2.rel_mae``.
    :raises SiteInputError: when the folder holds no readable record.
    """
    path = Path(path)
    try:
        stored = load_records([path])
    except (OSError, ValueError) as exc:
        raise SiteInputError(f"cannot read the records of {path}: {exc}") from exc
    records = [r.as_dict() for r in stored]  # as stored: the method pages show these
    if not records:
        raise SiteInputError(f"{path / RECORDS_FILE} holds no records")
    suite: dict[str, Any] = {}
    suite_file = path / "suite.json"
    if suite_file.is_file():
        suite = json.loads(suite_file.read_text()).get("suite") or {}
    primary = primary or suite.get("primary_metric") or PRIMARY_DEFAULT
    full = leaderboard_frame([path])  # the records with the run's timing pass joined
    frame, chosen = select_milestone(full)
    summary, columns = summarise_frame(frame, primary=primary)
    return RunData(name=name or path.name, path=path, records=records, frame=frame, summary=summary,
                   columns=columns, primary=primary, suite=suite, curves=curve_table(full, primary),
                   milestone=chosen)


def summarise_frame(
    frame: pd.DataFrame, *, primary: str, columns: Sequence[Column] = COLUMNS
) -> tuple[pd.DataFrame, list[Column]]:
    """The leaderboard of ``frame`` (one row per record) ranked by ``primary``, and the
    ``columns`` it has figures for."""
    summary = summarise(frame, primary=primary, columns=columns)
    shown = [c for c in resolve_columns(frame, columns) if f"{c.key}.mean" in summary.columns]
    return summary, shown


def sections_of(frame: pd.DataFrame, *, primary: str = DEFAULT_PRIMARY_METRIC) -> list[Section]:
    """The extra sections plugins contribute for the records in ``frame`` (the papers' claims
    from the ``claims`` plugin, a third party's own), through ``wbench_leaderboard_sections``,
    exactly as the Markdown leaderboard draws them."""
    from wbench.plugin.manager import make_plugin_manager

    return collect_sections(make_plugin_manager().manager, frame, SectionContext(primary=primary, fmt="html"))


def transfer_of(frame: pd.DataFrame) -> pd.DataFrame:
    """Train x test transfer matrix of test MSE on W2, indexed by (method, train); empty when
    the records hold no transfer figure."""
    from wbench.stats import transfer_matrix

    if not any(str(c).startswith("transfer.") for c in frame.columns):
        return pd.DataFrame()
    return transfer_matrix(frame)


def sections(run: RunData) -> list[Section]:
    """The plugins' extra sections of a run (see :func:`sections_of`), then the re-timing
    pass's (:func:`wbench.board.timing_section.timing_sections`) when the run folder has one."""

    return sections_of(run.frame) + timing_sections([run.path])


def transfer(run: RunData) -> pd.DataFrame:
    """The transfer matrix of a run (see :func:`transfer_of`)."""
    return transfer_of(run.frame)
